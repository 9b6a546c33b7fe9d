"""The errors a download raises: each a DownloadError whose message says what happened and
what to do (the words come from `messages.Hints`). Catch DownloadError, or a subclass to tell
the causes apart."""

from __future__ import annotations


class DownloadError(RuntimeError):
    """A file could not be downloaded; the message says why and what to do."""


class AuthError(DownloadError):
    """401/403: a token is missing, wrong, or lacks access to a gated dataset."""


class NotFoundError(DownloadError):
    """404: the file is not at that address."""


class IntegrityError(DownloadError):
    """The file kept failing its size, checksum or decompression check."""


class UnsafePathError(DownloadError):
    """A remote file name that would write outside the destination folder."""


class UnreachableError(DownloadError):
    """The host refused the connection, or its name did not resolve, after the quick retries."""
