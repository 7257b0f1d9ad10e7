"""`edge-mtp demo`: the built-in default job on the shipped demo pair, from nothing to a checked speculative run.

The demo pair is a Gemma-4-shaped target and its MTP drafter trained on the Python standard library,
shipped inside the package (`edge_mtp/demo_pair/`, rebuilt by scripts/make_demo_pair.sh). It is exported
once to a `.litertlm` bundle kept under `cache_root()` (`$EDGE_MTP_CACHE`, else `~/.cache/edge-mtp/`);
then a held-out prompt is generated plainly (K=0) and speculatively (K drafts per round) with PyTorch and
with the bundle, and the runs are compared: the speculative output must equal plain greedy decoding
(Leviathan et al. 2023, "Fast Inference from Transformers via Speculative Decoding"), and the bundle's
rounds must equal PyTorch's.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from edge_mtp.console import progress, summary_line
from edge_mtp.errors import EdgeMTPError

PROMPT_CATEGORY = "code"  # the demo's default prompt: the first held-out prompt of this category
DEMO_PREFILL, DEMO_CONTEXT = (32, 128), 512  # the demo bundle: held-out prompts are up to ~250 tokens
WARMUP_TOKENS = 2  # one short unmeasured generation per backend, so that neither timed run pays start-up


def cache_root() -> Path:
    return Path(os.environ.get("EDGE_MTP_CACHE", Path.home() / ".cache" / "edge-mtp"))


def package_pair() -> Path:
    """Where the committed demo pair lives inside the package (`target/`, `drafter/`, `prompts.json`)."""
    return Path(__file__).resolve().parent / "demo_pair"


def demo_pair() -> Path:
    """The built-in demo pair (`target/`, `drafter/`, `prompts.json`: held-out prompts per category)."""
    pair = package_pair()
    if not (pair / "drafter" / "config.json").is_file():
        raise EdgeMTPError(f"{pair}: the demo pair is missing; rebuild it with "
                           "`bash scripts/make_demo_pair.sh --install`")
    return pair


def demo_bundle(pair: Path, draft_len: int) -> Path:
    """The demo pair exported once to an fp32 .litertlm bundle in the cache, named by the pair's checkpoint id."""
    from edge_mtp.model.checkpoint import checkpoint_id

    pair_id = checkpoint_id(pair / "target", pair / "drafter").split(":")[1][:12]
    bundle = cache_root() / f"demo-{pair_id}-k{draft_len}.litertlm"
    if not bundle.exists():
        from edge_mtp.export.exporter import ExportOptions, export_litertlm

        print(f"exporting the demo pair to {bundle}")
        bundle.parent.mkdir(parents=True, exist_ok=True)  # the cache folder is ours to create
        with progress() as bars:
            export_litertlm(pair / "target", pair / "drafter", bundle,
                            ExportOptions("fp32", draft_len, DEMO_PREFILL, DEMO_CONTEXT), bars)
    return bundle


def held_out_prompts(pair: Path) -> dict[str, list[str]]:
    """The pair's held-out prompt texts per category (never trained on)."""
    return json.loads((pair / "prompts.json").read_text())


def demo_prompt(pair: Path) -> str:
    """The demo's default prompt text."""
    return held_out_prompts(pair)[PROMPT_CATEGORY][0]


def _timed(backend, prompt: list[int], draft_len: int, new: int) -> tuple[list[dict], float]:
    """(trace lines, tokens per second) of one greedy generation, after an unmeasured warm-up."""
    from edge_mtp.runtime import LoopConfig, generate, trace_lines

    generate(backend, prompt, LoopConfig(draft_len=draft_len, max_new_tokens=WARMUP_TOKENS))
    cfg = LoopConfig(draft_len=draft_len, max_new_tokens=new)
    start = time.perf_counter()
    gen = generate(backend, prompt, cfg)
    seconds = time.perf_counter() - start
    return trace_lines(gen, cfg, backend.name, backend.model_id), len(gen.tokens) / seconds


def run_demo(draft_len: int, max_new_tokens: int, prompt_text: str | None = None) -> int:
    """Export/reuse the bundle, generate from `prompt_text` (default: a held-out code prompt) with K=0 and
    K=draft_len on PyTorch and LiteRT, compare. 0 when speculative == plain and the bundle's rounds ==
    PyTorch's, else 1."""
    from edge_mtp.runtime.litert_backend import LiteRTBackend
    from edge_mtp.runtime.tokenizer import TextCodec
    from edge_mtp.runtime.torch_backend import open_torch_backend

    pair = demo_pair()
    codec = TextCodec(pair / "target")
    text = demo_prompt(pair) if prompt_text is None else prompt_text
    prompt, new, k = codec.encode(text), max_new_tokens, draft_len
    if not prompt:
        raise EdgeMTPError("--prompt is empty; give some text")
    if len(prompt) + new + k + 1 > DEMO_CONTEXT:
        raise EdgeMTPError(f"--prompt has {len(prompt)} tokens: with --max-new-tokens {new} it does not fit the demo "
                           f"bundle's context of {DEMO_CONTEXT}")
    bundle = demo_bundle(pair, draft_len)
    torch_backend = open_torch_backend(pair / "target", pair / "drafter", len(prompt) + new + k + 1)[0]
    litert_backend = LiteRTBackend(bundle)
    runs = {}
    for name, backend in (("PyTorch", torch_backend), ("LiteRT ", litert_backend)):
        for kk in (0, k):
            runs[f"{name} K={kk}"] = _timed(backend, prompt, kk, new)
    plain, spec, lite_plain, lite = (lines for lines, _ in runs.values())
    print(f"demo pair   {pair} (target/, drafter/)")
    print(f"bundle      {bundle}")
    print(f"prompt      {text!r} ({len(prompt)} tokens)")
    print(f"generated   {codec.decode(spec[-1]['tokens'])!r}")
    for name, (lines, rate) in runs.items():
        print(f"{name}: {rate:7.1f} tokens/s | {summary_line(lines[-1])}")
    def rounds(lines):
        return [(r["drafts"], r["accepted"], r["emitted"]) for r in lines[1:-1]]

    same_tokens = plain[-1]["tokens"] == spec[-1]["tokens"] == lite_plain[-1]["tokens"] == lite[-1]["tokens"]
    same_rounds = rounds(spec) == rounds(lite)
    rate = {name: r for name, (_, r) in runs.items()}
    print(f"speculative output identical to plain greedy: {same_tokens}; "
          f"LiteRT bundle trace identical to PyTorch: {same_rounds}; "
          f"target passes {spec[-1]['rounds']} vs {plain[-1]['rounds']}; speculative/plain tokens/s: "
          f"PyTorch {rate[f'PyTorch K={k}'] / rate['PyTorch K=0']:.2f}x, "
          f"LiteRT {rate[f'LiteRT  K={k}'] / rate['LiteRT  K=0']:.2f}x")
    return 0 if same_tokens and same_rounds else 1
