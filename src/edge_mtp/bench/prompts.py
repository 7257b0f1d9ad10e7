"""Benchmark prompts by category: built-in (code, rewrite, free-form, chat) or from a JSON file.

Built-in prompts are text, encoded with the bundle's own tokenizer when it has one; without one they are
token-id prompts made by a fixed rule per category (a repeated motif for code, a repeated sentence for
rewrite, a chat template around random ids for chat, random ids for free-form). On random-weight
stand-in checkpoints the categories only differ in shape; a distilled drafter accepts drafts reliably
only on the prompts it was distilled on (`drafter/distill_prompts.json`; pass that file to --prompts).

File formats (JSON): a list of prompts (their category is the file's name without extension), or
{category: [prompt, ...]}; a prompt is text (needs a tokenizer) or a list of token ids.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np

from edge_mtp.errors import EdgeMTPError

CATEGORIES = ("code", "rewrite", "free-form", "chat")
_CHAT = "<start_of_turn>user\n{}<end_of_turn>\n<start_of_turn>model\n"
BUILTIN_TEXT = {
    "code": ["def fibonacci(n):\n    if n < 2:\n        return n\n    return",
             "for (int i = 0; i < count; i++) {\n    total += values[i];"],
    "rewrite": ["Rewrite this more politely: send me the report by noon or else.",
                "Rewrite in plain English: the meeting has been postponed until further notice."],
    "free-form": ["Once upon a time, in a quiet village by the sea, there lived",
                  "The history of the printing press begins with"],
    "chat": [_CHAT.format("What is the capital of France?"),
             _CHAT.format("Can you suggest a name for my new cat?")],
}
FIRST_ORDINARY_ID = 107  # after Gemma's special tokens (<pad> .. <end_of_turn>)


def _rule_ids(category: str, index: int, vocab: int) -> list[int]:
    rng = np.random.default_rng(zlib.crc32(f"{category}/{index}".encode()))
    draw = lambda n: [int(t) for t in rng.integers(FIRST_ORDINARY_ID, vocab, n)]  # noqa: E731
    if category == "code":
        return [2] + draw(4) * 4
    if category == "rewrite":
        return [2] + draw(8) * 2
    if category == "chat":
        return [2, 105] + draw(12) + [106, 105]
    return [2] + draw(16)


def builtin_prompts(vocab: int, codec=None) -> dict[str, list[list[int]]]:
    """Two prompts per category: the text ones through `codec`, else the rule-made id prompts."""
    if codec is not None:
        return {c: [codec.encode(t) for t in texts] for c, texts in BUILTIN_TEXT.items()}
    return {c: [_rule_ids(c, i, vocab) for i in range(2)] for c in CATEGORIES}


def _encode(prompt, codec, where: str) -> list[int]:
    if isinstance(prompt, str):
        if codec is None:
            raise EdgeMTPError(f"{where}: has text prompts but the bundle has no tokenizer; use token ids")
        return codec.encode(prompt)
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
        return prompt
    raise EdgeMTPError(f"{where}: a prompt must be text or a non-empty list of token ids")


def file_prompts(path: Path, codec=None) -> dict[str, list[list[int]]]:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise EdgeMTPError(f"{path}: not a readable JSON prompt file ({e})") from None
    if isinstance(doc, list):
        doc = {Path(path).stem: doc}
    if not isinstance(doc, dict) or not doc or not all(isinstance(v, list) and v for v in doc.values()):
        raise EdgeMTPError(f"{path}: expected a list of prompts or {{category: [prompts]}}")
    return {str(c): [_encode(p, codec, str(path)) for p in ps] for c, ps in doc.items()}


def load_prompts(source: str, vocab: int, context: int, codec=None) -> dict[str, list[list[int]]]:
    """`source` is "builtin" or a JSON file; every id must be in the vocab and every prompt fit the context."""
    prompts = builtin_prompts(vocab, codec) if source == "builtin" else file_prompts(Path(source), codec)
    for category, items in prompts.items():
        for ids in items:
            if not all(0 <= t < vocab for t in ids):
                raise EdgeMTPError(f"prompt in {category!r}: an id is outside the vocabulary of {vocab}")
            if len(ids) >= context:
                raise EdgeMTPError(f"prompt in {category!r} has {len(ids)} tokens; the context holds {context}")
    return prompts
