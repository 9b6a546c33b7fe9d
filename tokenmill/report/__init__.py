"""Corpus statistics: stats.json (the numbers) and report.html (a self-contained page)."""
