"""Byte-level BPE through tiktoken's encoder, where it gives exactly HF tokenizers' ids.

tiktoken encodes GPT-2-style byte-level BPE several times faster than `tokenizers`
(benchmarks/tokenize_backends.py). `partition_encoder` stands in for the HF `Tokenizer` in
`tokenmill.tokenize.encode` (its `encode_batch_fast`) for one partition: tiktoken where the
tokenizer is one tiktoken reproduces, HF otherwise, with the reason (`FastEncoder.reason`).
Shards are byte-identical either way; the stage records which encoder made each partition.

What tiktoken reproduces (`plan_for`, every condition checked on the tokenizer.json):
- no normalizer (or an empty Sequence); no truncation or padding;
- the pre-tokenizer is ByteLevel with GPT-2's regex (`use_regex`, no prefix space), alone or
  as the Split of GPT-2's regex (isolated) before a ByteLevel without regex;
- a BPE model without dropout, word prefix or suffix, every one of the 256 bytes in the
  vocabulary, and a merge list that tiktoken's ranks can stand for (below).
Pre-tokenization: both split with the same regex, HF with Oniguruma and tiktoken with Rust's
fancy-regex. The regex reads characters only through \\p{L}, \\p{N} and \\s, so the two split
alike wherever they put every character in the same classes; their Unicode tables may be versions
apart, so `engine_differences` probes both on every code point (once per process, or read from
CHECKED_ENGINES for the installed versions already probed) and the documents holding a code
point they class differently go to HF.
Added and special tokens: HF splits a document on the text of any added token it contains
(`<|endoftext|>` written inside a document becomes that token's id), with per-token options
(lstrip, single_word) tiktoken lacks: documents holding an added token's text go to HF.

Merging. HF applies its merge list: at each step, of the adjacent pairs that are *in the
list*, the one listed first merges (leftmost on a tie). tiktoken ranks a pair by the id of the
token its concatenation is: any adjacent (x, y) whose bytes x + y are a token t can merge,
ranked by t's id; and a regex piece that is itself a token becomes that token without merging
(as HF's `ignore_merges` does). So they can differ where a token is reachable by two merge
paths: t is listed as p + q, but x + y = t too for two other tokens x, y. Where x and y stand
next to each other and t's id is the lowest there, tiktoken merges them into t; HF, with no
merge (x, y) in its list, does not, and the ids differ from there on (a test builds one: abc
listed as ab + c while bc merges before ab, so HF leaves a, bc and tiktoken makes abc).
`plan_for` requires:
  (1) order: each merge makes a token no earlier merge made, with a higher id than every
      earlier merge's token (the trainer of `tokenizers` numbers tokens in merge order);
  (2) reach: every token a merge makes, with HF's merge list applied to its own bytes,
      comes out as that one token.
Then the two give the same ids on every piece. Take the first step where they would part.
The pairs HF can merge are among tiktoken's and, by (1), ranked alike, so tiktoken's choice
must be a pair (x, y) that is not in HF's list, with x + y = t. Nothing has merged across the
edges of t's bytes (x and y cover them exactly), and HF always merges the first-listed pair
of the whole piece, so the merges inside t's bytes so far are those HF makes on t's bytes
alone, in the same order: HF on t's bytes passes through [x, y]. By (2) it goes on to [t],
and from the two-token state [x, y] the only way is the merge (x, y), which (1) makes t's
listed merge, a contradiction. The whole-piece shortcut agrees too: by (2), HF's merging of a
piece that is a token t gives t. Tokens that no merge makes (and are not bytes) are left out
of tiktoken's ranks, since HF never produces them (with `ignore_merges` it would: such a
tokenizer falls back). Tokenizers failing (1) or (2) fall back (tests/tokenize/test_fastbpe.py
builds both).

Verification. Besides these checks, each partition's first batch is encoded both ways and the
partition falls back to HF at any difference (`FastEncoder.reason` says where): what the
checks do not model (a tokenizer setting HF applies that is not read here, a difference of
the engines outside the classes probed) shows there when the first batch has it.

Not covered: BLOOM's pre-tokenizer, a Split whose pattern leaves gaps between its matches
(which HF keeps as pieces and tiktoken would drop) before a ByteLevel without regex: its
tokenizer.json falls back ("its pattern is not GPT-2's"). tiktoken would need the pattern with
an alternative for the gaps, `P|(?:(?!P)[\\s\\S])+`, and the probe over BLOOM's classes.
"""

from __future__ import annotations

import json
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache

from tokenizers import Regex, Tokenizer, models, pre_tokenizers

from tokenmill.tokenize.encode import ENCODE_THREAD_NAME, name_os_thread

