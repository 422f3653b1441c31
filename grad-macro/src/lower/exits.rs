//! `break`, `continue` and `break value` as flags: a syntactic rewrite of a loop body,
//! before it is lowered, into the structured `if`s the IR has.
//!
//! A loop numbered `k` that is left by `break` gets a flag `__brk_k` (declared before the
//! loop, false), checked at the start of every iteration; `continue` sets `__cont_k`
//! (declared false at the top of the body); `break v` also assigns `__val_k`, the loop's
//! value. A statement that may set a flag is followed by the rest of its block inside
//! `if !(flags) { .. }`, so nothing after a `break` runs. An exit to an outer loop from a
//! nested one sets the outer loop's flag and leaves the nested loop with `break 'inner`
//! (the nested loop is given a label if it has none), which the nested loop's own rewrite
//! turns into its flag in turn. The rewrite is linear in the size of the body.

use proc_macro2::Span;
use quote::format_ident;
use syn::visit_mut::VisitMut;
use syn::{Expr, Ident, Stmt, parse_quote};

/// The flags of one loop.
pub(super) struct Flags {
    pub brk: Ident,
    pub cont: Ident,
    pub val: Ident,
}

impl Flags {
    pub fn new(k: usize) -> Self {
        Flags {
            brk: format_ident!("__brk_{}", k),
            cont: format_ident!("__cont_{}", k),
            val: format_ident!("__val_{}", k),
        }
    }
}

/// What the rewrite of a loop body found.
#[derive(Default)]
pub(super) struct Found {
    pub brk: bool,
    pub cont: bool,
    pub value: bool,
}

pub(super) struct Rewrite<'a> {
    flags: &'a Flags,
    /// The loop's label, `'outer` without the quote.
    label: Option<String>,
    pub found: Found,
    pub errors: Vec<syn::Error>,
    next_label: &'a mut usize,
}

fn label_of(l: &Option<syn::Lifetime>) -> Option<String> {
    l.as_ref().map(|l| l.ident.to_string())
}

impl<'a> Rewrite<'a> {
    pub fn new(flags: &'a Flags, label: Option<&syn::Label>, next_label: &'a mut usize) -> Self {
        Rewrite {
            flags,
            label: label.map(|l| l.name.ident.to_string()),
            found: Found::default(),
            errors: Vec::new(),
            next_label,
        }
    }

    /// Whether an exit with this label (none: the innermost loop) leaves this loop, when
    /// met `depth` loops deep inside its body.
    fn targets_us(&self, label: &Option<syn::Lifetime>, depth: usize) -> bool {
        match label_of(label) {
            None => depth == 0,
            l => l == self.label,
        }
    }

