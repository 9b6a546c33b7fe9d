"""The memory a training process needs, from the parameter count, said before anything is
built: a 1b3 model on a CPU box otherwise grows past the machine's memory in set-up, silently.

What DeepSpeed keeps per parameter (mixed precision as in the ZeRO paper): fp32: weights 4 +
gradients 4 + Adam's two moments 8 = 16 bytes; bf16: weights 2 + gradients 2 + fp32 master
weights 4 + fp32 gradients 4 + Adam 8 = 20. Set-up holds more at its peak: the fp32 model as
built and DeepSpeed's flattened copies. Measured on CPU (peak RSS, DeepSpeed 0.19, torch 2.13,
one process, ZeRO-1, 125m with a vocabulary of 8000, 91,250,688 parameters, less a tiny run's
0.44 GB): bf16 31.6 bytes per parameter, fp32 37.0. ZeRO splits the state over the processes:
stage 1 the optimizer's part (master weights, fp32 gradients, moments), stage 2 also the
gradients, stage 3 also the weights.
"""

from __future__ import annotations

import os

GB = 1e9
BASE_BYTES = 0.5 * GB  # torch, DeepSpeed and the data, per process
PEAK_BYTES_PER_PARAM = {True: 32.0, False: 37.0}  # measured (see above), by bf16


def bytes_per_param(bf16: bool, zero_stage: int, world: int) -> float:
    """Peak bytes a process holds per model parameter (see the module docstring)."""
    weights, grads, optimizer = (2.0, 2.0, 16.0) if bf16 else (4.0, 4.0, 8.0)
    total, kept = PEAK_BYTES_PER_PARAM[bf16], 1 - 1 / world
    if zero_stage >= 1:
        total -= optimizer * kept
    if zero_stage >= 2:
        total -= grads * kept
    if zero_stage >= 3:
        total -= weights * kept
    return total


def available_memory() -> int | None:
    """MemAvailable of /proc/meminfo in bytes (None where it cannot be read)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def cpu_memory_note(
    model: str,
    n_params: int,
    vocab_size: int,
    bf16: bool,
    zero_stage: int,
    world: int,
    local_processes: int,
    available: int | None,
) -> tuple[bool, str]:
    """(warn, message) about the memory training `n_params` parameters on this CPU box takes:
    warn where the processes on it need more than `available` bytes."""
    per_param = bytes_per_param(bf16, zero_stage, world)
    per_process = BASE_BYTES + n_params * per_param
    need = per_process * local_processes
    processes = f"{world} process" + ("es" if world > 1 else "")
    text = (
        f"model {model}: {n_params:,} parameters with vocabulary {vocab_size:,}; training it on "
        f"CPU takes about {per_process / GB:.1f} GB per process ({per_param:g} bytes per "
        f"parameter at its peak: {'bf16' if bf16 else 'fp32'}, ZeRO-{zero_stage}, {processes})"
    )
    if local_processes > 1:
        text += f", {need / GB:.1f} GB for the {local_processes} on this machine"
    if available is None:
        return False, text
    text += f"; {available / GB:.1f} GB available"
    if need > available:
        return True, text + (
            ": it will likely run out of memory (every process builds the whole model "
            "before ZeRO splits it). Train it on GPUs, or choose a smaller --model"
        )
    return False, text


def local_processes() -> int:
    """Processes of this run on this machine (the launcher's LOCAL_WORLD_SIZE, else 1)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
