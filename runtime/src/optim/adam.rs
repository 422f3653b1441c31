//! Adam and AdamW.

use std::collections::BTreeMap;

use super::state::Taker;
use super::{OptimStateError, Optimizer, OptimizerState, SlotState, StatefulOptimizer};
use crate::params::Params;

/// Hyper-parameters of [`Adam`] (Kingma & Ba, 2015) with PyTorch's `torch.optim.Adam`
/// semantics. [`Default`] gives the paper's and PyTorch's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    /// Learning rate (step size) α. Default `1e-3`.
    pub lr: f32,
    /// Exponential decay rate β₁ of the first-moment (mean) estimate. Default `0.9`.
    pub beta1: f32,
    /// Exponential decay rate β₂ of the second-moment (uncentred variance) estimate.
    /// Default `0.999`.
    pub beta2: f32,
    /// Term added to the denominator `sqrt(v̂)` for numerical stability. Default `1e-8`.
    pub eps: f32,
    /// L2 penalty: `weight_decay * param` is added to the gradient before the moments are
    /// updated (classic, coupled weight decay, as `torch.optim.Adam`). Default `0`.
    /// For decoupled decay use [`AdamW`].
    pub weight_decay: f32,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// Hyper-parameters of [`AdamW`] (Loshchilov & Hutter, 2019) with PyTorch's
/// `torch.optim.AdamW` semantics. [`Default`] gives PyTorch's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    /// Learning rate (step size) α. Default `1e-3`.
    pub lr: f32,
    /// Exponential decay rate β₁ of the first-moment estimate. Default `0.9`.
    pub beta1: f32,
    /// Exponential decay rate β₂ of the second-moment estimate. Default `0.999`.
    pub beta2: f32,
    /// Term added to the denominator `sqrt(v̂)` for numerical stability. Default `1e-8`.
    pub eps: f32,
    /// Decoupled weight decay λ: before each Adam update the parameters are multiplied by
    /// `1 - lr * weight_decay`; the gradient and the moments do not see it. Default `0.01`.
    pub weight_decay: f32,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

/// First and second moment of one tensor.
#[derive(Debug, Clone)]
struct Moments {
    m: Vec<f32>,
    v: Vec<f32>,
}

fn validate(who: &str, lr: f32, beta1: f32, beta2: f32, eps: f32, weight_decay: f32) {
    assert!(lr >= 0.0 && lr.is_finite(), "{who}: invalid lr {lr}");
    assert!((0.0..1.0).contains(&beta1), "{who}: invalid beta1 {beta1}");
    assert!((0.0..1.0).contains(&beta2), "{who}: invalid beta2 {beta2}");
    assert!(eps >= 0.0, "{who}: invalid eps {eps}");
    assert!(
        weight_decay >= 0.0,
        "{who}: invalid weight_decay {weight_decay}"
    );
}

/// Models with at least this many parameters in all are updated on several threads (when
/// [`crate::parallel::set_threads`] allows it).
const PARALLEL_MIN_LEN: usize = 1 << 14;

/// The per-step constants of the element-wise update (all `f32`, computed once per step).
#[derive(Debug, Clone, Copy)]
struct Consts {
    /// Decoupled decay factor `1 - lr * weight_decay` (AdamW; exactly 1 for Adam).
    decay: f32,
    /// Coupled L2 weight decay (Adam; 0 for AdamW).
    l2: f32,
    b1: f32,
    b2: f32,
    one_b1: f32,
    one_b2: f32,
    /// `lr / (1 - β₁ᵗ)`.
    step_size: f32,
    /// `1 / sqrt(1 - β₂ᵗ)`.
    inv_sqrt_bc2: f32,
    eps: f32,
}

