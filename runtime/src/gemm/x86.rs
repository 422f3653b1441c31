//! x86-64 micro-kernels: AVX2+FMA (256-bit) and AVX-512F (512-bit).
//!
//! Every kernel keeps a `2 x NR` grid of vector accumulators: per step of k it loads two vectors
//! of the packed A micro-panel, broadcasts `NR` elements of the packed B micro-panel and issues
//! `2 NR` FMAs. The tile's rows run along the vectors, so a column-major C (nalgebra's layout,
//! `rsc == 1`) is updated with vector loads and stores, masked in the last vector of a tile cut
//! short in rows; other strides go through a small stack buffer.
//!
//! | kernel | tile (`MR x NR`) | accumulators | `KC` / `MC` / `NC` |
//! |---|---|---|---|
//! | AVX2+FMA f32 | 16 x 6 | 12 of 16 `ymm` | 256 / 192 / 3072 |
//! | AVX2+FMA f64 | 8 x 6 | 12 of 16 `ymm` | 256 / 96 / 3072 |
//! | AVX-512F f32 | 32 x 12 | 24 of 32 `zmm` | 256 / 384 / 3072 |
//! | AVX-512F f64 | 16 x 12 | 24 of 32 `zmm` | 128 / 384 / 3072 |
//!
//! The driver's loop nest keeps a B micro-panel (`KC * NR`, 12 KiB for the 512-bit kernels)
//! in L1 while the A micro-panels of a packed A block (`MC * KC`, 384 KiB) stream from a 1 MiB
//! L2. The 512-bit kernels read A and B in place (no packing) for products of at most 64
//! rows at any depth: B would be packed for one or two A micro-panels only (64x784x128 f32:
//! 81 GFLOP/s packed, 108 in place). The AVX2 kernels pack there: reading their 6 columns of
//! B in place was slower on an AVX2-only EPYC (session 5) and no faster on Zen 4.
//!
//! Measured on 1 core of an AMD EPYC (Zen 4, AVX-512 executed as two 256-bit halves): `KC =
//! 256` over 128 and this loop order over the A-panel-outer one took 2048² f32 from 71 to 99
//! GFLOP/s (FMA peak 114) and 1000x784x128 from 65 to 95; see `runtime/BENCHMARKS.md`.
//!
//! All kernels are one macro, [`simd_kernel`], instantiated with each instruction set's
//! operations (load, store, broadcast, FMA, and a load/store of the first `n` lanes). The same
//! macro instantiated with AVX2 operations in the 512-bit kernels' `x 12` geometry is tested on
//! machines without AVX-512 (unit tests below), so the control flow of the AVX-512 kernels runs
//! everywhere; only the few lines of 512-bit operations need an AVX-512 CPU.
//!
//! There is no aarch64 NEON kernel: it could not be compiled or tested on the machine this was
//! written on. aarch64 uses the portable [`super::kernel::Fallback`] kernel, which LLVM
//! vectorises with NEON.

use core::arch::x86_64::*;

use super::kernel::{GemmKernel, store_tile_scalar};

/// f32 `16 x 6` AVX2+FMA kernel.
pub(crate) struct Avx2F32;
/// f64 `8 x 6` AVX2+FMA kernel.
pub(crate) struct Avx2F64;
/// f32 `32 x 12` AVX-512F kernel.
pub(crate) struct Avx512F32;
/// f64 `16 x 12` AVX-512F kernel.
pub(crate) struct Avx512F64;

/// Whether the running CPU can execute the AVX2+FMA kernels.
pub(crate) fn available() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

/// Whether the running CPU (and OS) can execute the AVX-512F kernels.
pub(crate) fn avx512_available() -> bool {
    is_x86_feature_detected!("avx512f")
}

