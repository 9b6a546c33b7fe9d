"""Tests of tokenmill/pipelines/readers/oscar.py that its mutation run asked for (docs/TESTING.md)."""
