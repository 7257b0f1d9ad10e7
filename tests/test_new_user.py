"""Rough edges a new user hit on a fresh clone (issue 11's list), each against what should happen instead."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from conftest import BUNDLE_K
from edge_mtp.cli import export_main, main
from edge_mtp.runtime import LoopConfig, generate


def _one_line_error(capsys, rc: int, message: str) -> str:
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    return err


def test_readme_onnx_example_with_a_text_prompt(pairs, onnx_exports, bundles, capsys):
    """`edge-mtp run <onnx export> --prompt "Hello"` printed "not a valid tokenizer": the ONNX backend kept
    the tokenizer as str, the LiteRT one as bytes. Both formats now give the same text."""
    outputs = []
    for export in (onnx_exports.path("tiny-e2b"), bundles.path("tiny-e2b")):
        assert main(["run", str(export), "--prompt", "Hello", "--max-new-tokens", "6"]) == 0
        outputs.append(capsys.readouterr().out.splitlines())
    assert outputs[0][0] == outputs[1][0] and outputs[0][0].strip()


def test_overwritten_bytes_are_caught_by_the_manifest_hash(bundles, tmp_path, capsys):
    """8 bytes overwritten mid-file used to run and print 0,0,0,... with acceptance 1.00."""
    path = tmp_path / "damaged.litertlm"
    data = bytearray(bundles.path("tiny-e2b").read_bytes())
    middle = len(data) // 2
    data[middle:middle + 8] = b"\xff" * 8
    path.write_bytes(bytes(data))
    rc = main(["run", str(path), "--prompt-ids", "2,3"])
    _one_line_error(capsys, rc, "does not match the manifest")


def test_non_finite_logits_are_an_error_not_tokens():
    from edge_mtp.errors import EdgeMTPError
    from edge_mtp.runtime.export_backend import _finite

    assert _finite(np.array([1.0, 2.0]), "logits", 3) is not None
    with pytest.raises(EdgeMTPError, match="position 3 are not finite"):
        _finite(np.array([1.0, np.nan]), "target logits", 3)


def test_export_onto_an_existing_directory_fails_before_converting(pairs, tmp_path, capsys):
    target, drafter = pairs.dirs("tiny-e2b")
    occupied = tmp_path / "taken.litertlm"
    occupied.mkdir()
    rc = export_main(["--target", str(target), "--drafter", str(drafter), "-o", str(occupied)])
    _one_line_error(capsys, rc, "is a directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.litertlm"]


@pytest.mark.parametrize("args, message", [
    (["-o", "out.onnx"], "a LiteRT bundle is written to a .litertlm file"),
    (["-o", "out.litertlm", "--format", "onnx"], "an ONNX export is a directory (no suffix) or a .zip"),
])
def test_output_name_must_fit_the_format(pairs, tmp_path, capsys, args, message):
    target, drafter = pairs.dirs("tiny-e2b")
    args = [a if not a.startswith("out.") else str(tmp_path / a) for a in args]
    rc = export_main(["--target", str(target), "--drafter", str(drafter), *args])
    _one_line_error(capsys, rc, message)
    assert list(tmp_path.iterdir()) == []


def test_fewer_drafts_than_the_bundle_verifies_in_one_call(pairs, bundles):
    """K below the bundle's used to verify with K+1 decode calls; now one padded verify call, same trace."""
    from edge_mtp.runtime.litert_backend import LiteRTBackend
    from edge_mtp.runtime.torch_backend import open_torch_backend

    calls = []

    class Counting(LiteRTBackend):
        def _signature(self, sig, tokens, start, rows):
            calls.append(sig)
            return super()._signature(sig, tokens, start, rows)

    prompt = pairs.prompts("tiny-e2b")[0]
    cfg = LoopConfig(draft_len=BUNDLE_K - 2, max_new_tokens=12)
    ours = generate(Counting(bundles.path("tiny-e2b")), prompt, cfg)
    ref = generate(open_torch_backend(*pairs.dirs("tiny-e2b"), context=128)[0], prompt, cfg)
    assert [(r.drafts, r.accepted) for r in ours.rounds] == [(r.drafts, r.accepted) for r in ref.rounds]
    drafting = sum(1 for r in ours.rounds if r.drafts)
    assert calls.count("verify") >= drafting and calls.count("decode") <= len(ours.rounds) - drafting + 1


