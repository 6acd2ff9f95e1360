"""Scenario files shipped with pidfs_fuse (read with importlib.resources)."""
