"""Bind weights into an exported `.onnx` graph, quantizing them tensor by tensor on the way.

The exporter writes each graph with its weight matrices as inputs `weights_<key>`; torch.onnx feeds a
linear layer's weight through `Transpose` into `MatMul`, and an embedding table into `Gather`. This
module replaces those inputs by initializers streamed from the checkpoint in row chunks:

    matmul   f32/f16: the transposed weight as an initializer (f16 behind a Cast: ORT's CPU provider
             has no fp16 MatMul on x86); int8/int4: `MatMulNBits` (com.microsoft), whose B input is the
             weight in its original [out, in] row order, quantized in blocks along `in`, unsigned with
             the implicit zero point 2^(bits-1) (symmetric)
    lookup   f32/f16: the table (f16 behind a Cast); int8/int4: `GatherBlockQuantized` (uint8 data, values
             packed along the row, same zero-point convention, scales [rows, cols / block])

Graphs whose weights exceed `EXTERNAL_DATA_MIN_BYTES` keep them in `<graph>.onnx.data` (a protobuf file
cannot exceed 2 GB); the data file is written chunk by chunk, so memory stays at one chunk.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np

from edge_mtp.contract import WEIGHTS_PREFIX, onnx_data_file
from edge_mtp.errors import EdgeMTPError
from edge_mtp.quantize.recipes import LOOKUP, MATMUL, OTHER, Rules, scheme_for
from edge_mtp.quantize.schemes import Scheme, chunk_rows, encode, quantize
from edge_mtp.quantize.tflite import WeightSource

# A protobuf file cannot exceed 2 GB: graphs with more weight bytes than this keep them in `<graph>.onnx.data`
# (a full-size E2B/E4B target does; the tiny test models only when a test lowers this).
EXTERNAL_DATA_MIN_BYTES = 1 << 30
ALIGN = 64
ACCURACY_LEVEL = 4  # MatMulNBits: int8 compute of the activations, the fast path on x86 (benchmarks/README.md)
MS_DOMAIN = "com.microsoft"


class _DataWriter:
    """Initializer bytes, either appended to the external data file or kept for `raw_data`."""

    def __init__(self, path: Path | None):
        self.path, self.file = path, open(path, "wb") if path else None
        self.pieces: list[bytes] = []

    @contextmanager
    def tensor(self, proto):
        """Collect one initializer's bytes (written in order by `write`) into `proto`."""
        from onnx import TensorProto

        start = self.file.tell() if self.file else 0
        self.pieces = []
        yield
        if self.file:
            length = self.file.tell() - start
            proto.data_location = TensorProto.EXTERNAL
            for key, value in (("location", self.path.name), ("offset", str(start)), ("length", str(length))):
                entry = proto.external_data.add()
                entry.key, entry.value = key, value
            self.file.write(b"\0" * (-self.file.tell() % ALIGN))
        else:
            proto.raw_data = b"".join(self.pieces)

    def write(self, data: bytes) -> None:
        if self.file:
            self.file.write(data)
        else:
            self.pieces.append(data)

    def close(self) -> None:
        if self.file:
            self.file.close()
            if not self.path.stat().st_size:  # every tensor was another graph's (the shared table)
                self.path.unlink()


def _initializer(name: str, dtype: int, dims) -> object:
    from onnx import TensorProto

    proto = TensorProto()
    proto.name, proto.data_type = name, dtype
    proto.dims.extend(int(d) for d in dims)
    return proto


def _read_all(source: WeightSource) -> np.ndarray:
    return source.read(0, source.shape[0])


def _float_tensor(writer: _DataWriter, name: str, w: np.ndarray, scheme: Scheme):
    from onnx import TensorProto

    proto = _initializer(name, TensorProto.FLOAT16 if scheme.bits == 16 else TensorProto.FLOAT, w.shape)
    with writer.tensor(proto):
        writer.write(np.ascontiguousarray(w, np.float16 if scheme.bits == 16 else np.float32).tobytes())
    return proto


def _refer(proto, external: list[tuple[str, str]]) -> None:
    from onnx import TensorProto

    proto.data_location = TensorProto.EXTERNAL
    for key, value in external:
        entry = proto.external_data.add()
        entry.key, entry.value = key, value


