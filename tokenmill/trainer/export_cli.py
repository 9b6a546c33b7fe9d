"""`tokenmill export CKPT --out DIR`: a checkpoint as a Hugging Face model folder (export.py).
Registered in tokenmill/cli.py; torch and transformers are imported inside the command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tokenmill.console import fail as _fail
from tokenmill.console import out as _out

NEEDS = (
    "tokenmill export needs torch and deepspeed (the train extra) and transformers (the eval "
    "extra): pip install torch first, then pip install 'tokenmill[train,eval]'"
)


def export(
    ckpt: Annotated[
        Path,
        typer.Argument(
            help="A `tokenmill train --save` folder (its latest step) or one step folder in it.",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="The Hugging Face model folder to write.")
    ],
    tokenizer: Annotated[
        Path | None,
        typer.Option(
            help="The run's tokenizer.json (or OUT/manifest.json), for checkpoints written "
            "before steps carried a copy of it."
        ),
    ] = None,
    dtype: Annotated[
        str, typer.Option(help="Weights as float32 (the fp32 masters), bfloat16 or float16.")
    ] = "float32",
) -> None:
    """Write a checkpoint as a Hugging Face model folder (BLOOM or GPT-2 layout).

    BloomForCausalLM for ALiBi + GeLU + embedding LayerNorm (the paper's final architecture),
    GPT2LMHeadModel for learned positions + GeLU without it (the paper's baseline).
    The folder holds model.safetensors (the optimizer's fp32 master weights, consolidated
    from any ZeRO stage), config.json, generation_config.json and the run's tokenizer
    (PreTrainedTokenizerFast: eos and bos the end-of-document token), so
    AutoModelForCausalLM.from_pretrained and AutoTokenizer.from_pretrained load it. Its logits
    equal tokenmill's within 1e-4 in fp32. Other variants (rotary, SwiGLU, ...) are refused.
    """
    try:
        import transformers  # noqa: F401

        from tokenmill.trainer.export import export as run_export
        from tokenmill.trainer.weights import CheckpointError
    except ImportError as e:
        _fail(f"{NEEDS} ({e})")
    try:
        done = run_export(ckpt, out, tokenizer, dtype)
    except (CheckpointError, OSError) as e:  # OSError: --out is a file, or not writable
        _fail(str(e))
    _out.print(
        f"{done.out}: {done.architecture} ({done.parameters:,} parameters, {dtype}) from step "
        f"{done.step} of {ckpt}",
        highlight=False,
        soft_wrap=True,
    )
