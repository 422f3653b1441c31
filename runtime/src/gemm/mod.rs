//! General matrix multiplication: `C = alpha * op(A) * op(B) + beta * C` for `f32` and `f64`.
//!
//! * [`gemm`] / [`matmul`] work on nalgebra matrices and views of any strides (column-major
//!   matrices, sub-views, views with steps); transposes are expressed with [`Trans`] and never
//!   copy.
//! * [`gemm_strided`] is the layer underneath: slices plus row and column strides
//!   ([`MatRef`], [`MatMut`]), bounds-checked before any kernel runs.
//!
//! # Implementation
//!
//! BLIS-style: C is computed in `NC`-column blocks; for each `KC`-deep slice of k a block of B
//! is packed into `NR`-wide micro-panels, then for each `MC`-row block of A the block is packed
//! into `MR`-tall micro-panels and a register-blocked micro-kernel computes `MR x NR` tiles. The
//! loop nest is generic over the kernel trait (see `kernel.rs` for its contract), and the kernel
//! is picked once per process:
//!
//! * x86-64 with AVX-512F: f32 `32 x 12` and f64 `16 x 12` kernels on `zmm` registers;
//! * x86-64 with AVX2+FMA (and no AVX-512F): f32 `16 x 6` and f64 `8 x 6` kernels (both in
//!   `x86.rs`, one macro);
//! * anywhere else: a portable kernel that LLVM vectorises (there is no hand-written aarch64
//!   NEON kernel; it could not be built or tested here).
//!
//! `SYMGRAD_GEMM_KERNEL=avx512|avx2|fallback` (or [`set_kernel`]) forces a kernel; an unknown value,
//! or a kernel this CPU cannot run, is an error naming the kernels it supports
//! ([`kernel_from_name`]). Packing
//! buffers are per thread and reused, so steady-state calls do not allocate.
//!
//! # Threads
//!
//! Products of at least [`PARALLEL_MIN_FLOPS`] floating-point operations are split across
//! [`num_threads`] threads (default 1; set with [`set_num_threads`] or `SYMGRAD_NUM_THREADS`)
//! of a persistent pool. The split never changes the arithmetic, so results are bitwise
//! identical for every thread count.

mod driver;
mod kernel;
mod pack;
pub(crate) mod pool;

/// The pool behind [`crate::parallel::run`].
pub(crate) fn pool_run(n: usize, f: &(dyn Fn(usize) + Sync)) {
    pool::Pool::global().run(n, f);
}
#[cfg(test)]
mod tests;
#[cfg(target_arch = "x86_64")]
mod x86;

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use nalgebra::{DMatrix, DMatrixView, DMatrixViewMut, Dim};

use kernel::Fallback;

/// Whether an operand is used as it is or transposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trans {
    /// `op(X) = X`.
    No,
    /// `op(X) = X^T`.
    Yes,
}

/// Element types the GEMM supports: `f32` and `f64` (sealed).
pub trait GemmScalar: nalgebra::RealField + Copy + sealed::Sealed {}

impl GemmScalar for f32 {}
impl GemmScalar for f64 {}

mod sealed {
    /// Arithmetic the kernels need, plus the per-type kernel dispatch.
    pub trait Elem:
        Copy
        + Send
        + Sync
        + PartialEq
        + core::fmt::Debug
        + core::ops::Add<Output = Self>
        + core::ops::Mul<Output = Self>
        + 'static
    {
        const ZERO: Self;
        const ONE: Self;
        /// `self * a + b` with a single rounding.
        fn mul_add_elem(self, a: Self, b: Self) -> Self;
    }

    pub trait Sealed: Elem {
        /// Runs the task with the selected kernel for this type.
        fn dispatch(task: &super::Task<Self>, kernel: super::KernelChoice, threads: usize);
    }
}

use sealed::Elem;

