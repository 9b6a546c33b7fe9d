"""`tokenmill ablate SPEC.yaml --out DIR`: the paper's experiment as one command.

A spec names a base (model preset, token budget, seed, training options, prepared data) and
variants, each changing the corpus (`sources` of the base manifest, or another manifest as
`data`) or the architecture (`position`, `activation`, `embed_ln`). Every variant trains the
same model size on the same number of tokens with the same seed and batch, and is evaluated the
same way: validation loss on one held-out mixture (the held-out slice of `validation.data`,
default the base manifest, read with the same seed, so every variant sees the same samples),
and the zero-shot tasks given (lm-evaluation-harness through `tokenmill eval`'s adapter).

Each variant is `tokenmill train` in a subprocess (with `processes` > 1 under torchrun), its
command line written to DIR/variants/NAME/command.txt, checkpoints in DIR/variants/NAME/ckpt:

    DIR/variants/NAME/settings.json   what the variant is (a rerun with other settings refused)
                      train.log       the trainer's output
                      ckpt/           `tokenmill train --save` (logs/metrics.jsonl: the curves)
                      zero_shot.json  the harness's results
                      result.json     written last: the variant is done
    DIR/ablation.json, DIR/ablation.html   every finished variant, rewritten after each one

Runs are resumable: a finished variant is skipped, a stopped one continues from its last
checkpoint (the trainer's exact resume). Variants can be spread over jobs or nodes
(`--variant NAME`, one per job: deploy/ablate.sbatch); a lock per variant keeps two jobs off
the same one, and the page is rewritten by whichever finishes. The sample order of a variant
on a subset of the base manifest's sources differs from the base's: the blend is over its
own sources.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import math
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tokenmill.fsio import atomic_path, load_yaml

log = logging.getLogger("tokenmill.ablate")

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# what the spec decides for every variant at once; not `train:` options
OWN = {
    "data",
    "model",
    "steps",
    "stop_at",
    "seed",
    "save",
    "resume",
    "log_dir",
    "mixture",
    "valid_data",
    "valid_fraction",
    "eval_samples",
    "eval_interval",
    "position",
    "activation",
    "embed_ln",
    "local_rank",
    "extra_ds",
}


class AblationError(ValueError):
    """What stops an ablation, in one line: a bad spec, a failed variant, a busy one."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


class Switches(_Spec):
    """The architecture switches a variant may change (None: the base's, else the preset's)."""

    position: Literal["none", "learned", "rotary", "alibi"] | None = None
    activation: Literal["gelu", "swiglu"] | None = None
    embed_ln: bool | None = None


class Base(Switches):
    data: str = Field(description="a prepare output (OUT or OUT/manifest.json), spec-relative")
    model: str = "1b3"
    tokens: int | str = Field(description="tokens per variant: 112B, 1e9, 2M")
    seed: int = Field(1234, ge=0)
    processes: int = Field(1, ge=1, description="training processes per variant (torchrun)")
    train: dict[str, int | float | bool | str] = Field(
        default_factory=dict, description="other `tokenmill train` options, by field name"
    )


class Variant(Switches):
    data: str | None = None  # another prepare output
    sources: list[str] | dict[str, float] | None = None  # of the variant's manifest

    @field_validator("sources")
    @classmethod
    def _some(cls, v):
        if v is not None and not v:
            raise ValueError("give at least one source")
        return v


class Validation(_Spec):
    data: str | None = None  # default: base.data
    fraction: float = Field(0.01, gt=0, lt=1)
    samples: int = Field(64, ge=1)
    interval: int | None = Field(None, ge=1)  # steps; default a tenth of the run


class ZeroShot(_Spec):
    tasks: list[str] = Field(default_factory=list)  # none: validation loss only
    include_path: list[str] = Field(default_factory=list)
    limit: int | float | None = None
    batch_size: int = Field(16, ge=1)
    device: str = "auto"  # cuda where torch sees one, else cpu
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"


class AblationSpec(_Spec):
    name: str = "ablation"
    base: Base
    validation: Validation = Field(default_factory=Validation)
    zero_shot: ZeroShot = Field(default_factory=ZeroShot)
    variants: dict[str, Variant]

    @field_validator("variants")
    @classmethod
    def _names(cls, v):
        if not v:
            raise ValueError("give at least one variant")
        for name in v:
            if not NAME.match(name):
                raise ValueError(
                    f"variant name {name!r}: letters, digits, '.', '_', '-' only (it names a "
                    "folder)"
                )
        return v


