//! Code as users write it: functions in the shapes scientists and ML engineers write (the
//! float API in method and path form, iterator idioms, statistics, quadrature, ODE steps,
//! physics energies, losses, control flow with guards and tolerances, arrays, helpers,
//! generics), laid out by rustfmt, nobody tuning them for the macro.
//!
//! Every gradient is compared with central finite differences of the ORIGINAL function at
//! random points (and, where it is short, with a derivative worked out by hand), never with
//! another output of the macro. Points where finite differences with two step sizes disagree
//! (a kink inside the stencil) are skipped, and each check asserts that most points were
//! usable. `_jvp` is checked against finite differences along a random direction, `_hvp`
//! against finite differences of `_grad` along it.

#![allow(
    dead_code,
    unused_mut,
    clippy::needless_range_loop,
    clippy::needless_return,
    clippy::assign_op_pattern,
    clippy::let_and_return,
    clippy::manual_range_contains,
    clippy::excessive_precision,
    clippy::too_many_arguments,
    clippy::type_complexity,
    clippy::approx_constant,
    clippy::neg_multiply,
    clippy::collapsible_else_if,
    clippy::single_match,
    clippy::iter_count,
    clippy::needless_late_init
)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::f64::consts::PI;
use symgrad::differentiable;
use symgrad::num_traits::Float;

mod common;
use common::{close, fd};

#[path = "common/user_style_harness.rs"]
mod harness;
use harness::*;

// ---------------------------------------------------------------------------------------
// The float API, method and path forms
// ---------------------------------------------------------------------------------------

#[differentiable]
fn cubic_and_inverse_square(x: f64) -> f64 {
    x.powi(3) - 2.0 * x.powi(-2)
}

#[differentiable]
fn power_law(x: f64, y: f64) -> f64 {
    x.powf(y) + 2.0_f64.powf(y)
}

#[differentiable]
fn path_forms(x: f64, y: f64) -> f64 {
    f64::exp(x) + f64::sin(y) * f64::sqrt(x) - f64::ln(x) + f64::powi(y, 2) + f64::max(x, y)
}

#[differentiable]
fn all_the_logs(x: f64, b: f64) -> f64 {
    x.log(b) + x.log2() + x.log10() + x.ln()
}

#[differentiable]
fn roots(x: f64, y: f64) -> f64 {
    x.sqrt() * y.cbrt() + f64::cbrt(x * y)
}

#[differentiable]
fn polar_parts(x: f64, y: f64) -> f64 {
    let r = x.hypot(y);
    let theta = y.atan2(x);
    r * theta.cos() + f64::hypot(x, 2.0) + f64::atan2(x, y)
}

#[differentiable]
fn hyperbolic(x: f64, y: f64) -> f64 {
    x.tanh() * y.sinh() + x.cosh() - f64::tanh(y)
}

#[differentiable]
fn abs_and_sign(x: f64, y: f64) -> f64 {
    x.abs() * y.signum() + (x * y).abs() + f64::abs(y - 0.25)
}

#[differentiable]
fn max_and_min(x: f64, y: f64) -> f64 {
    x.max(y) - x.min(2.0 * y) + x.max(0.5) + f64::min(y, 0.1)
}

#[differentiable]
fn fused_multiply_add(x: f64, y: f64, z: f64) -> f64 {
    x.mul_add(y, z) + f64::mul_add(x, 2.0, y) * z
}

#[differentiable]
fn reciprocals(x: f64, y: f64) -> f64 {
    x.recip() + (x * y).recip() + 1.0 / y
}

#[differentiable]
fn with_constants(x: f64, y: f64) -> f64 {
    let area = PI * x * x;
    let tau = std::f64::consts::TAU * y;
    area + tau + f64::EPSILON * y + std::f64::consts::E.powf(x) + std::f64::consts::LN_2 * x
}

#[differentiable]
fn base_two(x: f64, y: f64) -> f64 {
    x.exp2() + f64::exp2(y) * x.log2()
}

#[differentiable]
fn trig(x: f64, y: f64) -> f64 {
    x.sin() * y.cos() + x.tan() + (0.5 * x).asin() + (0.3 * y).acos() + x.atan()
}

#[differentiable]
fn negations_and_literals(x: f64, y: f64) -> f64 {
    -x.powi(2) + (-x).exp() + 1.0f64 / y - 3_f64 * x + 0.5_f64.powf(y) + 2. * -y
}

#[test]
fn float_api_f64() {
    check(
        "cubic_and_inverse_square",
        1,
        0.5,
        2.0,
        &|p| cubic_and_inverse_square(p[0]),
        &|p| s1(cubic_and_inverse_square_grad(p[0])),
    );
    // by hand: 3x² + 4x⁻³
    for x in [0.7, 1.3, -2.0] {
        let (_, g) = cubic_and_inverse_square_grad(x);
        assert_near("d(x³ - 2x⁻²)/dx", g, 3.0 * x * x + 4.0 / (x * x * x));
    }
    check("power_law", 2, 0.5, 2.0, &|p| power_law(p[0], p[1]), &|p| {
        s2(power_law_grad(p[0], p[1]))
    });
    // by hand: d/dx = y x^(y-1), d/dy = x^y ln x + 2^y ln 2
    let (x, y) = (1.7, 0.6);
    let (_, (gx, gy)) = power_law_grad(x, y);
    assert_near("d/dx x^y", gx, y * x.powf(y - 1.0));
    assert_near(
        "d/dy",
        gy,
        x.powf(y) * x.ln() + 2.0f64.powf(y) * 2.0f64.ln(),
    );
    check(
        "path_forms",
        2,
        0.5,
        2.0,
        &|p| path_forms(p[0], p[1]),
        &|p| s2(path_forms_grad(p[0], p[1])),
    );
    check(
        "all_the_logs",
        2,
        1.5,
        4.0,
        &|p| all_the_logs(p[0], p[1]),
        &|p| s2(all_the_logs_grad(p[0], p[1])),
    );
    check("roots", 2, 0.3, 3.0, &|p| roots(p[0], p[1]), &|p| {
        s2(roots_grad(p[0], p[1]))
    });
    check(
        "polar_parts",
        2,
        -2.0,
        2.0,
        &|p| polar_parts(p[0], p[1]),
        &|p| s2(polar_parts_grad(p[0], p[1])),
    );
    check(
        "hyperbolic",
        2,
        -2.0,
        2.0,
        &|p| hyperbolic(p[0], p[1]),
        &|p| s2(hyperbolic_grad(p[0], p[1])),
    );
    check(
        "abs_and_sign",
        2,
        -2.0,
        2.0,
        &|p| abs_and_sign(p[0], p[1]),
        &|p| s2(abs_and_sign_grad(p[0], p[1])),
    );
    check(
        "max_and_min",
        2,
        -2.0,
        2.0,
        &|p| max_and_min(p[0], p[1]),
        &|p| s2(max_and_min_grad(p[0], p[1])),
    );
    check(
        "fused_multiply_add",
        3,
        -2.0,
        2.0,
        &|p| fused_multiply_add(p[0], p[1], p[2]),
        &|p| s3(fused_multiply_add_grad(p[0], p[1], p[2])),
    );
    check(
        "reciprocals",
        2,
        0.5,
        2.0,
        &|p| reciprocals(p[0], p[1]),
        &|p| s2(reciprocals_grad(p[0], p[1])),
    );
    check(
        "with_constants",
        2,
        -1.0,
        1.0,
        &|p| with_constants(p[0], p[1]),
        &|p| s2(with_constants_grad(p[0], p[1])),
    );
    // by hand: d/dx = 2πx + e^x + ln 2, d/dy = 2π + ε
    let (_, (gx, gy)) = with_constants_grad(0.3, 0.1);
    assert_near("d area/dx", gx, 2.0 * PI * 0.3 + 0.3f64.exp() + 2.0f64.ln());
    assert_near("d tau/dy", gy, 2.0 * PI + f64::EPSILON);
    check("base_two", 2, 0.5, 2.0, &|p| base_two(p[0], p[1]), &|p| {
        s2(base_two_grad(p[0], p[1]))
    });
    check("trig", 2, -1.0, 1.0, &|p| trig(p[0], p[1]), &|p| {
        s2(trig_grad(p[0], p[1]))
    });
    check(
        "negations_and_literals",
        2,
        0.5,
        2.0,
        &|p| negations_and_literals(p[0], p[1]),
        &|p| s2(negations_and_literals_grad(p[0], p[1])),
    );
}

// ---------------------------------------------------------------------------------------
// Float methods that were rejected ("method is not supported") although users reach for
// them: exp_m1, ln_1p, asinh, acosh, atanh (rules of their own), clamp, to_radians,
// to_degrees, sin_cos (written with other rules, with the same value)
// ---------------------------------------------------------------------------------------

#[differentiable]
fn accurate_near_zero(x: f64, y: f64) -> f64 {
    x.exp_m1() * y.ln_1p() + f64::exp_m1(y) - f64::ln_1p(x * x)
}

#[differentiable]
fn inverse_hyperbolic(x: f64, y: f64) -> f64 {
    x.asinh() + (1.5 + y * y).acosh() + (0.5 * y).atanh() + f64::asinh(x * y)
}

