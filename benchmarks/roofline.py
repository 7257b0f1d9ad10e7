"""Roofline of a bundle's target graphs: is verify (T = K + 1 rows) slow because of memory or compute?

Times the target signatures of one `.litertlm` (decode T = 1, verify T = K + 1, every prefill_N) through
our LiteRT backend (CompiledModel, K/V bound in place), median of `--calls` interleaved calls each, and
puts them next to the two roofs a step can hit (Williams et al. 2009, "Roofline"):

* memory: the bytes a step must read (constant weights + the whole K/V cache, as `edge-mtp bench`
  counts them) over the machine's copy bandwidth, measured in the same run;
* compute: the multiply-adds per row (every matmul of the decoder and the tied LM head, attention over
  all cache slots) over the throughput *the same kernels* reach on this machine, taken from the
  slope between the two largest prefill signatures, where many rows share one read of the weights.

With t(T) ≈ t_fixed + T · t_row fitted through the prefill points, the verify bar of issue 12
(verify / decode ≤ 1.3) needs K+1 rows to cost at most 0.3 decodes of extra compute. The script prints
what the kernels' measured per-row cost makes of that, i.e. whether the bar is reachable with them.

    .venv/bin/python benchmarks/roofline.py BUNDLE [--calls 15] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from edge_mtp import contract as c  # noqa: E402
from edge_mtp.bench.bandwidth import copy_bandwidth  # noqa: E402
from edge_mtp.bench.roofline import macs_per_row  # noqa: E402
from edge_mtp.bench.runner import step_bytes  # noqa: E402
from edge_mtp.model.config import parse_text_config  # noqa: E402
from edge_mtp.runtime.litert_backend import LiteRTBackend  # noqa: E402


def median_ms(graph, sig: str, calls: int) -> float:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        graph.model.run_by_name(sig, graph.inputs[sig], graph.outputs[sig])
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--calls", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    backend = LiteRTBackend(args.bundle, threads=args.threads)
    if len(backend.prefill_lengths) < 2:
        sys.exit(f"{args.bundle}: the kernels' rate is the slope between two prefill signatures; this bundle has "
                 f"{len(backend.prefill_lengths)} (export with --prefill 32,128)")
    manifest, graph = backend.manifest, backend.target
    target = manifest["config"]["target"]  # as the checkpoint's config.json: text_config nested for `gemma4`
    cfg = parse_text_config(target.get("text_config", target), f"{args.bundle} manifest config.target")
    context = int(manifest["context"])
    rows = {c.SIG_DECODE: 1, c.SIG_VERIFY: backend.verify_len,
            **{c.prefill_signature(n): n for n in backend.prefill_lengths}}
    for sig in rows:  # warm up: XNNPACK packs weights on first use
        graph.model.run_by_name(sig, graph.inputs[sig], graph.outputs[sig])
    load_start = os.getloadavg()
    samples = {sig: [] for sig in rows}
    for _ in range(3):  # interleaved, so load changes hit every signature alike
        for sig in rows:
            samples[sig].append(median_ms(graph, sig, max(1, args.calls // 3)))
    ms = {sig: statistics.median(v) for sig, v in samples.items()}
    bandwidth = copy_bandwidth()
    load_end = os.getloadavg()

    nbytes = step_bytes(args.bundle, manifest, "litert")
    macs = macs_per_row(cfg, context)
    per_row = sum(macs.values())
    body = per_row - macs["lm head"]  # prefill signatures return the cache only: no LM head in their slope
    # t(T) = t_fixed + T * t_row through the two largest prefills (many rows per weight read): the kernels' rate
    (t1, m1), (t2, m2) = sorted((rows[s], ms[s]) for s in rows if s.startswith(c.PREFILL_PREFIX))[-2:]
    t_row_body = (m2 - m1) / (t2 - t1)
    gmacs = body / (t_row_body * 1e-3) / 1e9
    t_row = per_row / (gmacs * 1e9) * 1e3  # a verify row also runs the LM head
    k1 = backend.verify_len
    verify_floor = ms[c.SIG_DECODE] + (k1 - 1) * t_row  # decode's reads plus K more rows at the kernels' rate
    report = {
        "bundle": str(args.bundle), "threads": args.threads, "context": context, "rows": rows,
        "ms": {s: round(v, 2) for s, v in ms.items()},
        "macs_per_row": macs, "gmacs_per_row": round(per_row / 1e9, 3),
        "kernel_ms_per_row": round(t_row, 2), "kernel_gmac_s": round(gmacs, 1),
        "bandwidth_gb_s": round(bandwidth, 2), "bytes_per_step": nbytes,
        "memory_floor_ms": round(nbytes["total"] / (bandwidth * 1e9) * 1e3, 2),
        "verify_over_decode": round(ms[c.SIG_VERIFY] / ms[c.SIG_DECODE], 3),
        "verify_floor_ms": round(verify_floor, 2),
        "verify_floor_over_decode": round(verify_floor / ms[c.SIG_DECODE], 3),
        "compute_ms_per_verify": round(k1 * t_row, 2),
        "load_avg": [list(load_start), list(load_end)],
    }
    print(f"{args.bundle.name}: {cfg.num_layers} layers, context {context}, {per_row / 1e9:.2f} GMAC per row")
    print("| signature | rows | median ms | ms per row |")
    print("|---|---|---|---|")
    for sig, n in sorted(rows.items(), key=lambda kv: kv[1]):
        print(f"| {sig} | {n} | {ms[sig]:.1f} | {ms[sig] / n:.1f} |")
    print(f"bytes per step {nbytes['total'] / 1e9:.2f} GB: memory floor {report['memory_floor_ms']} ms at the copy "
          f"bandwidth; decode measured {ms[c.SIG_DECODE]:.1f} ms")
    print(f"kernel compute rate (prefill slope): {t_row:.2f} ms per row = {gmacs:.0f} GMAC/s; "
          f"copy bandwidth {bandwidth:.1f} GB/s; load {load_start[0]:.1f} -> {load_end[0]:.1f}")
    print(f"verify / decode measured {report['verify_over_decode']}; with decode's time plus {k1 - 1} rows at the "
          f"kernels' rate: {report['verify_floor_over_decode']} (issue 12's bar: 1.3)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
