//! `#[derive(Params)]`: a struct of parameter tensors (or of other such structs).

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput, Fields};

pub fn expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    let mut krate: Option<syn::Path> = None;
    for attr in &input.attrs {
        if attr.path().is_ident("params") {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("crate") {
                    krate = Some(meta.value()?.parse()?);
                    Ok(())
                } else {
                    Err(meta.error("unknown `params` argument; expected `crate = path`"))
                }
            })?;
        }
    }
    let root = match krate {
        Some(p) => quote!(#p::__private),
        None => quote!(::symgrad::__private),
    };
    let name = &input.ident;
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &input.generics,
            "#[derive(Params)] does not support generic structs",
        ));
    }
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(
            name,
            "#[derive(Params)] needs a struct with named fields",
        ));
    };
    let Fields::Named(fields) = &data.fields else {
        return Err(syn::Error::new_spanned(
            &data.fields,
            "#[derive(Params)] needs a struct with named fields",
        ));
    };
    // `#[params(skip)]` fields are configuration (a rate, a flag): not visited, not
    // differentiated, copied into gradients as they are.
    let mut idents: Vec<&syn::Ident> = Vec::new();
    let mut skipped: Vec<&syn::Ident> = Vec::new();
    for f in &fields.named {
        let mut skip = false;
        for attr in &f.attrs {
            if attr.path().is_ident("params") {
                attr.parse_nested_meta(|meta| {
                    if meta.path.is_ident("skip") {
                        skip = true;
                        Ok(())
                    } else {
                        Err(meta.error("unknown `params` field argument; expected `skip`"))
                    }
                })?;
            }
        }
        let id = f.ident.as_ref().expect("named field");
        if skip {
            skipped.push(id);
        } else {
            idents.push(id);
        }
    }
    let names: Vec<String> = idents
        .iter()
        .map(|i| i.to_string().trim_start_matches("r#").to_string())
        .collect();
    Ok(quote! {
        impl #root::Params for #name {
            fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &dyn #root::Tensor)) {
                #( #root::Params::visit(&self.#idents, &#root::join_name(prefix, #names), f); )*
            }
            fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut dyn #root::Tensor)) {
                #( #root::Params::visit_mut(&mut self.#idents, &#root::join_name(prefix, #names), f); )*
            }
            fn visit_with(
                &mut self,
                other: &Self,
                prefix: &str,
                f: &mut dyn FnMut(&str, &mut dyn #root::Tensor, &dyn #root::Tensor),
            ) {
                #( #root::Params::visit_with(&mut self.#idents, &other.#idents, &#root::join_name(prefix, #names), f); )*
            }
        }
        impl #root::Differentiable for #name {
            type Grad = #name;
            fn lazy_zero(&self) -> #name {
                #name {
                    #( #idents: #root::Differentiable::lazy_zero(&self.#idents), )*
                    #( #skipped: ::core::clone::Clone::clone(&self.#skipped), )*
                }
            }
            fn finalize(&self, g: #name) -> #name {
                #name {
                    #( #idents: #root::Differentiable::finalize(&self.#idents, g.#idents), )*
                    #( #skipped: g.#skipped, )*
                }
            }
        }
        impl #root::GradOf<#name> for #name {
            fn into_grad(self) -> #name {
                self
            }
        }
        impl #root::Accumulate for #name {
            fn accumulate(&mut self, other: #name) {
                #( #root::Accumulate::accumulate(&mut self.#idents, other.#idents); )*
            }
        }
    })
}
