"""pe3d.data."""
