"""Tests of tokenmill/pipelines/readers/inputs.py that its mutation run asked for (docs/TESTING.md)."""