macro_rules! impl_elem {
    ($t:ty, $fb:ty, $avx:ident, $avx512:ident) => {
        impl Elem for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            #[inline(always)]
            fn mul_add_elem(self, a: Self, b: Self) -> Self {
                self.mul_add(a, b)
            }
        }
        impl sealed::Sealed for $t {
            fn dispatch(task: &Task<Self>, kernel: KernelChoice, threads: usize) {
                match kernel {
                    #[cfg(target_arch = "x86_64")]
                    KernelChoice::Avx2Fma => driver::run::<x86::$avx>(task, threads),
                    #[cfg(target_arch = "x86_64")]
                    KernelChoice::Avx512 => driver::run::<x86::$avx512>(task, threads),
                    _ => driver::run::<$fb>(task, threads),
                }
            }
        }
    };
}

impl_elem!(f32, Fallback<f32, 8, 4>, Avx2F32, Avx512F32);
impl_elem!(f64, Fallback<f64, 4, 4>, Avx2F64, Avx512F64);

/// A validated GEMM problem on raw pointers: every element of `op(A)` (`m x k`), `op(B)`
/// (`k x n`) and C (`m x n`) at the given strides is in bounds, C is writable and its
/// elements do not overlap.
#[doc(hidden)]
pub struct Task<T> {
    m: usize,
    n: usize,
    k: usize,
    alpha: T,
    a: *const T,
    rsa: usize,
    csa: usize,
    b: *const T,
    rsb: usize,
    csb: usize,
    beta: T,
    c: *mut T,
    rsc: usize,
    csc: usize,
}

// SAFETY: a task is shared between the pool threads of one call only; they read A and B and
// write disjoint parts of C (see `driver::run`), and `T` is `Send + Sync`.
unsafe impl<T: Elem> Sync for Task<T> {}

impl<T: Elem> Task<T> {
    /// The sub-problem for rows `i0..i1` and columns `j0..j1` of C.
    fn sub(&self, i0: usize, i1: usize, j0: usize, j1: usize) -> Task<T> {
        Task {
            m: i1 - i0,
            n: j1 - j0,
            a: self.a.wrapping_add(i0 * self.rsa),
            b: self.b.wrapping_add(j0 * self.csb),
            c: self.c.wrapping_add(i0 * self.rsc + j0 * self.csc),
            ..*self
        }
    }
}

impl<T: Copy> Clone for Task<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: Copy> Copy for Task<T> {}

/// Which micro-kernel to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelChoice {
    /// The fastest kernel the CPU supports (or what `SYMGRAD_GEMM_KERNEL` says).
    Auto,
    /// The portable kernel.
    Fallback,
    /// The x86-64 AVX2+FMA kernel. Requesting it on a CPU without AVX2+FMA falls back to the
    /// portable kernel; see [`avx2_fma_available`].
    Avx2Fma,
    /// The x86-64 AVX-512F kernel (512-bit `zmm` registers). Requesting it on a CPU without
    /// AVX-512F falls back to the AVX2+FMA kernel, or to the portable one; see
    /// [`avx512_available`].
    Avx512,
}

/// `probe()`, run once per `cache` (0 = not probed yet, 1 = no, 2 = yes).
fn cached(cache: &AtomicU8, probe: fn() -> bool) -> bool {
    match cache.load(Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => {
            let yes = probe();
            cache.store(if yes { 2 } else { 1 }, Ordering::Relaxed);
            yes
        }
    }
}

/// Whether the AVX2+FMA kernels can run on this CPU.
pub fn avx2_fma_available() -> bool {
    static CACHE: AtomicU8 = AtomicU8::new(0);
    #[cfg(target_arch = "x86_64")]
    let probe: fn() -> bool = x86::available;
    #[cfg(not(target_arch = "x86_64"))]
    let probe: fn() -> bool = || false;
    cached(&CACHE, probe)
}

/// Whether the AVX-512F kernels can run on this CPU (and the OS saves `zmm` state).
pub fn avx512_available() -> bool {
    static CACHE: AtomicU8 = AtomicU8::new(0);
    #[cfg(target_arch = "x86_64")]
    let probe: fn() -> bool = x86::avx512_available;
    #[cfg(not(target_arch = "x86_64"))]
    let probe: fn() -> bool = || false;
    cached(&CACHE, probe)
}

