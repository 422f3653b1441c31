//! GFLOP/s of `symgrad_runtime::gemm` against `matrixmultiply::sgemm`, the `gemm` crate and
//! nalgebra's `*` on the MLP shapes and some squares, f32, 1 and 2 threads; beside them the
//! single-core FMA peak of the machine (`fma_peak/avx2_fma_1core`, and `avx512_fma_1core` on
//! CPUs with AVX-512F). `symgrad` is the kernel `auto` picks; on an AVX-512 CPU
//! `symgrad-avx2` is the 256-bit kernel on the same shape.
//!
//! Throughput is `Elements(2 m n k)`, so criterion's "elem/s" is FLOP/s.
//! Run: `cargo bench -p symgrad-runtime --bench gemm` (filter e.g. `-- 64x784x128`).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use nalgebra::DMatrix;
use std::hint::black_box;
use std::time::Duration;
use symgrad_runtime::gemm::{GemmOptions, KernelChoice, Trans, avx512_available, gemm_with};

/// (label, m, k, n, ta, tb): C (m x n) = op(A) (m x k) * op(B) (k x n), all column-major.
const SHAPES: [(&str, usize, usize, usize, Trans, Trans); 12] = [
    ("64x784x128_AB", 64, 784, 128, Trans::No, Trans::No),
    ("64x128x64_AB", 64, 128, 64, Trans::No, Trans::No),
    ("64x64x10_AB", 64, 64, 10, Trans::No, Trans::No),
    ("784x64x128_AtB", 784, 64, 128, Trans::Yes, Trans::No),
    ("128x64x64_AtB", 128, 64, 64, Trans::Yes, Trans::No),
    ("64x128x784_ABt", 64, 128, 784, Trans::No, Trans::Yes),
    ("64x64x128_ABt", 64, 64, 128, Trans::No, Trans::Yes),
    ("1000x784x128_AB", 1000, 784, 128, Trans::No, Trans::No),
    ("256sq", 256, 256, 256, Trans::No, Trans::No),
    ("512sq", 512, 512, 512, Trans::No, Trans::No),
    ("1024sq", 1024, 1024, 1024, Trans::No, Trans::No),
    ("2048sq", 2048, 2048, 2048, Trans::No, Trans::No),
];

fn stored(rows: usize, cols: usize, t: Trans) -> DMatrix<f32> {
    let (r, c) = if t == Trans::No {
        (rows, cols)
    } else {
        (cols, rows)
    };
    DMatrix::from_fn(r, c, |i, j| ((i * 7 + j * 13) % 17) as f32 * 0.125 - 1.0)
}

/// Row and column strides of `op(x)` for a column-major `x`.
fn op_strides(x: &DMatrix<f32>, t: Trans) -> (isize, isize) {
    let ld = x.nrows() as isize;
    if t == Trans::No { (1, ld) } else { (ld, 1) }
}

