"""Gemma 4 target + MTP drafter as export-friendly PyTorch modules, their configs and checkpoint loader."""

from edge_mtp.model.checkpoint import load_drafter, load_pair, load_target
from edge_mtp.model.config import (FULL, SLIDING, DrafterConfig, TargetConfig, TextConfig, check_pair,
                                   load_drafter_config, load_target_config)
from edge_mtp.model.drafter import Gemma4Drafter
from edge_mtp.model.target import Gemma4Target

__all__ = [
    "FULL", "SLIDING", "DrafterConfig", "Gemma4Drafter", "Gemma4Target", "TargetConfig", "TextConfig",
    "check_pair", "load_drafter", "load_drafter_config", "load_pair", "load_target", "load_target_config",
]
