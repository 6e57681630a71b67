"""Benchmarks of meshc's runtime, each against a baseline measured in the same run.

``python -m bench.run_all`` runs them all; see BENCHMARKS.md for the method and results.
"""
