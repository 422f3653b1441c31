//! The `#[differentiable]` attribute and `#[derive(Params)]` of symgrad.
//!
//! The macro sees only syntax: it lowers the function to single operations
//! (`lower`), walks them backwards and emits calls to derivative rules that live in
//! the runtime as ordinary Rust functions (`emit`). rustc then resolves scalar versus
//! matrix. See the `symgrad` crate for the user documentation.

mod analysis;
mod args;
mod arrays;
mod custom;
mod emit;
mod forward;
#[cfg(test)]
mod golden;
mod hessian;
#[cfg(test)]
mod inspect;
mod ir;
mod lower;
mod params;
mod pretty;

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::{format_ident, quote};
use syn::{FnArg, ItemFn, ReturnType, Type, parse_macro_input};

/// Writes reverse-mode gradient code for a function at compile time.
///
/// ```ignore
/// #[differentiable]                 // every float, array, slice, matrix or struct parameter
/// fn f(x: f64, y: f64) -> f64 { x * y + x.sin() }
/// #[differentiable(wrt(w))]         // only `w` carries a gradient; `x`, `n` are constants
/// fn g(w: &DMatrix<f32>, x: &DMatrix<f32>, n: usize) -> f32 { (x * w.transpose()).sum() }
/// ```
///
/// Beside the function (unchanged), with its visibility:
/// - `f_grad(args..) -> (value, gradients)` for an `f32`/`f64` result: one gradient per
///   active parameter, in declaration order (a bare gradient for one active parameter);
/// - `f_vjp(args.., seed) -> (value, gradients)`: the gradients of `seed * f(..)`, for any
///   result type (a matrix result takes a matrix seed, a tuple result a tuple of seeds);
/// - `f_pullback(args..)` (hidden): the value and a closure computing the gradients later;
///   what the code generated for a caller of `f` calls.
///
/// Arguments: `wrt(a, b)` names the active parameters (default: every parameter whose type
/// is not an integer, `bool`, `char`, string, `Option`, or a collection of those); `crate = path`
/// names the `symgrad` crate when it is renamed; `forward` generates the forward mode,
/// `f_jvp(args.., tangents..) -> (value, tangent)` with one tangent per active parameter of
/// that parameter's type (and the hidden `f_fwd` that callers' generated code calls), instead
/// of the reverse mode; `forward, reverse` generates both; `hessian` (implies reverse) generates,
/// for an `f32`/`f64` function of scalars, arrays and slices, `f_hvp(args.., v..) -> (value,
/// gradient, H v)` and `f_hessian(args..) -> (value, gradient, DMatrix)` by reverse over
/// forward (see `hessian.rs`).
///
/// The body may use `let`/`let mut` (also `let (a, b) = (x, y);`), `=`, `+=`, `-=`, `*=`,
/// `/=`, `if`/`else if`/`else` and `if let` (as statements or values), `match` (with guards
/// and bindings), `for` over ranges and iterator chains (`iter`, `enumerate`, `zip`, `rev`,
/// `skip`, `take`, `step_by`, `map`), `while`, `loop`, `break` (also with a value and a
/// label), `continue`, early `return`, closures bound with `let` or passed to `map`/`fold`,
/// `sum`/`product`/`fold`/`count` of chains, local arrays and `Vec`s (`[x; n]`, `vec![..]`,
/// `a[i] = v`, `push`), arithmetic, the float methods with a derivative rule (`sin`, `exp`,
/// `powi`, `max`, ...), matrix `*`, `transpose`, `sum`, `mean`, `component_mul`, indexing,
/// fields, casts of integers, calls of other `#[differentiable]` or `#[custom_vjp]`
/// functions, statement macros (`println!`, `assert!`, `debug_assert!`, ...), which run in
/// the forward pass, and a generic float type (`fn f<T: Float>`, reverse and forward mode).
/// A function may return a tuple of floats (`-> (f64, f64)`, nested tuples too): its `_vjp`
/// takes a tuple seed, its `_jvp` returns a tuple tangent, it has no `_grad`, and callers
/// destructure it (`let (a, _) = f(..);`) or read its parts (`p.0`).
///
/// Limits: no recursion, `while let`, other macros, trait objects, `unsafe` or `async`;
/// parameters are read-only. Each rejected construct is a compile error on its own tokens.
///
/// To read what it writes for a file: `SYMGRAD_EXPAND=file.rs cargo test -p symgrad-macro
/// print_expansion -- --ignored --nocapture`.
#[proc_macro_attribute]
pub fn differentiable(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = parse_macro_input!(args as args::Args);
    let func = parse_macro_input!(item as ItemFn);
    let out = expand(&args, &func).unwrap_or_else(|errors| fallback(&func, errors));
    if std::env::var_os("SYMGRAD_DEBUG_EXPAND")
        .is_some_and(|v| v == func.sig.ident.to_string().as_str())
    {
        eprintln!("{}", pretty::pretty(&out));
    }
    out.into()
}

