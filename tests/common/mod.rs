//! Finite differences shared by the gradient tests: every gradient is compared with these,
//! computed on the ORIGINAL function, never with another output of the macro.

#![allow(dead_code)]

/// Central differences of `f` at `x`, one per coordinate, with a step `h` relative to the
/// coordinate's size (at least `h`).
pub fn fd(f: &dyn Fn(&[f64]) -> f64, x: &[f64], h: f64) -> Vec<f64> {
    let mut xp = x.to_vec();
    (0..x.len())
        .map(|i| {
            let hi = h * x[i].abs().max(1.0);
            xp[i] = x[i] + hi;
            let fp = f(&xp);
            xp[i] = x[i] - hi;
            let fm = f(&xp);
            xp[i] = x[i];
            (fp - fm) / (2.0 * hi)
        })
        .collect()
}

/// The central difference of a function of one variable (step 1e-6, relative).
pub fn fd1(f: &dyn Fn(f64) -> f64, x: f64) -> f64 {
    fd(&|v: &[f64]| f(v[0]), &[x], 1e-6)[0]
}

/// `a` and `b` agree to `rtol`, relative to the larger of them (and absolutely near 0).
pub fn close(a: f64, b: f64, rtol: f64) -> bool {
    (a - b).abs() <= rtol * (1.0 + a.abs().max(b.abs()))
}
