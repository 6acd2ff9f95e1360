"""The FUSE server: the only package that imports pyfuse3 and trio."""
