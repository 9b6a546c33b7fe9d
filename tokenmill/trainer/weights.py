"""A trained checkpoint read back for use: which step a CKPT path means, the model config and
tokenizer the run recorded, and its weights consolidated to one fp32 state dict (read by
`tokenmill eval` and `tokenmill export`).

CKPT is a `train --save` folder (its `latest` step) or one step folder in it. The weights are
the optimizer's fp32 master copy wherever the checkpoint has one, not the bf16 module weights
DeepSpeed saves beside it (those are the masters rounded to bf16):

- ZeRO 1, 2 and 3, any number of ranks: DeepSpeed's own `zero_to_fp32` reassembles the
  partitions (`*zero_pp_rank_*_optim_states.pt`);
- ZeRO 0 with bf16: DeepSpeed's bf16 optimizer keeps the masters as `fp32_groups` in the model
  states file, in the order of our two parameter groups (optim.build_optimizer: the matrices,
  then biases and LayerNorms, each in `named_parameters` order);
- ZeRO 0 in fp32: the module weights are the weights.
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path

from tokenmill.fsio import read_json
from tokenmill.trainer.checkpoint import INFO, latest_tag

log = logging.getLogger("tokenmill.trainer")

MODEL_STATES = "mp_rank_00_model_states.pt"


class CheckpointError(ValueError):
    """The path is not a checkpoint we can read, said in one line with what to do."""


@dataclass(frozen=True)
class Saved:
    """One step of a run: its folder, the client state it recorded, the tokenizer to use."""

    folder: Path  # SAVE/stepN
    info: dict  # SAVE/stepN/tokenmill.json
    tokenizer: Path  # tokenizer.json
    eod_id: int
    pad_id: int | None

    @property
    def step(self) -> int:
        return int(self.info["step"])

    def model_config(self):
        from tokenmill.trainer.model import GPTConfig

        return GPTConfig(**self.info["model"])


def open_checkpoint(path: str | Path, tokenizer: str | Path | None = None) -> Saved:
    """The step CKPT means, with its recorded model config and tokenizer. `tokenizer` (a
    tokenizer.json, or a manifest / OUT folder whose tokenizer to use) is needed only for
    checkpoints written before steps carried their own copy; given, it wins."""
    folder = step_folder(Path(path))
    info = read_json(folder / INFO)
    section = info.get("tokenizer") or {}
    if tokenizer is not None:
        tok_path, section = _given_tokenizer(Path(tokenizer), section)
    elif section.get("path"):
        tok_path = folder / section["path"]
    else:
        raise CheckpointError(
            f"{folder} carries no tokenizer (written before checkpoints copied it): give the "
            "run's with --tokenizer OUT/tokenizer.json (or OUT/manifest.json)"
        )
    if not tok_path.exists():
        raise CheckpointError(f"{tok_path} not found: give the run's with --tokenizer")
    eod_id = section.get("eod_id")
    if eod_id is None:
        eod_id = _token_id(tok_path, section.get("eod_token", "<|endoftext|>"))
    return Saved(folder, info, tok_path, int(eod_id), section.get("pad_id"))


def step_folder(path: Path) -> Path:
    """SAVE/stepN for a SAVE folder (its `latest`) or a step folder; CheckpointError else."""
    if (path / INFO).exists():
        return path
    if path.is_dir() and (tag := latest_tag(path)):
        if (path / tag / INFO).exists():
            return path / tag
        raise CheckpointError(
            f"{path / tag} (named by {path / 'latest'}) has no {INFO}: it is not a complete "
            "tokenmill checkpoint"
        )
    if not path.exists():
        raise CheckpointError(f"{path} not found")
    raise CheckpointError(
        f"{path} is not a tokenmill checkpoint: give a `tokenmill train --save` folder (with "
        f"`latest`) or one of its step folders (with {INFO})"
    )


def _given_tokenizer(path: Path, section: dict) -> tuple[Path, dict]:
    """(tokenizer.json, tokenizer section) of a --tokenizer: a manifest or OUT folder (its
    tokenizer section), or a tokenizer.json (its end-of-document token the recorded one's
    name, else <|endoftext|>; no pad token: the end-of-document token pads)."""
    from tokenmill.shards.manifest import load_manifest, manifest_path

    if path.is_dir() or path.name == "manifest.json":
        manifest = load_manifest(path)
        return manifest_path(path).parent / manifest["tokenizer"]["path"], manifest["tokenizer"]
    return path, {k: v for k, v in section.items() if k == "eod_token"}


def _token_id(tokenizer: Path, token: str) -> int:
    from tokenmill.tokenize.bpe import load_tokenizer, token_id

    return token_id(load_tokenizer(str(tokenizer)), token)


def fp32_state_dict(folder: Path) -> dict:
    """The checkpoint's weights as fp32 tensors on the CPU, keyed as GPT's state dict."""
    import torch

    if list(folder.glob("*zero_pp_rank_*_optim_states.pt")):
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

        said = io.StringIO()  # what it found, and progress bars: for the debug log
        with contextlib.redirect_stdout(said), contextlib.redirect_stderr(said):
            state = get_fp32_state_dict_from_zero_checkpoint(str(folder.parent), tag=folder.name)
        log.debug("zero_to_fp32: %s", said.getvalue().strip())
        return {k: v.detach().float().contiguous() for k, v in state.items()}
    states = folder / MODEL_STATES
    if not states.exists():
        raise CheckpointError(f"{folder} has neither {MODEL_STATES} nor ZeRO partitions")
    saved = torch.load(states, map_location="cpu", weights_only=False)
    module = saved["module"]
    optimizer = saved.get("optimizer")
    if isinstance(optimizer, dict) and "fp32_groups" in optimizer:
        return _from_fp32_groups(module, optimizer["fp32_groups"], folder)
    return {k: v.detach().float() for k, v in module.items()}


def _from_fp32_groups(module: dict, groups: list, folder: Path) -> dict:
    """The fp32 masters of DeepSpeed's bf16 optimizer (ZeRO 0), named: our groups are the
    matrices, then the vectors, each in parameter order (optim.build_optimizer)."""
    names = [
        [n for n, t in module.items() if t.dim() >= 2],
        [n for n, t in module.items() if t.dim() < 2],
    ]
    flat_groups = [list(g) for g in groups]
    shapes = [[tuple(t.shape) for t in g] for g in flat_groups]
    expected = [[tuple(module[n].shape) for n in g] for g in names]
    if shapes != expected:
        raise CheckpointError(
            f"{folder}: the optimizer's fp32 groups do not match the model's parameters "
            "(not written by tokenmill's optimizer?)"
        )
    return {
        n: t.detach().float().clone()
        for g_names, g in zip(names, flat_groups, strict=True)
        for n, t in zip(g_names, g, strict=True)
    }


def load_gpt(saved: Saved, device: str = "cpu"):
    """The checkpoint's GPT in fp32, in eval mode, on `device`."""
    import torch

    from tokenmill.trainer.model import GPT

    with torch.device("meta"):  # no random initialisation to throw away
        model = GPT(saved.model_config())
    model.load_state_dict(fp32_state_dict(saved.folder), strict=True, assign=True)
    return model.eval().to(device)
