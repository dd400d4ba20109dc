"""Opt-in benchmarks: `python -m benchmarks.bench_vitals` or `pytest benchmarks`."""
