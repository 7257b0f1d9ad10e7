"""Time the MTP drafter step as a graph of its own, at a real size, without building the target.

The drafter's cost depends on its own weights, its head (vocabulary, clusters, top-k) and the shapes of
the target's K/V buffers it reads, not on the target's weights. So this builds only the drafter of a
preset (random weights, as `make-checkpoint` makes them) plus the target's config.json, converts the
drafter section's signatures the way `edge-export` does (`export.litert.section_jobs`' drafter jobs), binds
the weights with the chosen recipe, and times each signature with CompiledModel, interleaved:

    .venv/bin/python benchmarks/drafter_step.py --preset e2b --quant int4 --context 2048 \\
        --cache ~/.cache/edge-mtp/drafter-step --json benchmarks/results/drafter_step/e2b-int4.json

`--no-window` converts the sliding layers reading the whole buffer (the graphs before the window cut).
`--compare LABEL=PATH` also times another drafter section (e.g. one this script built at an older commit),
interleaved with this one, so that a before/after ratio comes from one run.
Results and the history of the numbers: docs/tooling.md#drafter-head.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from edge_mtp import contract as c


def drafter_only_checkpoint(preset: str, root: Path) -> tuple[Path, Path]:
    """`root/target/config.json` (no weights) and `root/drafter/` (random weights), made once."""
    from edge_mtp.checkpoints import make
    from edge_mtp.checkpoints.presets import PRESETS

    target_dir, drafter_dir = root / "target", root / "drafter"
    if (drafter_dir / "config.json").exists():
        return target_dir, drafter_dir
    spec = PRESETS[preset]
    generator = torch.Generator().manual_seed(0)
    drafter = make.build_drafter(spec, seed=0)
    make._make_llm_like(drafter, generator, final_norm=None)
    make._set_token_ordering(drafter, generator)
    target_dir.mkdir(parents=True, exist_ok=True)
    make.build_target(spec, device="meta").config.save_pretrained(target_dir)
    drafter.save_pretrained(drafter_dir)
    return target_dir, drafter_dir


def build_section(target_dir: Path, drafter_dir: Path, quant: str, context: int, window: bool, out: Path) -> Path:
    """The drafter section's `.tflite` (both signatures), as `edge-export` writes it."""
    from edge_mtp.export import litert
    from edge_mtp.model import load_target_config
    from edge_mtp.model.checkpoint import TensorReader, load_drafter_skeleton
    from edge_mtp.quantize.recipes import LITERT_MODES
    from edge_mtp.quantize.tflite import WeightSource, bind_weights

    tcfg = load_target_config(target_dir).text
    drafter, _, external = load_drafter_skeleton(drafter_dir)
    weights = litert.ExternalWeights(drafter, "drafter", external)
    reader = TensorReader(drafter_dir)
    sources = {k: WeightSource(n, s, lambda a, b, n=n: reader.rows(n, a, b)) for k, (n, s) in weights.sources().items()}
    sources = litert.bind_sources(sources, litert.row_orders(drafter, weights))
    jobs = litert.drafter_signatures(drafter, tcfg, context, weights, litert.dynamic_window if window else None)
    skeleton = out.with_suffix(".graph.tflite")
    with torch.no_grad():
        litert._convert(jobs, skeleton)
    with open(out, "wb") as f:
        bind_weights(skeleton, f, sources, LITERT_MODES[quant])
    skeleton.unlink()
    return out


class Timer:
    """One CompiledModel; `ms(sig)` = median wall time of `calls` calls with K/V and inputs bound in place."""

    def __init__(self, path: Path, threads: int):
        from ai_edge_litert.compiled_model import CompiledModel
        from ai_edge_litert.environment import Environment
        from ai_edge_litert.hardware_accelerator import HardwareAccelerator
        from ai_edge_litert.options import CpuOptions, Options

        options = Options(hardware_accelerators=HardwareAccelerator.CPU, cpu_options=CpuOptions(num_threads=threads))
        self.model = CompiledModel.from_buffer(path.read_bytes(), environment=Environment.create(), options=options)
        self.io = {}
        rng = np.random.default_rng(0)
        for sig, names in self.model.get_signature_list().items():
            details = self.model.get_input_tensor_details(sig)
            context = int(details[c.MASK]["shape"][-1])
            inputs = {n: self.model.create_input_buffer_by_name(sig, n) for n in names["inputs"]}
            for name, buffer in inputs.items():
                shape = tuple(details[name]["shape"])
                if name == c.MASK:  # a late position: every window full
                    buffer.write((np.arange(context) <= context - 2).reshape(shape))
                elif name == c.INPUT_POS:
                    buffer.write(np.array([context - 3], np.int32))
                else:
                    buffer.write(rng.standard_normal(shape).astype(np.float32))
            outputs = {n: self.model.create_output_buffer_by_name(sig, n) for n in names["outputs"]}
            self.io[sig] = (inputs, outputs)

    def ms(self, sig: str, calls: int) -> float:
        inputs, outputs = self.io[sig]
        times = []
        for _ in range(calls + 3):
            start = time.perf_counter()
            self.model.run_by_name(sig, inputs, outputs)
            times.append(time.perf_counter() - start)
        return statistics.median(times[3:]) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="e2b")
    ap.add_argument("--quant", default="int4")
    ap.add_argument("--context", type=int, default=2048)
    ap.add_argument("--no-window", action="store_true", help="sliding layers read the whole buffer")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calls", type=int, default=60)
    ap.add_argument("--repetitions", type=int, default=4)
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "edge-mtp" / "drafter-step")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--compare", action="append", default=[], metavar="LABEL=PATH",
                    help="another drafter section .tflite to time interleaved with this one")
    a = ap.parse_args()
    target_dir, drafter_dir = drafter_only_checkpoint(a.preset, a.cache / a.preset)
    tag = f"{a.preset}-{a.quant}-c{a.context}{'-nowindow' if a.no_window else ''}"
    section = build_section(target_dir, drafter_dir, a.quant, a.context, not a.no_window, a.cache / f"{tag}.tflite")
    timers = {"": Timer(section, a.threads)}
    for spec in a.compare:
        label, _, path = spec.partition("=")
        timers[f"{label}:"] = Timer(Path(path), a.threads)
    runs = {(label, sig): [] for label, timer in timers.items() for sig in timer.io}
    for _ in range(a.repetitions):
        for label, sig in runs:
            runs[(label, sig)].append(round(timers[label].ms(sig, a.calls), 3))
    runs = {f"{label}{sig}": values for (label, sig), values in runs.items()}
    result = {"preset": a.preset, "quant": a.quant, "context": a.context, "window": not a.no_window,
              "threads": a.threads, "calls": a.calls, "ms": runs,
              "median_ms": {sig: statistics.median(v) for sig, v in runs.items()},
              "load_average": os.getloadavg(), "section_bytes": section.stat().st_size, "compare": a.compare}
    for sig, values in runs.items():
        print(f"{sig:36s} median {statistics.median(values):7.3f} ms  runs {values}")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
