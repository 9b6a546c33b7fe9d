"""tiktoken in place of HF tokenizers (tokenmill.tokenize.fastbpe): the same ids as HF's own
`encode_batch` on real multilingual text and on hard text, for every byte-level BPE form it
takes; HF, with the reason, for every tokenizer it cannot reproduce (a constructed merge
order shows why); the first batch's check; the tokenize stage's files byte-identical either
way. (A whole `prepare` run both ways: tests/pipelines/test_prepare_backends.py.)"""

from __future__ import annotations

import json
import random
import re
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tiktoken
import tokenizers
from tmfixtures import sample_docs
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
from tokenizers.implementations import ByteLevelBPETokenizer

from tokenmill.tokenize import fastbpe
from tokenmill.tokenize.bpe import train_bpe
from tokenmill.tokenize.encode import encode_documents
from tokenmill.tokenize.fastbpe import (
    CHECKED_ENGINES,
    GPT2_PATTERN,
    FastEncoder,
    Plan,
    byte_alphabet,
    encode_threads,
    partition_encoder,
    plan_for,
    probe_engines,
)

pytestmark = pytest.mark.timeout(120)

EOD, PAD = "<|endoftext|>", "<|pad|>"

# what a web corpus holds that a tokenizer may treat apart: scripts without spaces, emoji
# sequences, white space of every kind and length, digits of several scripts, contractions,
# marks, controls, code points outside the BMP, of recent Unicode versions, unassigned, private
HARD = [
    "",
    " ",
    "\n",
    "a",
    "日本語のテキストと English が混ざった文。カタカナ、ひらがな、漢字。",
    "中文文本，没有空格。第二句话！“引号”（括号）",
    "한국어 텍스트와 숫자 123",
    "ภาษาไทยไม่มีช่องว่างระหว่างคำ",
    "العربية مع أرقام ١٢٣٤ و 5678",
    "हिन्दी पाठ और ग्रीक ελληνικά και русский текст",
    "emoji 👍🏽 👨‍👩‍👧‍👦 family 🇩🇪🇫🇷 flags ❤️‍🔥 ok👌",
    "a" + " " * 100 + "b",
    "tabs\t\t\tand\n\n\n\nnewlines   \r\n\r\n  end   ",
    " " * 1000,
    "\n" * 500 + "x",
    "non\u00a0breaking\u00a0\u00a0spaces\u2003em\u3000ideographic\u3000\u3000全角",
    "digits 1234567890123456 3.14159 ٣٤٥ १२३ １２３ ⅷ ² ½ 0x1F",
    "don't I'LL we've they're it's 's 'd 'm 'll 're 've 't",
    "curly ’s quotes “like” ‘this’",
    "combining e\u0301 a\u0308 o\u0302\u0323 Z\u0351\u0352\u0353",
    "controls \x00\x01\x02\x7f\x1b[0m",
    "\ufeffbyte order mark, zero\u200bwidth\u200djoiner",
    "private \ue000\uf8ff \U000f0000 \U0010fffd",
    "unassigned \u0378 \U0003fffe \U000e0000",
    "outside the BMP 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𐍈𐌰 𠀀𪚥 𝟘𝟙𝟚",
    "recent Unicode: \U0002ebf0\U0002ebf1 (CJK I) \U000105c0\U000105c1 (Todhri) "
    "\U00010d40\U00010d50 (Garay) \U0001ccf0 (outlined digit)",
    "mixed\u0301 scripts: Latin, Кириллица, Ελληνικά, עברית, 한글, かな mixed123abc",
    "code:\n    def f(x):\n        return x ** 2  # comment\n\n\tif (a && b) { c++; }",
    "before " + EOD + " after",
    EOD,
    PAD + PAD,
    "partial <|endof text and <|pad| and |>",
    "x" + EOD + "y" + PAD + "z",
]


def _sample() -> list[str]:
    """The bundled sample: C4 and the Pile (English, man pages' roff included) and OSCAR in
    its eleven languages (de, es, fr, id, it, ja, nl, pl, pt, ru, zh)."""
    return (
        [r["text"] for r in sample_docs("c4")]
        + [r["text"] for r in sample_docs("pile")]
        + [r["content"] for r in sample_docs("oscar")]
    )


def _training_text() -> list[str]:
    s = _sample()
    return s[:300] + s[-700:]  # English and every OSCAR language


