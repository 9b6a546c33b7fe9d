"""Config guards: source names that are safe as file names, a checked range for every number,
one line per problem naming the file and the key, and `output:` relative to the config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
import typing
from pathlib import Path

import annotated_types
import pytest
from pydantic import BaseModel

from tokenmill.config import Config, ConfigError, load_config

SOURCE = "{name: web, format: jsonl, paths: ['data/*.jsonl']}"


def _load(tmp_path: Path, text: str, sources: str | None = None):
    path = tmp_path / "c.yaml"
    path.write_text(f"sources: [{sources or SOURCE}]\n{text}\n")
    return load_config(path)


def _refusal(tmp_path: Path, text: str, sources: str | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text, sources)
    prefix = f"{tmp_path / 'c.yaml'}: "
    assert all(line.startswith(prefix) for line in info.value.lines), info.value.lines
    assert str(info.value) == "\n".join(info.value.lines)
    return [line.removeprefix(prefix) for line in info.value.lines]


NAME_RULE = "a source name is letters, digits, _ and - only (it names folders and files)"


@pytest.mark.parametrize(
    ("sources", "line"),
    [
        ("{name: '..', format: jsonl, paths: [x]}", f"sources[0].name: {NAME_RULE} (got '..')"),
        ("{name: a.b, format: jsonl, paths: [x]}", f"sources[0].name: {NAME_RULE} (got 'a.b')"),
        ("{name: a/b, format: jsonl, paths: [x]}", f"sources[0].name: {NAME_RULE} (got 'a/b')"),
        ("{name: '', format: jsonl, paths: [x]}", f"sources[0].name: {NAME_RULE} (got '')"),
        (
            "{name: " + "x" * 65 + ", format: jsonl, paths: [x]}",
            f"sources[0].name: {NAME_RULE} (got '{'x' * 56}...)",
        ),
        (
            "{name: C4, format: c4, paths: [x]}, {name: c4, format: c4, paths: [y]}",
            "sources: source names must be unique (ignoring case); repeated: ['C4', 'c4']",
        ),
    ],
    ids=["dotdot", "dot", "slash", "empty", "too-long", "case"],
)
def test_source_names_are_plain_identifiers(tmp_path, sources, line):
    assert _refusal(tmp_path, "", sources) == [line]


def test_plain_names_with_dashes_and_underscores_load(tmp_path):
    cfg = _load(tmp_path, "", "{name: my-web_2, format: jsonl, paths: [x]}")
    assert cfg.sources[0].name == "my-web_2"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("workers: -3", "workers: must be >= 1 (got -3)"),
        ("workers: 0", "workers: must be >= 1 (got 0)"),
        ("workers: 2.5", "workers: must be a whole number (got 2.5)"),
        ("input: {max_doc_bytes: 0}", "input.max_doc_bytes: must be > 0 (got 0)"),
        ("input: {partition_docs: -1}", "input.partition_docs: must be > 0 (got -1)"),
        # strict types: a quoted number or boolean, or a boolean for a number, is refused
        (
            "input: {partition_docs: '12'}",
            "input.partition_docs: must be a whole number (got '12')",
        ),
        ("langid: {threshold: '0.5'}", "langid.threshold: must be a number (got '0.5')"),
        ("workers: true", "workers: must be a whole number (got true)"),
        ("keep_removed: 'yes'", "keep_removed: must be true or false (got 'yes')"),
        ("output: 5", "output: must be a string (got 5)"),
        ("langid: {threshold: 1.5}", "langid.threshold: must be <= 1.0 (got 1.5)"),
        ("langid: {thresholds: {en: -0.1}}", "langid.thresholds.en: must be >= 0.0 (got -0.1)"),
        ("dedup: {buckets: -1}", "dedup.buckets: must be >= 0 (got -1)"),
        ("dedup: {buckets: 70000}", "dedup.buckets: must be <= 65536 (got 70000)"),
        ("dedup: {minhash: {threshold: 1}}", "dedup.minhash.threshold: must be < 1.0 (got 1)"),
        ("dedup: {minhash: {num_perm: 4}}", "dedup.minhash.num_perm: must be >= 8 (got 4)"),
        ("dedup: {minhash: {ngram: 0}}", "dedup.minhash.ngram: must be >= 1 (got 0)"),
        ("dedup: {minhash: {seed: -1}}", "dedup.minhash.seed: must be >= 0 (got -1)"),
        (
            "dedup: {minhash: {bands: 0, rows: 0}}",
            "dedup.minhash.bands: must be >= 1 (got 0)\ndedup.minhash.rows: must be >= 1 (got 0)",
        ),
        ("dedup: {minhash: {bands: 3}}", "dedup.minhash: set both bands and rows, or neither"),
        (
            "dedup: {minhash: {bands: 30, rows: 9}}",
            "dedup.minhash: bands x rows = 270 must be <= num_perm = 128",
        ),
        (
            "tokenizer: {train: {vocab_size: 100}}",
            "tokenizer.train.vocab_size: must be >= 300 (got 100)",
        ),
        (
            "tokenizer: {train: {min_frequency: -1}}",
            "tokenizer.train.min_frequency: must be >= 0 (got -1)",
        ),
        (
            "tokenizer: {train: {sample_bytes: 0}}",
            "tokenizer.train.sample_bytes: must be > 0 (got 0)",
        ),
        ("tokenizer: {train: {seed: -1}}", "tokenizer.train.seed: must be >= 0 (got -1)"),
        ("shards: {tokens_per_shard: 0}", "shards.tokens_per_shard: must be > 0 (got 0)"),
        (
            "shards: {tokens_per_shard: .inf}",
            "shards.tokens_per_shard: must be a finite number (got Infinity)",
        ),
        ("langid: {treshold: 1}", "langid.treshold: unknown key (did you mean threshold?)"),
        (
            "quality: {filter_sets: {wbe: [basic]}}",
            "quality.filter_sets names no source ['wbe']; sources: web",
        ),
    ],
)
def test_every_number_has_a_range_and_each_refusal_is_one_line(tmp_path, text, line):
    assert _refusal(tmp_path, text) == line.split("\n")


@pytest.mark.parametrize(
    ("weight", "line"),
    [
        ("0", "sources[0].weight: must be > 0.0 (got 0)"),
        (".inf", "sources[0].weight: must be a finite number (got Infinity)"),
        (".nan", "sources[0].weight: must be a finite number (got NaN)"),
    ],
)
def test_a_mixture_weight_is_a_positive_finite_number(tmp_path, weight, line):
    src = "{name: web, format: jsonl, paths: [x], weight: " + weight + "}"
    assert _refusal(tmp_path, "", src) == [line]


def test_the_inclusive_edges_of_every_range_load(tmp_path):
    cfg = _load(
        tmp_path,
        "workers: 1\n"
        "input: {max_doc_bytes: 1, partition_docs: 1}\n"
        "langid: {threshold: 0, thresholds: {en: 1}}\n"
        "dedup: {buckets: 65536, minhash: {num_perm: 8, ngram: 1, seed: 0, bands: 2, rows: 4}}\n"
        "tokenizer: {train: {vocab_size: 300, min_frequency: 0, sample_bytes: 1, seed: 0}}\n"
        "shards: {tokens_per_shard: 1}\n",
    )
    assert (cfg.workers, cfg.dedup.minhash.bands * cfg.dedup.minhash.rows) == (1, 8)


def _ours(model: type) -> bool:
    """A model of tokenmill's own (the config's, and each rule's parameters, which live in the
    rule's module), not a library's."""
    return model.__module__ == "tokenmill" or model.__module__.startswith("tokenmill.")


def _numbers(model: type[BaseModel], prefix: str = ""):
    """(key, FieldInfo-or-metadata) of every int / float in the config's own models."""
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        ann = field.annotation
        unpack = typing.get_origin(ann) in (typing.Union, types.UnionType, list)
        args = [a for a in typing.get_args(ann) if a is not type(None)] if unpack else [ann]
        for a in args:
            if isinstance(a, type) and issubclass(a, BaseModel):
                if _ours(a):
                    yield from _numbers(a, key + ".")
            elif a in (int, float):
                yield key, field.metadata
            elif typing.get_origin(a) is dict:
                value = typing.get_args(a)[1]
                if typing.get_origin(value) is typing.Annotated:
                    yield key + ".*", [m for f in value.__metadata__ for m in f.metadata]
                elif value in (int, float):
                    yield key + ".*", []
                elif isinstance(value, type) and issubclass(value, BaseModel):
                    if _ours(value):
                        yield from _numbers(value, key + ".*.")


