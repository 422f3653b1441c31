//! Iterator chains and closures, rewritten into the loops and blocks the IR has.
//!
//! A chain (`xs.iter().zip(ys).enumerate().skip(1).map(|(i, (x, y))| ..)`) is read as a
//! length and a function from a position `p` in `0..len` to the element at `p`, built
//! from the source outwards: a slice, array or `Vec` gives `xs[p]`, a range its `p`-th
//! value; `rev`, `skip`, `take` and `step_by` change the position and length; `zip`
//! pairs two chains; `enumerate` pairs the position; `map` applies a closure. A `for`
//! loop over a chain becomes `for __p in 0..len` binding its pattern to the element; the
//! consumers `sum`, `product`, `fold` and `count` become a loop with an accumulator. A
//! closure bound with `let` is inlined at each call, in the scope where it was defined.
//! Everything is then lowered as if written by hand, so gradients flow through the
//! elements exactly as through indexing.

pub(super) use super::slices::sub_slice;
use super::*;
use std::rc::Rc;

/// A closure bound by `let name = |..| ..;`, with the bindings it captures.
pub(super) struct ClosureDef {
    pub closure: syn::ExprClosure,
    pub scopes: Scopes,
}

/// An element: one value, a tuple of elements (`zip`, `enumerate`), or a window
/// `base[start..start + len]` of a slice (`windows`), which is only indexed.
#[derive(Clone)]
enum Elem {
    One(Expr),
    Tuple(Vec<Elem>),
    Window(Box<(Expr, Expr, Expr)>),
}

/// A window of a slice bound to a name: `w[i]` is `base[start + i]`, `w.len()` is `len`.
pub(super) struct View {
    pub base: Expr,
    pub start: Expr,
    pub len: Expr,
}

const WINDOW: &str = "__symgrad_window";

/// `let w = __symgrad_window(base, start, len);`: the view it binds.
pub(super) fn window_marker(e: &Expr) -> Option<View> {
    let Expr::Call(c) = strip_paren(e) else {
        return None;
    };
    match strip_paren(&c.func) {
        Expr::Path(p) if p.path.is_ident(WINDOW) && c.args.len() == 3 => Some(View {
            base: c.args[0].clone(),
            start: c.args[1].clone(),
            len: c.args[2].clone(),
        }),
        _ => None,
    }
}

impl View {
    /// The one-element view of an `iter_mut` element (its length is the literal `1usize`,
    /// which no window or sub-slice written by a user has): the name stands for the element.
    pub fn is_element(&self) -> bool {
        matches!(&self.len, Expr::Lit(syn::ExprLit { lit: syn::Lit::Int(i), .. })
            if i.base10_digits() == "1" && i.suffix() == "usize")
    }

