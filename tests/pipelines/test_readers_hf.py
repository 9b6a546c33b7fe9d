"""Tests of tokenmill/pipelines/readers/hf.py that its mutation run asked for (docs/TESTING.md)."""
