//! Flush-to-zero for subnormal floats, the equivalent of PyTorch's
//! `torch.set_flush_denormal(True)`.
//!
//! Arithmetic on subnormal numbers (magnitudes below `f32::MIN_POSITIVE`, about `1.2e-38`) is
//! many times slower than on normal ones on most x86 cores. Training produces them: Adam's
//! moment estimates of rarely used weights (border pixels of MNIST) decay towards zero
//! geometrically and spend much of the run as subnormals. With *flush-to-zero* (FTZ: a
//! subnormal result becomes 0) and *denormals-are-zero* (DAZ: a subnormal input is read as 0)
//! that arithmetic runs at full speed; the values concerned are below `1.2e-38` and do not
//! change what a network learns.
//!
//! * [`crate::train::fit`] turns both on for the whole training run and restores the previous
//!   mode when it returns. The runtime's worker threads always use the mode of the thread that
//!   handed them the work, so a product computes the same bits on any number of threads.
//! * Elsewhere (a standalone [`crate::gemm::gemm`], your own training loop) the thread's mode
//!   is left as you set it: use [`FlushDenormals`] for a scope, or [`set_flush_denormal`].
//!
//! On x86-64 this sets the FTZ (bit 15) and DAZ (bit 6) bits of the SSE control register
//! MXCSR, which is per thread. Elsewhere the functions do nothing and report that.

/// MXCSR bit 15: flush-to-zero.
#[cfg(target_arch = "x86_64")]
const FTZ: u32 = 1 << 15;
/// MXCSR bit 6: denormals-are-zero.
#[cfg(target_arch = "x86_64")]
const DAZ: u32 = 1 << 6;

/// The calling thread's floating-point control word (MXCSR on x86-64; 0 elsewhere).
#[inline]
pub(crate) fn mode() -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        // `_mm_getcsr` is deprecated because changing MXCSR behind LLVM's back can break its
        // assumptions; reading it cannot.
        #[allow(deprecated)]
        // SAFETY: SSE is part of the x86-64 baseline; reading MXCSR has no side effects.
        unsafe {
            core::arch::x86_64::_mm_getcsr()
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        0
    }
}

/// Sets the calling thread's floating-point control word to `m` (a value from [`mode`]).
#[inline]
pub(crate) fn set_mode(m: u32) {
    #[cfg(target_arch = "x86_64")]
    {
        #[allow(deprecated)]
        // SAFETY: `m` is a control word read with `mode()` (possibly with FTZ/DAZ changed), so
        // it has no reserved bits set and keeps the default rounding and exception masks.
        // LLVM does not model MXCSR; changing it is sound as long as no floating-point
        // operation is expected to have been constant-folded under another mode, and FTZ/DAZ
        // only affect subnormal values, which the runtime does not fold at compile time.
        unsafe {
            core::arch::x86_64::_mm_setcsr(m)
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = m;
    }
}

/// [`set_mode`] unless the thread already has mode `m` (a write to MXCSR costs more than a
/// read).
#[inline]
pub(crate) fn set_mode_if_different(m: u32) {
    if mode() != m {
        set_mode(m);
    }
}

/// Whether this platform can flush subnormals (x86-64: always).
pub fn flush_denormal_supported() -> bool {
    cfg!(target_arch = "x86_64")
}

/// Turns flush-to-zero and denormals-are-zero on (`true`) or off (`false`) for the calling
/// thread, like `torch.set_flush_denormal`. Returns `false` (and does nothing) where the
/// platform has no such mode.
pub fn set_flush_denormal(on: bool) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let m = mode();
        set_mode(if on { m | FTZ | DAZ } else { m & !(FTZ | DAZ) });
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = on;
        false
    }
}

/// Whether the calling thread flushes subnormals (both FTZ and DAZ are on).
pub fn flush_denormal_enabled() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        mode() & (FTZ | DAZ) == FTZ | DAZ
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Flushes subnormals on the calling thread while it lives and restores the previous mode when
/// dropped. Not `Send`: the mode belongs to the thread that created the guard.
///
/// ```
/// use symgrad_runtime::fpu::FlushDenormals;
/// let tiny = std::hint::black_box(f32::MIN_POSITIVE);
/// {
///     let _ftz = FlushDenormals::new();
///     # if symgrad_runtime::fpu::flush_denormal_supported() {
///     assert_eq!(std::hint::black_box(tiny * 0.5), 0.0); // subnormal result flushed
///     # }
/// }
/// assert!(std::hint::black_box(tiny * 0.5) > 0.0); // gradual underflow again
/// ```
#[must_use = "the mode is restored when the guard is dropped"]
pub struct FlushDenormals {
    previous: u32,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl FlushDenormals {
    /// Turns flush-to-zero and denormals-are-zero on for the calling thread.
    pub fn new() -> Self {
        let previous = mode();
        set_flush_denormal(true);
        FlushDenormals {
            previous,
            _not_send: std::marker::PhantomData,
        }
    }
}

impl Default for FlushDenormals {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for FlushDenormals {
    fn drop(&mut self) {
        set_mode(self.previous);
    }
}
