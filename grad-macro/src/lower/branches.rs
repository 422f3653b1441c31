//! Branches: `if`/`else if`/`else`, `if let` and `match`, lowered as one chain of IR `if`s
//! (a `match` arm is a condition that tests its pattern and guard, and a block that
//! starts by binding the pattern's names).

use super::*;

/// One arm of a chain.
pub(super) struct Arm<'a> {
    /// `None`: the final `else`, or a `match`'s last arm.
    pub cond: Option<ArmCond<'a>>,
    pub stmts: Vec<syn::Stmt>,
    /// Names bound at the start of the arm.
    pub binds: Vec<(String, ArmBind)>,
    /// `if` or `match`, for errors.
    pub kind: &'static str,
}

pub(super) enum ArmCond<'a> {
    /// A boolean expression.
    Expr(&'a Expr),
    /// Already renamed tokens (a pattern test).
    Tokens(TokenStream),
}

pub(super) enum ArmBind {
    /// The name is this value (a pattern that binds the whole scrutinee: `x`, `x @ 1..=3`).
    Value(Operand),
    /// The name is this constant expression, renamed (a binding inside a pattern).
    Extract(TokenStream),
}

/// A pattern's bindings renamed to `__pb_name` (so that a guard or an extraction cannot
/// confuse them with the function's locals); the names, in order.
pub(super) struct PatNames {
    pub(super) names: Vec<String>,
    /// Replace bindings by `_` (a test that binds nothing).
    pub(super) wild: bool,
}

impl VisitMut for PatNames {
    fn visit_field_pat_mut(&mut self, f: &mut syn::FieldPat) {
        // `Named { side }` becomes `Named { side: __pb_side }`.
        if f.colon_token.is_none() {
            f.colon_token = Some(Default::default());
        }
        syn::visit_mut::visit_field_pat_mut(self, f);
    }

    fn visit_pat_mut(&mut self, p: &mut Pat) {
        if let Pat::Ident(pi) = p
            && is_binding(&pi.ident)
        {
            if self.wild {
                *p = match pi.subpat.take() {
                    Some((_, sub)) => *sub,
                    None => parse_quote!(_),
                };
                self.visit_pat_mut(p);
                return;
            }
            self.names.push(pi.ident.to_string());
            pi.ident = format_ident!("__pb_{}", pi.ident);
            pi.by_ref = None;
            pi.mutability = None;
        }
        syn::visit_mut::visit_pat_mut(self, p);
    }
}

/// A name in a pattern binds a value unless it is a constant or a unit variant (written,
/// by Rust's convention, with a capital).
fn is_binding(id: &Ident) -> bool {
    id.to_string()
        .starts_with(|c: char| c.is_lowercase() || c == '_')
}

/// Renames single-segment paths `name` to `__pb_name` for the given names.
pub(super) struct GuardNames<'n>(pub(super) &'n [String]);

impl VisitMut for GuardNames<'_> {
    fn visit_expr_mut(&mut self, e: &mut Expr) {
        if let Expr::Path(p) = e
            && let Some(id) = p.path.get_ident()
            && self.0.contains(&id.to_string())
        {
            let new = format_ident!("__pb_{}", id);
            *e = parse_quote!(#new);
            return;
        }
        if matches!(e, Expr::Closure(_)) {
            return;
        }
        syn::visit_mut::visit_expr_mut(self, e);
    }
}

/// `*name` to `name` for the given names: a pattern matched against a reference binds
/// references (`Some(k)` on a `&Option<usize>` binds `k: &usize`), but the arm sees an owned
/// copy of each binding (a value the tape can keep), so the user's `*k` is `k` there.
struct DerefNames<'n>(&'n [String]);

impl VisitMut for DerefNames<'_> {
    fn visit_expr_mut(&mut self, e: &mut Expr) {
        if let Expr::Unary(u) = e
            && matches!(u.op, syn::UnOp::Deref(_))
            && let Expr::Path(p) = strip_paren(&u.expr)
            && let Some(id) = p.path.get_ident()
            && self.0.contains(&id.to_string())
        {
            *e = (*u.expr).clone();
            return;
        }
        if matches!(e, Expr::Closure(_)) {
            return;
        }
        syn::visit_mut::visit_expr_mut(self, e);
    }
}

