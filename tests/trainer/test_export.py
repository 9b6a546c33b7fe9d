"""`tokenmill export`: a checkpoint as a Hugging Face folder that transformers loads, with the
same logits as tokenmill's GPT (fp32, within 1e-4) and a tokenizer that encodes as the run's.

Tiny configs with random, sharp weights (tests/tmcheckpoints.py) cover both targets, head
counts that are not powers of two, an FFN width other than 4h and the padded vocabulary; a real
`tokenmill train` run (bf16, ZeRO-1: the defaults) covers the trainer's checkpoint layout and
the fp32 master weights. The slow tests export ZeRO-0 bf16 and two-rank ZeRO-3 checkpoints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from launch import env, train
from tmcheckpoints import SPECIALS, real_texts, sharp_gpt, train_tokenizer, write_checkpoint

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tokenmill.trainer.export import ExportError, export, target_for  # noqa: E402
from tokenmill.trainer.model import GPTConfig  # noqa: E402
from tokenmill.trainer.weights import fp32_state_dict, load_gpt, open_checkpoint  # noqa: E402

TOL = 1e-4


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> Path:
    return train_tokenizer(tmp_path_factory.mktemp("tok") / "tokenizer.json")


def _vocab(tokenizer: Path) -> int:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(tokenizer)).get_vocab_size()


def _hf_logits(folder: Path, tokens: torch.Tensor) -> torch.Tensor:
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    with torch.no_grad():
        return model.eval()(tokens).logits


def _random_tokens(cfg: GPTConfig, batch: int = 3, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, cfg.vocab_size, (batch, cfg.seq_len), generator=g)


BLOOM = dict(position="alibi", activation="gelu", embed_ln=True)
GPT2 = dict(position="learned", activation="gelu", embed_ln=False)


@pytest.mark.parametrize(
    "switches, shape, cls",
    [
        (BLOOM, dict(n_layer=2, n_embd=64, n_head=4), "BloomForCausalLM"),
        (BLOOM, dict(n_layer=3, n_embd=48, n_head=6), "BloomForCausalLM"),  # 6: not 2^k
        (GPT2, dict(n_layer=2, n_embd=64, n_head=4), "GPT2LMHeadModel"),
        (GPT2, dict(n_layer=2, n_embd=48, n_head=3, ffn_hidden=80), "GPT2LMHeadModel"),
    ],
)
def test_exported_logits_equal_tokenmills(tmp_path, tokenizer, switches, shape, cls):
    cfg = GPTConfig(**shape, **switches, seq_len=40, vocab_size=_vocab(tokenizer))
    assert cfg.padded_vocab == 512 and cfg.vocab_size < 512  # padded rows are exported too
    ours = sharp_gpt(cfg)
    write_checkpoint(tmp_path / "save", ours, tokenizer)
    done = export(tmp_path / "save", tmp_path / "hf")
    assert done.architecture == cls and done.step == 7
    assert done.parameters == sum(p.numel() for p in ours.parameters())

    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32)
    assert type(hf).__name__ == cls
    assert hf.config.vocab_size == cfg.padded_vocab
    assert hf.lm_head.weight.data_ptr() == hf.get_input_embeddings().weight.data_ptr()  # tied
    tokens = _random_tokens(cfg)
    with torch.no_grad():
        expected = ours(tokens)
        got = hf.eval()(tokens).logits
    assert got.shape == expected.shape == (3, cfg.seq_len, cfg.padded_vocab)
    assert expected.std() > 5  # sharp: a wrong mapping moves logits by far more than TOL
    assert (got - expected).abs().max().item() < TOL
    # a shorter sequence and a single one (ALiBi and positions are per length)
    with torch.no_grad():
        assert (hf(tokens[:1, :9]).logits - ours(tokens[:1, :9])).abs().max().item() < TOL
    files = sorted(p.name for p in (tmp_path / "hf").iterdir())
    assert "model.safetensors" in files and "config.json" in files and "tokenizer.json" in files


def test_bloom_qkv_is_interleaved_per_head(tmp_path, tokenizer):
    """Bloom's query_key_value rows: head i's q, k, v together, not [q; k; v]."""
    from tokenmill.trainer.export import bloom_weights

    cfg = GPTConfig(n_layer=1, n_embd=12, n_head=3, vocab_size=_vocab(tokenizer), **BLOOM)
    sd = sharp_gpt(cfg).state_dict()
    w = bloom_weights(sd, cfg)["transformer.h.0.self_attention.query_key_value.weight"]
    q, k, v = sd["blocks.0.attn.qkv.weight"].split(12)
    for head in range(3):
        rows = slice(head * 4, head * 4 + 4)
        assert torch.equal(w[head * 12 : head * 12 + 4], q[rows])
        assert torch.equal(w[head * 12 + 4 : head * 12 + 8], k[rows])
        assert torch.equal(w[head * 12 + 8 : head * 12 + 12], v[rows])


def test_tokenizer_encodes_as_the_runs(tmp_path, tokenizer):
    from tokenizers import Tokenizer

    from tokenmill.tokenize.encode import encode_batch

    cfg = GPTConfig(n_layer=1, n_embd=16, n_head=2, vocab_size=_vocab(tokenizer), **BLOOM)
    write_checkpoint(tmp_path / "save", sharp_gpt(cfg), tokenizer)
    export(tmp_path / "save", tmp_path / "hf")
    auto = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    run = Tokenizer.from_file(str(tokenizer))
    texts = [*real_texts(), "", " leading space", "tabs\tand\nnewlines\n\n", "Ünïcödé ✓ 中文 🙂"]
    # the shards' encoding (tokenmill's encode_batch, without the end-of-document token)
    shard_ids = encode_batch(run, texts).encodings
    for text, enc in zip(texts, shard_ids, strict=True):
        assert auto(text)["input_ids"] == enc.ids == auto.encode(text)
        assert auto.decode(enc.ids) == text  # byte-level BPE round-trips
    assert auto.eos_token == auto.bos_token == SPECIALS[0]
    assert auto.eos_token_id == run.token_to_id(SPECIALS[0])
    assert auto.pad_token_id == run.token_to_id(SPECIALS[1])
    assert auto.model_max_length == cfg.seq_len
    config = json.loads((tmp_path / "hf/tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"


def test_tokenizer_post_processor_adding_tokens_is_dropped(tmp_path, tokenizer):
    """The shards were encoded without special tokens: the export's tokenizer adds none, even
    where the run's tokenizer.json has a post-processor that would."""
    from tokenizers import Tokenizer, processors

    tok = Tokenizer.from_file(str(tokenizer))
    eod = tok.token_to_id(SPECIALS[0])
    tok.post_processor = processors.TemplateProcessing(
        single=f"{SPECIALS[0]} $A", special_tokens=[(SPECIALS[0], eod)]
    )
    tok.save(str(tmp_path / "with_bos.json"))
    assert tok.encode("a b").ids[0] == eod
    cfg = GPTConfig(n_layer=1, n_embd=16, n_head=2, vocab_size=_vocab(tokenizer), **BLOOM)
    write_checkpoint(tmp_path / "save", sharp_gpt(cfg), tmp_path / "with_bos.json")
    export(tmp_path / "save", tmp_path / "hf")
    auto = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert auto("a b")["input_ids"] == tok.encode("a b", add_special_tokens=False).ids


