"""`edge-mtp verify EXPORT --target DIR --drafter DIR`: the layered parity report a user runs after export
(a .litertlm bundle or an ONNX export; the same table for both, so formats compare side by side).

1. graphs: the export's prefill/decode, verify and drafter graphs against the PyTorch model on the same
   inputs (max |logit difference|, top-1 agreement); for a quantized export also against the PyTorch model
   with the export's recorded weight schemes applied (`edge_mtp.quantize.fakequant`), which tells an export
   bug (the export far from that model) from quantization loss (that model as far from the float one);
2. teacher-forced top-1 agreement with PyTorch's greedy continuation of each prompt;
3. greedy speculative loop: the export's trace against the PyTorch backend's (drafts, acceptance,
   tokens) and both acceptance rates.

The PyTorch reference runs first and is freed before the export is opened, so the peak memory is the
larger of the two, not their sum (a full-size E2B in bf16 plus its int4 bundle would not fit in 12 GB).
A float32 export checked against a float32 reference must match (logits within `FLOAT_TOLERANCE`,
identical traces). Everything else is reported, not judged: how far int8/int4 (or a bf16 reference) may
drift depends on the model (a random tiny model loses most top-1 agreement even to PyTorch
fake-quantization), so only running at all is required.
"""

from __future__ import annotations

import gc
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_mtp import contract as c
from edge_mtp.runtime import LoopConfig, generate
from edge_mtp.runtime.backend import TargetStep
from edge_mtp.runtime.views import drafter_views

FLOAT_TOLERANCE = 1e-3  # any checkpoint: sharp attention amplifies fp32 rounding (tiny presets: <= 1.5e-5)
NEW_TOKENS = 32


@dataclass
class Check:
    name: str
    value: str
    ok: bool
    judged: bool = True  # False: reported only (quantized exports, bf16 reference)


def _prompts(vocab: int, drafter: Path) -> list[list[int]]:
    """Two random prompts, after the first prompt the drafter was distilled on when its folder has one
    (`make-checkpoint --distill-steps`): on random prompts a drafter accepts next to nothing."""
    rng = np.random.default_rng(0)
    random = [[2] + rng.integers(107, vocab, size=n).tolist() for n in (9, 40)]
    distilled = Path(drafter) / "distill_prompts.json"
    return ([json.loads(distilled.read_text())[0]] if distilled.is_file() else []) + random


def _rounds(gen) -> list[tuple]:
    return [(r.drafts, r.accepted, r.emitted) for r in gen.rounds]


def _rate(gen) -> float:
    return sum(r.accepted for r in gen.rounds) / max(1, sum(len(r.drafts) for r in gen.rounds))


@dataclass
class Probe:
    """The graph-level inputs both sides run (from the last prompt) and the reference's outputs."""

    prompt: list[int]
    extra: list[int]  # verify tokens after the prompt
    draft_token: int
    draft_position: int
    views: object
    outputs: dict[str, object] = field(default_factory=dict)


def _probe(prompt: list[int], verify_len: int, window: int) -> Probe:
    extra = [prompt[-1] % 97 + 107 + i for i in range(verify_len)]
    q = len(prompt) + 2
    views = drafter_views(len(prompt), len(prompt) + verify_len - 1, q + 1, window)
    return Probe(prompt, extra, extra[2], q, views)


def _run_graphs(backend, probe: Probe, carry: np.ndarray | None) -> dict:
    out = {"prefill": backend.prefill(probe.prompt), "verify": backend.verify(probe.extra, len(probe.prompt))}
    carry = out["verify"].hidden[1] if carry is None else carry
    out["carry"] = carry
    if getattr(backend, "drafter", None) is not None:
        out["draft"] = backend.draft(probe.draft_token, carry, probe.draft_position, probe.views)
    return out