BACKENDS = ("auto", "hf")
# HF's ByteLevel regex (GPT-2's, as in its encoder.py); tiktoken's r50k_base is the same
GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
# (tokenizers, tiktoken) versions whose regex engines `engine_differences` probed: the code
# points they class differently (none). Others are probed once per process (seconds).
CHECKED_ENGINES: dict[tuple[str, str], tuple[int, ...]] = {("0.23.3", "0.14.0"): ()}


def byte_alphabet() -> dict[int, str]:
    """GPT-2's byte -> character table (bytes_to_unicode): printable bytes stand for
    themselves, the others for the characters from U+0100 on."""
    keep = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    moved = [b for b in range(256) if b not in keep]
    return {
        **{b: chr(b) for b in keep},
        **{b: chr(0x100 + i) for i, b in enumerate(moved)},
    }


@dataclass(frozen=True)
class Plan:
    """What `plan_for` found: the tiktoken encoding (None where HF must encode, `reason` says
    why), the added tokens' texts and the code points the regex engines class differently
    (`risky`). Documents holding either go to HF: `to_hf` finds them, one search a document."""

    encoding: object | None
    reason: str | None = None
    added: tuple[str, ...] = ()
    risky: tuple[int, ...] = ()
    to_hf: re.Pattern | None = field(init=False, compare=False, repr=False)

    def __post_init__(self):
        parts = [p for p in (_trie_pattern(self.added), _class_pattern(self.risky)) if p]
        object.__setattr__(self, "to_hf", re.compile("|".join(parts)) if parts else None)


def _trie_pattern(words: tuple[str, ...]) -> str:
    """A regex matching any of `words`, as a trie (one pass over a text whatever their
    number: a tokenizer may add 70,000 tokens), or "" for none."""
    trie: dict = {}
    for w in words:
        node = trie
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict) -> str:
        alts = [re.escape(ch) + emit(sub) for ch, sub in sorted(node.items()) if ch]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        return f"(?:{body})?" if "" in node else body

    return emit(trie)


def _class_pattern(code_points: tuple[int, ...]) -> str:
    """A character class of `code_points` (as ranges), or "" for none."""
    if not code_points:
        return ""
    ranges, start = [], code_points[0]
    for prev, cp in zip(code_points, code_points[1:] + (-1,), strict=True):
        if cp != prev + 1:
            ranges.append(
                re.escape(chr(start)) + ("" if prev == start else "-" + re.escape(chr(prev)))
            )
            start = cp
    return "[" + "".join(ranges) + "]"


def _unsupported(spec: dict) -> str | None:
    """Why tiktoken cannot stand for this tokenizer.json's pipeline, or None."""
    model = spec.get("model") or {}
    if model.get("type") != "BPE":
        return f"model {model.get('type')}: not BPE"
    norm = spec.get("normalizer")
    if norm is not None and not (norm.get("type") == "Sequence" and not norm.get("normalizers")):
        return f"normalizer {norm.get('type')}: tiktoken encodes the text as it is"
    for key in ("truncation", "padding"):
        if spec.get(key):
            return f"the tokenizer has {key} set"
    pre = spec.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    kinds = [s.get("type") for s in steps]
    if kinds == ["ByteLevel"]:
        byte_level, want_regex = steps[0], True
    elif kinds == ["Split", "ByteLevel"]:
        split, byte_level, want_regex = steps[0], steps[1], False
        if (split.get("pattern") or {}).get("Regex") != GPT2_PATTERN:
            return "pre-tokenizer Split: its pattern is not GPT-2's"
        if split.get("behavior") != "Isolated" or split.get("invert"):
            return "pre-tokenizer Split: not isolated matches"
    else:
        return f"pre-tokenizer {kinds or None}: not GPT-2's byte-level split"
    if byte_level.get("add_prefix_space"):
        return "pre-tokenizer ByteLevel adds a prefix space"
    if bool(byte_level.get("use_regex", True)) != want_regex:
        return "pre-tokenizer ByteLevel: use_regex " + ("off" if want_regex else "on after Split")
    if model.get("dropout"):
        return "BPE dropout: not deterministic"
    for key in ("continuing_subword_prefix", "end_of_word_suffix"):
        if model.get(key):
            return f"BPE {key} {model[key]!r}"
    return None


