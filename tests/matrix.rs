//! Finite-difference checks of matrices in `#[differentiable]` fns: matrix-vector products,
//! vectors and matrices times or over scalars, indexing (`v[i]`, `w[(i, j)]`), `x.map(|v| ..)`
//! closures (composite bodies, branches, captured constants and captured active scalars),
//! and the named element-wise functions (`exp`, `ln`, `sqrt`, `abs`, `sin`, `cos`, `powi`,
//! `softplus`, `gelu`).
//!
//! Every function is written once for `f64` and once for `f32` (by `models!`). Gradients are
//! compared with central finite differences of the ORIGINAL `f64` function (never with another
//! output of the macro), at random points from a fixed seed: the `f64` gradients to 1e-6
//! relative, the `f32` ones to 2e-3.

#![allow(dead_code, clippy::needless_range_loop, clippy::type_complexity)]

use nalgebra::{DMatrix, DVector};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use symgrad::prelude::*;

macro_rules! models {
    ($m:ident, $t:ident) => {
        pub mod $m {
            use symgrad::prelude::*;

            /// `w x` by reference and by value, scaled and divided by scalars.
            #[differentiable]
            pub fn matvec(w: &DMatrix<$t>, x: &DVector<$t>, s: $t) -> $t {
                let y = w * x;
                let z = &y * s;
                let u = 2.0 * z.clone() + s * &y;
                let q = u / (s * s + 1.0);
                let wt = w.transpose();
                let v = wt.clone() * q;
                v.sum() + (v.component_mul(&v)).sum()
            }

            /// Two layers: `gelu(w2 softplus(w1 x + b1))`, summed after a square.
            #[differentiable]
            pub fn mlp(
                w1: &DMatrix<$t>,
                b1: &DVector<$t>,
                w2: &DMatrix<$t>,
                x: &DVector<$t>,
            ) -> $t {
                let h = softplus(&(w1 * x + b1));
                let o = gelu(&(w2 * &h));
                o.component_mul(&o).sum()
            }

            /// Elements read by index, in a loop.
            #[differentiable]
            pub fn index(w: &DMatrix<$t>, v: &DVector<$t>) -> $t {
                let mut s = 0.0;
                for i in 0..v.len() {
                    s += v[i] * w[(i, 0)] * w[(0, i)];
                }
                let y = w * v;
                s + y[1] * y[1] - w[(1, 2)] + w[4] * v[0]
            }

            /// A composite closure body, and functions by path.
            #[differentiable]
            pub fn map_composite(x: &DVector<$t>) -> $t {
                let s = x.map($t::sin).component_mul(&x.map(square)).sum();
                x.map(|v| v * v.tanh() + 1.0).sum() + s
            }

            #[differentiable]
            pub fn square(v: $t) -> $t {
                v * v
            }

            /// A custom activation (ELU) with a branch and a block body, on a matrix, captured
            /// constant and captured active scalar.
            #[differentiable]
            pub fn map_elu(x: &DMatrix<$t>, a: $t) -> $t {
                let k = 0.5;
                let b: $t = a * 3.0;
                let y = x.map(|v| if v > 0.0 { v * b } else { k * (v.exp() - 1.0) });
                (y.component_mul(&y)).mean() + y.sum() * a
            }

            /// A closure that does not read the element's gradient path only: `a` alone.
            #[differentiable(wrt(a))]
            pub fn map_capture_only(x: &DVector<$t>, a: $t) -> $t {
                x.map(|v| (v * a).sin()).sum()
            }

            /// The named element-wise functions on vectors and matrices.
            #[differentiable]
            pub fn named(x: &DVector<$t>, p: &DMatrix<$t>) -> $t {
                let e = exp(x).sum() + sin(x).sum() * cos(x).sum();
                let l = ln(p).sum() + sqrt(p).mean();
                let a = abs(x).component_mul(&powi(x, 3)).sum();
                let g = gelu(p).sum() + softplus(x).sum();
                let t = tanh(x).component_mul(&sigmoid(x)).sum() + relu(x).sum() * relu(p).sum();
                e + l + a + g + t
            }

            /// `wᵀ x` with a vector `x`, fused (no transpose materialised).
            #[differentiable]
            pub fn tn_vec(w: &DMatrix<$t>, x: &DVector<$t>) -> $t {
                let y = w.transpose() * x;
                let z = w.transpose() * &(w * &y);
                z.component_mul(&z).sum() + y[0]
            }

            /// `dot`, `norm`, `norm_squared` of vectors and matrices.
            #[differentiable]
            pub fn dots(w: &DMatrix<$t>, x: &DVector<$t>, y: &DVector<$t>) -> $t {
                let z = w * x;
                z.dot(y) + x.norm() * y.norm_squared() + w.norm() + w.dot(&w)
            }

            /// A scalar helper called from a closure.
            #[differentiable]
            pub fn bump(v: $t, a: $t) -> $t {
                v * a + (v * v).sin()
            }

            /// `map` in a loop (the derivative matrices kept per iteration on the tape), in
            /// a branch, and a closure body calling a `#[differentiable]` fn and looping.
            #[differentiable(forward, reverse)]
            pub fn map_in_control_flow(x: &DVector<$t>, a: $t) -> $t {
                let mut h = x.clone();
                for i in 0..3 {
                    let c = (i as $t) * 0.5;
                    h = h.map(|v| (v * a + c).tanh());
                }
                let y = if a > 0.0 {
                    h.map(|v| bump(v, a))
                } else {
                    h.map(|v| {
                        let mut s = v;
                        for _ in 0..2 {
                            s = s * v + 1.0;
                        }
                        s
                    })
                };
                y.sum()
            }

            /// Forward mode through matrix-vector products and a `map` closure.
            #[differentiable(forward, reverse)]
            pub fn fwd_chain(w: &DMatrix<$t>, x: &DVector<$t>, a: $t) -> $t {
                let y = w * x;
                let z = y.map(|v| v * v.tanh() + a * v);
                let q = w.transpose() * &z;
                (softplus(&z) * a).sum() + q.sum()
            }
        }
    };
}