/// Defines `impl GemmKernel for $name` and its kernel body (`body`, so one instantiation per
/// module). `$lanes` elements per vector, `MR = 2 * $lanes`; `$arms` lists `1..NR` (the column
/// counts of edge tiles read in place, each its own monomorphised body). The operations:
/// `$load`/`$store` (unaligned), `$bcast(&x)`, `$fmadd(a, b, c) = a * b + c` with one rounding,
/// `$mul`, `$set1`, and `$load_part(p, n)` / `$store_part(p, v, n)` touching only lanes `0..n`.
macro_rules! simd_kernel {
    ($name:ident, $t:ty, $vec:ty, lanes: $lanes:expr, nr: $nr:expr, kc: $kc:expr,
     mc: $mc:expr, nc: $nc:expr, in_place_m: $ipm:expr, feature: $feat:literal,
     arms: [$($arm:literal)*],
     ops: ($zero:path, $load:path, $store:path, $bcast:path, $fmadd:path, $mul:path,
           $set1:path, $load_part:path, $store_part:path)) => {
        impl GemmKernel for $name {
            type Elem = $t;
            const MR: usize = 2 * $lanes;
            const NR: usize = $nr;
            const KC: usize = $kc;
            const MC: usize = $mc;
            const NC: usize = $nc;
            const IN_PLACE_M: usize = $ipm;

            /// # Safety
            ///
            /// The trait's contract, and the CPU must support the kernel's instruction set
            /// (checked once before this kernel is ever selected).
            #[inline]
            unsafe fn kernel(
                k: usize,
                alpha: $t,
                a: *const $t,
                b: *const $t,
                beta: $t,
                c: *mut $t,
                rsc: usize,
                csc: usize,
                mr: usize,
                nr: usize,
            ) {
                // SAFETY: forwarded from the caller, who also guarantees the instruction set;
                // packed panels are read with the packed strides.
                unsafe {
                    body::<true, $nr>(
                        k, alpha, a, Self::MR, b, Self::NR, 1, beta, c, rsc, csc, mr, nr,
                    )
                }
            }

            /// # Safety
            ///
            /// The trait's contract, and the CPU must support the kernel's instruction set.
            #[inline]
            unsafe fn kernel_strided(
                k: usize,
                alpha: $t,
                a: *const $t,
                lda: usize,
                b: *const $t,
                bk: usize,
                bj: usize,
                beta: $t,
                c: *mut $t,
                rsc: usize,
                csc: usize,
                mr: usize,
                nr: usize,
            ) {
                // SAFETY: forwarded from the caller, who also guarantees the instruction set;
                // each arm computes (and reads B for) exactly the `nr` columns that exist.
                unsafe {
                    match nr {
                        $($arm => body::<false, $arm>(
                            k, alpha, a, lda, b, bk, bj, beta, c, rsc, csc, mr, $arm,
                        ),)*
                        _ => body::<false, $nr>(
                            k, alpha, a, lda, b, bk, bj, beta, c, rsc, csc, mr, nr,
                        ),
                    }
                }
            }
        }

        /// One kernel body compiled for the kernel's instruction set. Element `(i, p)` of the A
        /// panel is at `a + p * lda + i`, element `(p, j)` of the B panel at
        /// `b + p * bk + j * bj`; with `PACKED` the strides are the packed ones (`MR`, `NR`, 1)
        /// as compile-time constants and the arguments are ignored. Only the first `NC` columns
        /// of B are read and computed (`nr <= NC`); each element's operations do not depend on
        /// `NC`, nor on whether its row is stored with a full or a partial vector.
        ///
        /// # Safety
        ///
        /// As [`GemmKernel::kernel_strided`]; the CPU must support the instruction set.
        #[target_feature(enable = $feat)]
        #[allow(clippy::too_many_arguments)]
        unsafe fn body<const PACKED: bool, const NC: usize>(
            k: usize,
            alpha: $t,
            a: *const $t,
            lda: usize,
            b: *const $t,
            bk: usize,
            bj: usize,
            beta: $t,
            c: *mut $t,
            rsc: usize,
            csc: usize,
            mr: usize,
            nr: usize,
        ) {
            const L: usize = $lanes;
            const MR: usize = 2 * L;
            const NR: usize = $nr;
            let (lda, bk, bj) = if PACKED { (MR, NR, 1) } else { (lda, bk, bj) };
            let mut acc: [[$vec; 2]; NR] = [[$zero(); 2]; NR];
            let mut a = a;
            let mut b = b;
            macro_rules! step {
                () => {{
                    // SAFETY: this runs `k` times, advancing `a` by `lda`; the caller
                    // guarantees `a + p * lda + i` is readable for `p < k`, `i < MR`.
                    let a0 = unsafe { $load(a) };
                    // SAFETY: as above.
                    let a1 = unsafe { $load(a.add(L)) };
                    for j in 0..NC {
                        // SAFETY: `b + p * bk + j * bj` is readable for `p < k`, `j < NC`
                        // (`NC == NR` for packed panels, `NC == nr` in place).
                        let bv = unsafe { $bcast(&*b.add(j * bj)) };
                        acc[j][0] = $fmadd(a0, bv, acc[j][0]);
                        acc[j][1] = $fmadd(a1, bv, acc[j][1]);
                    }
                    // `wrapping_add`: after the last step the pointers may point past the
                    // operands; they are never dereferenced there.
                    a = a.wrapping_add(lda);
                    b = b.wrapping_add(bk);
                }};
            }
            let mut p = 0;
            while p + 4 <= k {
                step!();
                step!();
                step!();
                step!();
                p += 4;
            }
            while p < k {
                step!();
                p += 1;
            }

            let va = $set1(alpha);
            if rsc == 1 {
                for (j, accj) in acc.iter().enumerate().take(nr) {
                    // SAFETY: `j < nr`, and rows are contiguous (`rsc == 1`), so column `j` of
                    // the tile is `mr` valid elements from here.
                    let col = unsafe { c.add(j * csc) };
                    for (h, &v) in accj.iter().enumerate() {
                        // Lanes of this vector that are rows of C.
                        let n = mr.saturating_sub(h * L).min(L);
                        if n == 0 {
                            break;
                        }
                        // SAFETY: rows `h * L .. h * L + n` of column `j` exist (`n` above).
                        let p = unsafe { col.add(h * L) };
                        let t = $mul(va, v);
                        let r = if beta == 0.0 {
                            t
                        } else if n == L {
                            // SAFETY: `L` valid elements; C is read only when `beta != 0`.
                            $fmadd($set1(beta), unsafe { $load(p) }, t)
                        } else {
                            // SAFETY: `n` valid elements; lanes `n..` are not read.
                            $fmadd($set1(beta), unsafe { $load_part(p, n) }, t)
                        };
                        if n == L {
                            // SAFETY: `L` valid elements, as above.
                            unsafe { $store(p, r) };
                        } else {
                            // SAFETY: `n` valid elements; lanes `n..` are not written.
                            unsafe { $store_part(p, r, n) };
                        }
                    }
                }
            } else {
                let mut buf = [0.0 as $t; MR * NR];
                for (j, accj) in acc.iter().enumerate() {
                    for (h, &v) in accj.iter().enumerate() {
                        // SAFETY: `j * MR + h * L + L <= MR * NR`, inside `buf`.
                        unsafe { $store(buf.as_mut_ptr().add(j * MR + h * L), v) };
                    }
                }
                // SAFETY: forwarded from the caller; `buf` is `NR` columns of `MR`.
                unsafe {
                    store_tile_scalar::<$t, true>(&buf, MR, alpha, beta, c, rsc, csc, mr, nr)
                };
            }
        }
    };
}

