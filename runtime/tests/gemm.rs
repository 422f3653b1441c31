//! Tests of `symgrad_runtime::gemm` against a naive triple loop with f64 accumulation.
//!
//! Most tests use small-integer data, for which every kernel is exact, so results are compared
//! exactly; random-float tests use a tolerance that grows with k.

use nalgebra::{DMatrix, Dyn};
use symgrad_runtime::gemm::{
    GemmOptions, GemmScalar, KernelChoice, MatMut, MatRef, Trans, avx2_fma_available,
    avx512_available, gemm, gemm_strided_with, gemm_views, gemm_with, matmul,
};

/// Deterministic pseudo-random generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Integer in -3..=3.
    fn small_int(&mut self) -> f64 {
        (self.next() % 7) as f64 - 3.0
    }
    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

fn filled<T: GemmScalar>(rows: usize, cols: usize, mut f: impl FnMut() -> f64) -> DMatrix<T> {
    DMatrix::from_fn(rows, cols, |_, _| nalgebra::convert::<f64, T>(f()))
}

fn to_f64<T: GemmScalar>(x: T) -> f64 {
    nalgebra::try_convert::<T, f64>(x).unwrap()
}

fn op_get<T: GemmScalar>(x: &DMatrix<T>, t: Trans, i: usize, j: usize) -> f64 {
    to_f64(match t {
        Trans::No => x[(i, j)],
        Trans::Yes => x[(j, i)],
    })
}

/// Naive `alpha * op(a) * op(b) + beta * c` in f64 (C not read when beta == 0).
fn reference<T: GemmScalar>(
    alpha: f64,
    a: &DMatrix<T>,
    ta: Trans,
    b: &DMatrix<T>,
    tb: Trans,
    beta: f64,
    c: &DMatrix<T>,
) -> DMatrix<f64> {
    let (m, n) = c.shape();
    let k = if ta == Trans::No {
        a.ncols()
    } else {
        a.nrows()
    };
    // op(A) row-major and op(B) column-major, so each entry is a dot product of two slices.
    let mut ra = vec![0.0; m * k];
    for i in 0..m {
        for p in 0..k {
            ra[i * k + p] = op_get(a, ta, i, p);
        }
    }
    let mut cb = vec![0.0; k * n];
    for j in 0..n {
        for p in 0..k {
            cb[j * k + p] = op_get(b, tb, p, j);
        }
    }
    DMatrix::from_fn(m, n, |i, j| {
        let s: f64 = ra[i * k..(i + 1) * k]
            .iter()
            .zip(&cb[j * k..(j + 1) * k])
            .map(|(x, y)| x * y)
            .sum();
        let old = if beta == 0.0 {
            0.0
        } else {
            beta * to_f64(c[(i, j)])
        };
        alpha * s + old
    })
}

fn stored_shape(rows: usize, cols: usize, t: Trans) -> (usize, usize) {
    match t {
        Trans::No => (rows, cols),
        Trans::Yes => (cols, rows),
    }
}

const TRANS: [(Trans, Trans); 4] = [
    (Trans::No, Trans::No),
    (Trans::Yes, Trans::No),
    (Trans::No, Trans::Yes),
    (Trans::Yes, Trans::Yes),
];

/// Runs one product with small-integer data and compares exactly.
#[allow(clippy::too_many_arguments)]
fn check_exact<T: GemmScalar>(
    opts: &GemmOptions,
    m: usize,
    n: usize,
    k: usize,
    ta: Trans,
    tb: Trans,
    alpha: f64,
    beta: f64,
    seed: u64,
) {
    let mut rng = Rng(seed);
    let (ar, ac) = stored_shape(m, k, ta);
    let (br, bc) = stored_shape(k, n, tb);
    let a: DMatrix<T> = filled(ar, ac, || rng.small_int());
    let b: DMatrix<T> = filled(br, bc, || rng.small_int());
    let mut c: DMatrix<T> = if beta == 0.0 {
        filled(m, n, || f64::NAN)
    } else {
        filled(m, n, || rng.small_int())
    };
    let want = reference(alpha, &a, ta, &b, tb, beta, &c);
    gemm_with(
        opts,
        nalgebra::convert(alpha),
        a.as_view(),
        ta,
        b.as_view(),
        tb,
        nalgebra::convert(beta),
        c.as_view_mut(),
    );
    for j in 0..n {
        for i in 0..m {
            assert_eq!(
                to_f64(c[(i, j)]),
                want[(i, j)],
                "m={m} n={n} k={k} ta={ta:?} tb={tb:?} alpha={alpha} beta={beta} at ({i},{j}) opts={opts:?}"
            );
        }
    }
}