/// The update of one element, the reference for the vector kernels (which do the same
/// operations in the same order, without fused multiply-adds, so that every kernel and every
/// split of the work gives the same bits).
#[inline(always)]
fn update_one(p: &mut f32, g: f32, m: &mut f32, v: &mut f32, c: &Consts) {
    let pi = *p * c.decay;
    let gi = g + c.l2 * pi;
    let mi = c.b1 * *m + c.one_b1 * gi;
    let vi = c.b2 * *v + c.one_b2 * gi * gi;
    *m = mi;
    *v = vi;
    *p = pi - c.step_size * mi / (vi.sqrt() * c.inv_sqrt_bc2 + c.eps);
}

/// The portable update of a run of elements.
fn update_scalar(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], c: &Consts) {
    let n = p.len();
    let (g, m, v) = (&g[..n], &mut m[..n], &mut v[..n]);
    for i in 0..n {
        update_one(&mut p[i], g[i], &mut m[i], &mut v[i], c);
    }
}

/// [`update_scalar`] on 8 elements at a time with 256-bit AVX (mul, add, sqrt, div: each
/// correctly rounded, so the same bits as the scalar code), the remainder element by element.
///
/// # Safety
/// The CPU must support AVX; the four slices must have the same length.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn update_avx(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], c: &Consts) {
    use core::arch::x86_64::*;
    let n = p.len();
    debug_assert!(g.len() == n && m.len() == n && v.len() == n);
    let splat = _mm256_set1_ps;
    let (decay, l2, b1, b2) = (splat(c.decay), splat(c.l2), splat(c.b1), splat(c.b2));
    let (one_b1, one_b2) = (splat(c.one_b1), splat(c.one_b2));
    let (step, inv, eps) = (splat(c.step_size), splat(c.inv_sqrt_bc2), splat(c.eps));
    let (pp, gp, mp, vp) = (p.as_mut_ptr(), g.as_ptr(), m.as_mut_ptr(), v.as_mut_ptr());
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: elements `i..i + 8` exist in all four slices (`i + 8 <= n`, equal lengths);
        // unaligned loads and stores.
        unsafe {
            let pi = _mm256_mul_ps(_mm256_loadu_ps(pp.add(i)), decay);
            let gi = _mm256_add_ps(_mm256_loadu_ps(gp.add(i)), _mm256_mul_ps(l2, pi));
            let mi = _mm256_add_ps(
                _mm256_mul_ps(b1, _mm256_loadu_ps(mp.add(i))),
                _mm256_mul_ps(one_b1, gi),
            );
            let vi = _mm256_add_ps(
                _mm256_mul_ps(b2, _mm256_loadu_ps(vp.add(i))),
                _mm256_mul_ps(_mm256_mul_ps(one_b2, gi), gi),
            );
            _mm256_storeu_ps(mp.add(i), mi);
            _mm256_storeu_ps(vp.add(i), vi);
            let denom = _mm256_add_ps(_mm256_mul_ps(_mm256_sqrt_ps(vi), inv), eps);
            let delta = _mm256_div_ps(_mm256_mul_ps(step, mi), denom);
            _mm256_storeu_ps(pp.add(i), _mm256_sub_ps(pi, delta));
        }
        i += 8;
    }
    update_scalar(&mut p[i..], &g[i..], &mut m[i..], &mut v[i..], c);
}

/// The update of a run of elements with the best kernel this CPU has.
fn update(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], c: &Consts) {
    let n = p.len();
    assert!(
        g.len() == n && m.len() == n && v.len() == n,
        "adam: slices of different lengths"
    );
    #[cfg(target_arch = "x86_64")]
    if crate::gemm::avx2_fma_available() {
        // SAFETY: AVX2+FMA implies AVX; the lengths are equal (asserted above).
        unsafe { update_avx(p, g, m, v, c) };
        return;
    }
    update_scalar(p, g, m, v, c);
}

/// One tensor of the fused pass: its parameter, gradient and moments, all `len` long.
#[derive(Clone, Copy)]
struct Segment {
    p: *mut f32,
    g: *const f32,
    m: *mut f32,
    v: *mut f32,
    len: usize,
}

