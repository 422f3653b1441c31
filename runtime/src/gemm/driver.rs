//! The BLIS-style blocked loop nest (generic over the kernel) and the split across threads.

use super::kernel::GemmKernel;
use super::pack::{pack, with_bufs};
use super::pool::Pool;
use super::{Elem, Task};

/// Runs `task` with kernel `K` on `threads` threads (1 = on the calling thread only).
///
/// The work is split into contiguous ranges of C columns (or rows) whose boundaries are
/// multiples of `NR` (or `MR`), so every tile, block and k-step is the same as in the
/// single-threaded run: results are bitwise identical for any thread count.
pub(crate) fn run<K: GemmKernel>(task: &Task<K::Elem>, threads: usize) {
    let (m, n) = (task.m, task.n);
    let n_tiles = n.div_ceil(K::NR);
    let m_tiles = m.div_ceil(K::MR);
    // Split the dimension whose other operand is the smaller one to pack twice.
    let split_n = n_tiles >= m_tiles || m_tiles < threads;
    let tiles = if split_n { n_tiles } else { m_tiles };
    let parts = threads.min(tiles).max(1);
    if parts == 1 {
        serial::<K>(task);
        return;
    }
    let part = |idx: usize| {
        let (lo, hi) = (tiles * idx / parts, tiles * (idx + 1) / parts);
        let sub = if split_n {
            let (j0, j1) = (lo * K::NR, (hi * K::NR).min(n));
            task.sub(0, m, j0, j1)
        } else {
            let (i0, i1) = (lo * K::MR, (hi * K::MR).min(m));
            task.sub(i0, i1, 0, n)
        };
        serial::<K>(&sub);
    };
    Pool::global().run(parts, &part);
}

/// The five-loop nest on the calling thread with its reusable packing buffers.
///
/// Loop order (BLIS): column panels of B (`NC`), k blocks (`KC`), row blocks of A (`MC`), then
/// the `NR`-wide B micro-panel (kept in L1 while the `MR`-wide A micro-panels of the packed
/// A block stream from L2) and the `MR`-tall A micro-panel. Every k range is split into equal
/// blocks of at most `KC` ([`k_block`]), on every path, so each element of C sees the same
/// operations whichever path and thread count computed it.
fn serial<K: GemmKernel>(task: &Task<K::Elem>) {
    let (m, n, k) = (task.m, task.n, task.k);
    if m == 0 || n == 0 {
        return;
    }
    let kc_max = k_block(k, K::KC);
    if m <= K::IN_PLACE_M || (k <= K::KC && m * n * k <= SMALL_MNK) {
        in_place::<K>(task, kc_max);
        return;
    }
    let mc_max = K::MC.min(m.div_ceil(K::MR) * K::MR);
    let nc_max = K::NC.min(n.div_ceil(K::NR) * K::NR);
    with_bufs::<K::Elem, ()>(mc_max * kc_max, nc_max * kc_max, |apack, bpack| {
        let t = task;
        let mut jc = 0;
        while jc < n {
            let nc = K::NC.min(n - jc);
            let mut pc = 0;
            while pc < k {
                let kc = kc_max.min(k - pc);
                let beta = if pc == 0 { t.beta } else { K::Elem::ONE };
                // SAFETY: the block `(pc.., jc..)` of B lies inside B (validated when the task
                // was built: every `(p, j)`, p < k, j < n, is readable); `bpack` holds
                // `nc_max * kc_max >= nc.div_ceil(NR) * NR * kc` elements.
                unsafe {
                    let src = t.b.add(pc * t.rsb + jc * t.csb);
                    pack_b::<K>(nc, kc, src, t.csb, t.rsb, bpack);
                }
                let mut ic = 0;
                while ic < m {
                    let mc = K::MC.min(m - ic);
                    // SAFETY: as for B, with `apack` holding `mc_max * kc_max` elements.
                    unsafe {
                        let src = t.a.add(ic * t.rsa + pc * t.csa);
                        pack_a::<K>(mc, kc, src, t.rsa, t.csa, apack);
                    }
                    let mut jr = 0;
                    while jr < nc {
                        let nr = K::NR.min(nc - jr);
                        let mut ir = 0;
                        while ir < mc {
                            let mr = K::MR.min(mc - ir);
                            // SAFETY: the packed panels start at `ir * kc` / `jr * kc` and hold
                            // `MR * kc` / `NR * kc` elements; the `mr x nr` tile at
                            // `(ic + ir, jc + jr)` lies inside C, which this thread alone
                            // writes (threads own disjoint column or row ranges). The kernel's
                            // CPU features were checked when it was selected.
                            unsafe {
                                let c = t.c.add((ic + ir) * t.rsc + (jc + jr) * t.csc);
                                K::kernel(
                                    kc,
                                    t.alpha,
                                    apack.add(ir * kc),
                                    bpack.add(jr * kc),
                                    beta,
                                    c,
                                    t.rsc,
                                    t.csc,
                                    mr,
                                    nr,
                                );
                            }
                            ir += K::MR;
                        }
                        jr += K::NR;
                    }
                    ic += K::MC;
                }
                pc += kc;
            }
            jc += K::NC;
        }
    });
}

