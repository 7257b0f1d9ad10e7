"""Joules per generated token, MTP on vs off.

Energy over the app's measured window [t0, t1] (bench.json `window_boottime_ns`), from whichever
counters a run has, best first:

  battery_iv      integral of |I| * V over the window (batt.current_ua, batt.voltage_uv), whole device
  battery_charge  (Q(t0) - Q(t1)) * mean V (batt.charge_uah; coarse on many fuel gauges), whole device
  rails           sum over ODPM rails of E(t1) - E(t0) (power.*, uWs), SoC/memory/display rails only
  batterystats    `dc` discharge (whole mAh) * mean V; coarse, needs battery voltage counters

Counters are linearly interpolated at t0 and t1 and integrated with the trapezoid rule. The current's
sign convention differs between devices, so its magnitude is used; a sign change or a rising charge
counter inside the window (the phone was charging) is reported as a note.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

from edge_mtp.profiling.batterystats import BatteryStats
from edge_mtp.profiling.bench import Bench
from edge_mtp.profiling.perfetto import Counters

SOURCES = ("battery_iv", "battery_charge", "rails", "batterystats")
UAH_V_TO_J = 3.6e-3  # 1 uAh * 1 V = 1e-6 A * 3600 s * 1 V
MAH_V_TO_J = 3.6


class NoCoverage(ValueError):
    pass


def interp(series: list[tuple[int, float]], t: int) -> float:
    """Linear interpolation of a sorted (ts, value) series at t; t must lie within it."""
    if not series or t < series[0][0] or t > series[-1][0]:
        raise NoCoverage(t)
    for (ta, va), (tb, vb) in pairwise(series):
        if ta <= t <= tb:
            return va if tb == ta else va + (vb - va) * (t - ta) / (tb - ta)
    return series[-1][1]  # a single sample at exactly t


def window(series: list[tuple[int, float]], t0: int, t1: int) -> list[tuple[int, float]]:
    """The series restricted to [t0, t1], with interpolated end points."""
    inner = [(t, v) for t, v in series if t0 < t < t1]
    return [(t0, interp(series, t0)), *inner, (t1, interp(series, t1))]


def integral_s(points: list[tuple[int, float]]) -> float:
    """Trapezoid integral of value over time, time in ns -> value * seconds."""
    return sum((tb - ta) * (va + vb) / 2 for (ta, va), (tb, vb) in pairwise(points)) / 1e9


def mean_voltage_v(c: Counters, t0: int, t1: int) -> float:
    volts = c.get("batt.voltage_uv")
    if volts is None:
        raise NoCoverage("batt.voltage_uv")
    return integral_s(window(volts, t0, t1)) / ((t1 - t0) / 1e9) / 1e6


def battery_iv_j(c: Counters, t0: int, t1: int, notes: list[str]) -> float:
    cur, volts = c.get("batt.current_ua"), c.get("batt.voltage_uv")
    if cur is None or volts is None:
        raise NoCoverage("batt.current_ua / batt.voltage_uv")
    pts = window(cur, t0, t1)
    if min(v for _, v in pts) < 0 < max(v for _, v in pts):
        notes.append("battery current changes sign in the window (charging?)")
    lo, hi = volts[0][0], volts[-1][0]
    watts = [(t, abs(i) * 1e-6 * interp(volts, min(max(t, lo), hi)) * 1e-6) for t, i in pts]
    return integral_s(watts)


def battery_charge_j(c: Counters, t0: int, t1: int, notes: list[str]) -> float:
    charge = c.get("batt.charge_uah")
    if charge is None:
        raise NoCoverage("batt.charge_uah")
    drained_uah = interp(charge, t0) - interp(charge, t1)
    if drained_uah < 0:
        notes.append("battery charge rose in the window (charging?)")
    return drained_uah * mean_voltage_v(c, t0, t1) * UAH_V_TO_J


def rails_j(c: Counters, t0: int, t1: int) -> float:
    names = c.names("power.")
    if not names:
        raise NoCoverage("power.*")
    return sum(interp(c.series[n], t1) - interp(c.series[n], t0) for n in names) * 1e-6


@dataclass
class RunEnergy:
    bench: Bench
    energy_j: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def source(self) -> str | None:
        return next((s for s in SOURCES if s in self.energy_j), None)

    def j_per_token(self, source: str | None = None) -> float | None:
        source = source or self.source
        return self.energy_j[source] / self.bench.tokens if source in self.energy_j else None

    def mean_power_w(self, source: str | None = None) -> float | None:
        source = source or self.source
        return self.energy_j[source] / self.bench.wall_time_s if source in self.energy_j else None


def run_energy(bench: Bench, counters: Counters | None = None, stats: BatteryStats | None = None) -> RunEnergy:
    run = RunEnergy(bench)
    if counters is None:
        run.notes.append("no battery or power-rail counters: energy not measured")
        if stats is not None:
            run.notes.append("batterystats discharge needs battery voltage counters to become joules")
        return run
    t0, t1 = bench.window_ns or counters.span_ns()
    if bench.window_ns is None:
        run.notes.append("bench.json has no window_boottime_ns: the whole counter export was used")
    parts = {"battery_iv": lambda: battery_iv_j(counters, t0, t1, run.notes),
             "battery_charge": lambda: battery_charge_j(counters, t0, t1, run.notes),
             "rails": lambda: rails_j(counters, t0, t1)}
    if stats is not None:
        parts["batterystats"] = lambda: stats.discharge_mah * mean_voltage_v(counters, t0, t1) * MAH_V_TO_J
    for name, fn in parts.items():
        try:
            run.energy_j[name] = fn()
        except NoCoverage as e:
            run.notes.append(f"{name}: no counters covering the window ({e})")
    return run


def compare(off: RunEnergy, on: RunEnergy) -> dict[str, dict[str, float]]:
    """Per energy source both runs have: J/token off and on, ratio on/off, and the saving in %."""
    out = {}
    for s in SOURCES:
        a, b = off.j_per_token(s), on.j_per_token(s)
        if a is not None and b is not None and a > 0:
            out[s] = {"j_per_token_off": a, "j_per_token_on": b, "ratio_on_off": b / a,
                      "saving_pct": (1 - b / a) * 100}
    return out