/// The fastest kernel this CPU runs.
fn fastest() -> KernelChoice {
    if avx512_available() {
        KernelChoice::Avx512
    } else if avx2_fma_available() {
        KernelChoice::Avx2Fma
    } else {
        KernelChoice::Fallback
    }
}

/// 0 = not decided yet, 1 = fallback, 2 = AVX2+FMA, 3 = AVX-512F.
static KERNEL: AtomicU8 = AtomicU8::new(0);

fn resolve(choice: KernelChoice) -> KernelChoice {
    match choice {
        KernelChoice::Fallback => KernelChoice::Fallback,
        KernelChoice::Avx2Fma if avx2_fma_available() => KernelChoice::Avx2Fma,
        KernelChoice::Avx2Fma => KernelChoice::Fallback,
        KernelChoice::Avx512 if avx512_available() => KernelChoice::Avx512,
        KernelChoice::Avx512 => resolve(KernelChoice::Avx2Fma),
        KernelChoice::Auto => selected_kernel(),
    }
}

/// Forces the kernel used by [`gemm`], [`matmul`] and [`gemm_strided`] from now on
/// (`Auto` re-detects, honouring `SYMGRAD_GEMM_KERNEL`). Process-wide; to pick a kernel for a
/// single call use [`GemmOptions`].
pub fn set_kernel(choice: KernelChoice) {
    let k = match choice {
        KernelChoice::Auto => detect(),
        other => resolve(other),
    };
    let code = match k {
        KernelChoice::Avx2Fma => 2,
        KernelChoice::Avx512 => 3,
        _ => 1,
    };
    KERNEL.store(code, Ordering::Relaxed);
}

/// Shorthand for `set_kernel(KernelChoice::Fallback)` (`true`) or `set_kernel(Auto)` (`false`).
pub fn force_fallback_kernel(on: bool) {
    set_kernel(if on {
        KernelChoice::Fallback
    } else {
        KernelChoice::Auto
    });
}

/// The kernel the default entry points use: detected on first use (cached), unless
/// `SYMGRAD_GEMM_KERNEL` names one ([`kernel_from_name`]) or [`set_kernel`] was called.
/// Never `Auto`.
///
/// # Panics
/// On first use, if `SYMGRAD_GEMM_KERNEL` holds an unknown kernel or one this CPU cannot run.
pub fn selected_kernel() -> KernelChoice {
    match KERNEL.load(Ordering::Relaxed) {
        1 => KernelChoice::Fallback,
        2 => KernelChoice::Avx2Fma,
        3 => KernelChoice::Avx512,
        _ => {
            set_kernel(KernelChoice::Auto);
            selected_kernel()
        }
    }
}

fn detect() -> KernelChoice {
    let env = std::env::var("SYMGRAD_GEMM_KERNEL").unwrap_or_default();
    kernel_from_name(&env).unwrap_or_else(|e| panic!("{e}"))
}