def _ranks(spec: dict, added: set[str]) -> tuple[dict[bytes, int] | None, str | None]:
    """tiktoken's mergeable ranks (token bytes -> HF id) for the BPE in `spec`, or why its
    merges are not ones tiktoken's ranking reproduces ((1) order and (2) reach of the module
    doc)."""
    model = spec["model"]
    vocab: dict[str, int] = model["vocab"]
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    to_byte = {c: b for b, c in byte_alphabet().items()}
    missing = [b for b, c in byte_alphabet().items() if c not in vocab]
    if missing:
        return None, f"the vocabulary lacks {len(missing)} of the 256 bytes"
    ranks = {bytes([b]): vocab[c] for b, c in byte_alphabet().items()}
    made, last = [], -1
    for a, b in merges:
        t = a + b
        tid = vocab.get(t)
        if tid is None or not set(t) <= to_byte.keys():
            return None, f"merge {a!r} {b!r} makes no byte-level token of the vocabulary"
        if tid <= last:  # (1) order
            return None, (
                f"merge order: {t!r} (id {tid}) is merged after a token with a higher id: "
                "tiktoken ranks merges by id"
            )
        last = tid
        ranks[bytes(to_byte[c] for c in t)] = tid
        made.append(t)
    if model.get("ignore_merges") and set(vocab) - added - set(made) - set(to_byte):
        return None, "ignore_merges with tokens no merge makes"
    # (2) reach: HF's merge list alone (no ignore_merges shortcut) on each token's own bytes
    check = models.BPE(vocab=vocab, merges=merges)
    for t in made:
        got = [x.id for x in check.tokenize(t)]
        if got != [vocab[t]]:
            return None, f"token {t!r} is not what HF's merges make of its bytes ({got})"
    return ranks, None


@lru_cache(maxsize=4)
def plan_for(tok: Tokenizer) -> Plan:
    """The tiktoken encoding that gives `tok`'s ids, or why there is none (cached per
    tokenizer object: `load_tokenizer` keeps one per file)."""
    try:
        import tiktoken
    except ImportError:
        return Plan(None, "tiktoken is not installed (pip install tiktoken)")
    spec = json.loads(tok.to_str())
    reason = _unsupported(spec)
    if reason:
        return Plan(None, reason)
    added = tuple(sorted({a["content"] for a in spec.get("added_tokens", []) if a["content"]}))
    ranks, reason = _ranks(spec, set(added))
    if ranks is None:
        return Plan(None, reason)
    encoding = tiktoken.Encoding(
        "tokenmill", pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens={}
    )
    try:
        return Plan(encoding, None, added, engine_differences())
    except RecursionError:  # an added token of thousands of characters
        return Plan(None, "an added token too long to search documents for")


def engine_differences() -> tuple[int, ...]:
    """The code points that HF's regex engine (Oniguruma) and tiktoken's (fancy-regex) put in
    different classes among \\p{L}, \\p{N} and \\s: CHECKED_ENGINES's entry for the installed
    versions, else `probe_engines()`."""
    import tiktoken
    import tokenizers

    key = (tokenizers.__version__, tiktoken.__version__)
    return CHECKED_ENGINES[key] if key in CHECKED_ENGINES else probe_engines()


@lru_cache(maxsize=1)
def probe_engines() -> tuple[int, ...]:
    """Every code point (surrogates aside) through both engines, per class: HF's by a
    Split that removes the class's runs (what is left is outside it); tiktoken's by an
    encoding whose only merges join "a" with a following byte, on the text "a" + c for each c
    under the pattern `a<class>|[\\s\\S]`: c is in the class where "a" merged with c's first
    byte ("a" itself, the probe's marker, is a letter in every version). About 5 s."""
    import numpy as np
    import tiktoken

    cps = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF and c != ord("a")]
    chars = [chr(c) for c in cps]
    chunk = 4096  # (HF's character offsets cost a pass over the text per piece)
    texts = ["".join(chars[i : i + chunk]) for i in range(0, len(chars), chunk)]
    ranks = {bytes([b]): b for b in range(256)}
    ranks.update({b"a" + bytes([b]): 256 + b for b in range(256)})
    joined = "a" + "a".join(chars)
    differ = np.zeros(len(cps), bool)
    for cls in (r"\p{L}", r"\p{N}", r"\s"):
        hf = np.ones(len(cps), bool)
        split = pre_tokenizers.Split(Regex(cls + "+"), behavior="removed")
        for k, text in enumerate(texts):
            for _, (a, b) in split.pre_tokenize_str(text):
                hf[k * chunk + a : k * chunk + b] = False
        enc = tiktoken.Encoding(
            "probe", pat_str="a" + cls + r"|[\s\S]", mergeable_ranks=ranks, special_tokens={}
        )
        ids = np.asarray(enc.encode_ordinary(joined))
        first = ids[(ids == ord("a")) | (ids >= 256)]  # each c's "a": merged or alone
        differ |= hf != (first >= 256)
    return tuple(int(c) for c in np.asarray(cps)[differ])


def encode_threads() -> int:
    """The threads HF's encode_batch uses (RAYON_NUM_THREADS, else one per core; one with
    TOKENIZERS_PARALLELISM off): tiktoken gets as many."""
    if os.environ.get("TOKENIZERS_PARALLELISM", "").lower() in ("0", "false", "off", "no"):
        return 1
    return int(os.environ.get("RAYON_NUM_THREADS") or 0) or os.cpu_count() or 1


