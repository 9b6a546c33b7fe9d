"""A checkpoint as a Hugging Face model folder: `BloomForCausalLM` or `GPT2LMHeadModel` weights
(safetensors), config.json, generation_config.json and the run's tokenizer as a
`PreTrainedTokenizerFast`, which `AutoModelForCausalLM` and `AutoTokenizer` load.

Which architecture is a table of the switches each needs (`TARGETS`):

- `bloom` (ALiBi, GeLU, embedding LayerNorm: the paper's final choice and BLOOM's). Our fused
  QKV projection holds rows [q; k; v], each n_embd rows with the heads one after the other;
  Bloom's `query_key_value` holds, per head, that head's q, k and v rows ([q_0; k_0; v_0; q_1;
  ...]). Bloom's MLP is 4h wide and its GeLU the tanh approximation, as ours. Its ALiBi adds
  +m*j where ours adds -m*(i-j): the same under the causal softmax.
- `gpt2` (learned positions, GeLU, no embedding LayerNorm: the paper's baseline). GPT-2's
  `Conv1D` stores weights as (in, out): ours transposed. `gelu_new` is the tanh
  approximation; `n_positions` is the run's seq_len; `n_inner` the FFN width.

Both tie the output projection to the embedding as ours, and keep the padded vocabulary
(`vocab_size` in config.json is the embedding's rows; the tokenizer has the run's
`vocab_size` tokens, the rows past it are never produced by encoding). The end-of-document
token is eos, bos (what precedes every document in training) and, where the manifest has no
pad token, pad. The tokenizer's `model_max_length` is seq_len, which is what lm-evaluation-
harness's `hf` backend takes as the model's context for BLOOM (its config has no length).
Rotary positions, SwiGLU, or the other position/norm pairs are refused: neither class has them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from tokenmill.trainer.weights import CheckpointError, Saved, fp32_state_dict, open_checkpoint

log = logging.getLogger("tokenmill.trainer")

# target -> (Hugging Face class, the switches it needs)
TARGETS: dict[str, tuple[str, dict]] = {
    "bloom": ("BloomForCausalLM", dict(position="alibi", activation="gelu", embed_ln=True)),
    "gpt2": ("GPT2LMHeadModel", dict(position="learned", activation="gelu", embed_ln=False)),
}
DTYPES = ("float32", "bfloat16", "float16")


class ExportError(CheckpointError):
    """A checkpoint that no target can hold, said in one line."""


@dataclass(frozen=True)
class Exported:
    out: Path
    target: str
    architecture: str
    step: int
    parameters: int


def flags(switches: dict) -> str:
    """The `tokenmill train` flags that set `switches`."""
    out = []
    for key, value in switches.items():
        if key == "embed_ln":
            out.append("--embed-ln" if value else "--no-embed-ln")
        else:
            out.append(f"--{key} {value}")
    return " ".join(out)


def target_for(cfg) -> str:
    """The target whose switches the model config has; ExportError names what each needs."""
    for name, (_, switches) in TARGETS.items():
        if all(getattr(cfg, k) == v for k, v in switches.items()):
            if name == "bloom" and cfg.ffn != 4 * cfg.n_embd:
                raise ExportError(
                    f"BloomForCausalLM's MLP is 4 x hidden ({4 * cfg.n_embd}); this model's is "
                    f"{cfg.ffn}"
                )
            return name
    this = flags({k: getattr(cfg, k) for k in ("position", "activation", "embed_ln")})
    needs = "; ".join(f"{cls} needs {flags(sw)}" for cls, sw in TARGETS.values())
    raise ExportError(f"no Hugging Face class holds this model ({this}): {needs}")


def bloom_weights(sd: dict, cfg) -> dict:
    """Our state dict under BloomForCausalLM's names and layouts."""
    h, n, d = cfg.n_embd, cfg.n_head, cfg.head_dim
    out = {
        "transformer.word_embeddings.weight": sd["wte.weight"],
        "transformer.word_embeddings_layernorm.weight": sd["ln_emb.weight"],
        "transformer.word_embeddings_layernorm.bias": sd["ln_emb.bias"],
        "transformer.ln_f.weight": sd["ln_f.weight"],
        "transformer.ln_f.bias": sd["ln_f.bias"],
    }
    for i in range(cfg.n_layer):
        ours, theirs = f"blocks.{i}.", f"transformer.h.{i}."
        # rows [q; k; v] (each: head 0..n-1, d rows a head) -> per head [q_i; k_i; v_i]
        qkv_w = sd[ours + "attn.qkv.weight"].view(3, n, d, h).transpose(0, 1).reshape(3 * h, h)
        qkv_b = sd[ours + "attn.qkv.bias"].view(3, n, d).transpose(0, 1).reshape(3 * h)
        out.update(
            {
                theirs + "input_layernorm.weight": sd[ours + "ln_1.weight"],
                theirs + "input_layernorm.bias": sd[ours + "ln_1.bias"],
                theirs + "self_attention.query_key_value.weight": qkv_w,
                theirs + "self_attention.query_key_value.bias": qkv_b,
                theirs + "self_attention.dense.weight": sd[ours + "attn.proj.weight"],
                theirs + "self_attention.dense.bias": sd[ours + "attn.proj.bias"],
                theirs + "post_attention_layernorm.weight": sd[ours + "ln_2.weight"],
                theirs + "post_attention_layernorm.bias": sd[ours + "ln_2.bias"],
                theirs + "mlp.dense_h_to_4h.weight": sd[ours + "mlp.fc.weight"],
                theirs + "mlp.dense_h_to_4h.bias": sd[ours + "mlp.fc.bias"],
                theirs + "mlp.dense_4h_to_h.weight": sd[ours + "mlp.proj.weight"],
                theirs + "mlp.dense_4h_to_h.bias": sd[ours + "mlp.proj.bias"],
            }
        )
    return out


