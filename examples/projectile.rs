//! Differentiating through an iterative solver written the natural way (issue 9): a projectile
//! with quadratic drag is integrated by a `#[differentiable]` fn with a `while y > 0.0` loop,
//! and its landing distance is fitted to targets by Gauss-Newton, with the Jacobian from the
//! generated `landing_grad`.
//!
//! Two shots at two speeds with their landing distances (`--target SPEED:DISTANCE`, twice) fix
//! the launch angle and the drag coefficient (two equations, two unknowns); one shot fixes the
//! angle at a given `--drag`. The simulation is in `examples/common/projectile.rs`.
//!
//! Run: `cargo run --release --example projectile` (the default targets: 20 m/s lands at 30 m
//! and 35 m/s at 60 m, from 1.5 m up), `-- --target 30:60 --drag 0.005` (the angle alone; with `--angle 60`, the high shot), or
//! `-- --help`. Exits with an error if the fit does not converge.

use clap::Parser;
use std::process::ExitCode;
use std::time::Instant;

#[path = "common/projectile.rs"]
mod sim;

use sim::{Shot, fit, landing};

#[derive(Parser)]
#[command(
    about = "Fits a projectile's launch angle (and drag) to landing targets, through a while loop"
)]
struct Args {
    /// A shot: launch speed (m/s) and where it must land (m), as SPEED:DISTANCE. Once: fit the
    /// angle (drag from --drag); twice, at two speeds: fit the angle and the drag.
    #[arg(long = "target", value_parser = parse_shot, num_args = 1)]
    targets: Vec<Shot>,
    /// The drag coefficient (1/m): fixed with one target, the starting guess with two.
    #[arg(long, default_value_t = 0.0)]
    drag: f64,
    /// The starting launch angle, degrees.
    #[arg(long, default_value_t = 30.0)]
    angle: f64,
    /// The launch height, m.
    #[arg(long, default_value_t = 1.5)]
    height: f64,
    /// The time step of the integration, s.
    #[arg(long, default_value_t = 1e-3)]
    dt: f64,
    /// Gauss-Newton iterations at most.
    #[arg(long, default_value_t = 50)]
    iters: usize,
    /// Stop when every shot lands within this distance of its target, m.
    #[arg(long, default_value_t = 1e-6)]
    tol: f64,
}

fn parse_shot(s: &str) -> Result<Shot, String> {
    let (v, d) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}`: expected SPEED:DISTANCE, e.g. 20:30"))?;
    let num = |t: &str| {
        t.trim()
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x > 0.0)
            .ok_or_else(|| format!("`{t}` in `{s}` is not a positive number"))
    };
    Ok(Shot {
        speed: num(v)?,
        target: num(d)?,
    })
}

fn main() -> ExitCode {
    let mut args = Args::parse();
    if args.targets.is_empty() {
        args.targets = vec![
            Shot {
                speed: 20.0,
                target: 30.0,
            },
            Shot {
                speed: 35.0,
                target: 60.0,
            },
        ];
    }
    if args.targets.len() > 2 {
        eprintln!("error: at most two --target (two unknowns: the angle and the drag)");
        return ExitCode::from(2);
    }
    if args.targets.len() == 2 && args.targets[0].speed == args.targets[1].speed {
        eprintln!("error: the two --target need two different speeds");
        return ExitCode::from(2);
    }
    if !(args.dt > 0.0 && args.dt < 0.1) || args.height < 0.0 || args.drag < 0.0 {
        eprintln!("error: need 0 < --dt < 0.1, --height >= 0 and --drag >= 0");
        return ExitCode::from(2);
    }
    let shots = &args.targets;
    println!(
        "Projectile with quadratic drag from {} m, dt = {} s; fitting {} to:",
        args.height,
        args.dt,
        if shots.len() == 1 {
            format!("the launch angle (drag {} 1/m)", args.drag)
        } else {
            "the launch angle and the drag".to_string()
        }
    );
    for s in shots {
        println!("  {} m/s lands at {} m", s.speed, s.target);
    }
    let t = Instant::now();
    let f = fit(
        shots,
        args.angle.to_radians(),
        args.drag,
        args.height,
        args.dt,
        args.tol,
        args.iters,
    );
    let secs = t.elapsed().as_secs_f64();
    for &(i, a, k, e) in &f.history {
        println!(
            "iteration {i:3}: angle {:9.5}°, drag {k:.6e} 1/m, max landing error {e:.3e} m",
            a.to_degrees()
        );
    }
    for s in shots {
        let d = landing(f.angle, s.speed, f.drag, args.height, args.dt);
        println!(
            "  {} m/s: lands at {d:.9} m (target {} m, error {:+.3e} m)",
            s.speed,
            s.target,
            d - s.target
        );
    }
    println!(
        "{} after {} iterations in {:.3} ms: angle {:.6}°, drag {:.6e} 1/m, max landing error {:.3e} m",
        if f.converged {
            "converged"
        } else {
            "NOT converged"
        },
        f.iters,
        secs * 1e3,
        f.angle.to_degrees(),
        f.drag,
        f.error
    );
    if f.converged {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "error: no angle{} within {} iterations lands within {} m of the target{} (beyond the \
             longest shot at that speed?)",
            if shots.len() == 2 { " and drag" } else { "" },
            args.iters,
            args.tol,
            if shots.len() == 2 { "s" } else { "" }
        );
        ExitCode::FAILURE
    }
}