models!(m64, f64);
models!(m32, f32);

type R = ChaCha8Rng;

/// Central differences of `f` at `x`.
fn fd(f: &dyn Fn(&[f64]) -> f64, x: &[f64]) -> Vec<f64> {
    let mut xp = x.to_vec();
    (0..x.len())
        .map(|i| {
            let h = 1e-6 * x[i].abs().max(1.0);
            xp[i] = x[i] + h;
            let a = f(&xp);
            xp[i] = x[i] - h;
            let b = f(&xp);
            xp[i] = x[i];
            (a - b) / (2.0 * h)
        })
        .collect()
}

fn assert_close(what: &str, got: &[f64], want: &[f64], rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: gradient length");
    let scale = want.iter().fold(1.0f64, |m, w| m.max(w.abs()));
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= rtol * (w.abs() + scale * 1e-2) + 1e-8,
            "{what}: component {k}: got {g}, finite difference {w}\n got  {got:?}\n want {want:?}"
        );
    }
}

/// Slices a flat point into shapes.
struct Cut<'a>(&'a [f64]);
impl Cut<'_> {
    fn mat(&mut self, r: usize, c: usize) -> DMatrix<f64> {
        let (a, b) = self.0.split_at(r * c);
        self.0 = b;
        DMatrix::from_column_slice(r, c, a)
    }
    fn vec(&mut self, n: usize) -> DVector<f64> {
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        DVector::from_column_slice(a)
    }
    fn s(&mut self) -> f64 {
        let (a, b) = self.0.split_at(1);
        self.0 = b;
        a[0]
    }
}

fn m32(m: &DMatrix<f64>) -> DMatrix<f32> {
    m.map(|v| v as f32)
}
fn v32(v: &DVector<f64>) -> DVector<f32> {
    v.map(|v| v as f32)
}
fn flat64(parts: &[&[f64]]) -> Vec<f64> {
    parts.iter().flat_map(|p| p.iter().copied()).collect()
}
fn flat32(parts: &[&[f32]]) -> Vec<f64> {
    parts
        .iter()
        .flat_map(|p| p.iter().map(|&v| f64::from(v)))
        .collect()
}

