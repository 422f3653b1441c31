//! The tensor side of `#[differentiable]`: parameter structs, layers, the MLP loss.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use symgrad::prelude::*;

#[derive(Clone, Debug, Params)]
struct Mlp {
    layer1: Linear,
    layer2: Linear,
    layer3: Linear,
}

impl Mlp {
    fn new(sizes: [usize; 4], rng: &mut ChaCha8Rng) -> Self {
        Mlp {
            layer1: Linear::new(sizes[0], sizes[1], rng),
            layer2: Linear::new(sizes[1], sizes[2], rng),
            layer3: Linear::new(sizes[2], sizes[3], rng),
        }
    }
}

#[differentiable(wrt(model))]
fn loss(model: &Mlp, x: &DMatrix<f32>, labels: &[u8]) -> f32 {
    let h1 = relu(&model.layer1.forward(x));
    let h2 = relu(&model.layer2.forward(&h1));
    let logits = model.layer3.forward(&h2);
    cross_entropy(&logits, labels)
}

/// `loss` with each layer's bias and ReLU fused (`Linear::forward_relu`): the training step of
/// the mnist example.
#[differentiable(wrt(model))]
fn loss_fused(model: &Mlp, x: &DMatrix<f32>, labels: &[u8]) -> f32 {
    let h1 = model.layer1.forward_relu(x);
    let h2 = model.layer2.forward_relu(&h1);
    let logits = model.layer3.forward(&h2);
    cross_entropy(&logits, labels)
}

/// The backward pass of `loss`, written by hand (only here, to check the generated one).
fn hand_backward(m: &Mlp, x: &DMatrix<f32>, labels: &[u8]) -> (f32, Mlp) {
    let lin = |l: &Linear, x: &DMatrix<f32>| {
        let mut y = x * l.weight.transpose();
        for mut row in y.row_iter_mut() {
            row += l.bias.transpose();
        }
        y
    };
    let z1 = lin(&m.layer1, x);
    let h1 = z1.map(|v| v.max(0.0));
    let z2 = lin(&m.layer2, &h1);
    let h2 = z2.map(|v| v.max(0.0));
    let z3 = lin(&m.layer3, &h2);
    let n = x.nrows();
    // softmax cross-entropy: dL/dz3 = (softmax(z3) - onehot) / n
    let mut dz3 = z3.clone();
    let mut loss = 0.0f32;
    for r in 0..n {
        let mx = z3.row(r).max();
        let s: f32 = z3.row(r).iter().map(|v| (v - mx).exp()).sum();
        loss += -(z3[(r, labels[r] as usize)] - mx - s.ln());
        for c in 0..z3.ncols() {
            dz3[(r, c)] = ((z3[(r, c)] - mx).exp() / s
                - if c == labels[r] as usize { 1.0 } else { 0.0 })
                / n as f32;
        }
    }
    loss /= n as f32;
    let grad_layer = |dz: &DMatrix<f32>, input: &DMatrix<f32>| Linear {
        weight: dz.transpose() * input,
        bias: DVector::from_iterator(dz.ncols(), dz.column_iter().map(|c| c.sum())),
    };
    let g3 = grad_layer(&dz3, &h2);
    let dh2 = &dz3 * &m.layer3.weight;
    let dz2 = dh2.zip_map(&z2, |g, z| if z > 0.0 { g } else { 0.0 });
    let g2 = grad_layer(&dz2, &h1);
    let dh1 = &dz2 * &m.layer2.weight;
    let dz1 = dh1.zip_map(&z1, |g, z| if z > 0.0 { g } else { 0.0 });
    let g1 = grad_layer(&dz1, x);
    (
        loss,
        Mlp {
            layer1: g1,
            layer2: g2,
            layer3: g3,
        },
    )
}

fn max_rel_diff(a: &Mlp, b: &Mlp) -> f32 {
    let mut worst = 0.0f32;
    let mut bs = Vec::new();
    b.visit("", &mut |_, t| bs.push(t.as_slice().to_vec()));
    let mut k = 0;
    a.visit("", &mut |name, t| {
        let other = &bs[k];
        k += 1;
        assert_eq!(t.as_slice().len(), other.len(), "{name}");
        let scale = other.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
        for (x, y) in t.as_slice().iter().zip(other) {
            worst = worst.max((x - y).abs() / scale);
        }
    });
    worst
}

