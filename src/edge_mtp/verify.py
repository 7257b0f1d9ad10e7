"""`edge-mtp verify EXPORT --target DIR --drafter DIR`: the layered parity report a user runs after export
(a .litertlm bundle or an ONNX export; the same table for both, so formats compare side by side).

1. graphs: the bundle's prefill/decode, verify and drafter graphs against the PyTorch model on the same
   inputs (max |logit difference|, top-1 agreement);
2. teacher-forced top-1 agreement with PyTorch's greedy continuation of each prompt;
3. greedy speculative loop: the bundle's trace against the PyTorch backend's (drafts, acceptance,
   tokens) and both acceptance rates.

A float32 bundle must match (logits within `FLOAT_TOLERANCE`, identical traces). For a quantized one
the numbers are reported, not judged: how far int8/int4 may drift depends on the model (a random tiny
model loses most top-1 agreement even to PyTorch fake-quantization), so only running at all is required.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_mtp.runtime import LoopConfig, generate
from edge_mtp.runtime.open import open_export
from edge_mtp.runtime.torch_backend import open_torch_backend
from edge_mtp.runtime.views import drafter_views

FLOAT_TOLERANCE = 1e-3  # any checkpoint: sharp attention amplifies fp32 rounding (tiny presets: <= 1.5e-5)
NEW_TOKENS = 32


@dataclass
class Check:
    name: str
    value: str
    ok: bool
    judged: bool = True  # False: reported only (quantized bundles)


def _prompts(vocab: int, drafter: Path) -> list[list[int]]:
    """Two random prompts, after the first prompt the drafter was distilled on when its folder has one
    (`make-checkpoint --distill-steps`): on random prompts a drafter accepts next to nothing."""
    rng = np.random.default_rng(0)
    random = [[2] + rng.integers(107, vocab, size=n).tolist() for n in (9, 40)]
    distilled = Path(drafter) / "distill_prompts.json"
    return ([json.loads(distilled.read_text())[0]] if distilled.is_file() else []) + random


def _graphs(exported, ref, prompt: list[int], tol: float | None) -> list[Check]:
    checks = []
    a, b = exported.prefill(prompt), ref.prefill(prompt)
    steps = [("prefill logits (last position)", a, b)]
    extra = [prompt[-1] % 97 + 107 + i for i in range(exported.verify_len)]
    a2, b2 = exported.verify(extra, len(prompt)), ref.verify(extra, len(prompt))
    steps.append(("verify logits", a2, b2))
    for name, x, y in steps:
        diff = float(np.abs(x.logits - y.logits).max())
        top1 = float(np.mean(x.logits.argmax(-1) == y.logits.argmax(-1)))
        checks.append(Check(name, f"max |diff| {diff:.2e}, top-1 {top1:.0%}", tol is None or diff <= tol,
                            tol is not None))
    if exported.drafter is not None:
        q = len(prompt) + 2
        views = drafter_views(len(prompt), len(prompt) + exported.verify_len - 1, q + 1, exported.sliding_window)
        (la, ca), (lb, cb) = exported.draft(extra[2], b2.hidden[1], q, views), ref.draft(extra[2], b2.hidden[1], q, views)
        diff = max(float(np.abs(la - lb).max()), float(np.abs(ca - cb).max()))
        same = int(la.argmax()) == int(lb.argmax())
        checks.append(Check("drafter step logits+carry", f"max |diff| {diff:.2e}, same argmax {same}",
                            tol is None or diff <= tol, tol is not None))
    return checks


def _agreement(exported, ref_tokens: list[int], prompt: list[int]) -> float:
    """Teacher-forced: how often the bundle's argmax equals PyTorch's greedy token."""
    out = exported.prefill(prompt)
    hits = [int(out.logits[-1].argmax()) == ref_tokens[0]]
    seq = prompt + ref_tokens
    pos = len(prompt)
    while pos < len(seq) - 1:
        chunk = seq[pos:pos + exported.verify_len]
        logits = exported.verify(chunk, pos).logits
        hits += [int(logits[i].argmax()) == seq[pos + i + 1] for i in range(len(chunk)) if pos + i + 1 < len(seq)]
        pos += len(chunk)
    return float(np.mean(hits))


def _size(manifest: dict) -> Check:
    parts = manifest.get("sections") or manifest["graphs"]
    total = sum(p["bytes"] for p in parts.values())
    detail = ", ".join(f"{name.removeprefix('tf_lite_')} {p['bytes'] / 1e6:.1f}" for name, p in sorted(parts.items()))
    return Check(f"size ({manifest['options']['quant']})", f"{total / 1e6:.1f} MB ({detail})", True, False)


def verify_bundle(bundle: Path, target: Path, drafter: Path) -> list[Check]:
    exported = open_export(bundle)
    manifest = exported.manifest
    quantized = manifest["options"]["quant"] != "fp32"
    tol = None if quantized else FLOAT_TOLERANCE
    ref, _, _ = open_torch_backend(target, drafter, context=exported.context, dtype="float32")
    k = exported.draft_len
    checks: list[Check] = [_size(manifest)]
    prompts = _prompts(exported.vocab_size, drafter)
    checks += _graphs(exported, ref, prompts[-1], tol)
    distilled = len(prompts) == 3
    for i, prompt in enumerate(prompts):
        name = f"prompt {i}" + (" (distilled)" if distilled and i == 0 else "")
        cfg = LoopConfig(draft_len=k, max_new_tokens=NEW_TOKENS)
        ours, theirs = generate(exported, prompt, cfg), generate(ref, prompt, cfg)
        plain = generate(ref, prompt, LoopConfig(draft_len=0, max_new_tokens=NEW_TOKENS)).tokens
        agree = _agreement(exported, plain, prompt)
        checks.append(Check(f"{name}: top-1 agreement (teacher-forced)", f"{agree:.1%}",
                            tol is None or agree == 1.0, tol is not None))
        same = [(r.drafts, r.accepted, r.emitted) for r in ours.rounds] == \
               [(r.drafts, r.accepted, r.emitted) for r in theirs.rounds]
        rate = lambda g: sum(r.accepted for r in g.rounds) / max(1, sum(len(r.drafts) for r in g.rounds))  # noqa
        checks.append(Check(f"{name}: greedy K={k} trace vs PyTorch",
                            f"{'identical' if same else 'differs'}; acceptance {rate(ours):.1%} vs {rate(theirs):.1%}",
                            same or quantized, not quantized))
    return checks