const GRID: [usize; 8] = [1, 2, 5, 8, 16, 17, 33, 70];

fn grid<T: GemmScalar>(kernel: KernelChoice) {
    let opts = GemmOptions {
        kernel,
        threads: Some(1),
    };
    let mut seed = 1;
    for &m in &GRID {
        for &n in &GRID {
            for &k in &GRID {
                for (ta, tb) in TRANS {
                    seed += 1;
                    let (alpha, beta) = [(1.0, 0.0), (2.0, 1.0), (-0.5, -2.0)][seed as usize % 3];
                    check_exact::<T>(&opts, m, n, k, ta, tb, alpha, beta, seed);
                }
            }
        }
    }
}

fn avx2_or_skip(test: &str) -> bool {
    if avx2_fma_available() {
        true
    } else {
        println!("{test}: skipped, this CPU lacks AVX2+FMA");
        false
    }
}

#[test]
fn grid_f32_fallback() {
    grid::<f32>(KernelChoice::Fallback);
}

#[test]
fn grid_f64_fallback() {
    grid::<f64>(KernelChoice::Fallback);
}

#[test]
fn grid_f32_avx2() {
    if avx2_or_skip("grid_f32_avx2") {
        grid::<f32>(KernelChoice::Avx2Fma);
    }
}

#[test]
fn grid_f64_avx2() {
    if avx2_or_skip("grid_f64_avx2") {
        grid::<f64>(KernelChoice::Avx2Fma);
    }
}

fn avx512_or_skip(test: &str) -> bool {
    if avx512_available() {
        true
    } else {
        println!("{test}: skipped, this CPU lacks AVX-512F");
        false
    }
}

#[test]
fn grid_f32_avx512() {
    if avx512_or_skip("grid_f32_avx512") {
        grid::<f32>(KernelChoice::Avx512);
    }
}

#[test]
fn grid_f64_avx512() {
    if avx512_or_skip("grid_f64_avx512") {
        grid::<f64>(KernelChoice::Avx512);
    }
}

/// The MLP shapes of the project as (m, n, k, ta, tb), plus blocking edges around KC/MC.
const MLP: [(usize, usize, usize, Trans, Trans); 8] = [
    (64, 128, 784, Trans::No, Trans::No),
    (64, 64, 128, Trans::No, Trans::No),
    (64, 10, 64, Trans::No, Trans::No),
    (784, 128, 64, Trans::Yes, Trans::No),
    (128, 64, 64, Trans::Yes, Trans::No),
    (64, 784, 128, Trans::No, Trans::Yes),
    (64, 128, 64, Trans::No, Trans::Yes),
    (200, 130, 600, Trans::Yes, Trans::Yes),
];

fn kernels() -> Vec<KernelChoice> {
    let mut v = vec![KernelChoice::Fallback];
    if avx2_fma_available() {
        v.push(KernelChoice::Avx2Fma);
    } else {
        println!("AVX2+FMA kernel not tested: this CPU lacks AVX2+FMA");
    }
    if avx512_available() {
        v.push(KernelChoice::Avx512);
    } else {
        println!("AVX-512F kernel not tested: this CPU lacks AVX-512F");
    }
    v
}

/// The kernel `auto` picks: the widest this CPU runs.
fn fastest() -> KernelChoice {
    if avx512_available() {
        KernelChoice::Avx512
    } else if avx2_fma_available() {
        KernelChoice::Avx2Fma
    } else {
        KernelChoice::Fallback
    }
}