REFUSED = [
    (dict(position="rotary", activation="gelu", embed_ln=True), "--position rotary"),
    (dict(position="alibi", activation="swiglu", embed_ln=True), "--activation swiglu"),
    (dict(position="alibi", activation="gelu", embed_ln=False), "--no-embed-ln"),
    (dict(position="learned", activation="gelu", embed_ln=True), "--position learned"),
    (dict(position="none", activation="gelu", embed_ln=False), "--position none"),
]


@pytest.mark.parametrize("switches, flag", REFUSED)
def test_other_variants_are_refused_naming_what_each_target_needs(switches, flag):
    cfg = GPTConfig(n_layer=1, n_embd=16, n_head=2, vocab_size=300, **switches)
    with pytest.raises(ExportError) as e:
        target_for(cfg)
    msg = str(e.value)
    assert "\n" not in msg and flag in msg
    assert msg.endswith(
        "BloomForCausalLM needs --position alibi --activation gelu --embed-ln; "
        "GPT2LMHeadModel needs --position learned --activation gelu --no-embed-ln"
    )


def test_bloom_needs_a_4h_mlp():
    cfg = GPTConfig(n_layer=1, n_embd=16, n_head=2, vocab_size=300, ffn_hidden=48, **BLOOM)
    with pytest.raises(ExportError, match="4 x hidden"):
        target_for(cfg)