#[test]
fn mlp_784_128_64_10_matches_hand_written_backward() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let model = Mlp::new([784, 128, 64, 10], &mut rng);
    let x = DMatrix::from_fn(64, 784, |_, _| rng.gen_range(0.0f32..1.0));
    let labels: Vec<u8> = (0..64).map(|_| rng.gen_range(0..10)).collect();
    let (value, grad) = loss_grad(&model, &x, &labels);
    let (hand_value, hand) = hand_backward(&model, &x, &labels);
    // The original computes `x * w.transpose()` with nalgebra, the generated forward pass
    // with the runtime's GEMM: the same value up to the order of the sums.
    let original = loss(&model, &x, &labels);
    assert!(
        (value - original).abs() < 1e-5,
        "generated forward {value}, original {original}"
    );
    assert!((value - hand_value).abs() < 1e-5, "{value} vs {hand_value}");
    let d = max_rel_diff(&grad, &hand);
    assert!(
        d < 1e-4,
        "generated and hand-written gradients differ by {d} (relative to each tensor's max)"
    );
    assert_eq!(
        grad.names(),
        [
            "layer1.weight",
            "layer1.bias",
            "layer2.weight",
            "layer2.bias",
            "layer3.weight",
            "layer3.bias"
        ]
    );
}

/// 1-2-1 network, ReLU on hidden and output, MSE against target 28, by hand:
///   x = 2; hidden weights (2, 3), zero biases: z1 = (4, 6), h = relu(z1) = (4, 6)
///   output weights (2, 3): z2 = 2*4 + 3*6 = 26, y = relu(26) = 26
///   L = (y - 28)^2 = 4 (mse over one element)
///   dL/dy = 2 (y - 28) = -4; relu' = 1 -> dL/dz2 = -4
///   dL/dW2 = dz2 * h = (-16, -24); dL/db2 = -4
///   dL/dh = dz2 * W2 = (-8, -12); relu' = 1 -> dL/dz1 = (-8, -12)
///   dL/dW1 = dz1 * x = (-16, -24); dL/db1 = (-8, -12)
#[derive(Clone, Debug, Params)]
struct Tiny {
    hidden: Linear,
    out: Linear,
}

#[differentiable(wrt(net))]
fn tiny_loss(net: &Tiny, x: &DMatrix<f32>, target: &DMatrix<f32>) -> f32 {
    let h = relu(&net.hidden.forward(x));
    let y = relu(&net.out.forward(&h));
    mse(&y, target)
}

#[test]
fn one_two_one_network_by_hand() {
    let net = Tiny {
        hidden: Linear::from_parts(
            DMatrix::from_column_slice(2, 1, &[2.0, 3.0]),
            DVector::zeros(2),
        ),
        out: Linear::from_parts(
            DMatrix::from_row_slice(1, 2, &[2.0, 3.0]),
            DVector::zeros(1),
        ),
    };
    let x = DMatrix::from_element(1, 1, 2.0f32);
    let target = DMatrix::from_element(1, 1, 28.0f32);
    let (l, g) = tiny_loss_grad(&net, &x, &target);
    assert_eq!(l, 4.0);
    assert_eq!(tiny_loss(&net, &x, &target), 4.0);
    assert_eq!(g.out.weight.as_slice(), &[-16.0, -24.0]);
    assert_eq!(g.out.bias.as_slice(), &[-4.0]);
    assert_eq!(g.hidden.weight.as_slice(), &[-16.0, -24.0]);
    assert_eq!(g.hidden.bias.as_slice(), &[-8.0, -12.0]);
}

/// An f64 network written with bare matrices, every supported tensor operation on the way:
/// product with a transposed operand, `a.transpose() * b`, bias broadcast, scalar times
/// matrix, element-wise product, `+`/`-`, sigmoid, tanh, log_softmax, sum, mean, L2, and
/// the function forms `matmul_nt`/`matmul_tn`.
#[differentiable(wrt(w1, b1, w2, s))]
fn net64(
    w1: &DMatrix<f64>,
    b1: &DVector<f64>,
    w2: &DMatrix<f64>,
    s: f64,
    x: &DMatrix<f64>,
    labels: &[u8],
) -> f64 {
    let z1 = add_bias(&(x * w1.transpose()), b1);
    let h1 = tanh(&z1);
    let g = sigmoid(&(&z1 * s));
    let h = h1.component_mul(&g) + &h1 - &g * 0.5;
    let logits = &h * w2.transpose();
    let gram = w1.transpose() * w1;
    let fn_forms = matmul_nt(&h, w2).sum() + 0.1 * matmul_tn(w2, w2).mean();
    let lp = log_softmax(&logits);
    cross_entropy(&logits, labels) + 0.01 * l2_penalty(w2) - 0.001 * lp.mean()
        + 1e-3 * gram.sum()
        + 0.01 * fn_forms
}

