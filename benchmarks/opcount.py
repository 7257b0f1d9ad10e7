"""Op counts per op type of the target `decode` / `verify` signatures: ours (a `.litertlm`) and export_hf's.

Reads the flatbuffer only (nothing runs). A STABLEHLO_COMPOSITE is counted under its composite name
(`STABLEHLO_COMPOSITE:odml.rms_norm`); the ops of its decomposition subgraph are not counted, because the
runtime sees one op. With `--partitions`, each signature is also loaded in the TFLite interpreter with
the XNNPACK delegate and the number of delegate partitions is counted (one `DELEGATE` node per
partition; every op XNNPACK does not take splits the graph). ai-edge-litert 2.3.0 has no per-op
timing profiler reachable from Python; `perf_profile.py` samples the running kernels with Linux `perf` instead.

    .venv/bin/python benchmarks/opcount.py ours-int8.litertlm theirs-int8/model.tflite --json counts.json
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import numpy as np

SIGNATURES = ("decode", "verify")
TARGET_SECTION = "tf_lite_prefill_decode"


def target_model(path: Path) -> bytes:
    """The target decoder's `.tflite` bytes: a bundle's prefill/decode section, or the file itself."""
    if path.suffix == ".litertlm":
        from edge_mtp.litertlm import read_bundle

        return bytes(read_bundle(path).model(TARGET_SECTION))
    return path.read_bytes()


def op_counts(data: bytes, signatures=SIGNATURES) -> dict[str, dict[str, int]]:
    """{signature: {op type: count}} over the ops of each signature's own subgraph."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(data, 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    out = {}
    for i in range(model.SignatureDefsLength()):
        sig = model.SignatureDefs(i)
        key = sig.SignatureKey().decode()
        if key not in signatures:
            continue
        graph = model.Subgraphs(sig.SubgraphIndex())
        counts: collections.Counter = collections.Counter()
        for j in range(graph.OperatorsLength()):
            op = graph.Operators(j)
            code = model.OperatorCodes(op.OpcodeIndex())
            kind = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), str(code.BuiltinCode()))
            if kind == "STABLEHLO_COMPOSITE":
                options = schema.StableHLOCompositeOptions()
                table = op.BuiltinOptions2()
                options.Init(table.Bytes, table.Pos)
                kind += ":" + options.Name().decode()
            counts[kind] += 1
        out[key] = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return out


def _with_signature_first(data: bytes, signature: str) -> bytes:
    """The model with `signature`'s subgraph swapped into slot 0 (the TFLite interpreter's Python API
    reports nodes of subgraph 0 only); every subgraph reference is remapped."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(data, 0)
    first = next(sd.subgraphIndex for sd in model.signatureDefs if sd.signatureKey.decode() == signature)
    swap = lambda i: first if i == 0 else 0 if i == first else i  # noqa: E731
    model.subgraphs[0], model.subgraphs[first] = model.subgraphs[first], model.subgraphs[0]
    for buf in model.buffers:  # data stored after the flatbuffer (offset/size) moves inline: the tail is not kept
        if buf.offset > 1:
            buf.data, buf.offset, buf.size = np.frombuffer(data, np.uint8, buf.size, buf.offset), 0, 0
    for sd in model.signatureDefs:
        sd.subgraphIndex = swap(sd.subgraphIndex)
    for graph in model.subgraphs:
        for op in graph.operators or []:
            if op.builtinOptions2Type == schema.BuiltinOptions2.StableHLOCompositeOptions:
                op.builtinOptions2.decompositionSubgraphIndex = swap(op.builtinOptions2.decompositionSubgraphIndex)
    builder = flatbuffers.Builder(len(data) + (1 << 20))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def xnnpack_partitions(data: bytes, signature: str, threads: int = 2) -> int:
    """How many XNNPACK delegate partitions the TFLite interpreter makes of `signature`: 1 when every op
    runs in XNNPACK; each op XNNPACK does not take splits the graph (a sync point per split)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=_with_signature_first(data, signature), num_threads=threads)
    interp.allocate_tensors()
    return sum(op["op_name"] == "DELEGATE" for op in interp._get_ops_details())


def table(counts: dict[str, dict[str, dict[str, int]]]) -> str:
    """Markdown: one row per op type, one column per (file, signature)."""
    cols = [(f, s) for f in counts for s in counts[f]]
    kinds = sorted({k for f, s in cols for k in counts[f][s]}, key=lambda k: -max(counts[f][s].get(k, 0)
                                                                                   for f, s in cols))
    head = "| op | " + " | ".join(f"{f} {s}" for f, s in cols) + " |"
    lines = [head, "|---" * (len(cols) + 1) + "|"]
    totals = [sum(v for k, v in counts[f][s].items() if not k.startswith("(")) for f, s in cols]
    lines.append("| **total** | " + " | ".join(str(t) for t in totals) + " |")
    for k in kinds:
        lines.append(f"| {k} | " + " | ".join(str(counts[f][s].get(k, 0)) for f, s in cols) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", help="LABEL=PATH or PATH (.litertlm bundle or .tflite)")
    p.add_argument("--json", type=Path, help="write {label: {signature: {op: count}}} here")
    p.add_argument("--partitions", action="store_true", help="also count XNNPACK partitions per signature")
    args = p.parse_args(argv)
    counts = {}
    for spec in args.models:
        label, _, path = spec.rpartition("=")
        path = Path(path)
        label = label or path.stem
        if not path.exists():
            print(f"{path}: no such file", file=sys.stderr)
            return 2
        data = target_model(path)
        counts[label] = op_counts(data)
        if args.partitions:
            for sig in counts[label]:
                counts[label][sig]["(XNNPACK partitions)"] = xnnpack_partitions(data, sig)
    print(table(counts))
    if args.json:
        args.json.write_text(json.dumps(counts, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
