"""Interleaved A/B of full-size bundles: decode, verify(4), drafter step; medians; each bundle on its own code."""
import json, statistics, sys, time, os, subprocess
import numpy as np
if sys.argv[1] == "child":
    src, path, rounds = sys.argv[2], sys.argv[3], int(sys.argv[4])
    sys.path.insert(0, src)
    from edge_mtp.runtime.litert_backend import LiteRTBackend
    from edge_mtp.runtime.views import drafter_views
    be = LiteRTBackend(path)
    prompt = [2, 818, 5279, 529, 7001, 563, 496, 2455, 1003, 236881] * 20
    step = be.prefill(prompt); n = len(prompt)
    carry = step.hidden[-1]
    views = drafter_views(0, n - 1, n, be.sliding_window)
    for line in sys.stdin:
        out = {}
        for name in ("decode", "verify", "draft"):
            ts = []
            for _ in range(rounds):
                t = time.perf_counter()
                if name == "decode": be.verify([7], n)
                elif name == "verify": be.verify([7, 8, 9, 10], n)
                else: be.draft(12, carry, n, views)
                ts.append(time.perf_counter() - t)
                be.rollback(n)
            out[name] = statistics.median(ts) * 1e3
        print(json.dumps(out), flush=True)
    sys.exit()
pairs = [a.split("=", 1) for a in sys.argv[2:]]  # label=src:path
procs = {}
for label, spec in pairs:
    src, path = spec.split(":", 1)
    procs[label] = subprocess.Popen([sys.executable, __file__, "child", src, path, "5"], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
res = {l: [] for l in procs}
for rep in range(int(sys.argv[1])):
    for l, p in procs.items():
        p.stdin.write("go\n"); p.stdin.flush()
        res[l].append(json.loads(p.stdout.readline()))
for l, rows in res.items():
    m = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    print(l, {k: round(v, 2) for k, v in m.items()}, "v/d %.3f dr/d %.3f" % (m["verify"] / m["decode"], m["draft"] / m["decode"]))
print("load", os.getloadavg())