def _teacher_forced(backend, prompt: list[int], continuation: list[int], chunk: int) -> list[int]:
    """The backend's argmax at every position of prompt + continuation (fed in chunks, as verify does)."""
    picks = [int(backend.prefill(prompt).logits[-1].argmax())]
    seq, pos = prompt + continuation, len(prompt)
    while pos < len(seq) - 1:
        part = seq[pos:pos + chunk]
        logits = backend.verify(part, pos).logits
        picks += [int(logits[i].argmax()) for i in range(len(part)) if pos + i + 1 < len(seq)]
        pos += len(part)
    return picks


@dataclass
class Reference:
    graphs: dict
    plain: list[list[int]]  # greedy continuation per prompt
    speculative: list  # Generation per prompt


def _reference(target: Path, drafter: Path, dtype: str, context: int, k: int, prompts, probe: Probe) -> Reference:
    from edge_mtp.runtime.torch_backend import open_torch_backend

    ref, _, _ = open_torch_backend(target, drafter, context=context, dtype=dtype)
    graphs = _run_graphs(ref, probe, None)
    plain = [generate(ref, p, LoopConfig(draft_len=0, max_new_tokens=NEW_TOKENS)).tokens for p in prompts]
    spec = [generate(ref, p, LoopConfig(draft_len=k, max_new_tokens=NEW_TOKENS)) for p in prompts]
    return Reference(graphs, plain, spec)


def _quantized_reference(target: Path, drafter: Path, dtype: str, context: int, manifest: dict, probe: Probe) -> dict:
    """The target graphs' outputs with the export's weight schemes applied to the PyTorch target."""
    from edge_mtp.model.config import load_target_config
    from edge_mtp.quantize.fakequant import fake_quantize_
    from edge_mtp.runtime.torch_backend import open_torch_backend

    ref, _, _ = open_torch_backend(target, drafter, context=context, dtype=dtype)
    matmuls, lookups = _target_schemes(manifest, load_target_config(target).weight_prefix)
    fake_quantize_(ref.target, matmuls, lookups)
    ref.drafter = None  # the drafter check stays against the float drafter
    return _run_graphs(ref, probe, None)


def _target_schemes(manifest: dict, prefix: str) -> tuple[dict[str, str], dict[str, str]]:
    """{module key: scheme} of the target's matmul weights (its decoder section or graph, tied LM head
    included) and of its token tables (the embedder sections), from the manifest's recipes."""
    recipes = manifest["recipes"]
    decoder, tables = (c.ONNX_TARGET, (c.ONNX_EMBEDDER, c.ONNX_PER_LAYER_EMBEDDER)) \
        if manifest["container"] == "onnx" else (c.PREFILL_DECODE, c.EMBEDDING_SECTIONS)

    def keys(section: str) -> dict[str, str]:
        weights = recipes.get(section, {}).get("weights", {})
        return {name.removeprefix(prefix): s for name, s in weights.items() if name.startswith(prefix)}

    return keys(decoder), {k: s for t in tables for k, s in keys(t).items()}


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.reshape(-1), b.reshape(-1))[0, 1])


def _compare_step(name: str, a: TargetStep, b: TargetStep, tol: float | None) -> Check:
    diff = float(np.abs(a.logits - b.logits).max())
    top1 = float(np.mean(a.logits.argmax(-1) == b.logits.argmax(-1)))
    return Check(name, f"max |diff| {diff:.2e}, top-1 {top1:.0%}", tol is None or diff <= tol, tol is not None)


def _graph_checks(ours: dict, ref: dict, tol: float | None) -> list[Check]:
    checks = [_compare_step("prefill logits (last position)", ours["prefill"], ref["prefill"], tol),
              _compare_step("verify logits", ours["verify"], ref["verify"], tol)]
    if "draft" in ours and "draft" in ref:
        (la, ca), (lb, cb) = ours["draft"], ref["draft"]
        diff = max(float(np.abs(la - lb).max()), float(np.abs(ca - cb).max()))
        same = int(la.argmax()) == int(lb.argmax())
        checks.append(Check("drafter step logits+carry", f"max |diff| {diff:.2e}, same argmax {same}",
                            tol is None or diff <= tol, tol is not None))
    return checks


