"""Benchmarks are opt-in: they are collected only when `benchmarks/` is named."""