/// Checks, at `n` random points from `sample`, the f64 gradient `g64` and the f32 gradient
/// `g32` (both flattened, with the value) against finite differences of `f`.
fn check(
    what: &str,
    sample: &dyn Fn(&mut R) -> Vec<f64>,
    f: &dyn Fn(&[f64]) -> f64,
    g64: &dyn Fn(&[f64]) -> (f64, Vec<f64>),
    g32: &dyn Fn(&[f64]) -> (f32, Vec<f64>),
) {
    let mut rng = R::seed_from_u64(7);
    for _ in 0..20 {
        let x = sample(&mut rng);
        let v = f(&x);
        assert!(v.is_finite(), "{what}: sample out of the domain");
        let want = fd(f, &x);
        let (v64, got) = g64(&x);
        assert!((v64 - v).abs() <= 1e-12 * (1.0 + v.abs()), "{what}: value");
        assert_close(&format!("{what} (f64)"), &got, &want, 1e-6);
        let (v32, got) = g32(&x);
        assert!(
            (f64::from(v32) - v).abs() <= 1e-4 * (1.0 + v.abs()),
            "{what}: f32 value {v32} vs {v}"
        );
        assert_close(&format!("{what} (f32)"), &got, &want, 2e-3);
    }
}

fn uniform(n: usize, lo: f64, hi: f64) -> impl Fn(&mut R) -> Vec<f64> {
    move |r: &mut R| (0..n).map(|_| r.gen_range(lo..hi)).collect()
}

#[test]
fn matvec_and_scalars() {
    let (r, c) = (3, 4);
    let f = |x: &[f64]| {
        let mut k = Cut(x);
        let (w, v, s) = (k.mat(r, c), k.vec(c), k.s());
        m64::matvec(&w, &v, s)
    };
    check(
        "matvec",
        &uniform(r * c + c + 1, -1.5, 1.5),
        &f,
        &|x| {
            let mut k = Cut(x);
            let (w, v, s) = (k.mat(r, c), k.vec(c), k.s());
            let (y, (gw, gv, gs)) = m64::matvec_grad(&w, &v, s);
            (y, flat64(&[gw.as_slice(), gv.as_slice(), &[gs]]))
        },
        &|x| {
            let mut k = Cut(x);
            let (w, v, s) = (k.mat(r, c), k.vec(c), k.s());
            let (y, (gw, gv, gs)) = m32::matvec_grad(&m32(&w), &v32(&v), s as f32);
            (y, flat32(&[gw.as_slice(), gv.as_slice(), &[gs]]))
        },
    );
}

#[test]
fn transposed_matrix_times_vector() {
    let (r, c) = (3, 2);
    check(
        "tn_vec",
        &uniform(r * c + r, -1.0, 1.0),
        &|x| {
            let mut k = Cut(x);
            let (w, v) = (k.mat(r, c), k.vec(r));
            m64::tn_vec(&w, &v)
        },
        &|x| {
            let mut k = Cut(x);
            let (w, v) = (k.mat(r, c), k.vec(r));
            let (y, (gw, gv)) = m64::tn_vec_grad(&w, &v);
            (y, flat64(&[gw.as_slice(), gv.as_slice()]))
        },
        &|x| {
            let mut k = Cut(x);
            let (w, v) = (k.mat(r, c), k.vec(r));
            let (y, (gw, gv)) = m32::tn_vec_grad(&m32(&w), &v32(&v));
            (y, flat32(&[gw.as_slice(), gv.as_slice()]))
        },
    );
}

#[test]
fn dot_and_norms() {
    let (r, c) = (3, 2);
    check(
        "dots",
        &uniform(r * c + c + r, -1.0, 1.0),
        &|x| {
            let mut k = Cut(x);
            let (w, a, b) = (k.mat(r, c), k.vec(c), k.vec(r));
            m64::dots(&w, &a, &b)
        },
        &|x| {
            let mut k = Cut(x);
            let (w, a, b) = (k.mat(r, c), k.vec(c), k.vec(r));
            let (y, (gw, ga, gb)) = m64::dots_grad(&w, &a, &b);
            (y, flat64(&[gw.as_slice(), ga.as_slice(), gb.as_slice()]))
        },
        &|x| {
            let mut k = Cut(x);
            let (w, a, b) = (k.mat(r, c), k.vec(c), k.vec(r));
            let (y, (gw, ga, gb)) = m32::dots_grad(&m32(&w), &v32(&a), &v32(&b));
            (y, flat32(&[gw.as_slice(), ga.as_slice(), gb.as_slice()]))
        },
    );
}

