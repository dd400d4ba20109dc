"""csnapshot comparison benchmarks (issue #7): `python -m benchmarks --help`.

The bench_*.py scripts here also run standalone, by path.
"""
