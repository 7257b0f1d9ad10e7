"""fp16 activations against fp32 on stand-ins with large residual streams (issue 12, item 4).

For each gain, the tiny-e2b pair (made under `--work` if missing) gets its residual streams scaled by it
(`edge_mtp.checkpoints.residual.scale_residual`, the same function) and is exported to `.litertlm`
(fp32, K = 4, prefill 8/32, context 128). Then, for the prompt "Hello world":

* transformers: the largest |x| and mean(x²) entering a residual-stream RMSNorm;
* LiteRT-LM (`litert-lm-api`): text with MTP off and on, for its default activation type, FLOAT16 and
  FLOAT32; reported: whether each equals FLOAT32's;
* our Python loop on `ai_edge_litert` with XNNPACK's FORCE_FP16 flag against its default (fp32): whether
  the tokens (40) agree at K = 0 and 4, whether every round's drafts and acceptance agree, and the
  largest |logit| difference of one prefill. A non-finite output is reported as such.

Gain 256 is the tests' stand-in (tests/test_fp16_activations.py); gain 4096 pushes the stream past fp16's
65504, a positive control that shows which path computes in fp16.

    .venv/bin/python benchmarks/fp16_activations.py --work /tmp/fp16 --gains 1,256,4096 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
from pathlib import Path

import numpy as np

FORCE_FP16 = 0x4  # TFLITE_XNNPACK_DELEGATE_FLAG_FORCE_FP16
K, NEW, PROMPT = 4, 40, "Hello world"


def litert_lm_texts(bundle: Path, work: Path) -> dict[str, str]:
    import litert_lm

    acts = {"default": None, "fp16": litert_lm.ActivationDataType.FLOAT16, "fp32": litert_lm.ActivationDataType.FLOAT32}
    texts = {}
    for name, act in acts.items():
        for mtp in (False, True):
            kw = {} if act is None else {"activation_data_type": act}
            engine = litert_lm.Engine(str(bundle), backend=litert_lm.Backend.CPU(thread_count=1), max_num_tokens=64,
                                      enable_speculative_decoding=mtp, cache_dir=str(work), **kw)
            session = engine.create_session(apply_prompt_template=False)
            session.run_prefill([PROMPT])
            texts[f"{name} mtp {'on' if mtp else 'off'}"] = session.run_decode().texts[0]
            del session, engine
    return texts


def ours(bundle: Path, prompt: list[int], flags: int | None) -> dict:
    from edge_mtp.errors import EdgeMTPError
    from edge_mtp.runtime import LoopConfig, generate
    from edge_mtp.runtime.litert_backend import LiteRTBackend

    backend = LiteRTBackend(bundle, threads=1, xnnpack_flags=flags)
    out = {}
    for key in ("logits", 0, K):
        try:
            if key == "logits":
                out[key] = backend.prefill(list(range(300, 341))).logits
            else:
                gen = generate(backend, prompt, LoopConfig(draft_len=key, max_new_tokens=NEW))
                out[key] = (gen.tokens, [(r.drafts, r.accepted) for r in gen.rounds])
        except EdgeMTPError as e:  # non-finite outputs
            out[key] = str(e)
    return out


def run_gain(pair: Path, work: Path, gain: float) -> dict:
    from edge_mtp.checkpoints.residual import norm_input_peaks, scale_residual
    from edge_mtp.export.exporter import ExportOptions, export_litertlm
    from edge_mtp.runtime.tokenizer import TextCodec

    scaled = work / f"gain-{gain:g}"
    if not scaled.exists():
        scale_residual(pair, scaled, gain)
    bundle = work / f"gain-{gain:g}.litertlm"
    if not bundle.exists():
        export_litertlm(scaled / "target", scaled / "drafter", bundle, ExportOptions("fp32", K, (8, 32), 128))
    prompt = TextCodec(scaled / "target").encode(PROMPT)
    peak, mean_square, _ = norm_input_peaks(scaled / "target", prompt, NEW)
    texts = litert_lm_texts(bundle, work)
    fp32, fp16 = ours(bundle, prompt, None), ours(bundle, prompt, FORCE_FP16)
    fp16_logits = fp16["logits"]
    row = {"gain": gain, "peak_abs_x": peak, "max_mean_x2": mean_square,
           "ours_fp16_max_logit_diff": "non-finite" if isinstance(fp16_logits, str)
           else float(np.abs(fp16_logits - fp32["logits"]).max())}
    for mtp in ("off", "on"):
        for act in ("default", "fp16"):
            row[f"litert_lm_{act}_equals_fp32_mtp_{mtp}"] = texts[f"{act} mtp {mtp}"] == texts[f"fp32 mtp {mtp}"]
    for k in (0, K):
        a, b = fp32[k], fp16[k]
        if isinstance(b, str):
            row[f"ours_fp16_tokens_equal_k{k}"] = row[f"ours_fp16_rounds_equal_k{k}"] = "non-finite"
        else:
            row[f"ours_fp16_tokens_equal_k{k}"], row[f"ours_fp16_rounds_equal_k{k}"] = a[0] == b[0], a[1] == b[1]
    row["texts"] = texts
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, required=True, help="folder for the pairs and bundles (made if missing)")
    ap.add_argument("--gains", default="1,256,4096")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    import torch

    from edge_mtp.checkpoints.make import make_checkpoint

    torch.set_num_threads(1)
    args.work.mkdir(parents=True, exist_ok=True)
    os.environ["HOME"] = str(args.work)  # LiteRT-LM keeps state in ~/.litert-lm
    pair = args.work / "tiny-e2b"
    if not (pair / "drafter" / "config.json").exists():
        make_checkpoint("tiny-e2b", pair, seed=0, distill_steps=100)
    rows = [run_gain(pair, args.work, float(g)) for g in args.gains.split(",")]
    keys = [k for k in rows[0] if k != "texts"]
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(f"{row[k]:.4g}" if isinstance(row[k], float) else str(row[k]) for k in keys) + " |")
    if args.json:
        machine = platform.processor() or platform.machine()
        args.json.write_text(json.dumps({"machine": machine, "rows": rows}, indent=1))
    shutil.rmtree(args.work / ".litert-lm", ignore_errors=True)


if __name__ == "__main__":
    main()