def gpt2_weights(sd: dict, cfg) -> dict:
    """Our state dict under GPT2LMHeadModel's names; Conv1D weights are (in, out)."""
    out = {
        "transformer.wte.weight": sd["wte.weight"],
        "transformer.wpe.weight": sd["wpe.weight"],
        "transformer.ln_f.weight": sd["ln_f.weight"],
        "transformer.ln_f.bias": sd["ln_f.bias"],
    }
    for i in range(cfg.n_layer):
        ours, theirs = f"blocks.{i}.", f"transformer.h.{i}."
        for a, b in (("ln_1", "ln_1"), ("ln_2", "ln_2")):
            out[f"{theirs}{b}.weight"] = sd[f"{ours}{a}.weight"]
            out[f"{theirs}{b}.bias"] = sd[f"{ours}{a}.bias"]
        for a, b in (
            ("attn.qkv", "attn.c_attn"),
            ("attn.proj", "attn.c_proj"),
            ("mlp.fc", "mlp.c_fc"),
            ("mlp.proj", "mlp.c_proj"),
        ):
            out[f"{theirs}{b}.weight"] = sd[f"{ours}{a}.weight"].t().contiguous()
            out[f"{theirs}{b}.bias"] = sd[f"{ours}{a}.bias"]
    return out


