//! The projectile of `examples/projectile.rs` (issue 9: an iterative solver written the natural
//! way, a `while y > 0.0` loop whose trip count depends on the parameters).
//!
//! `landing_grad` is compared with central finite differences of the ORIGINAL `landing` at
//! random parameter sets, with a hand derivation of the drag-free range and its derivatives,
//! and the example's Gauss-Newton fit is checked to hit its targets and to recover the
//! parameters that made them.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod common;
#[path = "../examples/common/projectile.rs"]
mod sim;

use common::{close, fd};
use sim::{G, Shot, fit, landing, landing_grad};

const HEIGHT: f64 = 1.5;
const DT: f64 = 1e-3;

/// `landing` as a function of (angle, speed, drag).
fn f(height: f64, dt: f64) -> impl Fn(&[f64]) -> f64 {
    move |p: &[f64]| landing(p[0], p[1], p[2], height, dt)
}

#[test]
fn gradient_matches_finite_differences_at_random_launches() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let drags = [0.0, 0.002, 0.01, 0.03, 0.08];
    let (mut used, mut total) = (0, 0);
    for &drag in &drags {
        for _ in 0..12 {
            total += 1;
            let angle = rng.gen_range(10f64..80.0).to_radians();
            let speed = rng.gen_range(5f64..50.0);
            let height = if rng.gen_bool(0.5) { HEIGHT } else { 0.01 };
            let p = [angle, speed, drag];
            let func = f(height, DT);
            // The landing distance has a kink wherever the number of steps changes: a point
            // where two step sizes disagree has one within reach of the differences.
            let want = fd(&func, &p, 1e-7);
            let coarse = fd(&func, &p, 1e-6);
            if want.iter().zip(&coarse).any(|(a, b)| !close(*a, *b, 1e-5)) {
                continue;
            }
            used += 1;
            let (v, (da, ds, dk)) = landing_grad(angle, speed, drag, height, DT);
            assert_eq!(v, func(&p), "value at {p:?}");
            for (name, got, want) in [
                ("angle", da, want[0]),
                ("speed", ds, want[1]),
                ("drag", dk, want[2]),
            ] {
                assert!(
                    close(got, want, 1e-5),
                    "d/d{name} = {got} but finite differences give {want} at angle {:.3}°, \
                     speed {speed}, drag {drag}, height {height}",
                    angle.to_degrees()
                );
            }
            assert!(ds > 0.0, "a faster shot goes further: d/dspeed = {ds}");
            assert!(dk < 0.0, "more drag, a shorter shot: d/ddrag = {dk}");
        }
    }
    assert!(
        used * 4 >= total * 3,
        "only {used} of {total} launches were away from a kink"
    );
}

#[test]
fn drag_free_range_and_its_derivatives_by_hand() {
    // With no drag and from (almost) the ground, the range is v² sin 2θ / g. Semi-implicit
    // Euler with step dt: vy_n = vy0 - n g dt and y_n = dt (n vy0 - g dt n (n + 1) / 2), which
    // is 0 at n* = 2 vy0 / (g dt) - 1, so the discrete range is vx0 dt n* =
    // v² sin 2θ / g - v cos θ dt (up to O(dt²) from the linear interpolation). Its
    // derivatives: d/dθ = 2 v² cos 2θ / g + v sin θ dt, d/dv = 2 v sin 2θ / g - cos θ dt.
    let dt = 1e-4;
    let h = 1e-12;
    for (deg, v) in [
        (15.0, 12.0),
        (30.0, 20.0),
        (45.0, 25.0),
        (52.0, 8.0),
        (75.0, 40.0),
    ] {
        let th = f64::to_radians(deg);
        let range = v * v * (2.0 * th).sin() / G;
        let (r, (da, ds, dk)) = landing_grad(th, v, 0.0, h, dt);
        let scale = v * v / G;
        let discrete = range - v * th.cos() * dt;
        assert!(
            (r - discrete).abs() < 1e-6 * scale,
            "{deg}°, {v} m/s: range {r}, by hand {discrete} (continuous {range})"
        );
        // Loosely against the continuous derivative (the discrete range is linear between two
        // trip counts, so its slope differs from the smooth formula's by O(dt)), closely
        // against finite differences of the original function.
        let d_th = 2.0 * v * v * (2.0 * th).cos() / G;
        assert!(
            (da - d_th).abs() < 1e-3 * scale,
            "{deg}°, {v} m/s: d/dθ = {da}, by hand {d_th}"
        );
        // (A step of 1e-6: the rounding of some 10^4 steps makes smaller ones noisy.)
        let fd_th = fd(&|p: &[f64]| landing(p[0], v, 0.0, h, dt), &[th], 1e-6)[0];
        assert!(
            close(da, fd_th, 1e-4),
            "{deg}°, {v} m/s: d/dθ = {da}, finite differences {fd_th}"
        );
        let d_v = 2.0 * v * (2.0 * th).sin() / G - th.cos() * dt;
        assert!(
            (ds - d_v).abs() < 1e-3 * (scale / v),
            "{deg}°, {v} m/s: d/dv = {ds}, by hand {d_v}"
        );
        // Drag only shortens the shot.
        assert!(dk < 0.0, "{deg}°, {v} m/s: d/ddrag = {dk}");
    }
    // 45° is the longest drag-free shot: the angle derivative vanishes there (up to O(dt)).
    let (_, (da, _, _)) = landing_grad(std::f64::consts::FRAC_PI_4, 20.0, 0.0, h, dt);
    assert!(da.abs() < 1e-2, "d/dθ at 45° = {da}");
}

