"""The compute side of a roofline (Williams, Waterman, Patterson 2009, "Roofline: an insightful visual
performance model"): how many multiply-adds one token costs in the target graph. The memory side is
`runner.step_bytes`; `benchmarks/roofline.py` puts both next to measured times.
"""

from __future__ import annotations

from edge_mtp.model.config import TextConfig


def macs_per_row(cfg: TextConfig, context: int) -> dict[str, int]:
    """Multiply-adds of one token (one row) by part: every matmul of the decoder and the tied LM head,
    and attention over all `context` cache slots, as prefill graphs compute it (masked); LiteRT's decode
    and verify read only a window in sliding layers (docs/tooling.md#windowed-sliding-reads), so for them
    the attention term is an upper bound."""
    h, p, n = cfg.hidden_size, cfg.ple_dim, cfg.num_heads
    parts = {"attention projections": 0, "mlp": 0, "per-layer embedding": h * cfg.num_layers * p,
             "attention (cache)": 0, "lm head": h * cfg.vocab_size}
    for i in range(cfg.num_layers):
        d, kv = cfg.head_dims[i], cfg.kv_heads[i]
        parts["attention projections"] += 2 * h * n * d + (2 * h * kv * d if i < cfg.first_shared_layer else 0)
        parts["mlp"] += 3 * h * cfg.intermediate_sizes[i]
        parts["per-layer embedding"] += 2 * h * p if p else 0
        parts["attention (cache)"] += 2 * n * d * context
    return parts
