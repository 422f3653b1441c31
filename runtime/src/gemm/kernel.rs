//! The micro-kernel trait, its contract, and the portable fallback kernel.

use super::Elem;

/// A register-blocked micro-kernel together with the cache-block sizes of the loop nest that
/// drives it. The loop nest in [`super::driver`] is generic over this trait, so the kernel is
/// chosen once per call and nothing branches per tile.
///
/// # Contract
///
/// The driver calls [`GemmKernel::kernel`] for one `MR x NR` tile of C at a time:
///
/// * `a` points to a packed A micro-panel of `k * MR` elements: element `(i, p)` of the panel
///   is at `a[p * MR + i]`. Rows past the edge of the matrix are padded with zeros.
/// * `b` points to a packed B micro-panel of `k * NR` elements: element `(p, j)` is at
///   `b[p * NR + j]`. Columns past the edge are padded with zeros.
/// * `c` points to element `(0, 0)` of the tile; element `(i, j)` is at `c + i * rsc + j * csc`.
///   Only the `mr x nr` top-left part (`1 <= mr <= MR`, `1 <= nr <= NR`) exists and only that part
///   may be read or written.
/// * The kernel computes `C = alpha * A * B + beta * C` on that part. **When `beta == 0` it must
///   not read C**, so NaN or uninitialised garbage in C cannot leak into the result.
/// * `k` may be zero (then `C = beta * C`).
/// * A given kernel must compute each element with the same sequence of operations wherever the
///   tile sits, so that results do not depend on how the work is split across threads.
pub(crate) trait GemmKernel {
    /// Element type.
    type Elem: Elem;
    /// Rows of a micro-tile (the vectorised direction: packed A rows are loaded as vectors).
    const MR: usize;
    /// Columns of a micro-tile (broadcast from packed B).
    const NR: usize;
    /// Depth of a cache block (packed panels hold `KC` steps of k).
    const KC: usize;
    /// Rows of a packed A block (multiple of `MR`), sized for L2.
    const MC: usize;
    /// Columns of a packed B block (multiple of `NR`), sized for L3.
    const NC: usize;
    /// Products with at most this many rows read A and B in place at every depth instead of
    /// packing them (0: never; see `driver::serial`).
    const IN_PLACE_M: usize = 0;

    /// Computes one micro-tile; see the trait documentation for the contract.
    ///
    /// # Safety
    ///
    /// `a` must be valid for reads of `k * MR` elements and `b` for reads of `k * NR` elements;
    /// every `c + i * rsc + j * csc` with `i < mr`, `j < nr` must be valid for reads and writes
    /// and not be accessed by anyone else during the call; `1 <= mr <= MR`, `1 <= nr <= NR`. The
    /// CPU must support the instructions the kernel was compiled for (see the kernel's docs).
    #[allow(clippy::too_many_arguments)]
    unsafe fn kernel(
        k: usize,
        alpha: Self::Elem,
        a: *const Self::Elem,
        b: *const Self::Elem,
        beta: Self::Elem,
        c: *mut Self::Elem,
        rsc: usize,
        csc: usize,
        mr: usize,
        nr: usize,
    );

    /// [`GemmKernel::kernel`] on operands read in place: element `(i, p)` of the A panel is at
    /// `a + p * lda + i` and element `(p, j)` of the B panel at `b + p * bk + j * bj`. Each
    /// element of C gets exactly the same operations as with packed panels holding the same
    /// values, so the two entry points give bitwise identical results.
    ///
    /// # Safety
    ///
    /// As [`GemmKernel::kernel`], except that `a + p * lda + i` must be valid for reads for
    /// every `p < k`, `i < MR` (all `MR` rows, not only the `mr` that exist in C), and
    /// `b + p * bk + j * bj` for every `p < k`, `j < nr` (only the columns that exist).
    #[allow(clippy::too_many_arguments)]
    unsafe fn kernel_strided(
        k: usize,
        alpha: Self::Elem,
        a: *const Self::Elem,
        lda: usize,
        b: *const Self::Elem,
        bk: usize,
        bj: usize,
        beta: Self::Elem,
        c: *mut Self::Elem,
        rsc: usize,
        csc: usize,
        mr: usize,
        nr: usize,
    );
}