fn shapes(c: &mut Criterion, squares: &[(&str, usize, usize, usize, Trans, Trans)]) {
    for &(label, m, k, n, ta, tb) in squares {
        let a = stored(m, k, ta);
        let b = stored(k, n, tb);
        let mut out = DMatrix::<f32>::zeros(m, n);
        let mut g = c.benchmark_group(label);
        g.throughput(Throughput::Elements((2 * m * n * k) as u64));
        let mut kernels = vec![("symgrad", KernelChoice::Auto)];
        if avx512_available() {
            kernels.push(("symgrad-avx2", KernelChoice::Avx2Fma));
        }
        for threads in [1usize, 2] {
            for &(id, kernel) in &kernels {
                let opts = GemmOptions {
                    kernel,
                    threads: Some(threads),
                };
                g.bench_function(BenchmarkId::new(id, threads), |bch| {
                    bch.iter(|| {
                        gemm_with(
                            &opts,
                            1.0,
                            a.as_view(),
                            ta,
                            b.as_view(),
                            tb,
                            0.0,
                            out.as_view_mut(),
                        );
                        black_box(&out);
                    })
                });
            }
            let par = if threads == 1 {
                gemm::Parallelism::None
            } else {
                gemm::Parallelism::Rayon(threads)
            };
            let (rsa, csa) = op_strides(&a, ta);
            let (rsb, csb) = op_strides(&b, tb);
            g.bench_function(BenchmarkId::new("gemm-crate", threads), |bch| {
                bch.iter(|| {
                    // SAFETY: all pointers and strides describe the live matrices `a`, `b`
                    // (m x k and k x n after the transposes) and `out` (m x n); `out` is not
                    // aliased. The `gemm` crate computes dst = alpha*dst + beta*lhs*rhs.
                    unsafe {
                        gemm::gemm(
                            m,
                            n,
                            k,
                            out.as_mut_ptr(),
                            m as isize,
                            1,
                            false,
                            a.as_ptr(),
                            csa,
                            rsa,
                            b.as_ptr(),
                            csb,
                            rsb,
                            0.0f32,
                            1.0f32,
                            false,
                            false,
                            false,
                            par,
                        )
                    };
                    black_box(&out);
                })
            });
        }
        let (rsa, csa) = op_strides(&a, ta);
        let (rsb, csb) = op_strides(&b, tb);
        g.bench_function(BenchmarkId::new("matrixmultiply", 1), |bch| {
            bch.iter(|| {
                // SAFETY: as for the `gemm` crate above.
                unsafe {
                    matrixmultiply::sgemm(
                        m,
                        k,
                        n,
                        1.0,
                        a.as_ptr(),
                        rsa,
                        csa,
                        b.as_ptr(),
                        rsb,
                        csb,
                        0.0,
                        out.as_mut_ptr(),
                        1,
                        m as isize,
                    )
                };
                black_box(&out);
            })
        });
        g.bench_function(BenchmarkId::new("nalgebra", 1), |bch| {
            bch.iter(|| {
                let r = match (ta, tb) {
                    (Trans::No, Trans::No) => &a * &b,
                    (Trans::Yes, Trans::No) => a.tr_mul(&b),
                    (Trans::No, Trans::Yes) => &a * b.transpose(),
                    (Trans::Yes, Trans::Yes) => a.transpose() * b.transpose(),
                };
                black_box(r)
            })
        });
        g.finish();
    }
}

fn mlp_and_squares(c: &mut Criterion) {
    shapes(c, &SHAPES);
}

/// Peak FMA throughput of one core: 12 independent chains of 8-lane (16-lane with AVX-512)
/// f32 FMAs.
fn fma_peak(c: &mut Criterion) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        const ITERS: usize = 100_000;
        /// # Safety
        ///
        /// The CPU must support AVX2 and FMA.
        #[target_feature(enable = "avx2,fma")]
        unsafe fn probe(x: f32) -> f32 {
            let mut acc = [_mm256_set1_ps(x); 12];
            let m = _mm256_set1_ps(0.999_999);
            let a = _mm256_set1_ps(1e-7);
            for _ in 0..ITERS {
                for v in acc.iter_mut() {
                    *v = _mm256_fmadd_ps(*v, m, a);
                }
            }
            let mut s = _mm256_setzero_ps();
            for v in acc {
                s = _mm256_add_ps(s, v);
            }
            _mm_cvtss_f32(_mm256_castps256_ps128(s))
        }
        /// # Safety
        ///
        /// The CPU must support AVX-512F.
        #[target_feature(enable = "avx512f")]
        unsafe fn probe512(x: f32) -> f32 {
            let mut acc = [_mm512_set1_ps(x); 12];
            let m = _mm512_set1_ps(0.999_999);
            let a = _mm512_set1_ps(1e-7);
            for _ in 0..ITERS {
                for v in acc.iter_mut() {
                    *v = _mm512_fmadd_ps(*v, m, a);
                }
            }
            let mut s = _mm512_setzero_ps();
            for v in acc {
                s = _mm512_add_ps(s, v);
            }
            _mm512_reduce_add_ps(s)
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            let mut g = c.benchmark_group("fma_peak");
            g.throughput(Throughput::Elements((ITERS * 12 * 8 * 2) as u64));
            g.bench_function("avx2_fma_1core", |b| {
                // SAFETY: AVX2 and FMA were detected just above.
                b.iter(|| black_box(unsafe { probe(black_box(1.0)) }))
            });
            g.finish();
        }
        if avx512_available() {
            let mut g = c.benchmark_group("fma_peak");
            g.throughput(Throughput::Elements((ITERS * 12 * 16 * 2) as u64));
            g.bench_function("avx512_fma_1core", |b| {
                // SAFETY: AVX-512F was detected just above.
                b.iter(|| black_box(unsafe { probe512(black_box(1.0)) }))
            });
            g.finish();
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(20);
    targets = fma_peak, mlp_and_squares
}
criterion_main!(benches);
