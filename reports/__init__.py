"""Pareto plots and reports."""