#[test]
fn the_fit_recovers_the_angle_and_drag_that_made_the_targets() {
    for (deg, drag) in [(40.0, 0.01), (25.0, 0.002), (60.0, 0.03)] {
        let angle = f64::to_radians(deg);
        let shots: Vec<Shot> = [18.0, 32.0]
            .iter()
            .map(|&speed| Shot {
                speed,
                target: landing(angle, speed, drag, HEIGHT, DT),
            })
            .collect();
        // From the example's default start (30°, no drag); the high shot from 70°.
        let start = if deg > 45.0 { 70.0 } else { 30.0 };
        let r = fit(&shots, f64::to_radians(start), 0.0, HEIGHT, DT, 1e-9, 50);
        assert!(r.converged, "{deg}°, drag {drag}: not converged: {r:?}");
        for s in &shots {
            let d = landing(r.angle, s.speed, r.drag, HEIGHT, DT);
            assert!((d - s.target).abs() < 1e-9, "{s:?} lands at {d}");
        }
        assert!(
            (r.angle - angle).abs() < 1e-8 && (r.drag - drag).abs() < 1e-8,
            "{deg}°, drag {drag}: fitted {}°, drag {}",
            r.angle.to_degrees(),
            r.drag
        );
    }
}

#[test]
fn the_examples_default_targets_are_hit() {
    let shots = [
        Shot {
            speed: 20.0,
            target: 30.0,
        },
        Shot {
            speed: 35.0,
            target: 60.0,
        },
    ];
    let r = fit(&shots, 30f64.to_radians(), 0.0, HEIGHT, DT, 1e-6, 50);
    assert!(r.converged && r.iters <= 20, "{r:?}");
    for s in &shots {
        assert!((landing(r.angle, s.speed, r.drag, HEIGHT, DT) - s.target).abs() < 1e-6);
    }
    // One target: the angle alone at a fixed drag.
    let one = [Shot {
        speed: 30.0,
        target: 60.0,
    }];
    let r = fit(&one, 30f64.to_radians(), 0.005, HEIGHT, DT, 1e-6, 50);
    assert!(r.converged && r.drag == 0.005, "{r:?}");
    // Beyond the longest shot at that speed: no convergence, and the fit says so.
    let far = [Shot {
        speed: 10.0,
        target: 100.0,
    }];
    assert!(!fit(&far, 30f64.to_radians(), 0.0, HEIGHT, DT, 1e-6, 50).converged);
}

#[test]
fn the_checks_can_fail() {
    // The tolerance of the finite-difference check rejects a gradient off by 1e-4, and the
    // drag-free range check a range off by one step.
    let p = [0.7, 25.0, 0.01];
    let want = fd(&f(HEIGHT, DT), &p, 1e-7);
    let (_, (da, ds, dk)) = landing_grad(p[0], p[1], p[2], HEIGHT, DT);
    for (got, want) in [(da, want[0]), (ds, want[1]), (dk, want[2])] {
        assert!(close(got, want, 1e-5));
        assert!(!close(got * (1.0 + 1e-4), want, 1e-5));
    }
    let (th, v, dt) = (0.5f64, 20.0, 1e-4);
    let r = landing(th, v, 0.0, 1e-12, dt);
    let by_hand = v * v * (2.0 * th).sin() / G - v * th.cos() * dt;
    assert!((r - by_hand).abs() < 1e-6 * v * v / G);
    assert!((r + v * th.cos() * dt - by_hand).abs() > 1e-6 * v * v / G);
}
