//! x86-64 AVX2+FMA micro-kernels.
//!
//! Both kernels keep a `2 x 6` grid of 256-bit accumulators (12 of the 16 `ymm` registers): per
//! step of k they load two vectors of the packed A micro-panel, broadcast six elements of the
//! packed B micro-panel and issue 12 FMAs. The tile's rows run along the vectors, so a
//! column-major C (nalgebra's layout, `rsc == 1`) is updated with full-vector loads and stores
//! (also in tiles cut short in columns); other strides and tiles cut short in rows go through a
//! small stack buffer.
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

/// Whether the running CPU can execute the kernels of this module.
pub(crate) fn available() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

macro_rules! avx2_kernel {
    ($name:ident, $t:ty, $vec:ty, $lanes:expr, $mc:expr, $nc:expr,
     $zero:ident, $load:ident, $store:ident, $bcast:ident, $fmadd:ident, $mul:ident, $set1:ident) => {
        impl GemmKernel for $name {
            type Elem = $t;
            const MR: usize = 2 * $lanes;
            const NR: usize = 6;
            const KC: usize = 256;
            const MC: usize = $mc;
            const NC: usize = $nc;

            /// # Safety
            ///
            /// The trait's contract, and the CPU must support AVX2 and FMA
            /// (checked once by [`available`] before this kernel is ever selected).
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
                // SAFETY: forwarded from the caller, who also guarantees AVX2+FMA; packed panels
                // are read with the packed strides.
                unsafe {
                    body::<true, 6>(
                        k,
                        alpha,
                        a,
                        Self::MR,
                        b,
                        Self::NR,
                        1,
                        beta,
                        c,
                        rsc,
                        csc,
                        mr,
                        nr,
                    )
                }
            }

            /// # Safety
            ///
            /// The trait's contract, and the CPU must support AVX2 and FMA.
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
                // SAFETY: forwarded from the caller, who also guarantees AVX2+FMA.
                unsafe {
                    match nr {
                        1 => {
                            body::<false, 1>(k, alpha, a, lda, b, bk, bj, beta, c, rsc, csc, mr, 1)
                        }
                        2 => {
                            body::<false, 2>(k, alpha, a, lda, b, bk, bj, beta, c, rsc, csc, mr, 2)
                        }
                        3 => {
                            body::<false, 3>(k, alpha, a, lda, b, bk, bj, beta, c, rsc, csc, mr, 3)
                        }
                        4 => {
                            body::<false, 4>(k, alpha, a, lda, b, bk, bj, beta, c, rsc, csc, mr, 4)
                        }
                        5 => {
                            body::<false, 5>(k, alpha, a, lda, b, bk, bj, beta, c, rsc, csc, mr, 5)
                        }
                        _ => {
                            body::<false, 6>(k, alpha, a, lda, b, bk, bj, beta, c, rsc, csc, mr, nr)
                        }
                    }
                }
            }
        }

        /// One kernel body compiled with AVX2+FMA enabled. Element `(i, p)` of the A panel is
        /// at `a + p * lda + i`, element `(p, j)` of the B panel at `b + p * bk + j * bj`; with
        /// `PACKED` the strides are the packed ones (`MR`, `NR`, 1) as compile-time constants
        /// and the arguments are ignored. Only the first `NC` columns of B are read and
        /// computed (`nr <= NC`); each element's operations do not depend on `NC`.
        ///
        /// # Safety
        ///
        /// As [`GemmKernel::kernel_strided`]; the CPU must support AVX2 and FMA.
        #[target_feature(enable = "avx2,fma")]
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
            const NR: usize = 6;
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
            if mr == MR && rsc == 1 {
                for (j, accj) in acc.iter().enumerate().take(nr) {
                    // SAFETY: full columns exist (`mr == MR`, `j < nr`) and rows are
                    // contiguous (`rsc == 1`), so column `j` is `MR` valid elements.
                    let col = unsafe { c.add(j * csc) };
                    for (h, &v) in accj.iter().enumerate() {
                        // SAFETY: `h * L + L <= MR` elements of column `j`.
                        let p = unsafe { col.add(h * L) };
                        let t = $mul(va, v);
                        let r = if beta == 0.0 {
                            t
                        } else {
                            // SAFETY: in bounds as above; C is read only when `beta != 0`.
                            $fmadd($set1(beta), unsafe { $load(p) }, t)
                        };
                        // SAFETY: in bounds as above.
                        unsafe { $store(p, r) };
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

mod f32_kernel {
    use super::*;
    avx2_kernel!(
        Avx2F32,
        f32,
        __m256,
        8,
        96,
        3072,
        _mm256_setzero_ps,
        _mm256_loadu_ps,
        _mm256_storeu_ps,
        _mm256_broadcast_ss,
        _mm256_fmadd_ps,
        _mm256_mul_ps,
        _mm256_set1_ps
    );
}

mod f64_kernel {
    use super::*;
    avx2_kernel!(
        Avx2F64,
        f64,
        __m256d,
        4,
        96,
        3072,
        _mm256_setzero_pd,
        _mm256_loadu_pd,
        _mm256_storeu_pd,
        _mm256_broadcast_sd,
        _mm256_fmadd_pd,
        _mm256_mul_pd,
        _mm256_set1_pd
    );
}