/// The statements of an arm's body (an expression arm is one statement).
fn arm_stmts(body: &Expr) -> Vec<syn::Stmt> {
    match body {
        Expr::Block(b) if b.label.is_none() => b.block.stmts.clone(),
        other => vec![syn::Stmt::Expr(other.clone(), None)],
    }
}

/// `&scrut`, matched without moving it; `scrut` itself when the pattern has a `&` pattern
/// (`Some(&k)` on an `Option<&usize>`), which edition 2024 forbids under an implicit borrow
/// (the parts under `&` are references: nothing moves).
fn borrowed(scrut: &Expr, pat: &Pat) -> Expr {
    struct HasRef(bool);
    impl<'a> syn::visit::Visit<'a> for HasRef {
        fn visit_pat_reference(&mut self, _: &'a syn::PatReference) {
            self.0 = true;
        }
    }
    let mut h = HasRef(false);
    syn::visit::Visit::visit_pat(&mut h, pat);
    if h.0 {
        scrut.clone()
    } else {
        parse_quote!(&#scrut)
    }
}

/// For each name bound by `named` (bindings renamed `__pb_name`), the expression that takes
/// it out of `scrut`.
fn extractions(scrut: &Expr, named: &Pat, names: &[String]) -> Vec<(String, Expr)> {
    names
        .iter()
        .map(|n| {
            let pb = format_ident!("__pb_{}", n);
            let scrut = borrowed(scrut, named);
            let e: Expr = parse_quote!(match #scrut {
                // A method call, so that a binding by value (`Some(&k)`) and one by reference
                // (`Some(k)` on `&Option<usize>`) both give the value.
                #named => #pb.clone(),
                #[allow(unreachable_patterns)]
                _ => ::core::unreachable!(),
            });
            (n.clone(), e)
        })
        .collect()
}

impl Lowerer {
    /// The names `pat` binds in the constant value `v`, each with the (renamed) code that
    /// takes it out: `let (i, n) = pair;`.
    pub(super) fn pattern_parts(&mut self, v: &Operand, pat: &Pat) -> Vec<(String, TokenStream)> {
        let mut named = pat.clone();
        let mut pn = PatNames {
            names: Vec::new(),
            wild: false,
        };
        pn.visit_pat_mut(&mut named);
        let scrut: Expr = parse_quote!(__symgrad_scrutinee);
        extractions(&scrut, &named, &pn.names)
            .into_iter()
            .map(|(n, e)| {
                let ts = self.with_scrutinee(Some(v), &[], |l| l.inactive_expr(&e, true));
                (n, ts)
            })
            .collect()
    }

    pub(super) fn lower_if(&mut self, i: &syn::ExprIf, want_value: bool) -> Option<Operand> {
        let mut arms = Vec::new();
        let mut cur = i;
        loop {
            let chain = match strip_paren(&cur.cond) {
                c @ Expr::Binary(_) => let_chain(c),
                _ => None,
            };
            let arm = match (strip_paren(&cur.cond), chain) {
                (Expr::Let(l), _) => {
                    self.pattern_arm(&l.expr, None, &l.pat, None, &cur.then_branch.stmts)
                }
                // A let chain, `if let P = e && c && ..`: the arm `P if c && ..` of a match.
                (_, Some((l, guard))) => {
                    let stmts = &cur.then_branch.stmts;
                    match guard {
                        Ok(g) => self.pattern_arm(&l.expr, None, &l.pat, Some(&g), stmts),
                        Err(e) => {
                            self.errors.push(e);
                            return None;
                        }
                    }
                }
                (c, None) => Arm {
                    cond: Some(ArmCond::Expr(c)),
                    stmts: cur.then_branch.stmts.clone(),
                    binds: Vec::new(),
                    kind: "if",
                },
            };
            arms.push(arm);
            match &cur.else_branch {
                None => break,
                Some((_, e)) => match &**e {
                    Expr::If(inner) => cur = inner,
                    Expr::Block(b) => {
                        arms.push(Arm {
                            cond: None,
                            stmts: b.block.stmts.clone(),
                            binds: Vec::new(),
                            kind: "if",
                        });
                        break;
                    }
                    other => {
                        self.errors.push(err_node(&other, "unsupported `else`"));
                        return None;
                    }
                },
            }
        }
        self.lower_chain(&arms, i.if_token.span, want_value)
    }

