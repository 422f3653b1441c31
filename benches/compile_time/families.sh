# Sourced by run.sh: writes the 50 benchmark functions, with `#[differentiable]` or with
# hand-written reverse-mode gradients, and the finite-difference test both crates share.
#
# Six families, instantiated with different constants:
#   s (10): straight-line          b (10): `if`/`else if` expressions
#   l (8):  loop over a slice       n (7):  nested loops with carried values
#   r (7):  early return + loop    d (8):  calls to s and b
# `emit_lib macro|hand` prints the crate's lib.rs.

A() { awk -v k="$1" 'BEGIN { printf "%.2f", 0.30 + 0.05 * k }'; }
B() { awk -v k="$1" 'BEGIN { printf "%.2f", 0.50 + 0.03 * k }'; }

ATTR=""
fam_s() { # straight-line
  local k=$1 a; a=$(A "$k"); local b; b=$(B "$k")
  cat <<EOF
${ATTR}pub fn s$k(x: f64, y: f64) -> f64 {
    let a = x * y + $a * x.sin();
    let b = (a * a + 1.0).sqrt();
    let c = b.tanh() * y - x / (1.0 + y * y);
    a * c + $b * b
}

EOF
  [ "$MODE" = hand ] && cat <<EOF
pub fn s${k}_grad(x: f64, y: f64) -> (f64, (f64, f64)) {
    let (sx, cx) = x.sin_cos();
    let a = x * y + $a * sx;
    let b = (a * a + 1.0).sqrt();
    let t = b.tanh();
    let q = 1.0 + y * y;
    let c = t * y - x / q;
    let f = a * c + $b * b;
    let gc = a;
    let gb = $b + gc * y * (1.0 - t * t);
    let ga = c + gb * a / b;
    let gx = -gc / q + ga * (y + $a * cx);
    let gy = gc * (t + 2.0 * x * y / (q * q)) + ga * x;
    (f, (gx, gy))
}

EOF
  return 0
}

fam_b() { # branches
  local k=$1 a; a=$(A "$k"); local b; b=$(B "$k")
  cat <<EOF
${ATTR}pub fn b$k(x: f64, y: f64) -> f64 {
    let t = x * y;
    let s = if t > $a {
        (x + y) * t.sin()
    } else if t < -$a {
        x + y - y.cos()
    } else {
        (x + y) * (x + y)
    };
    let r = if s > $b { s.tanh() * x } else { s * y.sin().exp() };
    r + t
}

EOF
  [ "$MODE" = hand ] && cat <<EOF
pub fn b${k}_grad(x: f64, y: f64) -> (f64, (f64, f64)) {
    let t = x * y;
    let u = x + y;
    let (s, sx, sy) = if t > $a {
        let (st, ct) = t.sin_cos();
        (u * st, st + u * ct * y, st + u * ct * x)
    } else if t < -$a {
        (u - y.cos(), 1.0, 1.0 + y.sin())
    } else {
        (u * u, 2.0 * u, 2.0 * u)
    };
    let (r, gs, rx, ry) = if s > $b {
        let th = s.tanh();
        (th * x, (1.0 - th * th) * x, th, 0.0)
    } else {
        let (sn, cs) = y.sin_cos();
        let e = sn.exp();
        (s * e, e, 0.0, s * e * cs)
    };
    (r + t, (gs * sx + rx + y, gs * sy + ry + x))
}

EOF
  return 0
}

fam_l() { # a loop over a slice (Horner)
  local k=$1 a; a=$(A "$k"); local b; b=$(B "$k")
  cat <<EOF
${ATTR}pub fn l$k(x: f64, c: &[f64]) -> f64 {
    let mut acc = 0.0;
    for i in 0..c.len() {
        acc = acc * x + $a * c[i];
    }
    (acc * $b).tanh()
}

EOF
  [ "$MODE" = hand ] && cat <<EOF
pub fn l${k}_grad(x: f64, c: &[f64]) -> (f64, (f64, Vec<f64>)) {
    let n = c.len();
    let mut accs = Vec::with_capacity(n);
    let mut acc = 0.0;
    for i in 0..n {
        accs.push(acc);
        acc = acc * x + $a * c[i];
    }
    let f = (acc * $b).tanh();
    let mut g = $b * (1.0 - f * f);
    let mut gx = 0.0;
    let mut gc = vec![0.0; n];
    for i in (0..n).rev() {
        gx += g * accs[i];
        gc[i] = g * $a;
        g *= x;
    }
    (f, (gx, gc))
}

EOF
  return 0
}

fam_n() { # nested loops
  local k=$1 a; a=$(A "$k"); local b; b=$(B "$k")
  cat <<EOF
${ATTR}pub fn n$k(x: f64, y: f64) -> f64 {
    let mut s = x;
    for _ in 0..3 {
        let mut t = y;
        for j in 0..3 {
            t = t * $a + (s * (j as f64 + 1.0)).sin();
        }
        s = s * $b + t.tanh();
    }
    s
}

EOF
  [ "$MODE" = hand ] && cat <<EOF
pub fn n${k}_grad(x: f64, y: f64) -> (f64, (f64, f64)) {
    let mut ss = [0.0; 3];
    let mut ts = [0.0; 3];
    let mut s = x;
    for i in 0..3 {
        let mut t = y;
        for j in 0..3 {
            t = t * $a + (s * (j as f64 + 1.0)).sin();
        }
        ss[i] = s;
        ts[i] = t.tanh();
        s = s * $b + ts[i];
    }
    let mut gs = 1.0;
    let mut gy = 0.0;
    for i in (0..3).rev() {
        let mut gt = gs * (1.0 - ts[i] * ts[i]);
        gs *= $b;
        for j in (0..3).rev() {
            let m = j as f64 + 1.0;
            gs += gt * (ss[i] * m).cos() * m;
            gt *= $a;
        }
        gy += gt;
    }
    (s, (gs, gy))
}

EOF
  return 0
}