#[test]
fn hand_derived_matvec_gradient() {
    // y = W x: d sum(y)/dW = 1 xᵀ, d/dx = Wᵀ 1 (written out by hand).
    #[differentiable]
    fn total(w: &DMatrix<f64>, x: &DVector<f64>) -> f64 {
        (w * x).sum()
    }
    let w = DMatrix::from_row_slice(2, 3, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let x = DVector::from_vec(vec![0.5, -1.0, 2.0]);
    let (y, (gw, gx)) = total_grad(&w, &x);
    assert_eq!(y, (0.5 - 2.0 + 6.0) + (2.0 - 5.0 + 12.0));
    assert_eq!(
        gw,
        DMatrix::from_row_slice(2, 3, &[0.5, -1.0, 2.0, 0.5, -1.0, 2.0])
    );
    assert_eq!(gx, DVector::from_vec(vec![5.0, 7.0, 9.0]));
}

#[test]
fn mlp_softplus_gelu() {
    let (h, i, o) = (4, 3, 2);
    let n = h * i + h + o * h + i;
    let f = |x: &[f64]| {
        let mut k = Cut(x);
        let (w1, b1, w2, v) = (k.mat(h, i), k.vec(h), k.mat(o, h), k.vec(i));
        m64::mlp(&w1, &b1, &w2, &v)
    };
    check(
        "mlp",
        &uniform(n, -1.0, 1.0),
        &f,
        &|x| {
            let mut k = Cut(x);
            let (w1, b1, w2, v) = (k.mat(h, i), k.vec(h), k.mat(o, h), k.vec(i));
            let (y, (a, b, c, d)) = m64::mlp_grad(&w1, &b1, &w2, &v);
            (
                y,
                flat64(&[a.as_slice(), b.as_slice(), c.as_slice(), d.as_slice()]),
            )
        },
        &|x| {
            let mut k = Cut(x);
            let (w1, b1, w2, v) = (k.mat(h, i), k.vec(h), k.mat(o, h), k.vec(i));
            let (y, (a, b, c, d)) = m32::mlp_grad(&m32(&w1), &v32(&b1), &m32(&w2), &v32(&v));
            (
                y,
                flat32(&[a.as_slice(), b.as_slice(), c.as_slice(), d.as_slice()]),
            )
        },
    );
}

#[test]
fn indexing() {
    let n = 3;
    let f = |x: &[f64]| {
        let mut k = Cut(x);
        let (w, v) = (k.mat(n, n), k.vec(n));
        m64::index(&w, &v)
    };
    check(
        "index",
        &uniform(n * n + n, -2.0, 2.0),
        &f,
        &|x| {
            let mut k = Cut(x);
            let (w, v) = (k.mat(n, n), k.vec(n));
            let (y, (gw, gv)) = m64::index_grad(&w, &v);
            (y, flat64(&[gw.as_slice(), gv.as_slice()]))
        },
        &|x| {
            let mut k = Cut(x);
            let (w, v) = (k.mat(n, n), k.vec(n));
            let (y, (gw, gv)) = m32::index_grad(&m32(&w), &v32(&v));
            (y, flat32(&[gw.as_slice(), gv.as_slice()]))
        },
    );
    // Elements never read get a zero gradient of the full shape.
    let w = DMatrix::from_element(3, 3, 1.0);
    let v = DVector::from_element(3, 1.0);
    let (_, (gw, _)) = m64::index_grad(&w, &v);
    assert_eq!(gw.shape(), (3, 3));
}

#[test]
fn map_composite_body() {
    let n = 5;
    check(
        "map_composite",
        &uniform(n, -2.0, 2.0),
        &|x| m64::map_composite(&DVector::from_column_slice(x)),
        &|x| {
            let (y, g) = m64::map_composite_grad(&DVector::from_column_slice(x));
            (y, g.as_slice().to_vec())
        },
        &|x| {
            let (y, g) = m32::map_composite_grad(&v32(&DVector::from_column_slice(x)));
            (y, flat32(&[g.as_slice()]))
        },
    );
    // By hand: d/dv (v tanh v + 1 + v² sin v) = tanh v + v (1 - tanh² v) + 2 v sin v + v² cos v.
    let x = DVector::from_vec(vec![0.3, -1.1]);
    let (_, g) = m64::map_composite_grad(&x);
    for i in 0..2 {
        let (v, t) = (x[i], x[i].tanh());
        let want = t + v * (1.0 - t * t) + 2.0 * v * v.sin() + v * v * v.cos();
        assert!((g[i] - want).abs() < 1e-14, "{} vs {want}", g[i]);
    }
}

#[test]
fn map_custom_activation_with_captures() {
    let (r, c) = (2, 3);
    // Points away from the kink at 0.
    let sample = |rng: &mut R| {
        let mut x: Vec<f64> = (0..r * c)
            .map(|_| {
                let v: f64 = rng.gen_range(0.1..2.0);
                if rng.gen_bool(0.5) { v } else { -v }
            })
            .collect();
        x.push(rng.gen_range(-1.5..1.5));
        x
    };
    let f = |x: &[f64]| {
        let mut k = Cut(x);
        let (m, a) = (k.mat(r, c), k.s());
        m64::map_elu(&m, a)
    };
    check(
        "map_elu",
        &sample,
        &f,
        &|x| {
            let mut k = Cut(x);
            let (m, a) = (k.mat(r, c), k.s());
            let (y, (gm, ga)) = m64::map_elu_grad(&m, a);
            (y, flat64(&[gm.as_slice(), &[ga]]))
        },
        &|x| {
            let mut k = Cut(x);
            let (m, a) = (k.mat(r, c), k.s());
            let (y, (gm, ga)) = m32::map_elu_grad(&m32(&m), a as f32);
            (y, flat32(&[gm.as_slice(), &[ga]]))
        },
    );
    let n = 4;
    let f = |x: &[f64]| m64::map_capture_only(&DVector::from_column_slice(&x[..n]), x[n]);
    check(
        "map_capture_only",
        &uniform(n + 1, -1.5, 1.5),
        &|x| f(x),
        &|x| {
            let v = DVector::from_column_slice(&x[..n]);
            let (y, ga) = m64::map_capture_only_grad(&v, x[n]);
            // Only `a` is differentiated: compare the last component.
            let mut g = vec![0.0; n];
            g.push(ga);
            let want = fd(&f, x);
            g[..n].copy_from_slice(&want[..n]);
            (y, g)
        },
        &|x| {
            let v = v32(&DVector::from_column_slice(&x[..n]));
            let (y, ga) = m32::map_capture_only_grad(&v, x[n] as f32);
            let mut g = fd(&f, x);
            g[n] = f64::from(ga);
            (y, g)
        },
    );
}

#[test]
fn map_in_loops_and_branches() {
    let n = 4;
    let f = |x: &[f64]| m64::map_in_control_flow(&DVector::from_column_slice(&x[..n]), x[n]);
    for sign in [1.0, -1.0] {
        let sample = move |r: &mut R| {
            let mut x: Vec<f64> = (0..n).map(|_| r.gen_range(-1.0..1.0)).collect();
            x.push(sign * r.gen_range(0.2..1.5));
            x
        };
        check(
            "map_in_control_flow",
            &sample,
            &f,
            &|x| {
                let (y, (gx, ga)) =
                    m64::map_in_control_flow_grad(&DVector::from_column_slice(&x[..n]), x[n]);
                (y, flat64(&[gx.as_slice(), &[ga]]))
            },
            &|x| {
                let v = v32(&DVector::from_column_slice(&x[..n]));
                let (y, (gx, ga)) = m32::map_in_control_flow_grad(&v, x[n] as f32);
                (y, flat32(&[gx.as_slice(), &[ga]]))
            },
        );
    }
}

#[test]
fn named_elementwise_functions() {
    let (n, r, c) = (3, 2, 2);
    let sample = |rng: &mut R| {
        let mut x: Vec<f64> = (0..n)
            .map(|_| {
                let v: f64 = rng.gen_range(0.2..1.5);
                if rng.gen_bool(0.5) { v } else { -v }
            })
            .collect();
        x.extend((0..r * c).map(|_| rng.gen_range(0.3..2.0)));
        x
    };
    let f = |x: &[f64]| {
        let mut k = Cut(x);
        let (v, p) = (k.vec(n), k.mat(r, c));
        m64::named(&v, &p)
    };
    check(
        "named",
        &sample,
        &f,
        &|x| {
            let mut k = Cut(x);
            let (v, p) = (k.vec(n), k.mat(r, c));
            let (y, (gv, gp)) = m64::named_grad(&v, &p);
            (y, flat64(&[gv.as_slice(), gp.as_slice()]))
        },
        &|x| {
            let mut k = Cut(x);
            let (v, p) = (k.vec(n), k.mat(r, c));
            let (y, (gv, gp)) = m32::named_grad(&v32(&v), &m32(&p));
            (y, flat32(&[gv.as_slice(), gp.as_slice()]))
        },
    );
}

#[test]
fn forward_mode_matches_finite_differences() {
    let (r, c) = (3, 2);
    let mut rng = R::seed_from_u64(3);
    for _ in 0..20 {
        let x: Vec<f64> = (0..r * c + c + 1)
            .map(|_| rng.gen_range(-1.0..1.0))
            .collect();
        let d: Vec<f64> = (0..x.len()).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let f = |x: &[f64]| {
            let mut k = Cut(x);
            let (w, v, a) = (k.mat(r, c), k.vec(c), k.s());
            m64::fwd_chain(&w, &v, a)
        };
        let want: f64 = fd(&f, &x).iter().zip(&d).map(|(g, d)| g * d).sum();
        let mut k = Cut(&x);
        let (w, v, a) = (k.mat(r, c), k.vec(c), k.s());
        let mut k = Cut(&d);
        let (dw, dv, da) = (k.mat(r, c), k.vec(c), k.s());
        let (y, t) = m64::fwd_chain_jvp(&w, &v, a, &dw, &dv, da);
        assert!((y - f(&x)).abs() < 1e-12);
        assert!(
            (t - want).abs() < 1e-6 * (1.0 + want.abs()),
            "{t} vs {want}"
        );
        let (_, t32) = m32::fwd_chain_jvp(
            &m32(&w),
            &v32(&v),
            a as f32,
            &m32(&dw),
            &v32(&dv),
            da as f32,
        );
        assert!(
            (f64::from(t32) - want).abs() < 2e-3 * (1.0 + want.abs()),
            "{t32} vs {want}"
        );
    }
}

// ----- f64 models -----

/// A model in f64: `Linear<f64>` layers, found by `#[derive(Params)]` as f64 tensors.
#[derive(Clone, Params)]
struct Net64 {
    l1: Linear<f64>,
    l2: Linear<f64>,
    #[params(skip)]
    scale: f64,
}

impl Net64 {
    #[differentiable(wrt(self))]
    fn loss(&self, x: &DMatrix<f64>) -> f64 {
        let h = self.l1.forward(x);
        let a = gelu(&h);
        let o = self.l2.forward(&a);
        softplus(&o).mean() * no_grad(self.scale)
    }
}

/// The same layout, generic over the element type.
#[derive(Clone, Params)]
struct Tiny<T> {
    w: DMatrix<T>,
    b: DVector<T>,
}

#[differentiable(wrt(m))]
fn tiny_loss(m: &Tiny<f64>, x: &DVector<f64>) -> f64 {
    let y = &m.w * x + &m.b;
    y.map(|v| v * v).sum()
}

#[differentiable(wrt(m))]
fn tiny_loss32(m: &Tiny<f32>, x: &DVector<f32>) -> f32 {
    let y = &m.w * x + &m.b;
    y.map(|v| v * v).sum()
}

/// Central differences over every parameter of a model, in visit order.
fn model_fd<P: Params<f64> + Clone>(m: &P, f: &dyn Fn(&P) -> f64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut n = 0;
    m.visit("", &mut |_, t| n += t.as_slice().len());
    for k in 0..n {
        let bump = |d: f64| {
            let mut p = m.clone();
            let mut i = 0;
            p.visit_mut("", &mut |_, t| {
                for v in t.as_mut_slice() {
                    if i == k {
                        *v += d;
                    }
                    i += 1;
                }
            });
            f(&p)
        };
        out.push((bump(1e-6) - bump(-1e-6)) / 2e-6);
    }
    out
}

fn flat_params<T: Copy + Into<f64>, P: Params<T>>(g: &P) -> Vec<f64> {
    let mut out = Vec::new();
    g.visit("", &mut |_, t| {
        out.extend(t.as_slice().iter().map(|&v| v.into()))
    });
    out
}

#[test]
fn f64_model_with_linear_layers() {
    let mut rng = symgrad::rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let net = Net64 {
        l1: Linear::new(3, 4, &mut rng),
        l2: Linear::new(4, 2, &mut rng),
        scale: 1.5,
    };
    assert_eq!(
        net.names(),
        ["l1.weight", "l1.bias", "l2.weight", "l2.bias"]
    );
    assert_eq!(net.num_params(), 3 * 4 + 4 + 4 * 2 + 2);
    let x = DMatrix::from_fn(5, 3, |i, j| ((i * 3 + j) as f64 * 0.37).sin());
    let (y, g) = net.loss_grad(&x);
    assert_eq!(y, net.loss(&x));
    assert_eq!(g.scale, 1.5, "a skipped field is copied into the gradient");
    let want = model_fd(&net, &|m: &Net64| m.loss(&x));
    assert_close("Net64", &flat_params(&g), &want, 1e-6);
    // A few plain gradient steps lower the loss.
    let mut m = net.clone();
    for _ in 0..20 {
        let (_, g) = m.loss_grad(&x);
        symgrad::optim::gradient_step(&mut m, &g, 0.5);
    }
    assert!(m.loss(&x) < y, "{} vs {y}", m.loss(&x));
}

#[test]
fn generic_params_struct_in_f32_and_f64() {
    let w = DMatrix::from_row_slice(2, 3, &[0.5, -1.0, 0.3, 0.2, 0.8, -0.6]);
    let b = DVector::from_vec(vec![0.1, -0.2]);
    let x = DVector::from_vec(vec![1.0, 0.5, -2.0]);
    let m = Tiny {
        w: w.clone(),
        b: b.clone(),
    };
    let (_, g) = tiny_loss_grad(&m, &x);
    let want = model_fd(&m, &|m: &Tiny<f64>| tiny_loss(m, &x));
    assert_close("Tiny<f64>", &flat_params(&g), &want, 1e-6);
    // By hand: d/dw = 2 y xᵀ, d/db = 2 y.
    let y = &w * &x + &b;
    assert!((g.w.clone() - 2.0 * &y * x.transpose()).amax() < 1e-12);
    let m32 = Tiny {
        w: m32(&w),
        b: v32(&b),
    };
    let (_, g32) = tiny_loss32_grad(&m32, &v32(&x));
    assert_close("Tiny<f32>", &flat_params(&g32), &want, 2e-3);
    assert_eq!(Params::<f32>::names(&m32), ["w", "b"]);
}

#[test]
fn forward_mode_through_maps_in_control_flow() {
    let n = 4;
    let f = |x: &[f64]| m64::map_in_control_flow(&DVector::from_column_slice(&x[..n]), x[n]);
    let mut rng = R::seed_from_u64(11);
    for k in 0..20 {
        let mut x: Vec<f64> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let a: f64 = rng.gen_range(0.2..1.5);
        x.push(if k % 2 == 0 { a } else { -a });
        let d: Vec<f64> = (0..=n).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let want: f64 = fd(&f, &x).iter().zip(&d).map(|(g, d)| g * d).sum();
        let (v, dv) = (
            DVector::from_column_slice(&x[..n]),
            DVector::from_column_slice(&d[..n]),
        );
        let (_, t) = m64::map_in_control_flow_jvp(&v, x[n], &dv, d[n]);
        assert!(
            (t - want).abs() < 1e-6 * (1.0 + want.abs()),
            "{t} vs {want}"
        );
        let (_, t32) = m32::map_in_control_flow_jvp(&v32(&v), x[n] as f32, &v32(&dv), d[n] as f32);
        assert!(
            (f64::from(t32) - want).abs() < 2e-3 * (1.0 + want.abs()),
            "{t32} vs {want}"
        );
    }
}