#[test]
fn mlp_shapes_exact() {
    for kernel in kernels() {
        for threads in [1, 2] {
            let opts = GemmOptions {
                kernel,
                threads: Some(threads),
            };
            for (i, &(m, n, k, ta, tb)) in MLP.iter().enumerate() {
                check_exact::<f32>(&opts, m, n, k, ta, tb, 1.0, 0.0, 100 + i as u64);
                check_exact::<f64>(&opts, m, n, k, ta, tb, 1.0, 1.0, 200 + i as u64);
            }
        }
    }
}

#[test]
fn large_exact() {
    for kernel in kernels() {
        let opts = GemmOptions {
            kernel,
            threads: Some(2),
        };
        check_exact::<f32>(&opts, 513, 257, 1031, Trans::No, Trans::No, 1.0, 1.0, 7);
        check_exact::<f32>(&opts, 257, 513, 300, Trans::Yes, Trans::Yes, 1.0, 0.0, 8);
    }
}

/// Random floats: relative error bounded by roughly k * eps.
fn check_float<T: GemmScalar>(m: usize, n: usize, k: usize, ta: Trans, tb: Trans, eps: f64) {
    let mut rng = Rng(m as u64 * 1000 + n as u64 * 10 + k as u64);
    let (ar, ac) = stored_shape(m, k, ta);
    let (br, bc) = stored_shape(k, n, tb);
    let a: DMatrix<T> = filled(ar, ac, || rng.unit());
    let b: DMatrix<T> = filled(br, bc, || rng.unit());
    let c = matmul(&a, ta, &b, tb);
    let want = reference(1.0, &a, ta, &b, tb, 0.0, &c);
    // |a|, |b| <= 1, so the sum of |terms| is at most k.
    let tol = 2.0 * (k as f64 + 1.0) * eps;
    for j in 0..n {
        for i in 0..m {
            let d = (to_f64(c[(i, j)]) - want[(i, j)]).abs();
            assert!(
                d <= tol,
                "m={m} n={n} k={k}: |diff| {d} > {tol} at ({i},{j})"
            );
        }
    }
}

#[test]
fn random_floats() {
    for (m, n, k, ta, tb) in MLP {
        check_float::<f32>(m, n, k, ta, tb, f32::EPSILON as f64);
        check_float::<f64>(m, n, k, ta, tb, f64::EPSILON);
    }
}

#[test]
fn sub_views_and_strides() {
    let mut rng = Rng(42);
    let big_a: DMatrix<f32> = filled(50, 60, || rng.small_int());
    let big_b: DMatrix<f32> = filled(70, 40, || rng.small_int());
    // op(A) = 13x21 sub-view (rows 3.., cols 5..), op(B) = transpose of a 19x21 sub-view.
    let a = big_a.view((3, 5), (13, 21));
    let b = big_b.view((10, 2), (19, 21));
    let mut big_c: DMatrix<f32> = filled(30, 30, || rng.small_int());
    let orig = big_c.clone();
    let a_owned = a.clone_owned();
    let b_owned = b.clone_owned();
    let c_owned = big_c.view((4, 6), (13, 19)).clone_owned();
    let want = reference(
        1.0,
        &a_owned,
        Trans::No,
        &b_owned,
        Trans::Yes,
        3.0,
        &c_owned,
    );
    gemm(
        1.0,
        a,
        Trans::No,
        b,
        Trans::Yes,
        3.0,
        big_c.view_mut((4, 6), (13, 19)),
    );
    for j in 0..30 {
        for i in 0..30 {
            let inside = (4..17).contains(&i) && (6..25).contains(&j);
            let expect = if inside {
                want[(i - 4, j - 6)] as f32
            } else {
                orig[(i, j)]
            };
            assert_eq!(big_c[(i, j)], expect, "at ({i},{j})");
        }
    }

    // Stepped views: non-unit row and column strides on every operand.
    let a = big_a.view_with_steps((1, 0), (12, 9), (2, 3));
    let b = big_b.view_with_steps((0, 1), (9, 7), (1, 2));
    let mut c_big: DMatrix<f32> = filled(40, 40, || f64::NAN);
    let want = reference(
        1.0,
        &a.clone_owned(),
        Trans::No,
        &b.clone_owned(),
        Trans::No,
        0.0,
        &DMatrix::<f32>::zeros(12, 7),
    );
    let opts = GemmOptions::default();
    gemm_views(
        &opts,
        1.0,
        a,
        Trans::No,
        b,
        Trans::No,
        0.0,
        c_big.view_with_steps_mut((1, 1), (12, 7), (2, 4)),
    );
    for j in 0..7 {
        for i in 0..12 {
            assert_eq!(c_big[(1 + 3 * i, 1 + 5 * j)] as f64, want[(i, j)]);
        }
    }
}