#[differentiable]
fn clamped(x: f64, lo: f64, hi: f64) -> f64 {
    let c = x.clamp(lo, lo + hi.abs() + 0.1);
    c * c + f64::clamp(x * 2.0, -1.0, 1.0)
}

#[differentiable]
fn angles(deg: f64, rad: f64) -> f64 {
    let theta = deg.to_radians();
    let (s, c) = theta.sin_cos();
    s * c + rad.to_degrees() * 0.01 + f64::sin_cos(rad).0
}

#[differentiable]
fn rotate_point(angle_deg: f64, x: f64, y: f64) -> f64 {
    let sc = angle_deg.to_radians().sin_cos();
    let xr = x * sc.1 - y * sc.0;
    let yr = x * sc.0 + y * sc.1;
    xr * xr + 3.0 * yr
}

#[differentiable]
fn more_methods_f32(x: f32, y: f32) -> f32 {
    let (s, c) = x.sin_cos();
    x.exp_m1() + y.ln_1p() + x.asinh() + s * c + x.clamp(-0.5, 0.5) + y.to_radians()
}

#[differentiable(forward, reverse)]
fn more_methods_fwd(x: f64, y: f64) -> f64 {
    let (s, c) = x.sin_cos();
    x.exp_m1() * y.ln_1p()
        + y.asinh()
        + (0.3 * x).atanh()
        + s * c
        + y.clamp(-0.5, 0.5)
        + x.to_degrees()
}

#[differentiable(hessian)]
fn more_methods_hess(x: f64, y: f64) -> f64 {
    x.exp_m1() * y.ln_1p()
        + (x * y).asinh()
        + (0.3 * x).atanh()
        + (2.0 + y * y).acosh()
        + x.clamp(-0.5, 0.5) * y
        + x.to_radians() * y
}

#[test]
fn float_methods_with_new_rules() {
    check(
        "accurate_near_zero",
        2,
        -0.9,
        2.0,
        &|p| accurate_near_zero(p[0], p[1]),
        &|p| s2(accurate_near_zero_grad(p[0], p[1])),
    );
    // by hand: d/dx = e^x ln(1 + y) - 2x / (1 + x²), d/dy = (e^x - 1) / (1 + y) + e^y
    let (x, y): (f64, f64) = (0.3, 0.7);
    let (v, (gx, gy)) = accurate_near_zero_grad(x, y);
    assert_eq!(v, accurate_near_zero(x, y));
    assert_near(
        "d/dx",
        gx,
        x.exp() * (1.0 + y).ln() - 2.0 * x / (1.0 + x * x),
    );
    assert_near("d/dy", gy, x.exp_m1() / (1.0 + y) + y.exp());
    // tiny arguments keep their precision in the value
    let (v, _) = accurate_near_zero_grad(1e-12, 1e-12);
    assert_eq!(v, accurate_near_zero(1e-12, 1e-12));
    check(
        "inverse_hyperbolic",
        2,
        -1.5,
        1.5,
        &|p| inverse_hyperbolic(p[0], p[1]),
        &|p| s2(inverse_hyperbolic_grad(p[0], p[1])),
    );
    let (_, (gx, _)) = inverse_hyperbolic_grad(0.5, 0.0);
    assert_near("d asinh", gx, 1.0 / 1.25f64.sqrt());
    check(
        "clamped",
        3,
        -2.0,
        2.0,
        &|p| clamped(p[0], p[1], p[2]),
        &|p| s3(clamped_grad(p[0], p[1], p[2])),
    );
    // by hand: inside the interval only x moves; below it the lower bound
    assert_eq!(clamped_grad(0.2, -1.0, 5.0).1, (0.4 + 2.0, 0.0, 0.0));
    assert_eq!(clamped_grad(-3.0, -1.0, 5.0).1, (0.0, -2.0, 0.0));
    check(
        "angles",
        2,
        -90.0,
        90.0,
        &|p| angles(p[0], p[1] / 30.0),
        &|p| {
            let (v, (a, b)) = angles_grad(p[0], p[1] / 30.0);
            (v, vec![a, b / 30.0])
        },
    );
    // by hand: d/d deg of sin θ cos θ = cos 2θ · π/180
    let (_, (gd, _)) = angles_grad(30.0, 0.0);
    assert_near("d/d deg", gd, (PI / 3.0).cos() * PI / 180.0);
    assert_eq!(angles(30.0, 0.4), angles_grad(30.0, 0.4).0);
    check(
        "rotate_point",
        3,
        -2.0,
        2.0,
        &|p| rotate_point(p[0] * 60.0, p[1], p[2]),
        &|p| {
            let (v, (a, b, c)) = rotate_point_grad(p[0] * 60.0, p[1], p[2]);
            (v, vec![a * 60.0, b, c])
        },
    );
    check32(
        "more_methods_f32",
        2,
        -0.9,
        0.9,
        &|p| more_methods_f32(p[0] as f32, p[1] as f32) as f64,
        &|p| t2(more_methods_f32_grad(p[0] as f32, p[1] as f32)),
    );
    check_jvp(
        "more_methods_fwd",
        2,
        -0.9,
        0.9,
        &|p| more_methods_fwd(p[0], p[1]),
        &|p, v| more_methods_fwd_jvp(p[0], p[1], v[0], v[1]),
    );
    check(
        "more_methods_fwd",
        2,
        -0.9,
        0.9,
        &|p| more_methods_fwd(p[0], p[1]),
        &|p| s2(more_methods_fwd_grad(p[0], p[1])),
    );
    check_hvp(
        "more_methods_hess",
        2,
        -0.9,
        0.9,
        &|p| more_methods_hess(p[0], p[1]),
        &|p| s2(more_methods_hess_grad(p[0], p[1])),
        &|p, v| {
            let (y, (g0, g1), (h0, h1)) = more_methods_hess_hvp(p[0], p[1], v[0], v[1]);
            (y, vec![g0, g1], vec![h0, h1])
        },
    );
}

// ---------------------------------------------------------------------------------------
// f32
// ---------------------------------------------------------------------------------------

#[differentiable]
fn powers_f32(x: f32, y: f32) -> f32 {
    x.powi(3) + x.powf(y) + f32::exp(y) - x.ln() + y.exp2()
}

#[differentiable]
fn roots_and_trig_f32(x: f32, y: f32) -> f32 {
    x.sqrt() * y.tanh() + x.hypot(y) + y.atan2(x) + x.cbrt() + y.sinh()
}

#[differentiable]
fn kinks_f32(x: f32, y: f32) -> f32 {
    x.max(y) + x.min(0.2) + (x - y).abs() + x.mul_add(y, 1.0) + x.recip()
}

#[differentiable]
fn circle_f32(r: f32) -> f32 {
    std::f32::consts::PI * r * r + f32::EPSILON
}

#[differentiable]
fn sum_of_squares_f32(xs: &[f32]) -> f32 {
    xs.iter().map(|x| x * x).sum::<f32>()
}

#[differentiable]
fn loop_f32(x: f32, ws: &[f32]) -> f32 {
    let mut acc: f32 = 0.0;
    for (i, w) in ws.iter().enumerate() {
        acc += w * (x * i as f32).sin();
    }
    acc
}

#[test]
fn float_api_f32() {
    check32(
        "powers_f32",
        2,
        0.5,
        2.0,
        &|p| powers_f32(p[0] as f32, p[1] as f32) as f64,
        &|p| t2(powers_f32_grad(p[0] as f32, p[1] as f32)),
    );
    check32(
        "roots_and_trig_f32",
        2,
        0.5,
        2.0,
        &|p| roots_and_trig_f32(p[0] as f32, p[1] as f32) as f64,
        &|p| t2(roots_and_trig_f32_grad(p[0] as f32, p[1] as f32)),
    );
    check32(
        "kinks_f32",
        2,
        0.3,
        2.0,
        &|p| kinks_f32(p[0] as f32, p[1] as f32) as f64,
        &|p| t2(kinks_f32_grad(p[0] as f32, p[1] as f32)),
    );
    let (_, g) = circle_f32_grad(1.5);
    assert!((g - 3.0 * std::f32::consts::PI).abs() < 1e-5);
    check32(
        "circle_f32",
        1,
        0.1,
        2.0,
        &|p| circle_f32(p[0] as f32) as f64,
        &|p| t1(circle_f32_grad(p[0] as f32)),
    );
    check32(
        "sum_of_squares_f32",
        4,
        -2.0,
        2.0,
        &|p| sum_of_squares_f32(&v32(p)) as f64,
        &|p| tv(sum_of_squares_f32_grad(&v32(p))),
    );
    check32(
        "loop_f32",
        4,
        -1.0,
        1.0,
        &|p| loop_f32(p[0] as f32, &v32(&p[1..])) as f64,
        &|p| {
            let (v, (gx, gw)) = loop_f32_grad(p[0] as f32, &v32(&p[1..]));
            let mut g = vec![gx as f64];
            g.extend(gw.iter().map(|&v| v as f64));
            (v as f64, g)
        },
    );
}

// ---------------------------------------------------------------------------------------
// Iterator and loop idioms
// ---------------------------------------------------------------------------------------

#[differentiable]
fn weighted_by_position(xs: &[f64]) -> f64 {
    let mut acc = 0.0;
    for (i, x) in xs.iter().enumerate() {
        acc += (i as f64 + 1.0) * x * x;
    }
    acc
}

