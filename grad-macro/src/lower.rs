//! Lowering: the body of a `#[differentiable]` fn to the IR, one operation per step.
//! Unsupported syntax is rejected here, with an error on the offending tokens.

#[path = "elementwise.rs"]
mod elementwise;
pub use elementwise::MapClosure;

use crate::args::Args;
use crate::ir::*;
use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use std::collections::HashMap;
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{BinOp, Expr, FnArg, Ident, ItemFn, Pat, ReturnType, Type, UnOp, parse_quote};

mod branches;
mod exits;
mod iterators;
mod locals;
mod rename;
mod returns;
mod slices;
use slices::{
    SLICE_METHODS, cast_float_target, collect_span, collected_chain, copied_slice, first_or_last,
    let_else,
};

/// A parameter of the differentiated function.
pub struct Param {
    pub ident: Ident,
    /// The declared type (`Self` or `&Self` for a receiver).
    pub ty: Type,
    pub active: bool,
    pub var: VarId,
}

/// The lowered function.
pub struct Function {
    pub params: Vec<Param>,
    pub vars: Vec<VarInfo>,
    pub body: Block,
    /// Items declared in the body (`const`, `fn`, `use`), copied into the generated fns.
    pub items: Vec<syn::Stmt>,
    /// Explicit types of `let` bindings, by value.
    pub types: HashMap<VarId, Type>,
}

#[derive(Clone)]
struct Binding {
    op: Operand,
    mutable: bool,
    is_param: bool,
    /// The type written in its `let` (`let mut c: f32 = ..`): values assigned to it later
    /// get it too, so that rustc does not see an untyped float literal.
    ty: Option<Type>,
    /// A closure bound by `let`, inlined where it is called.
    closure: Option<std::rc::Rc<iterators::ClosureDef>>,
    /// A window of a slice (`for w in xs.windows(2)`): indexed into the slice.
    view: Option<std::rc::Rc<iterators::View>>,
}

type Scopes = Vec<Vec<(String, Binding)>>;

struct Lowerer {
    /// The function's name (a call of it is recursion).
    fn_name: Ident,
    vars: Vec<VarInfo>,
    scopes: Scopes,
    errors: Vec<syn::Error>,
    items: Vec<syn::Stmt>,
    types: HashMap<VarId, Type>,
    cur: Vec<Stmt>,
    diverged: bool,
    next_id: usize,
    /// Values known to be scalars (f32/f64): `s * w.transpose()` with a scalar `s` is a
    /// scaling, not a matrix product.
    scalars: std::collections::HashSet<VarId>,
    /// Values whose name is already written into tokens (conditions, ranges, constant
    /// code): they keep that name.
    named: std::collections::HashSet<VarId>,
    /// Loops lowered so far (numbers their flags).
    loops: usize,
    /// Labels given to nested loops that an exit leaves.
    labels: usize,
}

struct Snapshot {
    vars: usize,
    errors: usize,
    items: usize,
    scopes: Scopes,
    next_id: usize,
}

const SUPPORTED_METHODS: &str = "sin, cos, tan, asin, acos, atan, atan2, sinh, cosh, tanh, exp, exp2, ln, log10, log2, log, sqrt, cbrt, exp_m1, ln_1p, asinh, acosh, atanh, powi, powf, abs, max, min, hypot, recip, mul_add, signum, clamp, to_radians, to_degrees, sin_cos, clone, and on matrices transpose, sum, mean, component_mul, dot, norm, norm_squared, map(|v| ..)";

/// Float methods lowered to others with the same value (`Lowerer::float_sugar`).
const FLOAT_SUGAR: &[&str] = &["clamp", "to_radians", "to_degrees", "sin_cos"];

/// Float methods that exist but have no rule here.
const UNSUPPORTED_FLOAT_METHODS: &[&str] = &[
    "floor",
    "ceil",
    "round",
    "trunc",
    "fract",
    "rem_euclid",
    "div_euclid",
    "copysign",
    "powi_checked",
    "sqrt_checked",
];

/// nalgebra methods that exist but have no rule here.
const UNSUPPORTED_MATRIX_METHODS: &[&str] = &[
    "map",
    "apply",
    "zip_map",
    "tr_mul",
    "ad_mul",
    "tr_dot",
    "normalize",
    "try_inverse",
    "determinant",
    "column",
    "row",
    "rows",
    "columns",
    "view",
    "iter",
    "iter_mut",
    "into_iter",
    "component_div",
    "add_scalar",
    "kronecker",
    "max",
    "min",
    "amax",
    "variance",
    "row_sum",
    "column_sum",
    "row_mean",
    "column_mean",
    "fill",
    "set_column",
    "set_row",
];

/// Methods that read the structure of a value, not its numbers: never differentiated.
const STRUCTURAL_METHODS: &[&str] = &["len", "nrows", "ncols", "shape", "is_empty", "count"];

pub(crate) fn is_constant_type(ty: &Type) -> bool {
    match ty {
        Type::Reference(r) => is_constant_type(&r.elem),
        Type::Slice(s) => is_constant_type(&s.elem),
        Type::Array(a) => is_constant_type(&a.elem),
        Type::Paren(p) => is_constant_type(&p.elem),
        Type::Path(p) => {
            let Some(last) = p.path.segments.last() else {
                return false;
            };
            let name = last.ident.to_string();
            // An `Option` (`scale: Option<f64>`) is a setting, read by `if let`/`match`.
            NON_FLOAT_TYPES.contains(&name.as_str())
                || name == "Option"
                || name == "Vec"
                    && match &last.arguments {
                        syn::PathArguments::AngleBracketed(a) => a.args.iter().all(|g| match g {
                            syn::GenericArgument::Type(t) => is_constant_type(t),
                            _ => true,
                        }),
                        _ => false,
                    }
        }
        _ => false,
    }
}

fn strip(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => strip(&p.expr),
        Expr::Group(g) => strip(&g.expr),
        Expr::Reference(r) => strip(&r.expr),
        _ => e,
    }
}

/// `e.transpose()` -> `e`
fn as_transpose(e: &Expr) -> Option<&Expr> {
    match strip(e) {
        Expr::MethodCall(m) if m.method == "transpose" && m.args.is_empty() => Some(&m.receiver),
        _ => None,
    }
}

fn err(span: Span, msg: impl std::fmt::Display) -> syn::Error {
    syn::Error::new(span, msg)
}

/// An error on every token of `node` (not only its first).
fn err_node(node: &impl ToTokens, msg: impl std::fmt::Display) -> syn::Error {
    syn::Error::new_spanned(node, msg)
}