/// Makes a hand-written `NAME_vjp(args.., seed) -> (value, gradients)` the derivative of
/// `NAME` for code that `#[differentiable]` generates; see the `symgrad` crate docs.
#[proc_macro_attribute]
pub fn custom_vjp(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = parse_macro_input!(args as args::Args);
    let func = parse_macro_input!(item as ItemFn);
    custom::expand(&args, &func)
        .unwrap_or_else(|e| {
            let e = e.into_compile_error();
            quote!(#e #func)
        })
        .into()
}

/// Makes a hand-written `NAME_jvp(args.., tangents..) -> (value, tangent)` the forward mode
/// of `NAME` for code that `#[differentiable(forward)]` generates: it writes `NAME_fwd`,
/// which turns the caller's tangent slots into the `_jvp`'s tangents (zeros for constant
/// arguments). `wrt(..)` names the differentiable parameters when the default (every
/// parameter of a float type) does not fit; one tangent per such parameter follows the
/// parameters.
#[proc_macro_attribute]
pub fn custom_jvp(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = parse_macro_input!(args as args::Args);
    let func = parse_macro_input!(item as ItemFn);
    forward::custom::expand(&args, &func, &root(&args))
        .unwrap_or_else(|e| {
            let e = e.into_compile_error();
            quote!(#e #func)
        })
        .into()
}

/// Implements `Params`, `Differentiable` and `Accumulate` for a struct of parameters.
#[proc_macro_derive(Params, attributes(params))]
pub fn derive_params(item: TokenStream) -> TokenStream {
    let input = parse_macro_input!(item as syn::DeriveInput);
    params::expand(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// On error: the compile errors, and the function's signature with a body that is never
/// compiled into anything, so that callers still type-check and the user sees the errors
/// that matter, not rustc's errors on the same body nor a cascade of missing functions.
fn fallback(func: &ItemFn, errors: Vec<syn::Error>) -> TokenStream2 {
    let errors = errors.into_iter().map(syn::Error::into_compile_error);
    let attrs = &func.attrs;
    let vis = &func.vis;
    let sig = &func.sig;
    quote! {
        #(#errors)*
        #(#attrs)*
        #[allow(unused_variables, unused_mut, clippy::all)]
        #vis #sig {
            ::core::unimplemented!("#[differentiable] rejected this function")
        }
    }
}

fn root(args: &args::Args) -> TokenStream2 {
    match &args.krate {
        Some(p) => quote!(#p::__private),
        None => quote!(::symgrad::__private),
    }
}

/// The gradient type of a parameter type: references stripped, slices become `Vec`s.
pub(crate) fn grad_type(ty: &Type) -> Type {
    match ty {
        Type::Reference(r) => grad_type(&r.elem),
        Type::Paren(p) => grad_type(&p.elem),
        Type::Slice(s) => {
            let e = &s.elem;
            syn::parse_quote!(::std::vec::Vec<#e>)
        }
        other => other.clone(),
    }
}

fn is_float(ty: &Type) -> bool {
    matches!(ty, Type::Path(_)) && lower::is_float_type(ty)
}

/// The generics of a generated function: the user's, each float type parameter also bound
/// by the runtime's `Real` (the rules' float operations), and its `use<..>` capture list.
fn generated_generics(func: &ItemFn, root: &TokenStream2) -> (syn::Generics, TokenStream2) {
    let mut g = func.sig.generics.clone();
    let floats = lower::float_type_params(&g);
    for t in g.type_params_mut() {
        if floats.contains(&t.ident.to_string()) {
            t.bounds.push(syn::parse_quote!(#root::Real));
        }
    }
    let lifetimes: Vec<&syn::Lifetime> = g.lifetimes().map(|l| &l.lifetime).collect();
    let names: Vec<&syn::Ident> = g.type_params().map(|t| &t.ident).collect();
    let capture = quote!(use<#(#lifetimes,)* #(#names),*>);
    (g, capture)
}

const ALLOWS: &str = "dead_code, unused_mut, unused_variables, unused_assignments, unreachable_code, unused_parens, unused_braces, non_snake_case, non_camel_case_types, clippy::all, clippy::pedantic, clippy::nursery";

fn expand(args: &args::Args, func: &ItemFn) -> Result<TokenStream2, Vec<syn::Error>> {
    let f = lower::lower(func, args)?;
    // The IR's invariants, checked in debug builds of the macro (what `cargo build` uses for
    // proc macros by default): a failure is a bug of the macro, reported with the IR listing.
    #[cfg(debug_assertions)]
    ir::show::check(&f);
    let root = root(args);
    if args.hessian && !func.sig.generics.params.is_empty() {
        return Err(vec![syn::Error::new_spanned(
            &func.sig.generics,
            "second order (`hessian`) of generic functions is not supported yet; use reverse or forward mode (`#[differentiable(forward, reverse)]`) or write the function for f32 or f64",
        )]);
    }
    let fwd = if args.forward {
        forward::expand(&f, func, &root)?
    } else {
        TokenStream2::new()
    };
    let rev = if args.reverse_mode() {
        expand_reverse(&f, func, &root)
    } else {
        TokenStream2::new()
    };
    let hess = if args.hessian {
        hessian::expand(&f, func, args, &root)?
    } else {
        TokenStream2::new()
    };
    Ok(quote! {
        #func
        #rev
        #fwd
        #hess
    })
}

/// `_pullback`, `_vjp` and `_grad`.
fn expand_reverse(f: &lower::Function, func: &ItemFn, root: &TokenStream2) -> TokenStream2 {
    let root = root.clone();
    let sig = &func.sig;
    let vis = &func.vis;
    let name = &sig.ident;
    let ReturnType::Type(_, ret_ty) = &sig.output else {
        unreachable!("checked by lower")
    };
    let items = &f.items;
    let allows: TokenStream2 = ALLOWS.parse().unwrap();
    let seed = if f.params.iter().any(|p| p.ident == "seed") {
        format_ident!("__seed")
    } else {
        format_ident!("seed")
    };
    let np = f.params.len();
    let (generics, capture) = generated_generics(func, &root);
    let (generic_params, _, _) = generics.split_for_impl();
    let one = if matches!(&**ret_ty, Type::Path(p) if p.path.is_ident("f32") || p.path.is_ident("f64"))
    {
        quote!(1.0)
    } else {
        quote!(#root::one())
    };

    // `_pullback`: forward value and the adjoint as a closure.
    let mut pb_gen = emit::Gen::new(f, root.clone(), emit::Mode::Pullback, seed.clone());
    let pb_body = pb_gen.body(ret_ty);
    let entries: Vec<Type> = f
        .params
        .iter()
        .map(|p| {
            if p.active {
                grad_type(&p.ty)
            } else {
                syn::parse_quote!(())
            }
        })
        .collect();
    let pb_name = format_ident!("{}_pullback", name);
    let pb_inputs: Vec<&FnArg> = sig.inputs.iter().collect();
    let param_tys: Vec<&Type> = f.params.iter().map(|p| &p.ty).collect();
    let pb_doc = format!(
        " The forward value of [`{name}`] and its pullback: the closure maps the adjoint of the \
         output (and a mask of which gradients the caller needs) to one gradient per parameter \
         (`()` for a constant one). Generated by `#[differentiable]`; code generated for a \
         caller of `{name}` calls this."
    );

    // `_vjp`: the adjoint in place, scaled by a seed.
    let vjp_name = format_ident!("{}_vjp", name);
    let inputs = &sig.inputs;
    let active: Vec<&lower::Param> = f.params.iter().filter(|p| p.active).collect();
    let grads_ty: Type = if active.len() == 1 {
        grad_type(&active[0].ty)
    } else {
        let ts: Vec<Type> = active.iter().map(|p| grad_type(&p.ty)).collect();
        syn::parse_quote!((#(#ts,)*))
    };
    // `_vjp` and `_grad` are thin wrappers around `_pullback`: the forward pass and the adjoint
    // are written once. A parameter passed by value is cloned for the forward pass (free for
    // `Copy` scalars), as the pullback takes the parameters again.
    let has_self = f.params.iter().any(|p| p.ident == "self");
    // The pullback takes the parameters by value again; an active one passed by value is
    // cloned for it too, as `finalize` reads its shape afterwards.
    let pass = |for_closure: bool| -> Vec<TokenStream2> {
        f.params
            .iter()
            .map(|p| {
                let id = &p.ident;
                match &p.ty {
                    Type::Reference(_) => quote!(#id),
                    _ if for_closure && !p.active => quote!(#id),
                    _ => quote!(::core::clone::Clone::clone(&#id)),
                }
            })
            .collect()
    };
    let (fwd_args, again) = (pass(false), pass(true));
    let call_pb = if has_self {
        quote!(Self::#pb_name(#(#fwd_args),*))
    } else {
        quote!(#pb_name(#(#fwd_args),*))
    };
    let finals: Vec<TokenStream2> = f
        .params
        .iter()
        .enumerate()
        .filter(|(_, p)| p.active)
        .map(|(k, p)| {
            let id = &p.ident;
            let k = syn::Index::from(k);
            quote!(#root::finalize(&#id, __g.#k))
        })
        .collect();
    let grads = if finals.len() == 1 {
        finals[0].clone()
    } else {
        quote!((#(#finals,)*))
    };
    let wrapper = |seed_value: TokenStream2| {
        quote! {
            let (__value, __pb) = #call_pb;
            let __g = __pb(#(#again,)* #seed_value, [true; #np]);
            (__value, #grads)
        }
    };
    let vjp_body = wrapper(quote!(#seed));
    let vjp_doc = format!(
        " The value of [`{name}`] and the gradient of `{seed} * {name}(..)` with respect to each \
         active parameter, in declaration order. Generated by `#[differentiable]`."
    );
    let vjp_params: Vec<TokenStream2> = inputs.iter().map(|i| quote!(#i)).collect();

    // `_grad`: for a scalar function, the value and the gradient (the seed is 1). Its doc
    // lists the adjoint as the seed-1 sweep writes it.
    let (grad_fn, listing) = if is_float(ret_ty) {
        let mut g = emit::Gen::new(f, root.clone(), emit::Mode::Grad, seed.clone());
        let _ = g.body(ret_ty);
        let listing = g.reverse_listing();
        let grad_name = format_ident!("{}_grad", name);
        let doc = doc_listing(name, &listing, &root);
        let body = wrapper(one);
        (
            quote! {
                #[doc = #doc]
                #[allow(#allows)]
                #[inline]
                #vis fn #grad_name #generic_params (#inputs) -> (#ret_ty, #grads_ty) {
                    #body
                }
            },
            true,
        )
    } else {
        (TokenStream2::new(), false)
    };
    let pb_listing = if listing {
        String::new()
    } else {
        doc_listing(name, &pb_gen.reverse_listing(), &root)
    };

    quote! {
        #[doc = #pb_doc]
        #[doc = ""]
        #[doc = #pb_listing]
        #[doc(hidden)]
        #[allow(#allows)]
        #[inline]
        #vis fn #pb_name #generic_params (#(#pb_inputs),*) -> (#ret_ty, impl ::core::ops::FnOnce(#(#param_tys,)* #ret_ty, [bool; #np]) -> (#(#entries,)*) + #capture) {
            #(#items)*
            #pb_body
        }

        #[doc = #vjp_doc]
        #[allow(#allows)]
        #[inline]
        #vis fn #vjp_name #generic_params (#(#vjp_params,)* #seed: #ret_ty) -> (#ret_ty, #grads_ty) {
            #vjp_body
        }

        #grad_fn
    }
}

fn doc_listing(name: &syn::Ident, listing: &[TokenStream2], root: &TokenStream2) -> String {
    let prefix = format!("{}::", pretty::pretty(root));
    let mut doc = format!(
        " The value of [`{name}`] and its gradient, computed by code that `#[differentiable]` wrote.\n\n \
         After the forward pass (the body of `{name}`, keeping the values below), the adjoint runs:\n\n ```text\n"
    );
    for (k, l) in listing.iter().enumerate() {
        if listing.len() > 1 {
            doc.push_str(&format!(" // after return #{k}\n"));
        }
        let text = pretty::pretty(l).replace(&prefix, "");
        for line in text.lines() {
            doc.push(' ');
            doc.push_str(line);
            doc.push('\n');
        }
    }
    doc.push_str(" ```");
    doc
}
