"""ONNX: post-hoc weight quantization of the exported `.onnx` graphs with onnxruntime's quantizers.

Modes (the same for every graph; toolchain.md §4):

    fp32   no change
    fp16   weights stored as fp16 with a Cast to fp32 in front: half the file, fp32 compute (the ORT CPU
           provider has no fp16 MatMul/Gather kernels on x86, so fp16 *compute* would not load there)
    int8   `quantize_dynamic`: int8 weights, dynamically quantized activations (MatMulInteger), int8 Gather
    int4   `MatMulNBits` block 32, symmetric, accuracy level 4 (int8 compute), embeddings via
           `GatherBlockQuantized`; the tied LM head included

The dynamo exporter writes the tied LM head as MatMul(x, Transpose(E)); neither quantizer touches a
weight behind a Transpose, so constant transposes are folded into initializers first. Every quantized
graph is checked: its float32 weight bytes must have shrunk, else the export fails.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from edge_mtp.errors import EdgeMTPError
from edge_mtp.quiet import quiet

ONNX_QUANT_MODES = ("fp32", "fp16", "int8", "int4")
INT4_BLOCK = 32


def float_weight_bytes(model) -> int:
    """Bytes of float32 initializers (weights) in an ONNX model."""
    from onnx import TensorProto

    return sum(int(np.prod(t.dims)) * 4 for t in model.graph.initializer if t.data_type == TensorProto.FLOAT)


def fold_constant_transposes(model) -> int:
    """Replace Transpose(initializer) by a pre-transposed initializer; returns how many were folded."""
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    consumers = {}
    for node in model.graph.node:
        for name in node.input:
            consumers[name] = consumers.get(name, 0) + 1
    folded = 0
    for node in list(model.graph.node):
        if node.op_type != "Transpose" or node.input[0] not in inits:
            continue
        weight = numpy_helper.to_array(inits[node.input[0]])
        perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
        transposed = np.ascontiguousarray(np.transpose(weight, perm))
        model.graph.initializer.append(numpy_helper.from_array(transposed, node.output[0]))
        model.graph.node.remove(node)
        folded += 1
        consumers[node.input[0]] -= 1
        if consumers[node.input[0]] == 0:  # the untransposed copy is no longer read
            model.graph.initializer.remove(inits.pop(node.input[0]))
    return folded


def store_fp16(model) -> int:
    """Store float32 weights (2-D and up) as fp16 behind a Cast to float32; returns how many."""
    from onnx import TensorProto, helper, numpy_helper

    casts = []
    for i, init in enumerate(list(model.graph.initializer)):
        if init.data_type != TensorProto.FLOAT or len(init.dims) < 2:
            continue
        name = init.name  # `init` is the message CopyFrom overwrites below
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), f"{name}_fp16")
        model.graph.initializer[i].CopyFrom(half)
        casts.append(helper.make_node("Cast", [half.name], [name], name=f"{name}_to_fp32", to=TensorProto.FLOAT))
    for node in reversed(casts):  # constants first, so the node list stays topologically sorted
        model.graph.node.insert(0, node)
    return len(casts)


def data_file(graph: Path) -> Path:
    """Where a graph's external weights live: `<graph>.onnx.data`, the name torch.onnx and onnxruntime's
    quantizers write."""
    return graph.with_name(graph.name + ".data")


def _save(model, dst: Path, external: bool) -> None:
    import onnx

    if external:  # weights beside the graph in `<name>.data`, as the exporter writes them
        onnx.save(model, dst, save_as_external_data=True, all_tensors_to_one_file=True,
                  location=data_file(dst).name, size_threshold=1024)
    else:
        onnx.save(model, dst)


def _int8(src: Path, dst: Path, external: bool) -> dict:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    options = {"op_types_to_quantize": ["MatMul", "Gather"], "weight_type": "QInt8", "per_channel": False}
    with quiet("onnxruntime"):
        quantize_dynamic(src, dst, op_types_to_quantize=options["op_types_to_quantize"], weight_type=QuantType.QInt8,
                         use_external_data_format=external)
    return {"tool": "onnxruntime.quantization.quantize_dynamic", **options}


def _int4(src: Path, dst: Path, external: bool) -> dict:
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    options = {"bits": 4, "block_size": INT4_BLOCK, "is_symmetric": True, "accuracy_level": 4,
               "op_types_to_quantize": ["MatMul", "Gather"], "quant_axes": [["MatMul", 0], ["Gather", 1]]}
    quantizer = MatMulNBitsQuantizer(onnx.load(src), bits=4, block_size=INT4_BLOCK, is_symmetric=True,
                                     accuracy_level=4, op_types_to_quantize=("MatMul", "Gather"),
                                     quant_axes=(("MatMul", 0), ("Gather", 1)))
    with quiet("onnxruntime", "onnxruntime.quantization.matmul_nbits_quantizer"):
        quantizer.process()
    quantizer.model.save_model_to_file(str(dst), use_external_data_format=external)
    return {"tool": "onnxruntime.quantization.MatMulNBitsQuantizer", **options}


def quantize_graph(src: Path, dst: Path, mode: str) -> dict:
    """Quantize one graph file into `dst`; returns the recipe. Fails if no weight changed."""
    import onnx

    external = data_file(Path(src)).exists()
    model = onnx.load(src)
    before = float_weight_bytes(model)
    recipe = {"mode": mode, "folded_transposes": fold_constant_transposes(model)}
    if mode == "fp16":
        recipe["fp16_weights"] = store_fp16(model)
        _save(model, dst, external)
    else:
        with tempfile.TemporaryDirectory(prefix="edge-onnx-q-") as tmp:
            folded = Path(tmp) / "folded.onnx"
            _save(model, folded, external)
            recipe.update((_int8 if mode == "int8" else _int4)(folded, dst, external))
    after = float_weight_bytes(onnx.load(dst))
    if after >= before:
        raise EdgeMTPError(f"--quant {mode}: the quantizer changed no weight of {Path(src).name} "
                           f"({before} float32 weight bytes before, {after} after)")
    return recipe


def quantize_graphs(graphs: dict[str, Path], mode: str, workdir: Path, progress=None
                    ) -> tuple[dict[str, Path], dict[str, dict]]:
    """Quantize every graph with `mode` into `workdir` (same file names); returns ({graph: path}, {graph: recipe})."""
    if mode not in ONNX_QUANT_MODES:
        raise EdgeMTPError(f"--quant '{mode}' is not supported for ONNX; expected one of {', '.join(ONNX_QUANT_MODES)}")
    if mode == "fp32":
        return dict(graphs), {g: {"mode": "fp32"} for g in graphs}
    task = progress.add_task(f"quantize {mode}", total=len(graphs)) if progress else None
    workdir.mkdir(parents=True, exist_ok=True)
    out, recipes = {}, {}
    for graph, path in graphs.items():
        out[graph] = workdir / path.name
        recipes[graph] = quantize_graph(path, out[graph], mode)
        if task is not None:
            progress.advance(task)
    return out, recipes
