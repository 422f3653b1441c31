#!/usr/bin/env bash
# symgrad's MNIST example beside the same recipe in JAX (`jit`) and PyTorch, interleaved per
# seed, on this machine, in one sitting; prints a markdown table of medians.
#
#   MNIST_DIR=../shared/data/mnist benches/compare/run.sh [--seeds "0 1 2"] [--epochs 10]
#
# JAX and PyTorch run when `$PYTHON` (default python3) can import them, e.g. in a venv:
#   python3 -m venv /tmp/cmp && /tmp/cmp/bin/pip install "jax[cpu]" numpy
#   /tmp/cmp/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu
#   PYTHON=/tmp/cmp/bin/python MNIST_DIR=... benches/compare/run.sh
# Extra arguments after `--` go to symgrad's example (e.g. `-- --threads 1`).
set -euo pipefail
cd "$(dirname "$0")/../.."
seeds="0 1 2"
epochs=10
while [ $# -gt 0 ]; do
    case "$1" in
        --seeds) seeds="$2"; shift 2 ;;
        --epochs) epochs="$2"; shift 2 ;;
        --) shift; break ;;
        *) echo "unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
: "${MNIST_DIR:?set MNIST_DIR to the directory of the MNIST gzip IDX files}"
PYTHON="${PYTHON:-python3}"
out="target/compare"
mkdir -p "$out"
cargo build --release --example mnist --quiet
frameworks=(symgrad)
for fw in jax torch; do
    if "$PYTHON" -c "import $fw" 2>/dev/null; then
        frameworks+=("$fw")
    else
        echo "note: $PYTHON cannot import $fw; it is left out" >&2
    fi
done
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) CPUs," \
    "AVX-512: $(grep -qw avx512f /proc/cpuinfo && echo yes || echo no); load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for seed in $seeds; do
    for fw in "${frameworks[@]}"; do
        log="$out/$fw-seed$seed.jsonl"
        echo "seed $seed: $fw" >&2
        if [ "$fw" = symgrad ]; then
            ./target/release/examples/mnist --seed "$seed" --epochs "$epochs" \
                --metrics "$log.tmp" "$@" >"$out/symgrad-seed$seed.out"
            mv "$log.tmp" "$log"
            rss=$(sed -n 's/^peak RSS \([0-9]*\) MiB.*/\1/p' "$out/symgrad-seed$seed.out")
            echo "{\"summary\": \"symgrad\", \"peak_rss_mib\": ${rss:-0}}" >>"$log"
        else
            "$PYTHON" benches/compare/mnist_reference.py --framework "$fw" --seed "$seed" \
                --epochs "$epochs" >"$log"
        fi
    done
done
"$PYTHON" - "$out" "$seeds" "${frameworks[@]}" <<'PY'
import json, statistics, sys
out, seeds, fws = sys.argv[1], sys.argv[2].split(), sys.argv[3:]
print("| framework | training time (median) | epochs 2+, per epoch | compile | final test accuracy (mean) | peak RSS |")
print("|---|---|---|---|---|---|")
for fw in fws:
    train, later, comp, acc, rss = [], [], [], [], []
    for s in seeds:
        recs = [json.loads(l) for l in open(f"{out}/{fw}-seed{s}.jsonl") if l.strip()]
        ep = [r for r in recs if "epoch" in r]
        summ = [r for r in recs if "summary" in r]
        train.append(sum(r["seconds"] for r in ep))
        rest = [r["seconds"] for r in ep[1:]] or [train[-1]]
        later.append(sum(rest) / len(rest))
        comp.append(sum(r.get("compile_seconds", 0.0) for r in ep))
        acc.append(ep[-1]["test_accuracy"])
        rss.append(max(r["peak_rss_mib"] for r in summ))
    med = statistics.median
    print(f"| {fw} | {med(train):.2f} s | {med(later):.3f} s | {med(comp):.2f} s | "
          f"{100 * statistics.mean(acc):.2f}% | {med(rss):.0f} MiB |")
PY