#[test]
fn slice_api_row_major_and_padded() {
    let (m, n, k) = (9, 11, 13);
    let mut rng = Rng(5);
    let a: Vec<f64> = (0..m * k).map(|_| rng.small_int()).collect(); // row-major m x k
    let b: Vec<f64> = (0..(k * 20)).map(|_| rng.small_int()).collect(); // col-major k x n, ld 20
    for kernel in kernels() {
        let opts = GemmOptions {
            kernel,
            threads: Some(1),
        };
        // C row-major with padding: leading dimension 15.
        let mut c = vec![f64::NAN; m * 15];
        gemm_strided_with(
            &opts,
            1.0,
            MatRef::new(&a, m, k, k, 1),
            MatRef::new(&b, k, n, 1, 20),
            0.0,
            MatMut::new(&mut c, m, n, 15, 1),
        );
        for i in 0..m {
            for j in 0..n {
                let want: f64 = (0..k).map(|p| a[i * k + p] * b[p + 20 * j]).sum();
                assert_eq!(c[i * 15 + j], want);
            }
            for j in n..15 {
                assert!(c[i * 15 + j].is_nan(), "padding written");
            }
        }
        // Same product through transposed views: C^T = B^T A^T.
        let mut ct = vec![0.0; n * m];
        gemm_strided_with(
            &opts,
            1.0,
            MatRef::new(&b, k, n, 1, 20).t(),
            MatRef::new(&a, m, k, k, 1).t(),
            0.0,
            MatMut::new(&mut ct, m, n, 1, m).t(),
        );
        for i in 0..m {
            for j in 0..n {
                assert_eq!(ct[j * m + i], c[i * 15 + j]);
            }
        }
    }
}

#[test]
fn alpha_zero_does_not_read_a_or_b() {
    let a = DMatrix::<f32>::from_element(5, 4, f32::NAN);
    let b = DMatrix::<f32>::from_element(4, 3, f32::NAN);
    let mut c = DMatrix::<f32>::from_element(5, 3, 2.0);
    gemm(
        0.0,
        a.as_view(),
        Trans::No,
        b.as_view(),
        Trans::No,
        0.5,
        c.as_view_mut(),
    );
    assert!(c.iter().all(|&x| x == 1.0));
}

#[test]
fn k_zero_and_empty_dims() {
    let a = DMatrix::<f64>::zeros(4, 0);
    let b = DMatrix::<f64>::zeros(0, 3);
    let mut c = DMatrix::<f64>::from_element(4, 3, 3.0);
    gemm(
        1.0,
        a.as_view(),
        Trans::No,
        b.as_view(),
        Trans::No,
        2.0,
        c.as_view_mut(),
    );
    assert!(c.iter().all(|&x| x == 6.0));
    let mut c = DMatrix::<f64>::from_element(4, 3, f64::NAN);
    gemm(
        1.0,
        a.as_view(),
        Trans::No,
        b.as_view(),
        Trans::No,
        0.0,
        c.as_view_mut(),
    );
    assert!(c.iter().all(|&x| x == 0.0));
    // m = 0 and n = 0.
    let a = DMatrix::<f32>::zeros(0, 5);
    let b = DMatrix::<f32>::zeros(5, 7);
    assert_eq!(matmul(&a, Trans::No, &b, Trans::No).shape(), (0, 7));
    assert_eq!(matmul(&b, Trans::Yes, &a, Trans::Yes).shape(), (7, 0));
    let e = DMatrix::<f32>::zeros(0, 0);
    assert_eq!(matmul(&e, Trans::No, &e, Trans::No).shape(), (0, 0));
}