/// 256-bit operations on the first `n < 8` lanes (masked loads and stores do not touch, or
/// fault on, the other lanes' memory).
mod avx2_ops {
    use core::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx2")]
    fn mask32(n: usize) -> __m256i {
        _mm256_cmpgt_epi32(
            _mm256_set1_epi32(n as i32),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        )
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn mask64(n: usize) -> __m256i {
        _mm256_cmpgt_epi64(_mm256_set1_epi64x(n as i64), _mm256_setr_epi64x(0, 1, 2, 3))
    }

    /// # Safety
    ///
    /// `p .. p + n` must be valid for reads.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn load_part_ps(p: *const f32, n: usize) -> __m256 {
        // SAFETY: only lanes `0..n` are read (the caller guarantees those).
        unsafe { _mm256_maskload_ps(p, mask32(n)) }
    }

    /// # Safety
    ///
    /// `p .. p + n` must be valid for writes.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn store_part_ps(p: *mut f32, v: __m256, n: usize) {
        // SAFETY: only lanes `0..n` are written (the caller guarantees those).
        unsafe { _mm256_maskstore_ps(p, mask32(n), v) }
    }

    /// # Safety
    ///
    /// `p .. p + n` must be valid for reads.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn load_part_pd(p: *const f64, n: usize) -> __m256d {
        // SAFETY: only lanes `0..n` are read (the caller guarantees those).
        unsafe { _mm256_maskload_pd(p, mask64(n)) }
    }

    /// # Safety
    ///
    /// `p .. p + n` must be valid for writes.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn store_part_pd(p: *mut f64, v: __m256d, n: usize) {
        // SAFETY: only lanes `0..n` are written (the caller guarantees those).
        unsafe { _mm256_maskstore_pd(p, mask64(n), v) }
    }
}

