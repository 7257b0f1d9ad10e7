"""Weights bound into a converted graph (`edge_mtp.quantize.tflite`) against ai-edge-quantizer, the oracle:
the same small graph converted the ordinary way (weights as constants) and quantized by ai-edge-quantizer
must hold the same integers and scales as ours, and both must compute the same outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from edge_mtp.export.graphs import ExternalWeights
from edge_mtp.quantize.recipes import LOOKUP, MATMUL
from edge_mtp.quantize.tflite import WeightSource, bind_weights

VOCAB, HIDDEN, WIDE = 256, 64, 96


class Tiny(nn.Module):
    """An embedding lookup and two matmuls: the two kinds of weight the bundles have."""

    def __init__(self, external: ExternalWeights | None = None):
        super().__init__()
        self.table = nn.Parameter(torch.randn(VOCAB, HIDDEN) * 0.05)
        self.up = nn.Linear(HIDDEN, WIDE, bias=False)
        self.down = nn.Linear(WIDE, HIDDEN, bias=False)
        self.external = external

    def forward(self, token_ids, weights=None):
        with self.external.bound(weights) if self.external else _nothing():
            x = F.embedding(token_ids, self.table)
            return {"out": self.down(F.gelu(self.up(x), approximate="tanh"))}


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _convert(module, sample, path):
    import litert_torch

    converter = litert_torch.Converter()
    converter.add_signature("run", module.eval(), sample_kwargs=sample)
    converter.convert().export(str(path))
    return path


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    """(weights, float graph with constant weights, graph with the weights as inputs)."""
    torch.manual_seed(0)
    tmp = tmp_path_factory.mktemp("tflite-weights")
    model = Tiny().eval()
    weights = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    weights["table"][7] = 0.0  # a zero row: ai-edge-quantizer needs its scale fixed, ours never is zero
    model.table.data[7] = 0.0
    ids = {"token_ids": torch.tensor([[3, 7, 200]], dtype=torch.int32)}
    with torch.no_grad():
        constant = _convert(model, ids, tmp / "constant.tflite")
    skeleton_model = Tiny()
    external = ExternalWeights(skeleton_model, "tiny", {k: (k, tuple(v.shape)) for k, v in weights.items()})
    for key in weights:
        owner, _, leaf = key.rpartition(".")
        skeleton_model.get_submodule(owner)._parameters[leaf] = None
    skeleton_model.external = external
    with torch.no_grad():
        skeleton = _convert(skeleton_model, {**ids, "weights": external.sample()}, tmp / "skeleton.tflite")
    sources = {external.key(k): WeightSource(k, v.shape, lambda a, b, v=v: v[a:b]) for k, v in weights.items()}
    return tmp, constant, skeleton, sources


def _theirs(constant, recipe_name, out):
    from ai_edge_quantizer import qtyping, quantizer, recipe

    from edge_mtp.quantize import fix_zero_scales

    ops = qtyping.TFLOperationName
    make = getattr(recipe, recipe_name)
    rules = make(operation_name=ops.FULLY_CONNECTED) + make(operation_name=ops.EMBEDDING_LOOKUP)
    q = quantizer.Quantizer(str(constant))
    q.load_quantization_recipe(rules)
    q.quantize().export_model(str(out), overwrite=True)
    fix_zero_scales(out)
    return out


def _weights_by_op(path) -> list[tuple]:
    """(op, tensor type, scales, data bytes) of every constant weight, in op order."""
    from ai_edge_litert import schema_py_generated as schema

    raw = path.read_bytes()
    model = schema.ModelT.InitFromPackedBuf(raw, 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    graph, out = model.subgraphs[0], []
    for op in graph.operators:
        name = names[model.operatorCodes[op.opcodeIndex].builtinCode]
        if name not in ("FULLY_CONNECTED", "EMBEDDING_LOOKUP"):
            continue
        t = graph.tensors[op.inputs[1] if name == "FULLY_CONNECTED" else op.inputs[1]]
        buf = model.buffers[t.buffer]
        data = bytes(buf.data) if buf.data is not None else raw[buf.offset:buf.offset + buf.size]
        scale = None if t.quantization is None or t.quantization.scale is None else np.asarray(t.quantization.scale)
        out.append((name, t.type, scale, data))
    return out


def _run(path, ids):
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=str(path)).get_signature_runner("run")(token_ids=ids)["out"]


@pytest.mark.parametrize("scheme, theirs", [("i8c", "dynamic_wi8c_afp32"), ("i4c", "dynamic_wi4c_afp32"),
                                            ("i2c", "dynamic_wi2c_afp32"),
                                            ("i4b32", "dynamic_wi4b32_afp32"), ("f32", None)])
def test_bound_weights_equal_ai_edge_quantizer(graphs, scheme, theirs):
    tmp, constant, skeleton, sources = graphs
    ours = tmp / f"ours-{scheme}.tflite"
    with open(ours, "wb") as f:
        chosen = bind_weights(skeleton, f, sources, [(".*", MATMUL, scheme), (".*", LOOKUP, scheme)])
    assert set(chosen.values()) == {scheme}
    reference = _theirs(constant, theirs, tmp / f"theirs-{scheme}.tflite") if theirs else constant
    mine, other = _weights_by_op(ours), _weights_by_op(reference)
    assert [(op, kind) for op, kind, _, _ in mine] == [(op, kind) for op, kind, _, _ in other]
    for (op, _, scale_a, data_a), (_, _, scale_b, data_b) in zip(mine, other, strict=True):
        assert data_a == data_b, op
        if scale_a is not None:  # channelwise: the zero row's scale differs (ours 1, theirs 1e-9/qmax)
            keep = np.arange(len(scale_a)) != (7 if op == "EMBEDDING_LOOKUP" else -1)
            assert np.array_equal(scale_a[keep], scale_b[keep])
    ids = np.array([[3, 7, 200]], np.int32)
    assert np.abs(_run(ours, ids) - _run(reference, ids)).max() <= 1e-6


def test_fp16_weights_are_dequantized_in_the_graph(graphs):
    tmp, constant, skeleton, sources = graphs
    ours = tmp / "ours-f16.tflite"
    with open(ours, "wb") as f:
        bind_weights(skeleton, f, sources, [(".*", "*", "f16")])
    ids = np.array([[3, 7, 200]], np.int32)
    float_out = _run(constant, ids)
    assert 0 < np.abs(_run(ours, ids) - float_out).max() <= 1e-3 * np.abs(float_out).max()
