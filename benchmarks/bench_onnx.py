"""ONNX Runtime vs LiteRT on the same checkpoint: ms per decode, verify (K+1) and drafter step.

Both formats are exported by `edge-export` from one random-weight Gemma-4-E2B-shaped pair (preset
`small-e2b`, ~103 M target parameters, unless `--pair` names another) at fp32, int8 and int4, and run on
the CPU with 2 threads:

  * LiteRT:        `ai_edge_litert.CompiledModel`, signatures `decode` / `verify` / `mtp_drafter_candidates`;
  * ONNX Runtime:  CPUExecutionProvider, IO binding, the one dynamic-T `target.onnx` and `drafter.onnx`.

"graph" columns time the graph call alone (inputs written once, the K/V cache bound in place on both
sides, outputs not read); "step" columns time the backend's whole `verify`/`draft` call as the loop
makes it (embedder calls, input writes, output reads). Formats are timed interleaved in `--rounds`
rounds so that load on the shared machine hits them alike; medians are reported.

`--static` also exports fixed-shape (T=1 and T=K+1) ONNX target graphs and times them against the
dynamic-T graph: the measurement behind choosing one dynamic graph (docs: benchmarks/README.md).

    .venv/bin/python benchmarks/bench_onnx.py --quant fp32,int8,int4 --static --json /tmp/bench_onnx.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

from edge_mtp import contract as c


K = 4
POSITION = 64  # cache position of the timed calls (a prompt of 64 tokens is prefilled first)


def _median_ms(fn, iters: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def make_pair(work: Path, preset: str) -> Path:
    from edge_mtp.checkpoints.make import make_checkpoint

    pair = work / preset
    if not (pair / "drafter" / "config.json").exists():
        make_checkpoint(preset, pair, seed=0)
    return pair


def export_all(pair: Path, work: Path, quants: list[str], context: int) -> dict[tuple[str, str], Path]:
    from edge_mtp.export.exporter import ExportOptions, export_litertlm, export_onnx

    paths = {}
    for quant in quants:
        opts = ExportOptions(quant, K, (32, 128), context)
        lite, onnx_dir = work / f"{quant}.litertlm", work / f"{quant}-onnx"
        for path, export in ((lite, export_litertlm), (onnx_dir, export_onnx)):
            if not path.exists():
                started = time.perf_counter()
                export(pair / "target", pair / "drafter", path, opts)
                print(f"exported {path.name} in {time.perf_counter() - started:.0f} s", flush=True)
        paths[("litert", quant)], paths[("onnx", quant)] = lite, onnx_dir
    return paths


# ---- graph-only timers ---------------------------------------------------------------------------
def litert_graph_timers(backend) -> dict:
    """Closures that run one signature with inputs already written (as LiteRT-LM would)."""
    graph = backend.target

    def prepared(sig, tokens, start):
        backend._signature(sig, tokens, start, len(tokens))  # writes every input once
        return lambda: graph.model.run_by_name(sig, graph.inputs[sig], graph.outputs[sig])

    timers = {"decode": prepared("decode", [5], POSITION), "verify": prepared("verify", [5] * (K + 1), POSITION)}
    if backend.drafter is not None:
        d = backend.drafter  # the signature our runtimes call (LiteRT-LM's `mtp_drafter` also places candidates)
        sig = c.SIG_DRAFTER_CANDIDATES if c.SIG_DRAFTER_CANDIDATES in d.signatures else c.SIG_DRAFTER
        timers["draft"] = lambda: d.model.run_by_name(sig, d.inputs[sig], d.outputs[sig])
    return timers


def onnx_binding(backend, session, tokens, start):
    binding = backend.target_binding(session)
    backend.bind_tokens(binding, tokens, start)
    return binding


def onnx_graph_timers(backend, session=None) -> dict:
    session = session or backend.sessions["target"]
    decode = onnx_binding(backend, session, [5], POSITION)
    verify = onnx_binding(backend, session, [5] * (K + 1), POSITION)
    timers = {"decode": lambda: session.run_with_iobinding(decode),
              "verify": lambda: session.run_with_iobinding(verify)}
    if backend.drafter is not None:
        timers["draft"] = lambda: backend.drafter.run_with_iobinding(backend._drafter_binding)
    return timers


def step_timers(backend) -> dict:
    """The loop's own calls: verify of 1 and K+1 tokens at POSITION (then rolled back), one draft."""
    from edge_mtp.runtime.views import drafter_views

    carry = backend.prefill(list(range(10, 10 + POSITION))).hidden[-1]
    views = drafter_views(POSITION - 1, POSITION - 1, POSITION + 1, backend.sliding_window)

    def verify(n):
        backend.rollback(POSITION)
        backend.verify([5] * n, POSITION)

    timers = {"decode": lambda: verify(1), "verify": lambda: verify(K + 1)}
    if backend.drafter is not None:
        timers["draft"] = lambda: backend.draft(5, carry, POSITION, views)
    return timers


def open_timed(path: Path, onnx: bool) -> tuple:
    """(backend, step timers, graph timers, bytes on disk) of one export (ONNX: with its `.onnx.data`)."""
    from edge_mtp.runtime.litert_backend import LiteRTBackend
    from edge_mtp.runtime.onnx_backend import OnnxBackend

    backend = OnnxBackend(path) if onnx else LiteRTBackend(path)
    steps = step_timers(backend)  # prefills
    if "draft" in steps:
        steps["draft"]()  # binds the drafter's inputs once
    graphs = (onnx_graph_timers if onnx else litert_graph_timers)(backend)
    size = sum(p.stat().st_size for p in path.glob("*.onnx*")) if path.is_dir() else path.stat().st_size
    return backend, steps, graphs, size


