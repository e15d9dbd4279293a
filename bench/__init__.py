"""Benchmarks: ours beside the peers (``python3 -m bench``; see docs/benchmarks.md)."""
