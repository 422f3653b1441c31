//! Calls (the `_fwd` protocol), `if` and `for`.

use super::body::{Form, Fwd, Tan};
use crate::emit::located_at;
use crate::ir::*;
use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::Ident;

impl Fwd<'_> {
    /// A call: the plain function when no argument carries a tangent, else its `_fwd`.
    pub(super) fn call(&mut self, a: &Assign, callee: &Callee, args: &[Arg]) -> TokenStream {
        let span = a.span;
        let t = self.id(a.dst).clone();
        let vals: Vec<TokenStream> = args
            .iter()
            .map(|arg| self.val(&arg.operand, self.arg_form(arg)))
            .collect();
        let active = self.f.vars[a.dst].active;
        let suffix = |id: &Ident| {
            if active {
                format_ident!("{}_fwd", id, span = id.span())
            } else {
                id.clone()
            }
        };
        let mut slots: Vec<TokenStream> = Vec::new();
        if active {
            if let Callee::Method { receiver, .. } = callee {
                slots.push(self.slot(&Operand::Var(*receiver), Form::Ref));
            }
            for arg in args {
                let form = match self.arg_form(arg) {
                    Form::Plain if matches!(&arg.operand, Operand::Var(v) if self.f.vars[*v].is_ref) => {
                        Form::Ref
                    }
                    other => other,
                };
                let s = self.slot(&arg.operand, form);
                slots.push(located_at(s, arg.span));
            }
        }
        let call = match callee {
            Callee::Path(p) => {
                let mut p = p.clone();
                let last = p.segments.last_mut().unwrap();
                last.ident = suffix(&last.ident);
                quote_spanned!(span=> #p(#(#vals,)* #(#slots),*))
            }
            Callee::Method {
                receiver, method, ..
            } => {
                let r = self.id(*receiver);
                let m = suffix(method);
                quote_spanned!(span=> #r.#m(#(#vals,)* #(#slots),*))
            }
        };
        if !active {
            return quote_spanned!(span=> let #t = #call;);
        }
        let tid = self.tan_ident(a.dst);
        self.tan.insert(
            a.dst,
            Tan {
                id: tid.clone(),
                is_ref: false,
            },
        );
        quote_spanned!(span=> let (#t, #tid) = #call;)
    }

    /// `Some(tangent)` in the argument's form, or `None`.
    pub(super) fn slot(&self, o: &Operand, form: Form) -> TokenStream {
        match self.t(o, form) {
            Some(t) => match form {
                // A value passed by value: its tangent is copied (the caller may use it again
                // through a borrowed tangent).
                Form::Plain => {
                    let v = self.active(o).unwrap();
                    let t = self.owned(v, false);
                    // Bound first, so that a type error names the tangent's type, not a
                    // `clone` argument.
                    quote!(::core::option::Option::Some({ let __t = #t; __t }))
                }
                _ => quote!(::core::option::Option::Some(#t)),
            },
            None => quote!(::core::option::Option::None),
        }
    }

    /// How a call argument is passed (as `emit` does it).
    pub(super) fn arg_form(&self, a: &Arg) -> Form {
        match &a.operand {
            _ if a.by_ref => Form::Ref,
            Operand::Var(v) if self.f.vars[*v].is_place => Form::Val,
            _ => Form::Plain,
        }
    }

    /// Emits an `if`; returns whether both branches diverge.
    pub(super) fn lower_if(&mut self, i: &If, out: &mut TokenStream) -> bool {
        let root = self.root.clone();
        let cond = &i.cond;
        // Which active phis get a tangent from only one side (the other is a zero).
        let active_phis: Vec<&Phi> = i
            .phis
            .iter()
            .filter(|p| self.f.vars[p.dst].active)
            .collect();
        let mixed: Vec<bool> = active_phis
            .iter()
            .map(|p| self.active(&p.then_v).is_none() || self.active(&p.else_v).is_none())
            .collect();
        let branch = |g: &mut Self, b: &Block, then: bool| -> TokenStream {
            let body = g.block(b);
            if b.diverges {
                return quote!({ #body });
            }
            let locals: Vec<VarId> = b.defined();
            let ops: Vec<&Operand> = i
                .phis
                .iter()
                .map(|p| if then { &p.then_v } else { &p.else_v })
                .collect();
            let count = |v: VarId| {
                ops.iter()
                    .filter(|o| matches!(o, Operand::Var(x) if *x == v))
                    .count()
            };
            let mut pre = TokenStream::new();
            let mut touts = Vec::new();
            for (p, mixed) in active_phis.iter().zip(&mixed) {
                let o = if then { &p.then_v } else { &p.else_v };
                let t = match g.active(o) {
                    Some(v) => {
                        let movable = locals.contains(&v) && count(v) == 1;
                        let t = g.owned(v, movable);
                        let tmp = g.fresh("pt");
                        pre.extend(quote!(let #tmp = #t;));
                        if *mixed {
                            quote!(::core::option::Option::Some(#tmp))
                        } else {
                            quote!(#tmp)
                        }
                    }
                    None => quote!(::core::option::Option::None),
                };
                touts.push(t);
            }
            let vals: Vec<TokenStream> = ops
                .iter()
                .map(|o| match o {
                    Operand::Var(v) => {
                        let id = g.id(*v);
                        if locals.contains(v) && count(*v) == 1 {
                            quote!(#id)
                        } else {
                            quote!(::core::clone::Clone::clone(&#id))
                        }
                    }
                    Operand::Const(e) => quote!((#e)),
                })
                .collect();
            quote!({ #body #pre (#(#vals,)* #(#touts,)*) })
        };
        let then_t = branch(self, &i.then_b, true);
        let else_t = branch(self, &i.else_b, false);
        if i.then_b.diverges && i.else_b.diverges {
            out.extend(quote!(if #cond #then_t else #else_t));
            return true;
        }
        let phis: Vec<Ident> = i.phis.iter().map(|p| self.id(p.dst).clone()).collect();
        let mut tpat = Vec::new();
        let mut post = TokenStream::new();
        for (p, mixed) in active_phis.iter().zip(&mixed) {
            let tid = self.tan_ident(p.dst);
            if *mixed {
                let opt = self.fresh("to");
                let phi = self.id(p.dst).clone();
                post.extend(quote! {
                    let #tid = match #opt {
                        ::core::option::Option::Some(t) => t,
                        ::core::option::Option::None => #root::zero_tangent(&#phi),
                    };
                });
                tpat.push(opt);
            } else {
                tpat.push(tid.clone());
            }
            self.tan.insert(
                p.dst,
                Tan {
                    id: tid,
                    is_ref: false,
                },
            );
        }
        out.extend(quote!(let (#(#phis,)* #(#tpat,)*) = if #cond #then_t else #else_t; #post));
        false
    }

    pub(super) fn lower_for(&mut self, fl: &For, out: &mut TokenStream) {
        let root = self.root.clone();
        let index = self.id(fl.index).clone();
        let iter = &fl.iter;
        let mut pre = TokenStream::new();
        let mut heads = TokenStream::new();
        let mut restore = TokenStream::new();
        let mut ends = TokenStream::new();
        let mut tends = TokenStream::new();
        let mut post = TokenStream::new();
        let mut locals = fl.body.defined();
        locals.extend(fl.carried.iter().map(|c| c.head));
        let end_count = |v: VarId| {
            fl.carried
                .iter()
                .filter(|c| matches!(c.end, Operand::Var(x) if x == v))
                .count()
        };
        let carried_active: Vec<bool> = fl
            .carried
            .iter()
            .map(|c| self.f.vars[c.head].active || self.f.vars[c.after].active)
            .collect();
        // The tangents of the heads exist before the body is emitted.
        for (c, act) in fl.carried.iter().zip(&carried_active) {
            if *act {
                let tid = self.tan_ident(c.head);
                self.tan.insert(
                    c.head,
                    Tan {
                        id: tid,
                        is_ref: false,
                    },
                );
            }
        }
        for (c, act) in fl.carried.iter().zip(&carried_active) {
            let cur = format_ident!("__c_{}", c.after);
            let tcur = format_ident!("__ct_{}", c.after);
            let init = match &c.init {
                Operand::Var(v) => {
                    let id = self.id(*v);
                    quote!(::core::clone::Clone::clone(&#id))
                }
                Operand::Const(e) => quote!((#e)),
            };
            pre.extend(quote!(let mut #cur = #init;));
            let head = self.id(c.head);
            heads.extend(quote!(let #head = #cur;));
            restore.extend(quote!(#cur = #head;));
            if *act {
                let tinit = match self.active(&c.init) {
                    Some(v) => self.owned(v, false),
                    None => quote!(#root::zero_tangent(&#cur)),
                };
                pre.extend(quote!(let mut #tcur = #tinit;));
                let th = &self.tan[&c.head].id;
                heads.extend(quote!(let #th = #tcur;));
                restore.extend(quote!(#tcur = #th;));
            }
        }
        let body = self.block(&fl.body);
        for (c, act) in fl.carried.iter().zip(&carried_active) {
            let cur = format_ident!("__c_{}", c.after);
            let tcur = format_ident!("__ct_{}", c.after);
            let end = match &c.end {
                Operand::Var(v) => {
                    let id = self.id(*v);
                    if locals.contains(v) && end_count(*v) == 1 {
                        quote!(#id)
                    } else {
                        quote!(::core::clone::Clone::clone(&#id))
                    }
                }
                Operand::Const(e) => quote!((#e)),
            };
            ends.extend(quote!(#cur = #end;));
            if *act {
                let t = match self.active(&c.end) {
                    Some(v) => self.owned(v, locals.contains(&v) && end_count(v) == 1),
                    None => quote!(#root::zero_tangent(&#cur)),
                };
                // Computed before the values move (a tangent never reads a value, but a
                // zero reads the carried value, which is assigned first).
                let tmp = self.fresh("et");
                match self.active(&c.end) {
                    Some(_) => {
                        pre_tangent(&mut ends, &tmp, t);
                        tends.extend(quote!(#tcur = #tmp;));
                    }
                    None => tends.extend(quote!(#tcur = #t;)),
                }
            }
            let after = self.id(c.after);
            post.extend(quote!(let #after = #cur;));
            if *act {
                let tid = self.tan_ident(c.after);
                post.extend(quote!(let #tid = #tcur;));
                self.tan.insert(
                    c.after,
                    Tan {
                        id: tid,
                        is_ref: false,
                    },
                );
            }
        }
        let tail = if fl.body.diverges {
            TokenStream::new()
        } else {
            quote!(#ends #tends)
        };
        let check = fl.exit_check(restore);
        out.extend(quote! {
            #pre
            for #index in #iter {
                #heads
                #check
                #body
                #tail
            }
            #post
        });
    }
}

/// Prepends `let tmp = t;` to `ends` (so that tangents are taken before values move).
fn pre_tangent(ends: &mut TokenStream, tmp: &Ident, t: TokenStream) {
    let rest = std::mem::take(ends);
    ends.extend(quote!(let #tmp = #t; #rest));
}