    pub(super) fn lower_match(&mut self, m: &syn::ExprMatch, want_value: bool) -> Option<Operand> {
        if m.arms.is_empty() {
            self.errors.push(err_node(
                &m.expr,
                "a `match` without arms has no value to differentiate",
            ));
            return None;
        }
        // The scrutinee is evaluated once, before the arms; a tuple of constants
        // (`match (i % 2, k)`) is one constant value.
        let scrut = match strip_paren(&m.expr) {
            Expr::Tuple(t) => {
                let parts: Vec<Operand> = t.elems.iter().map(|e| self.expr(e)).collect();
                if let Some(p) = t.elems.iter().zip(&parts).find(|(_, o)| self.active(o)) {
                    self.errors.push(err_node(p.0, "a `match` on a tuple can only read values that carry no gradient; match on this value in its own `match` or `if`"));
                    return None;
                }
                self.inactive(&m.expr, true)
            }
            _ => self.expr(&m.expr),
        };
        let last = m.arms.len() - 1;
        let arms: Vec<Arm> = m
            .arms
            .iter()
            .enumerate()
            .map(|(k, arm)| {
                let guard = arm.guard.as_ref().map(|(_, g)| &**g);
                let mut a = self.pattern_arm(
                    &m.expr,
                    Some(&scrut),
                    &arm.pat,
                    guard,
                    &arm_stmts(&arm.body),
                );
                a.kind = "match";
                if k == last {
                    // rustc checks on the original that the match is exhaustive: when the
                    // other arms do not match, the last one does.
                    a.cond = None;
                }
                a
            })
            .collect();
        self.lower_chain(&arms, m.match_token.span, want_value)
    }

