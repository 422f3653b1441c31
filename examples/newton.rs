//! Newton-CG with Hessian-vector products from `#[differentiable(hessian)]`, against gradient
//! descent with a backtracking line search, on the N-dimensional Rosenbrock function
//! f(x) = Σ 100 (x_{i+1} - x_i²)² + (1 - x_i)².
//!
//! Trust-region Newton-CG (Steihaug's CG, Nocedal & Wright, Algorithm 7.2): each outer step
//! minimises the quadratic model `gᵀp + pᵀHp / 2` within `|p| <= Δ` by conjugate gradients,
//! where every `H d` is one `rosenbrock_hvp` call (the Hessian is never formed), stopping at
//! a relative residual `min(0.5, sqrt(|g|))`, at the boundary or at negative curvature (then
//! along it to the boundary); the radius follows the ratio of actual to predicted decrease.
//! Gradient descent takes `-g` with an Armijo backtracking line search that starts from
//! twice the last accepted step.
//!
//! Run: `cargo run --release --example newton` (N = 1000, about 6 s: gradient descent needs
//! some 160,000 steps), `-- --start half` (an easy start), or `-- --n 100` (quick).

use clap::Parser;
use std::time::Instant;
use symgrad::differentiable;

#[differentiable(hessian)]
fn rosenbrock(x: &[f64]) -> f64 {
    let mut s = 0.0;
    for i in 0..x.len() - 1 {
        let a = x[i + 1] - x[i] * x[i];
        let b = 1.0 - x[i];
        s += 100.0 * a * a + b * b;
    }
    s
}

