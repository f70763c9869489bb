"""Analyses of results and data: failure cases, generalization gap, defect sizes, training curves."""
