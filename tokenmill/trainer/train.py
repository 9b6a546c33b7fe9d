"""The DeepSpeed training loop: model preset + manifest data + a DeepSpeed config -> checkpoints,
metrics and TensorBoard logs.

As in Megatron-DeepSpeed (which BigScience trained BLOOM with), the DeepSpeed JSON carries what
DeepSpeed does (batch sizes, ZeRO, clipping, bf16) and the optimizer and LR schedule come from
our settings: AdamW without decay on biases and LayerNorms, linear warmup then cosine decay to
`min_lr`. Flags override the JSON; the JSON overrides the defaults.

Launch: one process as is, or several with `torchrun --nproc-per-node N -m tokenmill train ...`
or `deepspeed --num_gpus N --module tokenmill train ...` (hostfile for several nodes). Every
rank draws the same global batch from the blend and takes its own micro-batches of it, so the
samples of a step do not depend on how many processes share it.

Each process builds the whole model before ZeRO partitions it (no `deepspeed.zero.Init`, no
tensor or pipeline parallelism): fine for tiny..1b3; the 176b preset is for its shape and counts.

Logged per step (rank 0, to the terminal every `log_interval` steps, to `log_dir/metrics.jsonl`
and TensorBoard every step): loss, lr, grad norm, tokens/s, achieved TFLOP/s per device and MFU:

    TFLOP/s per device = flops_per_token * tokens/s / devices       (model.flops_per_token:
    MFU = TFLOP/s per device / peak bf16 TFLOP/s of one device      PaLM's 6N + 12*L*H*Q*T)

and, in metrics.jsonl only, `batch`: a digest of the step's samples (which, in which order).

Resume is exact. A checkpoint holds the weights, optimizer and LR state, the step and the
sampler's position; SAVE/latest names it only once every rank has written its files (atomic
rename), so a kill at any moment leaves the previous complete checkpoint. A resumed run drops
the metrics records and TensorBoard events past its checkpoint and logs those steps again;
the per-step seed keeps dropout the same. A checkpoint this run cannot continue (another model,
other data, another number of processes) is refused before the model is built.

This module is the loop; its parts live beside it: settings.py (TrainConfig, the DeepSpeed
config), optim.py, distributed.py (start and teardown), checkpoint.py, metrics.py,
footprint.py (the memory a process needs).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

from tokenmill.trainer.checkpoint import check_resumable, latest_tag, resume, save_checkpoint
from tokenmill.trainer.distributed import Held, MissingTrainExtra, init_process_group, teardown
from tokenmill.trainer.footprint import available_memory, cpu_memory_note, local_processes
from tokenmill.trainer.metrics import (
    PEAK_TFLOPS,
    Throughput,
    batch_digest,
    open_metrics,
    peak_tflops,
    setup_logging,
)
from tokenmill.trainer.optim import build_optimizer, lr_factor
from tokenmill.trainer.settings import (
    TrainConfig,
    deepspeed_config,
    resolve_batch,
    with_preset_defaults,
)

# TrainConfig and the helpers that callers and tests name through this module
__all__ = [
    "PEAK_TFLOPS",
    "MissingTrainExtra",
    "TrainConfig",
    "deepspeed_config",
    "lr_factor",
    "resolve_batch",
    "run",
]

log = logging.getLogger("tokenmill.trainer")


def run(cfg: TrainConfig) -> dict:
    """Train; returns a summary (steps, last loss, last validation loss, tokens/s).

    Raises MissingTrainExtra (an ImportError) where torch or deepspeed cannot be imported.
    Every path out, an error included, destroys the engine and the process groups."""
    cfg = with_preset_defaults(cfg)  # the preset's LR where none is given
    dist = init_process_group()
    held = Held()
    try:
        summary = _train(cfg, held)
    except BaseException:
        try:
            teardown(dist, held, completed=False)
        except Exception:  # the error that brought us here is the one to report
            log.exception("teardown after the error failed")
        raise
    teardown(dist, held, completed=True)
    return summary


@dataclass
class _Run:
    """A started run: what every step reads (the engine, the data, the sizes)."""

    cfg: TrainConfig
    engine: object
    scheduler: object
    data: object  # ManifestData
    valid: object  # ManifestData whose held-out slice validates (data, or --valid-data's)
    model_cfg: object  # GPTConfig
    device: object  # torch.device
    rank: int
    world: int
    micro: int
    accum: int
    glob: int
    flops_per_token: float
    n_params: int
    peak: float | None


def _train(cfg: TrainConfig, held: Held) -> dict:
    """Start, resume from SAVE/latest where there is one, then step to the stop (checkpointed
    when saving); returns the summary."""
    r = _start(cfg, held)
    save = Path(cfg.save) if cfg.save else None
    step = 0
    if save and cfg.resume and latest_tag(save):
        step = resume(r.engine, save, r.data, r.model_cfg)
    log_dir = Path(cfg.log_dir) if cfg.log_dir else (save / "logs" if save else None)
    metrics = open_metrics(log_dir, r.rank, step, held.logs)

    stop = min(cfg.steps, cfg.stop_at) if cfg.stop_at is not None else cfg.steps
    last = {"loss": None, "valid_loss": None}
    # tokens/s from the first log on (past warm-up), evaluation and checkpoints left out
    clock = Throughput(r.glob * r.model_cfg.seq_len)
    r.engine.train()
    while step < stop:
        values = _train_step(r, step)
        step += 1
        clock.step()
        last["loss"] = values["loss"]
        if step % cfg.log_interval == 0 or step == stop:
            _log_progress(r, step, values, clock)
        if cfg.eval_interval and (step % cfg.eval_interval == 0 or step == stop):
            with clock.paused():
                vloss = _evaluate(r)
            if vloss is not None:
                values["valid_loss"] = last["valid_loss"] = vloss
                log.info("step %d  validation loss %.4f (%.2f ppl)", step, vloss, math.exp(vloss))
        metrics.record(step, values)
        if save and (step == stop or (cfg.save_interval and step % cfg.save_interval == 0)):
            with clock.paused():
                save_checkpoint(r.engine, save, step, r.data, r.model_cfg, r.rank, r.world)
    return {
        "steps": step,
        "loss": last["loss"],
        "valid_loss": last["valid_loss"],
        "tokens_per_s": clock.last,  # of the last log interval
        "steady_tokens_per_s": clock.steady(step),  # after the first log interval
        "parameters": r.n_params,
        "world_size": r.world,
    }


def _start(cfg: TrainConfig, held: Held) -> _Run:
    """The device, the data, the model and its DeepSpeed engine (held for the teardown).
    What can be said without building the model comes first: its size (and on CPU the memory
    it needs), a held-out slice too short to validate on, a checkpoint it cannot resume."""
    import deepspeed
    import torch
    import torch.distributed as dist
    from deepspeed.accelerator import get_accelerator

    from tokenmill.trainer.data import ManifestData
    from tokenmill.trainer.model import count_params, flops_per_token
    from tokenmill.trainer.presets import preset

    accel = get_accelerator()
    rank, world = dist.get_rank(), dist.get_world_size()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    setup_logging(rank)
    device = torch.device(accel.device_name(local_rank))
    if device.type == "cuda":
        torch.cuda.set_device(device)

    ds_config = deepspeed_config(cfg, world)
    if ds_config.get("fp16", {}).get("enabled") and device.type == "cpu":
        raise ValueError("fp16 is not supported on CPU: use --bf16 or --no-bf16 (fp32)")
    micro = ds_config["train_micro_batch_size_per_gpu"]
    accum = ds_config["gradient_accumulation_steps"]
    glob = ds_config["train_batch_size"]

    probe = preset(cfg.model, seq_len=cfg.seq_len)
    data = ManifestData(cfg.data, probe.seq_len, cfg.seed, cfg.valid_fraction, cfg.mixture)
    valid = data
    if cfg.valid_data:  # one held-out mixture for runs on other data (tokenmill ablate)
        valid = ManifestData(cfg.valid_data, probe.seq_len, cfg.seed, cfg.valid_fraction)
        data.require_same_tokenizer(valid, "--valid-data")
    model_cfg = _model_config(cfg, data.vocab_size)
    data.vocab.model = (model_cfg.vocab_size, model_cfg.padded_vocab)
    n_params = count_params(model_cfg)
    _describe(cfg, model_cfg, n_params)
    if device.type == "cpu":
        warn, text = cpu_memory_note(
            cfg.model,
            n_params,
            model_cfg.vocab_size,
            bool(ds_config["bf16"].get("enabled")),
            int(ds_config["zero_optimization"]["stage"]),
            world,
            local_processes(),
            available_memory(),
        )
        (log.warning if warn else log.info)(text)
    if cfg.eval_interval:
        for source, tokens in valid.short_valid().items():
            log.warning(
                "validation: the held-out slice of source %r is %d tokens, shorter than one "
                "sample (%d): its validation loss reads those tokens over and over. Hold out "
                "more (--valid-fraction) or leave validation out (--eval-interval 0)",
                source,
                tokens,
                model_cfg.seq_len + 1,
            )
    save = Path(cfg.save) if cfg.save else None
    if save and cfg.resume and latest_tag(save):
        check_resumable(save, model_cfg, data, world)  # before the model is built or loaded
    model = _build_model(cfg, model_cfg)
    fpt = flops_per_token(model_cfg)
    optimizer, scheduler = build_optimizer(cfg, model, glob * model_cfg.seq_len)
    engine, _, _, _ = deepspeed.initialize(
        model=model, optimizer=optimizer, lr_scheduler=scheduler, config=ds_config
    )
    held.engine = engine
    peak = peak_tflops(cfg.peak_tflops, device)
    return _Run(
        cfg,
        engine,
        scheduler,
        data,
        valid,
        model_cfg,
        device,
        rank,
        world,
        micro,
        accum,
        glob,
        fpt,
        n_params,
        peak,
    )


def _model_config(cfg: TrainConfig, vocab_size: int):
    """The preset with the run's switches and the manifest's vocabulary."""
    from tokenmill.trainer.presets import preset

    return preset(
        cfg.model,
        vocab_size=vocab_size,
        position=cfg.position,
        activation=cfg.activation,
        embed_ln=cfg.embed_ln,
        seq_len=cfg.seq_len,
        dropout=cfg.dropout,
    )


def _describe(cfg: TrainConfig, model_cfg, n_params: int) -> None:
    """Log the model's shape and parameter count for this vocabulary; a published count is
    quoted with the vocabulary and switches it was counted for where those differ."""
    from tokenmill.trainer.model import flops_per_token
    from tokenmill.trainer.presets import PUBLISHED

    note = ""
    if cfg.model in PUBLISHED:
        count, switches = PUBLISHED[cfg.model]
        if all(getattr(model_cfg, k) == v for k, v in switches.items()):
            note = f" (published: {count:,})"
        else:
            with_ = ", ".join(f"{k}={v}" for k, v in switches.items())
            note = f" (the published {count:,} is for {with_})"
    log.info(
        "model %s: %s parameters with vocabulary %d (padded to %d)%s; %s, %s, embedding "
        "LayerNorm %s; seq %d; %.3g FLOPs/token",
        cfg.model,
        f"{n_params:,}",
        model_cfg.vocab_size,
        model_cfg.padded_vocab,
        note,
        model_cfg.position,
        model_cfg.activation,
        "on" if model_cfg.embed_ln else "off",
        model_cfg.seq_len,
        flops_per_token(model_cfg),
    )


def _build_model(cfg: TrainConfig, model_cfg):
    """The model, with the same initial weights on every rank (seeded)."""
    import torch

    from tokenmill.trainer.model import GPT

    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    return GPT(model_cfg)


def _train_step(r: _Run, step: int) -> dict:
    """Optimizer step `step` + 1: this rank's micro-batches of the global batch, accumulated;
    returns the step's record (loss averaged over ranks, the LR it used, the batch digest,
    the gradient norm)."""
    import torch

    torch.manual_seed(r.cfg.seed + 1_000_003 * step + r.rank)  # dropout: the same on resume
    lr = r.scheduler.get_last_lr()[0]  # the one this step uses
    pairs = r.data.train.next_indices(r.glob)
    # every rank reads (and so checks the token ids of) the whole global batch: a bad shard
    # stops all ranks at the same step with the same message, before any collective
    samples = torch.from_numpy(r.data.train.get(pairs))
    total = torch.zeros((), device=r.device)
    for a in range(r.accum):
        lo = (a * r.world + r.rank) * r.micro
        batch = samples[lo : lo + r.micro].to(r.device)
        loss = r.engine(batch[:, :-1], batch[:, 1:])
        r.engine.backward(loss)
        r.engine.step()
        total += loss.detach().float()
    loss = _mean_over_ranks(total, torch.tensor(float(r.accum)), r.device)
    values = {"loss": loss, "lr": lr, "batch": batch_digest(pairs)}
    grad_norm = r.engine.get_global_grad_norm()
    if grad_norm is not None:
        values["grad_norm"] = float(grad_norm)
    return values


def _log_progress(r: _Run, step: int, values: dict, clock: Throughput) -> None:
    """The terminal line of `step`; adds tokens/s, TFLOP/s per device and MFU to `values`."""
    import torch

    if r.device.type == "cuda":
        torch.cuda.synchronize()
    tokens_per_s = clock.rate()
    tflops = r.flops_per_token * tokens_per_s / r.world / 1e12
    values.update(tokens_per_s=tokens_per_s, tflops_per_device=tflops)
    mfu = f"{tflops / r.peak:.1%}" if r.peak else "n/a (give --peak-tflops)"
    if r.peak:
        values["mfu"] = tflops / r.peak
    log.info(
        "step %d/%d  loss %.4f  lr %.3g  %s tokens/s  %.3g TFLOP/s per device  MFU %s",
        step,
        r.cfg.steps,
        values["loss"],
        values["lr"],
        f"{tokens_per_s:,.0f}",
        tflops,
        mfu,
    )
    clock.next_interval(step)


def _evaluate(r: _Run) -> float | None:
    """Validation loss: the held-out batch split across ranks, averaged over all of them;
    None where nothing is held out."""
    import torch

    micro = r.micro
    per_rank = max(1, r.cfg.eval_samples // (r.world * micro)) * micro
    batch = r.valid.valid_batch(per_rank * r.world)
    if batch is None:
        return None
    mine = torch.from_numpy(batch[r.rank * per_rank : (r.rank + 1) * per_rank]).to(r.device)
    r.engine.eval()
    total = torch.zeros((), device=r.device)
    with torch.no_grad():
        for i in range(0, per_rank, micro):
            b = mine[i : i + micro]
            total += r.engine(b[:, :-1], b[:, 1:]).float() * len(b)
    r.engine.train()
    return _mean_over_ranks(total, torch.tensor(float(per_rank)), r.device)


def _mean_over_ranks(total, count, device) -> float:
    """sum(total) / sum(count) over the ranks."""
    import torch
    import torch.distributed as dist

    t = torch.stack([total.float(), count.float()]).to(device)
    dist.all_reduce(t)
    return (t[0] / t[1]).item()
