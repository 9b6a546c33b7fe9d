"""The layout of a prepare output folder, OUT, and of its intermediate files in OUT/work.

`WorkDir` is the one place that names these paths: stages ask it for a partition's documents,
a bucket's hashes, a series of tokens or a task's done-mark, and never join path parts
themselves. A partition is named by its source and key (`Partition.key`, FILE-SLICE):

    OUT/work/config.json, inputs.json            what a rerun must agree with
    OUT/work/buckets.json, near_buckets.json     bucket counts pinned by the first run
    OUT/work/scan/SOURCE/FILE.json               records per input file (done-mark)
    OUT/work/decontam/NAME.npz                   an evaluation set's n-grams; .json done-mark
    OUT/work/docs/SOURCE/KEY.parquet             kept documents; .hashes.npy, .bands.npy
    OUT/work/dedup/bBUCKET.npy                   exact duplicates of a bucket; .kept.npy
    OUT/work/dedup/near/eBUCKET.npy              near-duplicate edges; .verified.npy
    OUT/work/dedup/near/components.json, removed/
    OUT/work/tokenizer.json                      the tokenizer the tokens were made with
    OUT/work/tokens/SOURCE/KEY[.LANG].bin        tokens; .sizes.npy, .docs.parquet
    OUT/work/shards/SOURCE/NAME.json             a shard's done-mark
    OUT/shards/SOURCE/NAME.bin/.idx              the shards
    OUT/removed/SOURCE/KEY.parquet               what keep_removed keeps; KEY.dedup.parquet
    OUT/dedup/meta.json, exact/, near/           the index later runs dedup against
    OUT/work/against/SOURCE/KEY.npy              documents found in dedup.against's indexes
    OUT/work/spans/SOURCE/KEY.npy, dups/sB.npy   span hashes; duplicate spans per bucket

Each task's done-mark is the JSON of counts it left (`done_*`): the engine skips a task that
has one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


def shingle_base(folder: str | Path, ordinal: int) -> str:
    """Where partition `ordinal`'s verify shingle files are, without their suffixes."""
    return str(Path(folder) / f"p{ordinal:06d}")


def _with_suffix(path: str | Path, suffix: str) -> str:
    """`x.npy` -> `x{suffix}`: the files written beside an .npy output."""
    path = str(path)
    return path.removesuffix(".npy") + suffix


def kept_file(dups_file: str | Path) -> str:
    """The `.kept.npy` aligned with a duplicates file: the key kept for each duplicate."""
    return _with_suffix(dups_file, ".kept.npy")