    /// `base[start + index]`
    pub fn at(&self, index: &Expr) -> Expr {
        let (b, s) = (&self.base, &self.start);
        parse_quote!(#b[#s + (#index)])
    }
}

type ElemFn = Rc<dyn Fn(&Expr) -> Elem>;

/// A chain as a length and an element at each position.
#[derive(Clone)]
struct Seq {
    len: Expr,
    elem: ElemFn,
}

/// The methods that make or adapt an iterator.
const ITER_METHODS: &[&str] = &[
    "iter_mut",
    "windows",
    "chunks",
    "chunks_exact",
    "iter",
    "into_iter",
    "copied",
    "cloned",
    "enumerate",
    "zip",
    "rev",
    "skip",
    "take",
    "step_by",
    "map",
];

/// Iterator adaptors with no rule here (their length depends on the values): an error that
/// says what to write instead.
const UNSUPPORTED_ADAPTORS: &[&str] = &[
    "filter",
    "filter_map",
    "flat_map",
    "flatten",
    "take_while",
    "skip_while",
    "map_while",
    "scan",
    "chain",
    "peekable",
    "inspect",
    "cycle",
];

/// The marker under which generated constant code is lowered as one opaque expression.
const INACTIVE: &str = "__symgrad_inactive";

pub(super) fn inactive(e: Expr) -> Expr {
    let m = format_ident!("{}", INACTIVE);
    parse_quote!(#m(#e))
}

/// `e` is the marker call: its argument.
pub(super) fn inactive_marker(c: &syn::ExprCall) -> Option<&Expr> {
    match strip_paren(&c.func) {
        Expr::Path(p) if p.path.is_ident(INACTIVE) && c.args.len() == 1 => c.args.first(),
        _ => None,
    }
}

/// An iterator chain (not a container: `m.sum()` on a matrix is not a chain).
pub(super) fn is_chain(e: &Expr) -> bool {
    match strip_paren(e) {
        // `map`, `copied` and `cloned` of a matrix or an array are not iterator adaptors.
        Expr::MethodCall(m)
            if matches!(m.method.to_string().as_str(), "map" | "copied" | "cloned") =>
        {
            is_chain(&m.receiver)
        }
        Expr::MethodCall(m) => {
            let name = m.method.to_string();
            ITER_METHODS.contains(&name.as_str())
                || UNSUPPORTED_ADAPTORS.contains(&name.as_str()) && is_chain(&m.receiver)
        }
        Expr::Range(r) => r.start.is_some() && r.end.is_some(),
        _ => false,
    }
}

fn error(node: &impl ToTokens, msg: &str) -> syn::Error {
    err_node(node, msg)
}

/// The chain of `e`; a value that is not a chain is a container (`xs`, `&xs`, `model.w`).
fn seq(e: &Expr) -> Result<Seq, syn::Error> {
    let e = strip_paren(e);
    match e {
        // `for a in &mut v`: `v.iter_mut()`.
        Expr::Reference(r) if r.mutability.is_some() => {
            let v = &r.expr;
            seq(&parse_quote!(#v.iter_mut()))
        }
        Expr::Range(r) if r.start.is_some() && r.end.is_some() => {
            let range = e.clone();
            Ok(Seq {
                len: inactive(parse_quote!(::core::iter::Iterator::size_hint(&(#range)).0)),
                elem: Rc::new(move |p| {
                    Elem::One(inactive(parse_quote!(
                        ::core::iter::Iterator::nth(&mut (#range), #p).unwrap()
                    )))
                }),
            })
        }
        Expr::MethodCall(m) if is_chain(e) => {
            let name = m.method.to_string();
            let arg =
                |k: usize| -> Result<Expr, syn::Error> {
                    m.args.iter().nth(k).cloned().ok_or_else(|| {
                        error(&m.method, &format!("`{name}` needs an argument here"))
                    })
                };
            let inner = || -> Result<Seq, syn::Error> {
                if is_chain(&m.receiver) {
                    seq(&m.receiver)
                } else {
                    Ok(container(&m.receiver))
                }
            };
            match name.as_str() {
                n if UNSUPPORTED_ADAPTORS.contains(&n) => Err(error(
                    &m.method,
                    &format!(
                        "`{n}` is not supported in a #[differentiable] fn (the number of elements it yields depends on their values); write a `for` loop over the elements with an `if` (`for &x in xs {{ if x > 0.0 {{ s += x; }} }}`)"
                    ),
                )),
                "iter" | "into_iter" | "copied" | "cloned" => inner(),
                // Each element a one-element view of a local array or `Vec`: `*a = v` and
                // `*a += v` write `xs[p]`, `*a` reads it.
                "iter_mut" => {
                    let base = match strip_paren(&m.receiver) {
                        Expr::Reference(r) => (*r.expr).clone(),
                        other => other.clone(),
                    };
                    if is_chain(&base) || sub_slice(&base).is_some() {
                        return Err(error(
                            &m.method,
                            "`iter_mut` is supported on a local array or `Vec` (`v.iter_mut()`)",
                        ));
                    }
                    Ok(Seq {
                        len: inactive(parse_quote!((#base).len())),
                        elem: Rc::new(move |p| {
                            Elem::Window(Box::new((base.clone(), p.clone(), parse_quote!(1usize))))
                        }),
                    })
                }
                "windows" => {
                    let k = arg(0)?;
                    let base = slice_receiver(m, &name)?;
                    let k2 = k.clone();
                    Ok(Seq {
                        len: inactive(parse_quote!((#base).len().saturating_sub(#k - 1))),
                        elem: Rc::new(move |p| {
                            Elem::Window(Box::new((base.clone(), p.clone(), k2.clone())))
                        }),
                    })
                }
                "chunks" | "chunks_exact" => {
                    let k = arg(0)?;
                    let base = slice_receiver(m, &name)?;
                    let exact = name == "chunks_exact";
                    let len: Expr = if exact {
                        parse_quote!((#base).len() / (#k))
                    } else {
                        parse_quote!((#base).len().div_ceil(#k))
                    };
                    Ok(Seq {
                        len: inactive(len),
                        elem: Rc::new(move |p| {
                            let start: Expr = inactive(parse_quote!(#p * (#k)));
                            // The last chunk may be shorter.
                            let n: Expr = if exact {
                                k.clone()
                            } else {
                                inactive(
                                    parse_quote!(::core::cmp::min(#k, (#base).len() - #p * (#k))),
                                )
                            };
                            Elem::Window(Box::new((base.clone(), start, n)))
                        }),
                    })
                }
                "enumerate" => {
                    let s = inner()?;
                    let elem = s.elem.clone();
                    Ok(Seq {
                        len: s.len,
                        elem: Rc::new(move |p| Elem::Tuple(vec![Elem::One(p.clone()), elem(p)])),
                    })
                }
                "zip" => {
                    let (a, b) = (inner()?, seq(&arg(0)?)?);
                    let (la, lb) = (a.len, b.len);
                    let (ea, eb) = (a.elem, b.elem);
                    Ok(Seq {
                        len: inactive(parse_quote!(::core::cmp::min(#la, #lb))),
                        elem: Rc::new(move |p| Elem::Tuple(vec![ea(p), eb(p)])),
                    })
                }
                "rev" => {
                    let s = inner()?;
                    let (len, elem) = (s.len.clone(), s.elem);
                    Ok(Seq {
                        len: s.len,
                        elem: Rc::new(move |p| elem(&inactive(parse_quote!(#len - 1 - #p)))),
                    })
                }
                "skip" => {
                    let (s, k) = (inner()?, arg(0)?);
                    let (len, elem) = (s.len, s.elem);
                    let k2 = k.clone();
                    Ok(Seq {
                        len: inactive(parse_quote!((#len).saturating_sub(#k))),
                        elem: Rc::new(move |p| elem(&inactive(parse_quote!(#p + #k2)))),
                    })
                }
                "take" => {
                    let (s, k) = (inner()?, arg(0)?);
                    let len = s.len;
                    Ok(Seq {
                        len: inactive(parse_quote!(::core::cmp::min(#len, #k))),
                        elem: s.elem,
                    })
                }
                "step_by" => {
                    let (s, k) = (inner()?, arg(0)?);
                    let (len, elem) = (s.len, s.elem);
                    let k2 = k.clone();
                    Ok(Seq {
                        len: inactive(parse_quote!((#len + #k - 1) / #k)),
                        elem: Rc::new(move |p| elem(&inactive(parse_quote!(#p * #k2)))),
                    })
                }
                "map" => {
                    let (s, f) = (inner()?, arg(0)?);
                    check_callable(&f)?;
                    let elem = s.elem;
                    let f = Rc::new(f);
                    Ok(Seq {
                        len: s.len,
                        elem: Rc::new(move |p| Elem::One(apply(&f, &[elem(p)]))),
                    })
                }
                _ => unreachable!(),
            }
        }
        Expr::MethodCall(m) => Err(error(
            &m.method,
            &format!(
                "`{}` is not supported as an iterator in a #[differentiable] fn; supported: a slice, array or `Vec` (`xs`, `&xs`, `xs.iter()`), a range, and {}",
                m.method,
                ITER_METHODS.join(", ")
            ),
        )),
        other => Ok(container(other)),
    }
}

/// A slice, array, `Vec` or vector: `len()` elements, `xs[p]`; a sub-slice `xs[a..b]`:
/// `b - a` elements, `xs[a + p]`.
fn container(e: &Expr) -> Seq {
    let e = match strip_paren(e) {
        Expr::Reference(r) => (*r.expr).clone(),
        other => other.clone(),
    };
    if let Some(v) = sub_slice(&e) {
        let len = v.len.clone();
        return Seq {
            len: inactive(len),
            elem: Rc::new(move |p| Elem::One(v.at(p))),
        };
    }
    let e2 = e.clone();
    Seq {
        len: parse_quote!((#e).len()),
        elem: Rc::new(move |p| Elem::One(parse_quote!(#e2[#p]))),
    }
}

/// A closure literal, or the name of a closure or function.
fn check_callable(f: &Expr) -> Result<(), syn::Error> {
    match strip_paren(f) {
        Expr::Closure(c) => check_closure(c),
        Expr::Path(_) => Ok(()),
        other => Err(error(
            other,
            "an iterator adaptor in a #[differentiable] fn takes a closure (`|x| ..`) or the name of a function",
        )),
    }
}

/// What a closure may do when it is inlined: no `return` (it would leave the function),
/// no assignment to a captured variable, no `async`/`move` effects that matter.
pub(super) fn check_closure(c: &syn::ExprClosure) -> Result<(), syn::Error> {
    struct Find(Option<syn::Error>);
    impl syn::visit::Visit<'_> for Find {
        fn visit_expr(&mut self, e: &Expr) {
            if self.0.is_some() {
                return;
            }
            match e {
                Expr::Return(r) => {
                    self.0 = Some(error(
                        r,
                        "`return` inside a closure is not supported in a #[differentiable] fn; give the closure one expression as its value",
                    ));
                }
                Expr::Assign(a) => {
                    self.0 = Some(error(
                        a,
                        "a closure that assigns is not supported in a #[differentiable] fn; compute the new value as the closure's result",
                    ));
                }
                Expr::Binary(b) if is_compound_assign(&b.op) => {
                    self.0 = Some(error(
                        b,
                        "a closure that assigns is not supported in a #[differentiable] fn; compute the new value as the closure's result",
                    ));
                }
                Expr::Closure(_) => {}
                _ => syn::visit::visit_expr(self, e),
            }
        }
        fn visit_item(&mut self, _: &syn::Item) {}
    }
    if let Some(a) = &c.asyncness {
        return Err(error(
            a,
            "async closures are not supported in a #[differentiable] fn",
        ));
    }
    let mut f = Find(None);
    syn::visit::Visit::visit_expr(&mut f, &c.body);
    f.0.map_or(Ok(()), Err)
}

/// `f(args)` as an expression: a closure literal becomes a block binding its parameters.
fn apply(f: &Expr, args: &[Elem]) -> Expr {
    match strip_paren(f) {
        Expr::Closure(c) => {
            let mut stmts: Vec<syn::Stmt> = Vec::new();
            for (pat, a) in c.inputs.iter().zip(args) {
                bind_pat(pat, a, &mut stmts);
            }
            let body = &c.body;
            parse_quote!({ #(#stmts)* #body })
        }
        path => {
            let args: Vec<Expr> = args.iter().map(elem_expr).collect();
            parse_quote!(#path(#(#args),*))
        }
    }
}

/// An element as one expression (a tuple element as a tuple expression).
fn elem_expr(e: &Elem) -> Expr {
    match e {
        Elem::One(e) => e.clone(),
        Elem::Window(w) => {
            let (b, s, l) = &**w;
            let m = format_ident!("{}", WINDOW);
            parse_quote!(#m(#b, #s, #l))
        }
        Elem::Tuple(es) => {
            let es: Vec<Expr> = es.iter().map(elem_expr).collect();
            parse_quote!((#(#es,)*))
        }
    }
}

/// `let pat = elem;` as statements, destructuring tuples of elements statically. A
/// pattern that does not fit is left to `let` (and its error).
fn bind_pat(pat: &Pat, elem: &Elem, out: &mut Vec<syn::Stmt>) {
    match (pat, elem) {
        (Pat::Reference(r), _) => bind_pat(&r.pat, elem, out),
        (Pat::Paren(p), _) => bind_pat(&p.pat, elem, out),
        (Pat::Wild(_), _) => {}
        (Pat::Tuple(t), Elem::Tuple(es)) if t.elems.len() == es.len() => {
            for (p, e) in t.elems.iter().zip(es) {
                bind_pat(p, e, out);
            }
        }
        (Pat::Type(pt), Elem::One(e)) if matches!(&*pt.pat, Pat::Ident(_)) => {
            out.push(parse_quote!(let #pat = #e;));
        }
        (Pat::Type(pt), _) => bind_pat(&pt.pat, elem, out),
        (Pat::Ident(pi), Elem::Window(..)) if pi.subpat.is_none() => {
            let (id, e) = (&pi.ident, elem_expr(elem));
            out.push(parse_quote!(let #id = #e;));
        }
        (Pat::Ident(pi), Elem::One(e)) if pi.subpat.is_none() => {
            let id = &pi.ident;
            match &pi.mutability {
                Some(_) => out.push(parse_quote!(let mut #id = #e;)),
                None => out.push(parse_quote!(let #id = #e;)),
            }
        }
        (p, e) => {
            let e = elem_expr(e);
            out.push(parse_quote!(let #p = #e;));
        }
    }
}

impl Lowerer {
    fn fresh_iter(&mut self) -> usize {
        self.loops += 1;
        self.loops
    }

    /// `for pat in chain { body }` as `for __p in 0..len { let pat = elem(__p); body }`.
    pub(super) fn lower_iter_for(&mut self, f: &syn::ExprForLoop) -> Option<Operand> {
        let s = match seq(&f.expr) {
            Ok(s) => s,
            Err(e) => {
                self.errors.push(e);
                return None;
            }
        };
        let k = self.fresh_iter();
        let (n, p) = (format_ident!("__n_{}", k), format_ident!("__p_{}", k));
        let len = &s.len;
        let mut stmts: Vec<syn::Stmt> = Vec::new();
        bind_pat(&f.pat, &(s.elem)(&parse_quote!(#p)), &mut stmts);
        stmts.extend(f.body.stmts.iter().cloned());
        let label = &f.label;
        let block: Expr = parse_quote!({
            let #n = #len;
            #label for #p in 0..#n { #(#stmts)* }
        });
        let Expr::Block(b) = block else {
            unreachable!()
        };
        let [syn::Stmt::Local(l), syn::Stmt::Expr(Expr::ForLoop(fl), _)] = &b.block.stmts[..]
        else {
            unreachable!()
        };
        self.local(l);
        self.lower_for(fl)
    }

    /// `chain.sum()`, `.product()`, `.fold(init, f)`, `.count()` as a loop; `None` when
    /// `m` is not such a consumer of a chain.
    pub(super) fn iter_consumer(&mut self, m: &syn::ExprMethodCall) -> Option<Operand> {
        let name = m.method.to_string();
        if !matches!(name.as_str(), "sum" | "product" | "fold" | "count") || !is_chain(&m.receiver)
        {
            return None;
        }
        let s = match seq(&m.receiver) {
            Ok(s) => s,
            Err(e) => {
                self.errors.push(e);
                return Some(Self::dummy());
            }
        };
        let k = self.fresh_iter();
        let (n, p, acc) = (
            format_ident!("__n_{}", k),
            format_ident!("__p_{}", k),
            format_ident!("__acc_{}", k),
        );
        let len = &s.len;
        if name == "count" {
            return Some(self.expr(&inactive(len.clone())));
        }
        let e = (s.elem)(&parse_quote!(#p));
        let turbofish = m.turbofish.as_ref().and_then(|t| t.args.first());
        let ty = turbofish.map(|t| quote!(: #t));
        let (init, step): (Expr, syn::Stmt) = match name.as_str() {
            "sum" | "product" => {
                let Elem::One(e) = e else {
                    self.errors.push(error(&m.method, &format!("`{name}` of pairs: map each pair to one value first (`.map(|(a, b)| a * b)`)")));
                    return Some(Self::dummy());
                };
                // `0.0`/`1.0`, or `T::zero()`/`T::one()` in a function generic over `T`.
                let generic = turbofish
                    .and_then(|t| match t {
                        syn::GenericArgument::Type(Type::Path(p)) => p.path.get_ident().cloned(),
                        _ => None,
                    })
                    .filter(|t| t != "f32" && t != "f64")
                    .or_else(generic_float);
                match (name == "sum", generic) {
                    (true, None) => (parse_quote!(0.0), parse_quote!(#acc += #e;)),
                    (true, Some(t)) => (parse_quote!(#t::zero()), parse_quote!(#acc += #e;)),
                    (false, None) => (parse_quote!(1.0), parse_quote!(#acc *= #e;)),
                    (false, Some(t)) => (parse_quote!(#t::one()), parse_quote!(#acc *= #e;)),
                }
            }
            _ => {
                let (Some(init), Some(f)) = (m.args.first(), m.args.iter().nth(1)) else {
                    self.errors.push(error(
                        &m.method,
                        "`fold` takes an initial value and a closure",
                    ));
                    return Some(Self::dummy());
                };
                if let Err(err) = check_callable(f) {
                    self.errors.push(err);
                    return Some(Self::dummy());
                }
                let call = apply(f, &[Elem::One(parse_quote!(#acc)), e]);
                // An untyped float literal seed (`0.0`) whose closure parameter has no type
                // either: the function's float type, so that methods on it resolve.
                let untyped_seed = matches!(strip_paren(init), Expr::Lit(syn::ExprLit { lit: syn::Lit::Float(l), .. }) if l.suffix().is_empty());
                let untyped_param = match (strip_paren(f), ty.is_none()) {
                    (Expr::Closure(c), true) => !matches!(c.inputs.first(), Some(Pat::Type(_))),
                    _ => false,
                };
                if untyped_seed
                    && untyped_param
                    && let Some(t) = return_float()
                {
                    (parse_quote!(#init as #t), parse_quote!(#acc = #call;))
                } else {
                    (init.clone(), parse_quote!(#acc = #call;))
                }
            }
        };
        let block: Expr = parse_quote!({
            let #n = #len;
            let mut #acc #ty = #init;
            for #p in 0..#n { #step }
            #acc
        });
        Some(self.expr(&block))
    }

    /// A call of a closure bound with `let`: its body, lowered where it was defined with
    /// the parameters bound to the arguments (lowered here).
    pub(super) fn inline_closure(
        &mut self,
        def: &ClosureDef,
        args: &syn::punctuated::Punctuated<Expr, syn::Token![,]>,
        call: &Expr,
    ) -> Operand {
        let c = &def.closure;
        if c.inputs.len() != args.len() {
            return self.unsupported_node(
                call,
                &format!(
                    "this closure takes {} arguments but {} were given",
                    c.inputs.len(),
                    args.len()
                ),
            );
        }
        let ops: Vec<Operand> = args.iter().map(|a| self.expr(a)).collect();
        let saved = std::mem::replace(&mut self.scopes, def.scopes.clone());
        self.scopes.push(Vec::new());
        for (pat, op) in c.inputs.iter().zip(ops) {
            let mut pat = pat;
            loop {
                pat = match pat {
                    Pat::Type(t) => &t.pat,
                    Pat::Reference(r) => &r.pat,
                    Pat::Paren(p) => &p.pat,
                    _ => break,
                };
            }
            match pat {
                Pat::Ident(pi) if pi.subpat.is_none() => {
                    self.bind(pi.ident.to_string(), op, pi.mutability.is_some())
                }
                Pat::Wild(_) => {}
                other => {
                    self.errors.push(err_node(
                        other,
                        "closure parameters must be names (`|x, y| ..`) in a #[differentiable] fn",
                    ));
                }
            }
        }
        let v = self.expr(&c.body);
        self.scopes = saved;
        v
    }

    /// `let name = |..| ..;`: remembered, inlined where it is called.
    pub(super) fn bind_closure(&mut self, name: String, c: &syn::ExprClosure) {
        if let Err(e) = check_closure(c) {
            self.errors.push(e);
            return;
        }
        let def = Rc::new(ClosureDef {
            closure: c.clone(),
            scopes: self.scopes.clone(),
        });
        self.bind(name, Self::dummy(), false);
        self.scopes
            .last_mut()
            .unwrap()
            .last_mut()
            .unwrap()
            .1
            .closure = Some(def);
    }
}

/// The slice, array or `Vec` that `windows`/`chunks`/`chunks_exact` (`name`) is called on
/// (`xs.windows(2)`, `(&xs).chunks(2)`); an iterator chain there is a spanned error.
fn slice_receiver(m: &syn::ExprMethodCall, name: &str) -> syn::Result<Expr> {
    let base = match strip_paren(&m.receiver) {
        Expr::Reference(r) => (*r.expr).clone(),
        other => other.clone(),
    };
    if is_chain(&base) {
        return Err(error(
            &m.method,
            &format!("`{name}` is supported on a slice, array or `Vec` (`xs.{name}(2)`)"),
        ));
    }
    Ok(base)
}
