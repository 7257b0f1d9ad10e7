"""`edge-mtp bench`: sweep the draft length K over an export and report TTFT, prefill and decode rates,
acceptance per draft slot, speedup vs K=0, bytes read per target step against the machine's memory
bandwidth, and the speedup predicted from the measured per-call costs (benchmarks/README.md).

`runner.run_bench` does the work; `report` writes the table, JSON, PNG plots and HTML.
"""
