//! Second order: `NAME_hvp(args.., v..) -> (value, gradient, H v)` and
//! `NAME_hessian(args..) -> (value, gradient, DMatrix<T>)`, by reverse over forward.
//!
//! From the IR of `f`, this module writes, as ordinary Rust source in the subset that
//! `#[differentiable]` accepts, the hidden function
//!
//! ```text
//! __f_hdir(args.., slots.., __hw: T) -> T  =  __hw * f(args) + <∇f(args), slots>
//! ```
//!
//! whose body is `f`'s body with, beside each active value, its tangent written as an
//! expression of values and tangents (`d(a b) = da b + a db`, `d sin a = cos a da`, ...):
//! the forward mode, but in the source language instead of calls to the runtime's `_jvp`
//! rules, so that the existing reverse pipeline (`lower` then `emit`) differentiates it like
//! any user function. Its gradient at `__hw = 0` is `H v` with respect to the arguments,
//! `∇f` with respect to the slots and `f` with respect to `__hw`: one reverse sweep of the
//! directional derivative gives the value, the gradient and the Hessian-vector product.
//!
//! Why reverse over forward and not forward over reverse (a pullback generic over dual
//! numbers): the reverse code calls runtime rules typed for `f32`/`f64` and matrices, and a
//! forward-over-reverse would need every rule (and the GEMM) generic over a dual scalar. The
//! source-to-source route needs no runtime change, reuses the reverse mode's control flow
//! (tapes for loops, phis for `if`, early returns) as it is, and costs one forward sweep of
//! about twice the operations of `f` plus its reverse sweep.
//!
//! Calls: a callee `g` called from a `hessian` function with an argument that carries a
//! gradient needs `#[differentiable(hessian)]` too; the caller's `__f_hdir` calls `g` (its
//! value) and `__g_hdir(args.., slots.., 0.0)` (its tangent, a scalar), which has a
//! `_pullback` like every differentiable function. A slot is passed for every parameter of
//! `g`: the argument's tangent, or `dir_zero(arg)` for one that carries none, which is a zero
//! of the argument's type for a float type and `()` for an integer type (the slot type of a
//! parameter of an integer type in `__g_hdir`), so the caller needs no knowledge of `g`.
//!
//! Matrices and parameter structs (`&DMatrix<T>`, `&Mlp`; `_hvp` only, no dense `_hessian`):
//! the tangent of a matrix value is a matrix (not annotated with the float type), of a field
//! `&p.layer1` the same field of the parameter's slot. Linear operations apply to the
//! tangents as they are (`matmul_nt(x, &dw)`, `add_bias(&dz, &db)`); the nonlinear tensor
//! functions call the runtime's `NAME_dir` rules (`relu_dir(&y, &dz)`, ...), which have
//! pullbacks of their own; `Linear::forward`/`forward_relu` are written out as
//! `x dWᵀ + dx Wᵀ + db` (the `dx` term left out for the data), so that nothing needs a
//! second-order protocol of its own. A constant parameter's slot in `_hvp` is `dir_empty` (never read; an empty
//! matrix, not a zero of the data's size).

use crate::args::Args;
use crate::ir::*;
use crate::lower::{Function, is_constant_type};
use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use std::collections::{HashMap, HashSet};
use syn::{FnArg, Ident, ItemFn, ReturnType, Type};