#[derive(Parser)]
#[command(
    about = "Trust-region Newton-CG (with _hvp) against gradient descent on the N-d Rosenbrock function"
)]
struct Args {
    /// Dimension.
    #[arg(long, default_value_t = 1000)]
    n: usize,
    /// Stop when the gradient norm is below this.
    #[arg(long, default_value_t = 1e-6)]
    tol: f64,
    /// Outer iterations of Newton-CG at most.
    #[arg(long, default_value_t = 20_000)]
    newton_max_iters: usize,
    /// Iterations of gradient descent at most.
    #[arg(long, default_value_t = 500_000)]
    gd_max_iters: usize,
    /// The starting point.
    #[arg(long, value_enum, default_value = "classic")]
    start: Start,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Start {
    /// (-1.2, 1, -1.2, 1, ...): the classic start, hard for the chained function (the
    /// solution propagates along the chain, a few coordinates per Newton step).
    Classic,
    /// (0.5, 0.5, ...): an easy start.
    Half,
}

fn start(n: usize, s: Start) -> Vec<f64> {
    (0..n)
        .map(|i| match s {
            Start::Half => 0.5,
            Start::Classic if i % 2 == 0 => -1.2,
            Start::Classic => 1.0,
        })
        .collect()
}

/// Armijo backtracking from step `t0` along `d` (`f(x + t d) <= f + 1e-4 t gᵀd`): the step
/// (0 if none is found) and the number of function evaluations.
fn backtrack(
    x: &[f64],
    f: f64,
    g: &[f64],
    d: &[f64],
    t0: f64,
    trial: &mut Vec<f64>,
) -> (f64, usize) {
    let slope = dot(g, d);
    let mut t = t0;
    for k in 1..=60 {
        trial.clear();
        trial.extend(x.iter().zip(d).map(|(a, b)| a + t * b));
        if rosenbrock(trial) <= f + 1e-4 * t * slope {
            return (t, k);
        }
        t *= 0.5;
    }
    (0.0, 60)
}

struct Outcome {
    iters: usize,
    evals: String,
    grad_norm: f64,
    f: f64,
    secs: f64,
    converged: bool,
    x: Vec<f64>,
}

/// `τ >= 0` with `|z + τ d| = delta`.
fn to_boundary(z: &[f64], d: &[f64], delta: f64) -> f64 {
    let (a, b, c) = (dot(d, d), 2.0 * dot(z, d), dot(z, z) - delta * delta);
    (-b + (b * b - 4.0 * a * c).max(0.0).sqrt()) / (2.0 * a)
}

fn newton_cg(n: usize, tol: f64, max_iters: usize, from: Start) -> Outcome {
    let t = Instant::now();
    let mut x = start(n, from);
    let (mut hvps, mut iters, mut fevals) = (0usize, 0usize, 0usize);
    let mut delta: f64 = 1.0;
    let (mut z, mut r, mut d) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    let mut trial = vec![0.0; n];
    let (mut f, mut g) = rosenbrock_grad(&x);
    loop {
        let gn = norm(&g);
        if gn < tol || iters == max_iters {
            return Outcome {
                iters,
                evals: format!("{hvps} Hessian-vector products, {fevals} function evaluations"),
                grad_norm: gn,
                f,
                secs: t.elapsed().as_secs_f64(),
                converged: gn < tol,
                x,
            };
        }
        iters += 1;
        // Steihaug's CG on the model m(p) = gᵀp + pᵀHp / 2 within |p| <= delta.
        let eps = gn * gn.sqrt().min(0.5);
        z.iter_mut().for_each(|v| *v = 0.0);
        r.copy_from_slice(&g);
        d.iter_mut().zip(&g).for_each(|(d, g)| *d = -g);
        let mut rr = dot(&r, &r);
        // H z, kept as r - g; at the boundary H p = H z + τ H d.
        let mut hit_boundary = false;
        for _ in 0..n {
            let (_, _, hd) = rosenbrock_hvp(&x, &d);
            hvps += 1;
            let dhd = dot(&d, &hd);
            let alpha = if dhd > 0.0 { rr / dhd } else { f64::INFINITY };
            let z_norm_after = if alpha.is_finite() {
                z.iter()
                    .zip(&d)
                    .map(|(z, d)| (z + alpha * d).powi(2))
                    .sum::<f64>()
                    .sqrt()
            } else {
                f64::INFINITY
            };
            if dhd <= 0.0 || z_norm_after >= delta {
                // Negative curvature or outside the region: go to the boundary along d.
                let tau = to_boundary(&z, &d, delta);
                z.iter_mut().zip(&d).for_each(|(z, d)| *z += tau * d);
                r.iter_mut().zip(&hd).for_each(|(r, h)| *r += tau * h);
                hit_boundary = true;
                break;
            }
            z.iter_mut().zip(&d).for_each(|(z, d)| *z += alpha * d);
            r.iter_mut().zip(&hd).for_each(|(r, h)| *r += alpha * h);
            let rr_new = dot(&r, &r);
            if rr_new.sqrt() < eps {
                break;
            }
            let beta = rr_new / rr;
            rr = rr_new;
            d.iter_mut().zip(&r).for_each(|(d, r)| *d = -r + beta * *d);
        }
        // m(p) = gᵀp + pᵀ(H p) / 2 with H p = r - g.
        let model: f64 = z
            .iter()
            .zip(g.iter().zip(&r))
            .map(|(p, (g, r))| g * p + 0.5 * p * (r - g))
            .sum();
        trial
            .iter_mut()
            .zip(x.iter().zip(&z))
            .for_each(|(t, (x, p))| *t = x + p);
        let f_trial = rosenbrock(&trial);
        fevals += 1;
        let rho = (f - f_trial) / (-model);
        if rho < 0.25 {
            delta *= 0.25;
        } else if rho > 0.75 && hit_boundary {
            delta = (2.0 * delta).min(1e3);
        }
        if rho > 0.1 {
            std::mem::swap(&mut x, &mut trial);
            (f, g) = rosenbrock_grad(&x);
        }
    }
}

fn gradient_descent(n: usize, tol: f64, max_iters: usize, from: Start) -> Outcome {
    let t = Instant::now();
    let mut x = start(n, from);
    let mut trial = Vec::with_capacity(n);
    let mut step: f64 = 1e-3;
    let mut iters = 0;
    let mut fevals = 0usize;
    loop {
        let (f, g) = rosenbrock_grad(&x);
        let gn = norm(&g);
        if gn < tol || iters == max_iters {
            return Outcome {
                iters,
                evals: format!("{fevals} function evaluations in line searches"),
                grad_norm: gn,
                f,
                secs: t.elapsed().as_secs_f64(),
                converged: gn < tol,
                x,
            };
        }
        iters += 1;
        let d: Vec<f64> = g.iter().map(|v| -v).collect();
        // Start from twice the last accepted step, so the step can grow again.
        let (t_acc, evals) = backtrack(&x, f, &g, &d, 2.0 * step, &mut trial);
        fevals += evals;
        if t_acc == 0.0 {
            break Outcome {
                iters,
                evals: format!("{fevals} function evaluations (line search failed)"),
                grad_norm: gn,
                f,
                secs: t.elapsed().as_secs_f64(),
                converged: false,
                x,
            };
        }
        step = t_acc;
        x.iter_mut().zip(&d).for_each(|(x, d)| *x += step * d);
    }
}

fn report(name: &str, o: &Outcome, tol: f64) {
    let dist = o.x.iter().map(|v| (v - 1.0).powi(2)).sum::<f64>().sqrt();
    println!(
        "{name:>16}: {} after {:6} iterations, {:9.3} ms ({}), f = {:.3e}, |grad| = {:.3e}, |x - 1| = {:.3e}",
        if o.converged {
            format!("|grad| < {tol:.0e}")
        } else {
            "NOT converged".to_string()
        },
        o.iters,
        o.secs * 1e3,
        o.evals,
        o.f,
        o.grad_norm,
        dist,
    );
}

fn main() {
    let args = Args::parse();
    assert!(args.n >= 2, "--n must be at least 2");
    let from = match args.start {
        Start::Classic => "(-1.2, 1, -1.2, 1, ...)",
        Start::Half => "(0.5, 0.5, ...)",
    };
    println!(
        "Rosenbrock, N = {}, from {from}, tolerance |grad| < {:e}",
        args.n, args.tol
    );
    let newton = newton_cg(args.n, args.tol, args.newton_max_iters, args.start);
    report("Newton-CG (hvp)", &newton, args.tol);
    let gd = gradient_descent(args.n, args.tol, args.gd_max_iters, args.start);
    report("gradient descent", &gd, args.tol);
    if newton.converged && gd.converged {
        println!(
            "Newton-CG was {:.1}x faster in wall time",
            gd.secs / newton.secs.max(1e-9)
        );
    } else if newton.converged {
        println!(
            "gradient descent stopped after {} iterations ({:.1}x Newton-CG's time) without reaching the tolerance",
            gd.iters,
            gd.secs / newton.secs.max(1e-9)
        );
    }
    assert!(newton.converged, "Newton-CG did not converge");
}
