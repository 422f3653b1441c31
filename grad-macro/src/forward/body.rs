//! The tangent of each value beside it: straight-line code and returns.

use crate::ir::*;
use crate::lower::Function;
use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use std::collections::{HashMap, HashSet};
use syn::{Ident, Type};

/// A zero scalar tangent: `0.0`, or `T::zero()` in a fn generic over its float type `T`.
pub(super) fn zero_scalar() -> TokenStream {
    match crate::lower::generic_float() {
        Some(t) => quote!(#t::zero()),
        None => quote!(0.0),
    }
}

/// A value's tangent: its name, and whether it is a reference.
#[derive(Clone)]
pub(super) struct Tan {
    pub(super) id: Ident,
    pub(super) is_ref: bool,
}

pub(super) struct Fwd<'a> {
    pub(super) f: &'a Function,
    pub(super) root: TokenStream,
    pub(super) ret_ty: &'a Type,
    pub(super) tan: HashMap<VarId, Tan>,
    /// Values whose tangent another tangent borrows (never moved).
    pub(super) aliased: HashSet<VarId>,
    pub(super) tmp: usize,
}

#[derive(Clone, Copy)]
pub(super) enum Form {
    Ref,
    Val,
    Plain,
}

impl Form {
    pub(super) fn apply(self, name: TokenStream, is_ref: bool) -> TokenStream {
        match (self, is_ref) {
            (Form::Ref, false) => quote!(&#name),
            (Form::Val, true) => quote!((*#name)),
            _ => name,
        }
    }
}

impl<'a> Fwd<'a> {
    pub(super) fn id(&self, v: VarId) -> &Ident {
        &self.f.vars[v].ident
    }

    pub(super) fn fresh(&mut self, base: &str) -> Ident {
        self.tmp += 1;
        format_ident!("__{}{}", base, self.tmp)
    }

    pub(super) fn tan_ident(&self, v: VarId) -> Ident {
        let name = self.f.vars[v].ident.to_string();
        format_ident!("__tan_{}", name.trim_start_matches("__"))
    }

    /// A value, as the forward pass of `emit` writes it.
    pub(super) fn val(&self, o: &Operand, form: Form) -> TokenStream {
        match o {
            Operand::Var(v) => {
                let id = self.id(*v);
                form.apply(quote!(#id), self.f.vars[*v].is_ref)
            }
            Operand::Const(e) => match form {
                Form::Ref => quote!(&(#e)),
                Form::Val | Form::Plain => quote!((#e)),
            },
        }
    }

    pub(super) fn active(&self, o: &Operand) -> Option<VarId> {
        match o {
            Operand::Var(v) if self.f.vars[*v].active => Some(*v),
            _ => None,
        }
    }

    /// The tangent of an operand in a form, `None` for an inactive one.
    pub(super) fn t(&self, o: &Operand, form: Form) -> Option<TokenStream> {
        let v = self.active(o)?;
        let t = self.tan.get(&v)?;
        let id = &t.id;
        Some(form.apply(quote!(#id), t.is_ref))
    }

    /// The tangent of an active value as an owned value; moved when `movable`.
    pub(super) fn owned(&self, v: VarId, movable: bool) -> TokenStream {
        let root = &self.root;
        let Some(t) = self.tan.get(&v) else {
            // Not reachable for lowered code; a zero keeps the types right.
            let id = self.id(v);
            return quote!(#root::zero_tangent(&#id));
        };
        let id = &t.id;
        if t.is_ref {
            quote!(::std::borrow::ToOwned::to_owned(#id))
        } else if movable && !self.aliased.contains(&v) {
            quote!(#id)
        } else {
            quote!(::core::clone::Clone::clone(&#id))
        }
    }

    pub(super) fn block(&mut self, b: &Block) -> TokenStream {
        let mut out = TokenStream::new();
        for s in &b.stmts {
            match s {
                Stmt::Assign(a) => out.extend(self.assign(a)),
                Stmt::Return(v, span) => {
                    out.extend(self.ret(v, *span));
                    return out;
                }
                Stmt::If(i) => {
                    let diverged = self.lower_if(i, &mut out);
                    if diverged {
                        return out;
                    }
                }
                Stmt::For(fl) => self.lower_for(fl, &mut out),
            }
        }
        out
    }

    pub(super) fn ret(&mut self, v: &Operand, span: proc_macro2::Span) -> TokenStream {
        let root = self.root.clone();
        let value = self.val(v, Form::Plain);
        match self.active(v) {
            Some(id) => {
                let t = self.owned(id, true);
                quote_spanned!(span=> return (#value, #t);)
            }
            None => {
                let ret_ty = self.ret_ty;
                quote_spanned!(span=> {
                    let __v: #ret_ty = #value;
                    let __t = #root::zero_tangent(&__v);
                    return (__v, __t);
                })
            }
        }
    }

    pub(super) fn assign(&mut self, a: &Assign) -> TokenStream {
        let root = self.root.clone();
        let t = self.id(a.dst).clone();
        let span = a.span;
        let active = self.f.vars[a.dst].active;
        let ty = self
            .f
            .types
            .get(&a.dst)
            .filter(|ty| !matches!(ty, Type::Reference(_)));
        let ty_ann = ty.map(|ty| quote!(: #ty));
        if let Op::Call(callee, args) = &a.op {
            return self.call(a, callee, args);
        }
        if let (Op::Map(x, m), true) = (&a.op, active) {
            return self.map(a, x, m);
        }
        let rhs = self.value_rhs(&a.op, span);
        let mut out = quote!(let #t #ty_ann = #rhs;);
        if !active {
            return out;
        }
        let tid = self.tan_ident(a.dst);
        let r = |g: &Self, o: &Operand| g.val(o, Form::Ref);
        let tr = |g: &Self, o: &Operand| g.t(o, Form::Ref);
        let mut is_ref = false;
        let trhs = match &a.op {
            Op::Clone(x) => {
                let tx = tr(self, x).unwrap();
                quote!(::core::clone::Clone::clone(#tx))
            }
            Op::Add(x, y) | Op::Sub(x, y) => {
                let sub = matches!(a.op, Op::Sub(..));
                match (tr(self, x), tr(self, y)) {
                    (Some(tx), Some(ty)) if sub => quote_spanned!(span=> #root::sub(#tx, #ty)),
                    (Some(tx), Some(ty)) => quote_spanned!(span=> #root::add(#tx, #ty)),
                    (Some(tx), None) => {
                        // The tangent of `x ± c` is x's: borrowed, not copied.
                        is_ref = true;
                        self.aliased.insert(self.active(x).unwrap());
                        tx
                    }
                    (None, Some(ty)) if sub => quote_spanned!(span=> -#ty),
                    (None, Some(ty)) => {
                        is_ref = true;
                        self.aliased.insert(self.active(y).unwrap());
                        ty
                    }
                    (None, None) => unreachable!("an active value has an active operand"),
                }
            }
            Op::Neg(x) => {
                let tx = tr(self, x).unwrap();
                quote_spanned!(span=> -#tx)
            }
            Op::Mul(x, y)
            | Op::Div(x, y)
            | Op::MatMulNt(x, y)
            | Op::MatMulTn(x, y)
            | Op::ComponentMul(x, y) => {
                let (single, lhs_only_div, both) = match &a.op {
                    Op::Mul(..) => (quote!(mul), quote!(mul), quote!(mul_jvp)),
                    Op::Div(..) => (quote!(div), quote!(div_jvp_rhs), quote!(div_jvp)),
                    Op::MatMulNt(..) => {
                        (quote!(matmul_nt), quote!(matmul_nt), quote!(matmul_nt_jvp))
                    }
                    Op::MatMulTn(..) => {
                        (quote!(matmul_tn), quote!(matmul_tn), quote!(matmul_tn_jvp))
                    }
                    _ => (
                        quote!(component_mul),
                        quote!(component_mul),
                        quote!(component_mul_jvp),
                    ),
                };
                let (vx, vy) = (r(self, x), r(self, y));
                match (tr(self, x), tr(self, y)) {
                    (Some(tx), Some(ty)) => quote_spanned!(span=> #root::#both(#vx, #tx, #vy, #ty)),
                    (Some(tx), None) => quote_spanned!(span=> #root::#single(#tx, #vy)),
                    (None, Some(ty)) if matches!(a.op, Op::Div(..)) => {
                        quote_spanned!(span=> #root::#lhs_only_div(#vx, #vy, #ty))
                    }
                    (None, Some(ty)) => quote_spanned!(span=> #root::#single(#vx, #ty)),
                    (None, None) => unreachable!("an active value has an active operand"),
                }
            }
            Op::Math(m, args, _) => self.math(*m, args, &t, span),
            Op::Field(b, m) => {
                let tb = &self.tan[b].id;
                self.aliased.insert(*b);
                is_ref = true;
                quote_spanned!(span=> &#tb.#m)
            }
            Op::Index(b, i) => {
                let tb = &self.tan[b].id;
                let i = self.val(i, Form::Plain);
                quote_spanned!(span=> #tb[#i])
            }
            Op::Transpose(x) => {
                let tx = self.t(x, Form::Plain).unwrap();
                quote_spanned!(span=> #tx.transpose())
            }
            Op::Sum(x) => {
                let tx = self.t(x, Form::Plain).unwrap();
                quote_spanned!(span=> #tx.sum())
            }
            Op::Mean(x) => {
                let tx = self.t(x, Form::Plain).unwrap();
                quote_spanned!(span=> #tx.mean())
            }
            op @ (Op::ArrayLit(..) | Op::Repeat(..) | Op::SetIndex(..) | Op::Push(..)) => {
                crate::arrays::tangent(
                    op,
                    &root,
                    &t,
                    &|o| self.t(o, Form::Plain),
                    &|o| self.val(o, Form::Plain),
                    &|v| self.tan.get(&v).map(|x| x.id.clone()),
                    &|v| self.id(v).clone(),
                    span,
                )
                .unwrap()
            }
            Op::Tuple(xs) => crate::emit::tuple_value(xs, |o| match self.t(o, Form::Ref) {
                Some(t) => quote!(::core::clone::Clone::clone(#t)),
                None => {
                    let v = self.val(o, Form::Ref);
                    quote!(#root::zero_tangent(#v))
                }
            }),
            Op::Inactive(_) | Op::Call(..) | Op::Map(..) => {
                unreachable!("inactive or handled above")
            }
        };
        let tty = if is_ref { None } else { ty_ann };
        out.extend(quote!(let #tid #tty = #trhs;));
        self.tan.insert(a.dst, Tan { id: tid, is_ref });
        out
    }

    /// The right-hand side of the forward value (as `emit` writes it).
    pub(super) fn value_rhs(&self, op: &Op, span: proc_macro2::Span) -> TokenStream {
        let root = &self.root;
        let r = |o: &Operand| self.val(o, Form::Ref);
        match op {
            Op::Clone(x) => {
                let x = r(x);
                quote!(::core::clone::Clone::clone(#x))
            }
            Op::Add(x, y) => {
                let (x, y) = (r(x), r(y));
                quote_spanned!(span=> #root::add(#x, #y))
            }
            Op::Sub(x, y) => {
                let (x, y) = (r(x), r(y));
                quote_spanned!(span=> #root::sub(#x, #y))
            }
            Op::Neg(x) => {
                let x = r(x);
                quote_spanned!(span=> -#x)
            }
            Op::Mul(x, y) => {
                let (x, y) = (r(x), r(y));
                quote_spanned!(span=> #root::mul(#x, #y))
            }
            Op::Div(x, y) => {
                let (x, y) = (r(x), r(y));
                quote_spanned!(span=> #root::div(#x, #y))
            }
            Op::MatMulNt(x, y) => {
                let (x, y) = (r(x), r(y));
                quote_spanned!(span=> #root::matmul_nt(#x, #y))
            }
            Op::MatMulTn(x, y) => {
                let (x, y) = (r(x), r(y));
                quote_spanned!(span=> #root::matmul_tn(#x, #y))
            }
            Op::Math(m, args, prefix) => {
                let name = format_ident!("{}", m.name(), span = span);
                let all: Vec<TokenStream> = args.iter().map(|a| self.val(a, Form::Val)).collect();
                match prefix {
                    _ if m.cast_target().is_some() => {
                        let (x, ty) = (&all[0], m.cast_target());
                        quote_spanned!(span=> (#x as #ty))
                    }
                    Some(ty) => quote_spanned!(span=> #ty::#name(#(#all),*)),
                    None => {
                        let (recv, rest) = (&all[0], &all[1..]);
                        quote_spanned!(span=> #recv.#name(#(#rest),*))
                    }
                }
            }
            Op::Field(b, m) => {
                let b = self.id(*b);
                quote_spanned!(span=> &#b.#m)
            }
            Op::Index(b, i) => {
                let b = self.id(*b);
                let i = self.val(i, Form::Plain);
                quote_spanned!(span=> #b[#i])
            }
            Op::Transpose(x) => {
                let x = self.val(x, Form::Plain);
                quote_spanned!(span=> #x.transpose())
            }
            Op::Sum(x) => {
                let x = self.val(x, Form::Plain);
                quote_spanned!(span=> #x.sum())
            }
            Op::Mean(x) => {
                let x = self.val(x, Form::Plain);
                quote_spanned!(span=> #x.mean())
            }
            Op::ComponentMul(x, y) => {
                let (x, y) = (r(x), r(y));
                quote_spanned!(span=> #root::component_mul(#x, #y))
            }
            Op::Map(x, m) => {
                let x = r(x);
                let closure = m.tokens(root);
                quote_spanned!(span=> #root::map_pullback(#x, #closure).0)
            }
            Op::Inactive(ts) => ts.clone(),
            Op::Tuple(xs) => crate::emit::tuple_value(xs, |o| {
                let r = self.val(o, Form::Ref);
                quote!(::core::clone::Clone::clone(#r))
            }),
            op @ (Op::ArrayLit(..) | Op::Repeat(..) | Op::SetIndex(..) | Op::Push(..)) => {
                crate::arrays::value(
                    op,
                    &|o| self.val(o, Form::Plain),
                    &|v| self.id(v).clone(),
                    span,
                )
                .unwrap()
            }
            Op::Call(..) => unreachable!("calls are emitted by `call`"),
        }
    }

    /// The tangent of a scalar math function; `y` is its value.
    pub(super) fn math(
        &self,
        m: MathFn,
        args: &[Operand],
        y: &Ident,
        span: proc_macro2::Span,
    ) -> TokenStream {
        use MathFn::*;
        let root = &self.root;
        let f = format_ident!("{}_jvp", m.name(), span = span);
        let v: Vec<TokenStream> = args.iter().map(|a| self.val(a, Form::Val)).collect();
        // An inactive argument's tangent is zero (its type follows from the others).
        let d: Vec<TokenStream> = args
            .iter()
            .map(|a| self.t(a, Form::Val).unwrap_or_else(zero_scalar))
            .collect();
        match m {
            Powi => {
                let (x, n, dx) = (&v[0], &v[1], &d[0]);
                quote_spanned!(span=> #root::#f(#x, #n, #dx))
            }
            Atan2 | Log | Max | Min => {
                let (a, b, da, db) = (&v[0], &v[1], &d[0], &d[1]);
                quote_spanned!(span=> #root::#f(#a, #b, #da, #db))
            }
            Powf | Hypot => {
                let (a, b, da, db) = (&v[0], &v[1], &d[0], &d[1]);
                quote_spanned!(span=> #root::#f(#a, #b, #y, #da, #db))
            }
            MulAdd => {
                let (a, b, da, db, dc) = (&v[0], &v[1], &d[0], &d[1], &d[2]);
                quote_spanned!(span=> #root::#f(#a, #b, #da, #db, #dc))
            }
            _ => {
                let (x, dx) = (&v[0], &d[0]);
                quote_spanned!(span=> #root::#f(#x, #y, #dx))
            }
        }
    }
}