/// `__f_hdir` (with its reverse functions), `f_hvp` and `f_hessian`.
pub fn expand(
    f: &Function,
    func: &ItemFn,
    args: &Args,
    root: &TokenStream,
) -> Result<TokenStream, Vec<syn::Error>> {
    let sig = &func.sig;
    let ReturnType::Type(_, ret_ty) = &sig.output else {
        unreachable!("checked by lower")
    };
    check(f, func, ret_ty)?;
    let name = &sig.ident;
    let vis = &func.vis;
    let dir_name = dir_ident(name);
    let (dir_fn, wrt) = dir_source(f, func, root)?;
    let inputs: Vec<&FnArg> = sig.inputs.iter().collect();
    let dir_args = Args {
        wrt: Some(wrt),
        krate: args.krate.clone(),
        ..Args::default()
    };
    let dir_f = crate::lower::lower(&dir_fn, &dir_args)?;
    #[cfg(debug_assertions)]
    crate::ir::show::check(&dir_f);
    let dir_rev = crate::expand_reverse(&dir_f, &dir_fn, root);
    let dir_rev = hide(dir_rev);
    let allows: TokenStream = crate::ALLOWS.parse().unwrap();

    // `_hvp`.
    let active: Vec<&crate::lower::Param> = f.params.iter().filter(|p| p.active).collect();
    let k = active.len();
    let v_names: Vec<Ident> = active
        .iter()
        .map(|p| {
            let nice = format_ident!("v_{}", p.ident);
            if f.params.iter().any(|q| q.ident == nice) {
                format_ident!("__v_{}", p.ident)
            } else {
                nice
            }
        })
        .collect();
    let v_tys: Vec<&Type> = active.iter().map(|p| &p.ty).collect();
    let grads_ty: Type = if k == 1 {
        crate::grad_type(&active[0].ty)
    } else {
        let ts: Vec<Type> = active.iter().map(|p| crate::grad_type(&p.ty)).collect();
        syn::parse_quote!((#(#ts,)*))
    };
    let pass: Vec<TokenStream> = f
        .params
        .iter()
        .map(|p| {
            let id = &p.ident;
            match &p.ty {
                Type::Reference(_) => quote!(#id),
                _ => quote!(::core::clone::Clone::clone(&#id)),
            }
        })
        .collect();
    // A constant parameter's slot is never read: an empty value of its tangent type.
    let slots_for = |given: &dyn Fn(usize) -> TokenStream| -> Vec<TokenStream> {
        let mut vi = 0;
        f.params
            .iter()
            .map(|p| {
                let id = &p.ident;
                let is_ref = matches!(p.ty, Type::Reference(_));
                if p.active {
                    vi += 1;
                    given(vi - 1)
                } else if is_ref {
                    quote!(&#root::dir_empty(#id))
                } else {
                    quote!(#root::dir_empty(&#id))
                }
            })
            .collect()
    };
    let hvp_slots = slots_for(&|i| {
        let v = &v_names[i];
        quote!(#v)
    });
    let grad_name = format_ident!("{}_grad", dir_name);
    let pick = |range: std::ops::Range<usize>| -> TokenStream {
        let idx: Vec<syn::Index> = range.map(syn::Index::from).collect();
        if idx.len() == 1 {
            let i = &idx[0];
            quote!(__g.#i)
        } else {
            quote!((#(__g.#idx,)*))
        }
    };
    let (hv_out, g_out) = (pick(0..k), pick(k..2 * k));
    let value_idx = syn::Index::from(2 * k);
    let hvp_name = format_ident!("{}_hvp", name);
    let vlist: Vec<String> = v_names.iter().map(|t| format!("`{t}`")).collect();
    let hvp_doc = format!(
        " The value of [`{name}`], its gradient and the Hessian-vector product `H v` along \
         {} (one per active parameter, of its type), the gradient and `H v` of the types \
         `{name}_grad` returns. Reverse over forward: one forward sweep of the function and its \
         directional derivative, one reverse sweep of that. Generated by \
         `#[differentiable(hessian)]`.",
        vlist.join(", ")
    );

    // `_hessian`: one `_hvp` per unit vector, then `(H + Hᵀ) / 2`.
    let hess_name = format_ident!("{}_hessian", name);
    let lens: Vec<Ident> = (0..k).map(|i| format_ident!("__n{}", i)).collect();
    let offs: Vec<Ident> = (0..k).map(|i| format_ident!("__o{}", i)).collect();
    let units: Vec<Ident> = (0..k).map(|i| format_ident!("__u{}", i)).collect();
    let mut prologue = TokenStream::new();
    prologue.extend(quote!(let mut __n = 0usize;));
    for (i, p) in active.iter().enumerate() {
        let (n, o, id) = (&lens[i], &offs[i], &p.ident);
        prologue.extend(quote! {
            let #n = #root::hess_len::<#ret_ty, _>(&#id);
            let #o = __n;
            __n += #n;
        });
    }
    let unit_stmts = |j: TokenStream| -> TokenStream {
        let mut s = TokenStream::new();
        for (i, p) in active.iter().enumerate() {
            let (n, o, u, id) = (&lens[i], &offs[i], &units[i], &p.ident);
            s.extend(quote! {
                let #u = #root::hess_unit::<#ret_ty, _>(&#id, {
                    let __j: ::core::option::Option<usize> = #j;
                    match __j {
                        ::core::option::Option::Some(__j) if __j >= #o && __j < #o + #n => {
                            ::core::option::Option::Some(__j - #o)
                        }
                        _ => ::core::option::Option::None,
                    }
                });
            });
        }
        s
    };
    let unit_args: Vec<TokenStream> = active
        .iter()
        .zip(&units)
        .map(|(p, u)| {
            if matches!(p.ty, Type::Reference(_)) {
                quote!(&#u)
            } else {
                quote!(#u)
            }
        })
        .collect();
    let hv_parts: Vec<TokenStream> = (0..k)
        .map(|i| {
            let (n, o) = (&lens[i], &offs[i]);
            let hv = if k == 1 {
                quote!(__hv)
            } else {
                let i = syn::Index::from(i);
                quote!(__hv.#i)
            };
            quote!(#root::flatten_into::<#ret_ty, _>(&#hv, &mut __col[#o..#o + #n]);)
        })
        .collect();
    let in_unit = unit_stmts(quote!(::core::option::Option::Some(__j)));
    let zero_unit = unit_stmts(quote!(::core::option::Option::None));
    let hess_doc = format!(
        " The value of [`{name}`], its gradient and its Hessian over the active parameters \
         flattened in declaration order (a scalar is one entry, an array or a slice one entry \
         per element): one `{name}_hvp` per unit vector, made exactly symmetric. Generated by \
         `#[differentiable(hessian)]`."
    );
    let call_hvp = |params: &[TokenStream]| quote!(#hvp_name(#(#pass,)* #(#params),*));
    let hvp_in_loop = call_hvp(&unit_args);
    let nalg = quote!(#root::nalgebra);

    // `_hessian` (dense) for scalars, arrays and slices only: a matrix or a parameter
    // struct has no flat unit vectors here (its `H v` is `_hvp`'s).
    let dense = active.iter().all(|p| hessian_param_ok(&p.ty));
    let hessian_fn = if dense {
        quote! {
            #[doc = #hess_doc]
            #[allow(#allows)]
            #vis fn #hess_name(#(#inputs),*) -> (#ret_ty, #grads_ty, #nalg::DMatrix<#ret_ty>) {
                #prologue
                let mut __h = #nalg::DMatrix::<#ret_ty>::zeros(__n, __n);
                let mut __vg: ::core::option::Option<(#ret_ty, #grads_ty)> = ::core::option::Option::None;
                for __j in 0..__n {
                    #in_unit
                    let (__value, __grad, __hv) = #hvp_in_loop;
                    let __col = &mut __h.as_mut_slice()[__j * __n..(__j + 1) * __n];
                    #(#hv_parts)*
                    __vg = ::core::option::Option::Some((__value, __grad));
                }
                let (__value, __grad) = match __vg {
                    ::core::option::Option::Some(vg) => vg,
                    ::core::option::Option::None => {
                        #zero_unit
                        let (__value, __grad, _) = #hvp_in_loop;
                        (__value, __grad)
                    }
                };
                #root::symmetrize(&mut __h);
                (__value, __grad, __h)
            }
        }
    } else {
        TokenStream::new()
    };

    Ok(quote! {
        #dir_rev

        #[doc = #hvp_doc]
        #[allow(#allows)]
        #[inline]
        #vis fn #hvp_name(#(#inputs,)* #(#v_names: #v_tys),*) -> (#ret_ty, #grads_ty, #grads_ty) {
            let (_, __g) = #grad_name(#(#pass,)* #(#hvp_slots,)* 0.0);
            (__g.#value_idx, #g_out, #hv_out)
        }

        #hessian_fn
    })
}

/// The source of `__f_hdir(args.., slots.., __hw) -> T` (one slot per parameter) and the
/// names it is differentiated with respect to: the active parameters, their slots, `__hw`.
fn dir_source(
    f: &Function,
    func: &ItemFn,
    root: &TokenStream,
) -> Result<(ItemFn, Vec<Ident>), Vec<syn::Error>> {
    let sig = &func.sig;
    let ReturnType::Type(_, ret_ty) = &sig.output else {
        unreachable!("checked by lower")
    };
    let dir_name = dir_ident(&sig.ident);
    let w = format_ident!("__hw");
    let slot_names: Vec<Ident> = f
        .params
        .iter()
        .map(|p| format_ident!("__hv_{}", p.ident))
        .collect();
    let slot_tys: Vec<Type> = f.params.iter().map(slot_type).collect();
    let mut d = Dir {
        f,
        root: root.clone(),
        t: ret_ty,
        w: w.clone(),
        tan: HashMap::new(),
        errors: Vec::new(),
        next: 0,
        loads: Vec::new(),
        mat: HashSet::new(),
        tref: HashSet::new(),
        checks: TokenStream::new(),
    };
    for (p, s) in f.params.iter().zip(&slot_names) {
        if !hessian_param_ok(&p.ty) && !is_constant_type(&p.ty) {
            d.mat.insert(p.var);
        }
        if p.active {
            d.tan.insert(p.var, quote!(#s));
            if matches!(p.ty, Type::Reference(_)) {
                d.tref.insert(p.var);
            }
        }
    }
    let body = d.block(&f.body, true);
    if !d.errors.is_empty() {
        return Err(d.errors);
    }
    let items = &f.items;
    let inputs: Vec<&FnArg> = sig.inputs.iter().collect();
    let dir_fn: ItemFn = syn::parse2(quote! {
        fn #dir_name(#(#inputs,)* #(#slot_names: #slot_tys,)* #w: #ret_ty) -> #ret_ty {
            #(#items)*
            #body
        }
    })
    .map_err(|e| vec![e])?;
    let mut wrt: Vec<Ident> = f
        .params
        .iter()
        .filter(|p| p.active)
        .map(|p| p.ident.clone())
        .collect();
    wrt.extend(
        f.params
            .iter()
            .zip(&slot_names)
            .filter(|(p, _)| p.active)
            .map(|(_, s)| s.clone()),
    );
    wrt.push(w);
    Ok((dir_fn, wrt))
}

/// `__NAME_hdir`
fn dir_ident(name: &Ident) -> Ident {
    format_ident!("__{}_hdir", name, span = name.span())
}

/// The slot type of a parameter in `__f_hdir`: its own type, or `()` (`&()` for a
/// reference) for an integer, `bool`, `char` or string type.
fn slot_type(p: &crate::lower::Param) -> Type {
    if is_constant_type(&p.ty) {
        if matches!(p.ty, Type::Reference(_)) {
            syn::parse_quote!(&())
        } else {
            syn::parse_quote!(())
        }
    } else {
        p.ty.clone()
    }
}

/// The reverse mode of `__f_hdir` that is used: `__f_hdir_pullback` (what callers' code
/// calls) and `__f_hdir_grad` (what `_hvp` calls), hidden; its `_vjp` is dropped (compile
/// time), and so is the plain `__f_hdir`, which nothing calls.
fn hide(ts: TokenStream) -> TokenStream {
    match syn::parse2::<syn::File>(ts.clone()) {
        Ok(mut file) => {
            file.items.retain(
                |item| !matches!(item, syn::Item::Fn(f) if f.sig.ident.to_string().ends_with("_vjp")),
            );
            for item in &mut file.items {
                if let syn::Item::Fn(f) = item {
                    f.attrs.retain(|a| !a.path().is_ident("doc"));
                    f.attrs.push(syn::parse_quote!(#[doc(hidden)]));
                }
            }
            file.into_token_stream()
        }
        Err(_) => ts,
    }
}

fn is_float(ty: &Type) -> bool {
    matches!(ty, Type::Path(p) if p.qself.is_none() && (p.path.is_ident("f32") || p.path.is_ident("f64")))
}

/// The element type of an active parameter that the Hessian supports: `T`, `[T; N]`,
/// `&[T; N]`, `&[T]` for a float `T`.
fn hessian_param_ok(ty: &Type) -> bool {
    match ty {
        Type::Reference(r) => {
            r.mutability.is_none()
                && match &*r.elem {
                    Type::Slice(s) => is_float(&s.elem),
                    Type::Array(a) => is_float(&a.elem),
                    _ => false,
                }
        }
        Type::Array(a) => is_float(&a.elem),
        Type::Paren(p) => hessian_param_ok(&p.elem),
        other => is_float(other),
    }
}

/// An active parameter `_hvp` supports beyond [`hessian_param_ok`]: a matrix, a vector or a
/// parameter struct by shared reference (`&DMatrix<T>`, `&DVector<T>`, `&Mlp`).
fn hvp_param_ok(ty: &Type) -> bool {
    match ty {
        Type::Reference(r) => {
            r.mutability.is_none()
                && matches!(&*r.elem, Type::Path(p) if p.qself.is_none() && !is_float(&r.elem))
        }
        Type::Paren(p) => hvp_param_ok(&p.elem),
        _ => false,
    }
}

fn check(f: &Function, func: &ItemFn, ret_ty: &Type) -> Result<(), Vec<syn::Error>> {
    let mut errors = Vec::new();
    if !is_float(ret_ty) {
        errors.push(syn::Error::new_spanned(
            ret_ty,
            format!(
                "`hessian` needs a scalar-valued function: this one returns `{}`; `_hvp` and \
                 `_hessian` exist for functions returning f32 or f64 (for a vector-valued \
                 function, differentiate each scalar output, or use `forward`/`_vjp`)",
                crate::forward::type_text(ret_ty)
            ),
        ));
    }
    for p in &f.params {
        if p.ident == "self" {
            errors.push(syn::Error::new_spanned(
                func.sig.inputs.first(),
                "`hessian` is not supported on methods (a `self` parameter): write a free \
                 function taking the struct by reference (`fn loss(model: &Mlp, ..)`)",
            ));
            continue;
        }
        if p.active && !hessian_param_ok(&p.ty) && !hvp_param_ok(&p.ty) {
            errors.push(syn::Error::new_spanned(
                &p.ty,
                format!(
                    "`hessian`: the active parameter `{}` has type `{}`; `_hvp` supports f32/f64 \
                     parameters, arrays and slices of them (`[f64; N]`, `&[f64; N]`, `&[f64]`), \
                     and matrices and parameter structs by reference (`&DMatrix<f32>`, `&Mlp`); \
                     `_hessian` the first three only. Make it a constant by listing only the \
                     other parameters in `wrt(..)`",
                    p.ident,
                    crate::forward::type_text(&p.ty)
                ),
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Writes the body of `__f_hdir` from the IR of `f`.
struct Dir<'a> {
    f: &'a Function,
    root: TokenStream,
    /// The float type (the result's).
    t: &'a Type,
    w: Ident,
    /// The tangent of each active value, as an expression (an identifier).
    tan: HashMap<VarId, TokenStream>,
    errors: Vec<syn::Error>,
    next: usize,
    /// The element loads `base[index]` already made, per enclosing block: a repeated load
    /// (`x[i]` three times in `x[i] * x[i] - x[i]`) is an alias of the first, so that the
    /// reverse sweep tapes and accumulates one value and one tangent instead of three.
    loads: Vec<HashMap<String, VarId>>,
    /// The values that are matrices, vectors or parameter structs (not scalars): their
    /// tangents are not annotated with the float type.
    mat: HashSet<VarId>,
    /// The values whose tangent expression is a reference (a parameter's slot, a field of a
    /// tangent), not an owned value.
    tref: HashSet<VarId>,
    /// Statements that check, at compile time, a type the tangent of the current assignment
    /// assumes (a `.forward(..)` receiver is a `Linear`), written before its tangent.
    checks: TokenStream,
}

impl Dir<'_> {
    fn id(&self, v: VarId) -> &Ident {
        &self.f.vars[v].ident
    }

    fn tan_ident(&self, v: VarId) -> Ident {
        format_ident!("__hd{}", v)
    }

    fn val(&self, o: &Operand) -> TokenStream {
        match o {
            Operand::Var(v) => {
                let id = self.id(*v);
                quote!(#id)
            }
            Operand::Const(e) => quote!((#e)),
        }
    }

    /// The tangent of an operand, `None` when it carries none.
    fn t(&self, o: &Operand) -> Option<TokenStream> {
        match o {
            Operand::Var(v) if self.f.vars[*v].active => self.tan.get(v).cloned(),
            _ => None,
        }
    }

    fn zero(&self) -> TokenStream {
        let t = self.t;
        quote!((0.0 as #t))
    }

    fn is_mat(&self, o: &Operand) -> bool {
        matches!(o, Operand::Var(v) if self.mat.contains(v))
    }

    /// A value as a reference (`x` for a reference, `&x` otherwise).
    fn vref(&self, o: &Operand) -> TokenStream {
        match o {
            Operand::Var(v) if self.f.vars[*v].is_ref => {
                let id = self.id(*v);
                quote!(#id)
            }
            _ => {
                let v = self.val(o);
                quote!(&#v)
            }
        }
    }

    /// The tangent of an operand as a reference, `None` when it carries none.
    fn tref_of(&self, o: &Operand) -> Option<TokenStream> {
        let t = self.t(o)?;
        match o {
            Operand::Var(v) if self.tref.contains(v) => Some(t),
            _ => Some(quote!(&#t)),
        }
    }

    /// A path into the runtime's tensor functions for the second order.
    fn hop(&self, name: &str, span: Span) -> TokenStream {
        let root = &self.root;
        let n = format_ident!("{}", name, span = span);
        quote!(#root::hops::#n)
    }

    /// The tangent of `Linear::forward(recv, x)` (`x Wᵀ + b`): `x dWᵀ + dx Wᵀ + db`, the
    /// terms whose tangent is zero left out (the data `x` has none).
    fn linear_tangent(&self, recv: &Operand, x: &Operand, span: Span) -> Option<TokenStream> {
        let (mm, ab) = (self.hop("matmul_nt", span), self.hop("add_bias", span));
        let mut terms = Vec::new();
        let tr = self.t(recv);
        let r = self.val(recv);
        if let Some(tr) = &tr {
            let x = self.vref(x);
            terms.push(quote!(#mm(#x, &#tr.weight)));
        }
        if let Some(tx) = self.tref_of(x) {
            terms.push(quote!(#mm(#tx, &#r.weight)));
        }
        if terms.is_empty() {
            return None;
        }
        let inner = quote!(#(#terms)+*);
        Some(match tr {
            Some(tr) => quote!(#ab(&(#inner), &#tr.bias)),
            None => inner,
        })
    }

    /// The tangent of a call of a tensor function of the runtime (`relu`, `matmul_nt`,
    /// `cross_entropy`, ...) and whether it is a matrix; `None` for another function (a
    /// `hessian` function of the user's, called through its `__NAME_hdir`).
    fn tensor_call(
        &mut self,
        name: &str,
        args: &[Arg],
        dst: &Ident,
        span: Span,
    ) -> Option<(Option<TokenStream>, bool)> {
        let ops: Vec<&Operand> = args.iter().map(|a| &a.operand).collect();
        let ts: Vec<Option<TokenStream>> = ops.iter().map(|o| self.tref_of(o)).collect();
        let rs: Vec<TokenStream> = ops.iter().map(|o| self.vref(o)).collect();
        let n = args.len();
        let out = match (name, n) {
            ("relu" | "sigmoid" | "tanh" | "softmax", 1) => {
                let f = self.hop(&format!("{name}_dir"), span);
                (ts[0].as_ref().map(|t| quote!(#f(&#dst, #t))), true)
            }
            ("matmul_nt" | "matmul_tn", 2) => {
                let f = self.hop(name, span);
                let mut terms = Vec::new();
                let (a, b) = (&rs[0], &rs[1]);
                if let Some(ta) = &ts[0] {
                    terms.push(quote!(#f(#ta, #b)));
                }
                if let Some(tb) = &ts[1] {
                    terms.push(quote!(#f(#a, #tb)));
                }
                let t = (!terms.is_empty()).then(|| quote!(#(#terms)+*));
                (t, true)
            }
            ("add_bias" | "add_col_bias" | "add_bias_relu", 2) => {
                let f = self.hop(
                    if name == "add_col_bias" {
                        "add_col_bias"
                    } else {
                        "add_bias"
                    },
                    span,
                );
                let a = &rs[0];
                let t = match (&ts[0], &ts[1]) {
                    (Some(ta), Some(tb)) => Some(quote!(#f(#ta, #tb))),
                    (Some(ta), None) => Some(quote!((#ta).clone())),
                    (None, Some(tb)) => Some(quote!(#f(&(#a * 0.0), #tb))),
                    (None, None) => None,
                };
                let t = if name == "add_bias_relu" {
                    let r = self.hop("relu_dir", span);
                    t.map(|t| quote!(#r(&#dst, &(#t))))
                } else {
                    t
                };
                (t, true)
            }
            ("cross_entropy", 2) => {
                let f = self.hop("cross_entropy_dir", span);
                let z = &rs[0];
                let labels = self.arg(&args[1]);
                (ts[0].as_ref().map(|t| quote!(#f(#z, #labels, #t))), false)
            }
            ("l2_penalty", 1) => {
                let w = &rs[0];
                (
                    ts[0].as_ref().map(|t| quote!((#w).component_mul(#t).sum())),
                    false,
                )
            }
            _ => {
                if ops.iter().any(|o| self.is_mat(o)) && ts.iter().any(Option::is_some) {
                    self.unsupported(
                        span,
                        &format!(
                            "`{name}` of a matrix (no second-order rule; the tensor functions \
                             with one: relu, sigmoid, tanh, softmax, matmul_nt, matmul_tn, \
                             add_bias, add_col_bias, add_bias_relu, cross_entropy, l2_penalty)"
                        ),
                    );
                    return Some((None, false));
                }
                return None;
            }
        };
        Some(out)
    }

    fn unsupported(&mut self, span: Span, what: &str) {
        self.errors.push(syn::Error::new(
            span,
            format!(
                "`hessian`: {what} is not supported in a function with `_hvp`/`_hessian`; \
                 the second order supports scalars, arrays and slices of f32/f64, arithmetic, \
                 the float methods, `if`, `for`, `return`, calls of other `hessian` functions, \
                 and on matrices `+ - *`, scalar `*`/`/`, transposes, `component_mul`, `sum`, \
                 `mean`, fields of parameter structs, the tensor functions with a second-order \
                 rule and `Linear::forward`/`forward_relu`"
            ),
        ));
    }

    /// The statements of a block; in tail position, its final `return` is the tail value.
    fn block(&mut self, b: &Block, tail: bool) -> TokenStream {
        self.loads.push(HashMap::new());
        let out = self.block_inner(b, tail);
        self.loads.pop();
        out
    }

    fn block_inner(&mut self, b: &Block, tail: bool) -> TokenStream {
        let mut out = TokenStream::new();
        let n = b.stmts.len();
        for (k, s) in b.stmts.iter().enumerate() {
            let last = tail && k + 1 == n;
            match s {
                Stmt::Assign(a) => out.extend(self.assign(a)),
                Stmt::Return(v, span) => {
                    let e = self.ret_expr(v, *span);
                    if last {
                        out.extend(e);
                    } else {
                        out.extend(quote_spanned!(*span=> return #e;));
                    }
                    return out;
                }
                Stmt::If(i) => {
                    let both = i.then_b.diverges && i.else_b.diverges;
                    if last && both {
                        let cond = &i.cond;
                        let tb = self.block(&i.then_b, true);
                        let eb = self.block(&i.else_b, true);
                        out.extend(quote!(if #cond { #tb } else { #eb }));
                        return out;
                    }
                    out.extend(self.lower_if(i));
                    if both {
                        return out;
                    }
                }
                Stmt::For(fl) => out.extend(self.lower_for(fl)),
            }
        }
        out
    }

    fn ret_expr(&self, v: &Operand, span: Span) -> TokenStream {
        let w = &self.w;
        let value = self.val(v);
        match self.t(v) {
            Some(t) => quote_spanned!(span=> #w * #value + #t),
            None => quote_spanned!(span=> #w * #value),
        }
    }

    fn assign(&mut self, a: &Assign) -> TokenStream {
        let span = a.span;
        let dst = self.id(a.dst).clone();
        let active = self.f.vars[a.dst].active;
        let ty = self
            .f
            .types
            .get(&a.dst)
            .filter(|ty| !matches!(ty, Type::Reference(_)));
        let ann = ty.map(|ty| quote!(: #ty));
        if let Op::Index(b, i) = &a.op {
            let key = match i {
                Operand::Var(v) => format!("{b}[v{v}]"),
                Operand::Const(e) => format!("{b}[{}]", e.to_token_stream()),
            };
            let seen = self.loads.iter().rev().find_map(|m| m.get(&key)).copied();
            match seen {
                Some(first) if self.f.vars[first].active == active => {
                    let fid = self.id(first).clone();
                    let mut out = quote_spanned!(span=> let #dst = #fid;);
                    if let Some(tf) = self.tan.get(&first).cloned() {
                        let tid = self.tan_ident(a.dst);
                        out.extend(quote_spanned!(span=> let #tid = #tf;));
                        self.tan.insert(a.dst, quote!(#tid));
                    }
                    return out;
                }
                _ => {
                    self.loads.last_mut().unwrap().insert(key, a.dst);
                }
            }
        }
        let value = match &a.op {
            Op::Inactive(ts) => {
                // A statement macro (`println!`, `assert!`) runs in `f` and `_grad`, not in
                // the directional derivative.
                if let Ok(b) = syn::parse2::<syn::Block>(ts.clone())
                    && (matches!(b.stmts.last(), Some(syn::Stmt::Macro(_)))
                        || matches!(
                            b.stmts.last(),
                            Some(syn::Stmt::Expr(syn::Expr::Macro(_), _))
                        ))
                {
                    return TokenStream::new();
                }
                // A value taken out of a pattern (`match &o { Some(k) => k.clone(), _ =>
                // unreachable!() }`) is constant code as it stands: the marker keeps the
                // re-lowering from reading it as a `match` of its own.
                if let Ok(syn::Expr::Match(_)) = syn::parse2::<syn::Expr>(ts.clone()) {
                    quote_spanned!(span=> __symgrad_inactive(#ts))
                } else {
                    ts.clone()
                }
            }
            Op::Clone(x) => {
                let x = self.val(x);
                quote_spanned!(span=> #x.clone())
            }
            Op::Add(x, y) => self.bin(x, y, quote!(+)),
            Op::Sub(x, y) => self.bin(x, y, quote!(-)),
            Op::Mul(x, y) => self.bin(x, y, quote!(*)),
            Op::Div(x, y) => self.bin(x, y, quote!(/)),
            Op::Neg(x) => {
                let x = self.val(x);
                quote_spanned!(span=> -#x)
            }
            Op::Math(m, _, _) if m.cast_target().is_some() => {
                self.unsupported(
                    span,
                    "a cast between `f32` and `f64` of a value that carries a gradient",
                );
                return TokenStream::new();
            }
            Op::Math(m, args, prefix) => {
                let name = format_ident!("{}", m.name(), span = span);
                let all: Vec<TokenStream> = args.iter().map(|a| self.val(a)).collect();
                match prefix {
                    Some(p) => quote_spanned!(span=> #p::#name(#(#all),*)),
                    None => {
                        let (r, rest) = (&all[0], &all[1..]);
                        quote_spanned!(span=> #r.#name(#(#rest),*))
                    }
                }
            }
            Op::Index(b, i) => {
                let b = self.id(*b);
                let i = self.val(i);
                quote_spanned!(span=> #b[#i])
            }
            Op::Call(Callee::Path(p), args) => {
                let all: Vec<TokenStream> = args.iter().map(|a| self.arg(a)).collect();
                quote_spanned!(span=> #p(#(#all),*))
            }
            Op::Call(
                Callee::Method {
                    receiver, method, ..
                },
                args,
            ) => {
                let r = self.id(*receiver);
                let all: Vec<TokenStream> = args.iter().map(|a| self.arg(a)).collect();
                quote_spanned!(span=> #r.#method(#(#all),*))
            }
            Op::Field(b, m) => {
                let b = self.id(*b);
                quote_spanned!(span=> &#b.#m)
            }
            Op::MatMulNt(x, y) => {
                let (x, y) = (self.val(x), self.val(y));
                quote_spanned!(span=> #x * #y.transpose())
            }
            Op::MatMulTn(x, y) => {
                let (x, y) = (self.val(x), self.val(y));
                quote_spanned!(span=> #x.transpose() * #y)
            }
            Op::Transpose(x) => {
                let x = self.val(x);
                quote_spanned!(span=> #x.transpose())
            }
            Op::ComponentMul(x, y) => {
                let (x, y) = (self.val(x), self.vref(y));
                quote_spanned!(span=> #x.component_mul(#y))
            }
            Op::Sum(x) => {
                let x = self.val(x);
                quote_spanned!(span=> #x.sum())
            }
            Op::Mean(x) => {
                let x = self.val(x);
                quote_spanned!(span=> #x.mean())
            }
            Op::Map(..) => {
                self.unsupported(span, "a `map` of a matrix");
                return TokenStream::new();
            }
            Op::Tuple(_) => {
                self.unsupported(span, "a tuple value");
                return TokenStream::new();
            }
            Op::ArrayLit(..) | Op::Repeat(..) | Op::SetIndex(..) | Op::Push(..) => {
                self.unsupported(span, "a local array or `Vec`");
                return TokenStream::new();
            }
        };
        let mut out = quote_spanned!(span=> let #dst #ann = #value;);
        let mut is_mat = match &a.op {
            Op::Field(..)
            | Op::Call(Callee::Method { .. }, _)
            | Op::MatMulNt(..)
            | Op::MatMulTn(..)
            | Op::Transpose(_)
            | Op::ComponentMul(..) => true,
            Op::Add(x, y) | Op::Sub(x, y) | Op::Mul(x, y) | Op::Div(x, y) => {
                self.is_mat(x) || self.is_mat(y)
            }
            Op::Neg(x) | Op::Clone(x) => self.is_mat(x),
            _ => false,
        };
        if !active {
            if is_mat {
                self.mat.insert(a.dst);
            }
            return out;
        }
        let tangent = match &a.op {
            Op::Call(Callee::Path(p), args) => {
                let name = p.segments.last().unwrap().ident.to_string();
                match self.tensor_call(&name, args, &dst, span) {
                    Some((t, m)) => {
                        is_mat = m;
                        t
                    }
                    None => self.tangent(a, &dst),
                }
            }
            _ => self.tangent(a, &dst),
        };
        out.extend(std::mem::take(&mut self.checks));
        if is_mat {
            self.mat.insert(a.dst);
        }
        let Some(tangent) = tangent else {
            return out;
        };
        let tid = self.tan_ident(a.dst);
        let t = self.t;
        if matches!(a.op, Op::Clone(_)) || is_mat {
            out.extend(quote_spanned!(span=> let #tid = #tangent;));
        } else {
            out.extend(quote_spanned!(span=> let #tid: #t = #tangent;));
        }
        let is_ref_tangent = match &a.op {
            Op::Field(..) => true,
            Op::Clone(Operand::Var(x)) => self.tref.contains(x),
            _ => false,
        };
        if is_ref_tangent {
            self.tref.insert(a.dst);
        }
        self.tan.insert(a.dst, quote!(#tid));
        out
    }

    fn bin(&self, x: &Operand, y: &Operand, op: TokenStream) -> TokenStream {
        let (x, y) = (self.val(x), self.val(y));
        quote!(#x #op #y)
    }

    /// A call argument as the user passed it.
    fn arg(&self, a: &Arg) -> TokenStream {
        let v = self.val(&a.operand);
        if a.by_ref { quote!(&#v) } else { v }
    }

    /// The tangent of an assignment's value (`dst` is its name), an expression.
    fn tangent(&mut self, a: &Assign, dst: &Ident) -> Option<TokenStream> {
        let span = a.span;
        let tv = |g: &Self, o: &Operand| g.t(o);
        let v = |g: &Self, o: &Operand| g.val(o);
        let zero = self.zero();
        let sum = |terms: Vec<TokenStream>| -> TokenStream {
            if terms.is_empty() {
                return zero.clone();
            }
            quote!(#(#terms)+*)
        };
        let t = match &a.op {
            Op::Clone(x) => tv(self, x)?,
            Op::Add(x, y) => sum(tv(self, x).into_iter().chain(tv(self, y)).collect()),
            Op::Sub(x, y) => match (tv(self, x), tv(self, y)) {
                (Some(a), Some(b)) => quote!(#a - #b),
                (Some(a), None) => a,
                (None, Some(b)) => quote!(-#b),
                (None, None) => zero,
            },
            Op::Neg(x) => {
                let tx = tv(self, x)?;
                quote!(-#tx)
            }
            Op::Mul(x, y) => {
                let (vx, vy) = (v(self, x), v(self, y));
                let mut terms = Vec::new();
                if let Some(tx) = tv(self, x) {
                    terms.push(quote!(#tx * #vy));
                }
                if let Some(ty) = tv(self, y) {
                    terms.push(quote!(#vx * #ty));
                }
                sum(terms)
            }
            Op::Div(x, y) => {
                let vy = v(self, y);
                match (tv(self, x), tv(self, y)) {
                    (Some(a), Some(b)) => quote!((#a - #dst * #b) / #vy),
                    (Some(a), None) => quote!(#a / #vy),
                    (None, Some(b)) => quote!(-(#dst * #b) / #vy),
                    (None, None) => zero,
                }
            }
            Op::Math(m, args, prefix) => self.math(*m, args, prefix.as_ref(), dst, span),
            Op::Index(b, i) => {
                let tb = self.tan.get(b)?.clone();
                let i = v(self, i);
                quote!(#tb[#i])
            }
            Op::Field(b, m) => {
                let tb = self.tan.get(b)?.clone();
                quote!(&#tb.#m)
            }
            Op::Call(
                Callee::Method {
                    receiver, method, ..
                },
                args,
            ) => {
                let name = method.to_string();
                if !matches!(name.as_str(), "forward" | "forward_relu") || args.len() != 1 {
                    self.unsupported(
                        method.span(),
                        &format!(
                            "the method call `.{name}(..)` (the methods with a second-order \
                             rule are `Linear::forward` and `Linear::forward_relu`)"
                        ),
                    );
                    return None;
                }
                // The rule is `Linear`'s: another type's `forward` is a compile error at the
                // call (not a wrong Hessian), through a trait only `Linear` implements.
                let r = self.val(&Operand::Var(*receiver));
                let root = &self.root;
                let ms = method.span();
                self.checks.extend(
                    quote_spanned!(ms=> debug_assert!(#root::hops::second_order_linear(&#r));),
                );
                let t = self.linear_tangent(&Operand::Var(*receiver), &args[0].operand, span)?;
                if name == "forward_relu" {
                    let r = self.hop("relu_dir", span);
                    quote!(#r(&#dst, &(#t)))
                } else {
                    t
                }
            }
            Op::MatMulNt(x, y) => {
                let (vx, vy) = (v(self, x), v(self, y));
                let mut terms = Vec::new();
                if let Some(tx) = tv(self, x) {
                    terms.push(quote!(#tx * #vy.transpose()));
                }
                if let Some(ty) = tv(self, y) {
                    terms.push(quote!(#vx * #ty.transpose()));
                }
                sum(terms)
            }
            Op::MatMulTn(x, y) => {
                let (vx, vy) = (v(self, x), v(self, y));
                let mut terms = Vec::new();
                if let Some(tx) = tv(self, x) {
                    terms.push(quote!(#tx.transpose() * #vy));
                }
                if let Some(ty) = tv(self, y) {
                    terms.push(quote!(#vx.transpose() * #ty));
                }
                sum(terms)
            }
            Op::Transpose(x) => {
                let tx = tv(self, x)?;
                quote!(#tx.transpose())
            }
            Op::Sum(x) => {
                let tx = tv(self, x)?;
                quote!(#tx.sum())
            }
            Op::Mean(x) => {
                let tx = tv(self, x)?;
                quote!(#tx.mean())
            }
            Op::ComponentMul(x, y) => {
                let (vx, ry) = (v(self, x), self.vref(y));
                let mut terms = Vec::new();
                if let Some(tx) = tv(self, x) {
                    terms.push(quote!(#tx.component_mul(#ry)));
                }
                if let Some(ty) = self.tref_of(y) {
                    terms.push(quote!(#vx.component_mul(#ty)));
                }
                sum(terms)
            }
            Op::Call(Callee::Path(p), args) => {
                let root = self.root.clone();
                let mut p = p.clone();
                let last = p.segments.last_mut().unwrap();
                last.ident = dir_ident(&last.ident);
                let vals: Vec<TokenStream> = args.iter().map(|a| self.arg(a)).collect();
                let slots: Vec<TokenStream> = args
                    .iter()
                    .map(|a| {
                        let is_ref = a.by_ref
                            || matches!(&a.operand, Operand::Var(v) if self.f.vars[*v].is_ref);
                        match self.t(&a.operand) {
                            Some(t) if a.by_ref => quote!(&#t),
                            Some(t) => t,
                            None => {
                                let e = self.arg(a);
                                if matches!(&a.operand, Operand::Const(syn::Expr::Lit(l)) if matches!(l.lit, syn::Lit::Float(_)))
                                    && !a.by_ref
                                {
                                    quote!(0.0)
                                } else if is_ref {
                                    quote!(&#root::dir_zero(#e))
                                } else {
                                    quote!(#root::dir_zero(&#e))
                                }
                            }
                        }
                    })
                    .collect();
                quote_spanned!(span=> #p(#(#vals,)* #(#slots,)* 0.0))
            }
            _ => return None,
        };
        Some(t)
    }

    /// The tangent of a scalar math function, as an expression of the values and tangents.
    fn math(
        &mut self,
        m: MathFn,
        args: &[Operand],
        prefix: Option<&Ident>,
        y: &Ident,
        span: Span,
    ) -> TokenStream {
        use MathFn::*;
        let t = self.t;
        let zero = self.zero();
        let v: Vec<TokenStream> = args.iter().map(|a| self.val(a)).collect();
        let d: Vec<Option<TokenStream>> = args.iter().map(|a| self.t(a)).collect();
        let call = |name: &str, x: &TokenStream| -> TokenStream {
            let n = format_ident!("{}", name, span = span);
            match prefix {
                Some(p) => quote!(#p::#n(#x)),
                None => quote!(#x.#n()),
            }
        };
        let dx = d[0].clone().unwrap_or_else(|| zero.clone());
        let x = &v[0];
        match m {
            Sin => {
                let c = call("cos", x);
                quote!(#dx * #c)
            }
            Cos => {
                let s = call("sin", x);
                quote!(-(#dx * #s))
            }
            Tan => quote!(#dx * (1.0 + #y * #y)),
            Asin => {
                let s = call("sqrt", &quote!((1.0 - #x * #x)));
                quote!(#dx / #s)
            }
            Acos => {
                let s = call("sqrt", &quote!((1.0 - #x * #x)));
                quote!(-(#dx / #s))
            }
            Atan => quote!(#dx / (1.0 + #x * #x)),
            Sinh => {
                let c = call("cosh", x);
                quote!(#dx * #c)
            }
            Cosh => {
                let s = call("sinh", x);
                quote!(#dx * #s)
            }
            Tanh => quote!(#dx * (1.0 - #y * #y)),
            Exp => quote!(#dx * #y),
            Exp2 => quote!(#dx * #y * (::core::f64::consts::LN_2 as #t)),
            Ln => quote!(#dx / #x),
            Log10 => quote!(#dx / (#x * (::core::f64::consts::LN_10 as #t))),
            Log2 => quote!(#dx / (#x * (::core::f64::consts::LN_2 as #t))),
            Sqrt => quote!(#dx * 0.5 / #y),
            Cbrt => quote!(#dx / (3.0 * #y * #y)),
            ExpM1 => quote!(#dx * (#y + 1.0)),
            Ln1p => quote!(#dx / (1.0 + #x)),
            Asinh => {
                let s = call("sqrt", &quote!((#x * #x + 1.0)));
                quote!(#dx / #s)
            }
            Acosh => {
                let s = call("sqrt", &quote!((#x * #x - 1.0)));
                quote!(#dx / #s)
            }
            Atanh => quote!(#dx / (1.0 - #x * #x)),
            // Rejected where the value is written (`Op::Math` above).
            AsF32 | AsF64 => quote!(#dx),
            Recip => quote!(-(#dx * #y * #y)),
            Signum => zero,
            Abs => {
                // 0 at 0, as the reverse and forward rules.
                quote!(if #x > 0.0 { #dx } else if #x < 0.0 { -#dx } else { #zero })
            }
            Powi => {
                let n = &v[1];
                let p = format_ident!("powi", span = span);
                let pw = match prefix {
                    Some(pr) => quote!(#pr::#p(#x, #n - 1)),
                    None => quote!(#x.#p(#n - 1)),
                };
                quote!(#dx * ((#n) as #t) * #pw)
            }
            Max | Min => {
                let (a, b) = (&v[0], &v[1]);
                let da = d[0].clone().unwrap_or_else(|| zero.clone());
                let db = d[1].clone().unwrap_or_else(|| zero.clone());
                let cmp = if m == Max { quote!(>=) } else { quote!(<=) };
                quote!(if #a #cmp #b { #da } else { #db })
            }
            Atan2 => {
                // atan2(a, b): (b da - a db) / (a² + b²)
                let (a, b) = (&v[0], &v[1]);
                let mut terms = Vec::new();
                if let Some(da) = &d[0] {
                    terms.push(quote!(#b * #da));
                }
                if let Some(db) = &d[1] {
                    terms.push(quote!(-(#a * #db)));
                }
                quote!((#(#terms)+*) / (#a * #a + #b * #b))
            }
            Hypot => {
                let (a, b) = (&v[0], &v[1]);
                let mut terms = Vec::new();
                if let Some(da) = &d[0] {
                    terms.push(quote!(#a * #da));
                }
                if let Some(db) = &d[1] {
                    terms.push(quote!(#b * #db));
                }
                quote!((#(#terms)+*) / #y)
            }
            Powf => {
                // y = a^b: b a^(b-1) da + y ln(a) db
                let (a, b) = (&v[0], &v[1]);
                let mut terms = Vec::new();
                if let Some(da) = &d[0] {
                    let p = format_ident!("powf", span = span);
                    let pw = match prefix {
                        Some(pr) => quote!(#pr::#p(#a, #b - 1.0)),
                        None => quote!(#a.#p(#b - 1.0)),
                    };
                    terms.push(quote!(#da * #b * #pw));
                }
                if let Some(db) = &d[1] {
                    let l = call("ln", a);
                    terms.push(quote!(#db * #y * #l));
                }
                quote!(#(#terms)+*)
            }
            Log => {
                // log_b a = ln a / ln b: (da / a - y db / b) / ln b
                let (a, b) = (&v[0], &v[1]);
                let mut terms = Vec::new();
                if let Some(da) = &d[0] {
                    terms.push(quote!(#da / #a));
                }
                if let Some(db) = &d[1] {
                    terms.push(quote!(-(#y * #db / #b)));
                }
                let lb = call("ln", b);
                quote!((#(#terms)+*) / #lb)
            }
            MulAdd => {
                let (a, b) = (&v[0], &v[1]);
                let mut terms = Vec::new();
                if let Some(da) = &d[0] {
                    terms.push(quote!(#da * #b));
                }
                if let Some(db) = &d[1] {
                    terms.push(quote!(#a * #db));
                }
                if let Some(dc) = &d[2] {
                    terms.push(dc.clone());
                }
                quote!(#(#terms)+*)
            }
        }
    }

    fn fresh(&mut self, base: &str) -> Ident {
        self.next += 1;
        format_ident!("__h{}{}", base, self.next)
    }

    fn lower_if(&mut self, i: &If) -> TokenStream {
        let t = self.t;
        let mut pre = TokenStream::new();
        for p in &i.phis {
            let id = self.id(p.dst).clone();
            if self.is_mat(&p.then_v) || self.is_mat(&p.else_v) {
                self.mat.insert(p.dst);
            }
            if self.f.vars[p.dst].active && self.mat.contains(&p.dst) {
                let tid = self.tan_ident(p.dst);
                pre.extend(quote!(let mut #id; let mut #tid;));
            } else if self.f.vars[p.dst].active {
                let tid = self.tan_ident(p.dst);
                pre.extend(quote!(let mut #id: #t; let mut #tid: #t;));
            } else {
                // Assigned in every branch that does not return (its type is the values').
                pre.extend(quote!(let mut #id;));
            }
        }
        let branch = |g: &mut Self, b: &Block, then: bool| -> TokenStream {
            let body = g.block(b, false);
            if b.diverges {
                return quote!({ #body });
            }
            let mut sets = TokenStream::new();
            for p in &i.phis {
                let o = if then { &p.then_v } else { &p.else_v };
                let id = g.id(p.dst).clone();
                let val = g.val(o);
                sets.extend(quote!(#id = #val;));
                if g.f.vars[p.dst].active {
                    let tid = g.tan_ident(p.dst);
                    let tv = if g.mat.contains(&p.dst) {
                        // A matrix: an owned tangent on both sides, a zero of the value's
                        // shape where there is none.
                        match (g.t(o), o) {
                            (Some(t), Operand::Var(v)) if g.tref.contains(v) => {
                                quote!((#t).clone())
                            }
                            (Some(t), _) => t,
                            (None, _) => {
                                let z = g.zero();
                                quote!((#val * #z))
                            }
                        }
                    } else {
                        g.t(o).unwrap_or_else(|| g.zero())
                    };
                    sets.extend(quote!(#tid = #tv;));
                }
            }
            quote!({ #body #sets })
        };
        let then_b = branch(self, &i.then_b, true);
        let else_b = branch(self, &i.else_b, false);
        for p in &i.phis {
            if self.f.vars[p.dst].active {
                let tid = self.tan_ident(p.dst);
                self.tan.insert(p.dst, quote!(#tid));
            }
        }
        let cond = &i.cond;
        quote!(#pre if #cond #then_b else #else_b)
    }

    fn lower_for(&mut self, fl: &For) -> TokenStream {
        let t = self.t;
        let index = self.id(fl.index).clone();
        let iter = &fl.iter;
        let mut pre = TokenStream::new();
        let mut heads = TokenStream::new();
        let mut ends = TokenStream::new();
        let mut post = TokenStream::new();
        let cur: Vec<(Ident, Ident)> = fl
            .carried
            .iter()
            .map(|_| (self.fresh("c"), self.fresh("ct")))
            .collect();
        let act: Vec<bool> = fl
            .carried
            .iter()
            .map(|c| self.f.vars[c.head].active || self.f.vars[c.after].active)
            .collect();
        for c in &fl.carried {
            if self.is_mat(&c.init) {
                self.unsupported(
                    self.f.vars[c.head].ident.span(),
                    "a matrix carried by a loop (assigned in its body)",
                );
            }
        }
        for ((c, (cv, ct)), a) in fl.carried.iter().zip(&cur).zip(&act) {
            let init = self.val(&c.init);
            let head = self.id(c.head).clone();
            if *a {
                let tinit = self.t(&c.init).unwrap_or_else(|| self.zero());
                pre.extend(quote!(let mut #cv: #t = #init; let mut #ct: #t = #tinit;));
                let th = self.tan_ident(c.head);
                heads.extend(quote!(let #head = #cv; let #th = #ct;));
                self.tan.insert(c.head, quote!(#th));
            } else {
                pre.extend(quote!(let mut #cv = #init;));
                heads.extend(quote!(let #head = #cv;));
            }
        }
        let body = self.block(&fl.body, false);
        for ((c, (cv, ct)), a) in fl.carried.iter().zip(&cur).zip(&act) {
            let end = self.val(&c.end);
            ends.extend(quote!(#cv = #end;));
            let after = self.id(c.after).clone();
            post.extend(quote!(let #after = #cv;));
            if *a {
                let tend = self.t(&c.end).unwrap_or_else(|| self.zero());
                ends.extend(quote!(#ct = #tend;));
                let ta = self.tan_ident(c.after);
                post.extend(quote!(let #ta = #ct;));
                self.tan.insert(c.after, quote!(#ta));
            }
        }
        let tail = if fl.body.diverges {
            TokenStream::new()
        } else {
            ends
        };
        // A `while`, or a loop left by `break`: its condition, checked at the top.
        // The carried values here are scalars (`Copy`): nothing to move back on exit.
        let check = fl.exit_check(TokenStream::new());
        quote! {
            #pre
            for #index in #iter {
                #heads
                #check
                #body
                #tail
            }
            #post
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    /// The directional-derivative source of `func` (the reverse mode of it is `emit`'s and
    /// is covered by the tests of the generated functions).
    fn dir_text(func: ItemFn) -> String {
        let args = Args::default();
        let f = crate::lower::lower(&func, &args).unwrap_or_else(|_| panic!("lowering"));
        let (dir, wrt) = dir_source(&f, &func, &quote!(::symgrad::__private))
            .unwrap_or_else(|_| panic!("dir_source"));
        let names: Vec<String> = wrt.iter().map(ToString::to_string).collect();
        format!(
            "wrt: {}\n{}",
            names.join(", "),
            crate::pretty::pretty(&quote!(#dir))
        )
    }

    #[test]
    fn straight_line_and_math() {
        let text = dir_text(syn::parse_quote! {
            fn f(x: f64, y: f64) -> f64 {
                let s = x * y.sin();
                s / x
            }
        });
        let want = "wrt: x, y, __hv_x, __hv_y, __hw
fn __f_hdir(x : f64, y : f64, __hv_x : f64, __hv_y : f64, __hw : f64) -> f64 {
    let __t2 = y.sin();
    let __hd2 : f64 = __hv_y * y.cos();
    let __s_3 = x * __t2;
    let __hd3 : f64 = __hv_x * __t2 + x * __hd2;
    let __t4 = __s_3 / x;
    let __hd4 : f64 = (__hd3 - __t4 * __hv_x) / x;
    __hw * __t4 + __hd4
}";
        assert_eq!(text, want);
    }

    #[test]
    fn branches_loops_and_repeated_loads() {
        let text = dir_text(syn::parse_quote! {
            fn g(x: &[f64], n: usize) -> f64 {
                let mut s = 0.0;
                for i in 0..n {
                    s += x[i] * x[i];
                }
                let t = if s > 1.0 { s } else { 2.0 };
                t
            }
        });
        // One load of `x[i]` (the second is an alias), the loop carries the tangent beside
        // the value, the `if` assigns both, a constant side gets a zero tangent.
        assert!(text.contains("let __hd4 : f64 = __hv_x[__i_2];"), "{text}");
        assert!(text.contains("let __t5 = __t4;"), "{text}");
        assert!(text.contains("let __hd5 = __hd4;"), "{text}");
        assert!(
            text.contains("let __hd6 : f64 = __hd4 * __t5 + __t4 * __hd5;"),
            "{text}"
        );
        assert!(text.contains("__hct2 = __hd7;"), "{text}");
        assert!(text.contains("let mut __t9 : f64;"), "{text}");
        assert!(text.contains("__hd9 = (0.0 as f64);"), "{text}");
        assert!(text.contains("__hv_n : ()"), "{text}");
        assert!(text.starts_with("wrt: x, __hv_x, __hw"), "{text}");
    }
}