/// The kernel a `SYMGRAD_GEMM_KERNEL` value asks for: `""` or `auto` (the fastest this CPU
/// supports), `avx512` (the AVX-512F kernel), `avx2` (the AVX2+FMA kernel), `fallback` (the
/// portable one; also `portable`, `generic`); case-insensitive.
///
/// # Errors
/// A message naming the value and the kernels this CPU supports, for an unknown name or a
/// kernel the CPU cannot run (e.g. `avx512` without AVX-512F). The kernel is chosen when the
/// first product runs; such a value then panics with this message.
pub fn kernel_from_name(name: &str) -> Result<KernelChoice, String> {
    let supported = match fastest() {
        KernelChoice::Avx512 => "auto, avx512, avx2, fallback",
        KernelChoice::Avx2Fma => "auto, avx2, fallback",
        _ => "auto, fallback",
    };
    let lacks = |what: &str| {
        Err(format!(
            "SYMGRAD_GEMM_KERNEL={name}: this CPU lacks {what}; kernels supported here: \
             {supported}"
        ))
    };
    match name.trim().to_ascii_lowercase().as_str() {
        "" | "auto" => Ok(fastest()),
        "fallback" | "portable" | "generic" => Ok(KernelChoice::Fallback),
        "avx2" | "avx2fma" | "avx2+fma" if avx2_fma_available() => Ok(KernelChoice::Avx2Fma),
        "avx2" | "avx2fma" | "avx2+fma" => lacks("AVX2+FMA"),
        "avx512" | "avx-512" | "avx512f" if avx512_available() => Ok(KernelChoice::Avx512),
        "avx512" | "avx-512" | "avx512f" => lacks("AVX-512F"),
        _ => Err(format!(
            "SYMGRAD_GEMM_KERNEL={name}: unknown kernel; kernels supported here: {supported}"
        )),
    }
}

/// Products with fewer floating-point operations (`2 m n k`) than this run on one thread even
/// when more are configured: below it the pool's round trip and the duplicated packing cost
/// more than the second core saves. Measured on the 2-core machine once the pool spins before
/// sleeping (a round trip of about 1 µs): at 1 MFLOP two threads win on some MLP shapes and
/// lose on others (64x128x64: 92 vs 80 GFLOP/s; 64x64x128 AB^T: 94 vs 147), at 13 MFLOP they
/// win clearly (64x784x128: 97 vs 161; 784x64x128 A^T B: 95 vs 172).
pub const PARALLEL_MIN_FLOPS: usize = 2_000_000;

/// 0 = read `SYMGRAD_NUM_THREADS` on first use.
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// Sets the number of threads large products may use (at least 1). Process-wide.
pub fn set_num_threads(n: usize) {
    THREADS.store(n.max(1), Ordering::Relaxed);
}

/// The number of threads large products may use: [`set_num_threads`], else the
/// `SYMGRAD_NUM_THREADS` environment variable, else 1.
pub fn num_threads() -> usize {
    match THREADS.load(Ordering::Relaxed) {
        0 => {
            let n = std::env::var("SYMGRAD_NUM_THREADS")
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(1)
                .max(1);
            // Another thread may have called `set_num_threads` meanwhile; keep its value.
            let _ = THREADS.compare_exchange(0, n, Ordering::Relaxed, Ordering::Relaxed);
            THREADS.load(Ordering::Relaxed)
        }
        n => n,
    }
}

/// Per-call overrides of the process-wide settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmOptions {
    /// Kernel for this call (`Auto` = [`selected_kernel`]).
    pub kernel: KernelChoice,
    /// `Some(n)`: use exactly `n` threads (capped by the number of tiles), whatever the size.
    /// `None`: [`num_threads`] for products of at least [`PARALLEL_MIN_FLOPS`], else 1.
    pub threads: Option<usize>,
}

impl Default for GemmOptions {
    fn default() -> Self {
        GemmOptions {
            kernel: KernelChoice::Auto,
            threads: None,
        }
    }
}

/// An immutable strided matrix over a slice: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

/// A mutable strided matrix over a slice: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Debug)]
pub struct MatMut<'a, T> {
    data: &'a mut [T],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

/// Number of elements a `rows x cols` matrix with strides `rs`, `cs` spans.
fn extent(what: &str, rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    if rows == 0 || cols == 0 {
        return 0;
    }
    (rows - 1)
        .checked_mul(rs)
        .and_then(|r| (cols - 1).checked_mul(cs).and_then(|c| r.checked_add(c)))
        .and_then(|e| e.checked_add(1))
        .unwrap_or_else(|| {
            panic!("gemm: {what}: {rows}x{cols} with strides ({rs}, {cs}) overflows")
        })
}

