"""The optimisation loop shared by drafter and target training: AdamW, warmup + cosine schedule, gradient
clipping, periodic checkpoints, and resuming.

A checkpoint is a directory with `state.safetensors` (parameters, AdamW moments and step counts; no
pickles) and `state.json` (the step, the loss history, and `meta`, which a resume must match exactly:
the options and the data fingerprint). Batches depend only on the step number (`data.batch_indices`)
and the schedule on the step number, so a resumed run computes what the uninterrupted run would have,
bit for bit.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from edge_mtp.errors import EdgeMTPError

STATE, META = "state.safetensors", "state.json"


@dataclass(frozen=True)
class Schedule:
    steps: int
    lr: float
    warmup: int = 0
    final_lr_ratio: float = 0.1
    weight_decay: float = 0.0
    clip: float = 1.0
    betas: tuple[float, float] = (0.9, 0.95)


def lr_at(s: Schedule, step: int) -> float:
    """Linear warmup over `warmup` steps, then cosine decay to `final_lr_ratio` x lr at the last step."""
    if step < s.warmup:
        return s.lr * (step + 1) / s.warmup
    progress = (step - s.warmup) / max(1, s.steps - 1 - s.warmup)
    return s.lr * (s.final_lr_ratio + (1 - s.final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def make_optimizer(params: dict[str, torch.nn.Parameter], s: Schedule) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (norm gains and scalars are left alone)."""
    decay = [p for p in params.values() if p.dim() >= 2]
    rest = [p for p in params.values() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": s.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=s.lr, betas=s.betas, foreach=False)


@dataclass
class Run:
    """What the loop carries from step to step (and what a checkpoint stores)."""

    params: dict[str, torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    step: int = 0
    history: list[dict] = field(default_factory=list)  # one entry per `log_every` steps


def save_checkpoint(directory: Path, run: Run, meta: dict) -> None:
    """Write the run's state to `directory` atomically (a new directory replaces the old one)."""
    tensors = {}
    for name, p in run.params.items():
        tensors[f"param/{name}"] = p.detach().cpu().contiguous()
        for key, value in run.optimizer.state.get(p, {}).items():
            tensors[f"{key}/{name}"] = value.detach().cpu().reshape(-1).contiguous() if key == "step" else \
                value.detach().cpu().contiguous()
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent))
    try:
        save_file(tensors, str(tmp / STATE), metadata={"format": "pt"})
        (tmp / META).write_text(json.dumps({"step": run.step, "history": run.history, "meta": meta}, indent=1) + "\n")
        old = directory.with_name(directory.name + ".old")
        if directory.exists():
            os.replace(directory, old)
        os.replace(tmp, directory)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_checkpoint(directory: Path, run: Run, meta: dict) -> None:
    """Restore a run saved by `save_checkpoint`; its `meta` must equal this run's."""
    directory = Path(directory)
    info_path, state_path = directory / META, directory / STATE
    if not info_path.is_file() or not state_path.is_file():
        raise EdgeMTPError(f"{directory}: no checkpoint to resume from ({META} / {STATE} missing)")
    try:
        info = json.loads(info_path.read_text())
        tensors = load_file(str(state_path))
    except (OSError, ValueError) as e:
        raise EdgeMTPError(f"{directory}: unreadable checkpoint ({e})") from None
    key, then, now = _first_difference(info.get("meta", {}), json.loads(json.dumps(meta)))
    if key:
        raise EdgeMTPError(f"{info_path}: made with {key}={then!r}, this run has {now!r}; "
                           "resume with the same options and data, or start afresh")
    with torch.no_grad():
        for name, p in run.params.items():
            if f"param/{name}" not in tensors:
                raise EdgeMTPError(f"{state_path}: no tensor param/{name}")
            p.copy_(tensors[f"param/{name}"])
            state = {key: tensors[f"{key}/{name}"].to(p.device) for key in ("step", "exp_avg", "exp_avg_sq")
                     if f"{key}/{name}" in tensors}
            if state:
                state["step"] = state["step"].reshape(()).cpu()
                run.optimizer.state[p] = state
    run.step, run.history = int(info["step"]), list(info.get("history", []))


def _first_difference(a: dict, b: dict, prefix: str = "") -> tuple[str, object, object]:
    """The first key (dotted, sorted order) whose values differ, with both values; ("", None, None) if none."""
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            found = _first_difference(x, y, f"{prefix}{key}.")
            if found[0]:
                return found
        elif x != y:
            return f"{prefix}{key}", x, y
    return "", None, None


def train(run: Run, loss_at: Callable[[int], tuple[torch.Tensor, dict]], s: Schedule, *,
          checkpoint: Callable[[Run], None] | None = None, every: int = 0, log_every: int = 10,
          on_step: Callable[[Run, float], None] | None = None) -> Run:
    """Steps `run.step` .. `s.steps - 1`: loss, backward, clip, AdamW; a checkpoint every `every` steps."""
    window: list[tuple[float, dict]] = []
    while run.step < s.steps:
        for group in run.optimizer.param_groups:
            group["lr"] = lr_at(s, run.step)
        loss, stats = loss_at(run.step)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if s.clip:
            torch.nn.utils.clip_grad_norm_(list(run.params.values()), s.clip, foreach=False)
        run.optimizer.step()
        run.step += 1
        window.append((float(loss.detach()), stats))
        if run.step % log_every == 0 or run.step == s.steps:
            run.history.append(_mean_entry(run.step, window))
            window = []
        if on_step is not None:
            on_step(run, float(loss.detach()))
        if checkpoint is not None and every and run.step % every == 0 and run.step < s.steps:
            checkpoint(run)
    return run


def _mean_entry(step: int, window: list[tuple[float, dict]]) -> dict:
    """The mean loss (and mean of each per-step statistic list) over the last logging window."""
    entry = {"step": step, "loss": round(sum(loss for loss, _ in window) / len(window), 6)}
    for key in window[0][1]:
        values = [stats[key] for _, stats in window]
        entry[key] = [round(sum(v[i] for v in values) / len(values), 4) for i in range(len(values[0]))]
    return entry