_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _pool(threads: int) -> ThreadPoolExecutor:
    """The process's pool of `threads` encoding threads (keyed on the pid too: a forked
    child has the parent's pool object without its threads)."""
    key = (os.getpid(), threads)
    with _POOLS_LOCK:
        if key not in _POOLS:
            _POOLS[key] = ThreadPoolExecutor(
                threads,
                thread_name_prefix="tokenmill-tiktoken",
                initializer=name_os_thread,
                initargs=(ENCODE_THREAD_NAME,),
            )
        return _POOLS[key]


class _Ids:
    """One text's tiktoken ids, shaped like HF's Encoding where `Encoded.flat` reads it."""

    __slots__ = ("ids",)

    def __init__(self, ids: list[int]):
        self.ids = ids

    def __len__(self) -> int:
        return len(self.ids)


class FastEncoder:
    """One partition's encoder, in place of the HF tokenizer for `encode.encode_batch`:
    tiktoken (`backend`) once the first batch gave HF's ids, else HF (`reason` says why).
    `hf_documents`: documents that tiktoken's partition still sent to HF (added tokens' texts,
    code points the regex engines class differently)."""

    def __init__(self, tok: Tokenizer, plan: Plan, threads: int | None = None):
        self.tok, self.plan = tok, plan
        self.backend = "tiktoken" if plan.encoding is not None else "hf"
        self.reason = plan.reason
        self.hf_documents = 0
        self.threads = threads or encode_threads()
        self._verified = False
        self._lock = threading.Lock()  # held while the first batch is checked
        self._count_lock = threading.Lock()

    def encode_batch_fast(self, texts: list[str], add_special_tokens: bool = False) -> list:
        """The ids of each text (objects with `.ids`, as HF's Encodings), never with the
        post-processor's special tokens (the stage asks for none)."""
        if add_special_tokens:
            raise ValueError("FastEncoder encodes without special tokens only")
        with self._lock:
            if self.backend == "tiktoken" and not self._verified:
                self._verified = True
                return self._verify(texts)
        return self._hf(texts) if self.backend == "hf" else self._tiktoken(texts)

    encode_batch = encode_batch_fast

    def _hf(self, texts: list[str]) -> list:
        call = getattr(self.tok, "encode_batch_fast", self.tok.encode_batch)
        return call(texts, add_special_tokens=False)

    def _verify(self, texts: list[str]) -> list:
        """HF's encodings of the first batch; tiktoken's must equal them, else the rest of the
        partition goes to HF too."""
        hf = self._hf(texts)
        fast = self._tiktoken(texts)
        for i, (a, b) in enumerate(zip(hf, fast, strict=True)):
            if a.ids != b.ids:
                self.backend = "hf"
                self.reason = f"ids differ from HF on text {i} of the partition's first batch"
                break
        return hf

    def _tiktoken(self, texts: list[str]) -> list:
        k = min(len(texts), 4 * self.threads)  # strided slices: long documents spread out
        out: list = [None] * len(texts)
        for i, ids in enumerate(
            _pool(self.threads).map(self._slice, [texts[i::k] for i in range(k)])
        ):
            out[i::k] = ids
        hf_rows = [i for i, x in enumerate(out) if x is None]
        if hf_rows:
            for i, enc in zip(hf_rows, self._hf([texts[i] for i in hf_rows]), strict=True):
                out[i] = enc
            with self._count_lock:
                self.hf_documents += len(hf_rows)
        return out

    def _slice(self, texts: list[str]) -> list:
        """tiktoken's ids of each text, None for a text HF must encode."""
        # the core's call: Encoding.encode_ordinary would replace a lone surrogate, where
        # HF refuses the text; the core refuses it too, and HF then raises its own error
        encode = self.plan.encoding._core_bpe.encode_ordinary
        to_hf = self.plan.to_hf
        out: list = []
        for t in texts:
            if not isinstance(t, str) or (to_hf is not None and to_hf.search(t)):
                out.append(None)
                continue
            try:
                out.append(_Ids(encode(t)))
            except UnicodeEncodeError:  # a lone surrogate: HF's own error, as without us
                out.append(None)
        return out


def partition_encoder(tok: Tokenizer, backend: str = "auto") -> FastEncoder:
    """The encoder of one partition: tiktoken where `plan_for` finds it exact (and the
    first batch agrees), HF where not or where `backend` is "hf" (config tokenizer.backend)."""
    if backend not in BACKENDS:
        raise ValueError(f"tokenizer backend {backend!r}: use one of {', '.join(BACKENDS)}")
    if backend == "hf":
        return FastEncoder(tok, Plan(None, "tokenizer.backend is hf"))
    return FastEncoder(tok, plan_for(tok))