def _split_form(tok: Tokenizer) -> Tokenizer:
    """The same tokenizer written as a GPT-2 Split then a ByteLevel without its own regex."""
    spec = json.loads(tok.to_str())
    spec["pre_tokenizer"] = {
        "type": "Sequence",
        "pretokenizers": [
            {
                "type": "Split",
                "pattern": {"Regex": GPT2_PATTERN},
                "behavior": "Isolated",
                "invert": False,
            },
            {
                "type": "ByteLevel",
                "add_prefix_space": False,
                "trim_offsets": True,
                "use_regex": False,
            },
        ],
    }
    return Tokenizer.from_str(json.dumps(spec))


@pytest.fixture(scope="module")
def trained() -> Tokenizer:
    """tokenmill's own: train_bpe on English and the eleven OSCAR languages."""
    return train_bpe(_training_text(), 4000, [EOD, PAD])


@pytest.fixture(scope="module")
def gpt2_style() -> Tokenizer:
    """A GPT-2-style tokenizer from tokenizers' ByteLevelBPETokenizer (its post-processor
    and decoder too), trained here: GPT-2's own tokenizer.json is not available offline."""
    t = ByteLevelBPETokenizer()
    t.train_from_iterator(_training_text(), vocab_size=3000, special_tokens=[EOD])
    return Tokenizer.from_str(t.to_str())


# the trained tokenizer in the default suite; the GPT-2-style and Split forms (9 s each on
# 2 cores) in the slow one
@pytest.fixture(
    scope="module",
    params=[
        "trained",
        pytest.param("gpt2_style", marks=pytest.mark.slow),
        pytest.param("split_form", marks=pytest.mark.slow),
    ],
)
def byte_level(request) -> Tokenizer:
    if request.param == "split_form":
        return _split_form(request.getfixturevalue("trained"))
    return request.getfixturevalue(request.param)


def _hf_ids(tok: Tokenizer, texts: list[str]) -> list[list[int]]:
    return [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]


def _with_added(text: str) -> bool:
    return EOD in text or PAD in text


def test_ids_equal_hf_on_the_bundled_sample_and_hard_text(byte_level):
    texts = _sample() + HARD
    plan = plan_for(byte_level)
    assert plan.reason is None and plan.encoding is not None
    enc = FastEncoder(byte_level, plan)
    first = enc.encode_batch_fast(texts[:100])  # the first batch: checked against HF
    got = enc.encode_batch_fast(texts)
    assert (enc.backend, enc.reason) == ("tiktoken", None)
    want = _hf_ids(byte_level, texts)
    assert [e.ids for e in first] == want[:100]
    assert [e.ids for e in got] == want
    # HF had only the documents holding an added token's text (after the first batch)
    assert plan.added == tuple(
        sorted(
            byte_level.get_added_tokens_decoder()[i].content
            for i in byte_level.get_added_tokens_decoder()
        )
    )
    assert enc.hf_documents == sum(any(a in t for a in plan.added) for t in texts)
    assert sum(map(_with_added, texts)) == 4  # HARD's; the sample has none


def test_tiktoken_alone_gives_the_ids_of_every_document_without_added_token_text(trained):
    """The same comparison without the wrapper: tiktoken's own encoder of `plan_for`."""
    texts = [t for t in _sample() + HARD if not _with_added(t)]
    encoding = plan_for(trained).encoding
    assert encoding.encode_ordinary_batch(texts, num_threads=2) == _hf_ids(trained, texts)


def test_added_token_text_inside_a_document_becomes_its_id_as_in_hf(trained):
    enc = partition_encoder(trained)
    texts = ["before " + EOD + " after", "no token here", "x" + PAD + PAD + "y"]
    enc.encode_batch_fast(["warm up"])
    got = [e.ids for e in enc.encode_batch_fast(texts)]
    eod, pad = trained.token_to_id(EOD), trained.token_to_id(PAD)
    assert eod in got[0] and got[2].count(pad) == 2
    assert got == _hf_ids(trained, texts)
    assert enc.backend == "tiktoken" and enc.hf_documents == 2