/// 512-bit operations: broadcasts, and loads/stores of the first `n < 16` (`< 8`) lanes with
/// an AVX-512 lane mask (masked-off lanes are neither accessed nor fault).
mod avx512_ops {
    use core::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn bcast_ps(x: &f32) -> __m512 {
        _mm512_set1_ps(*x)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn bcast_pd(x: &f64) -> __m512d {
        _mm512_set1_pd(*x)
    }

    /// # Safety
    ///
    /// `p .. p + n` must be valid for reads, `n <= 16`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn load_part_ps(p: *const f32, n: usize) -> __m512 {
        let k = ((1u32 << n) - 1) as __mmask16;
        // SAFETY: only lanes `0..n` are read (the caller guarantees those).
        unsafe { _mm512_maskz_loadu_ps(k, p) }
    }

    /// # Safety
    ///
    /// `p .. p + n` must be valid for writes, `n <= 16`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn store_part_ps(p: *mut f32, v: __m512, n: usize) {
        let k = ((1u32 << n) - 1) as __mmask16;
        // SAFETY: only lanes `0..n` are written (the caller guarantees those).
        unsafe { _mm512_mask_storeu_ps(p, k, v) }
    }

    /// # Safety
    ///
    /// `p .. p + n` must be valid for reads, `n <= 8`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn load_part_pd(p: *const f64, n: usize) -> __m512d {
        let k = ((1u32 << n) - 1) as __mmask8;
        // SAFETY: only lanes `0..n` are read (the caller guarantees those).
        unsafe { _mm512_maskz_loadu_pd(k, p) }
    }

    /// # Safety
    ///
    /// `p .. p + n` must be valid for writes, `n <= 8`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn store_part_pd(p: *mut f64, v: __m512d, n: usize) {
        let k = ((1u32 << n) - 1) as __mmask8;
        // SAFETY: only lanes `0..n` are written (the caller guarantees those).
        unsafe { _mm512_mask_storeu_pd(p, k, v) }
    }
}

/// `simd_kernel!` with the AVX2+FMA operations on f32.
macro_rules! avx2_f32 {
    ($name:ident, nr: $nr:expr, kc: $kc:expr, mc: $mc:expr, in_place_m: $ipm:expr,
     arms: [$($arm:literal)*]) => {
        simd_kernel!($name, f32, __m256, lanes: 8, nr: $nr, kc: $kc, mc: $mc, nc: 3072,
            in_place_m: $ipm,
            feature: "avx2,fma", arms: [$($arm)*],
            ops: (_mm256_setzero_ps, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_broadcast_ss,
                  _mm256_fmadd_ps, _mm256_mul_ps, _mm256_set1_ps, avx2_ops::load_part_ps,
                  avx2_ops::store_part_ps));
    };
}

