"""LiteRT: post-hoc weight quantization of the converted `.tflite` sections with ai-edge-quantizer recipes.

Modes (the same for target and drafter sections):

    fp32   no change
    fp16   fp16 weights (weight-only float casting)
    int8   int8 channelwise dynamic-range weights
    int4   int4 blockwise-32 dynamic-range weights (never channelwise: it collapses small models); the
           per-layer-embedding projections stay int8 channelwise, as in Google's own Gemma 4 recipes
    mixed  int4 blockwise-32 body, int8 channelwise embeddings, attention and PLE projections

The quantizer silently skips recipes it cannot apply, so every quantized section is checked: its
float weight bytes must have shrunk, else the export fails (toolchain.md §3).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from edge_mtp.errors import EdgeMTPError

QUANT_MODES = ("fp32", "fp16", "int8", "int4", "mixed")
EMBEDDING_SECTIONS = ("tf_lite_embedder", "tf_lite_per_layer_embedder")


def _recipe(mode: str, section: str) -> list[dict]:
    from ai_edge_quantizer import algorithm_manager, qtyping, recipe, recipe_manager

    ops = qtyping.TFLOperationName
    if mode == "fp16":
        manager = recipe_manager.RecipeManager()
        manager.add_weight_only_config(regex=".*", operation_name=ops.ALL_SUPPORTED, num_bits=16,
                                       algorithm_key=algorithm_manager.AlgorithmName.FLOAT_CASTING)
        return manager.get_quantization_recipe()
    if section in EMBEDDING_SECTIONS:  # the lookup must be named: ALL_SUPPORTED leaves it in float
        bits = recipe.dynamic_wi4b32_afp32 if mode == "int4" else recipe.dynamic_wi8c_afp32
        return bits(operation_name=ops.EMBEDDING_LOOKUP)
    if mode == "int8":
        return recipe.dynamic_wi8_afp32()
    int8_parts = "per_layer" if mode == "int4" else "self_attn|per_layer"  # later rules win
    return (recipe.dynamic_wi4b32_afp32(operation_name=ops.FULLY_CONNECTED)
            + recipe.dynamic_wi8c_afp32(regex=int8_parts, operation_name=ops.FULLY_CONNECTED))


def weight_bytes(model_file: Path | bytes) -> Counter:
    """Bytes of constant tensor data per tensor type (FLOAT32, INT8, INT4, ...) in a .tflite model."""
    from ai_edge_litert import schema_py_generated as schema

    data = model_file if isinstance(model_file, bytes) else Path(model_file).read_bytes()
    model = schema.Model.GetRootAs(data, 0)
    names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    sizes: Counter = Counter()
    seen = set()
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        for t in range(graph.TensorsLength()):
            tensor = graph.Tensors(t)
            buffer = model.Buffers(tensor.Buffer())
            size = buffer.DataLength() or buffer.Size()
            if size and tensor.Buffer() not in seen:
                seen.add(tensor.Buffer())
                sizes[names.get(tensor.Type(), str(tensor.Type()))] += size
    return sizes


def _buffer_view(data: bytearray, model, tensor, dtype) -> np.ndarray | None:
    """A writable numpy view of a constant tensor's bytes inside the flatbuffer `data`."""
    buffer = model.Buffers(tensor.Buffer())
    raw = buffer.DataAsNumpy()
    if isinstance(raw, np.ndarray):
        return raw.view(dtype)
    if buffer.Offset():  # large models keep tensor data after the flatbuffer
        return np.frombuffer(memoryview(data)[buffer.Offset():buffer.Offset() + buffer.Size()], dtype)
    return None


def fix_zero_scales(path: Path) -> int:
    """Replace quantization scales of 0 by 1; returns how many were replaced.

    An all-zero weight block (e.g. the embedding row of the pad token) gets scale 0, which XNNPACK
    rejects for INT4 tensors ("unsupported scale value (0.000000)"). Its quantized values are all 0, so
    any scale dequantizes to the same zeros: the model is unchanged. Per-channel scales live in the
    tensor's quantization table, blockwise ones in a separate fp16/fp32 scale tensor; both are patched
    in place inside the flatbuffer.
    """
    from ai_edge_litert import schema_py_generated as schema

    data = bytearray(Path(path).read_bytes())
    model = schema.Model.GetRootAs(data, 0)
    types = {schema.TensorType.FLOAT16: np.float16, schema.TensorType.FLOAT32: np.float32}
    fixed = 0
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        for t in range(graph.TensorsLength()):
            q = graph.Tensors(t).Quantization()
            if q is None:
                continue
            views = [q.ScaleAsNumpy()]
            if q.DetailsType() == schema.QuantizationDetails.BlockwiseQuantization:
                details = schema.BlockwiseQuantization()
                details.Init(q.Details().Bytes, q.Details().Pos)
                scale_tensor = graph.Tensors(details.Scales())
                views.append(_buffer_view(data, model, scale_tensor, types.get(scale_tensor.Type(), np.float32)))
            for scales in views:
                if isinstance(scales, np.ndarray) and (scales == 0).any():
                    fixed += int((scales == 0).sum())
                    scales[scales == 0] = 1.0  # writes through into `data`
    if fixed:
        Path(path).write_bytes(bytes(data))
    return fixed


def quantize_file(src: Path, dst: Path, mode: str, section: str) -> list[dict]:
    """Quantize one section file; returns the recipe used. Fails if nothing was quantized."""
    from ai_edge_quantizer import quantizer

    rules = _recipe(mode, section)
    q = quantizer.Quantizer(str(src))
    q.load_quantization_recipe(rules)
    q.quantize().export_model(str(dst), overwrite=True)
    fix_zero_scales(dst)
    before, after = weight_bytes(src)["FLOAT32"], weight_bytes(dst)["FLOAT32"]
    if after >= before:
        raise EdgeMTPError(f"--quant {mode}: the quantizer changed no weight of {section} "
                           f"({before} float32 weight bytes before and after)")
    return rules


def _jsonable(rules: list[dict]) -> list[dict]:
    import json

    return json.loads(json.dumps(rules, default=lambda v: getattr(v, "value", str(v))))


def quantize_sections(sections: dict[str, Path], mode: str, workdir: Path, progress=None
                      ) -> tuple[dict[str, Path], dict[str, list[dict]]]:
    """Quantize every section with `mode`; returns ({section: path}, {section: recipe})."""
    if mode == "fp32":
        return dict(sections), {s: [] for s in sections}
    task = progress.add_task(f"quantize {mode}", total=len(sections)) if progress else None
    out, recipes = {}, {}
    for section, path in sections.items():
        out[section] = workdir / f"{section}.{mode}.tflite"
        recipes[section] = _jsonable(quantize_file(path, out[section], mode, section))
        if task is not None:
            progress.advance(task)
    return out, recipes
