//! Minimises the Rosenbrock function by gradient descent, with the gradient written by
//! `#[differentiable]` at compile time.
//!
//! Run: `cargo run --release --example rosenbrock`

use symgrad::differentiable;

/// f(x, y) = (1 - x)² + 100 (y - x²)², minimum 0 at (1, 1).
#[differentiable]
fn rosenbrock(x: f64, y: f64) -> f64 {
    (1.0 - x).powi(2) + 100.0 * (y - x * x).powi(2)
}

fn main() {
    let (mut x, mut y) = (-1.2, 1.0);
    // Gradient descent with momentum (heavy ball); the narrow curved valley needs it.
    let (lr, beta) = (1e-3, 0.9);
    let (mut vx, mut vy) = (0.0, 0.0);
    let mut steps = 0;
    for step in 0..100_000 {
        let (f, (dx, dy)) = rosenbrock_grad(x, y);
        if step % 2000 == 0 {
            println!(
                "step {step:6}: f({x:.6}, {y:.6}) = {f:.3e}, |grad| = {:.3e}",
                dx.hypot(dy)
            );
        }
        if dx.hypot(dy) < 1e-8 {
            steps = step;
            break;
        }
        vx = beta * vx - lr * dx;
        vy = beta * vy - lr * dy;
        x += vx;
        y += vy;
        steps = step;
    }
    let f = rosenbrock(x, y);
    println!("after {steps} steps: f({x:.8}, {y:.8}) = {f:.3e} (the minimum is 0 at (1, 1))");
    assert!(
        (x - 1.0).abs() < 1e-4 && (y - 1.0).abs() < 1e-4,
        "did not converge"
    );
}
