"""A stand-in with real Gemma's hidden-state magnitudes: a pair whose residual streams are `gain` times larger.

Trained Gemma models carry residual-stream channels in the thousands, far above what random stand-ins
reach (a few units), and that is where fp16 activations can overflow (docs/tooling.md#fp16-activations).
The scaled pair computes the same function: every block reads the stream through an RMSNorm, which
ignores a common factor, and adds a post-normed output to it (docs/model.md#decoder-layer). So it is
enough to scale the stream where it starts and everything added to it later:

* target: layer 0's `layer_scalar` x gain (its output is the stream from then on), the post-norm gains of
  the later layers x gain, and their PLE gate, which reads the raw stream, / gain;
* drafter: `pre_projection` (the start of its stream) and all its post-norm gains x gain.

The final norms remove the factor again. With a power-of-two gain every scaled value is exact in fp32,
so the pair generates what the unscaled one does.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from edge_mtp.atomic import atomic_dir, require_parent
from edge_mtp.errors import EdgeMTPError

POST_NORMS = ("post_attention_layernorm.weight", "post_feedforward_layernorm.weight",
              "post_per_layer_input_norm.weight")
_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.(.+)$")


def scale_residual(src: Path, dst: Path, gain: float) -> tuple[Path, Path]:
    """Write `dst/target` and `dst/drafter`: the pair at `src` with its residual streams x `gain`.
    Returns the two directories; `dst` appears whole or not at all."""
    src, dst = Path(src), Path(dst)
    if dst.exists():
        raise EdgeMTPError(f"{dst} already exists; choose a new directory")
    require_parent(dst)
    with atomic_dir(dst) as tmp:
        for part, rule in (("target", _target_rule), ("drafter", _drafter_rule)):
            shutil.copytree(src / part, tmp / part)
            _rescale(tmp / part / "model.safetensors", rule, gain)
    return dst / "target", dst / "drafter"


def _target_rule(key: str) -> int:
    """The power of `gain` that the target tensor `key` is multiplied by."""
    m = _LAYER.search(key)
    if not m:
        return 0
    layer, name = int(m.group(1)), m.group(2)
    if name == "layer_scalar":
        return 1 if layer == 0 else 0
    if layer > 0 and name in POST_NORMS:
        return 1
    return -1 if layer > 0 and name == "per_layer_input_gate.weight" else 0


def _drafter_rule(key: str) -> int:
    m = _LAYER.search(key)
    return int(key == "pre_projection.weight" or bool(m and m.group(2) in POST_NORMS))


def _rescale(path: Path, rule, gain: float) -> None:
    from safetensors.torch import load_file, save_file

    if not path.exists():
        raise EdgeMTPError(f"{path}: not found (a single-file safetensors checkpoint was expected)")
    tensors = load_file(path)
    for key, power in ((k, rule(k)) for k in list(tensors)):
        if power:
            tensors[key] = tensors[key] * gain**power
    save_file(tensors, path, metadata={"format": "pt"})


def norm_input_peaks(target_dir: Path, prompt: list[int], new_tokens: int) -> tuple[float, float, list[int]]:
    """transformers (fp32, eager) generating greedily from `prompt`: the largest |x| and the largest
    per-row mean(x²) entering the residual-stream RMSNorms (each layer's input and pre-MLP norms, the
    final norm), and the tokens."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.models.gemma4.modeling_gemma4 import Gemma4RMSNorm

    model = AutoModelForCausalLM.from_pretrained(target_dir, dtype=torch.float32, attn_implementation="eager").eval()
    peak, mean_square = 0.0, 0.0

    def record(_module, args):
        nonlocal peak, mean_square
        x = args[0].detach().float()
        peak, mean_square = max(peak, float(x.abs().max())), max(mean_square, float(x.pow(2).mean(-1).max()))

    for name, module in model.named_modules():
        if isinstance(module, Gemma4RMSNorm) and name.endswith(
                ("input_layernorm", "pre_feedforward_layernorm", "model.norm")):
            module.register_forward_pre_hook(record)
    with torch.no_grad():
        out = model.generate(torch.tensor([prompt]), max_new_tokens=new_tokens, do_sample=False)
    return peak, mean_square, out[0, len(prompt):].tolist()
