"""pe3d.recipes."""
