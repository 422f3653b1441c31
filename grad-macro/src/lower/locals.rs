//! Local arrays and `Vec`s (`[a, b]`, `[x; n]`, `vec![..]`, `a[i] = v`, `a[i] += v`,
//! `v.push(x)`) and tuple `let`s (`let (a, b) = (x, y);`).

use super::*;

impl Lowerer {
    /// `e` names a local `let mut` (an array or a `Vec`; rustc checks which on the original).
    pub(super) fn local_array(&self, e: &Expr) -> bool {
        named_binding(&self.scopes, e)
            .is_some_and(|b| b.mutable && !b.is_param && b.closure.is_none())
    }

    pub(super) fn array_lit<'e>(
        &mut self,
        elems: impl Iterator<Item = &'e Expr>,
        e: &Expr,
        vec: bool,
    ) -> Operand {
        let ops: Vec<Operand> = elems.map(|x| self.expr(x)).collect();
        if !ops.iter().any(|o| self.active(o)) {
            return self.inactive_lit(e, vec);
        }
        let refs: Vec<&Operand> = ops.iter().collect();
        self.assign(Op::ArrayLit(ops.clone(), vec), &refs, e.span(), false)
    }

    pub(super) fn repeat(&mut self, x: &Expr, n: &Expr, e: &Expr, vec: bool) -> Operand {
        let v = self.expr(x);
        if !self.active(&v) {
            return self.inactive_lit(e, vec);
        }
        let n = self.inactive_expr(n, false);
        self.assign(Op::Repeat(v.clone(), n, vec), &[&v], e.span(), false)
    }

    /// A literal without values that carry a gradient: constant code. A `vec!` is passed as
    /// its bracketed tokens (`[x; n]`), renamed like any constant expression (the names inside
    /// a macro's tokens would not be) and wrapped in `vec!` again.
    fn inactive_lit(&mut self, e: &Expr, vec: bool) -> Operand {
        if !vec {
            return self.inactive(e, true);
        }
        let ts = self.inactive_expr(e, true);
        let dst = self.new_var("", false, Deps::default(), false);
        self.cur.push(Stmt::Assign(Assign {
            dst,
            op: Op::Inactive(quote!(::std::vec! #ts)),
            span: e.span(),
        }));
        Operand::Var(dst)
    }

    /// `vec![a, b]` or `vec![x; n]`.
    pub(super) fn vec_macro(&mut self, mac: &syn::Macro) -> Operand {
        let tokens = &mac.tokens;
        match syn::parse2::<Expr>(quote_spanned!(mac.delimiter.span().join()=> [#tokens])) {
            Ok(Expr::Array(a)) => {
                let elems: Vec<Expr> = a.elems.iter().cloned().collect();
                self.array_lit(elems.iter(), &Expr::Array(a), true)
            }
            Ok(Expr::Repeat(r)) => {
                let inner = Expr::Repeat(r.clone());
                self.repeat(&r.expr, &r.len, &inner, true)
            }
            _ => self.unsupported_node(
                mac,
                "this `vec!` is not supported; write `vec![a, b, ..]` or `vec![x; n]`",
            ),
        }
    }

    /// `a[i] = v` on a local array: `a` becomes a copy with element `i` set.
    pub(super) fn set_index(&mut self, ix: &syn::ExprIndex, v: Operand) {
        let name = root_name(&ix.expr).unwrap_or_default();
        let base = self.expr(&ix.expr);
        let index = self.expr(&ix.index);
        if self.active(&index) {
            self.errors.push(err_node(
                &ix.index,
                "an index must be an integer, not a value that carries a gradient",
            ));
            return;
        }
        let Operand::Var(b) = base else {
            self.errors.push(err_node(
                &ix.expr,
                "an element can only be assigned in a local array or `Vec` declared with `let mut`",
            ));
            return;
        };
        let new = self.assign(
            Op::SetIndex(b, index.clone(), v.clone()),
            &[&base, &index, &v],
            ix.span(),
            false,
        );
        self.rebind(&name, new);
    }

    /// `v.push(x)` on a local `Vec`.
    pub(super) fn push(&mut self, m: &syn::ExprMethodCall) {
        let name = root_name(&m.receiver).unwrap_or_default();
        let base = self.expr(&m.receiver);
        let x = self.expr(&m.args[0]);
        let Operand::Var(b) = base else {
            self.errors.push(err_node(
                &m.receiver,
                "`push` is supported on a local `Vec` declared with `let mut`",
            ));
            return;
        };
        let new = self.assign(Op::Push(b, x.clone()), &[&base, &x], m.span(), false);
        self.rebind(&name, new);
    }

    /// `(a, b, ..)` as a value: a tuple (a function's result, a local read by `p.0`).
    pub(super) fn tuple(&mut self, t: &syn::ExprTuple, e: &Expr) -> Operand {
        let ops: Vec<Operand> = t.elems.iter().map(|x| self.expr(x)).collect();
        if !ops.iter().any(|o| self.active(o)) {
            return self.inactive(e, true);
        }
        let refs: Vec<&Operand> = ops.iter().collect();
        self.assign(Op::Tuple(ops.clone()), &refs, e.span(), false)
    }

    /// `base.k`: a part of a tuple that carries a gradient, as an owned value (a copy of
    /// the field borrow, so that it can flow into branches, loops and the result).
    pub(super) fn tuple_field(
        &mut self,
        base: VarId,
        member: syn::Member,
        name: &str,
        span: proc_macro2::Span,
    ) -> Operand {
        let (active, deps) = (self.vars[base].active, self.vars[base].deps.clone());
        let field = self.new_var("", active, deps.clone(), true);
        self.vars[field].is_place = true;
        self.cur.push(Stmt::Assign(Assign {
            dst: field,
            op: Op::Field(base, member),
            span,
        }));
        let dst = self.new_var(name, active, deps, false);
        self.cur.push(Stmt::Assign(Assign {
            dst,
            op: Op::Clone(Operand::Var(field)),
            span,
        }));
        Operand::Var(dst)
    }

    /// `let pat = v;` for a tuple value `v` that carries a gradient (the result of a call):
    /// each name is bound to its part, `_` parts are skipped.
    fn destructure(&mut self, pat: &Pat, v: VarId, out: &mut Vec<(String, Operand, bool)>) {
        let Pat::Tuple(pt) = pat else {
            return;
        };
        for (k, p) in pt.elems.iter().enumerate() {
            let p = match p {
                Pat::Type(t) => &*t.pat,
                p => p,
            };
            let member = syn::Member::Unnamed(syn::Index {
                index: k as u32,
                span: p.span(),
            });
            match p {
                Pat::Wild(_) => {}
                Pat::Ident(pi) if pi.by_ref.is_none() && pi.subpat.is_none() => {
                    let name = pi.ident.to_string();
                    let part = self.tuple_field(v, member, &name, pi.span());
                    out.push((name, part, pi.mutability.is_some()));
                }
                Pat::Tuple(_) => {
                    if let Operand::Var(part) = self.tuple_field(v, member, "", p.span()) {
                        self.destructure(p, part, out);
                    }
                }
                other => self.errors.push(err_node(other, "a tuple that carries gradients can be destructured into names, `_` and nested tuples only (`let (a, (b, _)) = f(x);`)")),
            }
        }
    }

    /// `let (a, b) = (x, y);` (names bound after every element is computed), or a tuple
    /// of constants destructured (`let (i, n) = pair;`).
    pub(super) fn let_tuple(&mut self, pat: &Pat, init: &Expr) {
        let mut binds = Vec::new();
        self.tuple_parts(pat, init, &mut binds);
        for (name, op, mutable) in binds {
            self.bind(name, op, mutable);
        }
    }

    fn tuple_parts(&mut self, pat: &Pat, init: &Expr, out: &mut Vec<(String, Operand, bool)>) {
        match (pat, strip_paren(init)) {
            (Pat::Tuple(pt), Expr::Tuple(et)) if pt.elems.len() == et.elems.len() => {
                for (p, e) in pt.elems.iter().zip(&et.elems) {
                    self.tuple_parts(p, e, out);
                }
            }
            (Pat::Ident(pi), e) if pi.by_ref.is_none() && pi.subpat.is_none() => {
                let op = self.expr(e);
                out.push((pi.ident.to_string(), op, pi.mutability.is_some()));
            }
            (Pat::Wild(_), e) => {
                let _ = self.expr(e);
            }
            (Pat::Type(pt), e) => self.tuple_parts(&pt.pat, e, out),
            (p, e) => {
                // A value that carries no gradient: each name is its part, taken with a
                // `match` on it.
                let v = self.expr(e);
                if let (Operand::Var(id), true) = (&v, self.active(&v))
                    && matches!(p, Pat::Tuple(_))
                {
                    self.destructure(p, *id, out);
                    return;
                }
                if self.active(&v) {
                    self.errors.push(err_node(e, "only tuples can be destructured when they carry gradients (`let (a, b) = f(x);`); bind the parts with separate `let`s"));
                    return;
                }
                for (name, ts) in self.pattern_parts(&v, p) {
                    let dst = self.new_var(&name, false, Deps::default(), false);
                    self.named.insert(dst);
                    self.cur.push(Stmt::Assign(Assign {
                        dst,
                        op: Op::Inactive(ts),
                        span: e.span(),
                    }));
                    out.push((name, Operand::Var(dst), false));
                }
            }
        }
    }
}
