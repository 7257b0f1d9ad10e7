"""Which embedding table can take 2 bits? Top-1 agreement and logit correlation with the float model when
the token table and/or the per-layer-embedding table are int2 instead of int4 (matmuls as `--quant int4`),
on the trained demo pair's held-out prompts. This chose the `mixed` recipe (src/edge_mtp/quantize/recipes.py).

    .venv/bin/python benchmarks/table_bits.py [PAIR_DIR]     # default: the shipped demo pair

Weights are fake-quantized in PyTorch with the exporter's own schemes (`edge_mtp.quantize.fakequant`), so
this measures the weights' rounding alone (a bundle adds its kernels' activation quantization).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from edge_mtp.model import load_pair
from edge_mtp.quantize.fakequant import fake_quantize_
from edge_mtp.runtime.tokenizer import TextCodec
from edge_mtp.runtime.torch_backend import TorchBackend

PAIR = Path(__file__).resolve().parents[1] / "src" / "edge_mtp" / "demo_pair"
TABLES = {"int4 (both tables int4)": ("i4c", "i4c"), "int2 per-layer table": ("i4c", "i2c"),
          "int2 token table": ("i2c", "i4c"), "int2 both tables": ("i2c", "i2c")}
PREFIX_TOKENS, EVERY = 40, 3


def _logits(pair: Path, prompts: list[list[int]], tables: tuple[str, str] | None) -> np.ndarray:
    """Next-token logits after every 3rd prefix of each prompt (prefill, float32)."""
    target, tcfg, _, _ = load_pair(pair / "target", pair / "drafter", "float32")
    if tables:
        matmuls = {k: "i8c" if "per_layer" in k else "i4c" for k, p in target.named_parameters()
                   if p.dim() == 2 and "embed_tokens_per_layer" not in k}  # as LITERT_MODES["int4"]
        fake_quantize_(target, matmuls, {"embed_tokens.weight": tables[0], "embed_tokens_per_layer.weight": tables[1]})
    backend = TorchBackend(target, tcfg, None, 512, "table-bits")
    return np.stack([backend.prefill(p[:n]).logits for p in prompts for n in range(4, len(p), EVERY)])


def main() -> int:
    pair = Path(sys.argv[1]) if len(sys.argv) > 1 else PAIR
    torch.set_num_threads(1)
    codec = TextCodec(pair / "target")
    categories = json.loads((pair / "prompts.json").read_text())
    prompts = [codec.encode(t)[:PREFIX_TOKENS] for texts in categories.values() for t in texts[:2]]
    ref = _logits(pair, prompts, None)
    print(f"{len(ref)} positions, {len(prompts)} held-out prompts\n\n"
          "| tables | top-1 agreement | logit correlation |\n|---|---|---|")
    for name, tables in TABLES.items():
        x = _logits(pair, prompts, tables)
        corr = np.corrcoef(x.ravel(), ref.ravel())[0, 1]
        print(f"| {name} | {np.mean(x.argmax(-1) == ref.argmax(-1)):.0%} | {corr:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
