"""`split_lines` and `split_blocks` against a plain reading of the whole bytes at once
(`bytes.split`), for every way of cutting them into chunks, empty chunks included, and lines
of every length around the cap."""

from __future__ import annotations

import random

import pytest

from tokenmill.pipelines.readers.lines import split_blocks, split_lines

# every test here takes under a second: a mutant that stops a loop from advancing fails
# instead of hanging (mutation testing, docs/TESTING.md)
pytestmark = pytest.mark.timeout(30)


def plain_lines(data: bytes, max_bytes: int) -> list[bytes | None]:
    """Each line (split at b"\\n", a last empty piece dropped), None where it holds more than
    `max_bytes` bytes (its `\\r`s counted), else without its trailing `\\r`s."""
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return [None if len(x) > max_bytes else x.rstrip(b"\r") for x in lines]


def plain_blocks(data: bytes, max_bytes: int) -> list[bytes | None]:
    """Runs of non-blank lines joined by b"\\n"; None for a run holding a line over the cap or
    joined to more than `max_bytes` bytes."""
    out: list[bytes | None] = []
    run: list[bytes | None] = []
    for line in [*plain_lines(data, max_bytes), b""]:  # a blank line ends the last run
        if line is not None and not line.strip():
            if run:
                bad = None in run or len(b"\n".join(run)) > max_bytes  # type: ignore[arg-type]
                out.append(None if bad else b"\n".join(run))  # type: ignore[arg-type]
            run = []
        else:
            run.append(line)
    return out


def chunkings(data: bytes, rng: random.Random, n: int):
    """`n` random ways to cut `data` (empty chunks too), and the one-chunk and byte-by-byte ones."""
    yield [data]
    yield [data[i : i + 1] for i in range(len(data))]
    for _ in range(n):
        cuts = sorted(rng.choices(range(len(data) + 1), k=rng.randrange(1, 8)))
        yield [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def _data(rng: random.Random, cap: int) -> bytes:
    """Lines of lengths around `cap` (cap - 1, cap, cap + 1 and others), with `\\r`s, blank
    and whitespace lines, and an ending with or without a newline."""
    pieces = []
    for _ in range(rng.randrange(0, 9)):
        n = rng.choice([0, 1, cap - 1, cap, cap + 1, 2 * cap + 3, rng.randrange(0, 3 * cap + 2)])
        body = bytes(rng.choice(b"ab\r ") for _ in range(max(n, 0)))
        pieces.append(rng.choice([body, body, b" \t", b"\r", b""]))
    return b"\n".join(pieces) + rng.choice([b"", b"\n", b"\r\n", b"\n\n", b"tail"])


@pytest.mark.parametrize("cap", [0, 1, 2, 3, 5, 8, 13])
def test_split_lines_equals_a_plain_split_whatever_the_chunks(cap):
    rng = random.Random(cap)
    for _ in range(150):
        data = _data(rng, cap)
        want = plain_lines(data, cap)
        for chunks in chunkings(data, rng, 6):
            assert list(split_lines(iter(chunks), cap)) == want, (data, chunks, cap)


@pytest.mark.parametrize("cap", [0, 1, 2, 3, 5, 8, 13, 30])
def test_split_blocks_equals_a_plain_split_whatever_the_chunks(cap):
    rng = random.Random(100 + cap)
    for _ in range(150):
        data = _data(rng, cap)
        want = plain_blocks(data, cap)
        for chunks in chunkings(data, rng, 6):
            assert list(split_blocks(iter(chunks), cap)) == want, (data, chunks, cap)


def test_lines_exactly_at_the_cap():
    """A line of exactly `max_bytes` bytes is kept, one more is over, in one chunk or spread
    over several (its `\\r` counts toward the size)."""
    for chunks in ([b"abc\nabcd\nab\r\n"], [b"a", b"bc\na", b"bcd", b"\nab\r", b"\n"]):
        assert list(split_lines(iter(chunks), 3)) == [b"abc", None, b"ab"]
    assert list(split_lines(iter([b"ab", b"c"]), 3)) == [b"abc"]  # the last line, unended
    assert list(split_lines(iter([b"ab", b"cd"]), 3)) == [None]
    assert list(split_lines(iter([b"abcd", b"e\nf"]), 3)) == [None, b"f"]
    assert list(split_lines(iter([b"ab", b"", b"c", b"\n"]), 3)) == [b"abc"]
    assert list(split_blocks(iter([b"ab\ncd\n\nabcdef\n"]), 5)) == [b"ab\ncd", None]
    assert list(split_blocks(iter([b"ab\nc\n"]), 4)) == [b"ab\nc"]
    assert list(split_blocks(iter([b"\n \n\t\nab\n\n\n"]), 4)) == [b"ab"]
    # three lines: the size is the whole block's, its joining newlines included
    assert list(split_blocks(iter([b"ab\ncd\nef\n"]), 8)) == [b"ab\ncd\nef"]
    assert list(split_blocks(iter([b"ab\ncd\nef\n"]), 7)) == [None]
    assert list(split_blocks(iter([b"a\nb\nc\nd\ne\n\nf\n"]), 8)) == [None, b"f"]


def test_a_long_line_is_dropped_piece_by_piece():
    """The pieces of a line over the cap are not kept: a 30 MB line read in 1 MB chunks never
    has more than a few MB alive (tracemalloc's peak, which counts every bytes object)."""
    import tracemalloc

    def chunks():
        for _ in range(30):
            yield b"x" * 1_000_000
        yield b"\nafter\n"

    tracemalloc.start()
    try:
        got = list(split_lines(chunks(), 1000))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got == [None, b"after"]
    assert peak < 5_000_000, peak