#[differentiable]
fn sum_of_sines(xs: &[f64]) -> f64 {
    let mut total = 0.0;
    for &x in xs {
        total += x.sin();
    }
    total
}

#[differentiable]
fn reversed_accumulation(xs: &[f64]) -> f64 {
    let mut acc = 0.0;
    for x in xs.iter().rev() {
        acc = acc * 0.5 + x;
    }
    acc
}

#[differentiable]
fn pairs_by_step(xs: &[f64]) -> f64 {
    let n = xs.len();
    let mut acc = 0.0;
    for i in (0..n).step_by(2) {
        acc += xs[i] * xs[i + 1];
    }
    acc
}

#[differentiable]
fn squares_mapped(xs: &[f64]) -> f64 {
    xs.iter().map(|x| x * x).sum::<f64>()
}

#[differentiable]
fn mean_squared_error(xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len();
    xs.iter().zip(ys).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / n as f64
}

#[differentiable]
fn discounted(xs: &[f64]) -> f64 {
    xs.iter().fold(0.0, |acc, x| acc * 0.9 + x.powi(2))
}

#[differentiable]
fn exp_sum_copied(xs: &[f64]) -> f64 {
    xs.iter().copied().map(|x| x.exp()).sum::<f64>()
}

#[differentiable]
fn roughness(xs: &[f64]) -> f64 {
    xs.windows(2).map(|w| (w[1] - w[0]).powi(2)).sum::<f64>()
}

#[differentiable]
fn product_of_all(xs: &[f64]) -> f64 {
    xs.iter().product::<f64>()
}

#[differentiable]
fn dot_by_zip(xs: &[f64], ys: &[f64]) -> f64 {
    xs.iter().zip(ys.iter()).map(|(x, y)| x * y).sum()
}

#[differentiable]
fn squares_by_ref_pattern(xs: &[f64]) -> f64 {
    let s: f64 = xs.iter().map(|&x| x * x * x).sum();
    s
}

#[differentiable]
fn laplacian_energy(xs: &[f64]) -> f64 {
    let mut e = 0.0;
    for i in 1..xs.len() - 1 {
        let lap = xs[i - 1] - 2.0 * xs[i] + xs[i + 1];
        e += lap * lap;
    }
    e
}

#[differentiable]
fn running_max(xs: &[f64]) -> f64 {
    let mut best = f64::NEG_INFINITY;
    for &x in xs {
        if x > best {
            best = x;
        }
    }
    best * best
}

#[differentiable]
fn skip_and_take(xs: &[f64]) -> f64 {
    xs.iter().skip(1).take(3).map(|x| x.sin()).sum::<f64>()
}

#[differentiable]
fn count_and_sum(xs: &[f64]) -> f64 {
    let n = xs.iter().count() as f64;
    xs.iter().sum::<f64>() / n
}

#[test]
fn iterator_idioms() {
    check(
        "weighted_by_position",
        4,
        -2.0,
        2.0,
        &|p| weighted_by_position(p),
        &|p| weighted_by_position_grad(p),
    );
    // by hand: 2 (i + 1) x_i
    let (_, g) = weighted_by_position_grad(&[1.0, 2.0, 3.0]);
    assert_eq!(g, vec![2.0, 8.0, 18.0]);
    check("sum_of_sines", 4, -2.0, 2.0, &|p| sum_of_sines(p), &|p| {
        sum_of_sines_grad(p)
    });
    check(
        "reversed_accumulation",
        4,
        -2.0,
        2.0,
        &|p| reversed_accumulation(p),
        &|p| reversed_accumulation_grad(p),
    );
    // by hand: the first element is added last: weights 1, 1/2, 1/4, 1/8
    let (_, g) = reversed_accumulation_grad(&[1.0, 2.0, 3.0, 4.0]);
    assert_eq!(g, vec![1.0, 0.5, 0.25, 0.125]);
    check("pairs_by_step", 6, -2.0, 2.0, &|p| pairs_by_step(p), &|p| {
        pairs_by_step_grad(p)
    });
    check(
        "squares_mapped",
        5,
        -2.0,
        2.0,
        &|p| squares_mapped(p),
        &|p| squares_mapped_grad(p),
    );
    check(
        "mean_squared_error",
        6,
        -2.0,
        2.0,
        &|p| mean_squared_error(&p[..3], &p[3..]),
        &|p| svv(mean_squared_error_grad(&p[..3], &p[3..])),
    );
    // by hand: 2 (x - y) / n
    let (_, (gx, gy)) = mean_squared_error_grad(&[1.0, 2.0], &[0.0, 4.0]);
    assert_eq!((gx, gy), (vec![1.0, -2.0], vec![-1.0, 2.0]));
    check("discounted", 4, -2.0, 2.0, &|p| discounted(p), &|p| {
        discounted_grad(p)
    });
    check(
        "exp_sum_copied",
        4,
        -2.0,
        2.0,
        &|p| exp_sum_copied(p),
        &|p| exp_sum_copied_grad(p),
    );
    check("roughness", 5, -2.0, 2.0, &|p| roughness(p), &|p| {
        roughness_grad(p)
    });
    check(
        "product_of_all",
        4,
        0.5,
        2.0,
        &|p| product_of_all(p),
        &|p| product_of_all_grad(p),
    );
    check(
        "dot_by_zip",
        6,
        -2.0,
        2.0,
        &|p| dot_by_zip(&p[..3], &p[3..]),
        &|p| svv(dot_by_zip_grad(&p[..3], &p[3..])),
    );
    check(
        "squares_by_ref_pattern",
        4,
        -2.0,
        2.0,
        &|p| squares_by_ref_pattern(p),
        &|p| squares_by_ref_pattern_grad(p),
    );
    check(
        "laplacian_energy",
        6,
        -2.0,
        2.0,
        &|p| laplacian_energy(p),
        &|p| laplacian_energy_grad(p),
    );
    check("running_max", 5, -2.0, 2.0, &|p| running_max(p), &|p| {
        running_max_grad(p)
    });
    check("skip_and_take", 5, -2.0, 2.0, &|p| skip_and_take(p), &|p| {
        skip_and_take_grad(p)
    });
    check("count_and_sum", 5, -2.0, 2.0, &|p| count_and_sum(p), &|p| {
        count_and_sum_grad(p)
    });
}

// ---------------------------------------------------------------------------------------
// Statistics of a slice
// ---------------------------------------------------------------------------------------

#[differentiable]
fn mean(xs: &[f64]) -> f64 {
    let n = xs.len() as f64;
    xs.iter().sum::<f64>() / n
}

#[differentiable]
fn variance(xs: &[f64]) -> f64 {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
}

#[differentiable]
fn std_dev(xs: &[f64]) -> f64 {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    var.sqrt()
}

#[differentiable]
fn log_sum_exp(xs: &[f64]) -> f64 {
    let m = xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let s: f64 = xs.iter().map(|x| (x - m).exp()).sum();
    m + s.ln()
}

#[differentiable]
fn softmax_cross_entropy(logits: &[f64], target: usize) -> f64 {
    let mut m = logits[0];
    for &z in logits.iter() {
        m = m.max(z);
    }
    let mut sum_exp = 0.0;
    for z in logits {
        sum_exp += (z - m).exp();
    }
    let lse = m + sum_exp.ln();
    lse - logits[target]
}

#[differentiable]
fn centered_sum_of_squares(xs: &[f64]) -> f64 {
    let m = mean(xs);
    let mut ss = 0.0;
    for x in xs {
        ss += (x - m) * (x - m);
    }
    ss
}

#[differentiable]
fn cosine_similarity(a: &[f64], b: &[f64]) -> f64 {
    let mut dot = 0.0;
    let mut na = 0.0;
    let mut nb = 0.0;
    for i in 0..a.len() {
        dot += a[i] * b[i];
        na += a[i] * a[i];
        nb += b[i] * b[i];
    }
    dot / (na.sqrt() * nb.sqrt())
}

#[differentiable]
fn gaussian_log_likelihood(mu: f64, sigma: f64, xs: &[f64]) -> f64 {
    let mut ll = 0.0;
    for &x in xs {
        let z = (x - mu) / sigma;
        ll += -0.5 * z * z - sigma.ln() - 0.5 * (2.0 * PI).ln();
    }
    ll
}