#[test]
fn threads_are_deterministic() {
    // Random floats, so any change in summation order would show.
    for (m, n, k) in [
        (64, 128, 784),
        (300, 20, 500),
        (37, 300, 77),
        (1000, 128, 784),
    ] {
        let mut rng = Rng(9);
        let a: DMatrix<f32> = filled(m, k, || rng.unit());
        let b: DMatrix<f32> = filled(k, n, || rng.unit());
        for kernel in kernels() {
            let run = |threads| {
                let mut c = DMatrix::<f32>::zeros(m, n);
                let opts = GemmOptions {
                    kernel,
                    threads: Some(threads),
                };
                gemm_with(
                    &opts,
                    1.0,
                    a.as_view(),
                    Trans::No,
                    b.as_view(),
                    Trans::No,
                    0.0,
                    c.as_view_mut(),
                );
                c
            };
            let one = run(1);
            for t in [2, 3] {
                assert!(
                    run(t) == one,
                    "{m}x{n}x{k} {kernel:?}: {t} threads differ from 1"
                );
            }
        }
    }
}

#[test]
fn process_wide_settings() {
    use symgrad_runtime::gemm::{
        force_fallback_kernel, num_threads, selected_kernel, set_num_threads,
    };
    force_fallback_kernel(true);
    assert_eq!(selected_kernel(), KernelChoice::Fallback);
    let a = DMatrix::<f32>::from_element(3, 3, 1.0);
    assert_eq!(
        matmul(&a, Trans::No, &a, Trans::No),
        DMatrix::from_element(3, 3, 3.0)
    );
    force_fallback_kernel(false);
    let auto = fastest();
    if std::env::var("SYMGRAD_GEMM_KERNEL").is_err() {
        assert_eq!(selected_kernel(), auto);
    }
    let before = num_threads();
    set_num_threads(2);
    assert_eq!(num_threads(), 2);
    set_num_threads(before);
}

#[test]
#[should_panic(expected = "gemm: shape mismatch: op(A) is 3x4 but op(B) is 5x2")]
fn inner_mismatch_panics() {
    let a = DMatrix::<f32>::zeros(3, 4);
    let b = DMatrix::<f32>::zeros(2, 5);
    let _ = matmul(&a, Trans::No, &b, Trans::Yes);
}

#[test]
#[should_panic(
    expected = "gemm: shape mismatch: op(A)*op(B) is 3x5 (op(A) 3x4, op(B) 4x5) but C is 3x4"
)]
fn output_mismatch_panics() {
    let a = DMatrix::<f64>::zeros(3, 4);
    let b = DMatrix::<f64>::zeros(4, 5);
    let mut c = DMatrix::<f64>::zeros(3, 4);
    gemm(
        1.0,
        a.as_view(),
        Trans::No,
        b.as_view(),
        Trans::No,
        0.0,
        c.as_view_mut(),
    );
}

#[test]
#[should_panic(
    expected = "gemm: MatRef::new: 4x4 with strides (1, 4) needs 16 elements, slice has 15"
)]
fn slice_too_short_panics() {
    let v = vec![0.0f32; 15];
    let _ = MatRef::new(&v, 4, 4, 1, 4);
}

#[test]
#[should_panic(expected = "overlapping elements")]
fn overlapping_c_panics() {
    let mut v = vec![0.0f32; 16];
    let _ = MatMut::new(&mut v, 4, 4, 1, 2);
}

