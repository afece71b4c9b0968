"""Bundled public credit datasets (see docs/datasets.md for provenance and licences)."""