def test_the_stage_path_with_long_documents_cut_into_pieces(trained):
    """encode_documents (the stage's call) through the encoder: pieces of long documents,
    empty ones, the end-of-document id, as with the HF tokenizer."""
    texts = _sample()[:200] + ["\n".join(_sample()[:30]), "", "x" * 2500]
    eod = trained.token_to_id(EOD)
    enc = partition_encoder(trained)
    for _ in range(2):  # the first batch (checked) and one after it
        flat, sizes = encode_documents(enc, texts, eod, np.dtype(np.uint16), max_piece_chars=700)
        want_flat, want_sizes = encode_documents(
            trained, texts, eod, np.dtype(np.uint16), max_piece_chars=700
        )
        assert np.array_equal(flat, want_flat) and np.array_equal(sizes, want_sizes)
    assert enc.backend == "tiktoken"


def test_after_the_first_batch_tiktoken_encodes_and_hf_is_not_called(trained):
    calls: list[int] = []

    class Counting:  # the real tokenizer, counting the texts HF encodes
        def encode_batch_fast(self, texts, add_special_tokens):
            calls.append(len(texts))
            return trained.encode_batch_fast(texts, add_special_tokens=add_special_tokens)

        encode_batch = encode_batch_fast

    enc = FastEncoder(Counting(), plan_for(trained))
    texts = [t for t in _sample()[:300] if not _with_added(t)]
    enc.encode_batch_fast(texts[:50])
    got = enc.encode_batch_fast(texts[50:])
    assert calls == [50]
    assert [e.ids for e in got] == _hf_ids(trained, texts[50:])


def test_a_first_batch_that_differs_sends_the_partition_to_hf(trained, gpt2_style):
    """The check on each partition's first batch: an encoding that is not the tokenizer's
    (here the other tokenizer's) is caught there, and HF encodes the rest."""
    wrong = Plan(plan_for(gpt2_style).encoding, None, (EOD, PAD))
    enc = FastEncoder(trained, wrong)
    texts = _sample()[:40]
    first = enc.encode_batch_fast(texts)
    assert enc.backend == "hf"
    assert enc.reason == "ids differ from HF on text 0 of the partition's first batch"
    assert [e.ids for e in first] == _hf_ids(trained, texts)
    assert [e.ids for e in enc.encode_batch_fast(texts[::-1])] == _hf_ids(trained, texts[::-1])


def test_code_points_the_engines_class_apart_go_to_hf(trained):
    """Where the two regex engines disagree on a code point's class, the documents holding
    it go to HF (here a made-up disagreement on é and one CJK ideograph)."""
    plan = plan_for(trained)
    enc = FastEncoder(trained, Plan(plan.encoding, None, plan.added, (ord("é"), 0x4E2D)))
    texts = ["café", "plain ascii", "中文", "naïve", "é", "", "x" + EOD]
    enc.encode_batch_fast(["first"])
    assert [e.ids for e in enc.encode_batch_fast(texts)] == _hf_ids(trained, texts)
    assert enc.hf_documents == 4


def test_class_pattern_holds_exactly_its_code_points():
    cps = (0x41, 0x42, 0x43, 0x5D, 0x2D, 0x5C, 0x5E, 0x10FFFF)
    pat = re.compile(fastbpe._class_pattern(tuple(sorted(cps))))
    assert [c for c in range(0x110000) if pat.fullmatch(chr(c))] == sorted(cps)
    assert fastbpe._class_pattern(()) == ""


def test_the_search_for_added_tokens_finds_exactly_their_texts():
    """A trie of the added tokens' texts, one search a document, tens of thousands of them
    included (a tokenizer may add 70,000): the same verdict as looking for each text."""
    rng = random.Random(0)
    words = ("<|endoftext|>", "<s>", "</s>", "<s>x", "[PAD]", "a", "é", "\\d+", "<extra_1>")
    words += tuple(f"<extra_{i}>" for i in range(2, 5000))
    pat = Plan(None, None, words).to_hf
    alphabet = "<>/|[]()s\\d+aéx_ 0123456789extra"
    texts = [
        "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12))) for _ in range(3000)
    ]
    texts += list(words[:9]) + ["<extra_4999>", "<extra_5000>", "<extra_0>", "<extra_"]
    assert [bool(pat.search(t)) for t in texts] == [any(w in t for w in words) for t in texts]
    assert Plan(None, None, ()).to_hf is None