#[test]
fn dyn_stride_views_of_dense_matrices() {
    // `gemm_views` with explicitly typed Dyn strides equals `gemm` on the same data.
    let mut rng = Rng(11);
    let a: DMatrix<f64> = filled(20, 30, || rng.small_int());
    let b: DMatrix<f64> = filled(20, 10, || rng.small_int());
    let want = matmul(&a, Trans::Yes, &b, Trans::No);
    let mut c = DMatrix::<f64>::zeros(30, 10);
    gemm_views(
        &GemmOptions::default(),
        1.0,
        a.as_view::<Dyn, Dyn, Dyn, Dyn>(),
        Trans::Yes,
        b.as_view::<Dyn, Dyn, Dyn, Dyn>(),
        Trans::No,
        0.0,
        c.as_view_mut::<Dyn, Dyn, Dyn, Dyn>(),
    );
    assert_eq!(c, want);
}

/// Around the limits of the small-product path (`k <= KC = 256` and `m * n * k <= 2^20`):
/// exact results on both sides of each limit, every transpose, `beta == 0` with NaN in C, both
/// kernels, one and two threads.
#[test]
fn small_path_boundaries_exact() {
    let shapes = [
        (16, 6, 256),  // one full tile, deepest k on the small path
        (17, 7, 256),  // edge row and column tiles
        (16, 6, 257),  // k just past KC: packed path
        (64, 64, 256), // m n k == 2^20: small path
        (64, 65, 256), // just above: packed path
        (31, 11, 64),
        (64, 10, 64),
    ];
    let mut seed = 500;
    for kernel in kernels() {
        for threads in [1, 2] {
            let opts = GemmOptions {
                kernel,
                threads: Some(threads),
            };
            for &(m, n, k) in &shapes {
                for (ta, tb) in TRANS {
                    seed += 1;
                    check_exact::<f32>(&opts, m, n, k, ta, tb, 1.0, 0.0, seed);
                    check_exact::<f64>(&opts, m, n, k, ta, tb, -0.5, 2.0, seed);
                }
            }
        }
    }
}

/// The small path (A and B read in place, narrower kernels for edge columns) rounds exactly
/// like the packed path: the first columns of a product too large for the small path equal,
/// bit for bit, the small product of those columns alone. A is a sub-view, so its column
/// stride exceeds its rows.
/// Products with few rows (`m <= 64`, on the kernels that do: AVX-512) read A and B in place at
/// every depth, split into the same k blocks as the packed path: rows of a taller (packed)
/// product and the short product of those rows agree bit for bit, for A stored either way.
#[test]
fn few_rows_in_place_matches_packed_bitwise() {
    let mut rng = Rng(91);
    for kernel in kernels() {
        let opts = GemmOptions {
            kernel,
            threads: Some(1),
        };
        for k in [300, 600, 784] {
            let b: DMatrix<f32> = filled(k, 70, || rng.unit());
            for ta in [Trans::No, Trans::Yes] {
                // 130 rows: the packed path (more than 64 rows, more than 2^20 products).
                let stored: DMatrix<f32> = match ta {
                    Trans::No => filled(130, k, || rng.unit()),
                    Trans::Yes => filled(k, 130, || rng.unit()),
                };
                let mut tall = DMatrix::<f32>::zeros(130, 70);
                gemm_with(
                    &opts,
                    1.0,
                    stored.as_view(),
                    ta,
                    b.as_view(),
                    Trans::No,
                    0.0,
                    tall.as_view_mut(),
                );
                for (i0, m) in [(0, 1), (3, 5), (0, 32), (7, 33), (50, 64)] {
                    let a = match ta {
                        Trans::No => stored.view((i0, 0), (m, k)),
                        Trans::Yes => stored.view((0, i0), (k, m)),
                    };
                    let mut short = DMatrix::<f32>::from_element(m, 70, f32::NAN);
                    gemm_with(
                        &opts,
                        1.0,
                        a,
                        ta,
                        b.as_view(),
                        Trans::No,
                        0.0,
                        short.as_view_mut(),
                    );
                    assert!(
                        short == tall.rows(i0, m),
                        "{kernel:?}: k = {k}, {ta:?}, rows {i0}..{}: in-place path differs from packed path",
                        i0 + m
                    );
                }
            }
        }
    }
}

