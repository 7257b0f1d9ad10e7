"""`adb shell dumpsys batterystats -c` (or `--checkin`): the compact CSV form of the battery statistics.

(`-c` dumps the current period; `--checkin` prefers an older saved period when the phone has one.)

Every line is `9,<uid>,<category>,<type>,<fields...>` (9 = the old checkin-format number that prefixes
every line; category `i` = info, `l` = since last reset/charge). History lines (`9,hsp,...`, `9,h,...`)
have no uid and are skipped. The lines read here (frameworks/base core/java/android/os/BatteryStats.java,
`dumpCheckinLocked`):

  9,0,i,vers,<checkin version>,<parcel version>,<start platform build>,<end platform build>
  9,0,i,uid,<uid>,<package name>
  9,0,l,bt,<start count>,<battery realtime ms>,<battery uptime ms>,<total realtime ms>,
           <total uptime ms>,<start clock ms>,<screen-off realtime ms>,<screen-off uptime ms>,
           <estimated capacity mAh>,<min learned capacity uAh>,<max learned capacity uAh>,<doze ms>
  9,0,l,dc,<low %>,<high %>,<screen-on %>,<screen-off %>,<discharge mAh>,<screen-off mAh>,...
  9,0,l,pws,<battery capacity mAh>,<computed drain mAh>,<min drained mAh>,<max drained mAh>
  9,<uid>,l,pwi,<label>,<mAh>,<hidden 0/1>,<screen mAh>,<smeared mAh>

`pws`/`pwi` are *model estimates* (power_profile.xml x time in state); `dc`'s mAh comes from the
fuel gauge in whole mAh. Both only accumulate while the framework thinks the phone is on battery.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from edge_mtp.profiling._files import bad_file, number, read_text

EXPECTED = "a `dumpsys batterystats -c` / `--checkin` file"
# Fewest fields (after `9,uid,category,type`) each line we read must have.
MIN_FIELDS = {"vers": 4, "uid": 2, "bt": 9, "dc": 5, "pws": 4, "pwi": 2}


@dataclass
class PowerItem:
    label: str  # "uid" for an app, else scrn / idle / cell / wifi / blue / unacc / over / ...
    uid: int
    mah: float


@dataclass
class BatteryStats:
    path: str
    checkin_version: int
    platform: str  # build id at the end of the stats period
    battery_realtime_ms: int  # time on battery since the reset: the period every number covers
    estimated_capacity_mah: float
    discharge_mah: float  # fuel-gauge discharge over the period (whole mAh)
    discharge_pct: tuple[int, int]  # (low, high) battery-level drop estimate
    computed_drain_mah: float | None = None  # sum of the model's estimates (pws)
    drained_mah: tuple[float, float] | None = None  # (min, max) actually drained (pws)
    packages: dict[int, list[str]] = field(default_factory=dict)
    items: list[PowerItem] = field(default_factory=list)

    def uid_of(self, package: str) -> int | None:
        return next((uid for uid, names in self.packages.items() if package in names), None)

    def app_mah(self, package: str) -> float | None:
        """The model's estimate for one app (all `pwi` lines of its uid), None when it has none."""
        uid = self.uid_of(package)
        mahs = [it.mah for it in self.items if it.label == "uid" and it.uid == uid]
        return sum(mahs) if uid is not None and mahs else None


def _rows(path: Path | str, text: str) -> list[list[str]]:
    if not text.strip():
        raise bad_file(path, EXPECTED, "empty file")
    if not text.endswith("\n"):
        raise bad_file(path, EXPECTED, "truncated: the last line has no end")
    rows = [r for r in csv.reader(io.StringIO(text)) if r]
    if rows[0][:1] != ["9"] or not any(r[2:4] == ["i", "vers"] for r in rows if len(r) >= 4):
        raise bad_file(path, EXPECTED, "no `9,0,i,vers,...` version line")
    return rows


def _lines(path, rows) -> dict[str, list[tuple[int, list[str]]]]:
    """type -> [(uid, fields)] for the line types we read; every line must start with `9,`."""
    out: dict[str, list[tuple[int, list[str]]]] = {}
    for n, r in enumerate(rows, 1):
        if r[0] != "9":
            raise bad_file(path, EXPECTED, f"line {n} does not start with `9,`")
        if len(r) < 4 or not r[1].lstrip("-").isdigit():
            continue  # history (`9,h,...`, `9,hsp,...`) and lines without a uid
        kind = r[3]
        if kind in MIN_FIELDS:
            if len(r) - 4 < MIN_FIELDS[kind]:
                raise bad_file(path, EXPECTED, f"line {n} `{kind}` has {len(r) - 4} fields, "
                               f"expected at least {MIN_FIELDS[kind]} (truncated?)")
            out.setdefault(kind, []).append((int(r[1]), r[4:]))
    for kind in ("bt", "dc"):
        if kind not in out:
            raise bad_file(path, EXPECTED, f"no `{kind}` line (truncated?)")
    return out


def parse_batterystats(path: Path | str) -> BatteryStats:
    lines = _lines(path, _rows(path, read_text(path, EXPECTED)))
    num = lambda text, where: number(text, path, EXPECTED, where)  # noqa: E731
    vers = lines["vers"][0][1]
    bt = lines["bt"][0][1]
    dc = lines["dc"][0][1]
    stats = BatteryStats(
        path=str(path), checkin_version=int(num(vers[0], "vers")), platform=vers[3],
        battery_realtime_ms=int(num(bt[1], "bt battery realtime")),
        estimated_capacity_mah=num(bt[8], "bt estimated capacity"),
        discharge_mah=num(dc[4], "dc discharge mAh"),
        discharge_pct=(int(num(dc[0], "dc low %")), int(num(dc[1], "dc high %"))),
    )
    if "pws" in lines:
        pws = lines["pws"][0][1]
        stats.computed_drain_mah = num(pws[1], "pws computed drain")
        stats.drained_mah = (num(pws[2], "pws min drained"), num(pws[3], "pws max drained"))
    for _, f in lines.get("uid", []):
        stats.packages.setdefault(int(num(f[0], "uid")), []).append(f[1])
    for uid, f in lines.get("pwi", []):
        stats.items.append(PowerItem(f[0], uid, num(f[1], f"pwi {f[0]} mAh")))
    return stats
