//! `#[differentiable(wrt(a, b), crate = path, forward, reverse, hessian)]`

use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Ident, Path, Token};

#[derive(Default)]
pub struct Args {
    /// `wrt(..)`: the active parameters, when given.
    pub wrt: Option<Vec<Ident>>,
    /// `crate = path`: where `__private` lives (default `::symgrad`).
    pub krate: Option<Path>,
    /// `forward`: generate `_jvp` (forward mode) and its `_fwd` call protocol.
    pub forward: bool,
    /// `reverse`: written explicitly (the reverse functions are also generated when neither
    /// mode is named; see [`Args::reverse_mode`]).
    pub reverse: bool,
    /// `hessian`: generate `_hvp` and `_hessian` (second order; implies reverse mode).
    pub hessian: bool,
}

impl Args {
    /// Whether `_pullback`, `_vjp` and `_grad` are generated: when `reverse` is named, or
    /// when no mode is (plain `#[differentiable]` is reverse mode only).
    pub fn reverse_mode(&self) -> bool {
        self.reverse || self.hessian || !self.forward
    }
}

impl Parse for Args {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut args = Args::default();
        while !input.is_empty() {
            if input.peek(Token![crate]) {
                input.parse::<Token![crate]>()?;
                input.parse::<Token![=]>()?;
                args.krate = Some(input.call(Path::parse_mod_style)?);
            } else {
                let key: Ident = input.parse()?;
                if key == "forward" || key == "reverse" || key == "hessian" {
                    let flag = if key == "forward" {
                        &mut args.forward
                    } else if key == "reverse" {
                        &mut args.reverse
                    } else {
                        &mut args.hessian
                    };
                    if *flag {
                        return Err(syn::Error::new(key.span(), format!("`{key}` given twice")));
                    }
                    *flag = true;
                    if !input.is_empty() {
                        input.parse::<Token![,]>()?;
                    }
                    continue;
                }
                if key != "wrt" {
                    return Err(syn::Error::new(
                        key.span(),
                        format!(
                            "unknown argument `{key}`; expected `wrt(..)`, `crate = path`, `forward`, `reverse` or `hessian`"
                        ),
                    ));
                }
                let content;
                syn::parenthesized!(content in input);
                let names = Punctuated::<Ident, Token![,]>::parse_terminated_with(
                    &content,
                    Ident::parse_any_ident,
                )?;
                if args.wrt.is_some() {
                    return Err(syn::Error::new(key.span(), "`wrt` given twice"));
                }
                args.wrt = Some(names.into_iter().collect());
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(args)
    }
}

trait ParseAnyIdent {
    fn parse_any_ident(input: ParseStream) -> syn::Result<Ident>;
}
impl ParseAnyIdent for Ident {
    fn parse_any_ident(input: ParseStream) -> syn::Result<Ident> {
        use syn::ext::IdentExt;
        Ident::parse_any(input)
    }
}
