#!/usr/bin/env bash
# Compile-time benchmark of #[differentiable] (issue 8, "Numbers").
#
#   benches/compile_time/run.sh [--reps N] [--arms "4 8 12 16 20"] [--timeout SECONDS]
#
# 1. Writes three crates under target/compile-time/ from families.sh: the same 50 mixed
#    functions (straight-line, branches, loops, nested loops, early returns, calls) with
#    `#[differentiable]` (`macro`), with hand-written reverse-mode gradients (`hand`), and
#    without gradients (`plain`, only for counting lines). `cargo test` of `macro` and
#    `hand` checks every gradient against central differences first (not timed).
# 2. Times `cargo build --release` and `cargo check` of `macro` and `hand` from clean: only
#    the crate itself is cleaned (`cargo clean -p`), its dependencies are already built.
#    CPU time is user+sys of cargo and its children (`/usr/bin/time`), the median of N runs.
# 3. Counts lines after macro expansion: `cargo rustc -- -Zunpretty=expanded` (a nightly
#    flag, enabled on a stable toolchain with RUSTC_BOOTSTRAP=1, what `cargo expand` does),
#    for `macro` and `plain`; generated lines = macro - plain.
# 4. An `else if` chain of K arms in one function, K in --arms: CPU seconds of
#    `cargo build --release` of a crate holding only it, and its expanded lines. A build
#    that exceeds --timeout seconds (wall) is stopped and reported as such.
#
# Prints a Markdown table; writes it to target/compile-time/results.md as well.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
reps=3
arms="4 8 12 16 20"
timeout_s=300
while [ $# -gt 0 ]; do
  case $1 in
    --reps) reps=$2; shift 2 ;;
    --arms) arms=$2; shift 2 ;;
    --timeout) timeout_s=$2; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
# shellcheck source=families.sh
source "$here/families.sh"

out="$root/target/compile-time"
export CARGO_TARGET_DIR="$root/target" # the workspace's: its dependencies are reused
export CARGO_TERM_COLOR=never
mkdir -p "$out"

# new_crate NAME: a standalone crate with a path dependency on this workspace's symgrad
new_crate() {
  local dir="$out/$1"
  mkdir -p "$dir/src"
  cat >"$dir/Cargo.toml" <<EOF
[package]
name = "ct-$1"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
symgrad = { path = "$root" }

[profile.release]
debug = 1

[workspace]
EOF
  cp "$root/Cargo.lock" "$dir/Cargo.lock"
}

for c in macro hand plain; do
  new_crate "$c"
  emit_lib "$c" >"$out/$c/src/lib.rs.tmp"
  mv "$out/$c/src/lib.rs.tmp" "$out/$c/src/lib.rs"
  rustfmt --edition 2024 "$out/$c/src/lib.rs"
done

echo "checking the gradients of both crates against finite differences..." >&2
for c in macro hand; do
  (cd "$out/$c" && cargo test --release --quiet >/dev/null) || {
    echo "gradient test failed in $out/$c" >&2
    exit 1
  }
  # dependencies for `cargo check` (dev profile metadata), not timed
  (cd "$out/$c" && cargo check --quiet)
done

# cpu CMD...: prints user+sys seconds of CMD (and its children)
cpu() {
  local t
  t=$(mktemp)
  /usr/bin/time -f "%U %S" -o "$t" "$@" >/dev/null 2>&1 || { rm -f "$t"; echo "failed: $*" >&2; return 1; }
  awk 'END { printf "%.2f", $1 + $2 }' "$t"
  rm -f "$t"
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# time_build CRATE MODE: median CPU seconds of `cargo build --release` or `cargo check`
time_build() {
  local c=$1 mode=$2 runs="" r
  for ((r = 0; r < reps; r++)); do
    if [ "$mode" = build ]; then
      (cd "$out/$c" && cargo clean --quiet -p "ct-$c" --release)
      runs="$runs $(cd "$out/$c" && cpu cargo build --release --quiet)"
    else
      (cd "$out/$c" && cargo clean --quiet -p "ct-$c")
      runs="$runs $(cd "$out/$c" && cpu cargo check --quiet)"
    fi
  done
  echo "$runs" | median
}

# expanded CRATE: lines of the crate after macro expansion (library only, no tests)
expanded() {
  (cd "$out/$1" && RUSTC_BOOTSTRAP=1 limited cargo rustc --quiet --lib -- -Zunpretty=expanded 2>/dev/null) \
    | grep -cv '^\s*$'
}

# limited CMD...: runs CMD in its own process group; stops the group after --timeout s
limited() {
  setsid "$@" &
  local pid=$! waited=0
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$waited" -ge "$timeout_s" ]; then
      kill -- "-$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      return 124
    fi
    sleep 1
    waited=$((waited + 1))
  done
  wait "$pid"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }'; }

echo "timing (median of $reps runs, CPU seconds = user + sys)..." >&2
mb=$(time_build macro build); hb=$(time_build hand build)
mc=$(time_build macro check); hc=$(time_build hand check)
ml=$(expanded macro); pl=$(expanded plain); hl=$(expanded hand)
gen=$((ml - pl))

cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
{
  echo "Compile time of 50 functions ($(date -u +%F), $cpu_model, $(nproc) cores, shared with other builds)"
  echo
  echo "| | #[differentiable] | hand-written gradients | ratio |"
  echo "| --- | --- | --- | --- |"
  echo "| \`cargo build --release\`, CPU s | $mb | $hb | $(ratio "$mb" "$hb") |"
  echo "| \`cargo check\`, CPU s | $mc | $hc | $(ratio "$mc" "$hc") |"
  echo "| lines after expansion (non-blank) | $ml | $hl | $(ratio "$ml" "$hl") |"
  echo
  echo "The 50 functions alone: $pl lines after expansion; the macro adds $gen ($(ratio "$gen" "$pl")x the original)."
  echo
  echo "| \`else if\` arms | \`cargo build --release\`, CPU s | lines after expansion |"
  echo "| --- | --- | --- |"
} | tee "$out/results.md"

# the else-if chain
for k in $arms; do
  name="chain$k"
  new_crate "$name"
  {
    echo "use symgrad::differentiable;"
    echo
    echo "#[differentiable]"
    echo "pub fn chain(x: f64, y: f64) -> f64 {"
    echo "    let t = x * y;"
    echo "    let s = if t < -1.0 {"
    echo "        x.sin() * y"
    for ((i = 1; i < k; i++)); do
      echo "    } else if t < $(awk -v i="$i" -v k="$k" 'BEGIN { printf "%.3f", -1.0 + 2.0 * i / k }') {"
      echo "        x * $i.0 + (y * t).cos()"
    done
    echo "    } else {"
    echo "        x + y"
    echo "    };"
    echo "    s * x"
    echo "}"
  } >"$out/$name/src/lib.rs"
  rustfmt --edition 2024 "$out/$name/src/lib.rs"
  (cd "$out/$name" && cargo clean --quiet -p "ct-$name" --release)
  t=$(mktemp)
  if (cd "$out/$name" && limited /usr/bin/time -f "%U %S" -o "$t" cargo build --release --quiet >/dev/null 2>&1); then
    secs=$(awk 'END { printf "%.2f", $1 + $2 }' "$t")
    lines=$(expanded "$name")
  else
    secs="> $timeout_s s wall (stopped)"
    lines="-"
  fi
  rm -f "$t"
  echo "| $k | $secs | $lines |" | tee -a "$out/results.md"
done