fam_r() { # an early return, then a loop
  local k=$1 a; a=$(A "$k"); local b; b=$(B "$k")
  cat <<EOF
${ATTR}pub fn r$k(x: f64, y: f64) -> f64 {
    if x > $a {
        return x * y.sin();
    }
    let mut s = y;
    for i in 0..4 {
        s = s * $b + (x * (i as f64)).sin();
    }
    s * x
}

EOF
  [ "$MODE" = hand ] && cat <<EOF
pub fn r${k}_grad(x: f64, y: f64) -> (f64, (f64, f64)) {
    if x > $a {
        let (sy, cy) = y.sin_cos();
        return (x * sy, (sy, x * cy));
    }
    let mut s = y;
    for i in 0..4 {
        s = s * $b + (x * (i as f64)).sin();
    }
    let mut gs = x;
    let mut gx = s;
    for i in (0..4).rev() {
        let m = i as f64;
        gx += gs * (x * m).cos() * m;
        gs *= $b;
    }
    (s * x, (gx, gs))
}

EOF
  return 0
}

fam_d() { # calls
  local k=$1 a; a=$(A "$k")
  cat <<EOF
${ATTR}pub fn d$k(x: f64, y: f64) -> f64 {
    let u = s$k(x, y);
    let v = b$k(y, x * $a);
    u * v + v.sin()
}

EOF
  [ "$MODE" = hand ] && cat <<EOF
pub fn d${k}_grad(x: f64, y: f64) -> (f64, (f64, f64)) {
    let (u, (ux, uy)) = s${k}_grad(x, y);
    let (v, (vp, vq)) = b${k}_grad(y, x * $a);
    let gv = u + v.cos();
    (u * v + v.sin(), (v * ux + gv * vq * $a, v * uy + gv * vp))
}

EOF
  return 0
}

COUNTS="s:10 b:10 l:8 n:7 r:7 d:8"

# emit_lib macro|hand|plain
emit_lib() {
  MODE=$1
  echo "#![allow(clippy::all)]"
  echo
  case $MODE in
    macro) ATTR="#[differentiable]
"; echo "use symgrad::differentiable;"; echo ;;
    *) ATTR="" ;;
  esac
  for fc in $COUNTS; do
    local f=${fc%%:*} n=${fc##*:}
    for ((k = 0; k < n; k++)); do "fam_$f" "$k"; done
  done
  [ "$MODE" = plain ] && return 0
  # The test (not part of the timed builds): every `_grad` against central differences.
  cat <<'EOF'
#[cfg(test)]
mod tests {
    use super::*;

    fn close(what: &str, got: f64, want: f64) {
        assert!(
            (got - want).abs() <= 1e-6 * (1.0 + want.abs()),
            "{what}: gradient {got}, finite difference {want}"
        );
    }

    /// Central differences of `f` in (x, y), skipping points near a branch boundary.
    fn check2(what: &str, f: fn(f64, f64) -> f64, g: fn(f64, f64) -> (f64, (f64, f64))) {
        let h = 1e-6;
        let mut checked = 0;
        for i in 0..40 {
            let x = -1.9 + 0.097 * i as f64;
            let y = 1.3 - 0.071 * i as f64;
            let (v, (gx, gy)) = g(x, y);
            close(what, v, f(x, y));
            let dx = (f(x + h, y) - f(x - h, y)) / (2.0 * h);
            let dy = (f(x, y + h) - f(x, y - h)) / (2.0 * h);
            // a branch boundary within h: one-sided differences disagree
            let kink = |fp: f64, fm: f64| ((fp - v) / h - (v - fm) / h).abs() > 1e-3;
            if kink(f(x + h, y), f(x - h, y)) || kink(f(x, y + h), f(x, y - h)) {
                continue;
            }
            close(what, gx, dx);
            close(what, gy, dy);
            checked += 1;
        }
        assert!(checked >= 30, "{what}: only {checked} points checked");
    }

    #[test]
    fn gradients_match_finite_differences() {
EOF
  for fc in $COUNTS; do
    local f=${fc%%:*} n=${fc##*:}
    [ "$f" = l ] && continue
    for ((k = 0; k < n; k++)); do
      echo "        check2(\"$f$k\", $f$k, ${f}${k}_grad);"
    done
  done
  local nl; nl=$(echo "$COUNTS" | tr ' ' '\n' | grep '^l:' | cut -d: -f2)
  for ((k = 0; k < nl; k++)); do
    cat <<EOF
        for n in [0usize, 1, 3, 6] {
            let c: Vec<f64> = (0..n).map(|i| 0.3 * i as f64 - 0.4).collect();
            for x in [-1.2, 0.3, 0.9] {
                let (v, (gx, gc)) = l${k}_grad(x, &c);
                close("l$k", v, l$k(x, &c));
                let h = 1e-6;
                close("l$k", gx, (l$k(x + h, &c) - l$k(x - h, &c)) / (2.0 * h));
                for i in 0..n {
                    let (mut cp, mut cm) = (c.clone(), c.clone());
                    cp[i] += h;
                    cm[i] -= h;
                    close("l$k", gc[i], (l$k(x, &cp) - l$k(x, &cm)) / (2.0 * h));
                }
            }
        }
EOF
  done
  echo "    }"
  echo "}"
}
