"""Write a random-weight Gemma 4 target + MTP drafter pair with transformers' own classes.

No real Gemma weights can be downloaded here, so tests, the exporter and the runtime run on stand-ins that
transformers itself builds and saves (`save_pretrained`, safetensors): key names, shapes, config.json and
generation_config.json are those of a transformers-saved fine-tune of the real model (how Google's own
release files differ: docs/model.md#checkpoint-layout).
The output is byte-identical for the same preset and seed, and appears atomically: either the whole
`out_dir` with `target/` and `drafter/`, or nothing.

transformers is a dev dependency, so it is imported here only, when a checkpoint is made.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from edge_mtp.atomic import atomic_dir, require_parent
from edge_mtp.checkpoints.presets import PRESETS, Preset
from edge_mtp.checkpoints.tokenizer import build_tokenizer, save_tokenizer
from edge_mtp.errors import EdgeMTPError

if TYPE_CHECKING:
    from rich.progress import Progress
    from transformers import PreTrainedModel

EOS_IDS = [1, 106]  # `<eos>`, `<end_of_turn>`: a Gemma chat model stops on either
BOS_ID, PAD_ID = 2, 0
NUM_ASSISTANT_TOKENS = 4  # transformers has no default on the MTP path (docs/model.md#config-pitfalls)
FINAL_NORM_GAIN = (4.0, 8.0)  # sharpens the target's logits so that greedy picks are not near-ties
NORM_JITTER = 0.1
LAYER_SCALAR_RANGE = (0.5, 1.5)


def make_checkpoint(
    preset: str, out_dir: Path, *, seed: int = 0, distill_steps: int = 0, progress: Progress | None = None
) -> tuple[Path, Path]:
    """Write `out_dir/target/` and `out_dir/drafter/` for `preset`; return the two directories.

    With `distill_steps > 0` the drafter is then distilled on the target
    (`edge_mtp.checkpoints.distill.distill_drafter`) so that it gets drafts accepted on the prompts listed in
    `drafter/distill_prompts.json`.
    """
    out_dir = Path(out_dir)
    spec = _preset(preset)
    _refuse_non_empty(out_dir)
    require_parent(out_dir)
    with atomic_dir(out_dir) as tmp:
        _write_pair(spec, tmp, seed=seed, distill_steps=distill_steps, progress=progress)
    return out_dir / "target", out_dir / "drafter"


def build_target(preset: Preset, *, seed: int = 0, device: str = "cpu") -> PreTrainedModel:
    """transformers' freshly initialised target for `preset` (`device="meta"` for shapes only)."""
    tf = _transformers()
    text_config = tf.Gemma4TextConfig(**copy.deepcopy(preset.target))
    if preset.wrapper == "conditional":
        config = tf.Gemma4Config(text_config=text_config, vision_config=None, audio_config=None)
    else:
        config = text_config
    return _instantiate(tf, config, preset.dtype, seed, device)


def build_drafter(preset: Preset, *, seed: int = 0, device: str = "cpu") -> PreTrainedModel:
    """transformers' freshly initialised MTP assistant for `preset` (`token_ordering` still all zeros)."""
    tf = _transformers()
    text_config = tf.Gemma4TextConfig(**copy.deepcopy(preset.drafter_text))
    config = tf.Gemma4AssistantConfig(text_config=text_config, **preset.drafter)
    return _instantiate(tf, config, preset.dtype, seed, device)


def _write_pair(spec: Preset, root: Path, *, seed: int, distill_steps: int, progress: Progress | None) -> None:
    """Build, perturb and save both models (and the tokenizer) under `root`."""
    generator = torch.Generator().manual_seed(seed)
    with _task(progress, "build target"):
        target = build_target(spec, seed=seed)
        _make_llm_like(target, generator, final_norm=target.get_decoder().norm)
    with _task(progress, "build drafter"):
        drafter = build_drafter(spec, seed=seed)
        _make_llm_like(drafter, generator, final_norm=None)
        _set_token_ordering(drafter, generator)
    target_dir, drafter_dir = root / "target", root / "drafter"
    with _task(progress, "save"), _no_tqdm():
        _set_generation_configs(target, drafter)
        target.save_pretrained(target_dir)
        drafter.save_pretrained(drafter_dir)
        tokenizer = build_tokenizer(spec.tokenizer_vocab_size)
        for directory in (target_dir, drafter_dir):
            save_tokenizer(tokenizer, directory / "tokenizer.json")
    if distill_steps > 0:
        _distill(target_dir, drafter_dir, drafter, steps=distill_steps, seed=seed, progress=progress)


@contextmanager
def _no_tqdm() -> Iterator[None]:
    """Silence transformers' "Writing model shards" bars, which would tear through a rich progress display."""
    from transformers.utils import logging

    was_enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            logging.enable_progress_bar()


