"""Evaluation: metrics with bootstrap intervals, the H2O baseline, and the promotion gate's decision."""
