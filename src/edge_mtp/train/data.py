"""Training text -> fixed-length token windows, each starting with `<bos>` as every prompt does at inference.

Files are read as UTF-8 text (a file that is empty, has NUL bytes or is not UTF-8 is refused with one line
naming it), encoded with the target's own `tokenizer.json` (special tokens such as `<start_of_turn>` in the
text become their ids), concatenated in the order given, and cut into windows of `seq_len` tokens:
`[<bos>] + the next seq_len - 1 tokens`. Every `holdout`-th window is held out for evaluation, so the
held-out part is spread over all the files instead of being their tail.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from edge_mtp.errors import EdgeMTPError


@dataclass(frozen=True)
class Windows:
    train: torch.Tensor  # [N, seq_len] int64
    heldout: torch.Tensor  # [M, seq_len] int64
    fingerprint: str  # sha256 of the token stream and the window layout (checkpoints must match it)


def data_files(paths: list[Path | str]) -> list[Path]:
    """The files named, with a directory standing for every file below it (sorted, hidden ones skipped)."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            if not found:
                raise EdgeMTPError(f"{path}: directory has no files; expected UTF-8 text files")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise EdgeMTPError(f"{path}: not found; expected a UTF-8 text file or a directory of them")
    if not files:
        raise EdgeMTPError("--data: no files given")
    return files


def read_text(path: Path) -> str:
    """The file's text, or a one-line error if it is empty or not UTF-8 text."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise EdgeMTPError(f"{path}: cannot read ({e.strerror})") from None
    if b"\0" in raw:
        raise EdgeMTPError(f"{path}: binary data (NUL bytes); expected UTF-8 text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise EdgeMTPError(f"{path}: not UTF-8 text (byte {e.start}); expected UTF-8 text") from None
    if not text.strip():
        raise EdgeMTPError(f"{path}: empty; expected UTF-8 text")
    return text


def load_tokenizer(target_dir: Path):
    """The target's `tokenizers` tokenizer: training reads text, so the target folder must have one."""
    from edge_mtp.runtime.tokenizer import TextCodec

    path = Path(target_dir) / "tokenizer.json"
    if not path.is_file():
        raise EdgeMTPError(f"{path}: not found; training on text needs the target's tokenizer")
    return TextCodec(target_dir).tokenizer


def encode_files(files: list[Path], tokenizer) -> list[int]:
    """All files' tokens, one stream (no `<bos>`: each window gets its own)."""
    texts = [read_text(f) for f in files]  # every file is checked before any work is done
    stream: list[int] = []
    for text in texts:
        stream += tokenizer.encode(text, add_special_tokens=False).ids
    return stream


def make_windows(stream: list[int], seq_len: int, bos: int, holdout: int) -> Windows:
    """Cut the stream into `[bos] + seq_len-1 tokens` windows; every `holdout`-th one (0 = none) is held out."""
    if seq_len < 2:
        raise EdgeMTPError(f"--seq-len {seq_len}: must be at least 2")
    body = seq_len - 1
    count = len(stream) // body
    if count < 1 or (holdout and count < 2):
        need = body * (2 if holdout else 1)
        raise EdgeMTPError(f"--data: {len(stream)} tokens of text, too little for windows of {seq_len} "
                           f"(need at least {need})")
    tokens = torch.tensor(stream[: count * body], dtype=torch.long).view(count, body)
    windows = torch.cat([torch.full((count, 1), bos, dtype=torch.long), tokens], dim=1)
    held = torch.zeros(count, dtype=torch.bool)
    if holdout:
        held[holdout - 1::holdout] = True
        if held.all() or not held.any():
            held[:] = False
            held[-1] = True
    digest = hashlib.sha256(windows.numpy().tobytes())
    digest.update(f"{seq_len}/{holdout}".encode())
    return Windows(windows[~held], windows[held], digest.hexdigest()[:16])


def text_windows(files: list[Path | str], target_dir: Path, seq_len: int, bos: int, holdout: int) -> Windows:
    """`make_windows` over the files' text, encoded with the target's tokenizer."""
    return make_windows(encode_files(data_files(files), load_tokenizer(target_dir)), seq_len, bos, holdout)


def batch_indices(count: int, batch: int, step: int, seed: int) -> torch.Tensor:
    """The windows of training step `step`: consecutive slices of one seeded permutation per epoch.

    Depends only on (count, batch, step, seed), so a resumed run sees exactly the batches the
    uninterrupted run would have.
    """
    per_epoch = max(1, count // batch)
    epoch, slot = divmod(step, per_epoch)
    perm = torch.randperm(count, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch), device="cpu")
    if count < batch:  # fewer windows than the batch: repeat them
        return perm.repeat(-(-batch // count))[:batch]
    return perm[slot * batch:(slot + 1) * batch]
