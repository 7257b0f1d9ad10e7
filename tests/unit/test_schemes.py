"""Weight quantization schemes (numpy) and their ONNX Runtime encoding, against float references."""

from __future__ import annotations

import numpy as np
import pytest

from edge_mtp.quantize.recipes import LITERT_MODES, LOOKUP, MATMUL, ONNX_MODES, scheme_for
from edge_mtp.quantize.schemes import bf16_in_fp16, dequantize, encode, pack_int4, parse_scheme, quantize


@pytest.mark.parametrize("name", ["i8c", "i4c", "i4b32", "i8b128", "i4b64", "i4b256", "i8b256"])
def test_quantization_error_is_at_most_half_a_step(name):
    scheme = parse_scheme(name)
    w = np.random.default_rng(0).standard_normal((40, 256)).astype(np.float32)
    w[3] = 0.0  # an all-zero row (the pad token's embedding) must not get a zero scale
    q, scale = quantize(w, scheme, bf16_in_fp16 if scheme.block else None)
    assert q.min() >= -scheme.qmax - 1 and q.max() <= scheme.qmax
    assert np.all(scale > 0)
    step = np.repeat(scale, scheme.block, axis=-1) if scheme.block else scale[:, None]
    assert np.all(np.abs(dequantize(q, scale, scheme) - w) <= step / 2 * (1 + 1e-3) + 1e-7)
    assert np.all(dequantize(q, scale, scheme)[3] == 0)


def test_int4_packing_puts_the_first_value_in_the_low_nibble():
    q = np.array([[1, -2, 7, -8]], np.int8)
    assert pack_int4(q).tolist() == [0xE1, 0x87]  # -2 = 0xE, -8 = 0x8 (two's complement nibbles)
    assert pack_int4(q, offset=8).tolist() == [0x69, 0x0F]  # unsigned with zero point 8


def test_recipes_pick_google_gemma4_layout_for_int4():
    """int4 = int4 channelwise matmuls and tables, int8 per-layer-embedding projections (gemma4_mixed48)."""
    rules = LITERT_MODES["int4"]
    assert scheme_for(rules, "model.language_model.layers.0.mlp.up_proj.weight", MATMUL, (512, 128)).name == "i4c"
    projection = "model.language_model.layers.0.per_layer_projection.weight"
    assert scheme_for(rules, projection, MATMUL, (128, 16)).name == "i8c"
    assert scheme_for(rules, "model.language_model.embed_tokens.weight", LOOKUP, (4096, 128)).name == "i4c"
    # a block that does not divide the row falls through to the next rule
    assert scheme_for(ONNX_MODES["int4"], "model.language_model.embed_tokens_per_layer.weight", LOOKUP,
                      (4096, 160)).name == "i4b32"
    assert scheme_for(ONNX_MODES["int8"], "x.per_layer_projection.weight", MATMUL, (128, 16)).name == "i8b16"


def test_a_table_no_block_divides_stays_float_without_failing_the_export():
    """The demo pair's per-layer table is 15 x 8 = 120 wide: no ONNX block (16 and up) divides it, so it stays
    float32 and the export goes on; a section whose weights do fit a rule must still be quantized."""
    from edge_mtp.errors import EdgeMTPError
    from edge_mtp.export.exporter import _check_quantized
    from edge_mtp.quantize.recipes import quantizable

    rules, table = ONNX_MODES["int4"], "model.language_model.embed_tokens_per_layer.weight"
    assert scheme_for(rules, table, LOOKUP, (4096, 120)).name == "f32"
    assert not quantizable(rules, table, (4096, 120)) and quantizable(rules, table, (4096, 128))
    assert quantizable(LITERT_MODES["int4"], table, (4096, 120))  # channelwise fits every row length
    _check_quantized("int4", "per_layer_embedder", {table: "f32"}, rules, {table: (4096, 120)})
    with pytest.raises(EdgeMTPError, match="no weight of per_layer_embedder matched a quantization rule"):
        _check_quantized("int4", "per_layer_embedder", {table: "f32"}, rules, {table: (4096, 128)})


def _onnx_session(nodes, inputs, outputs, initializers):
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    graph = helper.make_graph(nodes, "g", inputs, outputs,
                              initializer=[numpy_helper.from_array(v, k) for k, v in initializers.items()])
    opsets = [helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=10)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("name", ["i4b32", "i8b128", "i4b64", "i8b16", "i4b256", "i8b256"])
def test_onnxruntime_reads_our_encoding_as_we_dequantize_it(name):
    """MatMulNBits and GatherBlockQuantized on our bytes == matmul / gather of `dequantize` (the oracle)."""
    from onnx import TensorProto, helper

    scheme = parse_scheme(name)
    rng = np.random.default_rng(1)
    n, k = 96, 256
    w = rng.standard_normal((n, k)).astype(np.float32)
    q, scale = quantize(w, scheme)
    packed = np.frombuffer(encode(q, scheme, unsigned=True), np.uint8)
    reference = dequantize(q, scale, scheme)
    a = rng.standard_normal((1, 3, k)).astype(np.float32)
    matmul = _onnx_session(
        [helper.make_node("MatMulNBits", ["A", "B", "S"], ["Y"], domain="com.microsoft", K=k, N=n, bits=scheme.bits,
                          block_size=scheme.block, accuracy_level=0)],
        [helper.make_tensor_value_info("A", TensorProto.FLOAT, [1, None, k])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, None, n])],
        {"B": packed.reshape(n, k // scheme.block, -1), "S": scale.reshape(-1)})
    assert np.abs(matmul.run(None, {"A": a})[0] - a @ reference.T).max() < 1e-4
    gather = _onnx_session(
        [helper.make_node("GatherBlockQuantized", ["D", "I", "S"], ["Y"], domain="com.microsoft", bits=scheme.bits,
                          block_size=scheme.block, gather_axis=0, quantize_axis=1)],
        [helper.make_tensor_value_info("I", TensorProto.INT32, [3])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [3, k])],
        {"D": packed.reshape(n, -1), "S": scale})
    rows = np.array([0, 5, 95], np.int32)
    assert np.array_equal(gather.run(None, {"I": rows})[0], reference[rows])