def test_every_number_in_the_config_models_has_a_lower_bound():
    keys = dict(_numbers(Config))
    assert "workers" in keys and "langid.thresholds.*" in keys and "dedup.minhash.rows" in keys
    # the rule sets' parameters too, a per-language override's included
    assert "quality.basic.max_symbol_fraction" in keys
    assert "quality.gopher_repetition.top_ngram_max_char_fraction.*" in keys
    assert "quality.bigscience.overrides.*.max_perplexity" in keys
    unbounded = [
        k
        for k, meta in keys.items()
        if not any(isinstance(m, annotated_types.Ge | annotated_types.Gt) for m in meta)
    ]
    assert unbounded == []


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (
            "quality: {basic: {max_symbol_fraction: 2}}",
            "quality.basic.max_symbol_fraction: must be <= 1.0 (got 2)",
        ),
        ("quality: {basic: {min_chars: -1}}", "quality.basic.min_chars: must be >= 0 (got -1)"),
        ("quality: {c4: {max_word_length: 0}}", "quality.c4.max_word_length: must be > 0 (got 0)"),
        (
            "quality: {gopher_quality: {min_alpha_words_fraction: 1.5}}",
            "quality.gopher_quality.min_alpha_words_fraction: must be <= 1.0 (got 1.5)",
        ),
        (
            "quality: {gopher_quality: {min_mean_word_length: 0}}",
            "quality.gopher_quality.min_mean_word_length: must be > 0.0 (got 0)",
        ),
        (
            "quality: {gopher_quality: {min_stop_words: -2}}",
            "quality.gopher_quality.min_stop_words: must be >= 0 (got -2)",
        ),
        (
            "quality: {gopher_repetition: {max_duplicate_line_fraction: -0.1}}",
            "quality.gopher_repetition.max_duplicate_line_fraction: must be >= 0.0 (got -0.1)",
        ),
        (
            "quality: {gopher_repetition: {top_ngram_max_char_fraction: {2: 1.2}}}",
            "quality.gopher_repetition.top_ngram_max_char_fraction[2]: must be <= 1.0 (got 1.2)",
        ),
        (
            "quality: {gopher_repetition: {duplicate_ngram_max_char_fraction: {1: 0.1}}}",
            "quality.gopher_repetition.duplicate_ngram_max_char_fraction[1]: must be >= 2 (got 1)",
        ),
        (
            "quality: {bigscience: {overrides: {en: {max_word_rep: 3}}}}",
            "quality.bigscience.overrides.en.max_word_rep: must be <= 1.0 (got 3)",
        ),
        (
            "quality: {bigscience: {overrides: {default: {max_perplexity: 0}}}}",
            "quality.bigscience.overrides.default.max_perplexity: must be > 0.0 (got 0)",
        ),
        (
            "quality: {bigscience: {overrides: {en: {min_lang_id: .nan}}}}",
            "quality.bigscience.overrides.en.min_lang_id: must be a finite number (got NaN)",
        ),
        (
            "quality: {gopher_quality: {max_symbol_word_ratio: .inf}}",
            "quality.gopher_quality.max_symbol_word_ratio: must be a finite number (got Infinity)",
        ),
    ],
)
def test_a_rule_set_number_out_of_range_is_one_line_naming_its_key(tmp_path, text, line):
    assert _refusal(tmp_path, text) == [line]


