"""Which scheme (`edge_mtp.quantize.schemes`) each weight gets, per `--quant` mode and export format.

A weight is described by the op that consumes it in the converted graph (`matmul`: a fully connected /
MatMul, `lookup`: an embedding gather) and its checkpoint name; the rules are data, so the manifest
records them and an export can be reproduced from it.

LiteRT (`.litertlm`), all weights dynamic-range (int weights, float activations):

    fp32   float32 everywhere
    fp16   float16 weights (DEQUANTIZE to float32 in the graph)
    int8   int8 channelwise everywhere
    int4   int4 channelwise matmuls and tables, int8 channelwise per-layer-embedding projections: the
           layout of Google's own Gemma 4 bundles (ai-edge-quantizer's `gemma4_mixed48` recipe), which keeps
           an E2B bundle below the size of Google's
    mixed  `int4` with the per-layer-embedding table in int2 channelwise (read one row per token, the
           largest tensor: 2.35 B values in E2B, 2.82 B in E4B): 17% smaller, so that E4B fits in the size
           of Google's bundle (which stores 2-bit weights too). The token table stays int4: on the trained
           demo pair, int2 there drops top-1 agreement with fp32 from 76% to 35%, int2 in the per-layer
           table only to 69% (benchmarks/README.md, "Real size"); measure yours with `edge-mtp verify`

ONNX (onnxruntime's MatMulNBits / GatherBlockQuantized take block scales only; where a block does not
divide a row, the next smaller one is used, and where none does the weight stays float32, `quantizable`):

    fp32, fp16   as above (fp16 weights behind a Cast: ORT's CPU provider has no fp16 MatMul on x86)
    int8         int8 blockwise-128 matmuls and tables
    int4         int4 blockwise-256 matmuls and tables, int8 blockwise-256 per-layer-embedding projections
                 (256 is the largest block MatMulNBits takes, and the fastest measured: at E2B's shape, decode
                 55.6 -> 50.5 ms and verify(5) 115 -> 102 ms against block 128, benchmarks/README.md, "ONNX
                 Runtime vs LiteRT"; still finer than LiteRT's one scale per row)
The tied token table is stored once in ONNX exports: the embedder reads the target's LM-head tensor, which
needs the same scheme for the lookup and the matmul rules (true for every mode above).
"""

from __future__ import annotations

import re

from edge_mtp.quantize.schemes import Scheme, parse_scheme

MATMUL, LOOKUP, OTHER = "matmul", "lookup", "other"

# (weight-name regex, op kind, scheme); the first matching rule wins; a weight no rule matches stays float32.
Rules = list[tuple[str, str, str]]
PER_LAYER = r"per_layer"

LITERT_MODES: dict[str, Rules] = {
    "fp32": [],
    "fp16": [(".*", "*", "f16")],
    "int8": [(".*", MATMUL, "i8c"), (".*", LOOKUP, "i8c")],
    "int4": [(PER_LAYER, MATMUL, "i8c"), (".*", MATMUL, "i4c"), (".*", LOOKUP, "i4c")],
    "mixed": [(PER_LAYER, MATMUL, "i8c"), (".*", MATMUL, "i4c"), (PER_LAYER, LOOKUP, "i2c"), (".*", LOOKUP, "i4c")],
}



def _blocks(pattern: str, op: str, bits: int, *blocks: int) -> Rules:
    """Rules trying blocks in order: a block must divide the rows (tiny test models have 16- and 160-wide
    matrices; the full-size ones take the first choice)."""
    return [(pattern, op, f"i{bits}b{b}") for b in blocks]


ONNX_MODES: dict[str, Rules] = {
    "fp32": [],
    "fp16": [(".*", "*", "f16")],
    "int8": _blocks(".*", MATMUL, 8, 128, 32, 16) + _blocks(".*", LOOKUP, 8, 128, 32, 16),
    "int4": _blocks(PER_LAYER, MATMUL, 8, 256, 128, 32, 16) + _blocks(".*", MATMUL, 4, 256, 128, 32, 16)
    + _blocks(".*", LOOKUP, 4, 256, 128, 32, 16),
}
QUANT_MODES = tuple(LITERT_MODES)
ONNX_QUANT_MODES = tuple(ONNX_MODES)
F32 = parse_scheme("f32")


def quantizable(rules: Rules, name: str, shape: tuple[int, ...]) -> bool:
    """Whether some integer rule for `name` fits its shape: a blockwise one needs a block dividing the rows, so
    an ONNX table whose rows no block divides stays float32 (the demo pair's per-layer table is 15 x 8 = 120
    wide; MatMulNBits / GatherBlockQuantized take blocks of 16 and more)."""
    schemes = (parse_scheme(scheme_name) for pattern, _, scheme_name in rules if re.search(pattern, name))
    return any(not scheme.is_float and scheme.fits(shape) for scheme in schemes)


def scheme_for(rules: Rules, name: str, op: str, shape: tuple[int, ...]) -> Scheme:
    """The scheme of weight `name` consumed by an `op`-kind op. A blockwise rule whose block does not
    divide the rows falls through to the next rule (tiny test models have 16-wide matrices)."""
    for pattern, kind, scheme_name in rules:
        if kind in ("*", op) and re.search(pattern, name) and (op != OTHER or scheme_name in ("f32", "f16")):
            scheme = parse_scheme(scheme_name)
            if scheme.fits(shape):
                return scheme
    return F32
