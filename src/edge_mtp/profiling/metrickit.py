"""MetricKit: one `MXMetricPayload.jsonRepresentation()` written to a file by the iOS demo app.

Measurements are strings with units ("100 sec", "30000 ms", "100000 kB"). MetricKit has no energy
or battery field: what it gives per token is CPU (and GPU) time. Signpost metrics (`mxSignpost` with
`MXMetricManager.makeLogHandle(category:)`) are keyed by category and name; the demo app's categories
are "mtp_on" / "mtp_off", names as in os_signpost ("generate", ...). Payloads arrive at most daily,
on physical devices only (Xcode: Debug > Simulate MetricKit Payloads for a made-up one).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from edge_mtp.profiling._files import bad_file, read_text

EXPECTED = "an MXMetricPayload JSON (jsonRepresentation)"
_SECONDS = {"ps": 1e-12, "ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0, "sec": 1.0,
            "min": 60.0, "hr": 3600.0, "h": 3600.0}
_KB = {"B": 1 / 1000, "bytes": 1 / 1000, "kB": 1.0, "KB": 1.0, "MB": 1e3, "GB": 1e6}
_MEASURE = re.compile(r"^\s*([-+0-9.,]+)\s*(\S+)")


@dataclass
class Signpost:
    category: str
    name: str
    count: int
    cpu_time_s: float | None
    avg_memory_kb: float | None
    histogram_ms: list[tuple[float, float, int]]  # (bucket start, bucket end, count)

    def mean_duration_ms(self) -> float | None:
        """Mean duration from the histogram's bucket midpoints (MetricKit gives no exact mean)."""
        n = sum(c for _, _, c in self.histogram_ms)
        return sum((a + b) / 2 * c for a, b, c in self.histogram_ms) / n if n else None


@dataclass
class MetricPayload:
    path: str
    begin: str
    end: str
    device: str
    os: str
    cpu_time_s: float | None
    gpu_time_s: float | None
    foreground_time_s: float | None
    signposts: dict[tuple[str, str], Signpost] = field(default_factory=dict)


def measure(text, units: dict[str, float], path, where: str) -> float:
    m = _MEASURE.match(str(text))
    if not m or m.group(2) not in units:
        raise bad_file(path, EXPECTED, f"{where}: {text!r} is not a measurement in {sorted(units)}")
    return float(m.group(1).replace(",", "")) * units[m.group(2)]


def _opt(obj: dict, keys: tuple[str, ...], units, path) -> float | None:
    for k in keys:
        if not isinstance(obj, dict) or k not in obj:
            return None
        obj = obj[k]
    return measure(obj, units, path, ".".join(keys))


def _signpost(sp: dict, path) -> Signpost:
    data = sp.get("signpostIntervalData", {})
    buckets = data.get("histogrammedSignpostDurations", {}).get("histogramValue", {})
    hist = [(measure(b["bucketStart"], _SECONDS, path, "bucketStart") * 1e3,
             measure(b["bucketEnd"], _SECONDS, path, "bucketEnd") * 1e3, int(b["bucketCount"]))
            for _, b in sorted(buckets.items(), key=lambda kv: int(kv[0]))]
    return Signpost(sp.get("signpostCategory", ""), sp.get("signpostName", ""), int(sp.get("totalSignpostCount", 0)),
                    _opt(data, ("signpostCumulativeCPUTime",), _SECONDS, path),
                    _opt(data, ("signpostAverageMemory",), _KB, path), hist)


def parse_metrickit(path: Path | str) -> MetricPayload:
    try:
        doc = json.loads(read_text(path, EXPECTED))
    except json.JSONDecodeError as e:
        raise bad_file(path, EXPECTED, f"invalid JSON, truncated? ({e})") from None
    if not isinstance(doc, dict) or "timeStampEnd" not in doc or "metaData" not in doc:
        raise bad_file(path, EXPECTED, "no timeStampEnd / metaData keys")
    meta = doc["metaData"]
    try:
        payload = MetricPayload(
            str(path), str(doc.get("timeStampBegin", "")), str(doc["timeStampEnd"]),
            meta.get("deviceType", ""), meta.get("osVersion", ""),
            _opt(doc, ("cpuMetrics", "cumulativeCPUTime"), _SECONDS, path),
            _opt(doc, ("gpuMetrics", "cumulativeGPUTime"), _SECONDS, path),
            _opt(doc, ("applicationTimeMetrics", "cumulativeForegroundTime"), _SECONDS, path))
        for sp in doc.get("signpostMetrics", []):
            s = _signpost(sp, path)
            payload.signposts[(s.category, s.name)] = s
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        raise bad_file(path, EXPECTED, f"unexpected structure: {e!r}") from None
    return payload
