#!/usr/bin/env bash
# Rebuild the committed demo pair (src/edge_mtp/demo_pair/) from the Python standard library on this
# machine: corpus -> BPE tokenizer + target (python -m edge_mtp.train.demo) -> drafter (edge-mtp
# train-drafter). Usage: bash scripts/make_demo_pair.sh [WORK_DIR] (default /tmp/edge-mtp-demo-pair);
# the new pair is written to WORK_DIR/pair and copied over src/edge_mtp/demo_pair/ only with --install.
#
# Deterministic for the seeds and thread counts below on the same machine and torch build (float sums
# depend on both). The corpus is the running interpreter's stdlib: WORK_DIR/corpus/manifest.json must
# equal src/edge_mtp/demo_pair/manifest.json for the rebuild to reproduce the committed bytes.
# Timing on the 2-core build machine: benchmarks/README.md, "Training the demo pair".
set -euo pipefail
cd "$(dirname "$0")/.."
install=0
args=()
for a in "$@"; do
    if [ "$a" = "--install" ]; then install=1; else args+=("$a"); fi
done
work=${args[0]:-/tmp/edge-mtp-demo-pair}
py=.venv/bin/python
mkdir -p "$work"
[ -d "$work/corpus" ] || $py -m edge_mtp.train.demo corpus "$work/corpus"
if ! cmp -s <($py -c 'import json,sys; d=json.load(open(sys.argv[1])); d.pop("chars"); print(json.dumps(d, sort_keys=True))' "$work/corpus/manifest.json") \
            <($py -c 'import json,sys; d=json.load(open(sys.argv[1])); d.pop("chars"); print(json.dumps(d, sort_keys=True))' src/edge_mtp/demo_pair/manifest.json); then
    echo "note: this interpreter's stdlib differs from the committed pair's corpus; the rebuilt pair will differ" >&2
fi
[ -d "$work/pair/target" ] || /usr/bin/time -v $py -m edge_mtp.train.demo target "$work/corpus" -o "$work/pair/target" \
    --steps 2400 --batch 8 --lr 6e-3 --warmup 50 --seq-len 256 --seed 0 --threads 1 --dtype bfloat16 \
    --report "$work/target_report.json" 2> >(tee "$work/target.time" >&2)
[ -d "$work/pair/drafter" ] || /usr/bin/time -v .venv/bin/edge-mtp train-drafter --target "$work/pair/target" \
    --data "$work/corpus/python" -o "$work/pair/drafter" --eval-prompts "$work/corpus/prompts.json" \
    --hidden 128 --intermediate 512 --heads 4 --centroids 64 --top-k 8 --weights-dtype bfloat16 \
    --steps 800 --batch 8 --lr 2e-3 --warmup 30 --draft-len 3 --seq-len 256 --seed 0 --threads 1 --dtype bfloat16 \
    2> >(tee "$work/drafter.time" >&2)
cp "$work/corpus/prompts.json" "$work/corpus/manifest.json" "$work/pair/"
if [ "$install" = 1 ]; then
    rm -rf src/edge_mtp/demo_pair
    cp -r "$work/pair" src/edge_mtp/demo_pair
    echo "installed $work/pair as src/edge_mtp/demo_pair"
fi
du -sh "$work/pair"
