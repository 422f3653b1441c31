//! Optimizer updates checked against values computed by hand.

use nalgebra::{DMatrix, DVector};
use symgrad_runtime::optim::{Adam, AdamConfig, AdamW, AdamWConfig, Optimizer, Sgd, SgdConfig};
use symgrad_runtime::params::{Params, Tensor, join_name};

/// A tiny hand-written model: one matrix and one vector.
#[derive(Clone, Debug, PartialEq)]
struct Small {
    w: DMatrix<f32>,
    b: DVector<f32>,
}

impl Params for Small {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &dyn Tensor)) {
        self.w.visit(&join_name(prefix, "w"), f);
        self.b.visit(&join_name(prefix, "b"), f);
    }
    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut dyn Tensor)) {
        self.w.visit_mut(&join_name(prefix, "w"), f);
        self.b.visit_mut(&join_name(prefix, "b"), f);
    }
    fn visit_with(
        &mut self,
        other: &Self,
        prefix: &str,
        f: &mut dyn FnMut(&str, &mut dyn Tensor, &dyn Tensor),
    ) {
        self.w.visit_with(&other.w, &join_name(prefix, "w"), f);
        self.b.visit_with(&other.b, &join_name(prefix, "b"), f);
    }
}

fn scalar(x: f32) -> DVector<f32> {
    DVector::from_element(1, x)
}

fn close(a: f32, b: f64, tol: f64) {
    assert!(
        (f64::from(a) - b).abs() <= tol,
        "got {a}, expected {b} (tolerance {tol})"
    );
}

#[test]
fn adam_defaults_are_pytorch_defaults() {
    let c = AdamConfig::default();
    assert_eq!(
        (c.lr, c.beta1, c.beta2, c.eps, c.weight_decay),
        (1e-3, 0.9, 0.999, 1e-8, 0.0)
    );
    let c = AdamWConfig::default();
    assert_eq!(
        (c.lr, c.beta1, c.beta2, c.eps, c.weight_decay),
        (1e-3, 0.9, 0.999, 1e-8, 0.01)
    );
    let c = SgdConfig::default();
    assert_eq!(
        (c.momentum, c.dampening, c.weight_decay, c.nesterov),
        (0.0, 0.0, 0.0, false)
    );
}

#[test]
fn adam_one_step_by_hand() {
    // p = 1.0, g = 0.5, lr = 1e-3:
    // m = 0.1 * 0.5 = 0.05, v = 0.001 * 0.25 = 0.00025
    // m_hat = 0.05 / (1 - 0.9) = 0.5, v_hat = 0.00025 / (1 - 0.999) = 0.25
    // update = lr * 0.5 / (sqrt(0.25) + 1e-8) = 1e-3 * 0.5 / (0.5 + 1e-8) ≈ 1e-3
    // p = 1.0 - 0.001 = 0.999
    let mut p = scalar(1.0);
    let mut opt = Adam::default();
    opt.step(&mut p, &scalar(0.5));
    close(p[0], 1.0 - 1e-3 * 0.5 / (0.5 + 1e-8), 1e-7);
    assert_eq!(opt.steps(), 1);
}

#[test]
fn adam_two_steps_by_hand() {
    // Step 1 as above: p = 0.999, m = 0.05, v = 0.00025.
    // Step 2 with g = -1.0:
    // m = 0.9 * 0.05 + 0.1 * (-1) = -0.055
    // v = 0.999 * 0.00025 + 0.001 * 1 = 0.00124975
    // m_hat = -0.055 / (1 - 0.81) = -0.289473684...
    // v_hat = 0.00124975 / (1 - 0.998001) = 0.625187593...
    // update = 1e-3 * m_hat / (sqrt(v_hat) + 1e-8) = -0.000366103...
    // p = 0.999 + 0.000366103 = 0.999366103
    let mut p = scalar(1.0);
    let mut opt = Adam::default();
    opt.step(&mut p, &scalar(0.5));
    opt.step(&mut p, &scalar(-1.0));
    let m_hat = -0.055_f64 / 0.19;
    let v_hat = 0.001_249_75_f64 / 0.001_999;
    let expected = 0.999 - 1e-3 * m_hat / (v_hat.sqrt() + 1e-8);
    close(p[0], expected, 1e-6);
    close(p[0], 0.999_366_103, 1e-6);
}