#[test]
fn statistics() {
    check("mean", 5, -2.0, 2.0, &|p| mean(p), &|p| mean_grad(p));
    check("variance", 5, -2.0, 2.0, &|p| variance(p), &|p| {
        variance_grad(p)
    });
    // by hand: d var/dx_i = 2 (x_i - mean) / (n - 1)
    let (_, g) = variance_grad(&[1.0, 2.0, 6.0]);
    assert_eq!(g, vec![-2.0, -1.0, 3.0]);
    check("std_dev", 5, -2.0, 2.0, &|p| std_dev(p), &|p| {
        std_dev_grad(p)
    });
    check("log_sum_exp", 5, -2.0, 2.0, &|p| log_sum_exp(p), &|p| {
        log_sum_exp_grad(p)
    });
    // by hand: the gradient of log-sum-exp is the softmax
    let xs = [0.1, -0.4, 1.2];
    let z: f64 = xs.iter().map(|x| x.exp()).sum();
    let (_, g) = log_sum_exp_grad(&xs);
    for i in 0..3 {
        assert_near("softmax", g[i], xs[i].exp() / z);
    }
    for target in 0..4 {
        check(
            &format!("softmax_cross_entropy/{target}"),
            4,
            -2.0,
            2.0,
            &|p| softmax_cross_entropy(p, target),
            &|p| softmax_cross_entropy_grad(p, target),
        );
    }
    check(
        "centered_sum_of_squares",
        4,
        -2.0,
        2.0,
        &|p| centered_sum_of_squares(p),
        &|p| centered_sum_of_squares_grad(p),
    );
    check(
        "cosine_similarity",
        6,
        0.2,
        2.0,
        &|p| cosine_similarity(&p[..3], &p[3..]),
        &|p| svv(cosine_similarity_grad(&p[..3], &p[3..])),
    );
    let xs = [0.3, -1.2, 2.0];
    check(
        "gaussian_log_likelihood",
        2,
        0.5,
        2.0,
        &|p| gaussian_log_likelihood(p[0], p[1], &xs),
        &|p| {
            let (v, (a, b, _)) = gaussian_log_likelihood_grad(p[0], p[1], &xs);
            (v, vec![a, b])
        },
    );
}

// ---------------------------------------------------------------------------------------
// Numerical methods: polynomials, quadrature, ODE steps
// ---------------------------------------------------------------------------------------

#[differentiable]
fn horner(x: f64, coeffs: &[f64]) -> f64 {
    let mut y = 0.0;
    for &c in coeffs.iter().rev() {
        y = y * x + c;
    }
    y
}

#[differentiable]
fn poly_by_powers(x: f64, coeffs: &[f64]) -> f64 {
    let mut s = 0.0;
    for (i, c) in coeffs.iter().enumerate() {
        s += c * x.powi(i as i32);
    }
    s
}

#[differentiable]
fn trapezoid(a: f64, b: f64, n: usize) -> f64 {
    let f = |t: f64| (t * t).sin();
    let h = (b - a) / n as f64;
    let mut s = 0.5 * (f(a) + f(b));
    for i in 1..n {
        s += f(a + i as f64 * h);
    }
    s * h
}

#[differentiable]
fn integrand(t: f64, k: f64) -> f64 {
    (-k * t * t).exp()
}

#[differentiable]
fn simpson(k: f64, b: f64) -> f64 {
    let n = 8;
    let h = b / n as f64;
    let mut s = integrand(0.0, k) + integrand(b, k);
    for i in 1..n {
        let w = if i % 2 == 0 { 2.0 } else { 4.0 };
        s += w * integrand(i as f64 * h, k);
    }
    s * h / 3.0
}

#[differentiable]
fn euler_decay(k: f64, y0: f64) -> f64 {
    let dt = 0.1;
    let mut y = y0;
    for _ in 0..10 {
        y += dt * (-k * y);
    }
    y
}

#[differentiable]
fn rhs(t: f64, y: f64, k: f64) -> f64 {
    -k * y + t.sin()
}

#[differentiable]
fn rk4(k: f64, y0: f64) -> f64 {
    let h = 0.05;
    let mut t = 0.0;
    let mut y = y0;
    for _step in 0..20 {
        let k1 = rhs(t, y, k);
        let k2 = rhs(t + h / 2.0, y + h * k1 / 2.0, k);
        let k3 = rhs(t + h / 2.0, y + h * k2 / 2.0, k);
        let k4 = rhs(t + h, y + h * k3, k);
        y += h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4);
        t += h;
    }
    y
}

#[differentiable]
fn oscillator_rk4(omega: f64, x0: f64, v0: f64) -> f64 {
    let dt = 0.1;
    let mut state = [x0, v0];
    for _ in 0..10 {
        let f = |s: [f64; 2]| [s[1], -omega * omega * s[0]];
        let k1 = f(state);
        let k2 = f([state[0] + 0.5 * dt * k1[0], state[1] + 0.5 * dt * k1[1]]);
        let k3 = f([state[0] + 0.5 * dt * k2[0], state[1] + 0.5 * dt * k2[1]]);
        let k4 = f([state[0] + dt * k3[0], state[1] + dt * k3[1]]);
        state[0] += dt / 6.0 * (k1[0] + 2.0 * k2[0] + 2.0 * k3[0] + k4[0]);
        state[1] += dt / 6.0 * (k1[1] + 2.0 * k2[1] + 2.0 * k3[1] + k4[1]);
    }
    state[0]
}

#[differentiable]
fn newton_sqrt(a: f64) -> f64 {
    let mut y = a;
    while (y * y - a).abs() > 1e-12 * a {
        y = 0.5 * (y + a / y);
    }
    y
}

#[differentiable]
fn fixed_point_cos(c: f64) -> f64 {
    let mut x = 0.0;
    let mut iter = 0;
    loop {
        let next = (c * x).cos();
        if (next - x).abs() < 1e-13 || iter >= 200 {
            break next;
        }
        x = next;
        iter += 1;
    }
}

#[test]
fn numerical_methods() {
    let cs = [1.0, -2.0, 0.5, 3.0];
    check("horner", 5, -1.5, 1.5, &|p| horner(p[0], &p[1..]), &|p| {
        sxv(horner_grad(p[0], &p[1..]))
    });
    // by hand: p'(x) = -2 + x + 9x², dp/dc_i = x^i
    let (_, (gx, gc)) = horner_grad(2.0, &cs);
    assert_eq!(gx, -2.0 + 2.0 + 36.0);
    assert_eq!(gc, vec![1.0, 2.0, 4.0, 8.0]);
    check(
        "poly_by_powers",
        5,
        -1.5,
        1.5,
        &|p| poly_by_powers(p[0], &p[1..]),
        &|p| sxv(poly_by_powers_grad(p[0], &p[1..])),
    );
    check(
        "trapezoid",
        2,
        -1.0,
        1.5,
        &|p| trapezoid(p[0], p[1], 16),
        &|p| s2(trapezoid_grad(p[0], p[1], 16)),
    );
    check("simpson", 2, 0.2, 2.0, &|p| simpson(p[0], p[1]), &|p| {
        s2(simpson_grad(p[0], p[1]))
    });
    check(
        "euler_decay",
        2,
        0.0,
        2.0,
        &|p| euler_decay(p[0], p[1]),
        &|p| s2(euler_decay_grad(p[0], p[1])),
    );
    // by hand: y = y0 (1 - 0.1 k)^10
    let (k, y0) = (0.7, 1.3);
    let (_, (gk, gy0)) = euler_decay_grad(k, y0);
    assert!(close(gk, -y0 * (1.0 - 0.1 * k).powi(9), 1e-12));
    assert!(close(gy0, (1.0 - 0.1 * k).powi(10), 1e-12));
    check("rk4", 2, 0.0, 2.0, &|p| rk4(p[0], p[1]), &|p| {
        s2(rk4_grad(p[0], p[1]))
    });
    check(
        "oscillator_rk4",
        3,
        0.5,
        2.0,
        &|p| oscillator_rk4(p[0], p[1], p[2]),
        &|p| s3(oscillator_rk4_grad(p[0], p[1], p[2])),
    );
    check("newton_sqrt", 1, 0.5, 9.0, &|p| newton_sqrt(p[0]), &|p| {
        s1(newton_sqrt_grad(p[0]))
    });
    // by hand: 1 / (2 √a)
    let (v, g) = newton_sqrt_grad(4.0);
    assert!(close(v, 2.0, 1e-12) && close(g, 0.25, 1e-9), "{v} {g}");
    check(
        "fixed_point_cos",
        1,
        0.2,
        0.9,
        &|p| fixed_point_cos(p[0]),
        &|p| s1(fixed_point_cos_grad(p[0])),
    );
}

// ---------------------------------------------------------------------------------------
// Physics
// ---------------------------------------------------------------------------------------

const GRAVITY: f64 = 9.81;

#[differentiable]
fn spring_chain_energy(x: &[f64], v: &[f64], k: f64, m: f64) -> f64 {
    let mut kinetic = 0.0;
    for vi in v {
        kinetic += 0.5 * m * vi * vi;
    }
    let mut potential = 0.0;
    for i in 0..x.len() - 1 {
        let stretch = x[i + 1] - x[i] - 1.0;
        potential += 0.5 * k * stretch * stretch;
    }
    kinetic + potential + m * GRAVITY * x[0]
}

#[differentiable]
fn lennard_jones(pos: &[f64], eps: f64, sigma: f64) -> f64 {
    let n = pos.len() / 3;
    let mut energy = 0.0;
    for i in 0..n {
        for j in i + 1..n {
            let dx = pos[3 * i] - pos[3 * j];
            let dy = pos[3 * i + 1] - pos[3 * j + 1];
            let dz = pos[3 * i + 2] - pos[3 * j + 2];
            let r2 = dx * dx + dy * dy + dz * dz;
            let s6 = (sigma * sigma / r2).powi(3);
            energy += 4.0 * eps * (s6 * s6 - s6);
        }
    }
    energy
}

#[differentiable]
fn pendulum_energy(theta: f64, omega: f64, length: f64) -> f64 {
    const MASS: f64 = 2.0;
    let kinetic = 0.5 * MASS * (length * omega).powi(2);
    let height: f64 = length * (1.0 - theta.cos());
    kinetic + MASS * GRAVITY * height
}