    /// The statements that set the flags of an exit.
    fn exit_stmts(&mut self, e: &Expr) -> Vec<Stmt> {
        let Flags { brk, cont, val } = self.flags;
        match e {
            Expr::Break(b) => {
                self.found.brk = true;
                match &b.expr {
                    Some(v) => {
                        self.found.value = true;
                        vec![parse_quote!(#val = #v;), parse_quote!(#brk = true;)]
                    }
                    None => vec![parse_quote!(#brk = true;)],
                }
            }
            _ => {
                self.found.cont = true;
                vec![parse_quote!(#cont = true;)]
            }
        }
    }

    /// The statements of the body, rewritten.
    pub fn block(&mut self, stmts: &[Stmt]) -> Vec<Stmt> {
        self.stmts(stmts).0
    }

    /// Rewrites a list of statements; the bool says whether it may set a flag.
    fn stmts(&mut self, stmts: &[Stmt]) -> (Vec<Stmt>, bool) {
        let mut out = Vec::new();
        let mut any = false;
        for (i, s) in stmts.iter().enumerate() {
            let rest = &stmts[i + 1..];
            match s {
                Stmt::Expr(e @ (Expr::Break(_) | Expr::Continue(_)), _) => {
                    let label = match e {
                        Expr::Break(b) => &b.label,
                        Expr::Continue(c) => &c.label,
                        _ => unreachable!(),
                    };
                    if self.targets_us(label, 0) {
                        out.extend(self.exit_stmts(e));
                        // What follows an exit never runs.
                        return (out, true);
                    }
                    out.push(s.clone());
                }
                Stmt::Expr(e, semi) => {
                    let (e, sets) = self.expr(e);
                    out.push(Stmt::Expr(e, *semi));
                    any |= sets;
                    if sets && !rest.is_empty() {
                        let (rest, _) = self.stmts(rest);
                        if let Some(Stmt::Expr(tail, None)) = rest.last()
                            && !super::is_valueless(tail)
                        {
                            self.errors.push(syn::Error::new_spanned(
                                    tail,
                                    "a block that has a value cannot follow a `break` or `continue` in the same block; assign the value to a `let mut` declared before the loop",
                                ));
                        }
                        let guard = self.guard();
                        out.push(parse_quote!(if #guard { #(#rest)* }));
                        return (out, true);
                    }
                }
                Stmt::Local(l)
                    if l.init.as_ref().is_some_and(|i| {
                        i.diverge.is_none() && self.contains_exit(&i.expr) && distributable(&i.expr)
                    }) && matches!(&l.pat, syn::Pat::Ident(_) | syn::Pat::Type(_)) =>
                {
                    // `let y = if c { break } else { v };` is `let y; if c { break } else { y = v; }`.
                    let init = &l.init.as_ref().unwrap().expr;
                    let pat = &l.pat;
                    let name = match pat {
                        syn::Pat::Type(t) => &*t.pat,
                        p => p,
                    };
                    let syn::Pat::Ident(pi) = name else {
                        out.push(s.clone());
                        continue;
                    };
                    let id = &pi.ident;
                    let target: Expr = parse_quote!(#id);
                    let assign = distribute(&target, init).expect("checked by distributable");
                    let mut new: Vec<Stmt> = vec![
                        parse_quote!(let #pat;),
                        Stmt::Expr(assign, Some(Default::default())),
                    ];
                    new.extend(rest.iter().cloned());
                    let (more, sets) = self.stmts(&new);
                    out.extend(more);
                    return (out, any || sets);
                }
                Stmt::Local(l)
                    if l.init.as_ref().is_some_and(|i| {
                        i.diverge.is_none()
                            && matches!(&*i.expr, Expr::ForLoop(_) | Expr::While(_) | Expr::Loop(_))
                            && self.contains_exit(&i.expr)
                    }) =>
                {
                    // `let v = loop { .. break 'outer; .. };`: the nested loop's exits to this
                    // loop, as for a loop statement; the rest runs under the guard.
                    let mut l = l.clone();
                    let init = l.init.as_mut().unwrap();
                    let (e, sets) = self.nested_loop(&init.expr);
                    *init.expr = e;
                    out.push(Stmt::Local(l));
                    any |= sets;
                    if sets && !rest.is_empty() {
                        let (rest, _) = self.stmts(rest);
                        let guard = self.guard();
                        out.push(parse_quote!(if #guard { #(#rest)* }));
                        return (out, true);
                    }
                }
                Stmt::Local(l) => {
                    if let Some(init) = &l.init
                        && self.contains_exit(&init.expr)
                    {
                        self.errors.push(syn::Error::new_spanned(
                                &init.expr,
                                "a `break` or `continue` inside the value of a `let` is not supported; leave the loop in a statement (`if c { break; }`) before the `let`",
                            ));
                    }
                    out.push(s.clone());
                }
                _ => out.push(s.clone()),
            }
        }
        (out, any)
    }

    /// `!(__brk_k || __cont_k)` for the flags in use.
    fn guard(&self) -> Expr {
        let Flags { brk, cont, .. } = self.flags;
        match (self.found.brk, self.found.cont) {
            (true, true) => parse_quote!(!(#brk || #cont)),
            (true, false) => parse_quote!(!#brk),
            _ => parse_quote!(!#cont),
        }
    }

    /// Rewrites an expression statement; the bool says whether it may set a flag.
    fn expr(&mut self, e: &Expr) -> (Expr, bool) {
        match e {
            Expr::Assign(a) if self.contains_exit(&a.right) && distributable(&a.right) => {
                // `s = match k { 0 => break, _ => v };` is `match k { 0 => break, _ => s = v }`.
                let d = distribute(&a.left, &a.right).expect("checked by distributable");
                self.expr(&d)
            }
            Expr::If(i) => {
                let mut i = i.clone();
                let (then, t) = self.stmts(&i.then_branch.stmts);
                i.then_branch.stmts = then;
                let mut sets = t;
                if let Some((_, els)) = &mut i.else_branch {
                    let (new, s) = self.expr(els);
                    **els = new;
                    sets |= s;
                }
                (Expr::If(i), sets)
            }
            Expr::Block(b) if b.label.is_none() => {
                let mut b = b.clone();
                let (stmts, sets) = self.stmts(&b.block.stmts);
                b.block.stmts = stmts;
                (Expr::Block(b), sets)
            }
            Expr::Match(m) => {
                let mut m = m.clone();
                let mut sets = false;
                for arm in &mut m.arms {
                    let body: Vec<Stmt> = match &*arm.body {
                        Expr::Block(b) if b.label.is_none() => b.block.stmts.clone(),
                        other => vec![Stmt::Expr(other.clone(), Some(Default::default()))],
                    };
                    let (stmts, s) = self.stmts(&body);
                    if s {
                        sets = true;
                        *arm.body = parse_quote!({ #(#stmts)* });
                    }
                }
                (Expr::Match(m), sets)
            }
            Expr::ForLoop(_) | Expr::While(_) | Expr::Loop(_) => self.nested_loop(e),
            other => {
                if self.contains_exit(other) {
                    self.errors.push(syn::Error::new_spanned(
                        other,
                        "a `break` or `continue` inside this expression is not supported; leave the loop in a statement (`if c { break; }`)",
                    ));
                }
                (other.clone(), false)
            }
        }
    }

    /// A loop inside the body: exits from it to this loop set this loop's flags and leave
    /// the nested loop by its label.
    fn nested_loop(&mut self, e: &Expr) -> (Expr, bool) {
        let mut e = e.clone();
        let label = match &mut e {
            Expr::ForLoop(f) => &mut f.label,
            Expr::While(w) => &mut w.label,
            Expr::Loop(l) => &mut l.label,
            _ => unreachable!(),
        };
        let inner = match label {
            Some(l) => l.name.clone(),
            None => {
                *self.next_label += 1;
                syn::Lifetime::new(
                    &format!("'__symgrad_l{}", self.next_label),
                    Span::call_site(),
                )
            }
        };
        struct Outer<'r, 'a> {
            rw: &'r mut Rewrite<'a>,
            inner: syn::Lifetime,
            hits: usize,
        }
        impl VisitMut for Outer<'_, '_> {
            fn visit_expr_mut(&mut self, e: &mut Expr) {
                let label = match &*e {
                    Expr::Break(b) => Some(&b.label),
                    Expr::Continue(c) => Some(&c.label),
                    _ => None,
                };
                if let Some(label) = label
                    && label.is_some()
                    && self.rw.targets_us(label, 1)
                {
                    let sets = self.rw.exit_stmts(e);
                    let inner = &self.inner;
                    *e = parse_quote!({ #(#sets)* break #inner; });
                    self.hits += 1;
                    return;
                }
                if matches!(e, Expr::Closure(_)) {
                    return;
                }
                syn::visit_mut::visit_expr_mut(self, e);
            }
            fn visit_item_mut(&mut self, _: &mut syn::Item) {}
        }
        let body = match &mut e {
            Expr::ForLoop(f) => &mut f.body,
            Expr::While(w) => &mut w.body,
            Expr::Loop(l) => &mut l.body,
            _ => unreachable!(),
        };
        let mut v = Outer {
            rw: self,
            inner: inner.clone(),
            hits: 0,
        };
        v.visit_block_mut(body);
        let hits = v.hits;
        if hits > 0 {
            let label = match &mut e {
                Expr::ForLoop(f) => &mut f.label,
                Expr::While(w) => &mut w.label,
                Expr::Loop(l) => &mut l.label,
                _ => unreachable!(),
            };
            if label.is_none() {
                *label = Some(syn::Label {
                    name: inner,
                    colon_token: Default::default(),
                });
            }
        }
        (e, hits > 0)
    }

    /// Whether an exit from this loop occurs inside `e` (not counting nested loops' own).
    fn contains_exit(&self, e: &Expr) -> bool {
        struct Find<'r, 'a> {
            rw: &'r Rewrite<'a>,
            depth: usize,
            found: bool,
        }
        impl syn::visit::Visit<'_> for Find<'_, '_> {
            fn visit_expr(&mut self, e: &Expr) {
                match e {
                    Expr::Break(b) if self.rw.targets_us(&b.label, self.depth) => self.found = true,
                    Expr::Continue(c) if self.rw.targets_us(&c.label, self.depth) => {
                        self.found = true
                    }
                    Expr::ForLoop(_) | Expr::While(_) | Expr::Loop(_) => {
                        self.depth += 1;
                        syn::visit::visit_expr(self, e);
                        self.depth -= 1;
                    }
                    Expr::Closure(_) => {}
                    _ => syn::visit::visit_expr(self, e),
                }
            }
            fn visit_item(&mut self, _: &syn::Item) {}
        }
        let mut f = Find {
            rw: self,
            depth: 0,
            found: false,
        };
        syn::visit::Visit::visit_expr(&mut f, e);
        f.found
    }
}

/// Whether a `loop` is left by a `break value` (it has a value, not `()`).
pub(super) fn breaks_with_value(l: &syn::ExprLoop) -> bool {
    find_break(l, true)
}

/// Whether a `loop` is left by a `break` at all (else only `return` leaves it: its type is
/// `!`, and it may end a function).
pub(super) fn has_break(l: &syn::ExprLoop) -> bool {
    find_break(l, false)
}

fn find_break(l: &syn::ExprLoop, with_value: bool) -> bool {
    struct Find {
        with_value: bool,
        label: Option<String>,
        depth: usize,
        found: bool,
    }
    impl syn::visit::Visit<'_> for Find {
        fn visit_expr(&mut self, e: &Expr) {
            match e {
                Expr::Break(b) if b.expr.is_some() || !self.with_value => {
                    let ours = match label_of(&b.label) {
                        None => self.depth == 0,
                        l => l == self.label,
                    };
                    self.found |= ours;
                }
                Expr::ForLoop(_) | Expr::While(_) | Expr::Loop(_) => {
                    self.depth += 1;
                    syn::visit::visit_expr(self, e);
                    self.depth -= 1;
                }
                Expr::Closure(_) => {}
                _ => syn::visit::visit_expr(self, e),
            }
        }
        fn visit_item(&mut self, _: &syn::Item) {}
    }
    let mut f = Find {
        with_value,
        label: l.label.as_ref().map(|l| l.name.ident.to_string()),
        depth: 0,
        found: false,
    };
    syn::visit::Visit::visit_block(&mut f, &l.body);
    f.found
}

/// An `if`, `match` or block whose value can be assigned in each of its arms.
fn distributable(e: &Expr) -> bool {
    matches!(e, Expr::If(_) | Expr::Match(_) | Expr::Block(_))
}

/// `target = e` with the assignment moved into each arm of `e` (an `if`, `match` or block):
/// an arm that leaves the loop assigns nothing.
fn distribute(target: &Expr, e: &Expr) -> Option<Expr> {
    match e {
        Expr::If(i) => {
            let mut i = i.clone();
            i.then_branch.stmts = distribute_block(target, &i.then_branch.stmts)?;
            if let Some((_, els)) = &mut i.else_branch {
                **els = distribute(target, els)?;
            }
            Some(Expr::If(i))
        }
        Expr::Match(m) => {
            let mut m = m.clone();
            for arm in &mut m.arms {
                let body: Vec<Stmt> = match &*arm.body {
                    Expr::Block(b) if b.label.is_none() => b.block.stmts.clone(),
                    other => vec![Stmt::Expr(other.clone(), None)],
                };
                let stmts = distribute_block(target, &body)?;
                *arm.body = parse_quote!({ #(#stmts)* });
            }
            Some(Expr::Match(m))
        }
        Expr::Block(b) if b.label.is_none() => {
            let mut b = b.clone();
            b.block.stmts = distribute_block(target, &b.block.stmts)?;
            Some(Expr::Block(b))
        }
        _ => None,
    }
}

fn distribute_block(target: &Expr, stmts: &[Stmt]) -> Option<Vec<Stmt>> {
    let mut out = stmts.to_vec();
    if let Some(Stmt::Expr(tail, semi @ None)) = out.last_mut() {
        match tail {
            Expr::Break(_) | Expr::Continue(_) | Expr::Return(_) => {
                *semi = Some(Default::default())
            }
            t if super::is_valueless(t) => {}
            t if distributable(t) => *t = distribute(target, t)?,
            t => {
                let v = t.clone();
                *out.last_mut().unwrap() = parse_quote!(#target = #v;);
            }
        }
    }
    Some(out)
}
