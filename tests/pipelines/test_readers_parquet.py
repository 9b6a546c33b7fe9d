"""Tests of tokenmill/pipelines/readers/parquet.py that its mutation run asked for (docs/TESTING.md)."""