#[differentiable]
fn projectile_range(speed: f64, angle_deg: f64) -> f64 {
    let angle = angle_deg * PI / 180.0;
    let (vx, vy) = (speed * angle.cos(), speed * angle.sin());
    let t_flight = 2.0 * vy / GRAVITY;
    vx * t_flight
}

#[test]
fn physics() {
    let f = |p: &[f64]| spring_chain_energy(&p[..3], &p[3..6], p[6], p[7]);
    let g = |p: &[f64]| {
        let (v, (gx, gv, gk, gm)) = spring_chain_energy_grad(&p[..3], &p[3..6], p[6], p[7]);
        let mut out = gx;
        out.extend(gv);
        out.push(gk);
        out.push(gm);
        (v, out)
    };
    check("spring_chain_energy", 8, 0.5, 2.0, &f, &g);
    let f = |p: &[f64]| lennard_jones(&p[..9], p[9], p[10]);
    let g = |p: &[f64]| {
        let (v, (gp, ge, gs)) = lennard_jones_grad(&p[..9], p[9], p[10]);
        let mut out = gp;
        out.push(ge);
        out.push(gs);
        (v, out)
    };
    // three particles near the corners of a triangle, away from each other
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for _ in 0..10 {
        let mut p: Vec<f64> = vec![0.0, 0.0, 0.0, 1.2, 0.0, 0.0, 0.0, 1.2, 0.0, 1.0, 1.0];
        for v in p.iter_mut() {
            *v += rng.gen_range(-0.1..0.1);
        }
        let want = fd(&f, &p, 1e-7);
        let (v, got) = g(&p);
        assert_eq!(v, f(&p));
        for k in 0..11 {
            assert!(
                close(got[k], want[k], 1e-5),
                "lennard_jones {k}: {} vs {}",
                got[k],
                want[k]
            );
        }
    }
    // by hand, two particles at distance r: E = 4ε((σ/r)¹² - (σ/r)⁶), dE/dx0 = -dE/dr
    let r: f64 = 1.3;
    let (_, (gp, _, _)) = lennard_jones_grad(&[0.0, 0.0, 0.0, r, 0.0, 0.0], 1.0, 1.0);
    let de_dr = 4.0 * (-12.0 / r.powi(13) + 6.0 / r.powi(7));
    assert!(close(gp[0], -de_dr, 1e-12) && close(gp[3], de_dr, 1e-12));
    check(
        "pendulum_energy",
        3,
        0.2,
        2.0,
        &|p| pendulum_energy(p[0], p[1], p[2]),
        &|p| s3(pendulum_energy_grad(p[0], p[1], p[2])),
    );
    check(
        "projectile_range",
        2,
        10.0,
        80.0,
        &|p| projectile_range(p[0], p[1]),
        &|p| s2(projectile_range_grad(p[0], p[1])),
    );
}

// ---------------------------------------------------------------------------------------
// Machine learning losses
// ---------------------------------------------------------------------------------------

#[differentiable]
fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

#[differentiable]
fn logistic_loss(w: &[f64], b: f64, xs: &[f64], ys: &[f64]) -> f64 {
    let d = w.len();
    let n = ys.len();
    let mut loss = 0.0;
    for i in 0..n {
        let mut z = b;
        for j in 0..d {
            z += w[j] * xs[i * d + j];
        }
        let p = sigmoid(z);
        loss -= ys[i] * p.ln() + (1.0 - ys[i]) * (1.0 - p).ln();
    }
    loss / n as f64
}

#[differentiable]
fn huber(pred: f64, target: f64, delta: f64) -> f64 {
    let r = pred - target;
    if r.abs() <= delta {
        0.5 * r * r
    } else {
        delta * (r.abs() - 0.5 * delta)
    }
}

#[differentiable]
fn huber_sum(preds: &[f64], targets: &[f64]) -> f64 {
    let delta = 1.0;
    let mut total = 0.0;
    for i in 0..preds.len() {
        let r = (preds[i] - targets[i]).abs();
        if r < delta {
            total += 0.5 * r * r;
        } else {
            total += delta * (r - 0.5 * delta);
        }
    }
    total
}

#[differentiable]
fn softplus(x: f64) -> f64 {
    if x > 20.0 {
        return x;
    }
    (1.0 + x.exp()).ln()
}

#[differentiable]
fn log_sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        -(1.0 + (-x).exp()).ln()
    } else {
        x - (1.0 + x.exp()).ln()
    }
}

#[differentiable]
fn ridge(w: &[f64], xs: &[f64], ys: &[f64], lambda: f64) -> f64 {
    let d = w.len();
    let mut sse = 0.0;
    for (i, y) in ys.iter().enumerate() {
        let pred: f64 = (0..d).map(|j| w[j] * xs[i * d + j]).sum();
        sse += (pred - y).powi(2);
    }
    let penalty: f64 = w.iter().map(|wi| wi * wi).sum();
    sse + lambda * penalty
}

#[differentiable]
fn hinge(w: &[f64], xs: &[f64], ys: &[f64]) -> f64 {
    let d = w.len();
    let mut total = 0.0;
    for i in 0..ys.len() {
        let mut margin = 0.0;
        for j in 0..d {
            margin += w[j] * xs[i * d + j];
        }
        total += (1.0 - ys[i] * margin).max(0.0);
    }
    total
}

#[test]
fn losses() {
    let xs = [0.5, -1.0, 1.5, 0.2, -0.3, 0.8, 1.0, 1.0];
    let ys = [1.0, 0.0, 1.0, 0.0];
    check(
        "logistic_loss",
        3,
        -1.0,
        1.0,
        &|p| logistic_loss(&p[..2], p[2], &xs, &ys),
        &|p| {
            let (v, (gw, gb, _, _)) = logistic_loss_grad(&p[..2], p[2], &xs, &ys);
            svx((v, (gw, gb)))
        },
    );
    // by hand: d/db = mean(sigmoid(z) - y)
    let w = [0.3, -0.2];
    let (_, (_, gb, _, _)) = logistic_loss_grad(&w, 0.1, &xs, &ys);
    let want: f64 = (0..4)
        .map(|i| {
            let z = 0.1 + w[0] * xs[2 * i] + w[1] * xs[2 * i + 1];
            1.0 / (1.0 + (-z).exp()) - ys[i]
        })
        .sum::<f64>()
        / 4.0;
    assert!(close(gb, want, 1e-12), "{gb} vs {want}");
    check(
        "huber",
        3,
        -2.0,
        2.0,
        &|p| huber(p[0], p[1], p[2].abs() + 0.1),
        &|p| {
            let (v, (a, b, c)) = huber_grad(p[0], p[1], p[2].abs() + 0.1);
            (v, vec![a, b, c * p[2].signum()])
        },
    );
    check(
        "huber_sum",
        6,
        -2.0,
        2.0,
        &|p| huber_sum(&p[..3], &p[3..]),
        &|p| svv(huber_sum_grad(&p[..3], &p[3..])),
    );
    check("softplus", 1, -5.0, 25.0, &|p| softplus(p[0]), &|p| {
        s1(softplus_grad(p[0]))
    });
    check("log_sigmoid", 1, -5.0, 5.0, &|p| log_sigmoid(p[0]), &|p| {
        s1(log_sigmoid_grad(p[0]))
    });
    check(
        "ridge",
        3,
        -1.0,
        1.0,
        &|p| ridge(&p[..2], &xs, &ys, p[2]),
        &|p| {
            let (v, (gw, _, _, gl)) = ridge_grad(&p[..2], &xs, &ys, p[2]);
            svx((v, (gw, gl)))
        },
    );
    let yy = [1.0, -1.0, 1.0, -1.0];
    check("hinge", 2, -1.0, 1.0, &|p| hinge(p, &xs, &yy), &|p| {
        let (v, (gw, _, _)) = hinge_grad(p, &xs, &yy);
        (v, gw)
    });
}

// ---------------------------------------------------------------------------------------
// Control flow: guards, match, if let, while, break/continue, blocks
// ---------------------------------------------------------------------------------------

#[differentiable]
fn guarded_log(x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    x.ln() * x
}

#[differentiable]
fn two_guards(x: f64, y: f64) -> f64 {
    if x < -1.0 {
        return y;
    }
    if y > 1.0 {
        return x * y;
    }
    let z = x + y;
    z * z
}

#[differentiable]
fn piecewise(x: f64, k: u32) -> f64 {
    match k {
        0 => x * x,
        1 | 2 => x.sin(),
        3..=5 => {
            let y = x * 2.0;
            y.exp()
        }
        _ => 0.0,
    }
}

#[differentiable(wrt(x))]
fn scaled_if_some(x: f64, scale: Option<f64>) -> f64 {
    if let Some(s) = scale { x * s } else { x.sin() }
}

#[differentiable]
fn else_if_chain(x: f64) -> f64 {
    let y;
    if x < -1.0 {
        y = -x;
    } else if x < 0.0 {
        y = x * x + 1.0;
    } else if x < 1.0 {
        y = 1.0 + x.sin();
    } else {
        y = x.sqrt() * 2.0;
    }
    y * x
}

