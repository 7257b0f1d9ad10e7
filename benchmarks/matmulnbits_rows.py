"""What onnxruntime's int4 MatMulNBits costs per row: one node, M rows against one weight, by block size.

A verify of K+1 tokens multiplies K+1 rows by every weight matrix; on a memory-bound CPU those rows should
cost about what one row costs (the weights are read once). This times a single MatMulNBits node (4-bit,
symmetric, accuracy level 4, as `edge-export --format onnx --quant int4` writes them) with a weight far
larger than the caches, for each row count and block size, interleaved, and prints the cost of M rows
relative to the first row count given (1 by default). Random weights: the kernel's time does not depend
on the values.

    .venv/bin/python benchmarks/matmulnbits_rows.py --rows 1,2,3,4,5,6,8 --blocks 128,256 \\
        --json benchmarks/results/issue12/onnx-window/matmulnbits-rows.json
    .venv/bin/python benchmarks/matmulnbits_rows.py --rows 1,2,3,4,5 --blocks 256 --chunks 1,8,32,96 \\
        --json benchmarks/results/issue12/onnx-window/matmulnbits-chunks.json

Results: benchmarks/README.md, "ONNX Runtime vs LiteRT".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np


def session(k: int, n: int, block: int, threads: int, chunks: int = 1, seed: int = 0):
    """Y[M, n] = A[M, k] . W[k, n], W int4 in blocks of `block` along k, as `chunks` MatMulNBits nodes of n / chunks
    columns each (then one Concat): with chunks small enough for the caches, a kernel that reads W once per
    pair of rows would stop paying for the re-reads; one that is compute-bound would not change."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    width = n // chunks
    nodes, weights = [], []
    for c in range(chunks):
        data = rng.integers(0, 256, size=(width, k // block, block // 2), dtype=np.uint8)
        scales = rng.random(width * k // block, dtype=np.float32) * 0.01
        weights += [helper.make_tensor(f"B{c}", TensorProto.UINT8, data.shape, data.tobytes(), raw=True),
                    helper.make_tensor(f"scales{c}", TensorProto.FLOAT, scales.shape, scales.tobytes(), raw=True)]
        nodes.append(helper.make_node("MatMulNBits", ["A", f"B{c}", f"scales{c}"], [f"Y{c}" if chunks > 1 else "Y"],
                                      domain="com.microsoft", K=k, N=width, bits=4, block_size=block,
                                      accuracy_level=4))
    if chunks > 1:
        nodes.append(helper.make_node("Concat", [f"Y{c}" for c in range(chunks)], ["Y"], axis=-1))
    graph = helper.make_graph(
        nodes, "matmulnbits", [helper.make_tensor_value_info("A", TensorProto.FLOAT, ["M", k])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["M", n])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 10
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # one node per run: a worker left spinning between runs competed with the caller on this 2-core VM, and the
    # same call took 2.6 or 5.3 ms at random; without spinning the times repeat (a whole graph wants spinning)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def measure(sessions: dict[str, object], rows: list[int], k: int, rounds: int, iters: int) -> dict:
    """Median ms per (variant, M), every round running every variant and row count in turn."""
    rng = np.random.default_rng(1)
    times: dict[tuple[int, int], list[float]] = {}
    for _ in range(rounds):
        for m in rows:
            a = rng.standard_normal((m, k)).astype(np.float32)
            for block, sess in sessions.items():
                sess.run(None, {"A": a})  # warm-up after the switch
                for _ in range(iters):
                    start = time.perf_counter()
                    sess.run(None, {"A": a})
                    times.setdefault((block, m), []).append(time.perf_counter() - start)
    return {block: {m: 1e3 * statistics.median(times[(block, m)]) for m in rows} for block in sessions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--k", type=int, default=1536, help="input features (E2B's hidden size)")
    parser.add_argument("--n", type=int, default=98304, help="output features (default: a 75 MB int4 weight)")
    parser.add_argument("--rows", default="1,2,3,4,5,6,8")
    parser.add_argument("--blocks", default="128,256")
    parser.add_argument("--chunks", default="1", help="split the weight into this many nodes along n (1,8,...)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    import onnxruntime as ort

    rows = [int(x) for x in args.rows.split(",")]
    blocks = [int(x) for x in args.blocks.split(",")]
    chunks = [int(x) for x in args.chunks.split(",")]
    sessions = {(f"{b}" if c == 1 else f"{b}x{c}"): session(args.k, args.n, b, args.threads, c)
                for b in blocks for c in chunks}
    load_before = os.getloadavg()[0]
    results = measure(sessions, rows, args.k, args.rounds, args.iters)
    weight_mb = args.k * args.n / 2 / 1e6
    print(f"onnxruntime {ort.__version__}, {args.threads} threads, int4 weight {args.k} x {args.n} ({weight_mb:.0f} MB)")
    print(f"{'block':>9}" + "".join(f"{f'M={m} ms':>12}" for m in rows) + "   M rows / 1 row   (BxC: C nodes)")
    for label, by_rows in results.items():
        ratios = " ".join(f"{by_rows[m] / by_rows[rows[0]]:.2f}" for m in rows)
        print(f"{label:>9}" + "".join(f"{by_rows[m]:>12.2f}" for m in rows) + f"   {ratios}")
    if args.json:
        record = {"onnxruntime": ort.__version__, "threads": args.threads, "k": args.k, "n": args.n,
                  "weight_mb": weight_mb, "median_ms": {b: {str(m): v for m, v in r.items()} for b, r in results.items()},
                  "load_avg_1min": [load_before, os.getloadavg()[0]], "machine": platform.platform()}
        args.json.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
