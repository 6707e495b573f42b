"""pe3d.systems."""
