//! The projectile of `examples/projectile.rs`, shared with `tests/projectile.rs` and
//! `benches/language.rs` (each includes this file with `#[path]`).
//!
//! A point mass launched at `angle` (radians) and `speed` (m/s) from `height` metres, with
//! quadratic air drag `a = -drag |v| v - g ŷ` (`drag` in 1/m: the drag force over the mass),
//! integrated by semi-implicit Euler with a fixed step `dt` while it is above the ground. The
//! landing distance is interpolated linearly between the last two steps, so it is a continuous
//! function of the parameters (smooth between the parameter values where the number of steps
//! changes).

#![allow(dead_code)]

use symgrad::differentiable;

/// Gravity, m/s².
pub const G: f64 = 9.81;

/// The landing distance (m): a `while y > 0.0` loop whose number of iterations depends on the
/// parameters, then a linear interpolation between the last point above the ground and the
/// first one below. `_grad` gives the derivatives with respect to the angle, the speed and the
/// drag (the height and the step are constants).
#[differentiable(wrt(angle, speed, drag))]
pub fn landing(angle: f64, speed: f64, drag: f64, height: f64, dt: f64) -> f64 {
    let mut vx = speed * angle.cos();
    let mut vy = speed * angle.sin();
    let mut x = 0.0;
    let mut y = height;
    // The last point above the ground.
    let mut px = x;
    let mut py = y;
    while y > 0.0 {
        px = x;
        py = y;
        let v = (vx * vx + vy * vy).sqrt();
        vx -= drag * v * vx * dt;
        vy -= (G + drag * v * vy) * dt;
        x += vx * dt;
        y += vy * dt;
    }
    if py > y {
        // y <= 0 < py: where the segment crosses the ground.
        px + (x - px) * py / (py - y)
    } else {
        // Launched at or below the ground: the loop did not run.
        x
    }
}

/// One shot of the fit: a speed and the distance where that shot must land.
#[derive(Clone, Copy, Debug)]
pub struct Shot {
    pub speed: f64,
    pub target: f64,
}

/// The outcome of [`fit`].
#[derive(Clone, Debug)]
pub struct Fit {
    /// The launch angle, radians.
    pub angle: f64,
    /// The drag coefficient, 1/m.
    pub drag: f64,
    /// Gauss-Newton iterations taken.
    pub iters: usize,
    /// The largest |landing - target| over the shots, m.
    pub error: f64,
    /// `error < tol` was reached.
    pub converged: bool,
    /// One line per iteration: (iteration, angle, drag, max error).
    pub history: Vec<(usize, f64, f64, f64)>,
}

/// Fits the launch angle (one shot) or the angle and the drag (two shots, at two speeds) so that
/// every shot lands on its target: Gauss-Newton on the residuals `landing - target`, with the
/// Jacobian from `landing_grad`, steps limited to 10° and halved while they do not reduce the
/// error; the angle is kept in 1°..89° and the drag at or above 0. With one shot the drag stays
/// `drag0`. With two shots the system is square (two residuals, two unknowns), so Gauss-Newton
/// is Newton's method on it.
pub fn fit(
    shots: &[Shot],
    angle0: f64,
    drag0: f64,
    height: f64,
    dt: f64,
    tol: f64,
    max_iters: usize,
) -> Fit {
    assert!(
        shots.len() == 1 || shots.len() == 2,
        "one shot (fit the angle) or two (fit the angle and the drag)"
    );
    let (lo, hi) = (1f64.to_radians(), 89f64.to_radians());
    let max_step = 10f64.to_radians();
    let residuals = |angle: f64, drag: f64| -> Vec<f64> {
        shots
            .iter()
            .map(|s| landing(angle, s.speed, drag, height, dt) - s.target)
            .collect()
    };
    let worst = |r: &[f64]| r.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let (mut angle, mut drag) = (angle0, drag0);
    let mut history = Vec::new();
    let mut iters = 0;
    loop {
        // The residuals and their Jacobian (d/dangle, d/ddrag) from the generated gradient.
        let mut r = Vec::with_capacity(shots.len());
        let mut jac = Vec::with_capacity(shots.len());
        for s in shots {
            let (d, (da, _ds, dk)) = landing_grad(angle, s.speed, drag, height, dt);
            r.push(d - s.target);
            jac.push((da, dk));
        }
        let err = worst(&r);
        history.push((iters, angle, drag, err));
        if err < tol || iters == max_iters {
            return Fit {
                angle,
                drag,
                iters,
                error: err,
                converged: err < tol,
                history,
            };
        }
        iters += 1;
        // The Gauss-Newton step: solve J p = -r.
        let (mut pa, mut pk) = if shots.len() == 1 {
            (-r[0] / jac[0].0, 0.0)
        } else {
            let ((a, b), (c, d)) = (jac[0], jac[1]);
            let det = a * d - b * c;
            if det.abs() < 1e-300 {
                return Fit {
                    angle,
                    drag,
                    iters,
                    error: err,
                    converged: false,
                    history,
                };
            }
            ((-r[0] * d + r[1] * b) / det, (-r[1] * a + r[0] * c) / det)
        };
        if pa.abs() > max_step {
            let s = max_step / pa.abs();
            pa *= s;
            pk *= s;
        }
        // Halve the step until the error goes down (at most 30 times).
        let mut accepted = false;
        for _ in 0..30 {
            let (na, nk) = ((angle + pa).clamp(lo, hi), (drag + pk).max(0.0));
            if worst(&residuals(na, nk)) < err {
                (angle, drag) = (na, nk);
                accepted = true;
                break;
            }
            pa *= 0.5;
            pk *= 0.5;
        }
        if !accepted {
            return Fit {
                angle,
                drag,
                iters,
                error: err,
                converged: false,
                history,
            };
        }
    }
}