@pytest.mark.slow  # every code point through both regex engines: ~10 s
def test_the_engine_probe_finds_what_checked_engines_records():
    """The probe over every code point: HF's Oniguruma and tiktoken's fancy-regex put each
    in the same class among \\p{L}, \\p{N}, \\s, except the code points recorded."""
    key = (tokenizers.__version__, tiktoken.__version__)
    found = probe_engines()
    assert isinstance(found, tuple)
    if key in CHECKED_ENGINES:
        assert found == CHECKED_ENGINES[key]
    assert fastbpe.engine_differences() == found


# -- what tiktoken cannot reproduce: HF, with the reason -----------------------------------


def _alphabet_vocab() -> dict[str, int]:
    return {c: b for b, c in byte_alphabet().items()}


def _bpe(vocab: dict[str, int], merges: list[tuple[str, str]]) -> Tokenizer:
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    return tok


def _naive_tiktoken(tok: Tokenizer) -> tiktoken.Encoding:
    """tiktoken on the whole vocabulary as ranks, without fastbpe's checks."""
    to_byte = {c: b for b, c in byte_alphabet().items()}
    ranks = {bytes(to_byte[c] for c in s): i for s, i in tok.get_vocab().items()}
    return tiktoken.Encoding(
        "naive", pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens={}
    )


def test_a_token_reachable_only_by_another_merge_path_falls_back():
    """abc is listed as ab + c, but bc merges before ab: HF's merges leave [a, bc] (no merge
    a + bc), while tiktoken ranks the pair a, bc by abc's id and merges it (and takes a piece
    that is a token whole). Check (C) sees that HF never makes abc from its bytes."""
    vocab = {**_alphabet_vocab(), "bc": 256, "ab": 257, "abc": 258}
    tok = _bpe(vocab, [("b", "c"), ("a", "b"), ("ab", "c")])
    assert _hf_ids(tok, ["abc", "xabc"]) == [[97, 256], [120, 97, 256]]
    assert _naive_tiktoken(tok).encode_ordinary_batch(["abc", "xabc"]) == [[258], [120, 258]]
    plan = plan_for(tok)
    assert plan.encoding is None
    assert plan.reason == "token 'abc' is not what HF's merges make of its bytes ([97, 256])"
    enc = partition_encoder(tok)
    assert enc.backend == "hf" and enc.reason == plan.reason
    assert [e.ids for e in enc.encode_batch_fast(["abc", "xabc"])] == [[97, 256], [120, 97, 256]]


def test_ids_out_of_merge_order_fall_back():
    """ab merges first in HF's list but has the higher id: tiktoken would merge bc first."""
    vocab = {**_alphabet_vocab(), "bc": 256, "ab": 257}
    tok = _bpe(vocab, [("a", "b"), ("b", "c")])
    assert _hf_ids(tok, ["abc"]) == [[257, 99]]
    assert _naive_tiktoken(tok).encode_ordinary("abc") == [97, 256]
    assert plan_for(tok).reason == (
        "merge order: 'bc' (id 256) is merged after a token with a higher id: "
        "tiktoken ranks merges by id"
    )


def test_two_merges_making_one_token_fall_back():
    vocab = {**_alphabet_vocab(), "ab": 256, "bc": 257, "abc": 258}
    tok = _bpe(vocab, [("a", "b"), ("b", "c"), ("ab", "c"), ("a", "bc")])
    assert plan_for(tok).reason.startswith("merge order: 'abc' (id 258)")


def test_a_token_no_merge_makes_is_left_out_as_hf_never_produces_it():
    """ "cab" is in the vocabulary but no merge makes it: HF never outputs it, tiktoken
    (without it in its ranks) neither; with ignore_merges HF would, and that falls back."""
    vocab = {**_alphabet_vocab(), "ab": 256, "cab": 257}
    tok = _bpe(vocab, [("a", "b")])
    plan = plan_for(tok)
    assert plan.reason is None and b"cab" not in plan.encoding._mergeable_ranks
    assert [e.ids for e in FastEncoder(tok, plan).encode_batch_fast(["cab"])] == [[99, 256]]
    spec = json.loads(tok.to_str())
    spec["model"]["ignore_merges"] = True
    assert plan_for(Tokenizer.from_str(json.dumps(spec))).reason == (
        "ignore_merges with tokens no merge makes"
    )


def _edited(tok: Tokenizer, edit) -> Tokenizer:
    spec = json.loads(tok.to_str())
    edit(spec)
    return Tokenizer.from_str(json.dumps(spec))


