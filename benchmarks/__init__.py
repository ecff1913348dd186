"""Benchmarks: commands that print numbers. Not part of the test suite (no timed tests)."""