    /// The arm of `pat if guard => stmts` on `scrut_expr` (lowered to `scrut` for a
    /// `match`; re-evaluated in the test and the bindings for an `if let`).
    fn pattern_arm<'a>(
        &mut self,
        scrut_expr: &Expr,
        scrut: Option<&Operand>,
        pat: &Pat,
        guard: Option<&Expr>,
        stmts: &[syn::Stmt],
    ) -> Arm<'a> {
        // The scrutinee in conditions: a name bound to its value, or the expression.
        let scrut_ts: Expr = match scrut {
            Some(_) => parse_quote!(__symgrad_scrutinee),
            None => scrut_expr.clone(),
        };
        let mut binds = Vec::new();
        // `x` or `x @ pat` at the top binds the scrutinee itself (and keeps its gradient).
        let mut pat = pat.clone();
        if let (Pat::Ident(pi), Some(s)) = (&pat, scrut)
            && is_binding(&pi.ident)
            && pi.by_ref.is_none()
        {
            binds.push((pi.ident.to_string(), ArmBind::Value(s.clone())));
            pat = match &pi.subpat {
                Some((_, sub)) => (**sub).clone(),
                None => parse_quote!(_),
            };
        }
        let mut named = pat.clone();
        let mut pn = PatNames {
            names: Vec::new(),
            wild: false,
        };
        pn.visit_pat_mut(&mut named);
        let names = pn.names;
        // Bindings in a pattern on a reference are references in the original; here they
        // are owned copies: `*k` reads `k`.
        let by_ref = self.binds_by_ref(scrut_expr);
        let mut guard = guard.cloned();
        let mut stmts = stmts.to_vec();
        if by_ref {
            let mut d = DerefNames(&names);
            if let Some(g) = guard.as_mut() {
                d.visit_expr_mut(g);
            }
            for s in &mut stmts {
                d.visit_stmt_mut(s);
            }
        }
        let mut wild = pat.clone();
        PatNames {
            names: Vec::new(),
            wild: true,
        }
        .visit_pat_mut(&mut wild);
        // The top-level binding is seen by the guard as the scrutinee.
        let top: Vec<(String, Operand)> = binds
            .iter()
            .filter_map(|(n, b)| match b {
                ArmBind::Value(o) => Some((n.clone(), o.clone())),
                ArmBind::Extract(_) => None,
            })
            .collect();
        let test: Expr = match &guard {
            None => parse_quote!(match #scrut_ts { #wild => true, _ => false }),
            Some(g) => {
                let mut g = g.clone();
                GuardNames(&names).visit_expr_mut(&mut g);
                let owned = names.iter().map(|n| format_ident!("__pb_{}", n));
                let owned2 = owned.clone();
                let scrut_b = borrowed(&scrut_ts, &named);
                parse_quote!(match #scrut_b {
                    #named => { #(let #owned = #owned2.clone();)* #g }
                    _ => false,
                })
            }
        };
        let cond = self.with_scrutinee(scrut, &top, |l| l.inactive_expr(&test, true));
        for (n, e) in extractions(&scrut_ts, &named, &names) {
            let ts = self.with_scrutinee(scrut, &[], |l| l.inactive_expr(&e, true));
            binds.push((n, ArmBind::Extract(ts)));
        }
        Arm {
            cond: Some(ArmCond::Tokens(cond)),
            stmts,
            binds,
            kind: "if",
        }
    }

    /// Whether a pattern matched against `scrut` binds references (by Rust's default binding
    /// modes): `scrut` is `&e` or names a reference (a parameter `o: &Option<usize>`).
    fn binds_by_ref(&self, scrut: &Expr) -> bool {
        match strip_paren(scrut) {
            Expr::Reference(_) => true,
            Expr::Path(p) => p
                .path
                .get_ident()
                .and_then(|id| self.lookup(&id.to_string()))
                .is_some_and(|b| matches!(b.op, Operand::Var(v) if self.vars[v].is_ref)),
            _ => false,
        }
    }

    /// Runs `f` with `__symgrad_scrutinee` (and `extra` names) bound.
    fn with_scrutinee<T>(
        &mut self,
        scrut: Option<&Operand>,
        extra: &[(String, Operand)],
        f: impl FnOnce(&mut Self) -> T,
    ) -> T {
        self.scopes.push(Vec::new());
        if let Some(s) = scrut {
            self.bind("__symgrad_scrutinee".into(), s.clone(), false);
        }
        for (n, o) in extra {
            self.bind(n.clone(), o.clone(), false);
        }
        let out = f(self);
        self.scopes.pop();
        out
    }

    fn arm_cond(&mut self, c: &ArmCond) -> TokenStream {
        match c {
            ArmCond::Expr(e) => self.inactive_expr(e, true),
            ArmCond::Tokens(t) => t.clone(),
        }
    }

    /// Lowers an arm's body, after binding its names.
    fn arm_block(&mut self, arm: &Arm) -> (Block, Option<Operand>) {
        self.sub_block_with(&arm.stmts, |l| {
            for (name, b) in &arm.binds {
                let op = match b {
                    ArmBind::Value(o) => o.clone(),
                    ArmBind::Extract(ts) => {
                        let dst = l.new_var(name, false, Deps::default(), false);
                        l.named.insert(dst);
                        l.cur.push(Stmt::Assign(Assign {
                            dst,
                            op: Op::Inactive(ts.clone()),
                            span: Span::call_site(),
                        }));
                        Operand::Var(dst)
                    }
                };
                l.bind(name.clone(), op, false);
            }
        })
    }

    /// An `if`/`else if`/`else` chain or the arms of a `match`, as nested IR `if`s: the
    /// first arm is the `then` block, the others the `else` block. Linear in the arms.
    fn lower_chain(&mut self, arms: &[Arm], span: Span, want_value: bool) -> Option<Operand> {
        let kind = arms.first().map(|a| a.kind).unwrap_or("if");
        let (first, rest) = arms.split_first()?;
        let cond = match &first.cond {
            Some(c) => self.arm_cond(c),
            None => quote!(true),
        };
        let before = self.scopes.clone();
        let (then_b, then_v) = self.arm_block(first);
        let then_scopes = std::mem::replace(&mut self.scopes, before.clone());
        let (else_b, else_v) = match rest {
            [] => (Block::default(), None),
            [last] if last.cond.is_none() => self.arm_block(last),
            more => {
                let saved_cur = std::mem::take(&mut self.cur);
                let saved_div = self.diverged;
                self.diverged = false;
                let v = self.lower_chain(more, span, want_value);
                let b = Block {
                    stmts: std::mem::replace(&mut self.cur, saved_cur),
                    diverges: self.diverged,
                };
                self.diverged = saved_div;
                (b, v)
            }
        };
        let else_scopes = std::mem::replace(&mut self.scopes, before.clone());
        let mut phis = Vec::new();
        let mut result = None;
        if then_b.diverges && else_b.diverges {
            self.diverged = true;
        }
        // Names rebound in a branch.
        for (si, scope) in before.iter().enumerate() {
            for (bi, (name, _)) in scope.iter().enumerate() {
                let t = &then_scopes[si][bi].1.op;
                let e = &else_scopes[si][bi].1.op;
                let pre = &before[si][bi].1.op;
                // A value rebound in a branch that does not return lives in that branch's
                // scope: a phi carries it out (the returning branch's side is never taken).
                let (t, e) = match (then_b.diverges, else_b.diverges) {
                    (true, true) => (pre, pre),
                    (true, false) => (e, e),
                    (false, true) => (t, t),
                    (false, false) => (t, e),
                };
                let chosen = if Self::same(t, pre) && Self::same(e, pre) {
                    pre.clone()
                } else {
                    let active = self.active(t) || self.active(e);
                    let deps = self.deps(t).union(&self.deps(e));
                    let is_ref = matches!(t, Operand::Var(v) if self.vars[*v].is_ref);
                    let dst = self.new_var(name, active, deps, is_ref);
                    if self.is_scalar(t) || self.is_scalar(e) {
                        self.scalars.insert(dst);
                    }
                    phis.push(Phi {
                        dst,
                        then_v: t.clone(),
                        else_v: e.clone(),
                    });
                    Operand::Var(dst)
                };
                self.scopes[si][bi].1.op = chosen;
            }
        }
        if want_value {
            result = match (then_v, else_v) {
                (Some(t), Some(e)) if !then_b.diverges && !else_b.diverges => {
                    let active = self.active(&t) || self.active(&e);
                    let deps = self.deps(&t).union(&self.deps(&e));
                    let is_ref = matches!(t, Operand::Var(v) if self.vars[v].is_ref);
                    let dst = self.new_var("", active, deps, is_ref);
                    if self.is_scalar(&t) || self.is_scalar(&e) {
                        self.scalars.insert(dst);
                    }
                    phis.push(Phi {
                        dst,
                        then_v: t,
                        else_v: e,
                    });
                    Some(Operand::Var(dst))
                }
                (t, e) if then_b.diverges != else_b.diverges => {
                    let v = if then_b.diverges { e } else { t };
                    v.map(|v| {
                        let is_ref = matches!(v, Operand::Var(x) if self.vars[x].is_ref);
                        let dst = self.new_var("", self.active(&v), self.deps(&v), is_ref);
                        if self.is_scalar(&v) {
                            self.scalars.insert(dst);
                        }
                        phis.push(Phi {
                            dst,
                            then_v: v.clone(),
                            else_v: v,
                        });
                        Operand::Var(dst)
                    })
                }
                (None, None) if then_b.diverges && else_b.diverges => None,
                _ => {
                    if rest.is_empty() {
                        None
                    } else {
                        self.errors.push(err(
                            span,
                            format!("every branch of this `{kind}` must have a value"),
                        ));
                        None
                    }
                }
            };
        }
        let id = self.next_id;
        self.next_id += 1;
        self.cur.push(Stmt::If(If {
            id,
            cond,
            then_b,
            else_b,
            phis,
        }));
        result
    }
}