#[test]
fn every_tensor_op_matches_central_differences_f64() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let w1 = DMatrix::from_fn(5, 4, |_, _| rng.gen_range(-1.0..1.0));
    let b1 = DVector::from_fn(5, |_, _| rng.gen_range(-1.0..1.0));
    let w2 = DMatrix::from_fn(3, 5, |_, _| rng.gen_range(-1.0..1.0));
    let s = 0.7;
    let x = DMatrix::from_fn(6, 4, |_, _| rng.gen_range(-1.0..1.0));
    let labels = [0u8, 2, 1, 1, 0, 2];
    let (_, (g_w1, g_b1, g_w2, g_s)) = net64_grad(&w1, &b1, &w2, s, &x, &labels);
    let h = 1e-6;
    let f = |w1: &DMatrix<f64>, b1: &DVector<f64>, w2: &DMatrix<f64>, s: f64| {
        net64(w1, b1, w2, s, &x, &labels)
    };
    let check = |name: &str, analytic: f64, numeric: f64| {
        let tol = 1e-6 * (1.0 + numeric.abs());
        assert!(
            (analytic - numeric).abs() < tol,
            "{name}: generated {analytic}, central difference {numeric}"
        );
    };
    for i in 0..w1.len() {
        let (mut p, mut m) = (w1.clone(), w1.clone());
        p[i] += h;
        m[i] -= h;
        check(
            &format!("w1[{i}]"),
            g_w1[i],
            (f(&p, &b1, &w2, s) - f(&m, &b1, &w2, s)) / (2.0 * h),
        );
    }
    for i in 0..b1.len() {
        let (mut p, mut m) = (b1.clone(), b1.clone());
        p[i] += h;
        m[i] -= h;
        check(
            &format!("b1[{i}]"),
            g_b1[i],
            (f(&w1, &p, &w2, s) - f(&w1, &m, &w2, s)) / (2.0 * h),
        );
    }
    for i in 0..w2.len() {
        let (mut p, mut m) = (w2.clone(), w2.clone());
        p[i] += h;
        m[i] -= h;
        check(
            &format!("w2[{i}]"),
            g_w2[i],
            (f(&w1, &b1, &p, s) - f(&w1, &b1, &m, s)) / (2.0 * h),
        );
    }
    check(
        "s",
        g_s,
        (f(&w1, &b1, &w2, s + h) - f(&w1, &b1, &w2, s - h)) / (2.0 * h),
    );
}

/// `#[params(skip)]`: a configuration field is not a parameter; the gradient carries it along.
#[derive(Clone, Debug, Params)]
struct Leaky {
    layer: Linear,
    #[params(skip)]
    slope: f32,
}

#[differentiable(wrt(net))]
fn leaky_loss(net: &Leaky, x: &DMatrix<f32>, target: &DMatrix<f32>) -> f32 {
    let y = leaky_relu(&net.layer.forward(x), no_grad(net.slope));
    mse(&y, target)
}

#[test]
fn skipped_fields_are_not_parameters() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let net = Leaky {
        layer: Linear::new(3, 2, &mut rng),
        slope: 0.1,
    };
    assert_eq!(net.names(), ["layer.weight", "layer.bias"]);
    let x = DMatrix::from_fn(4, 3, |_, _| rng.gen_range(-1.0..1.0f32));
    let t = DMatrix::from_element(4, 2, 0.5f32);
    let (l, g) = leaky_loss_grad(&net, &x, &t);
    assert_eq!(l, leaky_loss(&net, &x, &t));
    assert_eq!(g.slope, 0.1, "copied, not differentiated");
    // d/db_j of mean((leaky(xWᵀ+b) - t)²) = Σ_i 2 (y_ij - t_ij) leaky'(z_ij) / (rows·cols)
    let z = add_bias(&matmul_nt(&x, &net.layer.weight), &net.layer.bias);
    for j in 0..2 {
        let mut want = 0.0f32;
        for i in 0..4 {
            let (zij, d) = if z[(i, j)] > 0.0 {
                (z[(i, j)], 1.0)
            } else {
                (0.1 * z[(i, j)], 0.1)
            };
            want += 2.0 * (zij - 0.5) * d / 8.0;
        }
        assert!(
            (g.layer.bias[j] - want).abs() < 1e-6,
            "{} vs {want}",
            g.layer.bias[j]
        );
    }
}

