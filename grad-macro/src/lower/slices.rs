//! Slices and `Vec`s beyond indexing: sub-slices `&xs[a..b]` (views of `xs`, bound by
//! `let`, iterated, or copied when passed to a function), `collect` and `to_vec` into a local
//! `Vec`, `first()`/`last()`, array patterns `let [a, b] = v;`, `let .. else`, and the casts
//! between `f32` and `f64`.

use super::*;

/// Slice and `Vec` methods with no rule, and what to write instead.
pub(super) const SLICE_METHODS: &[(&str, &str)] = &[
    ("get", "index it (`xs[i]`), checking `i < xs.len()` first"),
    (
        "split_at",
        "take sub-slices (`let (a, b) = (&xs[..k], &xs[k..]);`)",
    ),
    (
        "split_first",
        "index the first element and take the sub-slice `&xs[1..]`",
    ),
    (
        "split_last",
        "index the last element and take the sub-slice `&xs[..xs.len() - 1]`",
    ),
    ("concat", "fill a `Vec` with `push` in a loop"),
    ("sort_by", "sort indices or write the loop by hand"),
    ("swap", "assign the two elements through a local"),
    ("reverse", "iterate with `.rev()`"),
    ("fill", "assign the elements in a loop"),
    ("extend_from_slice", "`push` the elements in a loop"),
    ("extend", "`push` the elements in a loop"),
    ("pop", "index the last element (`v[v.len() - 1]`)"),
];

