"""What the README tells a new user (issue 11 item 11): its worked example of the summary line is what
the loop's summary gives for the rounds it describes, and it says how to fetch and export the real pair
and what the demo costs."""

from __future__ import annotations

import re
from pathlib import Path

from edge_mtp.console import summary_line
from edge_mtp.runtime.loop import Generation, Round

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _round(index: int, drafts: int, accepted: int, emitted: int) -> Round:
    return Round(index, 0, [7] * drafts, [], accepted, [7] * emitted, [], {})


def test_the_worked_summary_line_is_what_the_loop_prints():
    """The README's demo line: the prefill, 9 rounds that kept all 4 drafts, a round that could draft one
    token and lost it, and a last round with no budget left to draft."""
    rounds = [_round(0, 0, 0, 1)] + [_round(i, 4, 4, 5) for i in range(1, 10)] + [_round(10, 1, 0, 1),
                                                                                  _round(11, 0, 0, 1)]
    gen = Generation(prompt=[2], tokens=[7] * 48, rounds=rounds, stop="max_new_tokens")
    line = summary_line(gen.summary(4))
    assert line == ("tokens 48 | rounds 12 | acceptance per draft slot [0.90, 1.00, 1.00, 1.00] | "
                    "mean tokens/round 4.27 | stop max_new_tokens")
    shown = re.search(r"^LiteRT  K=4: +[\d.]+ tokens/s \| (.+)$", README, flags=re.MULTILINE)
    assert shown and shown.group(1) == line
    for said in ("**rounds** counts round 0, the prefill", "47 / 11 = 4.27", "slot 1 is 9 of 10",
                 "slots 2-4 are 9 of 9", "P(drafts 1 … k all accepted)"):
        assert said in README, said


def test_it_says_how_to_fetch_and_export_the_real_pair():
    for repo in ("google/gemma-4-E2B-it", "google/gemma-4-E2B-it-assistant"):
        assert re.search(rf"^\.venv/bin/hf download {repo} --local-dir {repo.split('/')[1]}$", README,
                         flags=re.MULTILINE), repo
    assert ".venv/bin/edge-export --target gemma-4-E2B-it --drafter gemma-4-E2B-it-assistant -o " in README


def test_it_gives_the_demo_disk_and_time():
    demo = README[README.index("## The demo"):README.index("## Exporting a bundle")]
    assert "~/.cache/edge-mtp/" in demo and re.search(r"\b\d+ MB on disk", demo)
    assert re.search(r"\b\d+ min and [\d.]+ GB peak memory the first time", demo)
    assert re.search(r"\b\d+ s and [\d.]+ GB on later runs", demo)
