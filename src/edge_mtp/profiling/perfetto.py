"""Counters exported from a Perfetto trace by `trace_processor_shell`.

Reading a `.perfetto-trace` needs Perfetto's trace processor (a native binary the Python package
downloads at run time), so the capture script exports the counters on the host instead:

  trace_processor_shell -q profiling/android/energy_counters.sql trace.perfetto-trace > counters.csv

`-q` prints the last statement's rows as CSV: a quoted header (`"ts","name","value"`), strings quoted,
numbers bare, NULL as `[NULL]`. Track names (Perfetto's trace processor):

  batt.charge_uah  batt.current_ua  batt.current.avg_ua  batt.voltage_uv  batt.capacity_pct
                   (android.power battery counters; sign of the current differs between devices)
  power.*          ODPM power rails, cumulative energy in microwatt-seconds since boot
                   (`power.rails.cpu.big`, ...; older builds `power.<RAIL>_uws`)
  cpufreq.cpuN     CPU frequency in kHz (the query renames cpu_counter_track `cpufreq` per CPU)
  *Temperature*    thermal zones (ftrace thermal/thermal_temperature), in milli-degrees C

`ts` is in nanoseconds on the trace clock (CLOCK_BOOTTIME on Android), the same clock as
`SystemClock.elapsedRealtimeNanos()`, which the demo app uses for its measured window.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from edge_mtp.profiling._files import bad_file, number, read_text

EXPECTED = "a trace_processor_shell counter export (CSV with columns ts,name,value)"
HEADER = ["ts", "name", "value"]


@dataclass
class Counters:
    path: str
    series: dict[str, list[tuple[int, float]]]  # track name -> [(ts ns, value)] sorted by ts

    def names(self, prefix: str) -> list[str]:
        return sorted(n for n in self.series if n.startswith(prefix))

    def get(self, name: str) -> list[tuple[int, float]] | None:
        return self.series.get(name)

    def span_ns(self) -> tuple[int, int]:
        ts = [t for s in self.series.values() for t, _ in s]
        return min(ts), max(ts)


def _row(path, n: int, row: list[str]) -> tuple[str, int, float] | None:
    if len(row) != 3:
        raise bad_file(path, EXPECTED, f"line {n} has {len(row)} columns (truncated?)")
    ts, name, value = row
    if value == "[NULL]":
        return None
    return name, int(number(ts, path, EXPECTED, f"line {n} ts")), number(value, path, EXPECTED, f"line {n} value")


def parse_counters(path: Path | str) -> Counters:
    text = read_text(path, EXPECTED)
    if not text.endswith("\n"):
        raise bad_file(path, EXPECTED, "truncated: the last line has no end")
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or [c.strip().lower() for c in rows[0]] != HEADER:
        raise bad_file(path, EXPECTED, f"header is {rows[0] if rows else 'missing'}")
    series: dict[str, list[tuple[int, float]]] = {}
    for n, row in enumerate(rows[1:], 2):
        if not row:
            continue
        parsed = _row(path, n, row)
        if parsed:
            series.setdefault(parsed[0], []).append(parsed[1:])
    if not series:
        raise bad_file(path, EXPECTED, "no counter rows")
    return Counters(str(path), {k: sorted(v) for k, v in series.items()})
