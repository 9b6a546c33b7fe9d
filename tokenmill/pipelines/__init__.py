"""The Dask stage engine (`engine`), the readers of each corpus format (`readers`), the
per-partition stages (`stages`) and the `prepare` graph that chains them (`prepare`)."""
