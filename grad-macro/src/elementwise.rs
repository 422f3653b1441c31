//! `x.map(|v| body)` on a matrix or vector: the closure is differentiated as a scalar
//! function of its parameter and of the active scalars it captures, by the same lowering and
//! emitter as a whole `#[differentiable]` fn. At run time the mapped closure returns, for each
//! element, its value and the partial derivatives (the scalar function's pullback called
//! with the seed 1); the adjoint of the map is `seed .* ∂f/∂v` for the matrix and
//! `sum(seed .* ∂f/∂a)` for a captured scalar `a`.
//!
//! A child module of `lower` (it extends the lowerer); the emitters call
//! [`MapClosure::tokens`].

use super::{Binding, Function, Lowerer, err};
use crate::args::Args;
use crate::emit;
use crate::ir::*;
use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use std::collections::BTreeSet;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{Expr, Ident, Pat};

/// A closure passed to `map`, lowered.
pub struct MapClosure {
    /// The closure body as a function of the element (first parameter) and of the captured
    /// active scalars (the other parameters, in the order of `captures`).
    pub func: Function,
    /// The outer values of the captured active scalars.
    pub captures: Vec<VarId>,
    /// `let __map_cK = <outer value>;` for each captured name, then `let name = __map_cK;`:
    /// the closure's view of the outer values it reads (constants cloned, active scalars
    /// copied).
    pub prelude: TokenStream,
    /// The closure's location (errors and generated code).
    pub span: Span,
}

