"""Benchmarks: `make bench` runs every `bench_*.py` module's `main()`; each prints its numbers and ratios
against a baseline measured in the same run."""
