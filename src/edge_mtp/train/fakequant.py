"""Weight fake-quantization of a target in PyTorch, so that `train-drafter --teacher-quant` distils the
drafter against (an approximation of) the quantized target that a phone runs.

Symmetric round-to-nearest, dequantized back to float, following the exporter's recipes
(`edge_mtp.quantize.litert`): `int8` = every matrix and table int8 per output row; `int4` = matrices int4
per block of 32 inputs, the per-layer-embedding projections int8 per row. Activations stay float (the
bundles' dynamic-range kernels also quantize activations on the fly, which this leaves out).
"""

from __future__ import annotations

import torch

SCHEMES = ("none", "int8", "int4")
INT8_IN_INT4 = ("per_layer_model_projection", "per_layer_input_gate", "per_layer_projection")


def fake_quantize(w: torch.Tensor, bits: int, block: int | None = None) -> torch.Tensor:
    """`w` [rows, cols] rounded to `bits`-bit integers with one scale per row (or per row and block of
    `block` columns), dequantized."""
    rows, cols = w.shape
    group = block if block and cols % block == 0 else cols
    x = w.float().reshape(rows, cols // group, group)
    top = 2 ** (bits - 1) - 1
    scale = x.abs().amax(-1, keepdim=True) / top
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    q = torch.clamp(torch.round(x / scale), -top - 1, top)
    return (q * scale).reshape(rows, cols).to(w.dtype)


@torch.no_grad()
def fake_quantize_(model: torch.nn.Module, scheme: str) -> int:
    """Quantize `model`'s 2-D weights in place; returns how many tensors changed."""
    if scheme == "none":
        return 0
    count = 0
    for name, p in model.named_parameters():
        if p.dim() != 2:
            continue
        if scheme == "int8" or any(part in name for part in INT8_IN_INT4):
            p.copy_(fake_quantize(p, 8))
        else:
            p.copy_(fake_quantize(p, 4, block=32))
        count += 1
    return count
