"""Profiling parsers and the J/token arithmetic, on the synthetic fixtures in tests/fixtures/profiling.

Expected numbers are worked out by hand from the formulas in tests/fixtures/profiling/make_fixtures.py
(and from the hand-written iOS files), not from the parser code; each test says how.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from edge_mtp.errors import EdgeMTPError
from edge_mtp.profiling.__main__ import main as profiling_main
from edge_mtp.profiling.batterystats import parse_batterystats
from edge_mtp.profiling.bench import parse_bench
from edge_mtp.profiling.energy import run_energy
from edge_mtp.profiling.metrickit import parse_metrickit
from edge_mtp.profiling.perfetto import parse_counters
from edge_mtp.profiling.summarize import summarize
from edge_mtp.profiling.xctrace import interval_summary, signpost_intervals

FIX = Path(__file__).parent / "fixtures" / "profiling"
OFF, ON = FIX / "android" / "mtp_off", FIX / "android" / "mtp_on"
IOS = FIX / "ios"
ROOT = Path(__file__).parent.parent
S = 1_000_000_000

PARSERS = {
    "batterystats": (parse_batterystats, OFF / "batterystats.txt"),
    "counters": (parse_counters, OFF / "counters.csv"),
    "xctrace": (signpost_intervals, IOS / "mtp_on" / "signposts.xml"),
    "metrickit": (parse_metrickit, IOS / "metrickit.json"),
    "bench": (parse_bench, OFF / "bench.json"),
}


# --- batterystats --checkin ----------------------------------------------------------------------

def test_batterystats_fixture():
    st = parse_batterystats(OFF / "batterystats.txt")
    # Read off the fixture's lines: vers 35 / UP1A..., bt realtime 10512 ms, capacity 4500, dc 3 mAh 0-1 %.
    assert (st.checkin_version, st.platform) == (35, "UP1A.231105.003")
    assert st.battery_realtime_ms == 10512 and st.estimated_capacity_mah == 4500
    assert st.discharge_mah == 3 and st.discharge_pct == (0, 1)
    assert st.computed_drain_mah == pytest.approx(2.98) and st.drained_mah == (2.7, 3.15)  # pws: 2.15 + 0.83
    assert st.uid_of("dev.edgemtp.demo") == 10234 and st.packages[1000] == ["android", "com.android.settings"]
    assert st.app_mah("dev.edgemtp.demo") == 2.15  # the one pwi line of uid 10234
    assert st.app_mah("not.installed") is None
    assert [(i.label, i.uid, i.mah) for i in st.items] == [
        ("uid", 10234, 2.15), ("scrn", 0, 0.71), ("idle", 0, 0.12), ("uid", 1000, 0.21)]


def test_batterystats_truncated_at_a_line_boundary(tmp_path):
    lines = (OFF / "batterystats.txt").read_text().splitlines(keepends=True)
    cut = tmp_path / "cut.txt"
    cut.write_text("".join(lines[:9]))  # ends after `m`: no `dc` line
    with pytest.raises(EdgeMTPError, match=r"cut\.txt: .*no `dc` line"):
        parse_batterystats(cut)


# --- Perfetto counter export ---------------------------------------------------------------------

def test_counters_fixture():
    c = parse_counters(OFF / "counters.csv")
    assert c.names("batt.") == ["batt.capacity_pct", "batt.charge_uah", "batt.current_ua", "batt.voltage_uv"]
    assert c.names("power.") == ["power.rails.cpu.big", "power.rails.ddr.a"]
    # 7 samples at 9, 11, ..., 21 s; 1.0 A except 1.5 A at 15 s (negative = discharging on this device)
    cur = c.get("batt.current_ua")
    assert [t for t, _ in cur] == [t * S for t in (9, 11, 13, 15, 17, 19, 21)]
    assert cur[3] == (15 * S, -1_500_000.0) and cur[0][1] == -1_000_000.0
    assert c.get("power.rails.cpu.big")[-1] == (21 * S, 5e8 + 2e6 * 12)  # 2 W for 12 s from 5e8 uWs
    assert c.get("cpufreq.cpu0") == [(9 * S, 1804800.0), (15 * S, 1324800.0)]
    assert c.span_ns() == (9 * S, 21 * S)


def test_counters_null_values_are_skipped(tmp_path):
    f = tmp_path / "nulls.csv"
    f.write_text('"ts","name","value"\n1,"batt.current_ua",[NULL]\n2,"batt.current_ua",-5.000000\n')
    assert parse_counters(f).get("batt.current_ua") == [(2, -5.0)]


# --- xctrace export -------------------------------------------------------------------------------

def test_xctrace_signposts_fixture():
    ivs = signpost_intervals(IOS / "mtp_on" / "signposts.xml")
    # 7 app rows (ids and refs resolved); the com.apple.CoreAnimation row is filtered out.
    assert [(i.name, i.category) for i in ivs] == [("generate", "mtp_on"), ("draft", "mtp_on"), ("verify", "mtp_on"),
                                                   ("draft", "mtp_on"), ("verify", "mtp_on"), ("draft", "mtp_on"),
                                                   ("generate", "mtp_on")]
    assert ivs[-1].start_ns == 6_500_000_000 and ivs[-1].duration_ns == 5_200_000_000
    summary = interval_summary(ivs)
    # generate 5.0 s + 5.2 s; draft 10 + 12 + 14 ms; verify 30 + 34 ms
    assert summary["mtp_on/generate"] == {"count": 2, "total_ms": 10200.0, "mean_ms": 5100.0}
    assert summary["mtp_on/draft"] == {"count": 3, "total_ms": 36.0, "mean_ms": 12.0}
    assert summary["mtp_on/verify"] == {"count": 2, "total_ms": 64.0, "mean_ms": 32.0}
    assert len(signpost_intervals(IOS / "mtp_on" / "signposts.xml", subsystem="com.apple.CoreAnimation")) == 1


def test_xctrace_other_table_is_not_signposts(tmp_path):
    f = tmp_path / "thermal.xml"
    f.write_text('<?xml version="1.0"?><trace-query-result><node><schema name="device-thermal-state-intervals">'
                 "<col><mnemonic>start</mnemonic></col></schema></node></trace-query-result>\n")
    with pytest.raises(EdgeMTPError, match=r"thermal\.xml: .*os-signpost-interval"):
        signpost_intervals(f)


# --- MetricKit -------------------------------------------------------------------------------------

def test_metrickit_fixture():
    p = parse_metrickit(IOS / "metrickit.json")
    assert (p.device, p.os) == ("iPhone16,1", "iPhone OS 18.1 (22B83)")
    assert (p.cpu_time_s, p.gpu_time_s, p.foreground_time_s) == (100.0, 20.0, 700.0)  # "100 sec", ...
    on, off = p.signposts[("mtp_on", "generate")], p.signposts[("mtp_off", "generate")]
    assert on.cpu_time_s == 12.0 and off.cpu_time_s == 20.0  # "12000 ms", "20 sec"
    assert on.avg_memory_kb == 1_900_000 and on.count == 2
    assert on.histogram_ms == [(4000.0, 6000.0, 2)] and on.mean_duration_ms() == 5000.0
    assert off.mean_duration_ms() == 11000.0  # midpoints 10 s and 12 s, one each


def test_metrickit_bad_unit(tmp_path):
    doc = json.loads((IOS / "metrickit.json").read_text())
    doc["cpuMetrics"]["cumulativeCPUTime"] = "100 fortnights"
    f = tmp_path / "units.json"
    f.write_text(json.dumps(doc))
    with pytest.raises(EdgeMTPError, match=r"units\.json: .*cpuMetrics\.cumulativeCPUTime"):
        parse_metrickit(f)


# --- bench.json ------------------------------------------------------------------------------------

def test_bench_fixture_and_traces():
    off, on = parse_bench(OFF / "bench.json"), parse_bench(ON / "bench.json")
    assert (off.mtp, off.tokens, off.wall_time_s, off.window_ns) == (False, 100, 10.0, (10 * S, 20 * S))
    assert (on.mtp, on.draft_len, on.label) == (True, 4, "MTP on (K=4)")  # its 2 traces hold 50 + 50 tokens


def test_bench_token_count_must_match_traces(tmp_path):
    for f in ON.iterdir():
        shutil.copy(f, tmp_path)
    doc = json.loads((tmp_path / "bench.json").read_text())
    doc["tokens_generated"] = 99
    (tmp_path / "bench.json").write_text(json.dumps(doc))
    with pytest.raises(EdgeMTPError, match=r"bench\.json: tokens_generated is 99 but its traces hold 100"):
        parse_bench(tmp_path / "bench.json")


# --- every parser: truncated and foreign files ----------------------------------------------------

@pytest.mark.parametrize("kind", sorted(PARSERS))
def test_truncated_file_is_a_clear_error(kind, tmp_path):
    parse, fixture = PARSERS[kind]
    data = fixture.read_bytes()
    cut = tmp_path / f"truncated{fixture.suffix}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(EdgeMTPError) as e:
        parse(cut)
    msg = str(e.value)
    assert str(cut) in msg and "\n" not in msg and "not " in msg


@pytest.mark.parametrize("kind", sorted(PARSERS))
def test_foreign_file_is_a_clear_error(kind, tmp_path):
    parse, fixture = PARSERS[kind]
    others = [f for k, (_, f) in PARSERS.items() if k != kind] + [ROOT / "pyproject.toml"]
    for i, other in enumerate(others):
        foreign = tmp_path / f"foreign{i}{fixture.suffix}"  # right extension, wrong content
        shutil.copy(other, foreign)
        with pytest.raises(EdgeMTPError) as e:
            parse(foreign)
        assert str(foreign) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("kind", sorted(PARSERS))
def test_missing_and_empty_files(kind, tmp_path):
    parse, fixture = PARSERS[kind]
    for f in (tmp_path / f"missing{fixture.suffix}", tmp_path / f"empty{fixture.suffix}"):
        if f.name.startswith("empty"):
            f.write_text("")
        with pytest.raises(EdgeMTPError, match=str(f.name)):
            parse(f)


# --- energy arithmetic -----------------------------------------------------------------------------

def test_energy_mtp_off_by_hand():
    run = run_energy(parse_bench(OFF / "bench.json"), parse_counters(OFF / "counters.csv"),
                     parse_batterystats(OFF / "batterystats.txt"))
    # battery_iv over [10 s, 20 s] at 4.0 V: 4 W except a triangle to 6 W peaking at the 15 s sample:
    #   10-13 s: 4 W * 3 s = 12 J; 13-15 and 15-17: (4 + 6) / 2 W * 2 s = 10 J each; 17-20: 12 J -> 44 J
    # battery_charge: 300 uAh/s * 10 s = 3000 uAh * 4.0 V * 3.6e-3 J/(uAh V) = 43.2 J
    # rails: (2 W + 0.5 W) * 10 s = 25 J; batterystats: dc 3 mAh * 4.0 V * 3.6 J/(mAh V) = 43.2 J
    assert run.energy_j == pytest.approx({"battery_iv": 44.0, "battery_charge": 43.2, "rails": 25.0,
                                          "batterystats": 43.2})
    assert run.source == "battery_iv"
    assert run.j_per_token() == pytest.approx(0.44)  # 44 J / 100 tokens
    assert run.mean_power_w() == pytest.approx(4.4)  # 44 J / 10 s
    assert run.notes == []


def test_energy_mtp_on_by_hand():
    run = run_energy(parse_bench(ON / "bench.json"), parse_counters(ON / "counters.csv"),
                     parse_batterystats(ON / "batterystats.txt"))
    # 1.2 A; V(t) = 4.10 - 0.01 (t - 29) V is linear, so its mean over [30, 36] s is V(33) = 4.06 V:
    # battery_iv = 1.2 A * 4.06 V * 6 s = 29.232 J; charge = 350 * 6 uAh * 4.06 V * 3.6e-3 = 30.6936 J;
    # rails = (2.5 + 0.5) W * 6 s = 18 J; batterystats = 2 mAh * 4.06 V * 3.6 = 29.232 J
    assert run.energy_j == pytest.approx({"battery_iv": 29.232, "battery_charge": 30.6936, "rails": 18.0,
                                          "batterystats": 29.232})
    assert run.j_per_token() == pytest.approx(0.29232)


def test_window_outside_the_counters_is_a_note(tmp_path):
    bench = parse_bench(OFF / "bench.json")
    bench.window_ns = (5 * S, 20 * S)  # counters start at 9 s
    run = run_energy(bench, parse_counters(OFF / "counters.csv"))
    assert run.energy_j == {} and run.source is None and run.j_per_token() is None
    assert any("battery_iv: no counters covering the window" in n for n in run.notes)


def test_charging_is_noted(tmp_path):
    text = (OFF / "counters.csv").read_text().replace("-1500000.000000", "200000.000000")
    f = tmp_path / "counters.csv"
    f.write_text(text)
    run = run_energy(parse_bench(OFF / "bench.json"), parse_counters(f))
    assert any("changes sign" in n for n in run.notes)


def test_summarize_android(tmp_path, capsys):
    summary = summarize(FIX / "android")
    off, on = summary["runs"]
    assert (off["run"], on["run"]) == ("mtp_off", "mtp_on")
    assert on["tokens_per_s"] == pytest.approx(100 / 6)
    assert off["batterystats"]["app_estimate_mah"] == 2.15 and on["batterystats"]["discharge_mah"] == 2
    cmp = summary["mtp_on_vs_off"]["MTP on (K=4)"]
    # 0.29232 / 0.44 = 0.664363...; rails 0.18 / 0.25 = 0.72
    assert cmp["battery_iv"]["ratio_on_off"] == pytest.approx(0.29232 / 0.44)
    assert cmp["battery_iv"]["saving_pct"] == pytest.approx((1 - 0.29232 / 0.44) * 100)
    assert cmp["rails"]["ratio_on_off"] == pytest.approx(0.72)
    # The CLI writes the same summary as JSON and prints the table.
    out = tmp_path / "summary.json"
    assert profiling_main(["summarize", str(FIX / "android"), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["mtp_on_vs_off"]["MTP on (K=4)"]["rails"]["ratio_on_off"] == pytest.approx(0.72)
    assert "0.4400" in capsys.readouterr().out


def test_summarize_ios(tmp_path):
    summary = summarize(IOS)
    off, on = summary["runs"]
    # MetricKit generate CPU time / tokens: 20 s / 200 and 12 s / 200; no energy counters on iOS.
    assert off["metrickit_cpu_s_per_token"] == pytest.approx(0.1)
    assert on["metrickit_cpu_s_per_token"] == pytest.approx(0.06)
    assert on["signposts"]["mtp_on/generate"]["mean_ms"] == 5100.0
    assert on["j_per_token"] is None and summary["mtp_on_vs_off"] == {"MTP on (K=4)": {}}


def test_summarize_errors(tmp_path, capsys):
    assert profiling_main(["summarize", str(tmp_path), "--json", str(tmp_path / "s.json")]) == 2
    assert f"{tmp_path}: no bench.json" in capsys.readouterr().err
    run = tmp_path / "mtp_off"
    shutil.copytree(OFF, run)
    (run / "counters.csv").write_text((OFF / "counters.csv").read_text()[:200])
    assert profiling_main(["summarize", str(tmp_path)]) == 2
    assert "counters.csv: not a trace_processor_shell counter export" in capsys.readouterr().err


# --- shell scripts ---------------------------------------------------------------------------------

SCRIPTS = sorted((ROOT / "profiling").glob("*/*.sh"))


def test_scripts_exist():
    assert {p.name for p in SCRIPTS} == {"run_energy.sh", "record.sh", "pull_metrickit.sh"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_syntax(script):
    subprocess.run(["bash", "-n", str(script)], check=True)
    if shutil.which("shellcheck"):
        subprocess.run(["shellcheck", str(script)], check=True)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_usage_without_arguments(script):
    r = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    assert r.returncode == 2 and f"profiling/{script.parent.name}/{script.name}" in r.stdout


FAKE_ADB = r"""#!/usr/bin/env bash
# Stands in for adb: records each call, answers like a phone with the demo app installed.
echo "$*" >> "$STATE/calls.log"
[ "$1" = -s ] && shift 2
mode=$(cat "$STATE/mode" 2>/dev/null || echo off)
case "$1" in
  get-state) echo device ;;
  push) [ -e "$2" ] || exit 1 ;;
  pull)
    case "$2" in
      */out/mtp_*) d="$3/$(basename "$2")"; mkdir -p "$d"; cp "$FIX/mtp_$mode"/bench.json "$d"
                   cp "$FIX/mtp_$mode"/*.jsonl "$d" 2>/dev/null || true ;;
      *.perfetto-trace) echo "not a real trace" > "$3" ;;
      *) exit 1 ;;
    esac ;;
  shell)
    shift
    case "$*" in
      "pm path"*) echo "package:/data/app/dev.edgemtp.demo/base.apk" ;;
      *--background*) printf '4242\r\n' ;;
      "kill -0"*) exit 1 ;;
      "am start"*"--ez mtp true"*) echo on > "$STATE/mode" ;;
      "am start"*) echo off > "$STATE/mode" ;;
      "dumpsys batterystats -c") cat "$FIX/mtp_$mode/batterystats.txt" ;;
      "getprop"*) echo synthetic ;;
    esac ;;
esac
"""

FAKE_TRACE_PROCESSOR = r"""#!/usr/bin/env bash
# Stands in for trace_processor_shell -q SQL TRACE: prints the fixture export for the trace's run.
[ "$1" = -q ] && [ -f "$2" ] || exit 1
case "$3" in */mtp_on/*) cat "$FIX/mtp_on/counters.csv" ;; *) cat "$FIX/mtp_off/counters.csv" ;; esac
"""


def test_run_energy_against_a_fake_phone(tmp_path):
    """run_energy.sh's flow (push, perfetto, am start, wait, pull, export) with adb and trace_processor
    stubbed, then summarize on what it wrote: the numbers of the fixtures come back."""
    bin_dir, state, out = tmp_path / "bin", tmp_path / "state", tmp_path / "out"
    bin_dir.mkdir(), state.mkdir()
    for name, text in (("adb", FAKE_ADB), ("trace_processor_shell", FAKE_TRACE_PROCESSOR)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    bundle = tmp_path / "model.litertlm"
    bundle.write_bytes(b"LITERTLM")
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "STATE": str(state), "FIX": str(FIX / "android"),
           "ADB": str(bin_dir / "adb"), "TRACE_PROCESSOR": str(bin_dir / "trace_processor_shell"), "SETTLE_S": "0"}
    r = subprocess.run(["bash", str(ROOT / "profiling/android/run_energy.sh"), str(bundle), str(out),
                        "--cooldown", "0", "--draft-len", "4", "--serial", "FAKE1"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    calls = (state / "calls.log").read_text()
    assert "-s FAKE1 shell dumpsys batterystats --reset" in calls
    assert "--ez mtp false --ei draft_len 4" in calls and "--ez mtp true --ei draft_len 4" in calls
    assert "shell dumpsys battery unplug" in calls and calls.rstrip().endswith("shell dumpsys battery reset")
    for mode in ("off", "on"):
        assert {p.name for p in (out / f"mtp_{mode}").iterdir()} >= {
            "bench.json", "batterystats.txt", "counters.csv", "energy.perfetto-trace"}
    summary = summarize(out)
    assert [r["j_per_token"] for r in summary["runs"]] == pytest.approx([0.44, 0.29232])


def test_xctrace_short_row(tmp_path):
    text = (IOS / "mtp_on" / "signposts.xml").read_text()
    f = tmp_path / "short.xml"
    f.write_text(text.replace('<process ref="8"/><sentinel/><sentinel/></row>', "</row>", 1))
    with pytest.raises(EdgeMTPError, match=r"short\.xml: .*row 2 has 7 cells for 10 columns"):
        signpost_intervals(f)


@pytest.mark.parametrize("window", [[20, 10], ["a", "b"], [1]])
def test_bench_bad_window(tmp_path, window):
    doc = json.loads((OFF / "bench.json").read_text())
    doc["window_boottime_ns"] = window
    f = tmp_path / "bench.json"
    f.write_text(json.dumps(doc))
    with pytest.raises(EdgeMTPError, match="window_boottime_ns"):
        parse_bench(f)


FAKE_XCRUN = r"""#!/usr/bin/env bash
# Stands in for xcrun devicectl / xctrace: records each call, copies the iOS fixtures where a phone
# and Instruments would put files.
echo "$*" >> "$STATE/calls.log"
arg() { local want=$1; shift; while [ $# -gt 1 ]; do [ "$1" = "$want" ] && { echo "$2"; return; }; shift; done; }
case "$1 $2 $3" in
  "devicectl device copy")
    if [ "$4" = from ]; then
      src=$(arg --source "$@"); dst=$(arg --destination "$@")
      mkdir -p "$dst"; cp "$FIX/$(basename "$src")/bench.json" "$dst/"
    fi ;;
  "xctrace record "*) mkdir -p "$(arg --output "$@")" ;;
  "xctrace export "*)
    out=$(arg --output "$@")
    if [ -n "$(arg --xpath "$@")" ]; then cp "$FIX/mtp_on/signposts.xml" "$out"
    else echo "<trace-toc/>" > "$out"; fi ;;
  *) exit 1 ;;
esac
"""


def test_ios_record_against_a_fake_mac(tmp_path):
    bin_dir, state, out = tmp_path / "bin", tmp_path / "state", tmp_path / "out"
    bin_dir.mkdir(), state.mkdir()
    (bin_dir / "xcrun").write_text(FAKE_XCRUN)
    (bin_dir / "xcrun").chmod(0o755)
    bundle = tmp_path / "model.litertlm"
    bundle.write_bytes(b"LITERTLM")
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "STATE": str(state), "FIX": str(IOS)}
    r = subprocess.run(["bash", str(ROOT / "profiling/ios/record.sh"), "UDID1", str(bundle), str(out),
                        "--cooldown", "0"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    calls = (state / "calls.log").read_text().splitlines()
    assert calls[0].startswith("devicectl device copy to --device UDID1 --domain-type appDataContainer")
    record_on = next(c for c in calls if c.startswith("xctrace record") and "-mtp YES" in c)
    assert "--instrument os_signpost" in record_on
    assert "--launch -- dev.edgemtp.demo -bundle models/model.litertlm" in record_on
    assert "-bench_out bench/mtp_on -exit_when_done YES" in record_on
    summary = summarize(out)
    assert [r["run"] for r in summary["runs"]] == ["mtp_off", "mtp_on"]
    assert summary["runs"][1]["signposts"]["mtp_on/generate"]["count"] == 2