def test_cli_refuses_in_one_line_and_writes_nothing(tmp_path, tokenizer):
    cfg = GPTConfig(n_layer=1, n_embd=16, n_head=2, vocab_size=_vocab(tokenizer), position="rotary")
    write_checkpoint(tmp_path / "save", sharp_gpt(cfg), tokenizer)
    p = _tokenmill("export", str(tmp_path / "save"), "--out", str(tmp_path / "hf"))
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no Hugging Face class holds")
    assert not (tmp_path / "hf").exists()


def test_not_a_checkpoint_is_said(tmp_path):
    (tmp_path / "empty").mkdir()
    p = _tokenmill("export", str(tmp_path / "empty"), "--out", str(tmp_path / "hf"))
    assert p.returncode == 1
    assert "is not a tokenmill checkpoint" in p.stderr and "Traceback" not in p.stderr


def test_zero0_bf16_master_weights_are_named_by_the_optimizers_groups():
    """ZeRO 0 + bf16 keeps fp32 masters as DeepSpeed's `fp32_groups`, in our optimizer's param
    groups: mapped back by name, each is the parameter it was copied from."""
    from tokenmill.trainer.optim import build_optimizer
    from tokenmill.trainer.settings import TrainConfig
    from tokenmill.trainer.weights import _from_fp32_groups

    cfg = GPTConfig(n_layer=2, n_embd=16, n_head=2, vocab_size=300, position="learned")
    model = sharp_gpt(cfg)
    optimizer, _ = build_optimizer(TrainConfig(data="x", lr=1e-3, min_lr=1e-4), model, 128)
    groups = [[p.detach().clone() for p in g["params"]] for g in optimizer.param_groups]
    module = {k: v.to(torch.bfloat16) for k, v in model.state_dict().items()}
    named = _from_fp32_groups(module, groups, Path("x"))
    assert sorted(named) == sorted(model.state_dict())
    for name, tensor in model.state_dict().items():
        assert torch.equal(named[name], tensor), name


# --- a real training run -------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(prepared, tmp_path_factory) -> Path:
    """12 steps of the tiny preset with the defaults (ALiBi, GeLU, embedding LayerNorm; bf16,
    ZeRO-1), saved."""
    save = tmp_path_factory.mktemp("trained")
    train(["--data", str(prepared), "--steps", "12", "--eval-interval", "0", "--save", str(save)])
    return save


@pytest.mark.slow  # a real DeepSpeed run first (~70 s): the slow suite
def test_a_trained_checkpoint_exports_with_its_fp32_master_weights(trained, prepared, tmp_path):
    step = trained / "step12"
    info = json.loads((step / "tokenmill.json").read_text())
    manifest = json.loads(prepared.read_text())
    # the checkpoint carries the run's tokenizer
    assert (step / "tokenizer.json").read_bytes() == (
        prepared.parent / "tokenizer.json"
    ).read_bytes()
    assert info["tokenizer"] == {**manifest["tokenizer"], "path": "tokenizer.json"}

    p = _tokenmill("export", str(trained), "--out", str(tmp_path / "hf"))
    assert p.returncode == 0, p.stderr
    assert "BloomForCausalLM" in p.stdout and "step 12" in p.stdout

    # the weights are the optimizer's fp32 masters: bf16 rounding of them gives exactly the
    # bf16 module weights DeepSpeed saved, and they are not those weights themselves
    masters = fp32_state_dict(step)
    module = torch.load(step / "mp_rank_00_model_states.pt", weights_only=False)["module"]
    assert masters.keys() == module.keys()
    assert all(v.dtype == torch.float32 for v in masters.values())
    assert all(torch.equal(masters[k].to(torch.bfloat16), module[k]) for k in module)
    assert any(not torch.equal(masters[k], module[k].float()) for k in module)

    ours = load_gpt(open_checkpoint(trained))
    tokens = _random_tokens(ours.cfg, batch=4)
    with torch.no_grad():
        expected = ours(tokens)
    assert (_hf_logits(tmp_path / "hf", tokens) - expected).abs().max().item() < TOL

    # the step folder is the same checkpoint
    export(step, tmp_path / "hf_step")
    from safetensors.torch import load_file

    a, b = (
        load_file(tmp_path / "hf/model.safetensors"),
        load_file(tmp_path / "hf_step/model.safetensors"),
    )
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow  # a real DeepSpeed run first (~70 s): the slow suite
def test_a_checkpoint_without_its_tokenizer_takes_the_runs(trained, prepared, tmp_path):
    """Checkpoints written before steps carried the tokenizer: refused without --tokenizer,
    exported with the run's (a manifest, an OUT folder or a tokenizer.json)."""
    import shutil

    old = tmp_path / "old"
    shutil.copytree(trained / "step12", old / "step12")
    (old / "latest").write_text("step12")
    (old / "step12/tokenizer.json").unlink()
    info = json.loads((old / "step12/tokenmill.json").read_text())
    del info["tokenizer"]
    (old / "step12/tokenmill.json").write_text(json.dumps(info))

    p = _tokenmill("export", str(old), "--out", str(tmp_path / "hf"))
    assert p.returncode == 1 and "carries no tokenizer" in p.stderr and "--tokenizer" in p.stderr
    manifest = json.loads(prepared.read_text())["tokenizer"]
    for given in (prepared, prepared.parent, prepared.parent / "tokenizer.json"):
        saved = open_checkpoint(old, tokenizer=given)
        assert saved.tokenizer == prepared.parent / "tokenizer.json"
        assert saved.eod_id == manifest["eod_id"]
        assert saved.pad_id == (manifest["pad_id"] if given.name != "tokenizer.json" else None)
    p = _tokenmill("export", str(old), "--out", str(tmp_path / "hf"), "--tokenizer", str(prepared))
    assert p.returncode == 0, p.stderr
    auto = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert auto.pad_token_id == manifest["pad_id"] and auto.eos_token_id == manifest["eod_id"]