#[test]
fn adam_l2_weight_decay_is_added_to_the_gradient() {
    // g = 0 + 0.5 * p = 0.5 with p = 1: the same first step as a gradient of 0.5 → 0.999.
    let mut p = scalar(1.0);
    let mut opt = Adam::new(AdamConfig {
        weight_decay: 0.5,
        ..AdamConfig::default()
    });
    opt.step(&mut p, &scalar(0.0));
    close(p[0], 0.999, 1e-7);
    // Without decay a zero gradient does not move the parameter.
    let mut q = scalar(1.0);
    Adam::default().step(&mut q, &scalar(0.0));
    assert_eq!(q[0], 1.0);
}

#[test]
fn adamw_decoupled_decay_by_hand() {
    // p = 1, g = 0.5, lr = 1e-3, wd = 0.01:
    // p *= 1 - 1e-3 * 0.01 → 0.99999; then the Adam step of ≈ 1e-3 → 0.99899.
    let mut p = scalar(1.0);
    let mut opt = AdamW::default();
    opt.step(&mut p, &scalar(0.5));
    close(p[0], 0.99999 - 1e-3 * 0.5 / (0.5 + 1e-8), 1e-7);

    // Zero gradient: only the decay acts, p = (1 - lr * wd)^2 after two steps.
    let mut p = scalar(2.0);
    let mut opt = AdamW::new(AdamWConfig {
        lr: 0.1,
        weight_decay: 0.5,
        ..AdamWConfig::default()
    });
    opt.step(&mut p, &scalar(0.0));
    opt.step(&mut p, &scalar(0.0));
    close(p[0], 2.0 * 0.95 * 0.95, 1e-6);
}

#[test]
fn sgd_plain_and_weight_decay() {
    // p = 1, g = 0.5, wd = 0.1, lr = 0.1: g' = 0.6, p = 1 - 0.06 = 0.94.
    let mut p = scalar(1.0);
    let mut opt = Sgd::new(SgdConfig {
        lr: 0.1,
        weight_decay: 0.1,
        ..SgdConfig::default()
    });
    opt.step(&mut p, &scalar(0.5));
    close(p[0], 0.94, 1e-7);
}

#[test]
fn sgd_momentum_two_steps_by_hand() {
    // lr = 0.1, momentum = 0.9, p = 1, g = 0.5 twice:
    // step 1: buf = g = 0.5,              p = 1 - 0.1 * 0.5 = 0.95
    // step 2: buf = 0.9 * 0.5 + 0.5 = 0.95, p = 0.95 - 0.1 * 0.95 = 0.855
    let mut p = scalar(1.0);
    let mut opt = Sgd::new(SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        ..SgdConfig::default()
    });
    opt.step(&mut p, &scalar(0.5));
    close(p[0], 0.95, 1e-7);
    opt.step(&mut p, &scalar(0.5));
    close(p[0], 0.855, 1e-6);
}

#[test]
fn sgd_nesterov_two_steps_by_hand() {
    // lr = 0.1, momentum = 0.9, nesterov, p = 1, g = 0.5 twice:
    // step 1: buf = 0.5,  d = 0.5 + 0.9 * 0.5 = 0.95,   p = 1 - 0.095 = 0.905
    // step 2: buf = 0.95, d = 0.5 + 0.9 * 0.95 = 1.355, p = 0.905 - 0.1355 = 0.7695
    let mut p = scalar(1.0);
    let mut opt = Sgd::new(SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        nesterov: true,
        ..SgdConfig::default()
    });
    opt.step(&mut p, &scalar(0.5));
    close(p[0], 0.905, 1e-6);
    opt.step(&mut p, &scalar(0.5));
    close(p[0], 0.7695, 1e-6);
}

#[test]
fn sgd_dampening() {
    // momentum 0.9, dampening 0.5, lr 1: step 1 buf = g = 1 (no dampening on the first step),
    // step 2 buf = 0.9 * 1 + 0.5 * 1 = 1.4. p = 0 - 1 - 1.4 = -2.4.
    let mut p = scalar(0.0);
    let mut opt = Sgd::new(SgdConfig {
        lr: 1.0,
        momentum: 0.9,
        dampening: 0.5,
        ..SgdConfig::default()
    });
    opt.step(&mut p, &scalar(1.0));
    opt.step(&mut p, &scalar(1.0));
    close(p[0], -2.4, 1e-6);
}

#[test]
#[should_panic(expected = "Nesterov")]
fn sgd_nesterov_needs_momentum() {
    let _ = Sgd::new(SgdConfig {
        nesterov: true,
        ..SgdConfig::default()
    });
}