# ---- static-T ONNX graphs -----------------------------------------------------------------------
def export_static_targets(pair: Path, out: Path, context: int) -> dict[str, Path]:
    """Fixed-shape T=1 and T=K+1 target graphs (the alternative to one dynamic-T graph)."""
    from edge_mtp.contract import ACTIVATIONS, LOGITS, onnx_output
    from edge_mtp.export.graphs import TargetGraph, kv_names, target_sample
    from edge_mtp.export.onnx import ATTENTION, _export, fusable_rms_norm, scatter_writer, slice_window
    from edge_mtp.model import load_pair
    from edge_mtp.model.target import SlidingReads

    out.mkdir(exist_ok=True)
    paths = {"decode": out / "decode.onnx", "verify": out / "verify.onnx"}
    if all(p.exists() for p in paths.values()):
        return paths
    target, tcfg, _, _ = load_pair(pair / "target", pair / "drafter", "float32", False)
    names = [onnx_output(n) for n in kv_names(tcfg.text)] + [LOGITS, ACTIVATIONS]
    for sig, tokens in (("decode", 1), ("verify", K + 1)):
        started = time.perf_counter()
        reads = SlidingReads.for_rows(slice_window, tcfg.text.sliding_window, tokens, context)
        graph = TargetGraph(target, scatter_writer, norm=fusable_rms_norm, sliding_reads=reads,
                            attention=ATTENTION)  # the forms of `edge-export`, at a fixed T
        _export(graph, target_sample(tcfg.text, tokens, context), names, {}, paths[sig])
        print(f"exported static {sig} in {time.perf_counter() - started:.0f} s", flush=True)
    return paths


def static_timers(backend, paths: dict[str, Path]) -> dict:
    from edge_mtp.runtime.onnx_backend import _session

    timers = {}
    for sig, tokens in (("decode", [5]), ("verify", [5] * (K + 1))):
        session = _session(paths[sig], 2)
        binding = onnx_binding(backend, session, tokens, POSITION)
        timers[sig] = lambda s=session, b=binding: s.run_with_iobinding(b)
    return timers


# ---- main -----------------------------------------------------------------------------------------
def measure(timer_sets: dict[str, dict], rounds: int, iters: int) -> dict[str, dict[str, float]]:
    """Interleaved medians: every round times every (label, call) once with `iters` calls."""
    samples: dict[str, dict[str, list[float]]] = {label: {} for label in timer_sets}
    for _ in range(rounds):
        for label, timers in timer_sets.items():
            for call, fn in timers.items():
                samples[label].setdefault(call, []).append(_median_ms(fn, iters))
    return {label: {call: statistics.median(v) for call, v in calls.items()} for label, calls in samples.items()}


def print_table(results: dict[str, dict[str, float]], sizes: dict[str, int]) -> None:
    print(f"\n{'format':<22}{'MB':>8}{'decode ms':>11}{'verify ms':>11}{'draft ms':>10}")
    for label, r in results.items():
        mb = sizes.get(label.rsplit(" ", 1)[0], 0) / 1e6
        print(f"{label:<22}{mb:>8.1f}{r.get('decode', float('nan')):>11.2f}{r.get('verify', float('nan')):>11.2f}"
              f"{r.get('draft', float('nan')):>10.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cache = Path(os.environ.get("EDGE_MTP_CACHE", Path.home() / ".cache/edge-mtp"))
    parser.add_argument("--work", type=Path, default=cache / "bench-onnx")
    parser.add_argument("--preset", default="small-e2b")
    parser.add_argument("--quant", default="fp32,int8,int4")
    parser.add_argument("--context", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--static", action="store_true", help="also time fixed-shape ONNX target graphs")
    parser.add_argument("--compare", action="append", default=[], metavar="LABEL=PATH",
                        help="also time this export (an ONNX directory or a .litertlm bundle, e.g. one built by older "
                             "code), graph calls only, interleaved with the rest; repeatable")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    args.work.mkdir(parents=True, exist_ok=True)
    pair = make_pair(args.work, args.preset)
    quants = args.quant.split(",")
    paths = export_all(pair, args.work, quants, args.context)
    graph_sets, step_sets, sizes = {}, {}, {}
    for (fmt, quant), path in paths.items():
        label = f"{fmt} {quant}"
        backend, step_sets[f"{label} step"], graph_sets[f"{label} graph"], sizes[label] = open_timed(path, fmt == "onnx")
        if fmt == "onnx" and quant == "fp32" and args.static:
            static_paths = export_static_targets(pair, args.work / "static", args.context)
            graph_sets["onnx fp32 static graph"] = static_timers(backend, static_paths)
            sizes["onnx fp32 static"] = sum(p.stat().st_size for p in (args.work / "static").glob("*.onnx"))
    for label, path in (item.split("=", 1) for item in args.compare):
        path = Path(path)
        _, _, graph_sets[f"{label} graph"], sizes[label] = open_timed(path, path.is_dir() or path.suffix == ".zip")
    load_before = os.getloadavg()[0]
    results = measure({**graph_sets, **step_sets}, args.rounds, args.iters)
    print_table(results, sizes)
    ratios = {q: {c: results[f"onnx {q} graph"][c] / results[f"litert {q} graph"][c]
                  for c in ("decode", "verify", "draft")}
              for q in quants}
    print("\nONNX Runtime / LiteRT (graph):",
          json.dumps({q: {c: round(v, 2) for c, v in r.items()} for q, r in ratios.items()}))
    record = {"preset": args.preset, "context": args.context, "K": K, "position": POSITION, "threads": 2,
              "results_ms": results, "onnx_over_litert": ratios, "bytes": sizes,
              "load_avg_1min": [load_before, os.getloadavg()[0]], "machine": platform.platform()}
    print(f"1-min load average {load_before:.2f} -> {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