/// A let chain `let P = e && c1 && c2 ..` (one `let`, first): the `let` and the conjunction
/// of the conditions after it, or a spanned error for a chain with another `let` or with
/// conditions before the `let`. `None` when `cond` has no `let` at all.
fn let_chain(cond: &Expr) -> Option<(&syn::ExprLet, syn::Result<Expr>)> {
    fn conjuncts<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
        match strip_paren(e) {
            Expr::Binary(b) if matches!(b.op, syn::BinOp::And(_)) => {
                conjuncts(&b.left, out);
                conjuncts(&b.right, out);
            }
            other => out.push(other),
        }
    }
    let mut parts = Vec::new();
    conjuncts(cond, &mut parts);
    let lets: Vec<usize> = (0..parts.len())
        .filter(|&k| matches!(parts[k], Expr::Let(_)))
        .collect();
    let first = *lets.first()?;
    let Expr::Let(l) = parts[first] else {
        unreachable!()
    };
    if lets.len() > 1 || first != 0 {
        let at = parts[if first != 0 { first } else { lets[1] }];
        let e = err_node(
            at,
            "a let chain in a #[differentiable] fn may have one `let`, first \
             (`if let P = e && cond && ..`); nest the other `if let`s",
        );
        return Some((l, Err(e)));
    }
    let rest = &parts[1..];
    let guard: Expr = syn::parse_quote!(#(#rest)&&*);
    Some((l, Ok(guard)))
}
