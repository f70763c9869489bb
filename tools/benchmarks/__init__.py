"""Benchmarks: accuracy (development split, varied defects, CTs) and speed of pcc, each writing docs/results/."""