/// f(w, b) = sum((w - 3)^2) + sum((b + 1)^2); gradient 2(w - 3), 2(b + 1).
fn quadratic_grad(m: &Small) -> Small {
    Small {
        w: m.w.map(|x| 2.0 * (x - 3.0)),
        b: m.b.map(|x| 2.0 * (x + 1.0)),
    }
}

fn start() -> Small {
    Small {
        w: DMatrix::from_row_slice(2, 3, &[0.0, 1.0, -2.0, 5.0, 10.0, -7.0]),
        b: DVector::from_vec(vec![4.0, -4.0]),
    }
}

fn assert_at_minimum(m: &Small, tol: f32) {
    for &x in m.w.iter() {
        assert!((x - 3.0).abs() < tol, "w = {}", m.w);
    }
    for &x in m.b.iter() {
        assert!((x + 1.0).abs() < tol, "b = {}", m.b);
    }
}

#[test]
fn adam_minimises_a_quadratic() {
    let mut m = start();
    let mut opt = Adam::new(AdamConfig {
        lr: 0.1,
        ..AdamConfig::default()
    });
    for _ in 0..2000 {
        let g = quadratic_grad(&m);
        opt.step(&mut m, &g);
    }
    assert_at_minimum(&m, 1e-3);
}

#[test]
fn adamw_and_sgd_minimise_a_quadratic() {
    let mut m = start();
    let mut opt = AdamW::new(AdamWConfig {
        lr: 0.1,
        weight_decay: 0.0,
        ..AdamWConfig::default()
    });
    for _ in 0..2000 {
        let g = quadratic_grad(&m);
        opt.step(&mut m, &g);
    }
    assert_at_minimum(&m, 1e-3);

    let mut m = start();
    let mut opt = Sgd::new(SgdConfig {
        lr: 0.05,
        momentum: 0.9,
        nesterov: true,
        ..SgdConfig::default()
    });
    for _ in 0..500 {
        let g = quadratic_grad(&m);
        opt.step(&mut m, &g);
    }
    assert_at_minimum(&m, 1e-4);
}

#[test]
fn set_lr_changes_the_step() {
    let mut p = scalar(1.0);
    let mut opt = Sgd::default();
    opt.set_lr(0.5);
    assert_eq!(opt.lr(), 0.5);
    opt.step(&mut p, &scalar(1.0));
    close(p[0], 0.5, 1e-7);
}

#[test]
#[should_panic(expected = "optimizer state was created for")]
fn state_mismatch_panics_clearly() {
    let mut opt = Adam::default();
    let mut a = scalar(1.0);
    opt.step(&mut a, &scalar(1.0));
    // A different model (other size) with the same optimizer.
    let mut b = DVector::from_element(3, 1.0_f32);
    opt.step(&mut b, &DVector::from_element(3, 1.0));
}

/// Two leaves, both visited under the prefix itself.
struct Two(DVector<f32>, DVector<f32>);

impl Params for Two {
    fn visit(&self, p: &str, f: &mut dyn FnMut(&str, &dyn Tensor)) {
        self.0.visit(p, f);
        self.1.visit(p, f);
    }
    fn visit_mut(&mut self, p: &str, f: &mut dyn FnMut(&str, &mut dyn Tensor)) {
        self.0.visit_mut(p, f);
        self.1.visit_mut(p, f);
    }
    fn visit_with(
        &mut self,
        o: &Self,
        p: &str,
        f: &mut dyn FnMut(&str, &mut dyn Tensor, &dyn Tensor),
    ) {
        self.0.visit_with(&o.0, p, f);
        self.1.visit_with(&o.1, p, f);
    }
}

#[test]
#[should_panic(expected = "more tensors than at the first step")]
fn more_tensors_panics_clearly() {
    let mut opt = Sgd::default();
    // State for one tensor named "" ...
    opt.step(&mut scalar(1.0), &scalar(1.0));
    // ... then a model whose first tensor matches but which has a second one.
    let mut two = Two(scalar(1.0), scalar(1.0));
    opt.step(&mut two, &Two(scalar(1.0), scalar(1.0)));
}

#[test]
#[should_panic(expected = "the model now has 1 tensors, the optimizer state has 2")]
fn fewer_tensors_panics_clearly() {
    let mut opt = Adam::default();
    opt.step(
        &mut Two(scalar(1.0), scalar(1.0)),
        &Two(scalar(1.0), scalar(1.0)),
    );
    opt.step(&mut scalar(1.0), &scalar(1.0));
}