def _set(path: str, value):
    def edit(spec):
        *parents, last = path.split(".")
        node = spec
        for p in parents:
            node = node[int(p) if p.isdigit() else p]
        node[last] = value

    return edit


def _word_level(texts: list[str], model: str) -> Tokenizer:
    if model == "WordPiece":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        trainer = trainers.WordPieceTrainer(vocab_size=500, special_tokens=["[UNK]", EOD])
    else:
        tok = Tokenizer(models.Unigram())
        trainer = trainers.UnigramTrainer(vocab_size=500, special_tokens=[EOD], unk_token=EOD)
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


UNSUPPORTED = {
    "normalizer": (
        lambda t: _edited(t, _set("normalizer", {"type": "NFKC"})),
        "normalizer NFKC: tiktoken encodes the text as it is",
    ),
    "prefix space": (
        lambda t: _edited(t, _set("pre_tokenizer.add_prefix_space", True)),
        "pre-tokenizer ByteLevel adds a prefix space",
    ),
    "no regex": (
        lambda t: _edited(t, _set("pre_tokenizer.use_regex", False)),
        "pre-tokenizer ByteLevel: use_regex off",
    ),
    "whitespace": (
        lambda t: _edited(t, _set("pre_tokenizer", {"type": "Whitespace"})),
        "pre-tokenizer ['Whitespace']: not GPT-2's byte-level split",
    ),
    "other split": (
        lambda t: _edited(
            _split_form(t),
            _set(
                "pre_tokenizer.pretokenizers",
                [
                    {
                        "type": "Split",
                        "pattern": {"Regex": r"\s+"},
                        "behavior": "Isolated",
                        "invert": False,
                    },
                    {
                        "type": "ByteLevel",
                        "add_prefix_space": False,
                        "trim_offsets": True,
                        "use_regex": False,
                    },
                ],
            ),
        ),
        "pre-tokenizer Split: its pattern is not GPT-2's",
    ),
    "split then regex": (
        lambda t: _edited(_split_form(t), _set("pre_tokenizer.pretokenizers.1.use_regex", True)),
        "pre-tokenizer ByteLevel: use_regex on after Split",
    ),
    "dropout": (
        lambda t: _edited(t, _set("model.dropout", 0.1)),
        "BPE dropout: not deterministic",
    ),
    "suffix": (
        lambda t: _edited(t, _set("model.end_of_word_suffix", "</w>")),
        "BPE end_of_word_suffix '</w>'",
    ),
    "truncation": (
        lambda t: _edited(
            t,
            _set(
                "truncation",
                {"direction": "Right", "max_length": 512, "strategy": "LongestFirst", "stride": 0},
            ),
        ),
        "the tokenizer has truncation set",
    ),
    "missing bytes": (
        lambda t: train_bpe_without_alphabet(),
        "the vocabulary lacks 4 of the 256 bytes",
    ),
    "wordpiece": (
        lambda t: _word_level(_training_text()[:200], "WordPiece"),
        "model WordPiece: not BPE",
    ),
    "unigram": (
        lambda t: _word_level(_training_text()[:200], "Unigram"),
        "model Unigram: not BPE",
    ),
}


def train_bpe_without_alphabet() -> Tokenizer:
    """A byte-level BPE trained on text without # $ % & and an initial alphabet without them:
    its vocabulary lacks those four bytes."""
    texts = [r["text"].translate({ord(c): None for c in "#$%&"}) for r in sample_docs("c4")[:50]]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    alphabet = [c for c in pre_tokenizers.ByteLevel.alphabet() if c not in "#$%&"]
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        initial_alphabet=alphabet,
        limit_alphabet=len(alphabet),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


@pytest.mark.parametrize("case", sorted(UNSUPPORTED))
def test_a_tokenizer_tiktoken_cannot_reproduce_falls_back_with_the_reason(trained, case):
    make, reason = UNSUPPORTED[case]
    tok = make(trained)
    assert plan_for(tok) == Plan(None, reason)
    enc = partition_encoder(tok)
    assert (enc.backend, enc.reason) == ("hf", reason)
    texts = _sample()[:20] + HARD[:12]
    got = [e.ids for e in enc.encode_batch_fast(texts)]
    if case != "dropout":  # (random merges: no two HF runs agree)
        assert got == _hf_ids(tok, texts)
    assert enc.backend == "hf" and enc.hf_documents == 0


