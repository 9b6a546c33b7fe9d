"""The stages of `prepare`, in order, one module each:

  scan       records per input file -> partitions, bucket counts
  decontam   evaluation files -> n-gram indexes (only with decontaminate.eval_files)
  process    read -> language ID -> quality -> exact-dedup hashes, LSH band keys
  against    documents in earlier corpora's indexes (only with dedup.against)
  dedup      exact duplicates, per hash bucket
  near       near duplicates: LSH buckets -> edges -> (verify) -> connected components
  spans      span hashes per partition, then span_dedup: duplicate spans per span bucket
             (only with dedup.spans.enabled)
  tokenizer  BPE trained on a sample of the kept text, or the given one
  tokenize   duplicates dropped, documents encoded into token series
  shards     series cut into Megatron shards

Each module holds its task function (a plain function of its inputs that writes its files
atomically and returns its counts, run anywhere by the engine), its `Counts` and its `Stage`
(what it plans from earlier stages and what it collects). The task functions are re-exported
here under their old names.
"""

from tokenmill.pipelines.docpass import BATCH_DOCS, UNDETERMINED
from tokenmill.pipelines.stages.against import AgainstStage
from tokenmill.pipelines.stages.base import Counts, Partition, Run, Stage
from tokenmill.pipelines.stages.decontam import DecontamStage
from tokenmill.pipelines.stages.dedup import (
    DedupStage,
    dedup_bucket,
    duplicate_pairs,
    duplicate_rows,
    resolve_ids,
)
from tokenmill.pipelines.stages.near import NearStage, near_bucket, verify_edges
from tokenmill.pipelines.stages.process import (
    DOC_SCHEMA,
    KEPT_SCHEMA,
    REMOVED_SCHEMA,
    ProcessStage,
    process_partition,
)
from tokenmill.pipelines.stages.scan import ScanStage, scan_file
from tokenmill.pipelines.stages.shards import ShardsStage
from tokenmill.pipelines.stages.spans import SpanDedupStage, SpansStage
from tokenmill.pipelines.stages.tokenize import TokenizeStage, tokenize_partition
from tokenmill.pipelines.stages.tokenizer import TokenizerStage, sample_texts, train_tokenizer
from tokenmill.shards.write import cut_into_shards, write_shard
from tokenmill.tokenize.series import TOKEN_DOCS_SCHEMA

STAGES: tuple[Stage, ...] = (
    ScanStage(),
    DecontamStage(),
    ProcessStage(),
    AgainstStage(),
    DedupStage(),
    NearStage(),
    SpansStage(),
    SpanDedupStage(),
    TokenizerStage(),
    TokenizeStage(),
    ShardsStage(),
)

__all__ = [
    "BATCH_DOCS",
    "DOC_SCHEMA",
    "KEPT_SCHEMA",
    "REMOVED_SCHEMA",
    "STAGES",
    "TOKEN_DOCS_SCHEMA",
    "UNDETERMINED",
    "Counts",
    "Partition",
    "Run",
    "Stage",
    "cut_into_shards",
    "dedup_bucket",
    "duplicate_pairs",
    "duplicate_rows",
    "near_bucket",
    "process_partition",
    "resolve_ids",
    "sample_texts",
    "scan_file",
    "tokenize_partition",
    "train_tokenizer",
    "verify_edges",
    "write_shard",
]
