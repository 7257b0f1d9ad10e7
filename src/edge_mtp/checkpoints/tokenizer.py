"""A Gemma-id-compatible byte-level BPE tokenizer built without any training corpus.

Stand-in checkpoints need a tokenizer so that prompts can be given as text, but no real Gemma
tokenizer can be downloaded here and training one would need a corpus. This one is built from a fixed
rule instead, so the same vocab size always gives the same `tokenizer.json`, byte for byte:

* ids 0..106 are the Gemma special tokens whose ids matter (`<pad>` 0, `<eos>` 1, `<bos>` 2, `<unk>` 3,
  `<mask>` 4, `<unused0..99>` 5..104, `<start_of_turn>` 105, `<end_of_turn>` 106);
* then the 256 ByteLevel byte symbols, so every UTF-8 string encodes and decodes losslessly;
* then merges that grow letter strings one letter at a time (English letter-frequency order, most
  frequent combinations first), until the vocab is full.

Real Gemma vocabularies have 262144 entries, and the full-size stand-ins get a tokenizer of that size too
(mostly letter-string junk, 17 MB of JSON, built in seconds): a random model generates ids all over its
vocabulary, and a text-level runtime (LiteRT-LM's API returns text only) shows an id the tokenizer lacks
as nothing at all, which would make "same text with MTP on and off" an empty claim. Vocabularies are
capped at `MAX_VOCAB`; `Tokenizer.decode` skips ids it does not know (tokenizers 0.23, pinned by a test).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

MAX_VOCAB = 262144
SPECIAL_TOKENS = (
    "<pad>",
    "<eos>",
    "<bos>",
    "<unk>",
    "<mask>",
    *(f"<unused{i}>" for i in range(100)),
    "<start_of_turn>",
    "<end_of_turn>",
)
BOS = "<bos>"
SPACE = "Ġ"  # ByteLevel's symbol for the byte 0x20
_LOWER = "etaoinshrdlcumwfgypbvkjxqz"  # English letter frequency: the likeliest merges come first
_UPPER = _LOWER.upper()


def build_tokenizer(vocab_size: int) -> Tokenizer:
    """Build the tokenizer with `min(vocab_size, MAX_VOCAB)` tokens (ids as in the module docstring)."""
    size = min(vocab_size, MAX_VOCAB)
    vocab = {token: i for i, token in enumerate((*SPECIAL_TOKENS, *_byte_symbols()))}
    if size < len(vocab):
        raise ValueError(f"vocab_size {vocab_size} is below the {len(vocab)} special and byte tokens")
    merges = []
    for left, right in _merge_candidates():
        if len(vocab) == size:
            break
        vocab[left + right] = len(vocab)
        merges.append((left, right))
    return _assemble(vocab, merges)


def save_tokenizer(tokenizer: Tokenizer, path: Path) -> None:
    """Write `tokenizer.json` to `path`; the bytes depend only on the tokenizer's content."""
    Path(path).write_text(tokenizer.to_str(pretty=True) + "\n", encoding="utf-8")


def _assemble(vocab: dict[str, int], merges: list[tuple[str, str]]) -> Tokenizer:
    """Wrap vocab + merges into a Gemma-like pipeline: byte-level BPE, `<bos>` prepended on encode."""
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in SPECIAL_TOKENS])
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, vocab[BOS])]
    )
    return tokenizer


def _byte_symbols() -> list[str]:
    """The 256 ByteLevel symbols in byte order (GPT-2's `bytes_to_unicode`).

    Computed here rather than taken from `ByteLevel.alphabet()`, whose order is not specified.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    symbols = {b: chr(b) for b in printable}
    shifted = (b for b in range(256) if b not in symbols)
    for n, b in enumerate(shifted):
        symbols[b] = chr(256 + n)
    return [symbols[b] for b in range(256)]


def _merge_candidates() -> Iterator[tuple[str, str]]:
    """Merges in rank order, each joining two tokens that already exist.

    Level 1 joins a start ("Ġ", a lowercase or an uppercase letter) with one letter ("Ġ" takes both cases,
    letters take lowercase only); every later level extends each token of the previous level by one
    lowercase letter. Within a level, pairs are ordered by the sum of their two frequency ranks.
    """
    level = [(SPACE, c) for c in _LOWER + _UPPER] + _by_rank_sum([*_LOWER, *_UPPER], _LOWER)
    while True:
        yield from level
        level = _by_rank_sum([left + right for left, right in level], _LOWER)


def _by_rank_sum(prefixes: list[str], letters: str) -> list[tuple[str, str]]:
    """All (prefix, letter) pairs, likeliest first: sorted by prefix rank + letter rank, then prefix rank."""
    pairs = [(i, j) for i in range(len(prefixes)) for j in range(len(letters))]
    pairs.sort(key=lambda ij: (ij[0] + ij[1], ij[0]))
    return [(prefixes[i], letters[j]) for i, j in pairs]
