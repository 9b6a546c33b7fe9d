"""Splitting decompressed bytes into records: `split_lines` (JSON lines, metadata lines) and
`split_blocks` (OSCAR 2019's blank-line separated documents), each with a size cap so that a
record over it is reported (None) without ever sitting in memory whole. No I/O here: both take
an iterator of byte chunks (see `compression.read_chunks`)."""

from __future__ import annotations

from collections.abc import Iterator


def split_lines(chunks: Iterator[bytes], max_bytes: int) -> Iterator[bytes | None]:
    """Yield each line of the bytes `chunks` hold (without its `\n` and trailing `\r`s), or
    None for a line longer than `max_bytes`, whose pieces are dropped as they come so that a
    huge line never sits in memory whole. A line may span any number of chunks.

    Lines are cut out one at a time (find, slice) rather than split all at once: a chunk can
    be tens of MB, and one line's memory freed and reused stays in the CPU cache."""
    parts: list[bytes] = []  # the start of a line that goes on in a later chunk
    size = 0  # len(b"".join(parts))
    too_large = False  # the current line is too large; its pieces are being dropped
    for chunk in chunks:
        find = chunk.find
        i = 0
        j = find(b"\n")
        if j >= 0 and (parts or too_large):  # the end of a line begun in an earlier chunk
            if too_large or size + j > max_bytes:
                yield None
            else:
                parts.append(chunk[:j])
                yield b"".join(parts).rstrip(b"\r\n")
            parts, size, too_large = [], 0, False
            i = j + 1
            j = find(b"\n", i)
        while j >= 0:
            yield None if j - i > max_bytes else chunk[i:j].rstrip(b"\r\n")
            i = j + 1
            j = find(b"\n", i)
        if too_large or i == len(chunk):
            continue
        size += len(chunk) - i
        if size > max_bytes:
            parts, too_large = [], True
        else:
            parts.append(chunk[i:])
    if too_large:
        yield None
    elif parts:  # the last line has no newline
        yield b"".join(parts).rstrip(b"\r\n")


def split_blocks(chunks: Iterator[bytes], max_bytes: int) -> Iterator[bytes | None]:
    """Yield each block of `chunks`' lines (OSCAR 2019: documents are runs of non-blank lines
    separated by blank lines), its lines joined by `\n`, or None for a block longer than
    `max_bytes` (dropped line by line as it comes)."""
    buf: list[bytes] = []
    size = 0
    too_large = False
    for line in split_lines(chunks, max_bytes):
        if line is not None and (not line or line.isspace()):
            if buf or too_large:
                yield None if too_large else b"\n".join(buf)
            buf, size, too_large = [], 0, False
            continue
        if too_large:
            continue
        if line is None or size + len(line) > max_bytes:
            buf, too_large = [], True
            continue
        buf.append(line)
        size += len(line) + 1
    if buf or too_large:
        yield None if too_large else b"\n".join(buf)