/// `simd_kernel!` with the AVX2+FMA operations on f64.
macro_rules! avx2_f64 {
    ($name:ident, nr: $nr:expr, kc: $kc:expr, mc: $mc:expr, in_place_m: $ipm:expr,
     arms: [$($arm:literal)*]) => {
        simd_kernel!($name, f64, __m256d, lanes: 4, nr: $nr, kc: $kc, mc: $mc, nc: 3072,
            in_place_m: $ipm,
            feature: "avx2,fma", arms: [$($arm)*],
            ops: (_mm256_setzero_pd, _mm256_loadu_pd, _mm256_storeu_pd, _mm256_broadcast_sd,
                  _mm256_fmadd_pd, _mm256_mul_pd, _mm256_set1_pd, avx2_ops::load_part_pd,
                  avx2_ops::store_part_pd));
    };
}

mod avx2_f32_kernel {
    use super::*;
    avx2_f32!(Avx2F32, nr: 6, kc: 256, mc: 192, in_place_m: 0, arms: [1 2 3 4 5]);
}

mod avx2_f64_kernel {
    use super::*;
    avx2_f64!(Avx2F64, nr: 6, kc: 256, mc: 96, in_place_m: 0, arms: [1 2 3 4 5]);
}

mod avx512_f32_kernel {
    use super::*;
    simd_kernel!(Avx512F32, f32, __m512, lanes: 16, nr: 12, kc: 256, mc: 384, nc: 3072,
        in_place_m: 64, feature: "avx512f", arms: [1 2 3 4 5 6 7 8 9 10 11],
        ops: (_mm512_setzero_ps, _mm512_loadu_ps, _mm512_storeu_ps, avx512_ops::bcast_ps,
              _mm512_fmadd_ps, _mm512_mul_ps, _mm512_set1_ps, avx512_ops::load_part_ps,
              avx512_ops::store_part_ps));
}

mod avx512_f64_kernel {
    use super::*;
    simd_kernel!(Avx512F64, f64, __m512d, lanes: 8, nr: 12, kc: 128, mc: 384, nc: 3072,
        in_place_m: 64, feature: "avx512f", arms: [1 2 3 4 5 6 7 8 9 10 11],
        ops: (_mm512_setzero_pd, _mm512_loadu_pd, _mm512_storeu_pd, avx512_ops::bcast_pd,
              _mm512_fmadd_pd, _mm512_mul_pd, _mm512_set1_pd, avx512_ops::load_part_pd,
              avx512_ops::store_part_pd));
}

/// The AVX-512 kernels' geometry (`x 12` tiles, their `KC` and `MC`) built from AVX2
/// operations, so that the macro's paths for that geometry (twelve columns, the eleven
/// in-place edge arms, the B pack width, masked row edges in the first and the second vector)
/// are exercised on machines without AVX-512.
#[cfg(test)]
pub(crate) mod wide {
    use super::*;
    /// f32 `16 x 12` AVX2 kernel (spills accumulators; for tests only).
    pub(crate) struct WideF32;
    /// f64 `8 x 12` AVX2 kernel (for tests only).
    pub(crate) struct WideF64;
    avx2_f32!(WideF32, nr: 12, kc: 256, mc: 384, in_place_m: 64, arms: [1 2 3 4 5 6 7 8 9 10 11]);
    mod f64_body {
        use super::*;
        avx2_f64!(WideF64, nr: 12, kc: 128, mc: 384, in_place_m: 64, arms: [1 2 3 4 5 6 7 8 9 10 11]);
    }
}
