"""Benchmark of the worker's backup and restore against the Helm chart's shell pipeline (bench/README.md)."""
