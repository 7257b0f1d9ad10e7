"""`edge-mtp train-drafter`: self-distil an MTP drafter against a (fine-tuned) Gemma 4 target.

Everything a user can get wrong is checked before any file is written (target, `--init` pair, data,
output folder, options); the output folder appears atomically at the end; checkpoints go to
`<OUT>.ckpt/` every `checkpoint_every` steps and `--resume` continues from there, computing exactly what
the uninterrupted run would have (see `edge_mtp.train.steps`). The objective is
`edge_mtp.train.selfdistill.chain_loss`.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from edge_mtp.errors import EdgeMTPError
from edge_mtp.model import Gemma4Drafter, check_pair, load_drafter, load_target, load_target_config
from edge_mtp.model.checkpoint import DTYPES, checkpoint_id
from edge_mtp.model.config import load_drafter_config, read_json
from edge_mtp.train import drafter_io
from edge_mtp.train.centroids import balanced_kmeans, centroid_weights
from edge_mtp.train.data import Windows, batch_indices, data_files, load_tokenizer, text_windows
from edge_mtp.train.evaluate import acceptance_report, heldout_prompts, text_prompts, torch_backends
from edge_mtp.train.fakequant import SCHEMES, fake_quantize_
from edge_mtp.train.options import Options
from edge_mtp.train.selfdistill import chain_loss
from edge_mtp.train.steps import Run, Schedule, load_checkpoint, make_optimizer, save_checkpoint, train

REPORT = "train_drafter.json"


def checkpoint_dir(out: Path) -> Path:
    return Path(out).with_name(Path(out).name + ".ckpt")


def _check_options(o: Options) -> None:
    positive = {"--steps": o.steps, "--batch": o.batch, "--draft-len": o.draft_len,
                "--eval-new-tokens": o.eval_new_tokens}
    for flag, value in positive.items():
        if value < 1:
            raise EdgeMTPError(f"{flag} {value}: must be at least 1")
    if not o.lr > 0 or not o.temperature > 0:
        raise EdgeMTPError(f"--lr {o.lr} / --temperature {o.temperature}: must be > 0")
    if o.seq_len < o.draft_len + 2:
        raise EdgeMTPError(f"--seq-len {o.seq_len}: must be at least --draft-len + 2 = {o.draft_len + 2}")
    if o.teacher_quant not in SCHEMES:
        raise EdgeMTPError(f"--teacher-quant {o.teacher_quant}: expected one of {', '.join(SCHEMES)}")
    if o.dtype not in ("float32", "bfloat16"):
        raise EdgeMTPError(f"--dtype {o.dtype}: expected float32 or bfloat16")
    if o.weights_dtype not in (None, "float32", "bfloat16"):
        raise EdgeMTPError(f"--weights-dtype {o.weights_dtype}: expected float32 or bfloat16")
    if o.device not in ("cpu", "cuda"):
        raise EdgeMTPError(f"--device {o.device}: expected cpu or cuda")
    if o.device == "cuda" and not torch.cuda.is_available():
        raise EdgeMTPError("--device cuda: torch sees no CUDA device here (torch.cuda.is_available() is False)")
    if any(k < 1 for k in o.eval_ks):
        raise EdgeMTPError("--eval-ks: draft lengths must be at least 1")
    if o.init is not None and any(v is not None for v in (o.hidden, o.intermediate, o.heads, o.centroids, o.top_k)):
        raise EdgeMTPError("--hidden/--intermediate/--heads/--centroids/--top-k shape a fresh drafter; "
                           "an --init drafter keeps its own shape")


def _check_out(o: Options) -> None:
    out, ckpt = Path(o.out), checkpoint_dir(o.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise EdgeMTPError(f"{out} already exists and is not an empty directory; choose a new one")
    if o.resume and not ckpt.is_dir():
        raise EdgeMTPError(f"--resume: {ckpt} does not exist (no interrupted run of {out} to continue)")
    if not o.resume and ckpt.exists():
        raise EdgeMTPError(f"{ckpt} exists (an interrupted run); pass --resume to continue it, or delete it")


def _eval_texts(path: Path) -> dict[str, list[str]]:
    doc = read_json(path)
    if not doc or not all(isinstance(v, list) and v and all(isinstance(t, str) and t for t in v)
                                         for v in doc.values()):
        raise EdgeMTPError(f"{path}: expected a JSON object {{category: [prompt text, ...]}}")
    return doc


def _drafter_config(o: Options, tcfg) -> tuple[dict, Path | None]:
    """(config.json dict, init folder or None); a fresh one is shaped by the options or the default."""
    if o.init is not None:
        dcfg = load_drafter_config(o.init)
        check_pair(tcfg, dcfg)
        return read_json(Path(o.init) / "config.json"), Path(o.init)
    shape = drafter_io.default_shape(tcfg)
    for key in shape:
        if getattr(o, key) is not None:
            shape[key] = getattr(o, key)
    vocab = tcfg.text.vocab_size
    if vocab % shape["centroids"] or not 0 < shape["top_k"] <= shape["centroids"]:
        raise EdgeMTPError(f"--centroids {shape['centroids']} / --top-k {shape['top_k']}: the vocabulary of "
                           f"{vocab} must split into equal clusters and 0 < top-k <= centroids")
    return drafter_io.fresh_drafter_config(tcfg, **shape), None


def _build_drafter(config: dict, init: Path | None, o: Options, target) -> Gemma4Drafter:
    if init is not None:
        drafter, _ = load_drafter(init, "float32")
    else:
        dcfg = drafter_io.config_from_dict(config, Path(o.out))
        drafter = Gemma4Drafter(dcfg)
        drafter_io.init_fresh(drafter, o.seed)
    if drafter.cfg.use_ordered_embeddings and (init is None or o.recluster):
        head = drafter.masked_embedding
        ordering = balanced_kmeans(target.embed_tokens.weight, drafter.cfg.num_centroids, seed=o.seed)
        with torch.no_grad():
            head.token_ordering.copy_(ordering)
            head.centroids.weight.copy_(centroid_weights(drafter.model.embed_tokens.weight, ordering,
                                                        drafter.cfg.num_centroids))
    return drafter


def _save_dtype(config: dict, requested: str | None) -> torch.dtype:
    """The dtype model.safetensors is written in; `config` (config.json) is made to say so."""
    if requested is None:
        return DTYPES.get(str(config.get("dtype", "float32")), torch.float32)
    config["dtype"] = config["text_config"]["dtype"] = requested
    return DTYPES[requested]


def _round_to(module: torch.nn.Module, dtype: torch.dtype) -> None:
    """Round every float tensor of the state dict through `dtype` in place, so that the held-out report
    measures the weights exactly as they are written (and as every loader reads them back)."""
    with torch.no_grad():
        for tensor in module.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(tensor.to(dtype).to(tensor.dtype))


def _files_digest(files: list[Path]) -> list[dict]:
    return [{"name": f.name, "sha256": hashlib.sha256(f.read_bytes()).hexdigest()[:16]} for f in files]


@dataclass
class Prepared:
    """Everything validated and loaded; nothing written yet."""

    options: Options
    target: torch.nn.Module
    tcfg: object
    drafter: Gemma4Drafter
    config: dict
    init: Path | None
    windows: Windows
    eval_prompts: dict[str, list[list[int]]]
    meta: dict
    save_dtype: torch.dtype


def prepare(o: Options) -> Prepared:
    """Check every input and load the models and data (errors here leave nothing behind)."""
    _check_options(o)
    tcfg = load_target_config(o.target)
    config, init = _drafter_config(o, tcfg)
    _check_out(o)
    files = data_files(list(o.data))
    windows = text_windows(files, o.target, o.seq_len, tcfg.bos_id, o.holdout)
    tokenizer = load_tokenizer(o.target)
    if o.eval_prompts is not None:
        prompts = text_prompts(_eval_texts(Path(o.eval_prompts)), tokenizer)
    elif len(windows.heldout):
        prompts = heldout_prompts(windows.heldout, o.eval_count, min(o.eval_prompt_len, o.seq_len))
    else:
        prompts = {}
    if o.threads:
        torch.set_num_threads(o.threads)
    target, tcfg = load_target(o.target, "float32")  # --dtype bfloat16 = autocast in training
    fake_quantize_(target, o.teacher_quant)
    drafter = _build_drafter(config, init, o, target)
    save_dtype = _save_dtype(config, o.weights_dtype)
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(o).items()
               if k not in ("target", "data", "out", "init", "resume", "eval_prompts")}
    meta = {"options": options, "data": windows.fingerprint, "target": checkpoint_id(o.target),
            "init": checkpoint_id(init) if init is not None else None, "threads": torch.get_num_threads()}
    return Prepared(o, target, tcfg, drafter, config, init, windows, prompts, meta, save_dtype)


def fit(target, drafter: Gemma4Drafter, windows: torch.Tensor, o: Options, *, first: int = 1, meta: dict | None = None,
        ckpt: Path | None = None, progress=None, label: str = "train drafter") -> Run:
    """Optimise `chain_loss` over batches of `windows` [N, T] (checkpoints in `ckpt` when given; resumed from
    there when `o.resume`). The drafter comes back in eval mode on the CPU."""
    target.to(o.device).requires_grad_(False)
    drafter.to(o.device).train()
    params = {n: q for n, q in drafter.named_parameters() if q.is_floating_point()}
    for q in params.values():
        q.requires_grad_(True)
    sched = Schedule(o.steps, o.lr, min(o.warmup, o.steps - 1), weight_decay=o.weight_decay, betas=(0.9, 0.98))
    run = Run(params, make_optimizer(params, sched))
    if o.resume and ckpt is not None:
        load_checkpoint(ckpt, run, meta or {})
    task = progress.add_task(label, total=o.steps, completed=run.step) if progress else None

    def loss_at(step: int):
        tokens = windows[batch_indices(len(windows), o.batch, step, o.seed)].to(o.device)
        with torch.autocast(o.device, dtype=torch.bfloat16, enabled=o.dtype == "bfloat16"):
            return chain_loss(target, drafter, tokens, o.draft_len, first, o.centroid_weight, o.temperature)

    def on_step(r: Run, loss: float) -> None:
        if task is not None:
            progress.update(task, completed=r.step, description=f"{label}  loss {loss:.3f}")

    every = o.checkpoint_every if ckpt is not None else 0
    save = (lambda r: save_checkpoint(ckpt, r, meta or {})) if ckpt is not None else None
    with torch.device(o.device):
        train(run, loss_at, sched, checkpoint=save, every=every, log_every=math.gcd(every, 10) if every else 10,
              on_step=on_step)
    target.to("cpu")
    drafter.to("cpu").eval().requires_grad_(False)
    return run


def run_training(p: Prepared, progress=None) -> Run:
    """`fit` on the prepared data, checkpointing to (and resuming from) `<OUT>.ckpt/`."""
    return fit(p.target, p.drafter, p.windows.train, p.options, meta=p.meta, ckpt=checkpoint_dir(p.options.out),
               progress=progress)


def finish(p: Prepared, run: Run, progress=None) -> dict:
    """Held-out acceptance report, then the output folder (atomically) and the checkpoints removed."""
    o = p.options
    _round_to(p.drafter, p.save_dtype)
    task = progress.add_task("held-out acceptance", total=1) if progress else None
    backends = torch_backends(p.target, p.tcfg, p.drafter)
    report = acceptance_report(backends, p.eval_prompts, o.eval_ks, o.eval_new_tokens) if p.eval_prompts else None
    if task is not None:
        progress.update(task, completed=1)
    summary = {"format": "edge-mtp-train-drafter/1", "meta": p.meta,
               "data_files": _files_digest(data_files(list(o.data))),
               "windows": {"train": len(p.windows.train), "heldout": len(p.windows.heldout), "seq_len": o.seq_len},
               "history": run.history, "acceptance": report}
    extra = {REPORT: (json.dumps(summary, indent=1) + "\n").encode()}
    tokenizer = Path(o.target) / "tokenizer.json"
    extra["tokenizer.json"] = tokenizer.read_bytes()
    gen = drafter_io.generation_config(p.tcfg, o.draft_len, p.init)
    drafter_io.write_drafter(o.out, drafter_io.state_for_save(p.drafter, p.save_dtype), p.config, gen, extra)
    shutil.rmtree(checkpoint_dir(o.out), ignore_errors=True)
    return summary


def train_drafter(o: Options, progress=None) -> dict:
    """prepare -> train -> report + write `o.out`; returns the summary written to `<OUT>/train_drafter.json`."""
    p = prepare(o)
    run = run_training(p, progress)
    return finish(p, run, progress)