/// Whether distinct elements of a `rows x cols` matrix with strides `rs`, `cs` have distinct
/// offsets (checked via the sufficient "nested strides" condition that all dense, transposed,
/// sub-view and stepped layouts satisfy).
fn non_overlapping(rows: usize, cols: usize, rs: usize, cs: usize) -> bool {
    if rows == 0 || cols == 0 {
        return true;
    }
    match (rows > 1, cols > 1) {
        (false, false) => true,
        (true, false) => rs >= 1,
        (false, true) => cs >= 1,
        (true, true) => {
            let (s1, d1, s2) = if rs <= cs {
                (rs, rows, cs)
            } else {
                (cs, cols, rs)
            };
            s1 >= 1 && s1.checked_mul(d1).is_some_and(|span| s2 >= span)
        }
    }
}

impl<'a, T> MatRef<'a, T> {
    /// A `rows x cols` view of `data` with row stride `rs` and column stride `cs`
    /// (column-major: `rs = 1`, `cs = rows`; row-major: `rs = cols`, `cs = 1`).
    ///
    /// # Panics
    ///
    /// If the view does not fit in `data`.
    pub fn new(data: &'a [T], rows: usize, cols: usize, rs: usize, cs: usize) -> Self {
        let need = extent("MatRef::new", rows, cols, rs, cs);
        assert!(
            need <= data.len(),
            "gemm: MatRef::new: {rows}x{cols} with strides ({rs}, {cs}) needs {need} elements, slice has {}",
            data.len()
        );
        MatRef {
            data,
            rows,
            cols,
            rs,
            cs,
        }
    }

    /// The transposed view (swaps the shape and the strides; no copy).
    pub fn t(self) -> Self {
        MatRef {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// `(rows, cols)`.
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }
}

impl<'a, T> MatMut<'a, T> {
    /// A mutable `rows x cols` view of `data` with row stride `rs` and column stride `cs`.
    ///
    /// # Panics
    ///
    /// If the view does not fit in `data`, or if distinct elements would share memory.
    pub fn new(data: &'a mut [T], rows: usize, cols: usize, rs: usize, cs: usize) -> Self {
        let need = extent("MatMut::new", rows, cols, rs, cs);
        assert!(
            need <= data.len(),
            "gemm: MatMut::new: {rows}x{cols} with strides ({rs}, {cs}) needs {need} elements, slice has {}",
            data.len()
        );
        assert!(
            non_overlapping(rows, cols, rs, cs),
            "gemm: MatMut::new: {rows}x{cols} with strides ({rs}, {cs}) has overlapping elements"
        );
        MatMut {
            data,
            rows,
            cols,
            rs,
            cs,
        }
    }

