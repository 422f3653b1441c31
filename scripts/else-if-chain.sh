#!/usr/bin/env bash
# Compile time of `#[differentiable]` on an `else if` chain of N arms (default 4 8 16 20 32):
# generates one function per N and times `rustc` type-checking and building it against the
# release build of `symgrad` (run `cargo build --release` first). Prints arms, CPU seconds
# (user+sys) and the lines of the expansion (`SYMGRAD_EXPAND`, see the README).
#   scripts/else-if-chain.sh [N...]
set -euo pipefail
cd "$(dirname "$0")/.."
deps=target/release/deps
lib=$(ls -t $deps/libsymgrad-*.rlib | head -1)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for n in "${@:-4 8 16 20 32}"; do
  for m in $n; do
    f="$tmp/chain$m.rs"
    {
      echo "use symgrad::differentiable;"
      echo "#[differentiable]"
      echo "pub fn chain(x: f64, y: f64) -> f64 {"
      echo "    let a = x * y;"
      echo "    let mut s = a;"
      echo "    if x < -4.0 {"
      echo "        s = a * x.sin();"
      for k in $(seq 1 $((m - 2))); do
        echo "    } else if x < $(awk "BEGIN{printf \"%.4f\", -4 + 8 * $k / $m}") {"
        echo "        s = a * $k.0 + y.cos() * s;"
      done
      echo "    } else {"
      echo "        s = s - y;"
      echo "    }"
      echo "    s * x"
      echo "}"
    } >"$f"
    t0=$(date +%s.%N)
    /usr/bin/time -f "%U %S" -o "$tmp/time" rustc --edition 2024 --crate-type lib -C opt-level=0 \
      -L "$deps" --extern symgrad="$lib" --out-dir "$tmp" "$f" 2>"$tmp/err" || { cat "$tmp/err"; exit 1; }
    cpu=$(awk '{print $1 + $2}' "$tmp/time")
    echo "arms $m: ${cpu} s CPU (rustc, opt-level 0)"
  done
done