/// All tensors of a step, as one index space `0..total` (tensor after tensor).
struct Segments {
    list: Vec<Segment>,
    total: usize,
}

// SAFETY: the pointers are only dereferenced by `Segments::update_range`, on disjoint ranges
// (each index belongs to one piece of one round), while `adam_step` holds the exclusive
// borrows of the parameters and the moments and the shared borrow of the gradients.
unsafe impl Sync for Segments {}

impl Segments {
    /// Updates elements `start..end` of the index space (spanning tensors as needed).
    ///
    /// # Safety
    /// The segments' pointers must be valid for their lengths (parameters and moments for
    /// writes) and no other thread may touch `start..end` meanwhile.
    unsafe fn update_range(&self, start: usize, end: usize, c: &Consts) {
        let mut offset = 0;
        for s in &self.list {
            let (lo, hi) = (start.max(offset), end.min(offset + s.len));
            if lo < hi {
                let (a, n) = (lo - offset, hi - lo);
                // SAFETY: `a + n <= s.len`, so the ranges are inside the tensors; the caller
                // guarantees they are valid and not accessed by anyone else.
                unsafe {
                    update(
                        std::slice::from_raw_parts_mut(s.p.add(a), n),
                        std::slice::from_raw_parts(s.g.add(a), n),
                        std::slice::from_raw_parts_mut(s.m.add(a), n),
                        std::slice::from_raw_parts_mut(s.v.add(a), n),
                        c,
                    );
                }
            }
            offset += s.len;
            if offset >= end {
                break;
            }
        }
    }
}

/// The shared Adam update. `l2` is the coupled weight decay (Adam), `decoupled` the
/// decoupled one (AdamW).
///
/// One fused, vectorised pass over all the parameters: every tensor's `(p, g, m, v)` is read
/// and written once, and the tensors are treated as one long run of elements, split into
/// pieces across [`crate::parallel::threads`] threads in one pool round (4 pieces per thread,
/// so that a thread that is slow to start, asleep or descheduled, holds up little: the others
/// take its pieces). Element-wise, so the result does not depend on the split or the kernel.
#[allow(clippy::too_many_arguments)]
fn adam_step<P: Params>(
    who: &str,
    state: &mut SlotState<Moments>,
    t: u64,
    params: &mut P,
    grads: &P,
    (lr, beta1, beta2, eps): (f32, f32, f32, f32),
    l2: f32,
    decoupled: f32,
) {
    // Scalars in f64 like PyTorch's Python floats, then one f32 each for the loop.
    let bc1 = 1.0 - f64::from(beta1).powf(t as f64);
    let bc2 = 1.0 - f64::from(beta2).powf(t as f64);
    let c = Consts {
        decay: (1.0 - f64::from(lr) * f64::from(decoupled)) as f32,
        l2,
        b1: beta1,
        b2: beta2,
        one_b1: 1.0 - beta1,
        one_b2: 1.0 - beta2,
        step_size: (f64::from(lr) / bc1) as f32,
        inv_sqrt_bc2: (1.0 / bc2.sqrt()) as f32,
        eps,
    };
    let mut segments = Segments {
        list: Vec::new(),
        total: 0,
    };
    state.for_each(
        who,
        params,
        grads,
        |n| Moments {
            m: vec![0.0; n],
            v: vec![0.0; n],
        },
        |p, g, Moments { m, v }| {
            let len = p.len();
            assert!(
                g.len() == len && m.len() == len && v.len() == len,
                "{who}: state of the wrong size"
            );
            segments.list.push(Segment {
                p: p.as_mut_ptr(),
                g: g.as_ptr(),
                m: m.as_mut_ptr(),
                v: v.as_mut_ptr(),
                len,
            });
            segments.total += len;
        },
    );
    let total = segments.total;
    let threads = crate::parallel::threads();
    let parts = if total >= PARALLEL_MIN_LEN && threads > 1 {
        4 * threads
    } else {
        1
    };
    // Pieces of a multiple of 16 floats (whole vectors; whole cache lines where the tensors
    // are aligned).
    let chunk = total.div_ceil(parts).next_multiple_of(16).max(16);
    let pieces = total.div_ceil(chunk);
    let segments = &segments;
    crate::parallel::run(pieces, &|k| {
        let (start, end) = (k * chunk, ((k + 1) * chunk).min(total));
        // SAFETY: the pointers come from the exclusive borrows of `params` and of the state
        // (and the shared borrow of `grads`), all held until `run` returns; pieces are
        // disjoint and each runs once.
        unsafe { segments.update_range(start, end, &c) };
    });
}