def test_more_drafts_than_the_bundle_verifies_is_a_one_line_error(bundles, capsys):
    rc = main(["run", str(bundles.path("tiny-e2b")), "--prompt-ids", "2,3,4", "--draft-len", str(BUNDLE_K + 1)])
    _one_line_error(capsys, rc, f"this bundle verifies at most {BUNDLE_K}")


def test_native_log_lines_stay_out_of_the_way(bundles):
    """~50 lines of LiteRT's own logging per command drowned our one-line errors; --verbose shows them."""
    cmd = [sys.executable, "-c", "import sys; from edge_mtp.cli import main; sys.exit(main())", "run",
           str(bundles.path("tiny-e2b")), "--prompt-ids", "2,3", "--max-new-tokens", "2"]
    quiet = subprocess.run(cmd, capture_output=True, text=True, check=True)
    loud = subprocess.run(cmd[:3] + ["--verbose"] + cmd[3:], capture_output=True, text=True, check=True)
    assert quiet.stderr == "" and len(quiet.stdout.splitlines()) == 2
    assert "INFO" in loud.stderr or "WARNING" in loud.stderr


def test_export_without_checkpoints_says_it_uses_the_demo_pair(pairs, bundles, tmp_path, capsys, monkeypatch):
    """`edge-export -o x` silently exported the random demo pair."""
    import edge_mtp.cli as cli
    import edge_mtp.demo
    import edge_mtp.export.exporter as exporter

    demo = pairs.dirs("tiny-e2b")[0].parent
    exported = []
    monkeypatch.setattr(edge_mtp.demo, "demo_pair", lambda: demo)
    monkeypatch.setattr(exporter, "export_litertlm", lambda *a, **k: exported.append(a[:2]))
    monkeypatch.setattr(cli, "show_inspect", lambda bundle: 0)
    rc = export_main(["-o", str(tmp_path / "demo.litertlm")])
    err = capsys.readouterr().err
    assert rc == 0 and f"exporting the built-in demo pair in {demo}" in err
    assert exported == [(demo / "target", demo / "drafter")]


@pytest.mark.parametrize("args, message", [
    (["run", "{tmp}", "--prompt-ids", "2,3", "--backend", "native"],
     "--backend native runs a .litertlm bundle; {tmp} is an ONNX export"),
])
def test_flags_the_native_core_cannot_honour_are_errors(tmp_path, capsys, args, message):
    """Item 5, the native core's side: an ONNX folder handed to the C CLI is a one-line error before
    anything runs."""
    rc = main([a.format(tmp=tmp_path) for a in args])
    _one_line_error(capsys, rc, message.format(tmp=tmp_path))


def _sigterm_inside_a_gc_callback(phase, info):
    """What happened during an export: SIGTERM arriving while jax's garbage-collector callback runs."""
    import gc
    import os
    import signal

    gc.callbacks.remove(_sigterm_inside_a_gc_callback)
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(1000):  # bytecode of the callback: the Python handler runs here, and its raise is dropped
        pass


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("updates", [True, False], ids=["then a progress update", "then nothing"])
def test_sigterm_whose_exception_python_drops_still_ends_the_command(capsys, updates):
    """Item 8: an export ended by SIGTERM ran to the end and exited 0 when the signal landed in a gc
    callback (Python prints "Exception ignored" and goes on). The next progress update, or at the latest
    the end of the command, raises it again: exit 143, after the `with` blocks have cleaned up."""
    import gc

    import click

    from edge_mtp.cli import _invoke
    from edge_mtp.console import progress

    steps = []

    @click.command()
    def work():
        with progress() as bars:
            task = bars.add_task("work", total=2)
            gc.callbacks.append(_sigterm_inside_a_gc_callback)
            gc.collect()
            steps.append("dropped")
            if updates:
                bars.advance(task)
                steps.append("advanced")
        steps.append("returned")

    assert _invoke(work, [], "work") == 143
    assert capsys.readouterr().err.splitlines()[-1] == "terminated"
    assert steps == (["dropped"] if updates else ["dropped", "returned"])
    assert _invoke(click.command()(lambda: None), [], "again") == 0  # the next command starts afresh