def _quantized_tensors(writer: _DataWriter, name: str, source: WeightSource, scheme: Scheme, kind: str,
                       written: dict | None = None):
    """(data, scales) initializers of a MatMulNBits / GatherBlockQuantized weight, streamed by rows in one
    pass; the scales (1/8 to 1/32 of the data) are held until the data is written, so that each
    initializer is one contiguous stretch of the data file.

    Both ops store the same bytes for the same weight and block (rows of blocks along the row, first value
    in the low bits; scales row by row), so `written` ({(key, scheme): external references}) lets a
    graph reuse a tensor another graph of the export already wrote: the tied embedding is stored once,
    read as the target's LM head and as the embedder's table.
    """
    from onnx import TensorProto

    rows, cols = source.shape
    blocks = cols // scheme.block
    if kind == MATMUL:
        data = _initializer(f"{name}_q", TensorProto.UINT8, (rows, blocks, scheme.block * scheme.bits // 8))
    else:
        data = _initializer(f"{name}_q", TensorProto.UINT8, (rows, cols * scheme.bits // 8))
    scales = _initializer(f"{name}_scales", TensorProto.FLOAT, (rows, blocks) if kind == LOOKUP else (rows * blocks,))
    done = (written or {}).get((name, scheme.name)) if writer.file else None
    if done:
        _refer(data, done[0])
        _refer(scales, done[1])
        return data, scales
    step, parts = chunk_rows(source.shape), []
    with writer.tensor(data):
        for start in range(0, rows, step):
            q, s = quantize(source.read(start, min(rows, start + step)), scheme)
            writer.write(encode(q, scheme, unsigned=True))
            parts.append(s.astype(np.float32).tobytes())
    with writer.tensor(scales):
        for part in parts:
            writer.write(part)
    if writer.file and written is not None:
        written[(name, scheme.name)] = tuple([(e.key, e.value) for e in p.external_data] for p in (data, scales))
    return data, scales


def _consumers(graph) -> dict[str, list]:
    out: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            out.setdefault(name, []).append(node)
    return out


def _kind(name: str, consumers: dict[str, list]) -> tuple[str, list]:
    """How the graph uses weight input `name`: (`matmul` with its [(Transpose, MatMul)] pairs, `lookup`
    with its Gathers, or `other`)."""
    nodes = consumers.get(name, [])
    pairs = []
    for node in nodes:
        perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
        users = consumers.get(node.output[0], []) if node.op_type == "Transpose" else []
        if node.op_type != "Transpose" or perm != [1, 0] or not users or \
                any(u.op_type != "MatMul" or u.input[1] != node.output[0] for u in users):
            break
        pairs += [(node, u) for u in users]
    else:
        if nodes:
            return MATMUL, pairs
    if nodes and all(n.op_type == "Gather" and n.input[0] == name and
                     all(a.i == 0 for a in n.attribute if a.name == "axis") for n in nodes):
        return LOOKUP, nodes
    return OTHER, nodes


def _bind_one(graph, writer: _DataWriter, key: str, source: WeightSource, rules: Rules, consumers,
              written: dict | None) -> tuple:
    """Replace input `weights_<key>` by initializers (and nodes); returns (scheme, uses a contrib op)."""
    from onnx import TensorProto, helper

    name = WEIGHTS_PREFIX + key
    kind, uses = _kind(name, consumers)
    scheme = scheme_for(rules, source.name, kind, source.shape)
    rows, cols = source.shape
    if kind == MATMUL:
        for transpose in {t.name: t for t, _ in uses}.values():
            graph.node.remove(transpose)
        if scheme.is_float:  # MatMul wants [in, out]
            graph.initializer.append(_float_tensor(writer, key, _read_all(source).T, scheme))
            weight = key
            if scheme.bits == 16:
                weight = f"{key}_fp32"
                cast = helper.make_node("Cast", [key], [weight], name=f"{key}_cast", to=TensorProto.FLOAT)
                graph.node.insert(0, cast)
            for _, matmul in uses:
                matmul.input[1] = weight
        else:
            data, scales = _quantized_tensors(writer, key, source, scheme, kind, written)
            graph.initializer.extend([data, scales])
            for _, matmul in uses:
                fused = helper.make_node("MatMulNBits", [matmul.input[0], data.name, scales.name], list(matmul.output),
                                         name=matmul.name or f"{key}_matmul", domain=MS_DOMAIN, K=cols, N=rows,
                                         bits=scheme.bits, block_size=scheme.block, accuracy_level=ACCURACY_LEVEL)
                matmul.CopyFrom(fused)
    elif kind == LOOKUP and not scheme.is_float:
        data, scales = _quantized_tensors(writer, key, source, scheme, kind, written)
        graph.initializer.extend([data, scales])
        for gather in uses:
            fused = helper.make_node("GatherBlockQuantized", [data.name, gather.input[1], scales.name],
                                     list(gather.output), name=gather.name or f"{key}_gather", domain=MS_DOMAIN,
                                     bits=scheme.bits, block_size=scheme.block, gather_axis=0, quantize_axis=1)
            gather.CopyFrom(fused)
    else:  # a table (or anything else) in float, read under the input's own name
        graph.initializer.append(_float_tensor(writer, key if scheme.bits == 16 else name, _read_all(source), scheme))
        if scheme.bits == 16:
            graph.node.insert(0, helper.make_node("Cast", [key], [name], name=f"{key}_cast", to=TensorProto.FLOAT))
    return scheme, not scheme.is_float


def weights_in(skeleton_graph) -> list[str]:
    return sorted(i.name[len(WEIGHTS_PREFIX):] for i in skeleton_graph.input if i.name.startswith(WEIGHTS_PREFIX))


def weight_keys(skeleton: Path) -> set[str]:
    """The weight keys an exported graph takes as inputs (what `bind_weights` will read)."""
    import onnx

    return set(weights_in(onnx.load(str(skeleton), load_external_data=False).graph))


def _drop_source_locations(graph) -> None:
    """The torch exporter records each node's Python stack (file paths of this checkout) in its metadata;
    dropping it keeps an export's bytes independent of where edge-mtp is installed."""
    for node in graph.node:
        del node.metadata_props[:]
        node.doc_string = ""


def bind_weights(skeleton: Path, out: Path, sources: dict[str, WeightSource], rules: Rules,
                 on_weight: Callable[[str], None] | None = None, written: dict | None = None) -> dict[str, str]:
    """Write `skeleton` with its weight inputs bound (quantized by `rules`) to `out` (and
    `<out>.data` for big graphs); returns {checkpoint tensor name: scheme name}. Pass the same `written`
    dict for every graph of an export to store a tensor that two graphs read only once."""
    import onnx
    from onnx import helper

    model = onnx.load(str(skeleton))
    graph = model.graph
    keys = weights_in(graph)
    missing = [k for k in keys if k not in sources]
    if missing:
        raise EdgeMTPError(f"graph input {WEIGHTS_PREFIX}{missing[0]} has no weight to bind (exporter bug)")
    total = sum(4 * sources[k].shape[0] * sources[k].shape[1] for k in keys)
    writer = _DataWriter(onnx_data_file(Path(out)) if total >= EXTERNAL_DATA_MIN_BYTES else None)
    schemes, contrib = {}, False
    try:
        for key in keys:
            consumers = _consumers(graph)
            if consumers.get(WEIGHTS_PREFIX + key):
                scheme, uses_contrib = _bind_one(graph, writer, key, sources[key], rules, consumers, written)
                schemes[sources[key].name] = scheme.name
                contrib |= uses_contrib
            if on_weight:
                on_weight(sources[key].name)
    finally:
        writer.close()
    inputs = [i for i in graph.input if not i.name.startswith(WEIGHTS_PREFIX)]
    del graph.input[:]
    graph.input.extend(inputs)
    produced = {o for n in graph.node for o in n.output} | {i.name for i in graph.initializer} | \
        {i.name for i in graph.input}
    stale = [v for v in graph.value_info if v.name not in produced]
    for v in stale:
        graph.value_info.remove(v)
    if contrib and not any(o.domain == MS_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    _drop_source_locations(graph)
    onnx.save(model, str(out))
    return schemes


def external_files(graph: Path) -> list[str]:
    """The data files a graph's initializers live in (its own `<graph>.onnx.data`, another graph's)."""
    import onnx

    model = onnx.load(str(graph), load_external_data=False)
    return sorted({e.value for t in model.graph.initializer for e in t.external_data if e.key == "location"})


def float_weight_bytes(model) -> int:
    """Bytes of float32 initializers (weights) in an ONNX model (with or without external data loaded)."""
    from onnx import TensorProto

    return sum(int(np.prod(t.dims)) * 4 for t in model.graph.initializer if t.data_type == TensorProto.FLOAT)
