//! Many early `return`s as one exit: a syntactic rewrite, like `break` in [`super::exits`].
//!
//! The emitter gives each `return` its own adjoint of the path before it, which is
//! quadratic in the number of returns. A function with [`MANY`] or more returns (and a
//! float result) is rewritten instead so that it has one exit: `return v` sets
//! `__ret_v = v; __ret = true;` (and leaves the loop it is in), the rest of each block after
//! a statement that may return runs under `if !__ret { .. }`, every loop that contains a
//! return stops at the top of an iteration once `__ret` is set, and the function's value is
//! `__ret_v`. Code size and compile time are then linear in the returns. A return where the
//! rewrite cannot put it (inside the value of a `let`, a closure) keeps the emitter's way.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::{Expr, Stmt, Type, parse_quote};

/// From this many `return`s on, a function is rewritten to one exit.
pub(super) const MANY: usize = 4;

/// The body of `block` rewritten to one exit, or `None` to keep it as it is.
pub(super) fn single_exit(block: &syn::Block, ret: &Type, float: bool) -> Option<Vec<Stmt>> {
    if !float || count(block) < MANY {
        return None;
    }
    let mut stmts = block.stmts.clone();
    // The tail value is the last return.
    if let Some(Stmt::Expr(e, None)) = stmts.last()
        && !super::is_valueless(e)
        && !matches!(e, Expr::Return(_))
    {
        let e = e.clone();
        *stmts.last_mut().unwrap() = parse_quote!(return #e;);
    }
    let (mut body, _) = rewrite(&stmts, 0)?;
    let mut out: Vec<Stmt> = vec![
        parse_quote!(let mut __ret = false;),
        parse_quote!(let mut __ret_v: #ret = 0.0;),
    ];
    out.append(&mut body);
    out.push(Stmt::Expr(parse_quote!(__ret_v), None));
    Some(out)
}

/// The `return`s in a block (not inside closures or nested items).
fn count(block: &syn::Block) -> usize {
    struct Count(usize);
    impl syn::visit::Visit<'_> for Count {
        fn visit_expr(&mut self, e: &Expr) {
            match e {
                Expr::Return(_) => {
                    self.0 += 1;
                    syn::visit::visit_expr(self, e);
                }
                Expr::Closure(_) => {}
                _ => syn::visit::visit_expr(self, e),
            }
        }
        fn visit_item(&mut self, _: &syn::Item) {}
    }
    let mut c = Count(0);
    syn::visit::Visit::visit_block(&mut c, block);
    c.0
}

fn has_return(e: &impl ToTokens) -> bool {
    let ts: TokenStream = e.to_token_stream();
    ts.into_iter().any(|t| match t {
        proc_macro2::TokenTree::Ident(i) => i == "return",
        proc_macro2::TokenTree::Group(g) => has_return(&g.stream()),
        _ => false,
    })
}

/// `stmts` rewritten (`depth` loops deep); the bool says whether they may return.
fn rewrite(stmts: &[Stmt], depth: usize) -> Option<(Vec<Stmt>, bool)> {
    let mut out = Vec::new();
    let mut any = false;
    for (i, s) in stmts.iter().enumerate() {
        let rest = &stmts[i + 1..];
        match s {
            Stmt::Expr(Expr::Return(r), _) => {
                let v = r.expr.as_ref()?;
                if has_return(v) {
                    return None;
                }
                out.push(parse_quote!(__ret_v = #v;));
                out.push(parse_quote!(__ret = true;));
                if depth > 0 {
                    out.push(parse_quote!(break;));
                }
                return Some((out, true));
            }
            Stmt::Expr(e, semi) => {
                let (e, sets) = expr(e, depth)?;
                out.push(Stmt::Expr(e, *semi));
                any |= sets;
                if sets && !rest.is_empty() {
                    let (rest, _) = rewrite(rest, depth)?;
                    if let Some(Stmt::Expr(tail, None)) = rest.last()
                        && !super::is_valueless(tail)
                    {
                        return None;
                    }
                    out.push(parse_quote!(if !__ret { #(#rest)* }));
                    return Some((out, true));
                }
            }
            Stmt::Local(l) if l.init.as_ref().is_some_and(|i| has_return(&i.expr)) => return None,
            Stmt::Macro(m) if has_return(&m.mac.tokens) => return None,
            _ => out.push(s.clone()),
        }
    }
    Some((out, any))
}

/// A statement's expression rewritten; the bool says whether it may return.
fn expr(e: &Expr, depth: usize) -> Option<(Expr, bool)> {
    if !has_return(e) {
        return Some((e.clone(), false));
    }
    match e {
        Expr::If(i) => {
            let mut i = i.clone();
            let (then, _) = block_without_value(&i.then_branch.stmts, depth)?;
            i.then_branch.stmts = then;
            if let Some((_, els)) = &mut i.else_branch {
                let (new, _) = expr(els, depth)?;
                **els = new;
            }
            Some((Expr::If(i), true))
        }
        Expr::Block(b) if b.label.is_none() => {
            let mut b = b.clone();
            let (stmts, _) = block_without_value(&b.block.stmts, depth)?;
            b.block.stmts = stmts;
            Some((Expr::Block(b), true))
        }
        Expr::Match(m) => {
            let mut m = m.clone();
            for arm in &mut m.arms {
                if arm.guard.as_ref().is_some_and(|(_, g)| has_return(g)) {
                    return None;
                }
                let body: Vec<Stmt> = match &*arm.body {
                    Expr::Block(b) if b.label.is_none() => b.block.stmts.clone(),
                    other => vec![Stmt::Expr(other.clone(), Some(Default::default()))],
                };
                let (stmts, _) = block_without_value(&body, depth)?;
                *arm.body = parse_quote!({ #(#stmts)* });
            }
            Some((Expr::Match(m), true))
        }
        Expr::ForLoop(f) => {
            if has_return(&f.expr) {
                return None;
            }
            let mut f = f.clone();
            f.body.stmts = loop_body(&f.body.stmts, depth)?;
            Some((Expr::ForLoop(f), true))
        }
        Expr::While(w) => {
            if has_return(&w.cond) {
                return None;
            }
            let mut w = w.clone();
            w.body.stmts = loop_body(&w.body.stmts, depth)?;
            Some((Expr::While(w), true))
        }
        Expr::Loop(l) => {
            let mut l = l.clone();
            l.body.stmts = loop_body(&l.body.stmts, depth)?;
            Some((Expr::Loop(l), true))
        }
        _ => None,
    }
}

/// A block in statement position: rewritten, and without a value (else the rewrite gives up).
fn block_without_value(stmts: &[Stmt], depth: usize) -> Option<(Vec<Stmt>, bool)> {
    let (out, sets) = rewrite(stmts, depth)?;
    if let Some(Stmt::Expr(tail, None)) = out.last()
        && sets
        && !super::is_valueless(tail)
    {
        return None;
    }
    Some((out, sets))
}

/// A loop body that may return: it stops at the top of an iteration once `__ret` is set.
fn loop_body(stmts: &[Stmt], depth: usize) -> Option<Vec<Stmt>> {
    let (mut body, _) = block_without_value(stmts, depth + 1)?;
    body.insert(
        0,
        parse_quote!(if __ret {
            break;
        }),
    );
    Some(body)
}
