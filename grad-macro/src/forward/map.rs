//! Forward mode of `x.map(|v| ..)`: one evaluation of the closure gives the value and the
//! element-wise partial derivatives; the tangent is `dx .* ∂f/∂v + sum_k da_k ∂f/∂a_k` over
//! the captured active scalars `a_k`.

use super::body::{Form, Fwd, Tan};
use crate::ir::*;
use crate::lower::MapClosure;
use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};

impl Fwd<'_> {
    /// The value and the tangent of an active `map`.
    pub(super) fn map(&mut self, a: &Assign, x: &Operand, m: &MapClosure) -> TokenStream {
        let root = self.root.clone();
        let span = a.span;
        let t = self.id(a.dst).clone();
        let d = format_ident!("__mapd_{}", a.dst);
        let vx = self.val(x, Form::Ref);
        let closure = m.tokens(&root);
        let tx = match self.t(x, Form::Ref) {
            Some(tx) => quote!(::core::option::Option::Some(#tx)),
            None => quote!(::core::option::Option::None),
        };
        let tcaps: Vec<TokenStream> = m
            .captures
            .iter()
            .map(|c| {
                self.t(&Operand::Var(*c), Form::Val)
                    .unwrap_or_else(super::body::zero_scalar)
            })
            .collect();
        let tid = self.tan_ident(a.dst);
        self.tan.insert(
            a.dst,
            Tan {
                id: tid.clone(),
                is_ref: false,
            },
        );
        quote_spanned! {span=>
            let (#t, #d) = #root::map_pullback(#vx, #closure);
            let #tid = #root::map_jvp(&#d, #tx, &[#(#tcaps),*]);
        }
    }
}
