//! Shared tapes: one tape for all instances of a loop nested in another loop.
//!
//! A loop inside a loop runs once per outer iteration. Each instance used to keep its own
//! tape, a `Vec` stored in the outer loop's tape entry: one allocation (or more, as it grows)
//! per instance. When the inner loop's entries are scalars and indices, all instances push
//! onto one tape declared at the top of the function instead; the outer entry keeps the
//! instance's bounds (`__mark_N`, the length before the instance, and `__end_N`, after it),
//! and the adjoint of an instance reads `tape[mark..end]` backwards. The forward pass of the
//! inner loop then allocates only when the shared tape grows past its largest size so far.

use super::Gen;
use crate::ir::{Block, For, Stmt, VarId};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use std::collections::HashSet;
use syn::Ident;

/// The names of a shared tape and of an instance's bounds.
pub(super) struct SharedNames {
    pub tape: Ident,
    pub mark: Ident,
    pub end: Ident,
}

pub(super) fn names(id: usize) -> SharedNames {
    SharedNames {
        tape: format_ident!("__tape_{}", id),
        mark: format_ident!("__mark_{}", id),
        end: format_ident!("__end_{}", id),
    }
}

/// Loops nested (at any depth, through branches too) in another loop, innermost first, and
/// the indices of loops over a range written `a..b` (integers).
pub(super) fn nested_loops(body: &Block) -> (Vec<&For>, HashSet<VarId>) {
    fn walk<'a>(b: &'a Block, depth: usize, out: &mut Vec<&'a For>, idx: &mut HashSet<VarId>) {
        for s in &b.stmts {
            match s {
                Stmt::If(i) => {
                    walk(&i.then_b, depth, out, idx);
                    walk(&i.else_b, depth, out, idx);
                }
                Stmt::For(f) => {
                    if syn::parse2::<syn::ExprRange>(f.iter.clone()).is_ok() {
                        idx.insert(f.index);
                    }
                    walk(&f.body, depth + 1, out, idx);
                    if depth > 0 {
                        out.push(f);
                    }
                }
                Stmt::Assign(_) | Stmt::Return(..) => {}
            }
        }
    }
    let mut out = Vec::new();
    let mut idx = HashSet::new();
    walk(body, 0, &mut out, &mut idx);
    (out, idx)
}

impl<'a> Gen<'a> {
    /// Decides, innermost loops first (an outer loop's stash names the bounds of the inner
    /// ones), which nested loops share one tape: taped loops that do not keep only their
    /// range, whose entries are all scalars, integer indices or inner loops' bounds.
    pub(super) fn decide_shared(&mut self) {
        let (loops, range_indices) = nested_loops(&self.f.body);
        for f in loops {
            let taped = f.carried.iter().any(|c| self.f.vars[c.head].active);
            if !taped {
                continue;
            }
            let mut extra = vec![f.index];
            extra.extend(f.carried.iter().map(|c| c.head));
            let heads = self.active_heads(f);
            let stash = self.stash_of((f.id, 2), &f.body, &heads, &extra);
            if self.range_tape(f, &stash) {
                continue;
            }
            let small = stash.iter().all(|id| {
                let name = id.to_string();
                if name.starts_with("__mark_") || name.starts_with("__end_") {
                    return true;
                }
                match self.f.vars.iter().position(|v| v.ident == *id) {
                    Some(v) => self.scalars.contains(&v) || range_indices.contains(&v),
                    None => false,
                }
            });
            if small {
                self.shared.insert(f.id);
            }
        }
    }

    pub(super) fn is_shared(&self, id: usize) -> bool {
        self.shared.contains(&id)
    }

    /// The declarations of the shared tapes used, for the top of the function body.
    pub(super) fn shared_decls(&self) -> TokenStream {
        let mut ids: Vec<usize> = self.shared.iter().copied().collect();
        ids.sort_unstable();
        let tapes = ids.into_iter().map(|id| names(id).tape);
        quote!(#(let mut #tapes = ::std::vec::Vec::new();)*)
    }
}
