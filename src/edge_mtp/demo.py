"""`edge-mtp demo`: the built-in default job on a small pair, from nothing to a checked speculative run.

The demo pair is made once and exported once to a `.litertlm` bundle, both kept under `cache_root()`
(`$EDGE_MTP_CACHE`, else `~/.cache/edge-mtp/`); then the same prompt is generated plainly (K=0) and
speculatively (K drafts per round) with PyTorch and with the bundle, and the runs are compared: the
speculative output must equal plain greedy decoding (Leviathan et al. 2023, "Fast Inference from
Transformers via Speculative Decoding"), and the bundle's rounds must equal PyTorch's.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from edge_mtp.console import progress, summary_line

DEMO_PRESET = "tiny-e2b"
DEMO_DISTILL_STEPS = 300
WARMUP_TOKENS = 2  # one short unmeasured generation per backend, so that neither timed run pays start-up


def cache_root() -> Path:
    return Path(os.environ.get("EDGE_MTP_CACHE", Path.home() / ".cache" / "edge-mtp"))


def demo_dir() -> Path:
    return cache_root() / f"demo-{DEMO_PRESET}-seed0-distill{DEMO_DISTILL_STEPS}"


def demo_pair() -> Path:
    """The built-in demo checkpoint pair (`target/`, `drafter/`), made on first use."""
    pair = demo_dir()
    if not (pair / "drafter" / "config.json").exists():
        from edge_mtp.checkpoints.make import make_checkpoint

        print(f"making the demo pair ({DEMO_PRESET}, drafter distilled {DEMO_DISTILL_STEPS} steps) in {pair}")
        pair.parent.mkdir(parents=True, exist_ok=True)  # the cache folder is ours to create
        with progress() as bars:
            make_checkpoint(DEMO_PRESET, pair, seed=0, distill_steps=DEMO_DISTILL_STEPS, progress=bars)
    return pair


def demo_bundle(pair: Path, draft_len: int) -> Path:
    """The demo pair exported once to an fp32 .litertlm bundle beside it."""
    bundle = pair.parent / f"{pair.name}-k{draft_len}.litertlm"
    if not bundle.exists():
        from edge_mtp.export.exporter import ExportOptions, export_litertlm

        print(f"exporting the demo pair to {bundle}")
        with progress() as bars:
            export_litertlm(pair / "target", pair / "drafter", bundle,
                            ExportOptions("fp32", draft_len, (8, 32), 256), bars)
    return bundle


def demo_prompt(pair: Path) -> list[int]:
    """The first prompt the drafter was distilled on (token ids)."""
    return json.loads((pair / "drafter" / "distill_prompts.json").read_text())[0]


def _timed(backend, prompt: list[int], draft_len: int, new: int) -> tuple[list[dict], float]:
    """(trace lines, tokens per second) of one greedy generation, after an unmeasured warm-up."""
    from edge_mtp.runtime import LoopConfig, generate, trace_lines

    generate(backend, prompt, LoopConfig(draft_len=draft_len, max_new_tokens=WARMUP_TOKENS))
    cfg = LoopConfig(draft_len=draft_len, max_new_tokens=new)
    start = time.perf_counter()
    gen = generate(backend, prompt, cfg)
    seconds = time.perf_counter() - start
    return trace_lines(gen, cfg, backend.name, backend.model_id), len(gen.tokens) / seconds


def run_demo(draft_len: int, max_new_tokens: int) -> int:
    """Make/reuse the pair and bundle, generate with K=0 and K=draft_len on PyTorch and LiteRT, compare.
    0 when speculative == plain and the bundle's rounds == PyTorch's, else 1."""
    from edge_mtp.runtime.litert_backend import LiteRTBackend
    from edge_mtp.runtime.tokenizer import TextCodec
    from edge_mtp.runtime.torch_backend import open_torch_backend

    pair = demo_pair()
    bundle = demo_bundle(pair, draft_len)
    codec = TextCodec(pair / "target")
    prompt, new, k = demo_prompt(pair), max_new_tokens, draft_len
    torch_backend = open_torch_backend(pair / "target", pair / "drafter", len(prompt) + new + k + 1)[0]
    litert_backend = LiteRTBackend(bundle)
    runs = {}
    for name, backend in (("PyTorch", torch_backend), ("LiteRT ", litert_backend)):
        for kk in (0, k):
            runs[f"{name} K={kk}"] = _timed(backend, prompt, kk, new)
    plain, spec, lite_plain, lite = (lines for lines, _ in runs.values())
    print(f"demo pair   {pair} (target/, drafter/)")
    print(f"bundle      {bundle}")
    print(f"prompt      {codec.decode(prompt)!r} (ids {','.join(map(str, prompt))})")
    print(f"generated   {codec.decode(spec[-1]['tokens'])!r}")
    for name, (lines, rate) in runs.items():
        print(f"{name}: {rate:7.1f} tokens/s | {summary_line(lines[-1])}")
    rounds = lambda lines: [(r["drafts"], r["accepted"], r["emitted"]) for r in lines[1:-1]]
    same_tokens = plain[-1]["tokens"] == spec[-1]["tokens"] == lite_plain[-1]["tokens"] == lite[-1]["tokens"]
    same_rounds = rounds(spec) == rounds(lite)
    rate = {name: r for name, (_, r) in runs.items()}
    print(f"speculative output identical to plain greedy: {same_tokens}; "
          f"LiteRT bundle trace identical to PyTorch: {same_rounds}; "
          f"target passes {spec[-1]['rounds']} vs {plain[-1]['rounds']}; speculative/plain tokens/s: "
          f"PyTorch {rate[f'PyTorch K={k}'] / rate['PyTorch K=0']:.2f}x, "
          f"LiteRT {rate[f'LiteRT  K={k}'] / rate['LiteRT  K=0']:.2f}x")
    return 0 if same_tokens and same_rounds else 1
