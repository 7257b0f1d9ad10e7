"""Weight quantization schemes as plain numpy on row chunks, shared by the LiteRT and ONNX writers.

Every scheme is symmetric (zero point 0) and works on a 2-D weight [rows, cols] one chunk of rows at a
time, so a writer can stream a 262144 x 8960 table from the checkpoint into its output with one chunk
in memory:

    f32, f16        float storage
    i8c, i4c, i2c   int8 / int4 / int2, one scale per row ("channelwise"): scale = max|w| / qmax
    i8b<B>, i4b<B>  int8 / int4, one scale per block of B consecutive values of a row ("blockwise")

For a matmul weight [out, in] a row is an output channel; for an embedding table a row is a token, so
per-row scales keep rare tokens' small rows precise. An all-zero row or block (the pad token's
embedding) gets scale 1 instead of 0: its values quantize to 0 either way, and XNNPACK rejects int4
tensors with a zero scale (docs/tooling.md#xnnpack-rejects-zero-int4-scales).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHUNK_BYTES = 64 << 20  # float32 bytes of one streamed chunk of rows


@dataclass(frozen=True)
class Scheme:
    name: str
    bits: int  # 32 / 16 for the float schemes
    block: int = 0  # 0 = one scale per row

    @property
    def is_float(self) -> bool:
        return self.bits >= 16

    @property
    def qmax(self) -> int:
        return 2 ** (self.bits - 1) - 1

    def data_bytes(self, shape: tuple[int, ...]) -> int:
        """Bytes of the stored weight values (int4 packs two per byte, int2 four)."""
        per_byte = max(1, 8 // self.bits)
        return (int(np.prod(shape)) + per_byte - 1) // per_byte * max(1, self.bits // 8)

    def scales_shape(self, shape: tuple[int, int]) -> tuple[int, ...]:
        rows, cols = shape
        return (rows,) if not self.block else (rows, cols // self.block)

    def fits(self, shape: tuple[int, ...]) -> bool:
        """Blockwise schemes need a 2-D weight whose row length is a multiple of the block."""
        return not self.block or (len(shape) == 2 and shape[1] % self.block == 0)

    def check(self, name: str, shape: tuple[int, ...]) -> None:
        if not self.fits(shape):
            raise ValueError(f"{name}: shape {list(shape)} cannot be quantized in blocks of {self.block}")


def parse_scheme(name: str) -> Scheme:
    """`f32`, `f16`, `i8c`, `i4c`, `i8b128`, `i4b32`, ..."""
    if name in ("f32", "f16"):
        return Scheme(name, int(name[1:]))
    if name[:1] == "i" and name[1:2] in ("2", "4", "8"):
        rest = name[2:]
        if rest == "c":
            return Scheme(name, int(name[1]))
        if rest[:1] == "b" and rest[1:].isdigit() and int(rest[1:]) >= 16:
            return Scheme(name, int(name[1]), int(rest[1:]))
    raise ValueError(f"unknown quantization scheme {name!r}")


def chunk_rows(shape: tuple[int, ...]) -> int:
    """How many rows of a [rows, cols] float32 tensor fit in one streamed chunk (a multiple of 4, so int4
    and int2 packing never split a byte between two chunks)."""
    cols = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    rows = max(4, CHUNK_BYTES // (4 * cols))
    return rows - rows % 4


def _safe(scale: np.ndarray) -> np.ndarray:
    return np.where(scale > 0, scale, np.ones_like(scale))


def bf16_in_fp16(scale: np.ndarray) -> np.ndarray:
    """Round float32 scales to bfloat16's 8-bit mantissa, as float16 values: how TFLite blockwise scales
    are stored (XNNPACK's blockwise kernels compute with bf16 scales, so a finer fp16 scale would be
    truncated at run time and the integers would no longer match it)."""
    bits = np.ascontiguousarray(scale, np.float32).view(np.uint32)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000  # round to nearest even
    return bits.view(np.float32).astype(np.float16).astype(np.float32)


def quantize(w: np.ndarray, scheme: Scheme, round_scale=None) -> tuple[np.ndarray, np.ndarray]:
    """Integers (int8 array, values in [-qmax-1, qmax]) and float32 scales of a float32 chunk [rows, cols].

    `round_scale` (e.g. `bf16_in_fp16`) rounds the scales to the format's storage precision *before* the
    weights are divided by them, so the stored scale is the one the integers were made with.
    """
    rows, cols = w.shape
    if scheme.block:
        w = w.reshape(rows, cols // scheme.block, scheme.block)
    amax = np.abs(w).max(axis=-1, keepdims=True)
    scale = (amax / scheme.qmax).astype(np.float32)
    scale = _safe(round_scale(scale) if round_scale else scale)
    q = np.clip(np.rint(w / scale), -scheme.qmax - 1, scheme.qmax).astype(np.int8)
    return q.reshape(rows, cols), scale.reshape(rows, -1).squeeze(-1) if not scheme.block else scale[..., 0]


def pack_bits(q: np.ndarray, bits: int, offset: int = 0) -> np.ndarray:
    """8 / bits values per byte, the first in the lowest bits (TFLite INT4 / INT2 and onnxruntime's
    MatMulNBits / GatherBlockQuantized agree on this order). `offset` 2^(bits-1) stores unsigned values
    with that zero point."""
    per_byte = 8 // bits
    flat = (q.reshape(-1).astype(np.int16) + offset).astype(np.uint8) & ((1 << bits) - 1)
    if flat.size % per_byte:
        flat = np.concatenate([flat, np.zeros(per_byte - flat.size % per_byte, np.uint8)])
    lanes = flat.reshape(-1, per_byte)
    out = np.zeros(len(lanes), np.uint8)
    for i in range(per_byte):
        out |= lanes[:, i] << (bits * i)
    return out


def pack_int4(q: np.ndarray, offset: int = 0) -> np.ndarray:
    return pack_bits(q, 4, offset)


def encode(q: np.ndarray, scheme: Scheme, unsigned: bool = False) -> bytes:
    """The stored bytes of integers `q`: int8 as is, int4 / int2 packed; `unsigned` adds the zero point
    2^(bits-1) (onnxruntime's symmetric convention)."""
    offset = 1 << (scheme.bits - 1) if unsigned else 0
    if scheme.bits < 8:
        return pack_bits(q, scheme.bits, offset).tobytes()
    return ((q.astype(np.int16) + offset).astype(np.uint8) if unsigned else q).tobytes()


def dequantize(q: np.ndarray, scale: np.ndarray, scheme: Scheme) -> np.ndarray:
    """The float32 values the integers stand for (tests and the quantization-error report)."""
    rows, cols = q.shape
    if scheme.block:
        return (q.reshape(rows, -1, scheme.block) * scale[..., None]).reshape(rows, cols).astype(np.float32)
    return (q * scale[:, None]).astype(np.float32)
