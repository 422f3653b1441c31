//! Golden expansions: what `#[differentiable]` writes for representative functions, as
//! `insta` snapshots in `src/snapshots/`. A change to the emitted code shows up here as a
//! diff to review: `cargo insta review -p symgrad-macro` (or `INSTA_UPDATE=always cargo
//! test -p symgrad-macro golden` and read `git diff`).

use crate::inspect::expansion;
use proc_macro2::TokenStream;
use quote::quote;
use syn::parse_quote;

/// The functions of the snapshot set, with their attribute arguments.
pub fn cases() -> Vec<(&'static str, TokenStream, syn::ItemFn)> {
    vec![
        (
            "straight_line",
            quote!(),
            parse_quote! {
                fn rosenbrock(x: f64, y: f64) -> f64 {
                    let a = 1.0 - x;
                    let b = y - x * x;
                    a * a + 100.0 * b * b
                }
            },
        ),
        (
            "math",
            quote!(),
            parse_quote! {
                fn math(x: f64, y: f64) -> f64 {
                    let s = x.sin() * y.exp();
                    s.powi(3) + x.max(y) + f64::hypot(x, 2.0) / y.sqrt()
                }
            },
        ),
        (
            "if_expression",
            quote!(),
            parse_quote! {
                fn if_expr(x: f64, y: f64) -> f64 {
                    let t = if x > y { x * y } else { x - y };
                    t * x
                }
            },
        ),
        (
            "if_statement_ending_loop_body",
            quote!(),
            parse_quote! {
                fn if_stmt(x: f64, y: f64) -> f64 {
                    let mut s = x;
                    for _ in 0..3 {
                        if s > y {
                            s = s * 0.5 + y;
                        } else {
                            s = s * s + 1.0;
                        }
                    }
                    s
                }
            },
        ),
        (
            "else_if_chain",
            quote!(),
            parse_quote! {
                fn chain(x: f64) -> f64 {
                    if x < -1.0 {
                        x * x
                    } else if x < 0.0 {
                        x.sin()
                    } else if x < 1.0 {
                        x.exp()
                    } else {
                        x
                    }
                }
            },
        ),
        (
            "loop_horner",
            quote!(wrt(x)),
            parse_quote! {
                fn horner(c: &[f64], x: f64) -> f64 {
                    let n = c.len();
                    let mut acc = 0.0;
                    for i in (0..n).rev() {
                        acc = acc * x + c[i];
                    }
                    acc
                }
            },
        ),
        (
            "loop_with_if",
            quote!(),
            parse_quote! {
                fn acc_branch(w: f64, xs: &[f64]) -> f64 {
                    let mut acc = w;
                    for i in 0..xs.len() {
                        let a = 0.5 * acc;
                        let r = if acc > xs[i] { acc * acc } else { 3.0 * a };
                        acc = r;
                    }
                    acc
                }
            },
        ),
        (
            "early_return_in_if",
            quote!(),
            parse_quote! {
                fn ret_if(x: f64, y: f64) -> f64 {
                    if x < 0.0 {
                        return x * y;
                    }
                    let t = x.sqrt();
                    t * y
                }
            },
        ),
        (
            "early_return_in_loop",
            quote!(),
            parse_quote! {
                fn ret_loop(x: f64, y: f64) -> f64 {
                    let mut acc = x;
                    for i in 0..8 {
                        acc = acc * 1.25 + y * 0.1;
                        if acc > 2.0 {
                            return acc * i as f64;
                        }
                    }
                    acc
                }
            },
        ),
        (
            "nested_loops",
            quote!(),
            parse_quote! {
                fn nested(x: f64) -> f64 {
                    let mut s = 0.0;
                    for i in 0..3 {
                        for j in 0..i {
                            s += x * j as f64;
                        }
                        s = s.sin();
                    }
                    s
                }
            },
        ),
        (
            "calls",
            quote!(),
            parse_quote! {
                fn caller(x: f64, y: f64) -> f64 {
                    let u = g(x, y);
                    other::h(u) * x
                }
            },
        ),
        (
            "slice_len_cast",
            quote!(),
            parse_quote! {
                fn mean(x: &[f64]) -> f64 {
                    let mut s = 0.0;
                    for i in 0..x.len() {
                        s += x[i];
                    }
                    s / x.len() as f64
                }
            },
        ),
        (
            "matrix_layer",
            quote!(wrt(w, b)),
            parse_quote! {
                fn layer(w: &DMatrix<f32>, b: &DMatrix<f32>, x: &DMatrix<f32>) -> f32 {
                    let z = x * w.transpose() + b;
                    relu(&z).sum()
                }
            },
        ),
        (
            "scalar_times_transpose",
            quote!(),
            parse_quote! {
                fn scaled(s: f64, w: &DMatrix<f64>) -> f64 {
                    (s * w.transpose()).sum()
                }
            },
        ),
        (
            "inactive_locals_and_wrt",
            quote!(wrt(x)),
            parse_quote! {
                fn counter(x: f64, n: usize, k: f64) -> f64 {
                    let mut c: f64 = 0.0;
                    let mut s = x;
                    for _ in 0..n {
                        c += 1.0;
                        s = s * c + x * k;
                    }
                    s
                }
            },
        ),
        (
            "matvec_index_map",
            quote!(),
            parse_quote! {
                fn head(w: &DMatrix<f64>, x: &DVector<f64>, a: f64) -> f64 {
                    let y = w * x;
                    let z = y.map(|v| v * v.tanh() + a);
                    softplus(&z).sum() + z[0] * w[(0, 1)]
                }
            },
        ),
    ]
}

#[test]
fn golden_expansions() {
    for (name, attr, item) in cases() {
        insta::assert_snapshot!(name, expansion(attr, item));
    }
}

/// Lines of the expansions against lines of the originals (rustfmt layout), printed:
/// `cargo test -p symgrad-macro expansion_size -- --nocapture`.
#[test]
fn expansion_size() {
    let (mut orig, mut emitted) = (0, 0);
    for (name, attr, item) in cases() {
        let o = crate::pretty::pretty(&quote!(#item)).lines().count();
        let g = expansion(attr, item).lines().count();
        println!(
            "{name:32} original {o:3} lines, expansion {g:4} lines ({:.1}x)",
            g as f64 / o as f64
        );
        (orig, emitted) = (orig + o, emitted + g);
    }
    println!(
        "total: original {orig} lines, expansion {emitted} lines ({:.1}x)",
        emitted as f64 / orig as f64
    );
    assert!(emitted > orig);
}