@dataclass
class Planned:
    """One variant, resolved: its `tokenmill train` settings and where it writes."""

    name: str
    folder: Path
    settings: dict  # the TrainConfig fields it trains with (paths absolute)
    command: list[str]


def load_spec(path: Path) -> AblationSpec:
    """The spec at `path`, with data paths made absolute against the spec's folder."""
    try:
        raw = load_yaml(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AblationError(f"{path}: no such spec file") from None
    except yaml.YAMLError as e:
        raise AblationError(f"{path}: not YAML ({e})") from None
    if not isinstance(raw, dict):
        raise AblationError(f"{path}: a spec is a mapping with base:, variants: (see examples/)")
    try:
        spec = AblationSpec.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise AblationError(
            f"{path}: {where}: {first['msg']} ({e.error_count()} error(s))"
        ) from None
    here = Path(path).resolve().parent
    spec.base.data = str(_manifest(here / spec.base.data))
    for v in spec.variants.values():
        if v.data is not None:
            v.data = str(_manifest(here / v.data))
    if spec.validation.data is not None:
        spec.validation.data = str(_manifest(here / spec.validation.data))
    spec.zero_shot.include_path = [str((here / p).resolve()) for p in spec.zero_shot.include_path]
    if isinstance(spec.base.train.get("deepspeed_config"), str):
        ds = (here / spec.base.train["deepspeed_config"]).resolve()
        spec.base.train["deepspeed_config"] = str(ds)
    return spec


def _manifest(p: Path) -> Path:
    p = p.resolve()
    return p / "manifest.json" if p.is_dir() or not p.suffix else p


def plan(spec: AblationSpec, out: Path) -> list[Planned]:
    """Every variant's `tokenmill train` settings and command; AblationError for a spec that
    cannot run (an unknown train option, sizes that give no whole step, a missing manifest,
    other tokenizers, an unknown source)."""
    from tokenmill.shards.plan import parse_count
    from tokenmill.trainer.cli import train_config
    from tokenmill.trainer.presets import PRESETS, TRAINING, check_name

    b = spec.base
    try:
        check_name(b.model)
        tokens = parse_count(b.tokens)
    except ValueError as e:
        raise AblationError(f"base: {e}") from None
    unknown = sorted(set(b.train) - _train_fields())
    own = sorted(set(b.train) & OWN)
    if unknown or own:
        raise AblationError(
            "base.train: "
            + (f"unknown `tokenmill train` option(s) {', '.join(unknown)}; " if unknown else "")
            + (
                f"{', '.join(own)} are the spec's own (base:, validation:, variants:)"
                if own
                else ""
            )
        )
    train = {k: _coerce(k, v) for k, v in b.train.items()}
    seq_len = int(train.get("seq_len") or PRESETS[b.model]["seq_len"])
    glob = int(train.get("global_batch") or TRAINING[b.model].global_batch)
    steps = math.ceil(tokens / (glob * seq_len))
    if steps < 1:
        raise AblationError(f"base.tokens {tokens}: not one step of {glob} x {seq_len} tokens")
    v = spec.validation
    interval = v.interval or max(1, steps // 10)
    valid_data = v.data or b.data
    out = Path(out).resolve()
    planned = []
    for name, var in spec.variants.items():
        mixture = None
        if var.sources is not None:
            src = var.sources
            mixture = {s: 1.0 for s in src} if isinstance(src, list) else dict(src)
        fields = {
            **train,
            "global_batch": glob,
            "data": var.data or b.data,
            "model": b.model,
            "position": var.position or b.position,
            "activation": var.activation or b.activation,
            "embed_ln": var.embed_ln if var.embed_ln is not None else b.embed_ln,
            "steps": steps,
            "seed": b.seed,
            "mixture": mixture,
            "valid_data": valid_data,
            "valid_fraction": v.fraction,
            "eval_samples": v.samples,
            "eval_interval": interval,
            "save": str(out / "variants" / name / "ckpt"),
        }
        try:
            text = _mixture_text(mixture) if mixture else None
            beta2 = train.get("adam_beta2", 0.999)
            train_config({**_defaults(), **fields, "mixture": text, "adam_beta2": beta2})
        except (TypeError, ValueError) as e:
            raise AblationError(f"variant {name}: {e}") from None
        planned.append(
            Planned(name, out / "variants" / name, fields, _command(fields, b.processes))
        )
    _check_data(planned, valid_data)
    return planned


def _coerce(name: str, value):
    """A `train:` option as `tokenmill train` takes it: numbers for number options (YAML reads
    2e-4 as a string), a bool only for switches, strings for the rest; AblationError else."""
    from dataclasses import fields

    from tokenmill.trainer.settings import TrainConfig

    if name in ("warmup_tokens", "deepspeed_config"):  # a count (375M) and a path
        if isinstance(value, bool):
            raise AblationError(f"base.train.{name}: {value!r} is not a valid value")
        return str(value)
    kind = {f.name: str(f.type) for f in fields(TrainConfig)}.get(name, "float")  # adam_beta2
    wrong = AblationError(f"base.train.{name}: {value!r} is not a valid value ({kind})")
    if "bool" in kind:
        if not isinstance(value, bool):
            raise wrong
        return value
    if isinstance(value, bool):
        raise wrong
    if kind.startswith("int"):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if not isinstance(value, int):
            raise wrong
        return value
    if kind.startswith("float"):
        try:
            return float(value)
        except ValueError:
            raise wrong from None
    return str(value)


def _train_fields() -> set[str]:
    from dataclasses import fields

    from tokenmill.trainer.settings import TrainConfig

    return {f.name for f in fields(TrainConfig)} - {"betas", "eps"} | {"adam_beta2"}


def _defaults() -> dict:
    """`tokenmill train`'s parameters at their defaults (what typer would pass)."""
    import inspect

    from tokenmill.trainer.cli import train

    sig = inspect.signature(train)
    return {
        k: p.default
        for k, p in sig.parameters.items()
        if k != "ctx" and p.default is not inspect.Parameter.empty
    }


def _flag(name: str) -> str:
    return "--" + {"deepspeed_config": "deepspeed", "warmup_steps": "warmup"}.get(
        name, name
    ).replace("_", "-")


def _mixture_text(m: dict[str, float]) -> str:
    return ",".join(f"{s}={w!r}" for s, w in m.items())


def _command(fields: dict, processes: int) -> list[str]:
    """The `tokenmill train` command line of `fields` (None values left to their defaults)."""
    if processes > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        cmd += [f"--nproc-per-node={processes}", "-m", "tokenmill", "train"]
    else:
        cmd = [sys.executable, "-m", "tokenmill", "train"]
    for k, v in fields.items():
        if v is None:
            continue
        if k == "embed_ln":
            cmd.append("--embed-ln" if v else "--no-embed-ln")
        elif k == "mixture":
            cmd += ["--mixture", _mixture_text(v)]
        elif isinstance(v, bool):
            cmd.append(_flag(k) if v else "--no-" + _flag(k)[2:])
        else:
            cmd += [_flag(k), str(v)]
    return cmd


def _check_data(planned: list[Planned], valid_data: str) -> None:
    """Every manifest readable, the sources named there, one tokenizer for all (losses and
    zero-shot answers compare only then): before any variant starts."""
    from tokenmill.trainer.data import ManifestData

    try:
        valid = ManifestData(valid_data, 8, 0, 0.0)
    except (ValueError, FileNotFoundError) as e:
        raise AblationError(f"validation data: {e}") from None
    seen: dict[str, ManifestData] = {valid_data: valid}
    for p in planned:
        s = p.settings
        try:
            data = seen.get(s["data"]) or ManifestData(s["data"], 8, 0, 0.0)
            seen[s["data"]] = data
            if s["mixture"]:
                ManifestData(s["data"], 8, 0, 0.0, s["mixture"])  # unknown sources refused
            valid.require_same_tokenizer(data, f"variant {p.name}'s data")
        except (ValueError, FileNotFoundError) as e:
            raise AblationError(f"variant {p.name}: {e}") from None


def digest(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def variant_key(p: Planned, spec: AblationSpec) -> str:
    """What a variant's results depend on: its training settings and the zero-shot setup."""
    return digest({"train": p.settings, "zero_shot": spec.zero_shot.model_dump()})


@contextlib.contextmanager
def _variant_lock(folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "lock", "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            who = f.read().strip() or "another process"
            raise AblationError(
                f"variant {folder.name} is being run by {who}: wait for it, or run another "
                "variant (--variant NAME)"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {os.uname().nodename}\n")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _write_json(path: Path, data: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, default=str) + "\n", encoding="utf-8")


def run_variant(p: Planned, spec: AblationSpec, quiet: bool = False) -> tuple[dict, bool]:
    """Train and evaluate one variant (skipped when finished); (its result, whether it ran)."""
    with _variant_lock(p.folder):
        key = variant_key(p, spec)
        given = _read_json(p.folder / "settings.json")
        if given is not None and given.get("digest") != key:
            raise AblationError(
                f"variant {p.name} in {p.folder.parent.parent} was started with other settings "
                f"(see {p.folder / 'settings.json'}): use another --out, or delete "
                f"{p.folder} to run it again"
            )
        done = _read_json(p.folder / "result.json")
        if done is not None and done.get("digest") == key:
            return done, False
        _write_json(p.folder / "settings.json", {"digest": key, "train": p.settings})
        (p.folder / "command.txt").write_text(shlex.join(p.command) + "\n", encoding="utf-8")
        start = time.time()
        _train(p, quiet)
        curve = read_curve(Path(p.settings["save"]) / "logs" / "metrics.jsonl")
        last = curve[-1] if curve else {}
        if last.get("step") != p.settings["steps"] or "valid_loss" not in last:
            raise AblationError(
                f"variant {p.name}: the trainer left no validation loss at step "
                f"{p.settings['steps']} in {p.settings['save']}/logs/metrics.jsonl (see "
                f"{p.folder / 'train.log'})"
            )
        zero = _zero_shot(p, spec.zero_shot)
        result = {
            "variant": p.name,
            "digest": key,
            "steps": p.settings["steps"],
            "tokens": p.settings["steps"] * p.settings["global_batch"] * _seq_len(p.settings),
            "loss": last.get("loss"),
            "valid_loss": last["valid_loss"],
            "zero_shot": zero,
            "mean_accuracy": mean_accuracy(zero),
            "seconds": round(time.time() - start, 1),
        }
        _write_json(p.folder / "result.json", result)
        return result, True


def _seq_len(settings: dict) -> int:
    from tokenmill.trainer.presets import PRESETS

    return int(settings.get("seq_len") or PRESETS[settings["model"]]["seq_len"])


def _train(p: Planned, quiet: bool) -> None:
    """`tokenmill train` for the variant, its output to train.log (and the terminal unless
    quiet); resumes from the variant's last checkpoint where there is one."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(p.folder / "train.log", "ab") as logf:
        logf.write(f"\n$ {shlex.join(p.command)}\n".encode())
        logf.flush()
        proc = subprocess.Popen(
            p.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env
        )
        try:
            for line in proc.stdout:
                logf.write(line)
                logf.flush()
                if not quiet:
                    sys.stderr.write(f"[{p.name}] {line.decode(errors='replace')}")
            rc = proc.wait()
        except BaseException:
            proc.terminate()
            proc.wait()
            raise
    if rc != 0:
        tail = (p.folder / "train.log").read_text(errors="replace").strip().splitlines()[-5:]
        raise AblationError(
            f"variant {p.name}: training exited with {rc} (log: {p.folder / 'train.log'}):\n  "
            + "\n  ".join(tail)
        )


def _zero_shot(p: Planned, z: ZeroShot) -> dict:
    """{task: {metric: value}} of the harness on the variant's last checkpoint ({} without
    tasks); the harness's results JSON in zero_shot.json."""
    if not z.tasks:
        return {}
    from tokenmill.eval.run import EvalError, evaluate, write_results

    device = z.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        done = evaluate(
            p.settings["save"],
            z.tasks,
            [Path(x) for x in z.include_path],
            limit=z.limit,
            batch_size=z.batch_size,
            device=device,
            dtype=z.dtype,
        )
    except EvalError as e:
        raise AblationError(f"variant {p.name}: zero-shot: {e}") from None
    write_results(done, p.folder / "zero_shot.json")
    return task_metrics(done.results)


def task_metrics(results: dict) -> dict:
    """{task: {metric: value}} of a harness results dict: each task's "metric,filter" numbers
    (a filter other than `none` kept in the name), stderrs and the rest (alias, sample_len)
    left out; groups are not tasks."""
    out = {}
    for task, values in results.get("results", {}).items():
        if task in results.get("groups", {}):
            continue
        row = {}
        for key, val in values.items():
            metric, comma, filt = key.partition(",")  # the harness's "metric,filter" keys
            if not comma or "stderr" in metric or isinstance(val, bool):
                continue
            if not isinstance(val, int | float):
                continue
            row[metric if filt in ("", "none") else f"{metric},{filt}"] = val
        if row:
            out[task] = row
    return out


def mean_accuracy(zero: dict) -> float | None:
    """The paper's summary: mean `acc` over the tasks that report one (None without any)."""
    accs = [m["acc"] for m in zero.values() if "acc" in m]
    return sum(accs) / len(accs) if accs else None


def read_curve(path: Path) -> list[dict]:
    """metrics.jsonl's records as {step, loss, valid_loss?} (torn last line skipped)."""
    out = []
    with contextlib.suppress(FileNotFoundError), open(path, encoding="utf-8") as f:
        for line in f:
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            row = {"step": r["step"], "loss": r.get("loss")}
            if r.get("valid_loss") is not None:
                row["valid_loss"] = r["valid_loss"]
            out.append(row)
    return out


def summarize(spec: AblationSpec, planned: list[Planned]) -> dict:
    """ablation.json's content: the spec, and per variant its settings, result (None while
    not finished) and curves."""
    variants = []
    for p in planned:
        result = _read_json(p.folder / "result.json")
        stale = result is not None and result.get("digest") != variant_key(p, spec)
        variants.append(
            {
                "name": p.name,
                "changes": spec.variants[p.name].model_dump(exclude_none=True),
                "settings": p.settings,
                # a result of other settings (the spec changed since) is not this variant's
                "result": None if stale else result,
                "stale": stale,
                "curve": read_curve(Path(p.settings["save"]) / "logs" / "metrics.jsonl"),
            }
        )
    return {
        "name": spec.name,
        "spec": spec.model_dump(),
        "steps": planned[0].settings["steps"],
        "tokens": planned[0].settings["steps"]
        * planned[0].settings["global_batch"]
        * _seq_len(planned[0].settings),
        "variants": variants,
    }


def write_outputs(spec: AblationSpec, planned: list[Planned], out: Path) -> dict:
    """DIR/ablation.json and DIR/ablation.html from what is finished now."""
    from tokenmill.report.ablation import render

    summary = summarize(spec, planned)
    _write_json(out / "ablation.json", summary)
    with atomic_path(out / "ablation.html") as tmp:
        tmp.write_text(render(summary), encoding="utf-8")
    return summary


def gpu_hours(spec: AblationSpec, gpu: str, tflops: float | None) -> dict:
    """Per variant and in all: 6·N·D FLOPs over the GPU's achieved throughput (shards/plan.py's
    GPU table), N the variant's parameters at the base manifest's vocabulary."""
    from tokenmill.shards.manifest import load_manifest
    from tokenmill.shards.plan import GPUS, parse_count
    from tokenmill.trainer.model import count_params
    from tokenmill.trainer.presets import preset

    if gpu not in GPUS:
        raise AblationError(f"unknown GPU {gpu!r}; known: {', '.join(GPUS)}")
    x = (tflops or GPUS[gpu]["achieved_tflops"]) * 1e12
    vocab = int(load_manifest(spec.base.data)["tokenizer"]["vocab_size"])
    tokens = parse_count(spec.base.tokens)
    rows = {}
    for name, v in spec.variants.items():
        cfg = preset(
            spec.base.model,
            vocab_size=vocab,
            position=v.position or spec.base.position,
            activation=v.activation or spec.base.activation,
            embed_ln=v.embed_ln if v.embed_ln is not None else spec.base.embed_ln,
        )
        n = count_params(cfg)
        rows[name] = {"params": n, "gpu_hours": 6 * n * tokens / x / 3600}
    return {
        "gpu": gpu,
        "achieved_tflops": x / 1e12,
        "variants": rows,
        "total_gpu_hours": sum(r["gpu_hours"] for r in rows.values()),
    }