@dataclass(frozen=True)
class WorkDir:
    """Paths of one prepare output folder `out` (absolute) and its work folder."""

    out: Path

    @classmethod
    def of_work(cls, work: str | Path) -> WorkDir:
        """The output folder whose work folder is `work`."""
        return cls(Path(work).parent)

    @property
    def work(self) -> Path:
        return self.out / "work"

    # ---- pinned by the first run

    def config(self) -> Path:
        return self.work / "config.json"

    def inputs(self) -> Path:
        return self.work / "inputs.json"

    def pinned(self, name: str) -> Path:
        return self.work / f"{name}.json"

    # ---- scan

    def scan_dir(self) -> Path:
        return self.work / "scan"

    def done_scan(self, source: str, file_idx: int) -> Path:
        return self.scan_dir() / source / f"{file_idx:05d}.json"

    # ---- process

    def docs(self, source: str, key: str) -> Path:
        return self.work / "docs" / source / f"{key}.parquet"

    def hashes(self, source: str, key: str) -> Path:
        return self.work / "docs" / source / f"{key}.hashes.npy"

    def bands(self, source: str, key: str) -> Path:
        return self.work / "docs" / source / f"{key}.bands.npy"

    def done_process(self, source: str, key: str) -> Path:
        return self.work / "docs" / source / f"{key}.json"

    def removed(self, source: str, key: str) -> Path:
        return self.out / "removed" / source / f"{key}.parquet"

    def removed_duplicates(self, source: str, key: str) -> Path:
        return self.out / "removed" / source / f"{key}.dedup.parquet"

    # ---- exact dedup

    def dups(self, bucket: int) -> Path:
        return self.work / "dedup" / f"b{bucket:04d}.npy"

    def done_dedup(self, bucket: int) -> Path:
        return self.work / "dedup" / f"b{bucket:04d}.json"

    # ---- near dedup

    def near_dir(self) -> Path:
        return self.work / "dedup" / "near"

    def edges(self, bucket: int) -> Path:
        return self.near_dir() / f"e{bucket:04d}.npy"

    def done_near(self, bucket: int) -> Path:
        return self.near_dir() / f"e{bucket:04d}.json"

    def verified(self, edges: str | Path) -> str:
        return _with_suffix(edges, ".verified.npy")

    def done_verify(self, edges: str | Path) -> Path:
        return Path(_with_suffix(edges, ".verified.json"))

    def edge_ends(self, edges: str | Path) -> str:
        return _with_suffix(edges, ".ends.npy")

    def done_edge_ends(self, edges: str | Path) -> Path:
        return Path(_with_suffix(edges, ".ends.json"))

    def shingle_dir(self) -> Path:
        return self.near_dir() / "shingles"

    def shingles(self, ordinal: int) -> str:
        """The base name of a partition's verify shingle files (.sh, .rows.npy, .offs.npy)."""
        return shingle_base(self.shingle_dir(), ordinal)

    def done_shingles(self, ordinal: int) -> Path:
        return Path(self.shingles(ordinal) + ".json")

    def ends_list(self) -> Path:
        """The ends files of a verify run, listed once (not in every partition's task)."""
        return self.near_dir() / "ends.json"

    def components(self) -> Path:
        return self.near_dir() / "components.json"

    def near_removed(self) -> Path:
        return self.near_dir() / "removed"

    # ---- the deduplication index a run leaves (tokenmill.filters.against)

    def dedup_index(self) -> Path:
        return self.out / "dedup"

    def exact_index(self, bucket: int) -> Path:
        return self.dedup_index() / "exact" / f"b{bucket:05d}.npy"

    def near_index(self, bucket: int) -> Path:
        return self.dedup_index() / "near" / f"n{bucket:05d}.npy"

    def against(self, source: str, key: str) -> Path:
        """A partition's documents found in `dedup.against`'s indexes (order keys, sorted)."""
        return self.work / "against" / source / f"{key}.npy"

    def done_against(self, source: str, key: str) -> Path:
        return self.work / "against" / source / f"{key}.json"

    # ---- span dedup

    def spans(self, source: str, key: str) -> Path:
        """A partition's span records, sorted by span bucket."""
        return self.work / "spans" / source / f"{key}.npy"

    def done_spans(self, source: str, key: str) -> Path:
        return self.work / "spans" / source / f"{key}.json"

    def span_dups(self, bucket: int) -> Path:
        return self.work / "spans" / "dups" / f"s{bucket:05d}.npy"

    def done_span_dups(self, bucket: int) -> Path:
        return self.work / "spans" / "dups" / f"s{bucket:05d}.json"

    # ---- decontamination

    def eval_index(self, name: str) -> Path:
        """An evaluation set's n-gram index (tokenmill.filters.decontam.EvalIndex)."""
        return self.work / "decontam" / f"{name}.npz"

    def done_eval_index(self, name: str) -> Path:
        return self.work / "decontam" / f"{name}.json"

    # ---- tokenizer, tokens, shards

    def tokenizer(self) -> Path:
        return self.work / "tokenizer.json"

    def done_tokenizer(self) -> Path:
        return self.work / "tokenizer.done.json"

    def tokens(self, source: str, key: str, group: str = "") -> str:
        """The base name of a partition's token series (of one language `group`, if any)."""
        base = str(self.work / "tokens" / source / key)
        return f"{base}.{group}" if group else base

    def done_tokenize(self, source: str, key: str) -> Path:
        return self.work / "tokens" / source / f"{key}.json"

    def shard(self, source: str, name: str) -> Path:
        """A shard's prefix (PREFIX.bin, .idx, .docs.parquet)."""
        return self.out / "shards" / source / name

    def done_shard(self, source: str, name: str) -> Path:
        return self.work / "shards" / source / f"{name}.json"