/// Adam with PyTorch's `torch.optim.Adam` update (bias-corrected moments, `eps` added
/// outside the square root, optional L2 `weight_decay` added to the gradient):
///
/// ```text
/// g  = grad + weight_decay * p
/// m  = β₁ m + (1 - β₁) g           v = β₂ v + (1 - β₂) g²
/// p -= lr * (m / (1 - β₁ᵗ)) / (sqrt(v / (1 - β₂ᵗ)) + eps)
/// ```
#[derive(Debug, Clone)]
pub struct Adam {
    /// The hyper-parameters; may be changed between steps.
    pub config: AdamConfig,
    t: u64,
    state: SlotState<Moments>,
}

impl Adam {
    /// A new optimizer; the state is created on the first step.
    ///
    /// # Panics
    /// On a negative or non-finite `lr`, betas outside `[0, 1)`, or negative `eps`/`weight_decay`.
    pub fn new(config: AdamConfig) -> Self {
        let c = config;
        validate("Adam", c.lr, c.beta1, c.beta2, c.eps, c.weight_decay);
        Self {
            config,
            t: 0,
            state: SlotState::default(),
        }
    }
}

impl Default for Adam {
    fn default() -> Self {
        Self::new(AdamConfig::default())
    }
}

impl Optimizer for Adam {
    fn step<P: Params>(&mut self, params: &mut P, grads: &P) {
        self.t += 1;
        let c = self.config;
        adam_step(
            "Adam",
            &mut self.state,
            self.t,
            params,
            grads,
            (c.lr, c.beta1, c.beta2, c.eps),
            c.weight_decay,
            0.0,
        );
    }
    fn lr(&self) -> f32 {
        self.config.lr
    }
    fn set_lr(&mut self, lr: f32) {
        self.config.lr = lr;
    }
    fn steps(&self) -> u64 {
        self.t
    }
    fn export_state(&self) -> Option<OptimizerState> {
        Some(self.state())
    }
}

/// AdamW with PyTorch's `torch.optim.AdamW` update: decoupled weight decay
/// `p *= 1 - lr * weight_decay`, then the Adam update of [`Adam`] without L2 term.
#[derive(Debug, Clone)]
pub struct AdamW {
    /// The hyper-parameters; may be changed between steps.
    pub config: AdamWConfig,
    t: u64,
    state: SlotState<Moments>,
}

impl AdamW {
    /// A new optimizer; the state is created on the first step.
    ///
    /// # Panics
    /// On a negative or non-finite `lr`, betas outside `[0, 1)`, or negative `eps`/`weight_decay`.
    pub fn new(config: AdamWConfig) -> Self {
        let c = config;
        validate("AdamW", c.lr, c.beta1, c.beta2, c.eps, c.weight_decay);
        Self {
            config,
            t: 0,
            state: SlotState::default(),
        }
    }
}

impl Default for AdamW {
    fn default() -> Self {
        Self::new(AdamWConfig::default())
    }
}