/// Lowers `func`: checks the signature, decides which parameters are active, and turns the
/// body into the IR. Every error found is returned, not only the first.
pub fn lower(func: &ItemFn, args: &Args) -> Result<Function, Vec<syn::Error>> {
    let mut l = Lowerer {
        fn_name: func.sig.ident.clone(),
        vars: Vec::new(),
        scopes: vec![Vec::new()],
        errors: Vec::new(),
        items: Vec::new(),
        types: HashMap::new(),
        cur: Vec::new(),
        diverged: false,
        next_id: 0,
        scalars: std::collections::HashSet::new(),
        named: std::collections::HashSet::new(),
        loops: 0,
        labels: 0,
    };
    let sig = &func.sig;
    if let Some(t) = &sig.unsafety {
        l.errors.push(err(
            t.span,
            "`unsafe fn` cannot be #[differentiable]; keep the unsafe code in a helper with a hand-written `_vjp`",
        ));
    }
    if let Some(t) = &sig.asyncness {
        l.errors
            .push(err(t.span, "`async fn` cannot be #[differentiable]"));
    }
    let float_params = float_type_params(&sig.generics);
    for g in &sig.generics.params {
        match g {
            syn::GenericParam::Type(t) if float_params.contains(&t.ident.to_string()) => {}
            syn::GenericParam::Lifetime(_) => {}
            other => l.errors.push(err_node(other,
                "a #[differentiable] fn can be generic over its float type only: `fn f<T: Float>(x: T, ..)` with `num_traits::Float` (re-exported as `symgrad::num_traits::Float`); other generic parameters are not supported",
            )),
        }
    }
    FLOAT_PARAMS.with(|f| *f.borrow_mut() = float_params);
    RETURN_FLOAT.with(|r| {
        *r.borrow_mut() = match &sig.output {
            ReturnType::Type(_, t) if cast_float_target(t).is_some() => Some((**t).clone()),
            _ => None,
        }
    });
    if let Some(w) = &sig.generics.where_clause {
        l.errors.push(err_node(
            &w,
            "`where` clauses are not supported by #[differentiable]; write the bound on the parameter (`<T: Float>`)",
        ));
    }
    if let Some(v) = &sig.variadic {
        l.errors
            .push(err(v.span(), "variadic functions are not supported"));
    }
    if let ReturnType::Type(_, t) = &sig.output {
        check_tuple_result(t, &mut l.errors);
    }
    if let ReturnType::Default = sig.output {
        l.errors.push(err(
            sig.ident.span(),
            "a #[differentiable] fn must return a value (f32, f64, a matrix...)",
        ));
    }

    // Parameters.
    let mut params = Vec::new();
    for (pos, input) in sig.inputs.iter().enumerate() {
        let (ident, ty, is_ref) = match input {
            FnArg::Receiver(r) => {
                if let Some(m) = &r.mutability {
                    l.errors.push(err(
                        m.span,
                        "`&mut self` is not supported: a #[differentiable] method reads its receiver; take `&self`",
                    ));
                }
                let ty: Type = if r.reference.is_some() {
                    syn::parse_quote!(&Self)
                } else {
                    syn::parse_quote!(Self)
                };
                (
                    Ident::new("self", r.self_token.span),
                    ty,
                    r.reference.is_some(),
                )
            }
            FnArg::Typed(pt) => {
                let ident = match &*pt.pat {
                    Pat::Ident(pi) => {
                        if let Some(m) = &pi.mutability {
                            l.errors.push(err(
                                m.span,
                                "parameters of a #[differentiable] fn cannot be `mut`: a parameter is read-only; copy it into a `let mut` local",
                            ));
                        }
                        if pi.by_ref.is_some() || pi.subpat.is_some() {
                            l.errors
                                .push(err(pi.span(), "only plain parameter names are supported"));
                        }
                        pi.ident.clone()
                    }
                    other => {
                        l.errors.push(err_node(&other,
                            "only plain parameter names are supported (no patterns); destructure in a `let`",
                        ));
                        format_ident!("__bad_param_{}", pos)
                    }
                };
                if let Type::Reference(r) = &*pt.ty
                    && let Some(m) = &r.mutability
                {
                    l.errors.push(err(
                            m.span,
                            "`&mut` parameters are not supported: a #[differentiable] fn cannot mutate its inputs",
                        ));
                }
                let is_ref = matches!(&*pt.ty, Type::Reference(_));
                ((ident), (*pt.ty).clone(), is_ref)
            }
        };
        let is_self = ident == "self";
        let active = match &args.wrt {
            // A constant type named in `wrt` is an error below; it stays a constant.
            Some(list) => list.contains(&ident) && !is_constant_type(&ty),
            None => is_self || !is_constant_type(&ty),
        };
        if active && slices::nested_vec(&ty) {
            l.errors.push(err_node(&ty,
                "a collection of `Vec`s (`&[Vec<f64>]`, `Vec<Vec<f64>>`) cannot carry gradients in a #[differentiable] fn; flatten it into one slice (`&[f64]`, read `m[i * n + j]`), use arrays (`&[[f64; N]]`) or a `DMatrix`, or leave it out of `wrt(..)`",
            ));
        }
        let deps = if active {
            Deps::single(pos)
        } else {
            Deps::default()
        };
        let var = l.vars.len();
        if is_float_type(&ty) {
            l.scalars.insert(var);
        }
        l.vars.push(VarInfo {
            ident: ident.clone(),
            is_ref,
            is_place: false,
            active,
            deps,
        });
        l.scopes[0].push((
            ident.to_string(),
            Binding {
                op: Operand::Var(var),
                mutable: false,
                is_param: true,
                ty: None,
                closure: None,
                view: None,
            },
        ));
        params.push(Param {
            ident,
            ty,
            active,
            var,
        });
    }
    if let Some(list) = &args.wrt {
        for w in list {
            match params.iter().find(|p| p.ident == *w) {
                None => l.errors.push(err_node(&w,
                    format!("`{w}` is not a parameter of this function"),
                )),
                Some(p) if is_constant_type(&p.ty) => l.errors.push(err_node(&w,
                    format!(
                        "`{w}` cannot be differentiated: its type `{}` is not a float type; only f32/f64 values, arrays, slices, matrices and parameter structs carry gradients",
                        p.ty.to_token_stream()
                    ),
                )),
                Some(_) => {}
            }
        }
    }
    if !params.iter().any(|p| p.active) && l.errors.is_empty() {
        l.errors.push(err_node(&sig.inputs,
            "no parameter to differentiate: every parameter has an integer or bool type; name the active ones with #[differentiable(wrt(..))]",
        ));
    }
    l.next_id = l.vars.len();

    // Body (with many returns, rewritten to one exit).
    let float_result = matches!(&sig.output, ReturnType::Type(_, t) if matches!(&**t, Type::Path(p) if p.path.is_ident("f32") || p.path.is_ident("f64")));
    let one_exit = match &sig.output {
        ReturnType::Type(_, t) => returns::single_exit(&func.block, t, float_result),
        ReturnType::Default => None,
    };
    let tail = l.stmts(one_exit.as_deref().unwrap_or(&func.block.stmts));
    if !l.diverged {
        match tail {
            Some(v) => {
                let span = func
                    .block
                    .stmts
                    .last()
                    .map(|s| s.span())
                    .unwrap_or_else(|| func.block.span());
                l.cur.push(Stmt::Return(v, span));
                l.diverged = true;
            }
            None if matches!(sig.output, ReturnType::Default) => {}
            None => l.errors.push(err(
                func.block.brace_token.span.close(),
                "a #[differentiable] fn must end with the value it returns",
            )),
        }
    }
    if !l.errors.is_empty() {
        return Err(l.errors);
    }
    Ok(Function {
        params,
        vars: l.vars,
        body: Block {
            stmts: l.cur,
            diverges: true,
        },
        items: l.items,
        types: l.types,
    })
}

