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
the metrics records past its checkpoint and logs those steps again; the per-step seed keeps
dropout the same.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import importlib
import json
import logging
import math
import os
import socket
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger("tokenmill.trainer")

# Dense bf16 peak TFLOP/s per device, by substring of torch.cuda.get_device_name().
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}


@dataclass
class TrainConfig:
    data: str
    model: str = "tiny"
    # model switches (None: the preset's)
    position: str | None = None
    activation: str | None = None
    embed_ln: bool | None = None
    seq_len: int | None = None
    dropout: float | None = None
    # DeepSpeed (None: from `deepspeed_config`, else the defaults in `deepspeed_config()`)
    deepspeed_config: str | None = None
    zero_stage: int | None = None
    micro_batch: int | None = None
    global_batch: int | None = None
    grad_accum: int | None = None
    clip_grad: float | None = None
    bf16: bool | None = None
    # optimizer and schedule (the paper's 1.3B ablations: AdamW 0.9/0.999, wd 0.1, 2e-4 -> 1e-5)
    lr: float = 2e-4
    min_lr: float = 1e-5
    warmup_steps: int | None = None  # None: warmup_tokens if given, else 1% of steps
    warmup_tokens: int | None = None
    steps: int = 1000
    stop_at: int | None = None  # leave after this step (the schedule still spans `steps`)
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    seed: int = 1234
    # data
    valid_fraction: float = 0.01
    eval_interval: int = 100
    eval_samples: int = 64
    # outputs
    save: str | None = None
    save_interval: int = 0  # 0: only at the end (and at stop_at)
    resume: bool = True
    log_dir: str | None = None  # None: SAVE/logs when saving
    log_interval: int = 10
    peak_tflops: float | None = None
    extra_ds: dict = field(default_factory=dict)  # merged last into the DeepSpeed config


def resolve_batch(micro, glob, accum, world: int) -> tuple[int, int, int]:
    """(micro, global, accumulation) with global = micro * accumulation * world, from any of
    them (defaults: micro 4, accumulation 1)."""
    if micro and glob and accum:
        pass
    elif micro and glob:
        accum = glob // (micro * world)
    elif micro:
        accum = accum or 1
        glob = micro * accum * world
    elif glob:
        accum = accum or 1
        micro = glob // (accum * world)
    else:
        micro, accum = 4, accum or 1
        glob = micro * accum * world
    if not micro or not accum or micro * accum * world != glob:
        raise ValueError(
            f"global batch {glob} is not micro batch {micro} x accumulation {accum} x "
            f"{world} processes: pick sizes that divide"
        )
    return micro, glob, accum


def deepspeed_config(cfg: TrainConfig, world: int) -> dict:
    """The DeepSpeed config: JSON file, then flags, then `extra_ds`."""
    ds = json.loads(Path(cfg.deepspeed_config).read_text()) if cfg.deepspeed_config else {}
    for section in ("optimizer", "scheduler"):
        if section in ds:
            raise ValueError(
                f"{cfg.deepspeed_config}: remove the {section!r} section; the optimizer and LR "
                "schedule come from --lr, --min-lr, --warmup, --weight-decay (as in "
                "Megatron-DeepSpeed)"
            )
    micro, glob, accum = resolve_batch(
        cfg.micro_batch or ds.get("train_micro_batch_size_per_gpu"),
        cfg.global_batch or ds.get("train_batch_size"),
        cfg.grad_accum or ds.get("gradient_accumulation_steps"),
        world,
    )
    ds.update(
        train_micro_batch_size_per_gpu=micro,
        train_batch_size=glob,
        gradient_accumulation_steps=accum,
    )
    zero = ds.setdefault("zero_optimization", {})
    if cfg.zero_stage is not None:
        zero["stage"] = cfg.zero_stage
    zero.setdefault("stage", 1)
    if cfg.clip_grad is not None:
        ds["gradient_clipping"] = cfg.clip_grad
    ds.setdefault("gradient_clipping", 1.0)
    bf16 = ds.setdefault("bf16", {})
    if cfg.bf16 is not None:
        bf16["enabled"] = cfg.bf16
    bf16.setdefault("enabled", True)
    if bf16["enabled"] and ds.get("fp16", {}).get("enabled"):
        raise ValueError("bf16 and fp16 are both enabled: choose one")
    ds.setdefault("steps_per_print", 10**9)  # we log ourselves
    ds.setdefault("wall_clock_breakdown", False)
    ds["zero_allow_untested_optimizer"] = True  # our torch AdamW
    ds.update(cfg.extra_ds)
    return ds


