"""Stand-in Gemma 4 target + MTP drafter checkpoints, written by transformers itself.

`make_checkpoint(preset, out_dir)` builds a random-weight pair for one of `PRESETS` (tiny CPU-sized
models with every Gemma 4 edge feature, or the full E2B / E4B shapes) and saves it the way a real
checkpoint is laid out, with a Gemma-id-compatible tokenizer. Only making a checkpoint needs
transformers; reading one does not.
"""

from edge_mtp.checkpoints.make import make_checkpoint
from edge_mtp.checkpoints.presets import PRESETS, Preset

__all__ = ["PRESETS", "Preset", "make_checkpoint"]
