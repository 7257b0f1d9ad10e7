"""The options of `edge-mtp train-drafter` (a module of its own: the CLI reads the defaults without importing
torch)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Options:
    target: Path
    data: tuple[Path, ...]
    out: Path
    init: Path | None = None
    steps: int = 600
    batch: int = 8
    lr: float = 2e-3
    draft_len: int = 3
    seq_len: int = 256
    seed: int = 0
    warmup: int = 30
    weight_decay: float = 0.0
    centroid_weight: float = 1.0
    temperature: float = 1.0  # of the target's distributions (selfdistill.chain_loss)
    teacher_quant: str = "none"  # distil against the fake-quantized target (train.fakequant)
    device: str = "cpu"
    dtype: str = "float32"
    weights_dtype: str | None = None  # of the written model.safetensors (default: the --init drafter's, else float32)
    threads: int | None = None
    checkpoint_every: int = 100
    resume: bool = False
    recluster: bool = False
    holdout: int = 20
    eval_prompts: Path | None = None
    eval_count: int = 16
    eval_prompt_len: int = 48
    eval_new_tokens: int = 48
    eval_ks: tuple[int, ...] = (1, 2, 3, 4)
    hidden: int | None = None  # a fresh drafter's shape (default: drafter_io.default_shape)
    intermediate: int | None = None
    heads: int | None = None
    centroids: int | None = None
    top_k: int | None = None
