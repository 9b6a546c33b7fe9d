"""Budget and compute planning: how a prepared corpus covers a token budget, and how many
tokens a GPU-hour budget buys.

Budget plan: with mixture weights w_s (normalized), source s supplies w_s * B of a budget of
B tokens; it has T_s tokens, so it is seen E_s = w_s * B / T_s times (epochs; > 1 means
upsampling a short source, as BigScience did for ROOTS). Megatron's blended dataset realizes
exactly this when given the manifest's `--data-path` weights.

Compute plan: C = gpu_hours * 3600 * X FLOPs at an achieved X FLOP/s per GPU. A model of N
parameters trained on D tokens costs 6·N·D FLOPs (forward + backward, no recomputation;
Kaplan et al. 2020), so D = C / (6N). Megatron-DeepSpeed's logged "TFLOPs" (and BigScience's
sizing, time = 8·T·P / (n·X)) count activation recomputation, 8·N·D; with that convention the
same budget gives D = C / (8N), 25% fewer tokens. BLOOM-176B reached ~150 such TFLOP/s per
A100, and 1M A100-hours at 150 TFLOP/s give 5.4e23 FLOPs: 383B tokens at 8ND for 176B
parameters, close to the 366B it saw.
"""

from __future__ import annotations

import math
import re

_SUFFIX = {"": 1, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12}

# Peak dense bf16 TFLOP/s and a default achieved throughput (what well-tuned Megatron runs
# report; BLOOM's 150 on A100).
GPUS: dict[str, dict[str, float]] = {
    "v100-32gb": {"peak_tflops": 125, "achieved_tflops": 50},
    "a100-40gb": {"peak_tflops": 312, "achieved_tflops": 150},
    "a100-80gb": {"peak_tflops": 312, "achieved_tflops": 150},
    "h100-80gb": {"peak_tflops": 989, "achieved_tflops": 400},
    "h200-141gb": {"peak_tflops": 989, "achieved_tflops": 400},
}

# Model sizes for the trade-off table (parameters), around the paper's ablation and BLOOM.
TRADEOFF_SIZES = [125e6, 350e6, 760e6, 1.3e9, 6.7e9, 13e9, 30e9, 66e9, 104e9, 176e9, 300e9]


def parse_count(text: str | float | int) -> int:
    """'112B' -> 112e9, '350e9', '1.5T', '500M', '2k', 1e6 -> an integer."""
    if isinstance(text, int | float):
        return int(text)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMbBgGtT]?)\s*", str(text))
    if not m:
        raise ValueError(f"cannot read {text!r} as a count: use e.g. 112B, 350e9, 1.5T, 500M")
    return int(round(float(m.group(1)) * _SUFFIX[m.group(2).upper()]))


def human(n: float) -> str:
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:.3g}"


def budget_plan(manifest: dict, budget_tokens: int, max_epochs: float = 4.0) -> list[dict]:
    """Per source: tokens available, weight, tokens drawn for the budget, epochs, shards, and
    a warning when the source would be repeated more than `max_epochs` times."""
    shards: dict[str, int] = {}
    tokens: dict[str, int] = {}
    for s in manifest["shards"]:
        shards[s["source"]] = shards.get(s["source"], 0) + 1
        tokens[s["source"]] = tokens.get(s["source"], 0) + s["tokens"]
    rows = []
    for source, weight in manifest["mixture"].items():
        have = tokens.get(source, 0)
        share = weight * budget_tokens
        epochs = share / have if have else math.inf
        rows.append(
            {
                "source": source,
                "tokens": have,
                "weight": weight,
                "share_tokens": int(round(share)),
                "epochs": epochs,
                "shards": shards.get(source, 0),
                "warning": (
                    f"{source} would be repeated {epochs:.1f} times (> {max_epochs:g}): "
                    "add data or lower its weight"
                )
                if epochs > max_epochs
                else None,
            }
        )
    return rows


def compute_plan(
    gpu_hours: float,
    gpu: str = "a100-80gb",
    achieved_tflops: float | None = None,
    params: list[float] | None = None,
) -> dict:
    """FLOPs a GPU-hour budget buys, and the tokens each model size can see with it."""
    if gpu not in GPUS:
        raise ValueError(f"unknown GPU {gpu!r}; known: {', '.join(GPUS)} (or pass --tflops)")
    x = (achieved_tflops or GPUS[gpu]["achieved_tflops"]) * 1e12
    flops = gpu_hours * 3600 * x
    rows = []
    for n in params or TRADEOFF_SIZES:
        d6 = flops / (6 * n)
        rows.append(
            {
                "params": n,
                "tokens_6nd": d6,
                "tokens_8nd": flops / (8 * n),
                "tokens_per_param": d6 / n,
                "chinchilla_tokens": 20 * n,
            }
        )
    return {
        "gpu": gpu,
        "gpu_hours": gpu_hours,
        "achieved_tflops": x / 1e12,
        "mfu": x / (GPUS[gpu]["peak_tflops"] * 1e12),
        "flops": flops,
        "models": rows,
    }
