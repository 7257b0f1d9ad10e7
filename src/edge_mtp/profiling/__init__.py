"""Device profiling: parsers for what phones and their tools write, and energy per generated token.

One module per format, each turning one file into plain numbers or raising `EdgeMTPError` naming the
file and what was expected:

* `bench`        — the demo apps' benchmark result (`edge-mtp-bench/1` JSON, profiling/README.md)
* `batterystats` — `adb shell dumpsys batterystats --checkin` (CSV lines `9,<uid>,<category>,<type>,...`)
* `perfetto`     — battery / power-rail counters exported from a Perfetto trace by `trace_processor_shell`
* `xctrace`      — `xcrun xctrace export --xpath ...` XML tables (os_signpost intervals)
* `metrickit`    — an `MXMetricPayload.jsonRepresentation()` JSON file
* `energy`       — joules and J/token per run, MTP on vs off

`python -m edge_mtp.profiling summarize DIR` runs all of them over a results folder.
"""
