"""Benchmark prompts by category: built-in or from a JSON file.

Built-in prompts are the shipped demo pair's held-out prompts (`edge_mtp/demo_pair/prompts.json`: code,
rewrite, chat, free-form, c; never trained on), the first `BUILTIN_PER_CATEGORY` of each category that fit
the bundle's context, encoded with the bundle's own tokenizer (a category none of whose prompts fits is
left out). Without a tokenizer they are token-id prompts made by a fixed rule per category (a repeated
motif for code, a repeated sentence for rewrite, a chat template around random ids for chat, random ids
for free-form). On random-weight stand-in checkpoints the categories only differ in shape; a distilled
drafter accepts drafts reliably only on the prompts it was distilled on (`drafter/distill_prompts.json`;
pass that file to --prompts).

File formats (JSON): a list of prompts (their category is the file's name without extension), or
{category: [prompt, ...]}; a prompt is text (needs a tokenizer) or a list of token ids.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np

from edge_mtp.errors import EdgeMTPError

CATEGORIES = ("code", "rewrite", "free-form", "chat")  # of the rule-made id prompts
BUILTIN_PER_CATEGORY = 2
DEMO_PROMPTS = Path(__file__).resolve().parent.parent / "demo_pair" / "prompts.json"
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


def builtin_prompts(vocab: int, codec=None, context: int | None = None) -> dict[str, list[list[int]]]:
    """Two prompts per category: the demo pair's held-out texts through `codec` (those shorter than
    `context`), else the rule-made id prompts."""
    if codec is None:
        return {c: [_rule_ids(c, i, vocab) for i in range(BUILTIN_PER_CATEGORY)] for c in CATEGORIES}
    out = {}
    for category, texts in json.loads(DEMO_PROMPTS.read_text()).items():
        fits = [ids for ids in map(codec.encode, texts) if context is None or len(ids) < context]
        if fits:
            out[category] = fits[:BUILTIN_PER_CATEGORY]
    return out


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
    prompts = builtin_prompts(vocab, codec, context) if source == "builtin" else file_prompts(Path(source), codec)
    for category, items in prompts.items():
        for ids in items:
            if not all(0 <= t < vocab for t in ids):
                raise EdgeMTPError(f"prompt in {category!r}: an id is outside the vocabulary of {vocab}")
            if len(ids) >= context:
                raise EdgeMTPError(f"prompt in {category!r} has {len(ids)} tokens; the context holds {context}")
    return prompts