impl Lowerer {
    fn new_var(&mut self, base: &str, active: bool, deps: Deps, is_ref: bool) -> VarId {
        let id = self.vars.len();
        let name = if base.is_empty() {
            format!("__t{id}")
        } else {
            format!(
                "__{}_{id}",
                base.trim_start_matches("r#").trim_start_matches("__")
            )
        };
        self.vars.push(VarInfo {
            ident: Ident::new(&name, Span::call_site()),
            is_ref,
            is_place: false,
            active,
            deps,
        });
        id
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            vars: self.vars.len(),
            errors: self.errors.len(),
            items: self.items.len(),
            scopes: self.scopes.clone(),
            next_id: self.next_id,
        }
    }

    fn restore(&mut self, s: Snapshot) {
        self.vars.truncate(s.vars);
        self.errors.truncate(s.errors);
        self.items.truncate(s.items);
        self.types.retain(|k, _| *k < s.vars);
        self.scalars.retain(|k| *k < s.vars);
        self.scopes = s.scopes;
        self.next_id = s.next_id;
    }

    /// The window a name is bound to.
    fn view_of(&self, e: &Expr) -> Option<std::rc::Rc<iterators::View>> {
        named_binding(&self.scopes, e).and_then(|b| b.view.clone())
    }

    fn lookup(&self, name: &str) -> Option<&Binding> {
        lookup_in(&self.scopes, name)
    }

    fn bind(&mut self, name: String, op: Operand, mutable: bool) {
        self.scopes.last_mut().unwrap().push((
            name,
            Binding {
                op,
                mutable,
                is_param: false,
                ty: None,
                closure: None,
                view: None,
            },
        ));
    }

    /// Rebinds an existing (mutable) name in the scope that declared it.
    fn rebind(&mut self, name: &str, op: Operand) {
        for scope in self.scopes.iter_mut().rev() {
            if let Some((_, b)) = scope.iter_mut().rev().find(|(n, _)| n == name) {
                b.op = op;
                return;
            }
        }
    }

    fn active(&self, o: &Operand) -> bool {
        match o {
            Operand::Var(v) => self.vars[*v].active,
            Operand::Const(_) => false,
        }
    }

    /// Known to be an f32/f64 value (constants are).
    fn is_scalar(&self, o: &Operand) -> bool {
        match o {
            Operand::Var(v) => self.scalars.contains(v),
            Operand::Const(_) => true,
        }
    }

    fn deps(&self, o: &Operand) -> Deps {
        match o {
            Operand::Var(v) => self.vars[*v].deps.clone(),
            Operand::Const(_) => Deps::default(),
        }
    }

    fn dummy() -> Operand {
        Operand::Const(syn::parse_quote!(0.0))
    }

    /// Emits `dst = op` and returns `dst`.
    fn assign(&mut self, op: Op, operands: &[&Operand], span: Span, is_ref: bool) -> Operand {
        let active = operands.iter().any(|o| self.active(o));
        let deps = operands
            .iter()
            .fold(Deps::default(), |d, o| d.union(&self.deps(o)));
        let scalar = match &op {
            Op::Math(..) | Op::Sum(_) | Op::Mean(_) | Op::Index(..) => true,
            Op::Add(..) | Op::Sub(..) | Op::Mul(..) | Op::Div(..) | Op::Neg(_) | Op::Clone(_) => {
                operands.iter().all(|o| self.is_scalar(o))
            }
            _ => false,
        };
        let dst = self.new_var("", active, deps, is_ref);
        if scalar {
            self.scalars.insert(dst);
        }
        self.cur.push(Stmt::Assign(Assign { dst, op, span }));
        Operand::Var(dst)
    }

    fn inactive(&mut self, e: &Expr, allow_active: bool) -> Operand {
        let ts = self.inactive_expr(e, allow_active);
        let dst = self.new_var("", false, Deps::default(), false);
        if matches!(strip_paren(e), Expr::Cast(c) if is_float_type(&c.ty)) {
            self.scalars.insert(dst);
        }
        self.cur.push(Stmt::Assign(Assign {
            dst,
            op: Op::Inactive(ts),
            span: e.span(),
        }));
        Operand::Var(dst)
    }

    /// Lowers the statements of a block; returns the value of its tail expression.
    fn stmts(&mut self, stmts: &[syn::Stmt]) -> Option<Operand> {
        let mut tail = None;
        for (i, s) in stmts.iter().enumerate() {
            if self.diverged {
                break;
            }
            let last = i + 1 == stmts.len();
            match s {
                syn::Stmt::Local(local) => self.local(local),
                syn::Stmt::Item(item) => self.items.push(syn::Stmt::Item(item.clone())),
                syn::Stmt::Macro(m) => self.statement_macro(&m.mac),
                syn::Stmt::Expr(Expr::Macro(m), _) if last => self.statement_macro(&m.mac),
                syn::Stmt::Expr(e, semi) => {
                    if last && semi.is_none() && !is_valueless(e) {
                        tail = Some(self.expr(e));
                    } else {
                        self.stmt_expr(e);
                    }
                }
            }
        }
        tail
    }

    /// A statement macro that produces no value (`println!`, `assert!`, ...): it runs in the
    /// forward pass as written, reading the values (not the gradients) of its arguments.
    /// Names captured in the format string (`"{s}"`) are bound to their values around it.
    fn statement_macro(&mut self, mac: &syn::Macro) {
        let name = mac
            .path
            .segments
            .last()
            .map(|s| s.ident.to_string())
            .unwrap_or_default();
        if mac.path.segments.len() != 1 || !STATEMENT_MACROS.contains(&name.as_str()) {
            self.errors.push(err_node(
                &mac.path,
                format!(
                    "`{name}!` is not supported in a #[differentiable] fn; the statement macros {} run in the forward pass; compute other values in a separate function",
                    STATEMENT_MACROS.iter().map(|m| format!("`{m}!`")).collect::<Vec<_>>().join(", ")
                ),
            ));
            return;
        }
        let args = match mac
            .parse_body_with(syn::punctuated::Punctuated::<Expr, syn::Token![,]>::parse_terminated)
        {
            Ok(a) => a,
            Err(e) => {
                self.errors.push(e);
                return;
            }
        };
        let mut renamed = Vec::new();
        let mut captures = TokenStream::new();
        for a in &args {
            if let Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(fmt),
                ..
            }) = a
            {
                for cap in format_captures(&fmt.value()) {
                    if let Some(op) = self.lookup(&cap).map(|b| b.op.clone()) {
                        let value = match &op {
                            Operand::Var(v) => {
                                self.named.insert(*v);
                                let id = &self.vars[*v].ident;
                                quote!(&#id)
                            }
                            Operand::Const(c) => quote!(&(#c)),
                        };
                        let cap = format_ident!("{}", cap);
                        captures.extend(quote!(let #cap = #value;));
                    }
                }
                renamed.push(a.to_token_stream());
            } else {
                renamed.push(self.inactive_expr(a, true));
            }
        }
        let path = &mac.path;
        let ts = quote_spanned!(mac.path.span()=> { #captures #path!(#(#renamed),*) });
        let dst = self.new_var("", false, Deps::default(), false);
        self.cur.push(Stmt::Assign(Assign {
            dst,
            op: Op::Inactive(ts),
            span: mac.path.span(),
        }));
    }

    fn local(&mut self, local: &syn::Local) {
        if let Some(desugared) = let_else(local) {
            return self.local(&desugared);
        }
        let (pat, ty) = match &local.pat {
            Pat::Type(pt) => (&*pt.pat, Some((*pt.ty).clone())),
            p => (p, None),
        };
        let (name, mutable) = match pat {
            Pat::Ident(pi) if pi.by_ref.is_none() && pi.subpat.is_none() => {
                (Some(pi.ident.to_string()), pi.mutability.is_some())
            }
            Pat::Wild(_) => (None, false),
            Pat::Tuple(_) if local.init.as_ref().is_some_and(|i| i.diverge.is_none()) => {
                return self.let_tuple(pat, &local.init.as_ref().unwrap().expr);
            }
            Pat::Slice(ps) if local.init.as_ref().is_some_and(|i| i.diverge.is_none()) => {
                return self.let_array(ps, &local.init.as_ref().unwrap().expr);
            }
            other => {
                self.errors.push(err_node(
                    &other,
                    "only `let name = ...`, `let mut name = ...` and tuples of names (`let (a, b) = (x, y);`) are supported",
                ));
                return;
            }
        };
        let Some(init) = &local.init else {
            // `let x: f64;` assigned later: the first assignment gives it its value (rustc
            // checks, on the original function, that it is assigned before it is read).
            if let Some(n) = name {
                let dummy = match &ty {
                    Some(t) if generic_float().is_some() && is_float_type(t) => {
                        Operand::Const(parse_quote!(#t::zero()))
                    }
                    _ => Self::dummy(),
                };
                self.bind(n, dummy, true);
                self.scopes.last_mut().unwrap().last_mut().unwrap().1.ty = ty;
            }
            return;
        };
        if let (Some(n), Expr::Closure(c)) = (&name, strip_paren(&init.expr)) {
            self.bind_closure(n.clone(), c);
            return;
        }
        if let (Some(n), Some(c)) = (&name, collected_chain(&init.expr))
            && init.diverge.is_none()
        {
            return self.let_collect(n, ty.as_ref(), c, collect_span(&init.expr));
        }
        // `let mut v = xs.to_vec();` of a slice that carries a gradient: a `Vec` filled by
        // `push`, as `collect` does.
        if let (Some(n), Some(xs)) = (&name, copied_slice(&init.expr))
            && init.diverge.is_none()
            && self.reads_active(xs)
        {
            let chain: Expr = parse_quote!((#xs).iter());
            return self.let_collect(n, ty.as_ref(), &chain, collect_span(&init.expr));
        }
        if let (Some(n), Some(view)) = (&name, iterators::sub_slice(&init.expr))
            && init.diverge.is_none()
            && ty.is_none()
        {
            return self.let_sub_slice(n, view);
        }
        if let (Some(n), Some(view)) = (&name, iterators::window_marker(&init.expr)) {
            self.bind(n.clone(), Self::dummy(), false);
            self.scopes.last_mut().unwrap().last_mut().unwrap().1.view = Some(view.into());
            return;
        }
        if let Some((else_tok, _)) = &init.diverge {
            self.errors.push(err(
                else_tok.span,
                "`let ... else` is not supported in a #[differentiable] fn",
            ));
            return;
        }
        let before = self.cur.len();
        let mut op = self.expr(&init.expr);
        // A fresh value gets the user's name (readable generated code) and type annotation.
        let fresh = match &op {
            Operand::Var(v) => {
                self.cur.len() > before
                    && matches!(self.cur.last(), Some(Stmt::Assign(a)) if a.dst == *v)
            }
            Operand::Const(_) => false,
        };
        // A merged constant value (`let o: Option<f64> = if c { Some(1.0) } else { None };`)
        // gets the written type through a typed copy.
        if let (Some(t), Operand::Var(v), false) = (&ty, &op, fresh)
            && !self.vars[*v].active
            && !self.types.contains_key(v)
            && !matches!(t, Type::Infer(_))
        {
            self.named.insert(*v);
            let id = self.vars[*v].ident.clone();
            let dst = self.new_var(name.as_deref().unwrap_or(""), false, Deps::default(), false);
            self.cur.push(Stmt::Assign(Assign {
                dst,
                op: Op::Inactive(quote!(#id)),
                span: init.expr.span(),
            }));
            self.types.insert(dst, t.clone());
            op = Operand::Var(dst);
        }
        if let (Some(ty), Operand::Const(c)) = (&ty, &op) {
            let dst = self.new_var(name.as_deref().unwrap_or(""), false, Deps::default(), false);
            self.cur.push(Stmt::Assign(Assign {
                dst,
                op: Op::Inactive(c.to_token_stream()),
                span: init.expr.span(),
            }));
            self.types.insert(dst, ty.clone());
            op = Operand::Var(dst);
        } else if let (true, Operand::Var(v)) = (fresh, &op) {
            if let Some(n) = name.as_ref().filter(|_| !self.named.contains(v)) {
                self.vars[*v].ident = format_ident!(
                    "__{}_{}",
                    n.trim_start_matches("r#").trim_start_matches("__"),
                    v
                );
            }
            if let Some(ty) = &ty {
                let is_call = matches!(
                    self.cur.last(),
                    Some(Stmt::Assign(Assign {
                        op: Op::Call(..),
                        ..
                    }))
                );
                if !is_call {
                    self.types.insert(*v, ty.clone());
                }
            }
        }
        if let (Some(ty), Operand::Var(v)) = (&ty, &op)
            && is_float_type(ty)
        {
            self.scalars.insert(*v);
        }
        if let Some(n) = name {
            self.bind(n, op, mutable);
            self.scopes.last_mut().unwrap().last_mut().unwrap().1.ty = ty;
        }
    }

    /// An expression in statement position.
    fn stmt_expr(&mut self, e: &Expr) {
        match e {
            Expr::Assign(a) => {
                let v = self.expr(&a.right);
                self.assign_to(&a.left, v);
            }
            Expr::Binary(b) if is_compound_assign(&b.op) => {
                let Some(cur) = self.target(&b.left) else {
                    return;
                };
                let rhs = self.expr(&b.right);
                // `a op= b` computes `a op b` (what an inactive value is computed from).
                let sp = b.op.span();
                let (op, bin_op) = match b.op {
                    BinOp::AddAssign(_) => (
                        Op::Add(cur.clone(), rhs.clone()),
                        BinOp::Add(syn::Token![+](sp)),
                    ),
                    BinOp::SubAssign(_) => (
                        Op::Sub(cur.clone(), rhs.clone()),
                        BinOp::Sub(syn::Token![-](sp)),
                    ),
                    BinOp::MulAssign(_) => (
                        Op::Mul(cur.clone(), rhs.clone()),
                        BinOp::Mul(syn::Token![*](sp)),
                    ),
                    _ => (
                        Op::Div(cur.clone(), rhs.clone()),
                        BinOp::Div(syn::Token![/](sp)),
                    ),
                };
                let computed = Expr::Binary(syn::ExprBinary {
                    attrs: Vec::new(),
                    left: Box::new(paren(&b.left)),
                    op: bin_op,
                    right: Box::new(paren(&b.right)),
                });
                let v = self.binary_op(op, &cur, &rhs, &computed);
                self.assign_to(&b.left, v);
            }
            Expr::Binary(b)
                if matches!(
                    b.op,
                    BinOp::RemAssign(_)
                        | BinOp::BitAndAssign(_)
                        | BinOp::BitOrAssign(_)
                        | BinOp::BitXorAssign(_)
                        | BinOp::ShlAssign(_)
                        | BinOp::ShrAssign(_)
                ) =>
            {
                self.errors.push(err(
                    b.op.span(),
                    "only `=`, `+=`, `-=`, `*=` and `/=` are supported in a #[differentiable] fn",
                ));
            }
            Expr::If(i) => {
                let _ = self.lower_if(i, false);
            }
            Expr::MethodCall(m)
                if m.method == "push" && m.args.len() == 1 && self.local_array(&m.receiver) =>
            {
                self.push(m);
            }
            Expr::Match(m) => {
                let _ = self.lower_match(m, false);
            }
            Expr::Block(b) if b.label.is_none() => {
                // A block statement: its value, if any, is dropped.
                self.scopes.push(Vec::new());
                let _ = self.stmts(&b.block.stmts);
                self.scopes.pop();
            }
            Expr::ForLoop(_)
            | Expr::While(_)
            | Expr::Loop(_)
            | Expr::Return(_)
            | Expr::Block(_) => {
                let _ = self.expr(e);
            }
            other => {
                let before = self.errors.len();
                let _ = self.expr(other);
                if !self.diverged && self.errors.len() == before {
                    self.errors.push(err_node(&other,
                        "this statement has no effect on the result; a #[differentiable] fn computes its value with `let`, assignments, `if`, `for` and `return`",
                    ));
                }
            }
        }
    }

    /// The current value of an assignment target, checking that it can be assigned.
    fn target(&mut self, left: &Expr) -> Option<Operand> {
        if let Some(at) = self.deref_view(left) {
            return self.target(&at);
        }
        match strip_paren(left) {
            Expr::Path(p) if p.path.segments.len() == 1 && p.qself.is_none() => {
                let name = p.path.segments[0].ident.to_string();
                match self.lookup(&name) {
                    Some(b) if b.is_param => {
                        self.errors.push(err(
                            p.span(),
                            format!("cannot assign to parameter `{name}`: parameters are read-only in a #[differentiable] fn; copy it into a `let mut` local first"),
                        ));
                        None
                    }
                    Some(b) if !b.mutable => {
                        self.errors.push(err(
                            p.span(),
                            format!("cannot assign twice to `{name}`: declare it with `let mut`"),
                        ));
                        None
                    }
                    Some(b) => Some(b.op.clone()),
                    None => {
                        self.errors.push(err(
                            p.span(),
                            format!("cannot assign to `{name}`: only local `let mut` variables can be assigned"),
                        ));
                        None
                    }
                }
            }
            Expr::Index(ix) if self.local_array(&ix.expr) => Some(self.expr(left)),
            Expr::Index(_) | Expr::Field(_) => {
                let root = root_name(left);
                let is_param = root
                    .as_ref()
                    .and_then(|n| self.lookup(n))
                    .is_some_and(|b| b.is_param);
                let msg = if is_param {
                    format!(
                        "cannot assign into parameter `{}`: parameters are read-only in a #[differentiable] fn",
                        root.unwrap_or_default()
                    )
                } else if matches!(strip_paren(left), Expr::Index(ix) if matches!(strip_paren(&ix.expr), Expr::Index(_)))
                {
                    "assignment into a nested array (`m[i][j] = v`) is not supported in a #[differentiable] fn; keep the matrix in a flat array or `Vec` (`m[i * n + j] = v`)".to_string()
                } else {
                    "assignment to an element or a field is not supported in a #[differentiable] fn; compute a new value with `let`".to_string()
                };
                self.errors.push(err_node(&left, msg));
                None
            }
            other => {
                self.errors
                    .push(err_node(&other, "unsupported assignment target"));
                None
            }
        }
    }

    fn assign_to(&mut self, left: &Expr, mut v: Operand) {
        if let Some(at) = self.deref_view(left) {
            return self.assign_to(&at, v);
        }
        if let Expr::Index(ix) = strip_paren(left)
            && self.local_array(&ix.expr)
        {
            return self.set_index(ix, v);
        }
        if self.target(left).is_some()
            && let Expr::Path(p) = strip_paren(left)
        {
            let name = p.path.segments[0].ident.to_string();
            if let (Some(_), Operand::Const(c)) =
                (self.lookup(&name).and_then(|b| b.ty.clone()), &v)
            {
                // `c = 1.5;` for `let mut c: f32`: a typed value, not a bare literal.
                let dst = self.new_var(&name, false, Deps::default(), false);
                self.cur.push(Stmt::Assign(Assign {
                    dst,
                    op: Op::Inactive(c.to_token_stream()),
                    span: c.span(),
                }));
                v = Operand::Var(dst);
            }
            if let Operand::Var(id) = &v {
                if self.vars[*id].ident.to_string().starts_with("__t") && !self.named.contains(id) {
                    self.vars[*id].ident = format_ident!(
                        "__{}_{}",
                        name.trim_start_matches("r#").trim_start_matches("__"),
                        id
                    );
                }
                // A value computed here for a name declared with a type gets the type.
                let declared = self.lookup(&name).and_then(|b| b.ty.clone());
                let fresh = matches!(
                    self.cur.last(),
                    Some(Stmt::Assign(a)) if a.dst == *id && !matches!(a.op, Op::Call(..))
                );
                if let (Some(ty), true) = (declared, fresh) {
                    if is_float_type(&ty) {
                        self.scalars.insert(*id);
                    }
                    self.types.entry(*id).or_insert(ty);
                }
            }
            self.rebind(&name, v);
        }
    }

    fn binary_op(&mut self, op: Op, a: &Operand, b: &Operand, e: &Expr) -> Operand {
        if !self.active(a) && !self.active(b) {
            return self.inactive(e, true);
        }
        self.assign(op, &[a, b], e.span(), false)
    }

    fn expr(&mut self, e: &Expr) -> Operand {
        if self.diverged {
            return Self::dummy();
        }
        match e {
            Expr::Lit(_) => Operand::Const(e.clone()),
            Expr::Path(p) => {
                if p.qself.is_none() && p.path.segments.len() == 1 {
                    let name = p.path.segments[0].ident.to_string();
                    if let Some(b) = self.lookup(&name) {
                        if let Some(v) = b.view.clone() {
                            // An element of `iter_mut` read as a value (`t.sin()`): the element.
                            if v.is_element() {
                                return self.expr(&v.at(&parse_quote!(0usize)));
                            }
                            return self.unsupported_node(p, "a window or sub-slice (`xs.windows(k)`, `&xs[a..b]`) can only be indexed (`w[0]`), measured (`w.len()`), iterated (`w.iter()`) or passed to a function in a #[differentiable] fn");
                        }
                        if b.closure.is_some() {
                            return self.unsupported_node(p, "a closure can only be called (`f(x)`) or passed to an iterator adaptor in a #[differentiable] fn; write a #[differentiable] fn to pass it to other functions");
                        }
                        return b.op.clone();
                    }
                }
                Operand::Const(e.clone())
            }
            Expr::Paren(p) => self.expr(&p.expr),
            Expr::Group(g) => self.expr(&g.expr),
            Expr::Reference(r) => {
                if let Some(m) = &r.mutability {
                    self.errors.push(err(m.span, "`&mut` borrows are not supported in a #[differentiable] fn"));
                }
                self.expr(&r.expr)
            }
            Expr::Unary(u) => match u.op {
                UnOp::Neg(_) => {
                    let a = self.expr(&u.expr);
                    if let Operand::Const(_) = a {
                        return Operand::Const(e.clone());
                    }
                    if !self.active(&a) {
                        return self.inactive(e, true);
                    }
                    self.assign(Op::Neg(a.clone()), &[&a], e.span(), false)
                }
                // `*a` for an element of `iter_mut`: the element.
                UnOp::Deref(_) if self.view_of(&u.expr).is_some() => {
                    let at = self.view_of(&u.expr).unwrap().at(&parse_quote!(0usize));
                    self.expr(&at)
                }
                UnOp::Deref(_) => self.expr(&u.expr),
                _ => self.inactive(e, true),
            },
            Expr::Binary(b) => self.binary(b, e),
            // `x as f64` of an `f32` (or `x as f32` of an `f64`) that carries a gradient:
            // a conversion, whose adjoint converts back.
            Expr::Cast(c) if cast_float_target(&c.ty).is_some() && self.reads_active(&c.expr) => {
                let x = self.expr(&c.expr);
                if !self.active(&x) {
                    return self.inactive(e, false);
                }
                let f = cast_float_target(&c.ty).unwrap();
                let refs = [&x];
                let op = self.assign(Op::Math(f, vec![x.clone()], None), &refs, e.span(), false);
                if let Operand::Var(v) = op {
                    self.scalars.insert(v);
                }
                op
            }
            Expr::Cast(c) => {
                let _ = c;
                self.inactive(e, false)
            }
            Expr::MethodCall(m) => self.method_call(m, e),
            Expr::Call(c) => self.call(c, e),
            Expr::Index(ix) if self.view_of(&ix.expr).is_some() => {
                let at = self.view_of(&ix.expr).unwrap().at(&ix.index);
                self.expr(&at)
            }
            Expr::Index(ix) if matches!(strip_paren(&ix.index), Expr::Range(_)) => self.unsupported_node(
                &ix.index,
                "a sub-slice (`xs[a..b]`) is supported bound by `let` (`let t = &xs[a..b];`), iterated (`xs[a..b].iter()`) or passed to a function (`f(&xs[a..b])`), not as a value here; bind it with `let` first",
            ),
            Expr::Index(ix) => {
                let base = self.expr(&ix.expr);
                // `w[(i, j)]`: the index pair is an integer value.
                let index = if let Expr::Tuple(_) = strip_paren(&ix.index) {
                    self.inactive(&ix.index, false)
                } else {
                    self.expr(&ix.index)
                };
                if self.active(&index) {
                    self.errors.push(err_node(&ix.index, "an index must be an integer, not a value that carries a gradient"));
                    return Self::dummy();
                }
                match base {
                    Operand::Var(v) if self.vars[v].active => {
                        let active = true;
                        let deps = self.vars[v].deps.clone();
                        let dst = self.new_var("", active, deps, false);
                        self.scalars.insert(dst);
                        self.cur.push(Stmt::Assign(Assign {
                            dst,
                            op: Op::Index(v, index),
                            span: e.span(),
                        }));
                        Operand::Var(dst)
                    }
                    _ => self.inactive(e, true),
                }
            }
            Expr::Field(f) => {
                let base = self.expr(&f.base);
                match base {
                    // `p.0`: a part of a tuple, by value.
                    Operand::Var(v) if matches!(f.member, syn::Member::Unnamed(_)) => {
                        self.tuple_field(v, f.member.clone(), "", e.span())
                    }
                    Operand::Var(v) => {
                        let (active, deps) = (self.vars[v].active, self.vars[v].deps.clone());
                        let dst = self.new_var(&member_name(&f.member), active, deps, true);
                        self.vars[dst].is_place = true;
                        self.cur.push(Stmt::Assign(Assign {
                            dst,
                            op: Op::Field(v, f.member.clone()),
                            span: e.span(),
                        }));
                        Operand::Var(dst)
                    }
                    Operand::Const(_) => Operand::Const(e.clone()),
                }
            }
            Expr::Block(b) => {
                if let Some(label) = &b.label {
                    self.errors.push(err(label.span(), "labeled blocks are not supported in a #[differentiable] fn"));
                }
                self.scopes.push(Vec::new());
                let v = self.stmts(&b.block.stmts);
                self.scopes.pop();
                match v {
                    Some(v) => v,
                    None if self.diverged => Self::dummy(),
                    None => {
                        self.errors.push(err_node(&b, "this block has no value"));
                        Self::dummy()
                    }
                }
            }
            Expr::If(i) => self.lower_if(i, true).unwrap_or_else(Self::dummy),
            Expr::ForLoop(f) => {
                self.lower_for(f);
                Self::dummy()
            }
            Expr::While(w) => {
                self.lower_while(w);
                Self::dummy()
            }
            Expr::Loop(l) => self
                .lower_loop(l.label.as_ref(), None, quote!(0usize..usize::MAX), None, &l.body)
                .unwrap_or_else(Self::dummy),
            Expr::Return(r) => {
                match &r.expr {
                    Some(v) => {
                        let v = self.expr(v);
                        if !self.diverged {
                            self.cur.push(Stmt::Return(v, r.span()));
                        }
                    }
                    None => self.errors.push(err(r.span(), "`return` needs a value in a #[differentiable] fn")),
                }
                self.diverged = true;
                Self::dummy()
            }
            Expr::Closure(c) => self.unsupported(c.or1_token.span, "a closure here is not supported in a #[differentiable] fn: bind it with `let f = |x| ..;` and call it, or pass it to an iterator adaptor (`map`, `fold`)"),
            Expr::Match(m) => self.lower_match(m, true).unwrap_or_else(Self::dummy),
            Expr::Unsafe(u) => self.unsupported(u.unsafe_token.span, "`unsafe` blocks are not supported in a #[differentiable] fn; move the unsafe code into a function with a hand-written `_vjp`"),
            Expr::Break(b) => self.unsupported(b.break_token.span, "this `break` is not supported here: a `break` must be a statement inside a loop (`if c { break; }`)"),
            Expr::Continue(c) => self.unsupported(c.continue_token.span, "this `continue` is not supported here: a `continue` must be a statement inside a loop (`if c { continue; }`)"),
            Expr::Macro(m) if m.mac.path.is_ident("vec") => self.vec_macro(&m.mac),
            Expr::Macro(m) => self.unsupported(m.mac.path.span(), "macros are not supported in an expression of a #[differentiable] fn; statement macros (`println!`, `assert!`, ...) are, and other values can be computed in a separate function"),
            Expr::Try(t) => self.unsupported(t.question_token.span, "the `?` operator is not supported in a #[differentiable] fn"),
            Expr::Async(a) => self.unsupported(a.async_token.span, "`async` blocks are not supported in a #[differentiable] fn"),
            Expr::Await(a) => self.unsupported(a.await_token.span, "`.await` is not supported in a #[differentiable] fn"),
            Expr::Tuple(t) if t.elems.is_empty() => self.unsupported_node(&t, "the unit value `()` is not supported in a #[differentiable] fn"),
            Expr::Tuple(t) => self.tuple(t, e),
            Expr::Array(a) => self.array_lit(a.elems.iter(), e, false),
            Expr::Repeat(r) => self.repeat(&r.expr, &r.len, e, false),
            Expr::Assign(a) => self.unsupported(a.eq_token.span, "an assignment is a statement, not a value; end it with `;`"),
            Expr::Let(l) => self.unsupported(l.let_token.span, "`if let` is not supported in a #[differentiable] fn"),
            Expr::Range(r) => self.unsupported_node(&r, "ranges are only supported as `for` loop bounds"),
            Expr::Struct(st) => self.unsupported_node(&st, "a struct literal is not supported in a #[differentiable] fn; keep its fields in local variables or a tuple (`let p = (a, b);`), or differentiate a method of the struct that takes it as `&self`"),
            other => self.unsupported_node(&other, "this expression is not supported in a #[differentiable] fn"),
        }
    }

    fn unsupported(&mut self, span: Span, msg: &str) -> Operand {
        self.errors.push(err(span, msg));
        Self::dummy()
    }

    fn unsupported_node(&mut self, node: &impl ToTokens, msg: &str) -> Operand {
        self.errors.push(err_node(node, msg));
        Self::dummy()
    }

    fn binary(&mut self, b: &syn::ExprBinary, e: &Expr) -> Operand {
        match b.op {
            BinOp::Mul(_) => {
                if let Some(inner) = as_transpose(&b.right) {
                    let l = self.expr(&b.left);
                    if self.is_scalar(&l) {
                        // A scalar times a transpose: a scaling (`l` lowered once).
                        let r = self.expr(&b.right);
                        return self.binary_op(Op::Mul(l.clone(), r.clone()), &l, &r, e);
                    }
                    let r = self.expr(inner);
                    if self.active(&l) || self.active(&r) {
                        return self.assign(
                            Op::MatMulNt(l.clone(), r.clone()),
                            &[&l, &r],
                            e.span(),
                            false,
                        );
                    }
                    return self.inactive(e, true);
                }
                if let Some(inner) = as_transpose(&b.left) {
                    let l = self.expr(inner);
                    let r = self.expr(&b.right);
                    if self.is_scalar(&r) {
                        // A transpose times a scalar: a scaling.
                        let t = if self.active(&l) {
                            self.assign(Op::Transpose(l.clone()), &[&l], b.left.span(), false)
                        } else {
                            self.inactive(&b.left, true)
                        };
                        return self.binary_op(Op::Mul(t.clone(), r.clone()), &t, &r, e);
                    }
                    if self.active(&l) || self.active(&r) {
                        return self.assign(
                            Op::MatMulTn(l.clone(), r.clone()),
                            &[&l, &r],
                            e.span(),
                            false,
                        );
                    }
                    return self.inactive(e, true);
                }
                let l = self.expr(&b.left);
                let r = self.expr(&b.right);
                self.binary_op(Op::Mul(l.clone(), r.clone()), &l, &r, e)
            }
            BinOp::Add(_) | BinOp::Sub(_) | BinOp::Div(_) => {
                let l = self.expr(&b.left);
                let r = self.expr(&b.right);
                let op = match b.op {
                    BinOp::Add(_) => Op::Add(l.clone(), r.clone()),
                    BinOp::Sub(_) => Op::Sub(l.clone(), r.clone()),
                    _ => Op::Div(l.clone(), r.clone()),
                };
                self.binary_op(op, &l, &r, e)
            }
            BinOp::Rem(_) => {
                let l = self.expr(&b.left);
                let r = self.expr(&b.right);
                if self.active(&l) || self.active(&r) {
                    return self.unsupported(
                        b.op.span(),
                        "`%` of values that carry a gradient is not supported",
                    );
                }
                self.inactive(e, true)
            }
            BinOp::AddAssign(_)
            | BinOp::SubAssign(_)
            | BinOp::MulAssign(_)
            | BinOp::DivAssign(_) => self.unsupported(
                b.op.span(),
                "a compound assignment is a statement, not a value; end it with `;`",
            ),
            _ => {
                // Comparisons, logic and bit operations: no gradient flows through them.
                self.inactive(e, true)
            }
        }
    }

    /// The arguments of a call: operand, whether written `&expr`, and the span for errors.
    fn call_args(&mut self, args: &syn::punctuated::Punctuated<Expr, syn::Token![,]>) -> Vec<Arg> {
        args.iter()
            .map(|a| {
                let (operand, copied) = self.sub_slice_arg(a);
                Arg {
                    by_ref: copied || matches!(strip_paren(a), Expr::Reference(_)),
                    operand,
                    span: a.span(),
                }
            })
            .collect()
    }

    /// A scalar math function of `ops` (the receiver first for the method form), `exprs`
    /// their expressions, `prefix` the type of the path form (`f64::hypot(a, b)`).
    #[allow(clippy::too_many_arguments)]
    fn math(
        &mut self,
        f: MathFn,
        arity: usize,
        ops: Vec<Operand>,
        exprs: &[&Expr],
        prefix: Option<Ident>,
        at: Span,
        e: &Expr,
    ) -> Operand {
        if ops.len() != arity {
            let name = match &prefix {
                Some(t) => format!("{t}::{}", f.name()),
                None => f.name().to_string(),
            };
            let given = if prefix.is_some() { arity } else { arity - 1 };
            return self.unsupported(at, &format!("`{name}` takes {given} argument(s)"));
        }
        if f == MathFn::Powi && self.active(&ops[1]) {
            return self.unsupported_node(
                exprs[1],
                "the exponent of `powi` is an integer; use `powf` for an exponent that carries a gradient",
            );
        }
        let op = Op::Math(f, ops.clone(), prefix);
        let refs: Vec<&Operand> = ops.iter().collect();
        self.assign(op, &refs, e.span(), false)
    }

    /// Float methods written with the rules of others, with the same value: `x.clamp(a, b)`
    /// is `x.max(a).min(b)`, `x.to_radians()` is `x * (π / 180)`, `x.to_degrees()` is
    /// `x * (180 / π)` (the constants std multiplies by), `x.sin_cos()` is the tuple
    /// `(x.sin(), x.cos())`. `ops` and `exprs` include the receiver.
    fn float_sugar(
        &mut self,
        name: &str,
        ops: &[Operand],
        exprs: &[&Expr],
        prefix: Option<Ident>,
        at: Span,
        e: &Expr,
    ) -> Operand {
        let arity = match name {
            "clamp" => 3,
            _ => 1,
        };
        if ops.len() != arity {
            let given = if prefix.is_some() { arity } else { arity - 1 };
            return self.unsupported(at, &format!("`{name}` takes {given} argument(s)"));
        }
        let x = ops[0].clone();
        match name {
            "clamp" => {
                let lo = self.math(
                    MathFn::Max,
                    2,
                    vec![x, ops[1].clone()],
                    &[exprs[0], exprs[1]],
                    prefix.clone(),
                    at,
                    e,
                );
                self.math(
                    MathFn::Min,
                    2,
                    vec![lo, ops[2].clone()],
                    &[exprs[0], exprs[2]],
                    prefix,
                    at,
                    e,
                )
            }
            "sin_cos" => {
                let s = self.math(
                    MathFn::Sin,
                    1,
                    vec![x.clone()],
                    exprs,
                    prefix.clone(),
                    at,
                    e,
                );
                let c = self.math(MathFn::Cos, 1, vec![x], exprs, prefix, at, e);
                self.assign(
                    Op::Tuple(vec![s.clone(), c.clone()]),
                    &[&s, &c],
                    e.span(),
                    false,
                )
            }
            _ => {
                let k: Expr = if name == "to_radians" {
                    syn::parse_quote_spanned!(at=> 0.017453292519943295)
                } else {
                    syn::parse_quote_spanned!(at=> 57.29577951308232)
                };
                let k = Operand::Const(k);
                self.binary_op(Op::Mul(x.clone(), k.clone()), &x, &k, e)
            }
        }
    }

    fn method_call(&mut self, m: &syn::ExprMethodCall, e: &Expr) -> Operand {
        if let Some(v) = self.iter_consumer(m) {
            return v;
        }
        let name = m.method.to_string();
        // `xs.first().unwrap()`, `*xs.last().unwrap()`: `xs[0]`, `xs[xs.len() - 1]`.
        if let Some(at) = first_or_last(m) {
            return self.expr(&at);
        }
        if let Some(msg) = SLICE_METHODS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, msg)| *msg)
            && self.reads_active(&m.receiver)
        {
            return self.unsupported(
                m.method.span(),
                &format!(
                    "`{name}` is not supported on a slice or `Vec` in a #[differentiable] fn; {msg}"
                ),
            );
        }
        if name == "collect" {
            return self.unsupported(
                m.method.span(),
                "`collect` is supported as the value of a `let` in a #[differentiable] fn (`let v: Vec<f64> = xs.iter().map(..).collect();`), not inside an expression; bind the `Vec` first, or consume the iterator where it is built (`.sum()`, `.fold(..)`, a `for` loop)",
            );
        }
        if let (Some(v), "len") = (self.view_of(&m.receiver), name.as_str()) {
            let len = v.len.clone();
            return self.inactive(&len, true);
        }
        if STRUCTURAL_METHODS.contains(&name.as_str()) {
            return self.inactive(e, true);
        }
        if name == "map" {
            if let [Expr::Closure(c)] = m.args.iter().collect::<Vec<_>>()[..] {
                return self.map_closure(m, c, e);
            }
            if let Some(c) = self.map_fn_path(m) {
                return self.map_closure(m, &c, e);
            }
        }
        let recv = self.expr(&m.receiver);
        let args = self.call_args(&m.args);
        let any_active = self.active(&recv) || args.iter().any(|a| self.active(&a.operand));
        if !any_active {
            return self.inactive(e, true);
        }
        let span = m.method.span();
        if let Some((f, arity)) = MathFn::lookup(&name) {
            let mut ops = vec![recv];
            ops.extend(args.into_iter().map(|a| a.operand));
            let exprs: Vec<&Expr> = std::iter::once(&*m.receiver).chain(&m.args).collect();
            return self.math(f, arity, ops, &exprs, None, span, e);
        }
        if FLOAT_SUGAR.contains(&name.as_str()) {
            let ops: Vec<Operand> = std::iter::once(recv.clone())
                .chain(args.iter().map(|a| a.operand.clone()))
                .collect();
            let exprs: Vec<&Expr> = std::iter::once(&*m.receiver).chain(&m.args).collect();
            return self.float_sugar(&name, &ops, &exprs, None, span, e);
        }
        match (name.as_str(), args.len()) {
            ("transpose", 0) => {
                return self.assign(Op::Transpose(recv.clone()), &[&recv], e.span(), false);
            }
            ("sum", 0) => return self.assign(Op::Sum(recv.clone()), &[&recv], e.span(), false),
            ("mean", 0) => return self.assign(Op::Mean(recv.clone()), &[&recv], e.span(), false),
            ("clone", 0) => return self.assign(Op::Clone(recv.clone()), &[&recv], e.span(), false),
            ("dot", 1) | ("norm_squared", 0) | ("norm", 0) => {
                let other = args.first().map(|a| a.operand.clone());
                return self.dot_or_norm(&name, recv, other, e);
            }
            ("component_mul", 1) => {
                let b = args[0].operand.clone();
                return self.assign(
                    Op::ComponentMul(recv.clone(), b.clone()),
                    &[&recv, &b],
                    e.span(),
                    false,
                );
            }
            _ => {}
        }
        if UNSUPPORTED_FLOAT_METHODS.contains(&name.as_str()) {
            return self.unsupported(span, &format!("method `{name}` is not supported in a #[differentiable] fn; supported methods: {SUPPORTED_METHODS}"));
        }
        if name == "map" {
            return self.unsupported(span, "in a #[differentiable] fn, `map` takes a closure whose body is differentiated (`x.map(|v| v.exp())`) or the path of a function (`x.map(f64::exp)`, `x.map(my_differentiable_fn)`)");
        }
        if UNSUPPORTED_MATRIX_METHODS.contains(&name.as_str()) {
            return self.unsupported(span, &format!("matrix method `{name}` is not supported in a #[differentiable] fn; supported: `*`, `+`, `-`, scalar `*` and `/`, transpose, sum, mean, component_mul, dot, norm, norm_squared, indexing, `map(|v| ..)`, and functions with a `_pullback` (relu, softmax, exp, softplus, ...)"));
        }
        let Operand::Var(rv) = recv else {
            return self.unsupported_node(
                &m.receiver,
                "the receiver of a differentiable method call must be a variable",
            );
        };
        let ops: Vec<Operand> = std::iter::once(recv.clone())
            .chain(args.iter().map(|a| a.operand.clone()))
            .collect();
        let refs: Vec<&Operand> = ops.iter().collect();
        let call_args = args;
        self.assign(
            Op::Call(
                Callee::Method {
                    receiver: rv,
                    method: m.method.clone(),
                    span: m.receiver.span(),
                },
                call_args,
            ),
            &refs,
            span,
            false,
        )
    }

    fn call(&mut self, c: &syn::ExprCall, e: &Expr) -> Operand {
        if let Some(a) = iterators::inactive_marker(c) {
            return self.inactive(a, true);
        }
        if let Expr::Path(p) = strip_paren(&c.func)
            && p.path.get_ident().is_some_and(|id| *id == self.fn_name)
        {
            return self.unsupported_node(&c.func, "recursion is not supported in a #[differentiable] fn; write the recursion as a loop (`while`, `loop`), or give the function a hand-written `#[custom_vjp]`");
        }
        if let Some(def) = named_binding(&self.scopes, &c.func).and_then(|b| b.closure.clone()) {
            return self.inline_closure(&def, &c.args, e);
        }
        let Expr::Path(p) = strip_paren(&c.func) else {
            return self.unsupported_node(
                &c.func,
                "only calls of functions by name are supported in a #[differentiable] fn",
            );
        };
        let segs: Vec<String> = p
            .path
            .segments
            .iter()
            .map(|s| s.ident.to_string())
            .collect();
        // `no_grad(x)`: the value of `x`, through which no gradient flows (PyTorch's detach).
        if segs.last().is_some_and(|s| s == "no_grad") && c.args.len() == 1 {
            return self.inactive(e, true);
        }
        let float_path = segs.len() == 2 && (segs[0] == "f32" || segs[0] == "f64");
        let args = self.call_args(&c.args);
        if !args.iter().any(|a| self.active(&a.operand)) {
            return self.inactive(e, true);
        }
        if float_path {
            let name = &segs[1];
            if let Some((f, arity)) = MathFn::lookup(name) {
                let ops: Vec<Operand> = args.into_iter().map(|a| a.operand).collect();
                let exprs: Vec<&Expr> = c.args.iter().collect();
                let prefix = Some(p.path.segments[0].ident.clone());
                return self.math(f, arity, ops, &exprs, prefix, c.span(), e);
            }
            if FLOAT_SUGAR.contains(&name.as_str()) {
                let ops: Vec<Operand> = args.into_iter().map(|a| a.operand).collect();
                let exprs: Vec<&Expr> = c.args.iter().collect();
                let prefix = Some(p.path.segments[0].ident.clone());
                return self.float_sugar(name, &ops, &exprs, prefix, c.span(), e);
            }
            return self.unsupported(p.path.segments[1].ident.span(), &format!("`{}::{name}` is not supported in a #[differentiable] fn; supported methods: {SUPPORTED_METHODS}", segs[0]));
        }
        let ops: Vec<Operand> = args.iter().map(|a| a.operand.clone()).collect();
        let refs: Vec<&Operand> = ops.iter().collect();
        let call_args = args;
        self.assign(
            Op::Call(Callee::Path(p.path.clone()), call_args),
            &refs,
            c.span(),
            false,
        )
    }

    fn same(a: &Operand, b: &Operand) -> bool {
        match (a, b) {
            (Operand::Var(x), Operand::Var(y)) => x == y,
            (Operand::Const(x), Operand::Const(y)) => {
                x.to_token_stream().to_string() == y.to_token_stream().to_string()
            }
            _ => false,
        }
    }

    /// Lowers a block into its own statement list (a branch or a loop body).
    fn sub_block(
        &mut self,
        stmts: &[syn::Stmt],
        extra: Vec<(String, Operand)>,
    ) -> (Block, Option<Operand>) {
        self.sub_block_with(stmts, |l| {
            for (n, o) in extra {
                l.bind(n, o, false);
            }
        })
    }

    /// Lowers a block into its own statement list (a branch or a loop body); `prelude`
    /// runs first, in the block's scope (bindings of a loop index or a pattern).
    fn sub_block_with(
        &mut self,
        stmts: &[syn::Stmt],
        prelude: impl FnOnce(&mut Self),
    ) -> (Block, Option<Operand>) {
        let saved_cur = std::mem::take(&mut self.cur);
        let saved_div = self.diverged;
        self.diverged = false;
        self.scopes.push(Vec::new());
        prelude(self);
        let v = self.stmts(stmts);
        self.scopes.pop();
        let block = Block {
            stmts: std::mem::replace(&mut self.cur, saved_cur),
            diverges: self.diverged,
        };
        self.diverged = saved_div;
        (block, v)
    }

    fn lower_for(&mut self, f: &syn::ExprForLoop) -> Option<Operand> {
        if !is_range(&f.expr) {
            return self.lower_iter_for(f);
        }
        let pat_name = match &*f.pat {
            Pat::Ident(pi) if pi.subpat.is_none() && pi.by_ref.is_none() => {
                Some(pi.ident.to_string())
            }
            Pat::Wild(_) => None,
            other => {
                self.errors
                    .push(err_node(&other, "the loop variable must be a name or `_`"));
                return None;
            }
        };
        if !is_range(&f.expr) {
            self.errors.push(err_node(&f.expr,
                "only `for i in a..b`, `for i in a..=b` and `for i in (a..b).rev()` loops are supported in a #[differentiable] fn",
            ));
            return None;
        }
        let iter = self.inactive_expr(&f.expr, true);
        self.lower_loop(f.label.as_ref(), pat_name, iter, None, &f.body)
    }

    /// A `while` loop: a loop over `0..` that ends when its condition is false.
    fn lower_while(&mut self, w: &syn::ExprWhile) -> Option<Operand> {
        if let Expr::Let(l) = strip_paren(&w.cond) {
            self.errors.push(err(
                l.let_token.span,
                "`while let` is not supported in a #[differentiable] fn; use `while` with a condition, or `loop` with `if let`/`match` and `break`",
            ));
            return None;
        }
        self.lower_loop(
            w.label.as_ref(),
            None,
            quote!(0usize..usize::MAX),
            Some((*w.cond).clone()),
            &w.body,
        )
    }

    /// Any loop: `break`/`continue` become flags ([`exits`]), the rest is a `for` over
    /// `iter` with an optional condition at the start of each iteration. Returns the value
    /// of `break value`.
    fn lower_loop(
        &mut self,
        label: Option<&syn::Label>,
        pat_name: Option<String>,
        iter: TokenStream,
        cond: Option<Expr>,
        body: &syn::Block,
    ) -> Option<Operand> {
        self.loops += 1;
        let flags = exits::Flags::new(self.loops);
        let mut rw = exits::Rewrite::new(&flags, label, &mut self.labels);
        let mut stmts = rw.block(&body.stmts);
        let found = rw.found;
        if !rw.errors.is_empty() {
            // One error per mistake: the body is not lowered with an exit left in it.
            self.errors.extend(rw.errors);
            return None;
        }
        let exits::Flags { brk, cont, val } = &flags;
        let mut pre: Vec<syn::Stmt> = Vec::new();
        if found.brk {
            pre.push(parse_quote!(let mut #brk = false;));
        }
        if found.value {
            match generic_float() {
                Some(t) => pre.push(parse_quote!(let mut #val: #t;)),
                None => pre.push(parse_quote!(let mut #val;)),
            }
        }
        for s in &pre {
            if let syn::Stmt::Local(l) = s {
                self.local(l);
            }
        }
        if found.cont {
            stmts.insert(0, parse_quote!(let mut #cont = false;));
        }
        let cond: Option<Expr> = match (found.brk, cond) {
            (true, Some(c)) => Some(parse_quote!(!#brk && (#c))),
            (true, None) => Some(parse_quote!(!#brk)),
            (false, c) => c,
        };
        self.lower_loop_body(pat_name, iter, cond.as_ref(), &stmts);
        if found.value {
            return self.lookup(&val.to_string()).map(|b| b.op.clone());
        }
        None
    }

    fn lower_loop_body(
        &mut self,
        pat_name: Option<String>,
        iter: TokenStream,
        cond: Option<&Expr>,
        stmts: &[syn::Stmt],
    ) {
        let before = self.scopes.clone();
        // Pass 1: which names does the body rebind?
        let snap = self.snapshot();
        let index = self.new_var(
            pat_name.as_deref().unwrap_or("i"),
            false,
            Deps::default(),
            false,
        );
        let extra: Vec<(String, Operand)> = pat_name
            .iter()
            .map(|n| (n.clone(), Operand::Var(index)))
            .collect();
        // Each mutable name starts pass 1 as a value of its own, so that any assignment in
        // the body shows as a change, also one that assigns a value equal to the one before
        // the loop (`py = y;` with both starting at 1.0).
        for (si, scope) in before.iter().enumerate() {
            for (bi, (name, b)) in scope.iter().enumerate() {
                if !b.mutable {
                    continue;
                }
                let is_ref = matches!(b.op, Operand::Var(v) if self.vars[v].is_ref);
                let v = self.new_var(name, self.active(&b.op), self.deps(&b.op), is_ref);
                if self.is_scalar(&b.op) {
                    self.scalars.insert(v);
                }
                self.scopes[si][bi].1.op = Operand::Var(v);
            }
        }
        let starts = self.scopes.clone();
        let (_, _) = self.sub_block(stmts, extra.clone());
        let mut carried: Vec<(usize, usize, String, Operand)> = Vec::new();
        for (si, scope) in before.iter().enumerate() {
            for (bi, (name, b)) in scope.iter().enumerate() {
                if !Self::same(&starts[si][bi].1.op, &self.scopes[si][bi].1.op) {
                    carried.push((si, bi, name.clone(), b.op.clone()));
                }
            }
        }
        self.restore(snap);
        let mut head_act: Vec<(bool, Deps)> = carried
            .iter()
            .map(|c| (self.active(&c.3), self.deps(&c.3)))
            .collect();
        let mut rounds = 0;
        loop {
            rounds += 1;
            let snap = self.snapshot();
            let index = self.new_var(
                pat_name.as_deref().unwrap_or("i"),
                false,
                Deps::default(),
                false,
            );
            let mut heads = Vec::new();
            for (k, c) in carried.iter().enumerate() {
                let is_ref = matches!(c.3, Operand::Var(v) if self.vars[v].is_ref);
                let h = self.new_var(&c.2, head_act[k].0, head_act[k].1.clone(), is_ref);
                if self.is_scalar(&c.3) {
                    self.scalars.insert(h);
                }
                self.scopes[c.0][c.1].1.op = Operand::Var(h);
                heads.push(h);
            }
            let extra: Vec<(String, Operand)> = pat_name
                .iter()
                .map(|n| (n.clone(), Operand::Var(index)))
                .collect();
            let cond = cond.map(|c| self.inactive_expr(c, true));
            let (body, _) = self.sub_block(stmts, extra);
            let ends: Vec<Operand> = carried
                .iter()
                .map(|c| self.scopes[c.0][c.1].1.op.clone())
                .collect();
            let mut changed = false;
            for (k, e) in ends.iter().enumerate() {
                let (a, d) = (self.active(e), self.deps(e));
                let na = head_act[k].0 || a;
                let nd = head_act[k].1.union(&d);
                if (na, &nd) != (head_act[k].0, &head_act[k].1) {
                    head_act[k] = (na, nd);
                    changed = true;
                }
            }
            if changed && rounds < 70 {
                self.restore(snap);
                continue;
            }
            let mut cs = Vec::new();
            for (k, c) in carried.iter().enumerate() {
                let is_ref = self.vars[heads[k]].is_ref;
                let after = self.new_var(&c.2, head_act[k].0, head_act[k].1.clone(), is_ref);
                if self.is_scalar(&c.3) {
                    self.scalars.insert(after);
                }
                self.scopes[c.0][c.1].1.op = Operand::Var(after);
                cs.push(Carried {
                    init: c.3.clone(),
                    head: heads[k],
                    end: ends[k].clone(),
                    after,
                });
            }
            let id = self.next_id;
            self.next_id += 1;
            self.cur.push(Stmt::For(For {
                id,
                index,
                iter,
                cond,
                body,
                carried: cs,
            }));
            return;
        }
    }
}

/// `(e)`: an expression that keeps its meaning inside a larger one.
/// Type names that never carry a gradient (integers, `bool`, `char`, strings).
pub(crate) const NON_FLOAT_TYPES: &[&str] = &[
    "i8", "i16", "i32", "i64", "i128", "isize", "u8", "u16", "u32", "u64", "u128", "usize", "bool",
    "char", "str", "String",
];

/// The macros that may stand as statements in a #[differentiable] fn.
const STATEMENT_MACROS: &[&str] = &[
    "println",
    "eprintln",
    "print",
    "eprint",
    "assert",
    "assert_eq",
    "assert_ne",
    "debug_assert",
    "debug_assert_eq",
    "debug_assert_ne",
];

/// The names a format string captures (`{s}`, `{s:.3}`), in order.
fn format_captures(fmt: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '{' {
            continue;
        }
        if chars.peek() == Some(&'{') {
            chars.next();
            continue;
        }
        let name: String =
            std::iter::from_fn(|| chars.next_if(|c| c.is_alphanumeric() || *c == '_')).collect();
        if name.starts_with(|c: char| c.is_alphabetic() || c == '_') && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

fn paren(e: &Expr) -> Expr {
    Expr::Paren(syn::ExprParen {
        attrs: Vec::new(),
        paren_token: syn::token::Paren(e.span()),
        expr: Box::new(e.clone()),
    })
}

/// An expression whose value is `()` though it may end a block: an `if` whose branches end
/// with statements, a loop, an assignment. At the end of a block it is a statement.
fn is_valueless(e: &Expr) -> bool {
    match strip_paren(e) {
        Expr::If(i) => !block_has_value(&i.then_branch),
        Expr::ForLoop(_) | Expr::While(_) | Expr::Assign(_) => true,
        Expr::Loop(l) => exits::has_break(l) && !exits::breaks_with_value(l),
        // Arms that leave (`k if k == stop => return s,`) have no say; the others decide.
        Expr::Match(m) => {
            let staying: Vec<&Expr> = m
                .arms
                .iter()
                .map(|a| &*a.body)
                .filter(|b| !leaves(b))
                .collect();
            !staying.is_empty()
                && staying.iter().all(|b| match b {
                    Expr::Block(b) => !block_has_value(&b.block),
                    e => is_valueless(e),
                })
        }
        Expr::Binary(b) => is_compound_assign(&b.op),
        _ => false,
    }
}

/// `return ..`, `break ..` or `continue`: an arm that does not end with a value.
fn leaves(e: &Expr) -> bool {
    matches!(
        strip_paren(e),
        Expr::Return(_) | Expr::Break(_) | Expr::Continue(_)
    )
}

/// The block ends with an expression that has a value.
fn block_has_value(b: &syn::Block) -> bool {
    matches!(b.stmts.last(), Some(syn::Stmt::Expr(e, None)) if !is_valueless(e))
}

thread_local! {
    /// The type parameters of the function being expanded that are float types (`T: Float`).
    static FLOAT_PARAMS: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

thread_local! {
    /// The result type of the function being expanded when it is `f32` or `f64`.
    static RETURN_FLOAT: std::cell::RefCell<Option<Type>> = const { std::cell::RefCell::new(None) };
}

/// The result type of the function being expanded when it is `f32` or `f64`: the type of a
/// `fold`'s untyped float literal seed (`fold(0.0, |acc, &c| acc.mul_add(x, c))`), which
/// the generated code must name to call methods on it.
pub(crate) fn return_float() -> Option<Type> {
    RETURN_FLOAT.with(|r| r.borrow().clone())
}

/// The float type parameter of the function being expanded, if it is generic (`T` of
/// `fn f<T: Float>`): generated zeros and ones are written `T::zero()`, `T::one()`.
pub(crate) fn generic_float() -> Option<Ident> {
    FLOAT_PARAMS.with(|f| f.borrow().first().map(|n| Ident::new(n, Span::call_site())))
}

/// The type parameters bounded by `Float` (`num_traits::Float`, or symgrad's `Real`).
pub(crate) fn float_type_params(g: &syn::Generics) -> Vec<String> {
    g.type_params()
        .filter(|t| {
            t.bounds.iter().any(|b| match b {
                syn::TypeParamBound::Trait(tb) => tb
                    .path
                    .segments
                    .last()
                    .is_some_and(|s| s.ident == "Float" || s.ident == "Real"),
                _ => false,
            })
        })
        .map(|t| t.ident.to_string())
        .collect()
}

/// The innermost binding of `name` in `scopes`.
fn lookup_in<'s>(scopes: &'s Scopes, name: &str) -> Option<&'s Binding> {
    scopes
        .iter()
        .rev()
        .find_map(|s| s.iter().rev().find(|(n, _)| n == name).map(|(_, b)| b))
}

/// The binding of `e` when it is a plain name (`x`, not `x.y` or `x[i]`).
fn named_binding<'s>(scopes: &'s Scopes, e: &Expr) -> Option<&'s Binding> {
    match strip_paren(e) {
        Expr::Path(p) => p
            .path
            .get_ident()
            .and_then(|id| lookup_in(scopes, &id.to_string())),
        _ => None,
    }
}

/// `+=`, `-=`, `*=` or `/=`: the compound assignments the lowering supports.
pub(crate) fn is_compound_assign(op: &BinOp) -> bool {
    matches!(
        op,
        BinOp::AddAssign(_) | BinOp::SubAssign(_) | BinOp::MulAssign(_) | BinOp::DivAssign(_)
    )
}

/// `f32`, `f64` or a float type parameter, possibly behind references or parentheses.
pub(crate) fn is_float_type(ty: &Type) -> bool {
    match ty {
        Type::Reference(r) => is_float_type(&r.elem),
        Type::Paren(p) => is_float_type(&p.elem),
        Type::Path(p) => {
            p.qself.is_none()
                && (p.path.is_ident("f32")
                    || p.path.is_ident("f64")
                    || p.path.get_ident().is_some_and(|id| {
                        FLOAT_PARAMS.with(|f| f.borrow().contains(&id.to_string()))
                    }))
        }
        _ => false,
    }
}

/// A tuple result (`-> (f64, f64)`) holds floats or tuples of floats only: its adjoint (the
/// seed of `_vjp`) is a tuple of the parts' adjoints.
fn check_tuple_result(ty: &Type, errors: &mut Vec<syn::Error>) {
    let Type::Tuple(t) = ty else { return };
    if t.elems.is_empty() {
        return;
    }
    for e in &t.elems {
        match e {
            Type::Tuple(_) => check_tuple_result(e, errors),
            e if matches!(e, Type::Path(_)) && is_float_type(e) => {}
            other => errors.push(err_node(other, format!(
                "a #[differentiable] fn can return a tuple of floats only (`-> (f64, f64)`, nested tuples of f32/f64 or of its float type parameter); `{}` is not a float: return it from a separate function, or leave it out of the result",
                other.to_token_stream()
            ))),
        }
    }
}

fn is_range(e: &Expr) -> bool {
    match strip_paren(e) {
        Expr::Range(r) => r.start.is_some() && r.end.is_some(),
        Expr::MethodCall(m) if m.method == "rev" && m.args.is_empty() => is_range(&m.receiver),
        _ => false,
    }
}

fn strip_paren(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => strip_paren(&p.expr),
        Expr::Group(g) => strip_paren(&g.expr),
        _ => e,
    }
}

fn root_name(e: &Expr) -> Option<String> {
    match strip_paren(e) {
        Expr::Path(p) => p.path.get_ident().map(|i| i.to_string()),
        Expr::Index(i) => root_name(&i.expr),
        Expr::Field(f) => root_name(&f.base),
        _ => None,
    }
}

fn member_name(m: &syn::Member) -> String {
    match m {
        syn::Member::Named(i) => i.to_string(),
        syn::Member::Unnamed(i) => format!("f{}", i.index),
    }
}