def _quantized_checks(ours: dict, ref: dict, quantized: dict) -> list[Check]:
    """Logit correlation of the export and of the fake-quantized model with the float model, and of the
    export with the fake-quantized model: an export that is right sits much closer to the latter."""
    checks = []
    for graph in ("prefill", "verify"):
        step = _compare_step(f"{graph} logits vs PyTorch with the export's weight schemes", ours[graph],
                             quantized[graph], None)
        step.value += (f", corr {_correlation(ours[graph].logits, quantized[graph].logits):.3f}"
                       f" (export vs float {_correlation(ours[graph].logits, ref[graph].logits):.3f},"
                       f" schemes vs float {_correlation(quantized[graph].logits, ref[graph].logits):.3f})")
        checks.append(step)
    return checks


def _size(manifest: dict) -> Check:
    parts = manifest.get("sections") or manifest["graphs"]
    total = sum(p["bytes"] for p in parts.values())
    detail = ", ".join(f"{name.removeprefix('tf_lite_')} {p['bytes'] / 1e6:.1f}" for name, p in sorted(parts.items()))
    return Check(f"size ({manifest['options']['quant']})", f"{total / 1e6:.1f} MB ({detail})", True, False)


def _export_manifest(path: Path) -> dict:
    """The export's manifest without loading its graphs (the reference runs first)."""
    from edge_mtp.runtime.open import read_manifest

    return read_manifest(path)


def verify_bundle(bundle: Path, target: Path, drafter: Path, dtype: str = "auto") -> list[Check]:
    """The report's checks; `dtype` is the PyTorch reference's (auto: the checkpoint's own)."""
    from edge_mtp.model.checkpoint import resolve_dtype
    from edge_mtp.model.config import load_target_config
    from edge_mtp.runtime.open import open_export

    manifest = _export_manifest(bundle)
    ref_dtype = resolve_dtype(dtype, load_target_config(target).dtype)
    float_pair = manifest["options"]["quant"] == "fp32" and str(ref_dtype) == "torch.float32"
    tol = FLOAT_TOLERANCE if float_pair else None
    k, context = int(manifest["draft_len"]), int(manifest["context"])
    prompts = _prompts(int(manifest["vocab_size"]), drafter)
    probe = _probe(prompts[-1], k + 1, int(manifest["sliding_window"]))
    reference = _reference(target, drafter, dtype, context, k, prompts, probe)
    gc.collect()  # the reference model's weights go before the export's arrive

    quantized = _quantized_reference(target, drafter, dtype, context, manifest, probe) \
        if manifest["options"]["quant"] not in ("fp32", "fp16") else None
    gc.collect()

    exported = open_export(bundle)
    checks: list[Check] = [_size(manifest), Check("PyTorch reference dtype", str(ref_dtype).removeprefix("torch."),
                                                  True, False)]
    graphs = _run_graphs(exported, probe, reference.graphs["carry"])
    checks += _graph_checks(graphs, reference.graphs, tol)
    if quantized is not None:
        checks += _quantized_checks(graphs, reference.graphs, quantized)
    distilled = len(prompts) == 3
    for i, (prompt, plain, theirs) in enumerate(zip(prompts, reference.plain, reference.speculative, strict=True)):
        name = f"prompt {i}" + (" (distilled)" if distilled and i == 0 else "")
        picks = _teacher_forced(exported, prompt, plain, exported.verify_len)
        agree = float(np.mean([a == b for a, b in zip(picks, plain, strict=True)]))
        checks.append(Check(f"{name}: top-1 agreement (teacher-forced)", f"{agree:.1%}", tol is None or agree == 1.0,
                            tol is not None))
        ours = generate(exported, prompt, LoopConfig(draft_len=k, max_new_tokens=NEW_TOKENS))
        same = _rounds(ours) == _rounds(theirs)
        verdict = f"{'identical' if same else 'differs'}; acceptance {_rate(ours):.1%} vs {_rate(theirs):.1%}"
        checks.append(Check(f"{name}: greedy K={k} trace vs PyTorch", verdict, same or tol is None, tol is not None))
    return checks
