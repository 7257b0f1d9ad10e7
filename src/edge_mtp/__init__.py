"""edge-mtp: Gemma 4 + MTP drafter speculative decoding for edge devices."""

__version__ = "0.1.0"