def test_the_rule_sets_defaults_and_published_values_pass_their_ranges():
    """Pydantic does not check defaults: each model is validated with its own defaults given
    explicitly, and BigScience's published per-language values as overrides."""
    from dataclasses import asdict

    from tokenmill.filters import registry
    from tokenmill.filters.bigscience import PUBLISHED

    for model in (
        registry.BasicQualityConfig,
        registry.C4Rules,
        registry.GopherQualityRules,
        registry.GopherRepetitionRules,
        registry.BigScienceRules,
        registry.QualityConfig,
    ):
        defaults = model().model_dump()
        assert model.model_validate(defaults).model_dump() == defaults, model.__name__
    keys = registry.BigScienceOverride.model_fields
    for lang, params in PUBLISHED.items():
        values = {k: v for k, v in asdict(params).items() if k in keys}
        assert set(values) == set(keys), lang
        over = registry.BigScienceOverride.model_validate(values)
        assert over.model_dump() == values, lang


def test_yaml_errors_are_one_line_with_the_position(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("sources: [\n  {name: web, format: jsonl\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (line,) = info.value.lines
    assert line.startswith(f"{path}: not valid YAML (line 3, column 1): ")


def test_a_key_given_twice_is_refused_with_its_line(tmp_path):
    # PyYAML keeps the last of two equal keys: the first `quality:` would vanish unseen
    path = tmp_path / "c.yaml"
    path.write_text(
        f"sources: [{SOURCE}]\nquality: {{rules: [basic]}}\noutput: o\nquality: {{rules: []}}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (line,) = info.value.lines
    assert line == f"{path}: not valid YAML (line 4, column 1): key 'quality' given twice"


def test_relative_output_is_resolved_against_the_config_folder(tmp_path, monkeypatch):
    proj, elsewhere = tmp_path / "proj", tmp_path / "elsewhere"
    proj.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    (proj / "a.yaml").write_text(f"output: built\nsources: [{SOURCE}]\n")
    (proj / "b.yaml").write_text(f"sources: [{SOURCE}]\n")  # the default, `out`
    (proj / "c.yaml").write_text(f"output: {tmp_path / 'abs'}\nsources: [{SOURCE}]\n")
    assert load_config(Path("../proj/a.yaml")).output == str(proj / "built")
    assert load_config(proj / "b.yaml").output == str(proj / "out")
    assert load_config(proj / "c.yaml").output == str(tmp_path / "abs")
    # the bundled sample is installed with the package: its `out` is the working directory's
    assert load_config().output == "out"


def _env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}


def test_the_cli_refuses_a_bad_number_in_one_line_and_agrees_with_the_config(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"workers: -3\nsources: [{SOURCE}]\n")
    cmd = [sys.executable, "-m", "tokenmill", "prepare"]
    proc = subprocess.run(
        [*cmd, str(cfg), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=120,  # the unchecked value used to hang at "(0 Dask workers)"
        env=_env(),
    )
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert lines[0] == f"error: {cfg}: workers: must be >= 1 (got -3)"
    assert [line.split(":")[0] for line in lines[1:]] == ["hint"]
    assert not (tmp_path / "o").exists()
    # the command line refuses the same numbers
    cfg.write_text(f"sources: [{SOURCE}]\n")
    proc = subprocess.run(
        [*cmd, str(cfg), "--workers", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**_env(), "COLUMNS": "300"},  # typer's error box on one line
    )
    assert proc.returncode == 2
    assert "Invalid value for '--workers': Input should be greater than or equal to 1" in (
        proc.stderr
    )


@pytest.mark.distributed
def test_a_run_writes_to_the_output_named_in_its_config_wherever_it_is_started(tmp_path):
    from tmfixtures import sample_docs

    proj, elsewhere = tmp_path / "proj", tmp_path / "elsewhere"
    (proj / "data").mkdir(parents=True)
    elsewhere.mkdir()
    docs = sample_docs("c4")[:40]
    (proj / "data" / "a.jsonl").write_text(
        "".join(json.dumps({"text": d["text"]}) + "\n" for d in docs)
    )
    (proj / "c.yaml").write_text(
        f"output: built\nsources: [{SOURCE}]\n"
        "tokenizer: {train: {vocab_size: 400}}\ndedup: {minhash: {enabled: false}}\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "tokenmill", "prepare", "../proj/c.yaml", "-q", "--workers", "1"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((proj / "built" / "stats.json").read_text())
    assert stats["sources"]["web"]["documents_in"] == 40
    assert os.listdir(elsewhere) == []