@pytest.mark.slow  # a real DeepSpeed run first (~70 s): the slow suite
def test_bf16_export(trained, tmp_path):
    export(trained, tmp_path / "hf", dtype="bfloat16")
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf")
    assert hf.dtype == torch.bfloat16
    masters = fp32_state_dict(trained / "step12")
    assert torch.equal(hf.get_input_embeddings().weight, masters["wte.weight"].to(torch.bfloat16))


def _tokenmill(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tokenmill", *args],
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


# --- other ZeRO stages (slow: a training run each) -----------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("stage, nproc", [(0, 1), (3, 2)])
def test_zero_stages_export(prepared, tmp_path, stage, nproc):
    """ZeRO-0 bf16 (fp32 masters in the model states file) and ZeRO-3 on two ranks (weights
    only in the partitions) export to the same logits as tokenmill's GPT on the same weights;
    the ZeRO-3 weights equal those of DeepSpeed's own zero_to_fp32.py script."""
    save = tmp_path / "save"
    args = ["--data", str(prepared), "--steps", "3", "--eval-interval", "0", "--save", str(save)]
    train([*args, "--zero-stage", str(stage)], nproc=nproc)
    step = save / "step3"
    masters = fp32_state_dict(step)
    if stage == 0:
        module = torch.load(step / "mp_rank_00_model_states.pt", weights_only=False)["module"]
        assert all(torch.equal(masters[k].to(torch.bfloat16), module[k]) for k in module)
        assert any(not torch.equal(masters[k], module[k].float()) for k in module)
    else:
        assert not (step / "mp_rank_00_model_states.pt").exists()
        out = tmp_path / "ds"
        subprocess.run(
            [sys.executable, str(save / "zero_to_fp32.py"), str(save), str(out), "-t", "step3"],
            env=env(),
            check=True,
            capture_output=True,
        )
        theirs = _load_dir(out)
        assert theirs.keys() == masters.keys()
        assert all(torch.equal(theirs[k].float(), masters[k]) for k in masters)
    export(save, tmp_path / "hf")
    ours = load_gpt(open_checkpoint(save))
    tokens = _random_tokens(ours.cfg)
    with torch.no_grad():
        expected = ours(tokens)
    assert (_hf_logits(tmp_path / "hf", tokens) - expected).abs().max().item() < TOL


def _load_dir(folder: Path) -> dict:
    """zero_to_fp32.py's output folder: its .bin (or safetensors) shards, merged."""
    from safetensors.torch import load_file

    state = {}
    for f in sorted(folder.iterdir()):
        if f.suffix == ".safetensors":
            state.update(load_file(f))
        elif f.suffix == ".bin":
            state.update(torch.load(f, weights_only=False))
    return state
