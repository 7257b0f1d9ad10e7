"""Bind weights into a converted `.tflite` graph, quantizing them tensor by tensor on the way.

The exporter converts each section with its weight matrices as graph inputs (`weights_<key>`), so the
converter never holds a weight. This module turns those inputs into constants: it reads every weight in
row chunks from the checkpoint, quantizes it (`edge_mtp.quantize.schemes`) and writes it straight into
the output file, so memory stays at one chunk however big the model is. The formats are the ones
ai-edge-quantizer writes for dynamic-range recipes (a test compares the bytes):

    int8 / int4 channelwise   tensor type INT8 / INT4 (two values per byte, low nibble first), one scale
                              per row in the tensor's QuantizationParameters, quantized_dimension 0
    int4 blockwise-B          INT4 data + BlockwiseQuantization pointing at a FLOAT16 scale tensor
                              [rows, cols/B] (values rounded to bf16 precision, as XNNPACK reads them)
    fp16                      a FLOAT16 constant and a DEQUANTIZE op writing the float32 tensor

Tensor data lives after the flatbuffer, addressed by each buffer's `offset`/`size` (the extension
LiteRT uses for models over the 2 GB flatbuffer limit): a full-size decoder section holds over 1 GB of
weights. Shared weights (every signature of a section reads the same ones) are stored once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edge_mtp.contract import WEIGHTS_PREFIX
from edge_mtp.errors import EdgeMTPError
from edge_mtp.quantize.recipes import LOOKUP, MATMUL, OTHER, Rules, scheme_for
from edge_mtp.quantize.schemes import Scheme, bf16_in_fp16, chunk_rows, encode, quantize

ALIGN = 64  # data offsets: XNNPACK and mmap-friendly
_PLACEHOLDER_OFFSET = 1 << 40  # any non-zero uint64 packs to the same size as the real offset

# A weight's source: (name for messages, shape, read(start_row, stop_row) -> float32 rows)
RowReader = Callable[[int, int], np.ndarray]


@dataclass(frozen=True)
class WeightSource:
    name: str
    shape: tuple[int, ...]
    read: RowReader

    def permuted(self, order: np.ndarray) -> "WeightSource":
        """The same tensor with its rows in `order` (row j is this source's row order[j]). Scattered rows
        cannot be streamed, so the whole tensor is read on the first call and dropped after its last row
        (the E2B drafter's 262144 x 256 table: 268 MB)."""
        rows: list[np.ndarray] = []

        def read(start: int, stop: int) -> np.ndarray:
            if not rows:
                rows.append(self.read(0, self.shape[0]))
            out = rows[0][order[start:stop]]
            if stop >= self.shape[0]:
                rows.clear()
            return out

        return WeightSource(self.name, self.shape, read)


@dataclass
class _Blob:
    """One stretch of tensor data after the flatbuffer, filled while streaming."""

    buffer: int
    nbytes: int
    offset: int = 0


@dataclass
class _Weight:
    key: str
    source: WeightSource
    scheme: Scheme
    data: _Blob
    scales: np.ndarray | None = None  # per-row scales, referenced by every use's QuantizationParameters
    zero_points: np.ndarray | None = None
    scale_blob: _Blob | None = None  # blockwise scales (FLOAT16 tensor data)
    uses: list[tuple[int, int]] = field(default_factory=list)  # (subgraph, tensor)


def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def _op_kind(name: str) -> str:
    return {"FULLY_CONNECTED": MATMUL, "EMBEDDING_LOOKUP": LOOKUP}.get(name, OTHER)


def _text(name) -> str:
    return name.decode() if isinstance(name, bytes) else str(name)


def _collect_uses(model, sources: dict[str, WeightSource]) -> tuple[dict[str, list], dict[str, set]]:
    """Drop every `weights_*` input from the signatures and subgraphs; return where each weight is used
    and by which kinds of op (inputs that no op reads are simply dropped)."""
    schema = _schema()
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    uses: dict[str, list] = {}
    kinds: dict[str, set] = {}
    for sig in model.signatureDefs:
        sg = model.subgraphs[sig.subgraphIndex]
        consumers: dict[int, set] = {}
        for op in sg.operators:
            kind = _op_kind(op_names.get(model.operatorCodes[op.opcodeIndex].builtinCode, ""))
            for i in op.inputs:
                consumers.setdefault(int(i), set()).add(kind)
        kept, dropped = [], set()
        for tm in sig.inputs:
            name = _text(tm.name)
            if not name.startswith(WEIGHTS_PREFIX):
                kept.append(tm)
                continue
            key = name[len(WEIGHTS_PREFIX):]
            if key not in sources:
                raise EdgeMTPError(f"graph input {name} has no weight to bind (exporter bug)")
            dropped.add(int(tm.tensorIndex))
            if tm.tensorIndex in consumers:
                uses.setdefault(key, []).append((sig.subgraphIndex, int(tm.tensorIndex)))
                kinds.setdefault(key, set()).update(consumers[int(tm.tensorIndex)])
        sig.inputs = kept
        sg.inputs = [int(i) for i in sg.inputs if int(i) not in dropped]
    return uses, kinds


def _new_buffer(model) -> int:
    model.buffers.append(_schema().BufferT())
    return len(model.buffers) - 1


def _opcode(model, builtin: int) -> int:
    schema = _schema()
    for i, code in enumerate(model.operatorCodes):
        if code.builtinCode == builtin:
            return i
    model.operatorCodes.append(schema.OperatorCodeT(deprecatedBuiltinCode=min(builtin, 127), builtinCode=builtin,
                                                    version=1))
    return len(model.operatorCodes) - 1


def _plan(model, sources: dict[str, WeightSource], rules: Rules) -> list[_Weight]:
    """Decide each weight's scheme and rewrite its uses into constants with placeholder data."""
    schema = _schema()
    uses, kinds = _collect_uses(model, sources)
    weights = []
    zeros: dict[int, np.ndarray] = {}  # channelwise zero points (all 0) of every weight with this many rows
    for key in sorted(uses):
        source = sources[key]
        kind = next(iter(kinds[key])) if len(kinds[key]) == 1 else OTHER
        scheme = scheme_for(rules, source.name, kind, source.shape)
        w = _Weight(key, source, scheme, _Blob(_new_buffer(model), scheme.data_bytes(source.shape)), uses=uses[key])
        rows = source.shape[0]
        if not scheme.is_float and not scheme.block:
            w.scales, w.zero_points = np.ones(rows, np.float32), zeros.setdefault(rows, np.zeros(rows, np.int64))
        if scheme.block:
            shape = scheme.scales_shape(source.shape)
            w.scale_blob = _Blob(_new_buffer(model), int(np.prod(shape)) * 2)
        dequantize = _opcode(model, schema.BuiltinOperator.DEQUANTIZE) if scheme.bits == 16 else None
        for sg_index, t_index in w.uses:
            sg = model.subgraphs[sg_index]
            tensor = sg.tensors[t_index]
            if scheme.bits == 16:  # a FLOAT16 constant, dequantized into the float32 tensor the ops read
                sg.tensors.append(schema.TensorT(shape=list(tensor.shape), type=schema.TensorType.FLOAT16,
                                                 buffer=w.data.buffer, name=_text(tensor.name) + "_fp16"))
                sg.operators.insert(0, schema.OperatorT(opcodeIndex=dequantize, inputs=[len(sg.tensors) - 1],
                                                        outputs=[t_index]))
                continue
            tensor.buffer = w.data.buffer
            tensor.type = {32: schema.TensorType.FLOAT32, 8: schema.TensorType.INT8, 4: schema.TensorType.INT4,
                           2: schema.TensorType.INT2}[scheme.bits]
            if w.scales is not None:
                tensor.quantization = schema.QuantizationParametersT(scale=w.scales, zeroPoint=w.zero_points,
                                                                     quantizedDimension=0)
            elif scheme.block:
                sg.tensors.append(schema.TensorT(shape=list(scheme.scales_shape(source.shape)),
                                                 type=schema.TensorType.FLOAT16, buffer=w.scale_blob.buffer,
                                                 name=_text(tensor.name) + "_scales"))
                details = schema.BlockwiseQuantizationT(scales=len(sg.tensors) - 1, zeroPoints=-1,
                                                        blockSize=scheme.block)
                tensor.quantization = schema.QuantizationParametersT(
                    detailsType=schema.QuantizationDetails.BlockwiseQuantization, details=details,
                    quantizedDimension=0)
        weights.append(w)
    return weights


def _share_constants(model) -> None:
    """Point tensors with identical constant data at one buffer: the converter gives every signature its
    own copy of each small constant (norm weights, masks), four copies in a decoder section."""
    import hashlib

    keep = {m.buffer for m in model.metadata or []}
    variable = {t.buffer for sg in model.subgraphs for t in sg.tensors if t.isVariable}
    canonical, first = {}, {}
    for index, buf in enumerate(model.buffers):
        if index in keep or index in variable or buf.data is None or len(buf.data) == 0:
            continue
        digest = hashlib.sha256(np.asarray(buf.data, np.uint8).tobytes()).digest()
        canonical[index] = first.setdefault(digest, index)
    for sg in model.subgraphs:
        for tensor in sg.tensors:
            tensor.buffer = canonical.get(tensor.buffer, tensor.buffer)
    for index, target in canonical.items():
        if index != target:
            model.buffers[index].data = None  # no longer referenced: an empty buffer costs a few bytes


def _pack(model, shared: list[np.ndarray]) -> bytes:
    """The flatbuffer; each array in `shared` is written once however many tensors reference it (a
    channelwise weight's scales and zero points are read by its tensor in every signature: four copies
    would add ~45 MB to a full-size E2B decoder)."""
    import flatbuffers

    keep = {id(a): a for a in shared}

    class SharingBuilder(flatbuffers.Builder):
        vectors: dict[int, int] = {}

        def CreateNumpyVector(self, x):  # noqa: N802 -- flatbuffers' name
            if id(x) not in keep:
                return super().CreateNumpyVector(x)
            if id(x) not in self.vectors:
                self.vectors[id(x)] = super().CreateNumpyVector(x)
            return self.vectors[id(x)]

    builder = SharingBuilder(1 << 20)
    builder.vectors = {}
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _layout(model, blobs: list[_Blob], shared: list[np.ndarray]) -> int:
    """Give every blob its offset after the flatbuffer; returns the flatbuffer's size."""
    for b in blobs:
        model.buffers[b.buffer].offset, model.buffers[b.buffer].size = _PLACEHOLDER_OFFSET, max(b.nbytes, 1)
    size = len(_pack(model, shared))
    pos = _align(size)
    for b in blobs:
        b.offset = pos
        model.buffers[b.buffer].offset = pos
        pos = _align(pos + b.nbytes)
    return size


def _stream(f, w: _Weight) -> None:
    """Read, quantize and write one weight chunk by chunk."""
    rows = w.source.shape[0]
    step = chunk_rows(w.source.shape)
    data_pos, scale_pos = w.data.offset, w.scale_blob.offset if w.scale_blob else 0
    for start in range(0, rows, step):
        stop = min(rows, start + step)
        chunk = w.source.read(start, stop)
        if w.scheme.is_float:
            raw = chunk.astype(np.float16 if w.scheme.bits == 16 else np.float32).tobytes()
        else:
            q, scale = quantize(chunk, w.scheme, bf16_in_fp16 if w.scheme.block else None)
            raw = encode(q, w.scheme)
            if w.scheme.block:
                f.seek(scale_pos)
                scale_pos += f.write(scale.astype(np.float16).tobytes())
            else:
                w.scales[start:stop] = scale
        f.seek(data_pos)
        data_pos += f.write(raw)


def weight_keys(skeleton: Path) -> set[str]:
    """The weight keys a converted graph takes as inputs (what `bind_weights` will read)."""
    from edge_mtp.contract import tflite_signatures

    data = Path(skeleton).read_bytes()
    return {n[len(WEIGHTS_PREFIX):] for sig in tflite_signatures(data).values() for n in sig["inputs"]
            if n.startswith(WEIGHTS_PREFIX)}


def bind_weights(skeleton: Path, out, sources: dict[str, WeightSource], rules: Rules,
                 on_weight: Callable[[str], None] | None = None) -> dict[str, str]:
    """Write `skeleton` with its weight inputs bound (and quantized by `rules`) to the open binary file
    `out`; returns {checkpoint tensor name: scheme name} for the manifest."""
    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(Path(skeleton).read_bytes(), 0)
    _share_constants(model)
    weights = _plan(model, sources, rules)
    blobs = [b for w in weights for b in (w.data, w.scale_blob) if b is not None]
    shared = list({id(a): a for w in weights for a in (w.scales, w.zero_points) if a is not None}.values())
    size = _layout(model, blobs, shared)
    for w in weights:
        _stream(out, w)
        if on_weight:
            on_weight(w.source.name)
    header = _pack(model, shared)  # now with the real per-row scales; same size, since only values changed
    if len(header) != size:
        raise RuntimeError(f"flatbuffer size changed from {size} to {len(header)} bytes while binding weights")
    out.seek(0)
    out.write(header)
    out.seek(0, 2)
    return {w.source.name: w.scheme.name for w in weights}


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
    schema = _schema()
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