/// The depth of each k block: `k` split into equal blocks of at most `kc`.
fn k_block(k: usize, kc: usize) -> usize {
    k.div_ceil(k.div_ceil(kc).max(1)).max(1)
}

/// Products with `k <= KC` and at most this many multiply-adds (`m * n * k`) take the
/// [`in_place`] path, which packs (almost) nothing.
pub(crate) const SMALL_MNK: usize = 1 << 20;

/// The path that packs (almost) nothing (small products, and products of at most
/// [`GemmKernel::IN_PLACE_M`] rows at any depth): for each k block (the same blocks as the packed
/// path, so results are bitwise identical to it), each tile is one kernel call. B is read in
/// place at its strides (the kernel reads only the `nr` columns a tile has); A is read in
/// place when its rows are contiguous (`rsa == 1`) for full `MR`-row tiles. Only edge-row
/// tiles, and A when its rows are strided, are packed, one micro-panel at a time.
fn in_place<K: GemmKernel>(t: &Task<K::Elem>, kc_max: usize) {
    let (m, n, k) = (t.m, t.n, t.k);
    let mr_full = K::MR;
    with_bufs::<K::Elem, ()>(mr_full * kc_max, 0, |apack, _| {
        let mut pc = 0;
        while pc < k {
            let kc = kc_max.min(k - pc);
            let beta = if pc == 0 { t.beta } else { K::Elem::ONE };
            let mut ir = 0;
            while ir < m {
                let mr = mr_full.min(m - ir);
                // Rows `ir..`, depths `pc..` of A: inside A while `ir < m`, `pc < k`.
                let a0 = t.a.wrapping_add(ir * t.rsa + pc * t.csa);
                let (a, lda) = if mr == mr_full && t.rsa == 1 {
                    (a0, t.csa)
                } else {
                    // SAFETY: rows `ir..ir + mr`, depths `pc..pc + kc` of A are inside A;
                    // `apack` holds `MR * kc_max` elements, one zero-padded panel.
                    unsafe { pack_a::<K>(mr, kc, a0, t.rsa, t.csa, apack) };
                    (apack.cast_const(), mr_full)
                };
                let mut jr = 0;
                while jr < n {
                    let nr = K::NR.min(n - jr);
                    // SAFETY: A is either `MR` full rows of A read at `(rs, cs) = (1, lda)` or
                    // a packed panel of `MR * kc`; B is depths `pc..pc + kc` of columns
                    // `jr..jr + nr` of B (all inside B) read at its strides. The `mr x nr` tile
                    // at `(ir, jr)` lies inside C, which this thread alone writes. The kernel's
                    // CPU features were checked when it was selected.
                    unsafe {
                        let b = t.b.add(pc * t.rsb + jr * t.csb);
                        let c = t.c.add(ir * t.rsc + jr * t.csc);
                        K::kernel_strided(
                            kc, t.alpha, a, lda, b, t.rsb, t.csb, beta, c, t.rsc, t.csc, mr, nr,
                        );
                    }
                    jr += K::NR;
                }
                ir += mr_full;
            }
            pc += kc;
        }
    });
}

/// # Safety
///
/// See [`pack`].
#[inline]
unsafe fn pack_a<K: GemmKernel>(
    rows: usize,
    depth: usize,
    src: *const K::Elem,
    rs: usize,
    cs: usize,
    dst: *mut K::Elem,
) {
    // SAFETY: forwarded.
    unsafe { dispatch_pack::<K::Elem>(K::MR, rows, depth, src, rs, cs, dst) }
}

/// # Safety
///
/// See [`pack`].
#[inline]
unsafe fn pack_b<K: GemmKernel>(
    rows: usize,
    depth: usize,
    src: *const K::Elem,
    rs: usize,
    cs: usize,
    dst: *mut K::Elem,
) {
    // SAFETY: forwarded.
    unsafe { dispatch_pack::<K::Elem>(K::NR, rows, depth, src, rs, cs, dst) }
}

/// Maps a run-time panel width to the monomorphised packing routine.
///
/// # Safety
///
/// See [`pack`]; `w` must be one of the kernels' widths.
unsafe fn dispatch_pack<T: Elem>(
    w: usize,
    rows: usize,
    depth: usize,
    src: *const T,
    rs: usize,
    cs: usize,
    dst: *mut T,
) {
    // SAFETY: forwarded from the caller (all arms).
    unsafe {
        match w {
            4 => pack::<T, 4>(rows, depth, src, rs, cs, dst),
            6 => pack::<T, 6>(rows, depth, src, rs, cs, dst),
            8 => pack::<T, 8>(rows, depth, src, rs, cs, dst),
            12 => pack::<T, 12>(rows, depth, src, rs, cs, dst),
            16 => pack::<T, 16>(rows, depth, src, rs, cs, dst),
            32 => pack::<T, 32>(rows, depth, src, rs, cs, dst),
            _ => unreachable!("gemm: no packing routine for panel width {w}"),
        }
    }
}