impl Optimizer for AdamW {
    fn step<P: Params>(&mut self, params: &mut P, grads: &P) {
        self.t += 1;
        let c = self.config;
        adam_step(
            "AdamW",
            &mut self.state,
            self.t,
            params,
            grads,
            (c.lr, c.beta1, c.beta2, c.eps),
            0.0,
            c.weight_decay,
        );
    }
    fn lr(&self) -> f32 {
        self.config.lr
    }
    fn set_lr(&mut self, lr: f32) {
        self.config.lr = lr;
    }
    fn steps(&self) -> u64 {
        self.t
    }
    fn export_state(&self) -> Option<OptimizerState> {
        Some(self.state())
    }
}

/// The state of Adam or AdamW: PyTorch's `exp_avg` and `exp_avg_sq` per parameter.
fn moments_state(kind: &str, t: u64, state: &SlotState<Moments>) -> OptimizerState {
    let mut tensors = BTreeMap::new();
    for (name, s) in state.slots() {
        tensors.insert(format!("exp_avg.{name}"), s.m.clone());
        tensors.insert(format!("exp_avg_sq.{name}"), s.v.clone());
    }
    OptimizerState {
        kind: kind.to_string(),
        steps: t,
        tensors,
    }
}

/// Restores `slots` and `t` from `state` (see [`StatefulOptimizer::load_state`]).
fn load_moments<P: Params + ?Sized>(
    kind: &str,
    slots: &mut SlotState<Moments>,
    t: &mut u64,
    model: &P,
    state: &OptimizerState,
) -> Result<(), OptimStateError> {
    let mut taker = Taker::new(kind, state)?;
    let mut restored = SlotState::default();
    restored.import(model, state.tensors.is_empty(), |name, len| {
        let m = taker.take("exp_avg", name, len, false)?.unwrap_or_default();
        let v = taker
            .take("exp_avg_sq", name, len, false)?
            .unwrap_or_default();
        Ok(Moments { m, v })
    })?;
    taker.finish()?;
    *slots = restored;
    *t = state.steps;
    Ok(())
}

impl StatefulOptimizer for Adam {
    fn state(&self) -> OptimizerState {
        moments_state("adam", self.t, &self.state)
    }
    fn load_state<P: Params + ?Sized>(
        &mut self,
        model: &P,
        state: &OptimizerState,
    ) -> Result<(), OptimStateError> {
        load_moments("adam", &mut self.state, &mut self.t, model, state)
    }
}

