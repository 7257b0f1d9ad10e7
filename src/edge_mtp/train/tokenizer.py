"""A byte-level BPE tokenizer trained on a corpus, with Gemma's special-token ids.

Same pipeline as the rule-built stand-in tokenizer (`edge_mtp.checkpoints.tokenizer`): ids 0..106 are
Gemma's special tokens (`<pad>` 0, `<eos>` 1, `<bos>` 2, ..., `<start_of_turn>` 105, `<end_of_turn>` 106),
then the 256 ByteLevel byte symbols (every UTF-8 string round-trips), then the merges `tokenizers`'
BPE trainer learns from the text, until `vocab_size`. The trainer is deterministic: the same texts give
the same tokenizer.json.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from edge_mtp.checkpoints.tokenizer import SPECIAL_TOKENS, _assemble, _byte_symbols


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    """BPE over `texts` with the ByteLevel pre-tokenizer, reassembled into the Gemma-id pipeline."""
    base = len(SPECIAL_TOKENS) + 256
    if vocab_size <= base:
        raise ValueError(f"vocab_size {vocab_size} leaves no room for merges after {base} special and byte tokens")
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    # The special tokens are the trainer's too, so that `<start_of_turn>` in chat text is never split into merges.
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False, initial_alphabet=_byte_symbols(),
                                  special_tokens=list(SPECIAL_TOKENS), min_frequency=2)
    bpe.train_from_iterator(texts, trainer=trainer)
    vocab = {token: i for i, token in enumerate((*SPECIAL_TOKENS, *_byte_symbols()))}
    merges = []
    for left, right in _merges(bpe):
        if left + right not in vocab and len(vocab) < vocab_size:
            vocab[left + right] = len(vocab)
            merges.append((left, right))
    return _assemble(vocab, merges)


def _merges(bpe: Tokenizer) -> list[tuple[str, str]]:
    """The trained model's merges in rank order (read from its JSON: the Python API does not expose them)."""
    import json

    model = json.loads(bpe.to_str())["model"]
    return [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
