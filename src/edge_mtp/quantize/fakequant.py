"""PyTorch weights as an export stores them (quantize, then dequantize back to float with the exporter's own
`schemes`), so that a float model can stand in for a quantized bundle's *weights*.

Two users: `edge-mtp verify` compares an export against this model as well as against the float one, which
separates what the export got wrong (bundle vs fake-quantized model) from what quantization costs (the
fake-quantized model vs the float one); `train-drafter --teacher-quant` distils against it.

Matmul weights are rounded in place. Token tables are read one row per token, and every scheme here scales
whole rows or blocks within a row, so a table is rounded row by row as it is looked up
(`FakeQuantEmbedding`): a full-size per-layer table (2.8 B values for E4B) is never copied. Activations stay
float, whereas the bundles' dynamic-range kernels also quantize each matmul's input on the fly; that part
of their error remains in a comparison.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from edge_mtp.model.target import Embedding
from edge_mtp.quantize.schemes import Scheme, chunk_rows, dequantize, parse_scheme, quantize


def round_trip(w: torch.Tensor, scheme: Scheme) -> torch.Tensor:
    """`w` [rows, cols] through the scheme's integers and back, in `w`'s dtype."""
    if scheme.is_float:
        return w
    flat = w.detach().reshape(-1, w.shape[-1]).float().cpu().numpy()
    q, scale = quantize(flat, scheme)
    return torch.from_numpy(dequantize(q, scale, scheme)).reshape(w.shape).to(w.dtype)


class FakeQuantEmbedding(Embedding):
    """An `Embedding` whose looked-up rows are rounded as the export's table stores them."""

    def __init__(self, table: Embedding, scheme: Scheme):
        super().__init__(0, 0)
        self.weight, self.scheme = table.weight, scheme

    def rows(self, tokens: torch.Tensor) -> torch.Tensor:
        return round_trip(F.embedding(tokens, self.weight), self.scheme)


@torch.no_grad()
def fake_quantize_(model: torch.nn.Module, matmuls: dict[str, str], lookups: dict[str, str] | None = None) -> int:
    """Round `model`'s matmul weights in place and wrap its token tables; both maps take module keys
    (`layers.0.mlp.up_proj.weight`) to scheme names (`i4c`). Returns how many tensors were changed."""
    params = dict(model.named_parameters())
    count = 0
    for key, name in matmuls.items():
        scheme = parse_scheme(name)
        w = params.get(key)
        if w is not None and w.dim() == 2 and not scheme.is_float:
            step = chunk_rows(tuple(w.shape))  # a 262144-row table in float32 at once would be 2.7 GB, 4 times
            for start in range(0, w.shape[0], step):
                w[start:start + step].copy_(round_trip(w[start:start + step], scheme))
            count += 1
    for key, name in (lookups or {}).items():
        owner, _, leaf = key.rpartition(".")
        table = model.get_submodule(owner)
        scheme = parse_scheme(name)
        if leaf == "weight" and isinstance(table, Embedding) and not scheme.is_float:
            parent, _, attr = owner.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, attr, FakeQuantEmbedding(table, scheme))
            count += 1
    return count
