"""Checkpoints for the export and eval tests without a training run: a small GPT with random,
sharp weights (so that logits and log-likelihoods differ a lot between tokens, and a wrong
mapping cannot hide in near-uniform outputs), a BPE tokenizer trained on real text, and a step
folder in the layout the trainer writes with ZeRO 0 in fp32 (DeepSpeed's
mp_rank_00_model_states.pt with the weights under "module", our tokenmill.json and
tokenizer.json, SAVE/latest)."""

from __future__ import annotations

import json
from pathlib import Path

from tokenmill.eval.run import TASKS_DIR

ITEMS = TASKS_DIR / "tokenmill_sample"
SPECIALS = ["<|endoftext|>", "<|pad|>"]


def real_texts() -> list[str]:
    """The 24 paragraphs of the bundled evaluation items (the Python Language Reference)."""
    with (ITEMS / "python_reference.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f]


def train_tokenizer(path: Path, vocab_size: int = 400) -> Path:
    """A byte-level BPE (tokenmill's trainer) on the real texts, written to `path`."""
    from tokenmill.tokenize.bpe import train_bpe

    tok = train_bpe(real_texts() * 3, vocab_size, SPECIALS)
    tok.save(str(path))
    return path


def sharp_gpt(cfg, seed: int = 0):
    """GPT(cfg) with every weight random: matrices and embeddings N(0, 0.3) (embeddings N(0, 1)),
    biases N(0, 0.1), LayerNorm weights 1 + N(0, 0.1)."""
    import torch

    from tokenmill.trainer.model import GPT

    torch.manual_seed(seed)
    model = GPT(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith(("wte", "wpe")):
                p.normal_(0.0, 1.0)
            elif "ln" in name.split(".")[-2] and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif p.dim() == 1:
                p.normal_(0.0, 0.1)
            else:
                p.normal_(0.0, 0.3)
    return model.eval()


def write_checkpoint(save: Path, model, tokenizer: Path, step: int = 7) -> Path:
    """SAVE/step{step} with `model`'s weights in the trainer's ZeRO-0 fp32 layout, and
    SAVE/latest naming it; returns the step folder."""
    import shutil
    from dataclasses import asdict

    import torch
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer))
    folder = save / f"step{step}"
    folder.mkdir(parents=True)
    torch.save(
        {"module": model.state_dict(), "optimizer": None}, folder / "mp_rank_00_model_states.pt"
    )
    shutil.copyfile(tokenizer, folder / "tokenizer.json")
    info = {
        "step": step,
        "data": {},
        "model": asdict(model.cfg),
        "world_size": 1,
        "tokenizer": {
            "path": "tokenizer.json",
            "vocab_size": tok.get_vocab_size(),
            "eod_token": SPECIALS[0],
            "eod_id": tok.token_to_id(SPECIALS[0]),
            "pad_id": tok.token_to_id(SPECIALS[1]),
            "dtype": "uint16",
        },
    }
    (folder / "tokenmill.json").write_text(json.dumps(info))
    (save / "latest").write_text(folder.name)
    return folder