def hf_config(target: str, cfg, eod_id: int, pad_id: int):
    """The transformers config of `target` for our model config."""
    from transformers import BloomConfig, GPT2Config

    tokens = dict(bos_token_id=eod_id, eos_token_id=eod_id, pad_token_id=pad_id)
    if target == "bloom":
        return BloomConfig(
            vocab_size=cfg.padded_vocab,
            hidden_size=cfg.n_embd,
            n_layer=cfg.n_layer,
            n_head=cfg.n_head,
            layer_norm_epsilon=cfg.layernorm_eps,
            initializer_range=cfg.init_std,
            hidden_dropout=cfg.dropout,
            attention_dropout=cfg.dropout,
            apply_residual_connection_post_layernorm=False,
            pretraining_tp=1,
            slow_but_exact=False,
            tie_word_embeddings=True,
            architectures=["BloomForCausalLM"],
            **tokens,
        )
    return GPT2Config(
        vocab_size=cfg.padded_vocab,
        n_positions=cfg.seq_len,
        n_embd=cfg.n_embd,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        n_inner=cfg.ffn,
        activation_function="gelu_new",  # the tanh approximation, as ours
        resid_pdrop=cfg.dropout,
        embd_pdrop=cfg.dropout,
        attn_pdrop=cfg.dropout,
        layer_norm_epsilon=cfg.layernorm_eps,
        initializer_range=cfg.init_std,
        scale_attn_weights=True,
        tie_word_embeddings=True,
        architectures=["GPT2LMHeadModel"],
        **tokens,
    )


def hf_model(target: str, sd: dict, cfg, eod_id: int, pad_id: int, dtype: str = "float32"):
    """The transformers model of `target` holding our weights (a strict load: every tensor
    named and shaped as the class expects)."""
    import torch
    from transformers import BloomForCausalLM, GPT2LMHeadModel

    cls = BloomForCausalLM if target == "bloom" else GPT2LMHeadModel
    weights = (bloom_weights if target == "bloom" else gpt2_weights)(sd, cfg)
    weights["lm_head.weight"] = sd["wte.weight"]  # tied: the same tensor
    with torch.device("meta"):  # no random initialisation to throw away
        model = cls(hf_config(target, cfg, eod_id, pad_id))
    model.load_state_dict(weights, strict=True, assign=True)
    model.tie_weights()
    return model.to(getattr(torch, dtype)).eval()


def hf_tokenizer(saved: Saved, seq_len: int):
    """The run's tokenizer.json as a PreTrainedTokenizerFast: eos and bos the end-of-document
    token, pad the manifest's (else the same), no special tokens added on encoding (the
    shards were encoded without: a post-processor that adds some is dropped), decoding
    without clean-up (byte-level BPE round-trips)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer.from_file(str(saved.tokenizer))
    if tok.encode("a").ids != tok.encode("a", add_special_tokens=False).ids:
        log.info("%s: its post-processor adds special tokens; dropped", saved.tokenizer)
        tok.post_processor = None
    eod = tok.id_to_token(saved.eod_id)
    pad = tok.id_to_token(saved.pad_id) if saved.pad_id is not None else eod
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=eod,
        bos_token=eod,
        pad_token=pad,
        model_max_length=seq_len,
        clean_up_tokenization_spaces=False,
    )


def _portable_tokenizer_config(out: Path) -> None:
    """Name the tokenizer class PreTrainedTokenizerFast (transformers 5 writes its new name,
    TokenizersBackend, which transformers 4 does not know; 5 reads both)."""
    from tokenmill.fsio import atomic_path

    path = out / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def export(
    ckpt: str | Path, out: str | Path, tokenizer: str | Path | None = None, dtype: str = "float32"
) -> Exported:
    """Write CKPT's model as a Hugging Face folder at `out` (created; files in it replaced)."""
    if dtype not in DTYPES:
        raise ExportError(f"--dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    saved = open_checkpoint(ckpt, tokenizer)
    cfg = saved.model_config()
    target = target_for(cfg)  # refuses before any weight is read
    pad_id = saved.pad_id if saved.pad_id is not None else saved.eod_id
    model = hf_model(target, fp32_state_dict(saved.folder), cfg, saved.eod_id, pad_id, dtype)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model.save_pretrained(out)
    hf_tokenizer(saved, cfg.seq_len).save_pretrained(out)
    _portable_tokenizer_config(out)
    n = sum(p.numel() for p in model.parameters())
    log.info("exported %s (step %d) as %s to %s", saved.folder, saved.step, target, out)
    return Exported(out, target, TARGETS[target][0], saved.step, n)