/// Writes `alpha * acc + beta * C` (or `alpha * acc` when `beta == 0`, without reading C) into
/// the `mr x nr` part of a C tile. `acc` is column-major with leading dimension `mr_full`.
/// With `FUSED` the update `beta * C + t` is one fused multiply-add (use it only where the CPU
/// has FMA, otherwise it becomes a slow libm call).
///
/// # Safety
///
/// Every `c + i * rsc + j * csc` with `i < mr`, `j < nr` must be valid for reads and writes, and
/// `acc.len() >= nr_full * mr_full` with `mr <= mr_full`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn store_tile_scalar<T: Elem, const FUSED: bool>(
    acc: &[T],
    mr_full: usize,
    alpha: T,
    beta: T,
    c: *mut T,
    rsc: usize,
    csc: usize,
    mr: usize,
    nr: usize,
) {
    for j in 0..nr {
        for i in 0..mr {
            let t = alpha * acc[j * mr_full + i];
            // SAFETY: `i < mr`, `j < nr`, so the caller guarantees this element is valid.
            let dst = unsafe { c.add(i * rsc + j * csc) };
            if beta == T::ZERO {
                // SAFETY: see above; writing without reading, as the contract requires.
                unsafe { dst.write(t) };
            } else {
                // SAFETY: see above.
                let old = unsafe { dst.read() };
                let v = if FUSED {
                    T::mul_add_elem(beta, old, t)
                } else {
                    t + beta * old
                };
                // SAFETY: see above.
                unsafe { dst.write(v) };
            }
        }
    }
}

/// Portable kernel: plain Rust on fixed-size arrays, written so that LLVM keeps the `MR x NR`
/// accumulator in vector registers of whatever SIMD width the target has (SSE2 on baseline
/// x86-64, NEON on aarch64). Used when AVX2+FMA is missing or the fallback is forced.
///
/// Tile sizes are chosen to fit 16 SSE registers: f32 `8 x 4`, f64 `4 x 4`.
pub(crate) struct Fallback<T, const MR: usize, const NR: usize>(core::marker::PhantomData<T>);

impl<T: Elem, const MR: usize, const NR: usize> GemmKernel for Fallback<T, MR, NR> {
    type Elem = T;
    const MR: usize = MR;
    const NR: usize = NR;
    const KC: usize = 256;
    const MC: usize = 64 * MR;
    const NC: usize = 256 * NR;

    #[inline(never)]
    unsafe fn kernel(
        k: usize,
        alpha: T,
        a: *const T,
        b: *const T,
        beta: T,
        c: *mut T,
        rsc: usize,
        csc: usize,
        mr: usize,
        nr: usize,
    ) {
        let mut acc = [[T::ZERO; MR]; NR];
        for p in 0..k {
            // SAFETY: the caller guarantees `a` holds `k * MR` elements and `p < k`; `T` is a
            // plain float so any `[T; MR]` alignment is that of `T`, which packed buffers have.
            let av: [T; MR] = unsafe { a.add(p * MR).cast::<[T; MR]>().read() };
            // SAFETY: as above for `b`, `k * NR` elements.
            let bv: [T; NR] = unsafe { b.add(p * NR).cast::<[T; NR]>().read() };
            for j in 0..NR {
                for i in 0..MR {
                    acc[j][i] = acc[j][i] + av[i] * bv[j];
                }
            }
        }
        let flat = acc.as_flattened();
        // SAFETY: forwarded from the caller; `flat` has `NR * MR` elements and `mr <= MR`.
        unsafe { store_tile_scalar::<T, false>(flat, MR, alpha, beta, c, rsc, csc, mr, nr) };
    }

    #[inline(never)]
    unsafe fn kernel_strided(
        k: usize,
        alpha: T,
        a: *const T,
        lda: usize,
        b: *const T,
        bk: usize,
        bj: usize,
        beta: T,
        c: *mut T,
        rsc: usize,
        csc: usize,
        mr: usize,
        nr: usize,
    ) {
        let mut acc = [[T::ZERO; MR]; NR];
        for p in 0..k {
            // SAFETY: the caller guarantees `a + p * lda + i` is readable for `i < MR`, `p < k`;
            // `[T; MR]` has the alignment of `T`.
            let av: [T; MR] = unsafe { a.add(p * lda).cast::<[T; MR]>().read() };
            // Columns `nr..NR` are not read; their accumulators are never stored.
            let bv: [T; NR] = core::array::from_fn(|j| {
                if j < nr {
                    // SAFETY: the caller guarantees `b + p * bk + j * bj` is readable for
                    // `j < nr`.
                    unsafe { b.add(p * bk + j * bj).read() }
                } else {
                    T::ZERO
                }
            });
            for j in 0..NR {
                for i in 0..MR {
                    acc[j][i] = acc[j][i] + av[i] * bv[j];
                }
            }
        }
        let flat = acc.as_flattened();
        // SAFETY: forwarded from the caller; `flat` has `NR * MR` elements and `mr <= MR`.
        unsafe { store_tile_scalar::<T, false>(flat, MR, alpha, beta, c, rsc, csc, mr, nr) };
    }
}