#[test]
fn small_path_matches_packed_bitwise() {
    let mut rng = Rng(77);
    let big_a: DMatrix<f32> = filled(90, 200, || rng.unit());
    let b: DMatrix<f32> = filled(200, 100, || rng.unit());
    let a = big_a.view((5, 0), (70, 200));
    for kernel in kernels() {
        let opts = GemmOptions {
            kernel,
            threads: Some(1),
        };
        let mut big = DMatrix::<f32>::zeros(70, 100); // 70 * 100 * 200 > 2^20: packed
        gemm_with(
            &opts,
            1.0,
            a,
            Trans::No,
            b.as_view(),
            Trans::No,
            0.0,
            big.as_view_mut(),
        );
        for n in [1, 2, 3, 5, 6, 10, 13, 16] {
            let mut small = DMatrix::<f32>::from_element(70, n, f32::NAN);
            gemm_with(
                &opts,
                1.0,
                a,
                Trans::No,
                b.columns(0, n),
                Trans::No,
                0.0,
                small.as_view_mut(),
            );
            assert!(
                small == big.columns(0, n),
                "{kernel:?}: n = {n}: small path differs from packed path"
            );
        }
    }
}

#[test]
fn kernel_names() {
    use symgrad_runtime::gemm::kernel_from_name;
    assert_eq!(kernel_from_name("fallback"), Ok(KernelChoice::Fallback));
    assert_eq!(kernel_from_name(" Portable "), Ok(KernelChoice::Fallback));
    let auto = fastest();
    assert_eq!(kernel_from_name(""), Ok(auto));
    assert_eq!(kernel_from_name("AUTO"), Ok(auto));
    if avx2_fma_available() {
        assert_eq!(kernel_from_name("avx2"), Ok(KernelChoice::Avx2Fma));
    } else {
        let e = kernel_from_name("avx2").unwrap_err();
        assert!(e.contains("lacks AVX2+FMA"), "{e}");
    }
    if avx512_available() {
        assert_eq!(kernel_from_name("AVX512"), Ok(KernelChoice::Avx512));
    } else {
        let e = kernel_from_name("avx512").unwrap_err();
        assert!(
            e.contains("SYMGRAD_GEMM_KERNEL=avx512: this CPU lacks AVX-512F"),
            "{e}"
        );
    }
    let e = kernel_from_name("fastest").unwrap_err();
    assert!(
        e.contains("SYMGRAD_GEMM_KERNEL=fastest: unknown kernel") && e.contains("fallback"),
        "{e}"
    );
}

/// `matmul` writes its result into uninitialised memory (no zeroing pass): it must equal, bit
/// for bit, `gemm` with `beta = 0` into a C full of NaN, on edge tiles, several `k` blocks and
/// `k = 0` (zeros).
#[test]
fn matmul_into_fresh_memory_equals_gemm_over_nan() {
    let mut rng = Rng(77);
    for &(m, n, k) in &[
        (1, 1, 1),
        (7, 5, 3),
        (17, 13, 0),
        (64, 128, 784),
        (33, 9, 300),
        (128, 784, 32),
        (5, 70, 600),
    ] {
        for (ta, tb) in [
            (Trans::No, Trans::No),
            (Trans::Yes, Trans::No),
            (Trans::No, Trans::Yes),
        ] {
            let (ar, ac) = stored_shape(m, k, ta);
            let (br, bc) = stored_shape(k, n, tb);
            let a: DMatrix<f32> = filled(ar, ac, || rng.unit());
            let b: DMatrix<f32> = filled(br, bc, || rng.unit());
            let got = matmul(&a, ta, &b, tb);
            let mut want = DMatrix::<f32>::from_element(m, n, f32::NAN);
            gemm(
                1.0,
                a.as_view(),
                ta,
                b.as_view(),
                tb,
                0.0,
                want.as_view_mut(),
            );
            assert_eq!(got.shape(), (m, n));
            let bits = |x: &DMatrix<f32>| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{m}x{n}x{k} {ta:?} {tb:?}");
        }
    }
}