def test_a_noop_normalizer_is_no_normalizer(trained):
    tok = _edited(trained, _set("normalizer", {"type": "Sequence", "normalizers": []}))
    assert plan_for(tok).reason is None
    tok = Tokenizer.from_str(trained.to_str())
    tok.normalizer = normalizers.Sequence([normalizers.Lowercase()])
    assert plan_for(tok).reason == "normalizer Sequence: tiktoken encodes the text as it is"


def test_without_tiktoken_installed_hf_encodes(trained, monkeypatch):
    monkeypatch.setitem(sys.modules, "tiktoken", None)  # import tiktoken raises ImportError
    tok = Tokenizer.from_str(trained.to_str())  # a new object: plan_for caches per tokenizer
    assert plan_for(tok) == Plan(None, "tiktoken is not installed (pip install tiktoken)")


def test_the_backend_setting(trained):
    enc = partition_encoder(trained, "hf")
    assert (enc.backend, enc.reason) == ("hf", "tokenizer.backend is hf")
    assert partition_encoder(trained, "auto").backend == "tiktoken"
    with pytest.raises(ValueError, match="tokenizer backend 'fast': use one of auto, hf"):
        partition_encoder(trained, "fast")
    with pytest.raises(ValueError, match="without special tokens"):
        enc.encode_batch_fast(["x"], add_special_tokens=True)


def test_lone_surrogates_are_refused_as_hf_refuses_them(trained):
    """(Arrow strings are valid UTF-8: the stage never sees one.) tiktoken's public call
    would replace it; the encoder leaves the text to HF, which raises its own error."""
    enc = partition_encoder(trained)
    enc.encode_batch_fast(["first"])
    for tokenizer in (trained, enc):
        with pytest.raises(TypeError):
            tokenizer.encode_batch_fast(["ok", "bad \ud800 surrogate"], add_special_tokens=False)


def test_threads_follow_hf_settings(monkeypatch):
    monkeypatch.setenv("RAYON_NUM_THREADS", "3")
    monkeypatch.delenv("TOKENIZERS_PARALLELISM", raising=False)
    assert encode_threads() == 3
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    assert encode_threads() == 1
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "true")
    monkeypatch.delenv("RAYON_NUM_THREADS")
    import os

    assert encode_threads() == os.cpu_count()


# -- the tokenize stage: the same files with either backend --------------------------------


def test_the_stage_writes_identical_files_with_tiktoken_and_with_hf(trained, tmp_path):
    from tokenmill.pipelines.stages import tokenize_partition

    trained.save(str(tmp_path / "tokenizer.json"))
    texts = _sample()[::3] + HARD  # 1024-document batches: the first is checked, two follow
    table = pa.table(
        {
            "id": [f"d{i}" for i in range(len(texts))],
            "url": [f"u{i}" for i in range(len(texts))],
            "lang": ["en" if i % 3 else "ja" for i in range(len(texts))],
            "text": texts,
        }
    )
    pq.write_table(table, tmp_path / "docs.parquet")
    counts = {}
    for backend in ("auto", "hf"):
        counts[backend] = tokenize_partition(
            "p",
            0,
            str(tmp_path / "docs.parquet"),
            [],
            [],
            str(tmp_path / "tokenizer.json"),
            EOD,
            str(tmp_path / backend / "s"),
            split_languages=True,
            backend=backend,
        )
    files = sorted(p.name for p in (tmp_path / "hf").iterdir())
    assert len(files) == 6  # .bin, .sizes.npy, .docs.parquet per language
    for name in files:
        assert (tmp_path / "auto" / name).read_bytes() == (tmp_path / "hf" / name).read_bytes()
    added = sum(map(_with_added, texts))
    assert {
        k: (c["encoder"], c["encoder_reason"], c["encoder_hf_documents"]) for k, c in counts.items()
    } == {
        "auto": ("tiktoken", None, added),
        "hf": ("hf", "tokenizer.backend is hf", 0),
    }
    strip = ("encoder", "encoder_reason", "encoder_hf_documents", "wall_s")
    assert {k: v for k, v in counts["auto"].items() if k not in strip} == {
        k: v for k, v in counts["hf"].items() if k not in strip
    }
