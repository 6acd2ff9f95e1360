"""Benchmarks of pidfs_fuse: ``python -m bench`` (``make bench``).

A benchmark is not a test: nothing here asserts. Each figure is the best of several repetitions,
and every comparison (tagged vs linear scan, full vs empty namespace, level 0 vs level 3, the
mount vs this machine's /proc) is measured side by side in the same run, so ratios are
meaningful even on a noisy machine. ``model`` times the in-process model (pidfs_fuse.kernel);
``mount_bench`` times a real FUSE mount and needs root and /dev/fuse.
"""
