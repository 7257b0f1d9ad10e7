"""Weight fake-quantization of a target in PyTorch, so that `train-drafter --teacher-quant` distils the
drafter against the quantized target that a phone runs.

Each 2-D weight gets the scheme the LiteRT exporter gives it for that `--quant` mode
(`edge_mtp.quantize.recipes.LITERT_MODES`: int8 = int8 channelwise everywhere; int4 = int4 channelwise
matmuls and tables, int8 per-layer-embedding projections), quantized and dequantized back to float with the
exporter's own `quantize` / `dequantize` (`edge_mtp.quantize.fakequant.round_trip`). Activations stay float
(the bundles' dynamic-range kernels also quantize activations on the fly, which this leaves out).
"""

from __future__ import annotations

import torch

from edge_mtp.quantize.fakequant import round_trip
from edge_mtp.quantize.recipes import LITERT_MODES, LOOKUP, MATMUL, scheme_for

SCHEMES = ("none", "int8", "int4")


def fake_quantize(name: str, w: torch.Tensor, mode: str) -> torch.Tensor:
    """`w` [rows, cols] as the `mode` export stores it, dequantized (a token table is read by a lookup;
    everything else by a matmul, the tied LM head included, which the recipes quantize alike)."""
    op = LOOKUP if "embed_tokens" in name else MATMUL
    return round_trip(w, scheme_for(LITERT_MODES[mode], name, op, tuple(w.shape)))


@torch.no_grad()
def fake_quantize_(model: torch.nn.Module, mode: str) -> int:
    """Quantize `model`'s 2-D weights in place as the `mode` export would; returns how many changed."""
    if mode == "none":
        return 0
    count = 0
    for name, p in model.named_parameters():
        if p.dim() == 2:
            p.copy_(fake_quantize(name, p, mode))
            count += 1
    return count
