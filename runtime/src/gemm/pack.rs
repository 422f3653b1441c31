//! Packing of A and B blocks into the micro-panel layout of [`super::kernel::GemmKernel`], and the
//! reusable per-thread packing buffers.

use std::cell::RefCell;

use super::Elem;

/// Packs the `rows x depth` block at `src` (element `(i, p)` at `src + i * rs + p * cs`) into
/// micro-panels of `W` rows: panel `q` holds element `(q * W + i, p)` at
/// `dst[q * W * depth + p * W + i]`, zero-padded up to a multiple of `W` rows.
///
/// This serves both operands: A blocks are packed as they are (`W = MR`), B blocks as their
/// transpose (`W = NR`, rows = columns of B).
///
/// # Safety
///
/// Every `src + i * rs + p * cs` with `i < rows`, `p < depth` must be valid for reads, and `dst`
/// must be valid for writes of `rows.div_ceil(W) * W * depth` elements and not overlap `src`.
#[inline(never)]
pub(crate) unsafe fn pack<T: Elem, const W: usize>(
    rows: usize,
    depth: usize,
    src: *const T,
    rs: usize,
    cs: usize,
    dst: *mut T,
) {
    let mut dst = dst;
    let mut i0 = 0;
    while i0 < rows {
        let w = W.min(rows - i0);
        // SAFETY: row `i0 < rows` of the block; only offset here, dereferenced below.
        let panel = unsafe { src.add(i0 * rs) };
        if w == W && rs == 1 {
            // Rows contiguous: each step of depth is one contiguous run of `W`.
            for p in 0..depth {
                // SAFETY: elements `(i0..i0 + W, p)` are valid for reads (rs == 1), and the
                // panel's `W * depth` destination slots are valid for writes.
                unsafe { core::ptr::copy_nonoverlapping(panel.add(p * cs), dst.add(p * W), W) };
            }
        } else if w == W {
            // General strides (includes `cs == 1`): walk the `W` rows side by side so each
            // step of depth writes one contiguous run of `W`.
            // SAFETY: rows `i0 .. i0 + W` are inside the block (`w == W`).
            let rows_ptr: [*const T; W] = core::array::from_fn(|i| unsafe { panel.add(i * rs) });
            for p in 0..depth {
                for (i, r) in rows_ptr.iter().enumerate() {
                    // SAFETY: `(i0 + i, p)` is in the block; `p * W + i < W * depth`.
                    unsafe { dst.add(p * W + i).write(r.add(p * cs).read()) };
                }
            }
        } else {
            // Last, partial panel: copy `w` rows and zero the padding.
            for p in 0..depth {
                for i in 0..W {
                    let v = if i < w {
                        // SAFETY: `(i0 + i, p)` is in the block since `i < w`.
                        unsafe { panel.add(i * rs + p * cs).read() }
                    } else {
                        T::ZERO
                    };
                    // SAFETY: `p * W + i < W * depth`, inside this panel's destination.
                    unsafe { dst.add(p * W + i).write(v) };
                }
            }
        }
        // SAFETY: advances to the next panel's slots, at most one past the end of `dst`.
        dst = unsafe { dst.add(W * depth) };
        i0 += W;
    }
}

/// 64-byte aligned storage unit of the packing buffers (one cache line).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// The two packing buffers of one thread, grown on demand and reused across calls.
pub(crate) struct PackBufs {
    a: Vec<Line>,
    b: Vec<Line>,
}

thread_local! {
    static BUFS: RefCell<PackBufs> = const { RefCell::new(PackBufs { a: Vec::new(), b: Vec::new() }) };
}

fn grow(v: &mut Vec<Line>, bytes: usize) -> *mut u8 {
    let lines = bytes.div_ceil(64);
    if v.len() < lines {
        v.resize(lines, Line([0; 64]));
    }
    v.as_mut_ptr().cast()
}

/// Runs `f` with this thread's packing buffers, sized for at least `a_elems` and `b_elems`
/// elements of `T` and 64-byte aligned. The buffers are only allocated when they must grow.
pub(crate) fn with_bufs<T, R>(
    a_elems: usize,
    b_elems: usize,
    f: impl FnOnce(*mut T, *mut T) -> R,
) -> R {
    BUFS.with(|cell| {
        let mut bufs = cell.borrow_mut();
        let size = core::mem::size_of::<T>();
        let a = grow(&mut bufs.a, a_elems * size).cast::<T>();
        let b = grow(&mut bufs.b, b_elems * size).cast::<T>();
        f(a, b)
    })
}
