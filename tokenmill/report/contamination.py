"""`tokenmill contamination OUT --eval FILE ...`: which documents of an already prepared corpus
share a word n-gram with evaluation sets, and which of the sets' items, without rerunning
`prepare`. Registered in tokenmill/cli.py.

The shards are decoded with OUT's tokenizer (the documents' text, as the shards hold it) and
their n-grams looked up in each evaluation set's index (tokenmill.filters.decontam: the same
n-grams as `prepare`'s `decontaminate` step), a batch of documents at a time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from tokenmill.console import err as _err
from tokenmill.console import fail as _fail
from tokenmill.console import out as _out

BATCH = 256  # documents decoded and looked up at a time
SHOWN = 10  # documents listed on the terminal


def contamination(
    out: Annotated[
        Path,
        typer.Argument(help="A prepare output folder (or its manifest.json).", show_default=False),
    ],
    eval_files: Annotated[
        list[Path],
        typer.Option(
            "--eval",
            help="An evaluation set: JSON lines (.jsonl, .gz / .zst too), a .json list or "
            ".parquet. Repeat for several.",
            show_default=False,
        ),
    ],
    text_key: Annotated[
        list[str],
        typer.Option(
            "--text-key",
            help="Field of an item holding its text (dotted for nested fields); repeat to "
            "join several fields (question and answer).",
        ),
    ] = ["text"],  # noqa: B006 (typer reads the default)
    ngram: Annotated[int, typer.Option(help="Words per n-gram.", min=1, max=1000)] = 13,
    lang: Annotated[
        str,
        typer.Option(help="Language of the evaluation texts (zh, ja, th: a word per character)."),
    ] = "und",
    report: Annotated[
        Path | None, typer.Option("--out", help="Write every hit as JSON to this file.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Report the overlap of a prepared corpus with evaluation sets.

    A document overlaps an evaluation set when they share a word n-gram (words as near dedup
    finds them: NFC, case-folded runs of letters and digits; 13 words by default, as GPT-3
    did). Items with fewer words than that cannot be found and are counted as too short.
    Prints, per set, its items, the documents that overlap it and the items they hit; --out
    writes every overlapping document (source, shard, index, id) with its items per set.
    """
    from tokenmill.pipelines.evalsets import EvalFileError, load_eval_index
    from tokenmill.shards.manifest import ManifestError, load_manifest, manifest_path
    from tokenmill.shards.verify import check_shards

    try:
        manifest = load_manifest(out)
    except ManifestError as e:
        _fail(str(e))
    root = manifest_path(out).parent
    bad = [s for s in check_shards(root, manifest) if not s.ok]
    if bad:
        _fail(
            f"{len(bad)} shards of {root} are damaged ({bad[0].prefix}: {bad[0].problems[0]})",
            hint="`tokenmill verify OUT` lists them",
        )
    indexes = []
    for path in eval_files:
        try:
            indexes.append(load_eval_index(path, text_key, ngram, lang))
        except EvalFileError as e:
            _fail(str(e))
    names = [ix.name for ix in indexes]
    if len(set(names)) < len(names):
        _fail(f"two evaluation files have the same name ({', '.join(names)}): rename one")
    result = scan(root, manifest, indexes, show=not quiet)
    _print(result)
    if report is not None:
        report.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", "utf-8")
        _err.print(f"wrote {report}", highlight=False)


def scan(root: Path, manifest: dict, indexes: list, show: bool = False) -> dict:
    """Every shard's documents against `indexes`: per set, its counts and the items hit;
    the overlapping documents with their items per set."""
    import pyarrow.parquet as pq
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from tokenmill.filters.decontam import find_contamination
    from tokenmill.shards.megatron import ShardReader
    from tokenmill.tokenize.bpe import load_tokenizer

    tok = load_tokenizer(str(root / manifest["tokenizer"]["path"]))
    sets = {ix.name: {**ix.counts, "documents": 0, "items_hit": set()} for ix in indexes}
    documents = []
    total = sum(s["documents"] for s in manifest["shards"])
    columns = [TextColumn("scanning"), BarColumn(), MofNCompleteColumn(), TextColumn("docs")]
    with Progress(*columns, console=_err, disable=not show, transient=True) as progress:
        bar = progress.add_task("scan", total=total)
        for shard in manifest["shards"]:
            prefix = root / shard["prefix"]
            reader = ShardReader(prefix)
            side = pq.read_table(f"{prefix}.docs.parquet").to_pydict()
            ids = side.get("id") or [None] * len(reader)
            langs = side.get("lang") or [shard.get("lang") or "und"] * len(reader)
            for start in range(0, len(reader), BATCH):
                stop = min(start + BATCH, len(reader))
                seqs = [reader[i].tolist() for i in range(start, stop)]
                texts = tok.decode_batch(seqs, skip_special_tokens=True)
                for k, hits in enumerate(find_contamination(texts, langs[start:stop], indexes)):
                    if not hits:
                        continue
                    i = start + k
                    for h in hits:
                        sets[h.name]["documents"] += 1
                        sets[h.name]["items_hit"].update(h.items)
                    documents.append(
                        {
                            "source": shard["source"],
                            "shard": shard["prefix"],
                            "index": i,
                            "id": ids[i],
                            "sets": {h.name: h.items for h in hits},
                        }
                    )
                progress.advance(bar, stop - start)
    for s in sets.values():
        s["items_hit"] = sorted(s["items_hit"])
    return {"ngram": indexes[0].ngram if indexes else None, "sets": sets, "documents": documents}


def _print(result: dict) -> None:
    from rich.table import Table

    table = Table(title=f"overlap with evaluation sets ({result['ngram']}-grams)")
    for col in ("set", "items", "too short", "documents", "items hit"):
        table.add_column(col, justify="left" if col == "set" else "right")
    for name, s in result["sets"].items():
        checked = s["items"] - s["no_text"] - s["too_short"]
        hit = len(s["items_hit"])
        share = f" ({100 * hit / checked:.1f}%)" if checked else ""
        table.add_row(
            name, f"{s['items']:,}", f"{s['too_short']:,}", f"{s['documents']:,}", f"{hit:,}{share}"
        )
    _out.print(table)
    for d in result["documents"][:SHOWN]:
        sets = "; ".join(f"{n}: items {', '.join(map(str, it[:5]))}" for n, it in d["sets"].items())
        _out.print(f"{d['shard']} #{d['index']} {d['id'] or ''}  {sets}", highlight=False)
    more = len(result["documents"]) - SHOWN
    if more > 0:
        _out.print(f"... and {more:,} more documents (--out FILE lists them all)")