/// `xs.first().unwrap()` / `xs.last().unwrap()` (also with `copied()`/`cloned()` before the
/// `unwrap`, or `expect(..)`): the element as an index expression, `xs[0]` or
/// `xs[xs.len() - 1]` (which panics on an empty slice, as the `unwrap` does).
pub(super) fn first_or_last(m: &syn::ExprMethodCall) -> Option<Expr> {
    if !(m.method == "unwrap" && m.args.is_empty() || m.method == "expect" && m.args.len() == 1) {
        return None;
    }
    let mut r = strip_paren(&m.receiver);
    if let Expr::MethodCall(c) = r
        && (c.method == "copied" || c.method == "cloned")
        && c.args.is_empty()
    {
        r = strip_paren(&c.receiver);
    }
    let Expr::MethodCall(fl) = r else {
        return None;
    };
    if !fl.args.is_empty() || iterators::is_chain(&fl.receiver) {
        return None;
    }
    let xs = &fl.receiver;
    if fl.method == "first" {
        Some(parse_quote!(#xs[0]))
    } else if fl.method == "last" {
        Some(parse_quote!(#xs[#xs.len() - 1]))
    } else {
        None
    }
}

/// A slice, array or `Vec` whose elements are `Vec`s or slices.
pub(super) fn nested_vec(ty: &Type) -> bool {
    fn elem(t: &Type) -> Option<&Type> {
        match t {
            Type::Path(p) => {
                let last = p.path.segments.last()?;
                match &last.arguments {
                    syn::PathArguments::AngleBracketed(a) if last.ident == "Vec" => {
                        match a.args.first()? {
                            syn::GenericArgument::Type(t) => Some(t),
                            _ => None,
                        }
                    }
                    _ => None,
                }
            }
            Type::Slice(s) => Some(&s.elem),
            Type::Array(a) => Some(&a.elem),
            Type::Reference(r) => elem(&r.elem),
            _ => None,
        }
    }
    match elem(ty) {
        Some(Type::Path(p)) => p.path.segments.last().is_some_and(|s| s.ident == "Vec"),
        Some(Type::Slice(_) | Type::Reference(_)) => true,
        _ => false,
    }
}

/// `f32` or `f64` as the target of a cast: the conversion.
pub(super) fn cast_float_target(ty: &Type) -> Option<MathFn> {
    match ty {
        Type::Path(p) if p.path.is_ident("f32") => Some(MathFn::AsF32),
        Type::Path(p) if p.path.is_ident("f64") => Some(MathFn::AsF64),
        Type::Paren(p) => cast_float_target(&p.elem),
        Type::Group(g) => cast_float_target(&g.elem),
        _ => None,
    }
}

/// `chain.collect()` or `chain.collect::<Vec<_>>()` on an iterator chain: the chain.
pub(super) fn collected_chain(e: &Expr) -> Option<&Expr> {
    match strip_paren(e) {
        Expr::MethodCall(m)
            if m.method == "collect" && m.args.is_empty() && iterators::is_chain(&m.receiver) =>
        {
            Some(&m.receiver)
        }
        _ => None,
    }
}

/// `let P = e else { .. };` with a refutable pattern `P` binding `a` (or `a, b`): `let a =
/// match e { P => a, _ => { .. } };` (a tuple of the names for several). The `else` block
/// diverges (rustc checks that on the original).
pub(super) fn let_else(local: &syn::Local) -> Option<syn::Local> {
    let init = local.init.as_ref()?;
    let (_, else_expr) = init.diverge.as_ref()?;
    if matches!(&local.pat, Pat::Ident(pi) if pi.subpat.is_none()) {
        return None;
    }
    struct Names(Vec<(Ident, bool)>);
    impl<'a> syn::visit::Visit<'a> for Names {
        fn visit_pat_ident(&mut self, p: &'a syn::PatIdent) {
            if p.ident
                .to_string()
                .starts_with(|c: char| c.is_lowercase() || c == '_')
            {
                self.0.push((p.ident.clone(), p.mutability.is_some()));
            }
            syn::visit::visit_pat_ident(self, p);
        }
    }
    let mut names = Names(Vec::new());
    syn::visit::Visit::visit_pat(&mut names, &local.pat);
    let pat = &local.pat;
    let e = &init.expr;
    let ids: Vec<&Ident> = names.0.iter().map(|(n, _)| n).collect();
    let stmt: syn::Stmt = match &names.0[..] {
        [(n, m)] => {
            let m = m.then(|| quote!(mut));
            parse_quote!(let #m #n = match #e { #pat => #n, _ => #else_expr };)
        }
        _ => {
            let outs = names.0.iter().map(|(n, m)| {
                let m = m.then(|| quote!(mut));
                quote!(#m #n)
            });
            parse_quote!(let (#(#outs,)*) = match #e { #pat => (#(#ids,)*), _ => #else_expr };)
        }
    };
    match stmt {
        syn::Stmt::Local(l) => Some(l),
        _ => None,
    }
}

/// `xs.to_vec()` / `xs.to_owned()` of a slice, array or `Vec` (not a chain): `xs`.
pub(super) fn copied_slice(e: &Expr) -> Option<&Expr> {
    match strip_paren(e) {
        Expr::MethodCall(m)
            if (m.method == "to_vec" || m.method == "to_owned")
                && m.args.is_empty()
                && !iterators::is_chain(&m.receiver) =>
        {
            Some(&m.receiver)
        }
        _ => None,
    }
}

/// The `collect` of `chain.collect()`: where an error about the `Vec` it fills points.
pub(super) fn collect_span(e: &Expr) -> Span {
    match strip_paren(e) {
        Expr::MethodCall(m) => m.method.span(),
        other => other.span(),
    }
}

/// `xs[a..b]` (any range form, `&` or not) as a view of `xs`: start `a`, length `b - a`.
pub(super) fn sub_slice(e: &Expr) -> Option<iterators::View> {
    let e = match strip_paren(e) {
        Expr::Reference(r) if r.mutability.is_none() => strip_paren(&r.expr),
        other => other,
    };
    let Expr::Index(ix) = e else {
        return None;
    };
    let Expr::Range(r) = strip_paren(&ix.index) else {
        return None;
    };
    if iterators::is_chain(&ix.expr) {
        return None;
    }
    let base = (*ix.expr).clone();
    let start: Expr = match &r.start {
        Some(a) => iterators::inactive(parse_quote!(#a)),
        None => parse_quote!(0usize),
    };
    let end: Expr = match (&r.end, &r.limits) {
        (Some(b), syn::RangeLimits::HalfOpen(_)) => parse_quote!(#b),
        (Some(b), syn::RangeLimits::Closed(_)) => parse_quote!(#b + 1),
        (None, _) => parse_quote!((#base).len()),
    };
    // The original panics when the range is out of bounds; so does this (a start past the
    // end underflows, an end past the base's length reads out of bounds).
    let len = iterators::inactive(parse_quote!((#end) - (#start)));
    Some(iterators::View { base, start, len })
}

impl Lowerer {
    /// `let [a, b, c] = arr;` (also `mut`, `_` and a trailing `..`): the array is bound
    /// once, then each name to its element, `let a = arr[0];`.
    pub(super) fn let_array(&mut self, ps: &syn::PatSlice, init: &Expr) {
        let n = ps.elems.len();
        let mut lets: Vec<syn::Stmt> = Vec::new();
        let arr = format_ident!("__symgrad_array_{}", self.vars.len());
        lets.push(parse_quote!(let #arr = #init;));
        for (k, p) in ps.elems.iter().enumerate() {
            match p {
                Pat::Ident(pi) if pi.by_ref.is_none() && pi.subpat.is_none() => {
                    lets.push(parse_quote!(let #pi = #arr[#k];));
                }
                Pat::Wild(_) => {}
                Pat::Rest(_) if k + 1 == n => {}
                other => {
                    self.errors.push(err_node(
                        other,
                        "an array pattern in a #[differentiable] fn binds names, `_` and a final `..` (`let [a, b, ..] = v;`); destructure nested values in a second `let`",
                    ));
                    return;
                }
            }
        }
        for s in &lets {
            if let syn::Stmt::Local(l) = s {
                self.local(l);
            }
        }
    }
}

impl Lowerer {
    /// `let v: Vec<f64> = chain.collect();`: `let mut v = Vec::new();` filled by a loop
    /// over the chain (each element flows into the `Vec` as through `push`).
    pub(super) fn let_collect(&mut self, name: &str, ty: Option<&Type>, chain: &Expr, sp: Span) {
        // Spanned on `collect` (or the argument copied): an error about the `Vec` (no local
        // `Vec` with `hessian`) points at the code that builds it.
        let id = Ident::new(name, sp);
        let x = format_ident!("__symgrad_elem_{}", self.vars.len(), span = sp);
        let decl: syn::Stmt = match ty {
            Some(t) => syn::parse_quote_spanned!(sp=> let mut #id: #t = ::std::vec::Vec::new();),
            None => syn::parse_quote_spanned!(sp=> let mut #id = ::std::vec::Vec::new();),
        };
        let fill: syn::Stmt = syn::parse_quote_spanned!(sp=> for #x in #chain {
            #id.push(#x);
        });
        let _ = self.stmts(&[decl, fill]);
    }

    /// `let tail = &xs[a..b];`: a view of `xs` (indexed, measured and iterated like a
    /// window), its start and length fixed where it is bound.
    pub(super) fn let_sub_slice(&mut self, name: &str, view: iterators::View) {
        let k = self.vars.len();
        let (s, n) = (
            format_ident!("__symgrad_start_{}", k),
            format_ident!("__symgrad_len_{}", k),
        );
        let (start, len) = (&view.start, &view.len);
        let lets: [syn::Stmt; 2] = [
            parse_quote!(let #s: usize = #start;),
            parse_quote!(let #n: usize = #len;),
        ];
        let _ = self.stmts(&lets);
        self.bind(name.to_string(), Self::dummy(), false);
        self.scopes.last_mut().unwrap().last_mut().unwrap().1.view =
            Some(std::rc::Rc::new(iterators::View {
                base: view.base,
                start: parse_quote!(#s),
                len: parse_quote!(#n),
            }));
    }

    /// A sub-slice `&xs[a..b]` (or a name bound to one, or a window) passed to a function: a copy of its elements (a local `Vec`
    /// whose gradient flows back into `xs` at the offset); a constant one as it is.
    pub(super) fn sub_slice_arg(&mut self, a: &Expr) -> (Operand, bool) {
        let stripped = match strip_paren(a) {
            Expr::Reference(r) => (*r.expr).clone(),
            other => other.clone(),
        };
        if let Some(view) = iterators::sub_slice(a) {
            let base = self.expr(&view.base);
            if !self.active(&base) {
                return (self.inactive(a, true), false);
            }
        } else if self.view_of(&stripped).is_none() {
            return (self.expr(a), false);
        }
        let k = self.vars.len();
        let v = format_ident!("__symgrad_sub_{}", k, span = a.span());
        let chain: Expr = syn::parse_quote_spanned!(a.span()=> (#stripped).iter());
        self.let_collect(&v.to_string(), None, &chain, a.span());
        (self.expr(&parse_quote!(#v)), true)
    }
}

impl Lowerer {
    /// `e` reads a name bound to a value that carries a gradient (not through a field:
    /// `self.n as f64` reads an integer field).
    pub(super) fn reads_active(&self, e: &Expr) -> bool {
        struct Find<'l>(&'l Lowerer, bool);
        impl syn::visit::Visit<'_> for Find<'_> {
            fn visit_expr(&mut self, e: &Expr) {
                match e {
                    Expr::Path(p) => {
                        if let Some(id) = p.path.get_ident()
                            && id != "self"
                            && let Some(b) = self.0.lookup(&id.to_string())
                            && let Operand::Var(v) = b.op
                            && self.0.vars[v].active
                        {
                            self.1 = true;
                        }
                    }
                    Expr::Field(_) | Expr::Closure(_) => {}
                    // `xs.len()`: an integer.
                    Expr::MethodCall(m)
                        if STRUCTURAL_METHODS.contains(&m.method.to_string().as_str()) => {}
                    _ => syn::visit::visit_expr(self, e),
                }
            }
        }
        let mut f = Find(self, false);
        syn::visit::Visit::visit_expr(&mut f, e);
        f.1
    }

    /// `*a` for an element `a` of `iter_mut`: the element of the array, `v[p]`.
    pub(super) fn deref_view(&self, left: &Expr) -> Option<Expr> {
        match strip_paren(left) {
            Expr::Unary(u) if matches!(u.op, UnOp::Deref(_)) => {
                self.view_of(&u.expr).map(|v| v.at(&parse_quote!(0usize)))
            }
            _ => None,
        }
    }
}
