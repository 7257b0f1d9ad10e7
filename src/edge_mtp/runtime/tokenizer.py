"""Text <-> ids with the checkpoint's own `tokenizer.json` (the `tokenizers` library; no transformers)."""

from __future__ import annotations

from pathlib import Path

from edge_mtp.errors import EdgeMTPError


class TextCodec:
    def __init__(self, directory: Path | str):
        from tokenizers import Tokenizer

        path = Path(directory) / "tokenizer.json"
        if not path.exists():
            raise EdgeMTPError(f"{path}: not found; pass --prompt-ids instead of --prompt")
        try:
            self.tokenizer = Tokenizer.from_file(str(path))
        except Exception as e:  # the library raises a bare Exception on malformed files
            raise EdgeMTPError(f"{path}: not a valid tokenizer.json ({e})") from None

    @classmethod
    def from_json(cls, data: bytes | None, where: str) -> "TextCodec":
        """From tokenizer.json bytes (e.g. a bundle's tokenizer section)."""
        from tokenizers import Tokenizer

        if data is None:
            raise EdgeMTPError(f"{where}: has no tokenizer; pass --prompt-ids instead of --prompt")
        codec = cls.__new__(cls)
        try:
            codec.tokenizer = Tokenizer.from_str(data.decode())
        except Exception as e:  # the library raises a bare Exception on malformed files
            raise EdgeMTPError(f"{where}: not a valid tokenizer ({e})") from None
        return codec

    def encode(self, text: str) -> list[int]:
        """Ids of `text`, with the tokenizer's own special tokens (Gemma: a leading <bos>)."""
        if not text:
            raise EdgeMTPError("the prompt is empty; give some text")
        return self.tokenizer.encode(text).ids

    def decode(self, ids: list[int]) -> str:
        known = [i for i in ids if self.tokenizer.id_to_token(i) is not None]  # model vocab may be larger
        return self.tokenizer.decode(known, skip_special_tokens=False)