    /// The transposed view (swaps the shape and the strides; no copy).
    pub fn t(self) -> Self {
        MatMut {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// `(rows, cols)`.
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }
}

fn check_shapes(a: (usize, usize), b: (usize, usize), c: (usize, usize)) {
    assert!(
        a.1 == b.0,
        "gemm: shape mismatch: op(A) is {}x{} but op(B) is {}x{} (inner dimensions differ)",
        a.0,
        a.1,
        b.0,
        b.1
    );
    assert!(
        c == (a.0, b.1),
        "gemm: shape mismatch: op(A)*op(B) is {}x{} (op(A) {}x{}, op(B) {}x{}) but C is {}x{}",
        a.0,
        b.1,
        a.0,
        a.1,
        b.0,
        b.1,
        c.0,
        c.1
    );
}

/// `c = alpha * a * b + beta * c` on strided slices (transpose with [`MatRef::t`]), with the
/// process-wide kernel and thread settings. When `beta == 0`, C is overwritten without being
/// read; when `alpha == 0` or `k == 0`, A and B are not read.
///
/// # Panics
///
/// If `a` is `m x k`, `b` is not `k x n` or `c` is not `m x n`.
pub fn gemm_strided<T: GemmScalar>(
    alpha: T,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    beta: T,
    c: MatMut<'_, T>,
) {
    gemm_strided_with(&GemmOptions::default(), alpha, a, b, beta, c);
}

/// [`gemm_strided`] with per-call [`GemmOptions`].
pub fn gemm_strided_with<T: GemmScalar>(
    opts: &GemmOptions,
    alpha: T,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    beta: T,
    c: MatMut<'_, T>,
) {
    check_shapes(a.shape(), b.shape(), c.shape());
    let task = Task {
        m: a.rows,
        n: b.cols,
        k: a.cols,
        alpha,
        a: a.data.as_ptr(),
        rsa: a.rs,
        csa: a.cs,
        b: b.data.as_ptr(),
        rsb: b.rs,
        csb: b.cs,
        beta,
        c: c.data.as_mut_ptr(),
        rsc: c.rs,
        csc: c.cs,
    };
    // The constructors checked that every element is inside its slice and that C's elements
    // are distinct; `c.data` is borrowed mutably for the whole call, A and B immutably.
    execute(opts, task);
}

/// `c = alpha * op(a) * op(b) + beta * c` on nalgebra matrices, sub-views (`view`, `columns`,
/// `rows`, ...) and their transposes via [`Trans`], using the process-wide kernel and thread
/// settings. `beta == 0` overwrites C without reading it (NaN in C does not leak); `k == 0`
/// gives `C = beta * C`, as in BLAS. Views with a non-unit row stride (`view_with_steps`) go
/// through [`gemm_views`].
///
/// # Panics
///
/// If the inner dimensions of `op(a)` and `op(b)` differ or C is not `rows(op(a)) x
/// cols(op(b))`; the message names both shapes.
pub fn gemm<T: GemmScalar>(
    alpha: T,
    a: DMatrixView<'_, T>,
    ta: Trans,
    b: DMatrixView<'_, T>,
    tb: Trans,
    beta: T,
    c: DMatrixViewMut<'_, T>,
) {
    gemm_views(&GemmOptions::default(), alpha, a, ta, b, tb, beta, c);
}

/// [`gemm`] with per-call [`GemmOptions`].
#[allow(clippy::too_many_arguments)]
pub fn gemm_with<T: GemmScalar>(
    opts: &GemmOptions,
    alpha: T,
    a: DMatrixView<'_, T>,
    ta: Trans,
    b: DMatrixView<'_, T>,
    tb: Trans,
    beta: T,
    c: DMatrixViewMut<'_, T>,
) {
    gemm_views(opts, alpha, a, ta, b, tb, beta, c);
}

/// [`gemm_with`] for nalgebra views with any row and column strides (e.g. from
/// `view_with_steps`). The stride types are generic, so pass views whose type is known
/// (`as_view::<Dyn, Dyn>()`, not a bare `as_view()`).
#[allow(clippy::too_many_arguments)]
pub fn gemm_views<T: GemmScalar>(
    opts: &GemmOptions,
    alpha: T,
    a: DMatrixView<'_, T, impl Dim, impl Dim>,
    ta: Trans,
    b: DMatrixView<'_, T, impl Dim, impl Dim>,
    tb: Trans,
    beta: T,
    mut c: DMatrixViewMut<'_, T, impl Dim, impl Dim>,
) {
    let op = |shape: (usize, usize), strides: (usize, usize), t: Trans| match t {
        Trans::No => (shape, strides),
        Trans::Yes => ((shape.1, shape.0), (strides.1, strides.0)),
    };
    let ((m, k), (rsa, csa)) = op(a.shape(), a.strides(), ta);
    let ((kb, n), (rsb, csb)) = op(b.shape(), b.strides(), tb);
    check_shapes((m, k), (kb, n), c.shape());
    let (rsc, csc) = c.strides();
    assert!(
        non_overlapping(m, n, rsc, csc),
        "gemm: C ({m}x{n} with strides ({rsc}, {csc})) has overlapping elements"
    );
    let task = Task {
        m,
        n,
        k,
        alpha,
        a: a.as_ptr(),
        rsa,
        csa,
        b: b.as_ptr(),
        rsb,
        csb,
        beta,
        c: c.as_mut_ptr(),
        rsc,
        csc,
    };
    // nalgebra guarantees that every element of a view (at `ptr + i * rs + j * cs`) is valid
    // for the view's lifetime, writable for `DMatrixViewMut`, which is borrowed mutably here.
    execute(opts, task);
}

/// `op(a) * op(b)` into a new matrix.
///
/// # Panics
///
/// If the inner dimensions differ; the message names both shapes.
pub fn matmul<T: GemmScalar>(a: &DMatrix<T>, ta: Trans, b: &DMatrix<T>, tb: Trans) -> DMatrix<T> {
    let op = |shape: (usize, usize), t: Trans| match t {
        Trans::No => (shape, (1, shape.0)),
        Trans::Yes => ((shape.1, shape.0), (shape.0, 1)),
    };
    let ((m, k), (rsa, csa)) = op(a.shape(), ta);
    let ((kb, n), (rsb, csb)) = op(b.shape(), tb);
    check_shapes((m, k), (kb, n), (m, n));
    // C is written into fresh, uninitialised memory: with `beta == 0` every path of the GEMM
    // writes each element of C before anything reads it (the kernels' contract, see
    // `kernel::Kernel`; `scale_c` writes zeros when `k == 0`), so the memset of a zeroed
    // matrix (a whole extra pass over C, e.g. 400 KB for a 128x784 weight gradient) is skipped.
    let len = m.checked_mul(n).expect("matmul: C too large");
    let mut c: Vec<T> = Vec::with_capacity(len);
    let task = Task {
        m,
        n,
        k,
        alpha: T::one(),
        a: a.as_ptr(),
        rsa,
        csa,
        b: b.as_ptr(),
        rsb,
        csb,
        beta: T::zero(),
        c: c.as_mut_ptr(),
        rsc: 1,
        csc: m,
    };
    // A and B are column-major matrices read at their own strides; C is the `m * n` elements
    // of `c`'s allocation, column-major, writable and not aliased.
    execute(&GemmOptions::default(), task);
    // SAFETY: `execute` with `beta == 0` wrote all `m * n` elements (see above); `T` is a
    // plain float.
    unsafe { c.set_len(len) };
    DMatrix::from_vec(m, n, c)
}

/// Common tail of every entry point. `task` must be valid as described on [`Task`].
fn execute<T: GemmScalar>(opts: &GemmOptions, mut task: Task<T>) {
    if task.m == 0 || task.n == 0 {
        return;
    }
    if task.k == 0 || task.alpha == T::ZERO {
        scale_c(&task);
        return;
    }
    // The kernels store C along their vectorised rows: make C's unit-stride direction the row
    // direction by computing C^T = op(B)^T op(A)^T when C is row-major.
    if task.csc < task.rsc {
        task = Task {
            m: task.n,
            n: task.m,
            a: task.b,
            rsa: task.csb,
            csa: task.rsb,
            b: task.a,
            rsb: task.csa,
            csb: task.rsa,
            rsc: task.csc,
            csc: task.rsc,
            ..task
        };
    }
    let kernel = resolve(opts.kernel);
    let threads = match opts.threads {
        Some(t) => t.max(1),
        None => {
            let flops = 2.0 * task.m as f64 * task.n as f64 * task.k as f64;
            if flops >= PARALLEL_MIN_FLOPS as f64 {
                num_threads()
            } else {
                1
            }
        }
    };
    T::dispatch(&task, kernel, threads);
}

/// `C = beta * C` (zeros without reading C when `beta == 0`).
fn scale_c<T: Elem>(t: &Task<T>) {
    for j in 0..t.n {
        for i in 0..t.m {
            let p = t.c.wrapping_add(i * t.rsc + j * t.csc);
            // SAFETY: `(i, j)` is an element of C, valid for reads and writes (see `Task`).
            unsafe {
                if t.beta == T::ZERO {
                    p.write(T::ZERO);
                } else if t.beta != T::ONE {
                    p.write(t.beta * p.read());
                }
            }
        }
    }
}