#[differentiable]
fn grow_until(x: f64, limit: f64) -> f64 {
    let mut s = x;
    for _ in 0..20 {
        if s > limit {
            break;
        }
        s = s * 1.5 + 0.1;
    }
    s
}

#[differentiable]
fn skip_negatives(xs: &[f64]) -> f64 {
    let mut total = 0.0;
    for &x in xs {
        if x < 0.0 {
            continue;
        }
        total += x.sqrt();
    }
    total
}

#[differentiable]
fn block_expressions(x: f64, y: f64) -> f64 {
    let a = {
        let t = x * 2.0;
        t.sin()
    };
    let b = if a > 0.0 {
        let u = a * y;
        u * u
    } else {
        y
    };
    return a + b;
}

#[differentiable]
fn while_with_counter(x: f64) -> f64 {
    let mut y = x;
    let mut i = 0;
    while i < 5 {
        y = y * 0.8 + 0.1 * x;
        i += 1;
    }
    y
}

#[test]
fn control_flow() {
    check("guarded_log", 1, -1.0, 3.0, &|p| guarded_log(p[0]), &|p| {
        s1(guarded_log_grad(p[0]))
    });
    check(
        "two_guards",
        2,
        -2.0,
        2.0,
        &|p| two_guards(p[0], p[1]),
        &|p| s2(two_guards_grad(p[0], p[1])),
    );
    for k in 0..7 {
        check(
            &format!("piecewise/{k}"),
            1,
            -1.0,
            1.0,
            &|p| piecewise(p[0], k),
            &|p| s1(piecewise_grad(p[0], k)),
        );
    }
    for s in [Some(2.5), None] {
        check(
            &format!("scaled_if_some/{s:?}"),
            1,
            -1.0,
            1.0,
            &|p| scaled_if_some(p[0], s),
            &|p| s1(scaled_if_some_grad(p[0], s)),
        );
    }
    check(
        "else_if_chain",
        1,
        -2.0,
        2.0,
        &|p| else_if_chain(p[0]),
        &|p| s1(else_if_chain_grad(p[0])),
    );
    check(
        "grow_until",
        2,
        0.1,
        2.0,
        &|p| grow_until(p[0], p[1] * 10.0),
        &|p| {
            let (v, (a, b)) = grow_until_grad(p[0], p[1] * 10.0);
            (v, vec![a, b * 10.0])
        },
    );
    check(
        "skip_negatives",
        5,
        -1.0,
        2.0,
        &|p| skip_negatives(p),
        &|p| skip_negatives_grad(p),
    );
    check(
        "block_expressions",
        2,
        -2.0,
        2.0,
        &|p| block_expressions(p[0], p[1]),
        &|p| s2(block_expressions_grad(p[0], p[1])),
    );
    check(
        "while_with_counter",
        1,
        -2.0,
        2.0,
        &|p| while_with_counter(p[0]),
        &|p| s1(while_with_counter_grad(p[0])),
    );
}

// ---------------------------------------------------------------------------------------
// Bindings: consts, annotations, shadowing, tuples, compound assignment, closures
// ---------------------------------------------------------------------------------------

const SCALE: f64 = 2.5;

#[differentiable]
fn local_and_global_consts(x: f64) -> f64 {
    const OFFSET: f64 = 0.25;
    SCALE * x * x + OFFSET * x
}

#[differentiable]
fn annotated(x: f64, y: f64) -> f64 {
    let a: f64 = x * 2.0;
    let b: f64 = a.sin() + y;
    let c: f64;
    c = a * b;
    c
}

#[differentiable]
fn shadowed(x: f64) -> f64 {
    let x = x * 2.0;
    let x = x.sin() + x;
    x * x
}

#[differentiable]
fn tuple_bindings(x: f64, y: f64) -> f64 {
    let (a, b) = (x * 2.0, y + 1.0);
    let (c, (d, _)) = (a * b, (a - b, 0.0));
    c + d * d
}

#[differentiable]
fn compound_ops(x: f64, y: f64) -> f64 {
    let mut s = 1.0;
    s *= x;
    s += y * y;
    s /= 1.0 + x * x;
    s -= 0.5 * y;
    s
}

#[differentiable]
fn closure_capturing(a: f64, x: f64, y: f64) -> f64 {
    let f = |t: f64| a * t * t;
    let g = |t: f64, u: f64| (t - u).powi(2);
    f(x) + f(y) + g(x, y)
}

#[differentiable]
fn counter_float(x: f64) -> f64 {
    let mut n = 0.0;
    let mut s = 0.0;
    for i in 0..4 {
        n += 1.0;
        s += x * i as f64 / n;
    }
    s
}

#[test]
fn bindings() {
    check(
        "local_and_global_consts",
        1,
        -2.0,
        2.0,
        &|p| local_and_global_consts(p[0]),
        &|p| s1(local_and_global_consts_grad(p[0])),
    );
    assert_eq!(local_and_global_consts_grad(2.0).1, 5.0 * 2.0 + 0.25);
    check(
        "annotated",
        2,
        -2.0,
        2.0,
        &|p| annotated(p[0], p[1]),
        &|p| s2(annotated_grad(p[0], p[1])),
    );
    check("shadowed", 1, -2.0, 2.0, &|p| shadowed(p[0]), &|p| {
        s1(shadowed_grad(p[0]))
    });
    check(
        "tuple_bindings",
        2,
        -2.0,
        2.0,
        &|p| tuple_bindings(p[0], p[1]),
        &|p| s2(tuple_bindings_grad(p[0], p[1])),
    );
    check(
        "compound_ops",
        2,
        -2.0,
        2.0,
        &|p| compound_ops(p[0], p[1]),
        &|p| s2(compound_ops_grad(p[0], p[1])),
    );
    check(
        "closure_capturing",
        3,
        -2.0,
        2.0,
        &|p| closure_capturing(p[0], p[1], p[2]),
        &|p| s3(closure_capturing_grad(p[0], p[1], p[2])),
    );
    check(
        "counter_float",
        1,
        -2.0,
        2.0,
        &|p| counter_float(p[0]),
        &|p| s1(counter_float_grad(p[0])),
    );
}

// ---------------------------------------------------------------------------------------
// Arrays, local vectors, helpers, methods, generics
// ---------------------------------------------------------------------------------------