impl StatefulOptimizer for AdamW {
    fn state(&self) -> OptimizerState {
        moments_state("adamw", self.t, &self.state)
    }
    fn load_state<P: Params + ?Sized>(
        &mut self,
        model: &P,
        state: &OptimizerState,
    ) -> Result<(), OptimStateError> {
        load_moments("adamw", &mut self.state, &mut self.t, model, state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::Optimizer;
    use nalgebra::DVector;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn consts(t: u64, decoupled: f32, l2: f32) -> Consts {
        let (lr, beta1, beta2) = (1e-3f32, 0.9f32, 0.999f32);
        let bc1 = 1.0 - f64::from(beta1).powf(t as f64);
        let bc2 = 1.0 - f64::from(beta2).powf(t as f64);
        Consts {
            decay: (1.0 - f64::from(lr) * f64::from(decoupled)) as f32,
            l2,
            b1: beta1,
            b2: beta2,
            one_b1: 1.0 - beta1,
            one_b2: 1.0 - beta2,
            step_size: (f64::from(lr) / bc1) as f32,
            inv_sqrt_bc2: (1.0 / bc2.sqrt()) as f32,
            eps: 1e-8,
        }
    }

    /// Values of every kind: ordinary, tiny (subnormal moments), zeros of both signs, large.
    fn values(rng: &mut ChaCha8Rng, n: usize, nonneg: bool) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let x = match i % 7 {
                    0 => 0.0,
                    1 => -0.0,
                    2 => rng.gen_range(-1e-38f32..1e-38),
                    3 => rng.gen_range(-1e4f32..1e4),
                    _ => rng.gen_range(-1.0f32..1.0),
                };
                if nonneg { x.abs() } else { x }
            })
            .collect()
    }

    #[test]
    fn every_kernel_gives_the_scalar_bits() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for n in [0, 1, 7, 8, 9, 63, 1000] {
            for (t, decoupled, l2) in [(1, 0.0, 0.0), (7, 0.01, 0.0), (1000, 0.0, 0.1)] {
                let c = consts(t, decoupled, l2);
                let p = values(&mut rng, n, false);
                let g = values(&mut rng, n, false);
                let m = values(&mut rng, n, false);
                let v = values(&mut rng, n, true);
                let (mut p1, mut m1, mut v1) = (p.clone(), m.clone(), v.clone());
                update_scalar(&mut p1, &g, &mut m1, &mut v1, &c);
                let (mut p2, mut m2, mut v2) = (p.clone(), m.clone(), v.clone());
                update(&mut p2, &g, &mut m2, &mut v2, &c);
                let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&p1), bits(&p2), "p, n = {n}, t = {t}");
                assert_eq!(bits(&m1), bits(&m2), "m, n = {n}, t = {t}");
                assert_eq!(bits(&v1), bits(&v2), "v, n = {n}, t = {t}");
            }
        }
    }

    #[test]
    fn fused_pass_is_the_same_for_every_split() {
        // Tensors of awkward sizes, over the parallel threshold in all, so that pieces span
        // tensor boundaries; 1, 2, 3 and 8 threads give the same bits as tensor-by-tensor.
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let sizes = [10_003, 5, 128, 9_000, 1];
        let make = |rng: &mut ChaCha8Rng| -> Vec<Vec<f32>> {
            sizes.iter().map(|&n| values(rng, n, false)).collect()
        };
        let (p0, g0) = (make(&mut rng), make(&mut rng));
        let c = consts(1, 0.0, 0.0);
        let reference: Vec<Vec<f32>> = p0
            .iter()
            .zip(&g0)
            .map(|(p, g)| {
                let mut p = p.clone();
                let (mut m, mut v) = (vec![0.0; p.len()], vec![0.0; p.len()]);
                update_scalar(&mut p, g, &mut m, &mut v, &c);
                p
            })
            .collect();
        let as_tensors =
            |t: &[Vec<f32>]| Tensors(t.iter().map(|v| DVector::from_vec(v.clone())).collect());
        let before = crate::parallel::threads();
        for threads in [1, 2, 3, 8] {
            crate::parallel::set_threads(threads);
            let mut model = as_tensors(&p0);
            let mut opt = Adam::default();
            opt.step(&mut model, &as_tensors(&g0));
            let got: Vec<Vec<f32>> = model.0.iter().map(|t| t.as_slice().to_vec()).collect();
            let bits =
                |x: &[Vec<f32>]| -> Vec<u32> { x.iter().flatten().map(|v| v.to_bits()).collect() };
            assert_eq!(bits(&got), bits(&reference), "{threads} threads");
        }
        crate::parallel::set_threads(before);
    }

    /// A "model" of loose tensors.
    #[derive(Clone)]
    struct Tensors(Vec<DVector<f32>>);

    impl Params for Tensors {
        fn visit(&self, _: &str, f: &mut dyn FnMut(&str, &dyn crate::params::Tensor)) {
            for (i, t) in self.0.iter().enumerate() {
                f(&i.to_string(), t);
            }
        }
        fn visit_mut(&mut self, _: &str, f: &mut dyn FnMut(&str, &mut dyn crate::params::Tensor)) {
            for (i, t) in self.0.iter_mut().enumerate() {
                f(&i.to_string(), t);
            }
        }
        fn visit_with(
            &mut self,
            other: &Self,
            _: &str,
            f: &mut dyn FnMut(&str, &mut dyn crate::params::Tensor, &dyn crate::params::Tensor),
        ) {
            for (i, (t, o)) in self.0.iter_mut().zip(&other.0).enumerate() {
                f(&i.to_string(), t, o);
            }
        }
    }
}
