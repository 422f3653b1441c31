//! Unit tests of the loop nest with each kernel type, including kernels that exist only for
//! tests (the AVX-512 geometry built from AVX2 operations, see `x86::wide`). Operands are
//! small multiples of 1/2, so every sum is exact and results are compared bit for bit with a
//! naive product.

use super::driver;
use super::kernel::{Fallback, GemmKernel};
use super::{Elem, Task};

trait TestElem: Elem + Into<f64> {
    fn of(v: f64) -> Self;
}
impl TestElem for f32 {
    fn of(v: f64) -> Self {
        v as f32
    }
}
impl TestElem for f64 {
    fn of(v: f64) -> Self {
        v
    }
}

/// Deterministic halves in `-2.0..=2.0`.
fn val(seed: usize) -> f64 {
    let x = seed.wrapping_mul(2_654_435_761) >> 7;
    (x % 9) as f64 * 0.5 - 2.0
}

/// Runs `C = alpha A B + beta C` with kernel `K` on `threads` threads (A row- or
/// column-major, C's rows `c_rs` apart) and compares every element of C with a naive sum, and
/// every element between C's elements with the sentinel it held. With `beta == 0` C starts as
/// NaN, which must not leak.
#[allow(clippy::too_many_arguments)]
fn check<K: GemmKernel>(
    m: usize,
    n: usize,
    k: usize,
    a_rowmajor: bool,
    c_rs: usize,
    alpha: f64,
    beta: f64,
    threads: usize,
) where
    K::Elem: TestElem,
{
    let e = <K::Elem as TestElem>::of;
    let (rsa, csa) = if a_rowmajor { (k, 1) } else { (1, m) };
    let a: Vec<K::Elem> = (0..m * k).map(|i| e(val(i + 1))).collect();
    let b: Vec<K::Elem> = (0..k * n).map(|i| e(val(i + 7919))).collect();
    let ldc = c_rs * m + 3;
    let in_c = |r: usize| r.is_multiple_of(c_rs) && r / c_rs < m;
    let sentinel = 1.5;
    let c0: Vec<f64> = (0..ldc * n).map(|i| val(i + 31)).collect();
    let mut c: Vec<K::Elem> = (0..ldc * n)
        .map(|i| match (in_c(i % ldc), beta == 0.0) {
            (true, true) => e(f64::NAN),
            (true, false) => e(c0[i]),
            (false, _) => e(sentinel),
        })
        .collect();
    let task = Task {
        m,
        n,
        k,
        alpha: e(alpha),
        a: a.as_ptr(),
        rsa,
        csa,
        b: b.as_ptr(),
        rsb: 1,
        csb: k,
        beta: e(beta),
        c: c.as_mut_ptr(),
        rsc: c_rs,
        csc: ldc,
    };
    driver::run::<K>(&task, threads);
    let name = std::any::type_name::<K>();
    for j in 0..n {
        for r in 0..ldc {
            let got: f64 = c[j * ldc + r].into();
            if !in_c(r) {
                assert_eq!(
                    got, sentinel,
                    "{name}: m={m} n={n} k={k}: wrote row {r} col {j}"
                );
                continue;
            }
            let i = r / c_rs;
            let s: f64 = (0..k)
                .map(|p| a[i * rsa + p * csa].into() * b[p + j * k].into())
                .sum();
            let old = if beta == 0.0 { 0.0 } else { c0[j * ldc + r] };
            assert_eq!(
                got,
                alpha * s + beta * old,
                "{name}: m={m} n={n} k={k} a_rowmajor={a_rowmajor} c_rs={c_rs} alpha={alpha} \
                 beta={beta} threads={threads}: C({i},{j})"
            );
        }
    }
}

/// Shapes around `K`'s tile and block edges: rows around `MR`, `MR / 2` (one vector) and
/// `MC` and `IN_PLACE_M`, columns around `NR`, depths on both sides of `KC` (the in-place path
/// and the packed one, several k blocks).
fn grid<K: GemmKernel>()
where
    K::Elem: TestElem,
{
    let (mr, nr, kc, mc) = (K::MR, K::NR, K::KC, K::MC);
    let ms = [
        1,
        mr / 2 - 1,
        mr / 2 + 1,
        mr - 1,
        mr,
        mr + 1,
        2 * mr + 3,
        K::IN_PLACE_M.max(1),
        K::IN_PLACE_M + 1,
        mc + 5,
    ];
    let ns = [1, nr - 1, nr, nr + 1, 2 * nr + 5];
    let ks = [1, 5, kc, kc + 1, 2 * kc + 7];
    let mut case = 0usize;
    for &m in &ms {
        for &n in &ns {
            for &k in &ks {
                case += 1;
                let (alpha, beta) = [(1.0, 0.0), (2.0, 1.0), (-0.5, -2.0)][case % 3];
                let a_rowmajor = case.is_multiple_of(2);
                let c_rs = if case.is_multiple_of(5) { 2 } else { 1 };
                let threads = if case.is_multiple_of(7) { 2 } else { 1 };
                check::<K>(m, n, k, a_rowmajor, c_rs, alpha, beta, threads);
            }
        }
    }
}

#[test]
fn fallback_kernels() {
    grid::<Fallback<f32, 8, 4>>();
    grid::<Fallback<f64, 4, 4>>();
}

#[cfg(target_arch = "x86_64")]
mod x86_kernels {
    use super::super::x86::{self, wide};
    use super::grid;

    #[test]
    fn avx2() {
        if !x86::available() {
            println!("skipped: this CPU lacks AVX2+FMA");
            return;
        }
        grid::<x86::Avx2F32>();
        grid::<x86::Avx2F64>();
    }

    /// The AVX-512 kernels' `x 12` geometry and blocking with AVX2 operations: the same macro
    /// paths as the 512-bit kernels, on any AVX2 machine.
    #[test]
    fn avx512_geometry_on_avx2() {
        if !x86::available() {
            println!("skipped: this CPU lacks AVX2+FMA");
            return;
        }
        grid::<wide::WideF32>();
        grid::<wide::WideF64>();
    }

    #[test]
    fn avx512() {
        if !x86::avx512_available() {
            println!(
                "skipped: this CPU lacks AVX-512F (the kernels' paths are tested by avx512_geometry_on_avx2)"
            );
            return;
        }
        grid::<x86::Avx512F32>();
        grid::<x86::Avx512F64>();
    }
}
