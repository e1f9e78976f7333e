"""Benchmarks: each ``benchmarks/<name>/`` measures the project against a baseline side by side in
one run and writes ``benchmarks/results/<name>.json`` (ratios, throughput, peak memory)."""
