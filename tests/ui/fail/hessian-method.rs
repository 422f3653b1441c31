use symgrad::differentiable;

struct Model {
    w: f64,
}

impl Model {
    // Methods (a `self` parameter) have no `_hvp`.
    #[differentiable(hessian)]
    fn loss(&self, x: f64) -> f64 {
        x * x
    }
}

fn main() {}