def lr_factor(step: int, warmup: int, total: int, lr: float, min_lr: float) -> float:
    """Multiplier of `lr` after `step` optimizer steps: linear warmup, then cosine to min_lr."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return (min_lr + (lr - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))) / lr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _setup_logging(rank: int) -> None:
    if rank == 0 and not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        log.addHandler(handler)
        log.propagate = False
    log.setLevel(logging.INFO if rank == 0 else logging.WARNING)


class MissingTrainExtra(ImportError):
    """torch or deepspeed cannot be imported: the `train` extra is not installed (or broken)."""


def _import_train_extra(name: str):
    try:
        return importlib.import_module(name)
    except ImportError as e:
        # the README's install advice: the CPU or CUDA torch wheel first, then the extra, so
        # that deepspeed does not pull a torch build of its own choosing
        raise MissingTrainExtra(
            f"`tokenmill train` needs the train extra ({e}): pip install torch first, then "
            "pip install 'tokenmill[train]'"
        ) from e


def batch_digest(pairs: list[tuple[int, int]]) -> str:
    """16 hex digits naming a step's global batch by its (source, sample index) pairs: equal
    digests, equal samples in the same order (the sample's tokens are a function of the pair)."""
    rows = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    return hashlib.blake2b(rows.tobytes(), digest_size=8).hexdigest()


def write_latest(save: Path, tag: str) -> None:
    """Point SAVE/latest at `tag`, atomically: a kill leaves the old or the new name, never an
    empty or half-written file."""
    tmp = save / f".latest.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(tag)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, save / "latest")
    dir_fd = os.open(save, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def drop_metrics_after(path: Path, step: int) -> int:
    """Keep the records of steps <= `step` in metrics.jsonl (a resumed run writes the later
    ones again); returns how many were dropped, a torn last line included."""
    if not path.exists():
        return 0
    kept, dropped = [], 0
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # cut short by a kill
            dropped += 1
            continue
        if record.get("step", 0) <= step:
            kept.append(line)
        else:
            dropped += 1
    if dropped:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
        os.replace(tmp, path)
    return dropped


@dataclass
class _Held:
    """What the teardown closes: the engine and rank 0's open logs."""

    engine: object = None
    logs: list = field(default_factory=list)


def _teardown(dist, held: _Held, completed: bool) -> None:
    """Close logs, destroy the engine, then the process groups, while the interpreter is whole:
    left to interpreter exit, gloo's threads can abort the process ("terminate called without
    an active exception"), which DESIGN.md saw with ZeRO-3 + bf16. The barrier only after a
    completed run: after an error the other ranks may never reach it."""
    for f in held.logs:
        f.close()
    held.logs.clear()
    if held.engine is not None and hasattr(held.engine, "destroy"):
        held.engine.destroy()
    held.engine = None
    gc.collect()  # the engine's buffers and pending work go now, not at interpreter exit
    if completed:
        dist.barrier()
    _unlink_shm(dist.get_rank())
    import deepspeed.comm

    # DeepSpeed's, not torch's: it also drops DeepSpeed's module-level handles on the groups
    # (its clone of the world group), whose gloo threads would otherwise live until exit
    deepspeed.comm.destroy_process_group()
    gc.collect()


def _unlink_shm(rank: int) -> None:
    # DeepSpeed's CPU shared-memory all-reduce op creates /dev/shm/deepspeed_allreduce_buffer_
    # UID_ADDR_PORT_RANK (69 MB per rank) at init and never unlinks it: one more per run until
    # the tmpfs is full. Unlinking our own name leaves peers' mappings valid.
    name = "_".join(
        [
            "deepspeed_allreduce_buffer",
            str(os.getuid()),
            os.environ.get("MASTER_ADDR", ""),
            os.environ.get("MASTER_PORT", ""),
            str(rank),
        ]
    )
    with contextlib.suppress(OSError):
        os.unlink(Path("/dev/shm") / name)


def run(cfg: TrainConfig) -> dict:
    """Train; returns a summary (steps, last loss, last validation loss, tokens/s).

    Raises MissingTrainExtra (an ImportError) where torch or deepspeed cannot be imported.
    Every path out, an error included, destroys the engine and the process groups."""
    torch = _import_train_extra("torch")

    if "DS_ACCELERATOR" not in os.environ and not torch.cuda.is_available():
        os.environ["DS_ACCELERATOR"] = "cpu"
    if "RANK" not in os.environ:  # a plain single process: be a world of one
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1")
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(_free_port()))

    deepspeed = _import_train_extra("deepspeed")
    import torch.distributed as dist
    from deepspeed.accelerator import get_accelerator

    deepspeed.utils.logger.setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*torch\.distributed\.\w+` is deprecated")
    deepspeed.init_distributed(dist_backend=get_accelerator().communication_backend_name())
    held = _Held()
    try:
        summary = _train(cfg, held)
    except BaseException:
        try:
            _teardown(dist, held, completed=False)
        except Exception:  # the error that brought us here is the one to report
            log.exception("teardown after the error failed")
        raise
    _teardown(dist, held, completed=True)
    return summary


def _train(cfg: TrainConfig, held: _Held) -> dict:
    import deepspeed
    import torch
    import torch.distributed as dist
    from deepspeed.accelerator import get_accelerator

    from tokenmill.trainer.data import ManifestData
    from tokenmill.trainer.model import GPT, flops_per_token
    from tokenmill.trainer.presets import PUBLISHED, preset

    accel = get_accelerator()
    rank, world = dist.get_rank(), dist.get_world_size()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    _setup_logging(rank)
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
    data = ManifestData(cfg.data, probe.seq_len, cfg.seed, cfg.valid_fraction)
    model_cfg = preset(
        cfg.model,
        vocab_size=data.vocab_size,
        position=cfg.position,
        activation=cfg.activation,
        embed_ln=cfg.embed_ln,
        seq_len=cfg.seq_len,
        dropout=cfg.dropout,
    )
    S = model_cfg.seq_len
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    model = GPT(model_cfg)
    n_params = model.num_params()
    fpt = flops_per_token(model_cfg)
    note = ""
    if cfg.model in PUBLISHED:
        count, switches = PUBLISHED[cfg.model]
        note = f" (published: {count:,}" + (f" with {switches})" if switches else ")")
    log.info(
        "model %s: %s parameters%s; %s, %s, embedding LayerNorm %s; vocab %d -> %d; seq %d; "
        "%.3g FLOPs/token",
        cfg.model,
        f"{n_params:,}",
        note,
        model_cfg.position,
        model_cfg.activation,
        "on" if model_cfg.embed_ln else "off",
        model_cfg.vocab_size,
        model_cfg.padded_vocab,
        S,
        fpt,
    )

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
        betas=cfg.betas,
        eps=cfg.eps,
    )
    if cfg.warmup_steps is not None:
        warmup = cfg.warmup_steps
    elif cfg.warmup_tokens is not None:
        warmup = math.ceil(cfg.warmup_tokens / (glob * S))
    else:
        warmup = cfg.steps // 100
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, warmup, cfg.steps, cfg.lr, cfg.min_lr)
    )
    engine, _, _, _ = deepspeed.initialize(
        model=model, optimizer=optimizer, lr_scheduler=scheduler, config=ds_config
    )
    held.engine = engine

    step = 0
    save = Path(cfg.save) if cfg.save else None
    if save and cfg.resume and (save / "latest").exists():
        path, client = engine.load_checkpoint(str(save))
        if path is None:
            raise RuntimeError(f"{save}: could not load the checkpoint named in 'latest'")
        if client["model"] != asdict(model_cfg):
            raise ValueError(f"{save}: the checkpoint is of another model: {client['model']}")
        data.load_state_dict(client["data"])
        step = client["step"]
        log.info("resumed from %s at step %d (%d samples seen)", path, step, data.train.consumed)

    log_dir = Path(cfg.log_dir) if cfg.log_dir else (save / "logs" if save else None)
    metrics = writer = None
    if rank == 0 and log_dir:
        log_dir.mkdir(parents=True, exist_ok=True)
        if step:
            # a run killed after its last checkpoint logged steps that this one does again
            dropped = drop_metrics_after(log_dir / "metrics.jsonl", step)
            if dropped:
                log.info(
                    "%s: dropped %d records past step %d (logged after the last checkpoint)",
                    log_dir / "metrics.jsonl",
                    dropped,
                    step,
                )
        metrics = open(log_dir / "metrics.jsonl", "a")
        held.logs.append(metrics)
        try:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step: TensorBoard hides the events of steps past the checkpoint likewise
            writer = SummaryWriter(str(log_dir), purge_step=step + 1 if step else None)
            held.logs.append(writer)
        except ImportError:
            log.warning(
                "tensorboard is not installed: no TensorBoard logs (pip install tensorboard)"
            )

    peak = cfg.peak_tflops
    if peak is None and device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        peak = next((v for k, v in PEAK_TFLOPS.items() if k in name), None)

    def record(values: dict) -> None:
        if metrics:
            metrics.write(json.dumps({"step": step, **values}) + "\n")
            metrics.flush()
        if writer:
            for k, v in values.items():
                if isinstance(v, int | float):
                    writer.add_scalar(f"train/{k}" if k != "valid_loss" else "valid/loss", v, step)

    def mean_over_ranks(total: torch.Tensor, count: torch.Tensor) -> float:
        t = torch.stack([total.float(), count.float()]).to(device)
        dist.all_reduce(t)
        return (t[0] / t[1]).item()

    def evaluate() -> float | None:
        per_rank = max(1, cfg.eval_samples // (world * micro)) * micro
        batch = data.valid_batch(per_rank * world)
        if batch is None:
            return None
        mine = torch.from_numpy(batch[rank * per_rank : (rank + 1) * per_rank]).to(device)
        engine.eval()
        total = torch.zeros((), device=device)
        with torch.no_grad():
            for i in range(0, per_rank, micro):
                b = mine[i : i + micro]
                total += engine(b[:, :-1], b[:, 1:]).float() * len(b)
        engine.train()
        return mean_over_ranks(total, torch.tensor(float(per_rank)))

    def save_checkpoint() -> None:
        client = {"step": step, "data": data.state_dict(), "model": asdict(model_cfg)}
        # `latest` is ours to write: DeepSpeed's rank 0 writes it before the other ranks have
        # finished their files, so a kill in between would leave it naming a torn checkpoint
        engine.save_checkpoint(str(save), tag=f"step{step}", client_state=client, save_latest=False)
        dist.barrier()  # every rank's files are written
        if rank == 0:
            write_latest(save, f"step{step}")
        log.info("saved %s", save / f"step{step}")

    stop = min(cfg.steps, cfg.stop_at) if cfg.stop_at is not None else cfg.steps
    last = {"loss": None, "valid_loss": None}
    t0, steps_timed, tokens_per_s = time.perf_counter(), 0, None
    # tokens/s from the first log on (past warm-up), evaluation and checkpoints left out
    steady = {"t": 0.0, "step": None, "paused_s": 0.0}
    engine.train()
    while step < stop:
        torch.manual_seed(cfg.seed + 1_000_003 * step + rank)  # dropout: the same on resume
        lr = scheduler.get_last_lr()[0]  # the one this step uses
        pairs = data.train.next_indices(glob)
        total = torch.zeros((), device=device)
        for a in range(accum):
            lo = (a * world + rank) * micro
            batch = torch.from_numpy(data.train.get(pairs[lo : lo + micro])).to(device)
            loss = engine(batch[:, :-1], batch[:, 1:])
            engine.backward(loss)
            engine.step()
            total += loss.detach().float()
        step += 1
        steps_timed += 1
        loss = mean_over_ranks(total, torch.tensor(float(accum)))
        last["loss"] = loss
        values = {"loss": loss, "lr": lr, "batch": batch_digest(pairs)}
        grad_norm = engine.get_global_grad_norm()
        if grad_norm is not None:
            values["grad_norm"] = float(grad_norm)
        if step % cfg.log_interval == 0 or step == stop:
            if device.type == "cuda":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            tokens_per_s = steps_timed * glob * S / dt
            tflops = fpt * tokens_per_s / world / 1e12
            values.update(tokens_per_s=tokens_per_s, tflops_per_device=tflops)
            mfu = f"{tflops / peak:.1%}" if peak else "n/a (give --peak-tflops)"
            if peak:
                values["mfu"] = tflops / peak
            log.info(
                "step %d/%d  loss %.4f  lr %.3g  %s tokens/s  %.3g TFLOP/s per device  MFU %s",
                step,
                cfg.steps,
                loss,
                values["lr"],
                f"{tokens_per_s:,.0f}",
                tflops,
                mfu,
            )
            t0, steps_timed = time.perf_counter(), 0
            if steady["step"] is None:
                steady.update(t=t0, step=step, paused_s=0.0)
        if cfg.eval_interval and (step % cfg.eval_interval == 0 or step == stop):
            t_eval = time.perf_counter()
            vloss = evaluate()
            t0 += time.perf_counter() - t_eval  # keep evaluation out of tokens/s
            steady["paused_s"] += time.perf_counter() - t_eval
            if vloss is not None:
                values["valid_loss"] = last["valid_loss"] = vloss
                log.info("step %d  validation loss %.4f (%.2f ppl)", step, vloss, math.exp(vloss))
        record(values)
        if save and (step == stop or (cfg.save_interval and step % cfg.save_interval == 0)):
            t_save = time.perf_counter()
            save_checkpoint()
            t0 += time.perf_counter() - t_save
            steady["paused_s"] += time.perf_counter() - t_save

    steady_tokens_per_s = None
    if steady["step"] is not None and step > steady["step"]:
        dt = time.perf_counter() - steady["t"] - steady["paused_s"]
        steady_tokens_per_s = (step - steady["step"]) * glob * S / dt
    return {
        "steps": step,
        "loss": last["loss"],
        "valid_loss": last["valid_loss"],
        "tokens_per_s": tokens_per_s,  # of the last log interval
        "steady_tokens_per_s": steady_tokens_per_s,  # after the first log interval
        "parameters": n_params,
        "world_size": world,
    }