impl MapClosure {
    /// The closure handed to `map_pullback`: element -> (value, [partial derivatives]).
    pub fn tokens(&self, root: &TokenStream) -> TokenStream {
        let seed = format_ident!("__map_seed");
        let ret_ty: syn::Type = syn::parse_quote!(_);
        let mut g = emit::Gen::new(&self.func, root.clone(), emit::Mode::Pullback, seed);
        let body = g.body(&ret_ty);
        let items = &self.func.items;
        let params: Vec<&Ident> = self.func.params.iter().map(|p| &p.ident).collect();
        let elem = params[0];
        let np = params.len();
        let ds: Vec<Ident> = (0..np).map(|k| format_ident!("__map_d{}", k)).collect();
        let prelude = &self.prelude;
        quote_spanned! {self.span=>
            |__map_e| {
                #prelude
                let #elem = __map_e;
                let (__map_y, __map_pb) = { #(#items)* #body };
                let __map_one = #root::one_like(&__map_y);
                let (#(#ds,)*) = __map_pb(#(#params,)* __map_one, [true; #np]);
                (__map_y, [#(#ds),*])
            }
        }
    }
}

/// The names a closure body reads (single-segment paths) and the names it binds itself.
#[derive(Default)]
struct Names {
    read: Vec<(String, Span)>,
    bound: BTreeSet<String>,
}

impl<'ast> Visit<'ast> for Names {
    fn visit_expr_path(&mut self, p: &'ast syn::ExprPath) {
        if p.qself.is_none() && p.path.segments.len() == 1 {
            let id = &p.path.segments[0].ident;
            self.read.push((id.to_string(), id.span()));
        }
        syn::visit::visit_expr_path(self, p);
    }
    fn visit_pat_ident(&mut self, p: &'ast syn::PatIdent) {
        self.bound.insert(p.ident.to_string());
        syn::visit::visit_pat_ident(self, p);
    }
    fn visit_expr_closure(&mut self, c: &'ast syn::ExprClosure) {
        // A nested closure is rejected by the lowering of the body.
        syn::visit::visit_expr_closure(self, c);
    }
    fn visit_item(&mut self, _: &'ast syn::Item) {}
}

const BAD_PARAM: &str =
    "the parameter of a `map` closure must be a name (`|v| ...` or `|v: f64| ...`)";

impl Lowerer {
    /// A value for an expression that has an error already reported: active, so that the
    /// expressions around it are not re-lowered as constants (which would report the closure
    /// again). Never emitted: lowering fails.
    fn poisoned(&mut self) -> Operand {
        Operand::Var(self.new_var("", true, Deps::default(), false))
    }

    /// `a.dot(&b)` = `a.component_mul(&b).sum()`, `a.norm_squared()` = `a.dot(&a)`,
    /// `a.norm()` = `a.norm_squared().sqrt()`: lowered to those operations.
    pub(super) fn dot_or_norm(
        &mut self,
        name: &str,
        a: Operand,
        b: Option<Operand>,
        e: &Expr,
    ) -> Operand {
        let b = b.unwrap_or_else(|| a.clone());
        let p = self.assign(
            Op::ComponentMul(a.clone(), b.clone()),
            &[&a, &b],
            e.span(),
            false,
        );
        let s = self.assign(Op::Sum(p.clone()), &[&p], e.span(), false);
        if name != "norm" {
            return s;
        }
        self.assign(
            Op::Math(MathFn::Sqrt, vec![s.clone()], None),
            &[&s],
            e.span(),
            false,
        )
    }

    /// `x.map(f64::exp)`, `x.map(my_fn)`: a function path is the closure `|v| path(v)`.
    pub(super) fn map_fn_path(&self, m: &syn::ExprMethodCall) -> Option<syn::ExprClosure> {
        let [Expr::Path(p)] = m.args.iter().collect::<Vec<_>>()[..] else {
            return None;
        };
        let local = p
            .path
            .get_ident()
            .is_some_and(|i| self.lookup(&i.to_string()).is_some());
        if p.qself.is_some() || local {
            return None;
        }
        // The generated names (and the value returned) take the span of `map`, not of the
        // path, which may come from another macro context than the function's body.
        Some(syn::parse_quote_spanned!(m.method.span()=> |__map_v| {
            let __map_r = #p(__map_v);
            __map_r
        }))
    }

    /// `recv.map(|v| body)`.
    pub(super) fn map_closure(
        &mut self,
        m: &syn::ExprMethodCall,
        c: &syn::ExprClosure,
        e: &Expr,
    ) -> Operand {
        let recv = self.expr(&m.receiver);
        if c.inputs.len() != 1 {
            self.errors.push(syn::Error::new_spanned(
                &c.inputs,
                "the closure passed to `map` takes one parameter, the element (`|v| ...`)",
            ));
            return self.poisoned();
        }
        let (param, ty): (Ident, syn::Type) = match &c.inputs[0] {
            Pat::Ident(pi) if pi.by_ref.is_none() && pi.subpat.is_none() => {
                (pi.ident.clone(), syn::parse_quote!(_))
            }
            Pat::Type(pt) => match &*pt.pat {
                Pat::Ident(pi) if pi.by_ref.is_none() && pi.subpat.is_none() => {
                    (pi.ident.clone(), (*pt.ty).clone())
                }
                other => {
                    self.errors.push(syn::Error::new_spanned(other, BAD_PARAM));
                    return self.poisoned();
                }
            },
            other => {
                self.errors.push(syn::Error::new_spanned(other, BAD_PARAM));
                return self.poisoned();
            }
        };
        if let Some(a) = &c.asyncness {
            self.errors
                .push(err(a.span, "`async` closures are not supported"));
            return self.poisoned();
        }

        // The outer names the body reads.
        let mut names = Names::default();
        names.visit_expr(&c.body);
        let mut seen = BTreeSet::new();
        let mut captures: Vec<VarId> = Vec::new();
        let mut extra_params: Vec<Ident> = Vec::new();
        let mut temps = TokenStream::new();
        let mut binds = TokenStream::new();
        let param_name = param.to_string();
        for (name, span) in names.read {
            if name == param_name || names.bound.contains(&name) || !seen.insert(name.clone()) {
                continue;
            }
            let Some(Binding { op, .. }) = self.lookup(&name).cloned() else {
                continue;
            };
            let temp = format_ident!("__map_c{}", seen.len());
            let id = Ident::new(&name, span);
            let value = match op {
                Operand::Const(c) => quote!((#c)),
                Operand::Var(v) => {
                    self.named.insert(v);
                    let ident = self.vars[v].ident.clone();
                    if !self.vars[v].active {
                        quote!(::core::clone::Clone::clone(&#ident))
                    } else if self.scalars.contains(&v) {
                        captures.push(v);
                        extra_params.push(id.clone());
                        if self.vars[v].is_ref {
                            quote!((*#ident))
                        } else {
                            quote!(#ident)
                        }
                    } else {
                        self.errors.push(err(
                            span,
                            format!(
                                "the closure passed to `map` reads `{name}`, which carries a gradient and is not a scalar; a `map` closure may read constants and f32/f64 values (give a scalar a type: `let {name}: f64 = ...;`), not matrices or structs that carry gradients"
                            ),
                        ));
                        return self.poisoned();
                    }
                }
            };
            temps.extend(quote!(let #temp = #value;));
            binds.extend(quote!(let #id = #temp;));
        }

        // The body as a scalar function of the element and the captured active scalars.
        let body: syn::Block = match &*c.body {
            Expr::Block(b) if b.label.is_none() => b.block.clone(),
            other => syn::parse_quote_spanned!(other.span()=> { #other }),
        };
        let caps = extra_params.iter();
        let func: syn::ItemFn = syn::parse_quote_spanned! {c.span()=>
            fn __map(#param: #ty, #(#caps: _),*) -> _ #body
        };
        let inner = match super::lower(&func, &Args::default()) {
            Ok(f) => f,
            Err(errs) => {
                self.errors.extend(errs);
                return self.poisoned();
            }
        };
        #[cfg(debug_assertions)]
        crate::ir::show::check(&inner);
        let mut operands = vec![recv.clone()];
        operands.extend(captures.iter().map(|v| Operand::Var(*v)));
        let refs: Vec<&Operand> = operands.iter().collect();
        let closure = std::rc::Rc::new(MapClosure {
            func: inner,
            captures,
            prelude: quote!(#temps #binds),
            span: c.span(),
        });
        self.assign(Op::Map(recv.clone(), closure), &refs, e.span(), false)
    }
}

#[cfg(test)]
mod tests {
    use crate::ir::show::{Listing, verify};
    use syn::parse_quote;

    #[test]
    fn map_lowers_to_one_op_with_its_captures() {
        let f = crate::lower::lower(
            &parse_quote! {
                fn f(x: &DVector<f64>, a: f64, n: usize) -> f64 {
                    let k = n as f64;
                    let b = a * 2.0;
                    x.map(|v| v * b + k).sum()
                }
            },
            &crate::args::Args::default(),
        )
        .unwrap_or_else(|_| panic!("lowering failed"));
        verify(&f).unwrap();
        let text = Listing(&f).to_string();
        // `b` (active scalar) is a capture; `k` (a constant) is not.
        let line = text.lines().find(|l| l.contains("map ")).unwrap();
        assert_eq!(line.matches('%').count(), 3, "{line}");
        let Some(crate::ir::Stmt::Assign(a)) = f.body.stmts.iter().find(
            |s| matches!(s, crate::ir::Stmt::Assign(a) if matches!(a.op, crate::ir::Op::Map(..))),
        ) else {
            panic!("no map in\n{text}")
        };
        let crate::ir::Op::Map(_, m) = &a.op else {
            unreachable!()
        };
        assert_eq!(m.captures.len(), 1);
        assert_eq!(m.func.params.len(), 2);
        verify(&m.func).unwrap();
    }

    #[test]
    fn map_errors_point_into_the_closure() {
        let errs = match crate::lower::lower(
            &parse_quote! {
                fn f(x: &DVector<f64>, w: &DMatrix<f64>) -> f64 {
                    x.map(|v| v.floor() + w.sum()).sum()
                }
            },
            &crate::args::Args::default(),
        ) {
            Ok(_) => panic!("accepted"),
            Err(e) => e,
        };
        let msgs: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(msgs.len(), 1, "{msgs:?}");
        assert!(msgs[0].contains("reads `w`"), "{msgs:?}");
    }
}
