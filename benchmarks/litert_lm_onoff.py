"""LiteRT-LM, MTP on vs off, on the trained demo pair's held-out prompts: how many give identical greedy text.

    .venv/bin/python benchmarks/litert_lm_onoff.py BUNDLE default|fp32     # run from the repository root
"""
import json
import os
import sys
import tempfile

import litert_lm
from tokenizers import Tokenizer

bundle, act = sys.argv[1], sys.argv[2]
prompts = json.load(open("src/edge_mtp/demo_pair/prompts.json"))
res = {}
with tempfile.TemporaryDirectory(dir=os.path.dirname(bundle)) as tmp:
    os.environ["HOME"] = tmp
    kw = {} if act == "default" else {"activation_data_type": litert_lm.ActivationDataType.FLOAT32}
    tk = Tokenizer.from_file("src/edge_mtp/demo_pair/target/tokenizer.json")
    for cat, ps in prompts.items():
        for i, p in enumerate(ps):
            budget = len(tk.encode(p).ids) + 2 + 48
            for mtp in (False, True):
                engine = litert_lm.Engine(bundle, backend=litert_lm.Backend.CPU(thread_count=2), max_num_tokens=budget,
                                          enable_speculative_decoding=mtp, cache_dir=tmp, **kw)
                s = engine.create_session(apply_prompt_template=False)
                s.run_prefill([p])
                res.setdefault(f"{cat}/{i}", []).append(s.run_decode().texts[0])
                del s, engine
same = {k: v[0] == v[1] for k, v in res.items()}
tok = Tokenizer.from_file("src/edge_mtp/demo_pair/target/tokenizer.json")
def first_diff(a, b):
    x, y = tok.encode(a, add_special_tokens=False).ids, tok.encode(b, add_special_tokens=False).ids
    return next((i for i, (u, w) in enumerate(zip(x, y)) if u != w), min(len(x), len(y))), len(x)
stats = {k: first_diff(*v) for k, v in res.items()}
print("RESULT " + json.dumps({"bundle": bundle, "activation": act, "identical": sum(same.values()),
                             "prompts": len(same), "first_difference_and_length": stats}))