#[differentiable]
fn dot3(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

#[differentiable]
fn cross_norm_squared(a: [f64; 3], b: [f64; 3]) -> f64 {
    let c = [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ];
    let mut s = 0.0;
    for i in 0..3 {
        s += c[i] * c[i];
    }
    s
}

#[differentiable]
fn norm3(v: &[f64; 3]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

#[differentiable]
fn squares_into_vec(xs: &[f64]) -> f64 {
    let n = xs.len();
    let mut v = vec![0.0; n];
    for i in 0..n {
        v[i] = xs[i] * xs[i];
    }
    v.iter().sum::<f64>()
}

#[differentiable]
fn pushed(xs: &[f64]) -> f64 {
    let mut out = Vec::new();
    for x in xs {
        out.push(x * 2.0);
    }
    let mut s = 0.0;
    for i in 0..out.len() {
        s += out[i] * out[i];
    }
    s
}

#[differentiable]
fn square(x: f64) -> f64 {
    x * x
}

#[differentiable]
fn uses_helpers(x: f64, y: f64) -> f64 {
    square(x) + square(x * y) + sigmoid(y)
}

#[differentiable]
fn generic_poly<T: Float>(x: T) -> T {
    let two = T::from(2.0).unwrap();
    two * x * x + x.sin() - T::one()
}

#[differentiable]
fn generic_mean_sq<T: Float>(xs: &[T]) -> T {
    let mut s = T::zero();
    for &x in xs {
        s = s + x * x;
    }
    s / T::from(xs.len()).unwrap()
}

struct Spring {
    k: f64,
    rest: f64,
}

impl Spring {
    #[differentiable(wrt(x))]
    fn energy(&self, x: f64) -> f64 {
        let d = x - self.rest;
        0.5 * self.k * d * d
    }
}

#[test]
fn arrays_helpers_generics() {
    check(
        "dot3",
        6,
        -2.0,
        2.0,
        &|p| dot3([p[0], p[1], p[2]], [p[3], p[4], p[5]]),
        &|p| {
            let (v, (ga, gb)) = dot3_grad([p[0], p[1], p[2]], [p[3], p[4], p[5]]);
            (v, ga.iter().chain(&gb).copied().collect())
        },
    );
    check(
        "cross_norm_squared",
        6,
        -2.0,
        2.0,
        &|p| cross_norm_squared([p[0], p[1], p[2]], [p[3], p[4], p[5]]),
        &|p| {
            let (v, (ga, gb)) = cross_norm_squared_grad([p[0], p[1], p[2]], [p[3], p[4], p[5]]);
            (v, ga.iter().chain(&gb).copied().collect())
        },
    );
    check(
        "norm3",
        3,
        0.5,
        2.0,
        &|p| norm3(&[p[0], p[1], p[2]]),
        &|p| {
            let (v, g) = norm3_grad(&[p[0], p[1], p[2]]);
            (v, g.to_vec())
        },
    );
    check(
        "squares_into_vec",
        4,
        -2.0,
        2.0,
        &|p| squares_into_vec(p),
        &|p| squares_into_vec_grad(p),
    );
    check("pushed", 4, -2.0, 2.0, &|p| pushed(p), &|p| pushed_grad(p));
    check(
        "uses_helpers",
        2,
        -2.0,
        2.0,
        &|p| uses_helpers(p[0], p[1]),
        &|p| s2(uses_helpers_grad(p[0], p[1])),
    );
    check(
        "generic_poly",
        1,
        -2.0,
        2.0,
        &|p| generic_poly(p[0]),
        &|p| s1(generic_poly_grad(p[0])),
    );
    check32(
        "generic_poly_f32",
        1,
        -2.0,
        2.0,
        &|p| generic_poly(p[0] as f32) as f64,
        &|p| t1(generic_poly_grad(p[0] as f32)),
    );
    check(
        "generic_mean_sq",
        4,
        -2.0,
        2.0,
        &|p| generic_mean_sq(p),
        &|p| generic_mean_sq_grad(p),
    );
    let sp = Spring { k: 3.0, rest: 1.0 };
    check("spring_method", 1, -2.0, 2.0, &|p| sp.energy(p[0]), &|p| {
        s1(sp.energy_grad(p[0]))
    });
}

// ---------------------------------------------------------------------------------------
// Forward mode and second order on a subset
// ---------------------------------------------------------------------------------------

#[differentiable(forward, reverse)]
fn fwd_mixture(x: f64, y: f64) -> f64 {
    let r = x.hypot(y);
    if r > 1.0 {
        r.ln() * x.powi(2)
    } else {
        (x * y).sin() + y.exp2()
    }
}

#[differentiable(forward, reverse)]
fn fwd_horner(x: f64, coeffs: &[f64]) -> f64 {
    let mut y = 0.0;
    for &c in coeffs.iter().rev() {
        y = y * x + c;
    }
    y
}

#[differentiable(forward, reverse)]
fn fwd_log_sum_exp(xs: &[f64]) -> f64 {
    let m = xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let s: f64 = xs.iter().map(|x| (x - m).exp()).sum();
    m + s.ln()
}

#[differentiable(forward)]
fn fwd_euler(k: f64, y0: f64) -> f64 {
    let dt = 0.1;
    let mut y = y0;
    for _ in 0..10 {
        y += dt * (-k * y + y.sin());
    }
    y
}

#[differentiable(forward)]
fn fwd_f32(x: f32, y: f32) -> f32 {
    x.powf(y) + x.max(y) * y.tanh()
}

#[differentiable(hessian)]
fn hess_rosenbrock(xs: &[f64]) -> f64 {
    let mut s = 0.0;
    for i in 0..xs.len() - 1 {
        s += 100.0 * (xs[i + 1] - xs[i] * xs[i]).powi(2) + (1.0 - xs[i]).powi(2);
    }
    s
}

#[differentiable(hessian)]
fn hess_mixed(x: f64, y: f64) -> f64 {
    let a = x.exp() * y.sin();
    let b = (x * y).atan() + x.hypot(y);
    if a > b { a * b } else { a + b * b }
}

#[differentiable(hessian)]
fn hess_variance(xs: &[f64]) -> f64 {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
}

#[differentiable(hessian)]
fn hess_lennard_jones(x: f64, y: f64) -> f64 {
    let r2 = x * x + y * y;
    let s6 = (1.0 / r2).powi(3);
    4.0 * (s6 * s6 - s6)
}

#[test]
fn forward_mode() {
    check_jvp(
        "fwd_mixture",
        2,
        -2.0,
        2.0,
        &|p| fwd_mixture(p[0], p[1]),
        &|p, v| fwd_mixture_jvp(p[0], p[1], v[0], v[1]),
    );
    check(
        "fwd_mixture",
        2,
        -2.0,
        2.0,
        &|p| fwd_mixture(p[0], p[1]),
        &|p| s2(fwd_mixture_grad(p[0], p[1])),
    );
    check_jvp(
        "fwd_horner",
        4,
        -1.5,
        1.5,
        &|p| fwd_horner(p[0], &p[1..]),
        &|p, v| fwd_horner_jvp(p[0], &p[1..], v[0], &v[1..]),
    );
    check_jvp(
        "fwd_log_sum_exp",
        4,
        -2.0,
        2.0,
        &|p| fwd_log_sum_exp(p),
        &|p, v| fwd_log_sum_exp_jvp(p, v),
    );
    check_jvp(
        "fwd_euler",
        2,
        0.0,
        2.0,
        &|p| fwd_euler(p[0], p[1]),
        &|p, v| fwd_euler_jvp(p[0], p[1], v[0], v[1]),
    );
    // f32: along the unit vectors, against a wide central difference
    for (x, y) in [(0.7f32, 1.3f32), (1.5, 0.4)] {
        let h = 1e-2f32;
        let (_, dx) = fwd_f32_jvp(x, y, 1.0, 0.0);
        let want = (fwd_f32(x + h, y) - fwd_f32(x - h, y)) / (2.0 * h);
        assert!(
            (dx - want).abs() < 2e-2 * (1.0 + want.abs()),
            "{dx} vs {want}"
        );
        let (_, dy) = fwd_f32_jvp(x, y, 0.0, 1.0);
        let want = (fwd_f32(x, y + h) - fwd_f32(x, y - h)) / (2.0 * h);
        assert!(
            (dy - want).abs() < 2e-2 * (1.0 + want.abs()),
            "{dy} vs {want}"
        );
    }
}

#[test]
fn second_order() {
    check_hvp(
        "hess_rosenbrock",
        4,
        -1.5,
        1.5,
        &|p| hess_rosenbrock(p),
        &|p| hess_rosenbrock_grad(p),
        &|p, v| hess_rosenbrock_hvp(p, v),
    );
    // by hand, N = 2: H = [[1200 x0² - 400 x1 + 2, -400 x0], [-400 x0, 200]]
    let (x0, x1) = (0.5, -0.3);
    let (_, _, hv) = hess_rosenbrock_hvp(&[x0, x1], &[1.0, 0.0]);
    assert!(
        close(hv[0], 1200.0 * x0 * x0 - 400.0 * x1 + 2.0, 1e-12)
            && close(hv[1], -400.0 * x0, 1e-12)
    );
    check_hvp(
        "hess_mixed",
        2,
        -1.5,
        1.5,
        &|p| hess_mixed(p[0], p[1]),
        &|p| s2(hess_mixed_grad(p[0], p[1])),
        &|p, v| {
            let (y, (g0, g1), (h0, h1)) = hess_mixed_hvp(p[0], p[1], v[0], v[1]);
            (y, vec![g0, g1], vec![h0, h1])
        },
    );
    check_hvp(
        "hess_variance",
        4,
        -2.0,
        2.0,
        &|p| hess_variance(p),
        &|p| hess_variance_grad(p),
        &|p, v| hess_variance_hvp(p, v),
    );
    check_hvp(
        "hess_lennard_jones",
        2,
        0.9,
        1.5,
        &|p| hess_lennard_jones(p[0], p[1]),
        &|p| s2(hess_lennard_jones_grad(p[0], p[1])),
        &|p, v| {
            let (y, (g0, g1), (h0, h1)) = hess_lennard_jones_hvp(p[0], p[1], v[0], v[1]);
            (y, vec![g0, g1], vec![h0, h1])
        },
    );
}

// ---------------------------------------------------------------------------------------
// More idioms: Vec::with_capacity, zipped loops, chains after sum, local arrays, flat
// matrix-vector products, guards in match, nested closures, returns from nested loops,
// last elements, inclusive ranges, loop with a counter, derefs, enumerate inside map
// ---------------------------------------------------------------------------------------

#[differentiable]
fn p_with_capacity(xs: &[f64]) -> f64 {
    let mut out = Vec::with_capacity(xs.len());
    for x in xs {
        out.push(x * 2.0);
    }
    out.iter().sum::<f64>()
}

#[differentiable]
fn p_zip_for(xs: &[f64], ys: &[f64]) -> f64 {
    let mut acc = 0.0;
    for (x, y) in xs.iter().zip(ys.iter()) {
        acc += (x - y).abs();
    }
    acc
}

#[differentiable]
fn p_norm_chain(xs: &[f64]) -> f64 {
    xs.iter().map(|x| x.powi(2)).sum::<f64>().sqrt()
}

#[differentiable]
fn p_annot_sum(xs: &[f64], ws: &[f64]) -> f64 {
    let total: f64 = xs.iter().zip(ws).map(|(x, w)| x * w).sum();
    total
}

#[differentiable]
fn p_enum_map(xs: &[f64]) -> f64 {
    xs.iter()
        .enumerate()
        .map(|(i, x)| x * i as f64)
        .sum::<f64>()
}

#[differentiable]
fn p_fold_max(xs: &[f64]) -> f64 {
    xs.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b))
}

#[differentiable]
fn p_local_array(x: f64, y: f64) -> f64 {
    let mut v = [0.0; 3];
    v[0] = x;
    v[1] = y * x;
    v[2] = v[0] + v[1];
    v.iter().sum::<f64>()
}

#[differentiable]
fn p_matvec(a: &[f64], x: &[f64]) -> f64 {
    let m = x.len();
    let n = a.len() / m;
    let mut s = 0.0;
    for row in 0..n {
        let mut y = 0.0;
        for col in 0..m {
            y += a[row * m + col] * x[col];
        }
        s += y * y;
    }
    s
}

