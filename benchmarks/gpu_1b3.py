"""Tokens/s, TFLOP/s and MFU of the 1b3 preset (the paper's 1.3B) for a few steps on one GPU.

    python benchmarks/gpu_1b3.py                       # the real trainer: DeepSpeed, ZeRO-1, bf16
    python benchmarks/gpu_1b3.py --engine torch        # the bare model: AdamW + bf16 autocast
    python benchmarks/gpu_1b3.py --position learned    # SDPA's flash kernel (no ALiBi mask)
    python benchmarks/gpu_1b3.py --engine torch --attention sdpa   # ALiBi as a bias tensor
    python benchmarks/gpu_1b3.py --engine torch --attention flex   # ALiBi in FlexAttention
                                                       # (CUDA only: no CPU backward)
    python benchmarks/gpu_1b3.py --tiny                # smoke check on CPU in seconds

Random tokens (vocabulary 50257, the GPT-2 tokenizer's) in a throwaway shard set, so no corpus
is needed. MFU = flops_per_token * tokens/s / peak, flops_per_token = 6N + 12*L*H*Q*T (PaLM; see
tokenmill/trainer/model.py), peak = the device's dense bf16 TFLOP/s (detected for A100/H100/H200,
else --peak-tflops). The timed window excludes the first `--warmup-steps` steps. Prints one JSON
line; numbers measured on a GPU go to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def random_shards(root: Path, vocab: int, tokens: int, seed: int = 0) -> Path:
    """A one-source shard set of random documents and the manifest `train` reads."""
    from tokenmill.shards.megatron import ShardWriter, dtype_for_vocab

    rng = np.random.default_rng(seed)
    sizes = rng.integers(200, 4000, size=max(2, tokens // 2000))
    flat = rng.integers(2, vocab, size=int(sizes.sum()))
    flat[np.cumsum(sizes) - 1] = 0  # each document ends with the end-of-document id
    with ShardWriter(root / "shards" / "random" / "random_00000", dtype_for_vocab(vocab)) as w:
        w.write_many(flat, sizes)
    manifest = {
        "version": 1,
        "tokenizer": {
            "vocab_size": vocab,
            "eod_id": 0,
            "pad_id": 1,
            "dtype": dtype_for_vocab(vocab).name,
        },
        "sources": {"random": {"tokens": int(sizes.sum()), "weight": 1.0}},
        "shards": [
            {
                "prefix": "shards/random/random_00000",
                "source": "random",
                "documents": len(sizes),
                "tokens": int(sizes.sum()),
            }
        ],
        "mixture": {"random": 1.0},
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root / "manifest.json"


def bench_torch(args, cfg, device) -> float:
    """Bare model: tokens/s over the timed steps."""
    import torch

    from tokenmill.trainer.model import GPT

    torch.manual_seed(0)
    model = GPT(cfg, args.attention).to(device)
    cuda = device.type == "cuda"
    opt = torch.optim.AdamW(model.parameters(), lr=2e-4, fused=cuda)
    step_fn = torch.compile(model) if args.compile else model
    x = torch.randint(0, cfg.vocab_size, (args.micro_batch, cfg.seq_len + 1), device=device)
    t0 = None
    for i in range(args.warmup_steps + args.steps):
        if i == args.warmup_steps:
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            loss = step_fn(x[:, :-1], x[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    if cuda:
        torch.cuda.synchronize()
    return args.steps * args.micro_batch * cfg.seq_len / (time.perf_counter() - t0)


def bench_deepspeed(args, cfg, manifest: Path) -> float:
    """The trainer itself (tokenmill.trainer.train.run): tokens/s after the warm-up steps."""
    from tokenmill.trainer.train import TrainConfig, run

    total = args.warmup_steps + args.steps
    summary = run(
        TrainConfig(
            data=str(manifest),
            model=args.model,
            position=args.position,
            seq_len=args.seq_len,
            micro_batch=args.micro_batch,
            grad_accum=1,
            zero_stage=args.zero_stage,
            bf16=args.device_type == "cuda",
            steps=total,
            warmup_steps=1,
            eval_interval=0,
            log_interval=args.warmup_steps,  # timed: everything after the first log
            log_dir=None,
            valid_fraction=0.0,
        )
    )
    return summary["steady_tokens_per_s"]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="1b3")
    p.add_argument("--engine", choices=["deepspeed", "torch"], default="deepspeed")
    p.add_argument("--position", default=None, help="none|learned|rotary|alibi (preset's)")
    p.add_argument("--seq-len", type=int, default=None)
    p.add_argument("--micro-batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    p.add_argument("--warmup-steps", type=int, default=3, help="untimed steps first")
    p.add_argument("--zero-stage", type=int, default=1)
    p.add_argument("--compile", action="store_true", help="torch.compile (--engine torch)")
    p.add_argument(
        "--attention",
        choices=["auto", "sdpa", "flex"],
        default="auto",
        help="ALiBi's path (--engine torch; the trainer uses auto: flex on CUDA)",
    )
    p.add_argument("--peak-tflops", type=float, default=None)
    p.add_argument("--tiny", action="store_true", help="tiny model, a few steps: CPU smoke check")
    args = p.parse_args(argv)
    if args.tiny:
        args.model, args.micro_batch, args.steps, args.warmup_steps = "tiny", 2, 3, 1
    if args.engine == "deepspeed" and args.warmup_steps < 1:
        p.error("--engine deepspeed needs --warmup-steps >= 1 (its first interval is untimed)")

    import torch

    from tokenmill.trainer.model import count_params, flops_per_token
    from tokenmill.trainer.presets import preset
    from tokenmill.trainer.train import PEAK_TFLOPS

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    args.device_type = device.type
    vocab = 50257
    cfg = preset(args.model, vocab_size=vocab, position=args.position, seq_len=args.seq_len)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if k in name), None)

    with tempfile.TemporaryDirectory() as tmp:
        if args.engine == "torch":
            tokens_per_s = bench_torch(args, cfg, device)
        else:
            need = (args.warmup_steps + args.steps) * args.micro_batch * (cfg.seq_len + 1)
            manifest = random_shards(Path(tmp), vocab, max(need * 2, 100_000))
            tokens_per_s = bench_deepspeed(args, cfg, manifest)
    tflops = flops_per_token(cfg) * tokens_per_s / 1e12
    result = {
        "model": args.model,
        "engine": args.engine,
        "device": name,
        "position": cfg.position,
        "attention": args.attention if args.engine == "torch" else "auto",
        "parameters": count_params(cfg),
        "micro_batch": args.micro_batch,
        "seq_len": cfg.seq_len,
        "timed_steps": args.steps,
        "tokens_per_s": round(tokens_per_s, 1),
        "tflops": round(tflops, 4),
        "mfu": round(tflops / peak, 4) if peak else None,
        "peak_tflops": peak,
        "max_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)
        if device.type == "cuda"
        else None,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(0 if main() else 1)