#[differentiable]
#[allow(dead_code)] // only the generated gradient is called
fn add_mismatched(a: &DMatrix<f64>, b: &DMatrix<f64>) -> f64 {
    (a + b).sum()
}

#[test]
#[should_panic(expected = "element-wise `+`: left operand is 2x3 but right operand is 3x2")]
fn shape_mismatch_names_both_shapes() {
    let _ = add_mismatched_grad(&DMatrix::zeros(2, 3), &DMatrix::zeros(3, 2));
}

#[differentiable]
#[allow(dead_code)] // only the generated gradient is called
fn product_mismatched(a: &DMatrix<f64>, b: &DMatrix<f64>) -> f64 {
    (a * b).sum()
}

#[test]
#[should_panic(expected = "left operand is 2x3 and right operand is 2x3")]
fn product_mismatch_names_both_shapes() {
    let _ = product_mismatched_grad(&DMatrix::zeros(2, 3), &DMatrix::zeros(2, 3));
}

/// Methods: a scalar-valued `&self` method gets `_grad` (the gradient of `self` is a `Net`),
/// a matrix-valued one `_vjp` with a matrix seed.
#[derive(Clone, Debug, Params)]
struct Net2 {
    a: Linear,
    b: Linear,
}

impl Net2 {
    #[differentiable]
    fn penalty(&self, scale: f32) -> f32 {
        let p = l2_penalty(&self.a.weight) + l2_penalty(&self.b.weight);
        p * scale
    }

    #[differentiable(wrt(self))]
    fn run(&self, x: &DMatrix<f32>) -> DMatrix<f32> {
        self.b.forward(&relu(&self.a.forward(x)))
    }
}

#[test]
fn methods_get_grad_and_vjp() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let n = Net2 {
        a: Linear::new(3, 4, &mut rng),
        b: Linear::new(4, 2, &mut rng),
    };
    let (v, (g, g_scale)) = n.penalty_grad(2.0);
    assert!((v - n.penalty(2.0)).abs() < 1e-6);
    // d/dW (scale · ½ Σ W²) = scale · W; d/dscale = ½ Σ W² = v / scale
    assert!((&g.a.weight - &n.a.weight * 2.0).abs().max() < 1e-6);
    assert!((&g.b.weight - &n.b.weight * 2.0).abs().max() < 1e-6);
    assert!((g_scale - v / 2.0).abs() < 1e-5);
    let x = DMatrix::from_element(5, 3, 0.3f32);
    let (y, gn) = n.run_vjp(&x, DMatrix::from_element(5, 2, 1.0));
    assert_eq!(y, n.run(&x));
    // the output bias adds to every one of the 5 rows: d Σ y / d b = 5 for each output
    assert_eq!(gn.b.bias.as_slice(), &[5.0, 5.0]);
}

#[test]
fn fused_bias_relu_mlp_matches_the_unfused_one_and_the_hand_written_backward() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let model = Mlp::new([784, 128, 64, 10], &mut rng);
    for batch in [64, 37, 1] {
        let x = DMatrix::from_fn(batch, 784, |_, _| rng.gen_range(0.0f32..1.0));
        let labels: Vec<u8> = (0..batch).map(|_| rng.gen_range(0..10)).collect();
        let (value, grad) = loss_fused_grad(&model, &x, &labels);
        let (unfused_value, unfused) = loss_grad(&model, &x, &labels);
        // The same forward arithmetic: the same loss bit for bit. The weight gradients are the
        // same products of the same masked seeds; only the bias sums are added in another order.
        assert_eq!(value, unfused_value, "batch {batch}");
        // The original (nalgebra's product) agrees up to the order of the sums.
        let original = loss_fused(&model, &x, &labels);
        assert!((value - original).abs() < 1e-5, "{value} vs {original}");
        assert_eq!(grad.layer3, unfused.layer3, "batch {batch}");
        assert_eq!(grad.layer1.weight, unfused.layer1.weight, "batch {batch}");
        let d = max_rel_diff(&grad, &unfused);
        assert!(d < 1e-5, "batch {batch}: fused and unfused differ by {d}");
        let (hand_value, hand) = hand_backward(&model, &x, &labels);
        assert!((value - hand_value).abs() < 1e-5, "{value} vs {hand_value}");
        let d = max_rel_diff(&grad, &hand);
        assert!(
            d < 1e-4,
            "batch {batch}: fused and hand-written differ by {d}"
        );
    }
}