#[differentiable]
fn p_guard_match(x: f64) -> f64 {
    match x {
        v if v < 0.0 => -v,
        v => v * v,
    }
}

#[differentiable]
fn p_nested_closures(x: f64) -> f64 {
    let sq = |t: f64| t * t;
    let f = |t: f64| sq(t) + 1.0;
    f(x) * sq(x)
}

#[differentiable]
fn p_return_nested(x: f64, n: usize) -> f64 {
    let mut s = x;
    for i in 0..n {
        for j in 0..n {
            s = s * 1.1 + (i * j) as f64 * 0.01;
            if s > 5.0 {
                return s.ln();
            }
        }
    }
    s
}

#[differentiable]
fn p_relu_map(xs: &[f64]) -> f64 {
    xs.iter().map(|&v| v.max(0.0)).sum::<f64>()
}

#[differentiable]
fn p_last(xs: &[f64]) -> f64 {
    let n = xs.len();
    xs[n - 1] * xs[0] + xs[xs.len() - 2]
}

#[differentiable]
fn p_frac_pi(x: f64) -> f64 {
    -(x.ln()) + 2.0 * std::f64::consts::FRAC_PI_2 * (x * 2.0).sqrt().ln()
}

#[differentiable]
fn p_mean_cast(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

#[differentiable]
fn p_inclusive(x: f64, n: usize) -> f64 {
    let mut s = 0.0;
    for k in 0..=n {
        s += x.powi(k as i32) / (k as f64 + 1.0);
    }
    s
}

#[differentiable]
fn p_loop_counter(x: f64) -> f64 {
    let mut y = x;
    let mut it = 0;
    loop {
        y = y * 0.5 + 1.0;
        it += 1;
        if it > 10 {
            break;
        }
    }
    y
}

#[differentiable]
fn p_deref(xs: &[f64]) -> f64 {
    let mut s = 0.0;
    for x in xs.iter() {
        s += *x * *x;
    }
    s
}

#[differentiable]
fn p_scale(xs: &[f64]) -> f64 {
    let n = xs.len();
    let scale = 1.0 / (n as f64).sqrt();
    xs.iter().map(|x| x * scale).sum::<f64>()
}

#[differentiable]
fn p_array_iter_sum(v: [f64; 2]) -> f64 {
    v.iter().sum::<f64>() * v[0]
}

#[differentiable]
fn p_zip_skip(xs: &[f64]) -> f64 {
    xs.iter()
        .zip(xs.iter().skip(1))
        .map(|(a, b)| (b - a).powi(2))
        .sum::<f64>()
}

#[differentiable]
fn p_if_abs(x: f64) -> f64 {
    let y = if x > 0.0 { x } else { -x };
    return y * 2.0;
}

#[differentiable]
fn p_max_by_if(a: f64, b: f64) -> f64 {
    let m = if a > b { a } else { b };
    m * m
}

#[differentiable]
fn p_sum_of_squares_fold(xs: &[f64]) -> f64 {
    xs.iter().fold(0.0, |acc, &x| acc + x * x)
}

#[differentiable]
fn p_ternary_weights(xs: &[f64]) -> f64 {
    let mut s = 0.0;
    for (i, &x) in xs.iter().enumerate() {
        let w = if i == 0 || i == xs.len() - 1 {
            1.0
        } else {
            2.0
        };
        s += w * x;
    }
    s
}

#[test]
fn more_idioms() {
    check(
        "p_with_capacity",
        4,
        -2.0,
        2.0,
        &|p| p_with_capacity(p),
        &|p| p_with_capacity_grad(p),
    );
    check(
        "p_zip_for",
        6,
        -2.0,
        2.0,
        &|p| p_zip_for(&p[..3], &p[3..]),
        &|p| svv(p_zip_for_grad(&p[..3], &p[3..])),
    );
    check("p_norm_chain", 4, 0.2, 2.0, &|p| p_norm_chain(p), &|p| {
        p_norm_chain_grad(p)
    });
    check(
        "p_annot_sum",
        6,
        -2.0,
        2.0,
        &|p| p_annot_sum(&p[..3], &p[3..]),
        &|p| svv(p_annot_sum_grad(&p[..3], &p[3..])),
    );
    check("p_enum_map", 4, -2.0, 2.0, &|p| p_enum_map(p), &|p| {
        p_enum_map_grad(p)
    });
    assert_eq!(p_enum_map_grad(&[5.0, 5.0, 5.0]).1, vec![0.0, 1.0, 2.0]);
    check("p_fold_max", 4, -2.0, 2.0, &|p| p_fold_max(p), &|p| {
        p_fold_max_grad(p)
    });
    check(
        "p_local_array",
        2,
        -2.0,
        2.0,
        &|p| p_local_array(p[0], p[1]),
        &|p| s2(p_local_array_grad(p[0], p[1])),
    );
    // by hand: the sum is 2x + 2xy: d/dx = 2 + 2y, d/dy = 2x
    assert_eq!(p_local_array_grad(3.0, 0.5).1, (2.0 + 2.0 * 0.5, 6.0));
    check(
        "p_matvec",
        8,
        -2.0,
        2.0,
        &|p| p_matvec(&p[..6], &p[6..]),
        &|p| svv(p_matvec_grad(&p[..6], &p[6..])),
    );
    check(
        "p_guard_match",
        1,
        -2.0,
        2.0,
        &|p| p_guard_match(p[0]),
        &|p| s1(p_guard_match_grad(p[0])),
    );
    check(
        "p_nested_closures",
        1,
        -2.0,
        2.0,
        &|p| p_nested_closures(p[0]),
        &|p| s1(p_nested_closures_grad(p[0])),
    );
    for n in [1, 3, 5] {
        check(
            &format!("p_return_nested/{n}"),
            1,
            0.5,
            3.0,
            &|p| p_return_nested(p[0], n),
            &|p| s1(p_return_nested_grad(p[0], n)),
        );
    }
    check("p_relu_map", 5, -2.0, 2.0, &|p| p_relu_map(p), &|p| {
        p_relu_map_grad(p)
    });
    check("p_last", 4, -2.0, 2.0, &|p| p_last(p), &|p| p_last_grad(p));
    check("p_frac_pi", 1, 0.2, 3.0, &|p| p_frac_pi(p[0]), &|p| {
        s1(p_frac_pi_grad(p[0]))
    });
    check("p_mean_cast", 4, -2.0, 2.0, &|p| p_mean_cast(p), &|p| {
        p_mean_cast_grad(p)
    });
    for n in [0, 2, 5] {
        check(
            &format!("p_inclusive/{n}"),
            1,
            -1.5,
            1.5,
            &|p| p_inclusive(p[0], n),
            &|p| s1(p_inclusive_grad(p[0], n)),
        );
    }
    check(
        "p_loop_counter",
        1,
        -2.0,
        2.0,
        &|p| p_loop_counter(p[0]),
        &|p| s1(p_loop_counter_grad(p[0])),
    );
    // by hand: eleven halvings
    assert_eq!(p_loop_counter_grad(1.0).1, 0.5f64.powi(11));
    check("p_deref", 4, -2.0, 2.0, &|p| p_deref(p), &|p| {
        p_deref_grad(p)
    });
    check("p_scale", 4, -2.0, 2.0, &|p| p_scale(p), &|p| {
        p_scale_grad(p)
    });
    check(
        "p_array_iter_sum",
        2,
        -2.0,
        2.0,
        &|p| p_array_iter_sum([p[0], p[1]]),
        &|p| {
            let (v, g) = p_array_iter_sum_grad([p[0], p[1]]);
            (v, g.to_vec())
        },
    );
    check("p_zip_skip", 5, -2.0, 2.0, &|p| p_zip_skip(p), &|p| {
        p_zip_skip_grad(p)
    });
    check("p_if_abs", 1, -2.0, 2.0, &|p| p_if_abs(p[0]), &|p| {
        s1(p_if_abs_grad(p[0]))
    });
    check(
        "p_max_by_if",
        2,
        -2.0,
        2.0,
        &|p| p_max_by_if(p[0], p[1]),
        &|p| s2(p_max_by_if_grad(p[0], p[1])),
    );
    check(
        "p_sum_of_squares_fold",
        4,
        -2.0,
        2.0,
        &|p| p_sum_of_squares_fold(p),
        &|p| p_sum_of_squares_fold_grad(p),
    );
    check(
        "p_ternary_weights",
        5,
        -2.0,
        2.0,
        &|p| p_ternary_weights(p),
        &|p| p_ternary_weights_grad(p),
    );
    assert_eq!(
        p_ternary_weights_grad(&[1.0; 4]).1,
        vec![1.0, 2.0, 2.0, 1.0]
    );
}

/// The harness rejects a gradient that is slightly off.
#[test]
#[should_panic(expected = "finite difference")]
fn checks_can_fail() {
    check(
        "off_by_a_little",
        2,
        -1.0,
        1.0,
        &|p| power_law(p[0].abs() + 0.5, p[1]),
        &|p| {
            let (v, (a, b)) = power_law_grad(p[0].abs() + 0.5, p[1]);
            (v, vec![a * p[0].signum() * (1.0 + 1e-4), b])
        },
    );
}
