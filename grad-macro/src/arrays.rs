//! Local arrays and `Vec`s: `[a, b]`, `[x; n]`, `vec![..]`, `a[i] = v` and `v.push(x)`.
//!
//! In the IR an array is a value like any other: writing an element or pushing makes a new
//! array (`SetIndex`, `Push`), so loops carry it and branches merge it as they do scalars.
//! The forward pass copies the array at each write; the adjoint never reads the arrays
//! themselves (an element's adjoint is one entry of the array's), only the index.

use crate::ir::{Op, Operand, VarId};
use proc_macro2::{Ident, Span, TokenStream};
use quote::{quote, quote_spanned};

/// The forward value of an array operation, given how operands (plain values) and the
/// arrays (by name) are written.
pub fn value(
    op: &Op,
    plain: &dyn Fn(&Operand) -> TokenStream,
    id: &dyn Fn(VarId) -> Ident,
    span: Span,
) -> Option<TokenStream> {
    Some(match op {
        Op::ArrayLit(xs, vec) => {
            let xs: Vec<TokenStream> = xs.iter().map(plain).collect();
            if *vec {
                quote_spanned!(span=> ::std::vec![#(#xs),*])
            } else {
                quote_spanned!(span=> [#(#xs),*])
            }
        }
        Op::Repeat(x, n, vec) => {
            let x = plain(x);
            if *vec {
                quote_spanned!(span=> ::std::vec![#x; #n])
            } else {
                quote_spanned!(span=> [#x; #n])
            }
        }
        Op::SetIndex(b, i, v) => {
            let (b, i, v) = (id(*b), plain(i), plain(v));
            quote_spanned!(span=> { let mut __a = ::core::clone::Clone::clone(&#b); __a[#i] = #v; __a })
        }
        Op::Push(b, v) => {
            let (b, v) = (id(*b), plain(v));
            quote_spanned!(span=> { let mut __a = ::core::clone::Clone::clone(&#b); __a.push(#v); __a })
        }
        _ => return None,
    })
}

/// The tangent of an array operation (forward mode): the same operation on tangents, with
/// `zero` standing for the tangent of an inactive operand. `value` is the result's name.
#[allow(clippy::too_many_arguments)]
pub fn tangent(
    op: &Op,
    root: &TokenStream,
    value: &Ident,
    tangent: &dyn Fn(&Operand) -> Option<TokenStream>,
    plain: &dyn Fn(&Operand) -> TokenStream,
    id_t: &dyn Fn(VarId) -> Option<Ident>,
    id: &dyn Fn(VarId) -> Ident,
    span: Span,
) -> Option<TokenStream> {
    let t_or_zero = |o: &Operand| {
        tangent(o).unwrap_or_else(|| {
            let v = plain(o);
            quote!(#root::zero_tangent(&#v))
        })
    };
    Some(match op {
        Op::ArrayLit(xs, _) => {
            let sets = xs.iter().enumerate().filter_map(|(k, x)| {
                let t = tangent(x)?;
                Some(quote!(__t[#k] = #t;))
            });
            quote_spanned!(span=> { let mut __t = #root::zero_tangent(&#value); #(#sets)* __t })
        }
        Op::Repeat(x, ..) => {
            let t = t_or_zero(x);
            quote_spanned!(span=> { let mut __t = #root::zero_tangent(&#value); let __x = #t; for __e in __t.iter_mut() { *__e = __x; } __t })
        }
        Op::SetIndex(b, i, v) => {
            let tb = match id_t(*b) {
                Some(t) => quote!(::core::clone::Clone::clone(&#t)),
                None => {
                    let b = id(*b);
                    quote!(#root::zero_tangent(&#b))
                }
            };
            let (i, tv) = (plain(i), t_or_zero(v));
            quote_spanned!(span=> { let mut __t = #tb; __t[#i] = #tv; __t })
        }
        Op::Push(b, v) => {
            let tb = match id_t(*b) {
                Some(t) => quote!(::core::clone::Clone::clone(&#t)),
                None => {
                    let b = id(*b);
                    quote!(#root::zero_tangent(&#b))
                }
            };
            let tv = t_or_zero(v);
            quote_spanned!(span=> { let mut __t = #tb; __t.push(#tv); __t })
        }
        _ => return None,
    })
}
