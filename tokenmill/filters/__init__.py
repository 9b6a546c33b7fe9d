"""Document filters: language ID, quality rules and deduplication.

A filter is a small named object called on a batch of texts (and their languages) that returns,
per document, None to keep it or the reason it is removed (`quality:too_few_words`). Counting and
writing removed documents happen once, in the engine, never in a filter.
"""

from tokenmill.filters.langid import LanguageId
from tokenmill.filters.quality import BasicQuality

__all__ = ["LanguageId", "BasicQuality"]