@contextmanager
def _single_thread() -> Iterator[None]:
    """Run training on one thread: its float sums depend on the thread count, so the distilled bytes would too
    (and tiny models train faster on one thread anyway)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _distill(
    target_dir: Path, drafter_dir: Path, drafter: PreTrainedModel, *, steps: int, seed: int, progress: Progress | None
) -> None:
    """Replace the saved drafter by one distilled on the saved target; record the prompts it was trained on."""
    from edge_mtp.checkpoints.distill import distill_drafter

    with _single_thread():
        state, prompts = distill_drafter(target_dir, drafter_dir, steps=steps, seed=seed, progress=progress)
    unknown = sorted(set(state) - set(drafter.state_dict()))
    if unknown:
        raise EdgeMTPError(f"distilled drafter state has keys the drafter lacks: {', '.join(unknown[:3])}")
    drafter.load_state_dict(state, strict=False)
    with _no_tqdm():
        drafter.save_pretrained(drafter_dir)
    (drafter_dir / "distill_prompts.json").write_text(json.dumps(prompts) + "\n", encoding="utf-8")


def _preset(name: str) -> Preset:
    """The preset called `name`, or a one-line error listing the choices."""
    if name not in PRESETS:
        raise EdgeMTPError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def _refuse_non_empty(out_dir: Path) -> None:
    """Never overwrite or mix into existing output: an empty directory is the only thing replaced."""
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise EdgeMTPError(f"{out_dir} already exists and is not an empty directory; choose a new one")


def _transformers() -> Any:
    """The transformers module, or a one-line install hint (it is only a dev dependency)."""
    try:
        import transformers
    except ImportError:
        raise EdgeMTPError("make-checkpoint needs transformers: pip install 'edge-mtp[dev]'") from None
    return transformers


def _instantiate(tf: Any, config: Any, dtype: str, seed: int, device: str) -> PreTrainedModel:
    """Initialise directly in `dtype` on `device`: the 4.6 B-parameter E2B target must never exist in fp32."""
    torch.manual_seed(seed)
    with torch.device(device):
        model = tf.AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    return model.eval()


@torch.no_grad()
def _make_llm_like(model: PreTrainedModel, generator: torch.Generator, *, final_norm: Any) -> None:
    """Give the random model a trained model's traits that a wrong re-implementation would trip over.

    transformers initialises every RMSNorm weight to 1 and every `layer_scalar` to 1, so a `(1 + w)` norm or a
    forgotten `layer_scalar` would go unnoticed; and its near-uniform logits make greedy decoding a matter
    of near-ties. So: norms get 1 + 0.1·N(0, 1), layer scalars U(0.5, 1.5), and the target's final norm
    (`final_norm`) a per-channel gain U(4, 8) instead.

    Gemma 4 scores attention with scale 1.0 on RMS-normed q and k, so a trained model's q/k norm gains carry
    the temperature. At gain 1 the scores of a D-wide head have std sqrt(D) (about 6-8 here): attention that
    sharp multiplies fp32 rounding noise about a thousandfold, and two correct fp32 implementations (PyTorch
    itself against float64, or LiteRT against PyTorch) differ by 1.5-2.6e-4 on the logits. So q_norm and
    k_norm also get the factor D^-0.25 each, the usual softmax(q·k / sqrt(D)) temperature.
    """
    from transformers.models.gemma4.modeling_gemma4 import Gemma4RMSNorm, Gemma4TextDecoderLayer

    for name, module in model.named_modules():
        if isinstance(module, Gemma4RMSNorm) and module.with_scale and module is not final_norm:
            module.weight.copy_(1 + NORM_JITTER * torch.randn(module.weight.shape, generator=generator))
            if name.endswith(("q_norm", "k_norm")):
                module.weight.mul_(module.weight.numel() ** -0.25)
        elif isinstance(module, Gemma4TextDecoderLayer):
            low, high = LAYER_SCALAR_RANGE
            module.layer_scalar.copy_(torch.empty(module.layer_scalar.shape).uniform_(low, high, generator=generator))
    if final_norm is not None:
        low, high = FINAL_NORM_GAIN
        final_norm.weight.mul_(torch.empty(final_norm.weight.shape).uniform_(low, high, generator=generator))


@torch.no_grad()
def _set_token_ordering(drafter: PreTrainedModel, generator: torch.Generator) -> None:
    """Make the centroid head's token clusters a permutation of the vocab (transformers leaves zeros:
    docs/model.md#config-pitfalls)."""
    ordering = drafter.masked_embedding.token_ordering
    ordering.copy_(torch.randperm(ordering.numel(), generator=generator))


def _set_generation_configs(target: PreTrainedModel, drafter: PreTrainedModel) -> None:
    """The generation settings a real Gemma 4 chat pair ships, persisted by `save_pretrained`."""
    target.generation_config.eos_token_id = list(EOS_IDS)
    target.generation_config.bos_token_id = BOS_ID
    target.generation_config.pad_token_id = PAD_ID
    drafter.generation_config.num_assistant_tokens = NUM_ASSISTANT_TOKENS


@contextmanager
def _task(progress: Progress | None, description: str) -> Iterator[None]:
    """Show `description` as one rich progress task that completes when the block ends."""
    task = progress.add_task(description, total=1) if progress is not None else None
    yield
    if progress is not None:
        progress.update(task, completed=1)
