"""The streaming exporter under bad conditions, on the tiny pair: the same code paths a full-size E2B/E4B
export takes (skeleton load, conversion with weights as inputs, weights streamed from the shards, work
folder beside the output). A truncated or unlisted shard, a disk that fills up mid-export and SIGTERM each
end with a one-line error (or exit 143), no output and no temporary files; the bytes do not depend on
the process (hash seed)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import BUNDLE_CONTEXT, BUNDLE_K, BUNDLE_PREFILL, shard_checkpoint

EXPORT = [sys.executable, "-c", "import sys; from edge_mtp.cli import export_main; sys.exit(export_main())"]


def _sharded(pairs, tmp_path) -> tuple[Path, Path]:
    """A copy of the tiny target in two shards with an index, as big checkpoints are saved."""
    target, drafter = pairs.dirs("tiny-e2b")
    copy = shutil.copytree(target, tmp_path / "target")
    shard_checkpoint(copy)
    return copy, drafter


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("case, message", [
    ("truncated", "truncated safetensors file"),
    ("unlisted", "missing tensor model.language_model."),
    ("missing-file", "lists shard model-00002-of-00002.safetensors, which does not exist"),
])
def test_broken_shards_fail_with_one_line_and_leave_nothing(pairs, tmp_path, capsys, case, message):
    from edge_mtp.cli import export_main

    target, drafter = _sharded(pairs, tmp_path)
    shard = target / "model-00002-of-00002.safetensors"
    if case == "truncated":
        data = shard.read_bytes()
        shard.write_bytes(data[: len(data) - 1000])
    elif case == "unlisted":  # a shard on disk that the index does not list: its tensors are missing
        index = json.loads((target / "model.safetensors.index.json").read_text())
        index["weight_map"] = {k: f for k, f in index["weight_map"].items() if f != shard.name}
        (target / "model.safetensors.index.json").write_text(json.dumps(index))
    else:
        shard.unlink()
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "model.litertlm"
    assert export_main(["--target", str(target), "--drafter", str(drafter), "-o", str(out), "--quant", "int4"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert list(out_dir.iterdir()) == []


@pytest.fixture
def small_disk(tmp_path):
    """A 6 MB tmpfs: room for the converted graphs (~1.5 MB) but not for the weights (18 MB in fp32)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)], capture_output=True,
                          text=True, check=False)
    if proc.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or 'mount failed'}); needs root")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_full_disk_mid_export_is_one_line_and_leaves_nothing(pairs, small_disk, capsys):
    from edge_mtp.cli import export_main

    target, drafter = pairs.dirs("tiny-e2b")
    out = small_disk / "model.litertlm"
    args = ["--target", str(target), "--drafter", str(drafter), "-o", str(out), "--prefill", "8", "--context", "64"]
    assert export_main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "no space left on the device" in err, err
    assert list(small_disk.iterdir()) == []


def test_sigterm_mid_export_removes_the_work_folder(pairs, tmp_path):
    target, drafter = pairs.dirs("tiny-e2b")
    out = tmp_path / "model.litertlm"
    proc = subprocess.Popen(EXPORT + ["--target", str(target), "--drafter", str(drafter), "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not _leftovers(tmp_path) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert _leftovers(tmp_path), "the export never created its work folder"
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143 and "terminated" in err.splitlines()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_bundle_bytes_do_not_depend_on_the_process(pairs, bundles, tmp_path):
    """The session's bundle was exported in this process (random hash seed); export again in a process
    with a fixed, different one: module order once followed string hashing (nn.ModuleDict over a set)."""
    target, drafter = pairs.dirs("tiny-e2b")
    out = tmp_path / "again.litertlm"
    args = ["--target", str(target), "--drafter", str(drafter), "-o", str(out), "--draft-len", str(BUNDLE_K),
            "--prefill", ",".join(map(str, BUNDLE_PREFILL)), "--context", str(BUNDLE_CONTEXT)]
    env = {**os.environ, "PYTHONHASHSEED": "12345", "EDGE_MTP_GRAPH_CACHE": "off"}  # convert again, too
    subprocess.run(EXPORT + args, check=True, env=env, capture_output=True)
    sha = lambda p: hashlib.sha256(Path(p).read_bytes()).hexdigest()  # noqa: E731
    assert sha(out) == sha(bundles.path("tiny-e2b"))
