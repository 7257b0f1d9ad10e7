"""Time `attend` alone as a LiteRT graph with the cache as the right or the left operand of its products.

One KV head, 8 query heads (E2B's attention), 1 and 4 tokens (decode, verify with K = 3), for each
`--shapes` slots x head dim: the graphs are converted with litert-torch, run by CompiledModel on the CPU
(`--threads`), inputs bound once, and each signature is timed in `--rounds` interleaved rounds of
`--calls` calls (median). The table behind `export/litert.py: CACHE_FIRST_HEAD_DIM`
(docs/tooling.md#cache-first-products):

    .venv/bin/python benchmarks/attention_forms.py --json benchmarks/results/issue12/attention-forms.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from edge_mtp.model.layers import AttentionForm, attend

HEADS = 8
# where the cache stands in its products: right = packed per call, left = read as it lies
FORMS = {"right": AttentionForm(), "left": AttentionForm(cache_first_head_dim=0)}


class Attend(torch.nn.Module):
    def __init__(self, form: AttentionForm):
        super().__init__()
        self.form = form

    def forward(self, q, k, v, mask):
        return attend(q, k, v, mask, self.form)


def convert(slots: int, head_dim: int, form: AttentionForm, tokens: list[int], path: Path, runtime: tuple):
    """One .tflite with a signature `t<N>` per token count; returns a CompiledModel of it ((env, options))."""
    import litert_torch
    from ai_edge_litert.compiled_model import CompiledModel

    converter = litert_torch.Converter()
    for t in tokens:
        sample = (torch.zeros(1, t, HEADS, head_dim), torch.zeros(1, 1, slots, head_dim),
                  torch.zeros(1, 1, head_dim, slots), torch.zeros(1, t, slots))
        converter.add_signature(f"t{t}", Attend(form).eval(), sample_args=sample)
    converter.convert().export(str(path))
    return CompiledModel.from_buffer(path.read_bytes(), environment=runtime[0], options=runtime[1])


def bound_io(model, rng) -> dict:
    """{signature: (inputs, outputs)} with random inputs written once."""
    io = {}
    for sig, names in model.get_signature_list().items():
        details = model.get_input_tensor_details(sig)
        inputs = {n: model.create_input_buffer_by_name(sig, n) for n in names["inputs"]}
        for name, buffer in inputs.items():
            buffer.write(rng.standard_normal(tuple(details[name]["shape"])).astype(np.float32))
        io[sig] = (inputs, {n: model.create_output_buffer_by_name(sig, n) for n in names["outputs"]})
    return io


def median_ms(model, sig: str, io, calls: int) -> float:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        model.run_by_name(sig, *io)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", default="768x256,2048x256,4096x256,8192x256,1024x512,2048x512",
                    help="comma list of SLOTSxHEAD_DIM")
    ap.add_argument("--tokens", default="1,4")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calls", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    from ai_edge_litert.environment import Environment
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator
    from ai_edge_litert.options import CpuOptions, Options

    runtime = (Environment.create(), Options(hardware_accelerators=HardwareAccelerator.CPU,
                                             cpu_options=CpuOptions(num_threads=a.threads)))
    tokens = [int(t) for t in a.tokens.split(",")]
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for shape in a.shapes.split(","):
            slots, head_dim = (int(x) for x in shape.split("x"))
            models = {name: convert(slots, head_dim, form, tokens, Path(tmp) / f"{shape}-{name}.tflite", runtime)
                      for name, form in FORMS.items()}
            ios = {form: bound_io(model, rng) for form, model in models.items()}
            runs = {(form, t): [] for form in FORMS for t in tokens}
            for _ in range(a.rounds):
                for form, t in runs:
                    runs[(form, t)].append(median_ms(models[form], f"t{t}", ios[form][f"t{t}"], a.calls))
            row = {"slots": slots, "head_dim": head_dim,
                   "ms": {f"{form}_t{t}": round(statistics.median(v), 3) for (form, t), v in runs.items()}}
            rows.append(row)
            print(f"{slots:5d} x {head_dim:3d}  " + "  ".join(f"{k} {v:.3f}" for k, v in row["ms"].items()), flush=True)
    if a.json:
        a.json.write_text(json.dumps({"threads": a.threads, "calls": a.calls, "rounds": a.rounds,
                                      "load_average": os.getloadavg(), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
