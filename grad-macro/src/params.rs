//! `#[derive(Params)]`: a struct of parameter tensors (or of other such structs).

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput, Fields};

pub fn expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    let mut krate: Option<syn::Path> = None;
    let mut elem: Option<syn::Type> = None;
    for attr in &input.attrs {
        if attr.path().is_ident("params") {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("crate") {
                    krate = Some(meta.value()?.parse()?);
                    Ok(())
                } else if meta.path.is_ident("elem") {
                    elem = Some(meta.value()?.parse()?);
                    Ok(())
                } else {
                    Err(meta.error(
                        "unknown `params` argument; expected `crate = path` or `elem = f32`/`elem = f64`",
                    ))
                }
            })?;
        }
    }
    let root = match krate {
        Some(p) => quote!(#p::__private),
        None => quote!(::symgrad::__private),
    };
    let name = &input.ident;
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
    // The element type of the tensors: `#[params(elem = ..)]`, else the struct's only type
    // parameter (`Linear<T>`), else `f64` when a field's type names `f64`, else `f32`.
    let type_params: Vec<&syn::Ident> = input.generics.type_params().map(|t| &t.ident).collect();
    let elem: syn::Type = match elem {
        Some(t) => t,
        None if type_params.len() == 1 => {
            let t = type_params[0];
            syn::parse_quote!(#t)
        }
        None if !type_params.is_empty() => {
            return Err(syn::Error::new_spanned(
                &input.generics,
                "#[derive(Params)]: name the element type of a struct with several type parameters: `#[params(elem = T)]`",
            ));
        }
        None => {
            let mentions_f64 = fields.named.iter().any(|f| {
                let ty = &f.ty;
                let skip = f.ident.as_ref().is_some_and(|i| skipped.contains(&i));
                !skip
                    && quote!(#ty)
                        .to_string()
                        .split(|c: char| !c.is_alphanumeric() && c != '_')
                        .any(|w| w == "f64")
            });
            if mentions_f64 {
                syn::parse_quote!(f64)
            } else {
                syn::parse_quote!(f32)
            }
        }
    };
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    // Generic structs get the bounds their fields need.
    let mut preds: Vec<TokenStream> = where_clause
        .map(|w| w.predicates.iter().map(|p| quote!(#p)).collect())
        .unwrap_or_default();
    if !input.generics.params.is_empty() {
        for f in &fields.named {
            let ty = &f.ty;
            let id = f.ident.as_ref().expect("named field");
            if skipped.contains(&id) {
                preds.push(quote!(#ty: ::core::clone::Clone));
            } else {
                preds.push(quote!(#ty: #root::Params<#elem> + #root::Differentiable<Grad = #ty> + #root::Accumulate));
            }
        }
    }
    let where_clause = quote!(where #(#preds,)*);
    let names: Vec<String> = idents
        .iter()
        .map(|i| i.to_string().trim_start_matches("r#").to_string())
        .collect();
    Ok(quote! {
        impl #impl_generics #root::Params<#elem> for #name #ty_generics #where_clause {
            fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &dyn #root::Tensor<#elem>)) {
                #( #root::Params::visit(&self.#idents, &#root::join_name(prefix, #names), f); )*
            }
            fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut dyn #root::Tensor<#elem>)) {
                #( #root::Params::visit_mut(&mut self.#idents, &#root::join_name(prefix, #names), f); )*
            }
            fn visit_with(
                &mut self,
                other: &Self,
                prefix: &str,
                f: &mut dyn FnMut(&str, &mut dyn #root::Tensor<#elem>, &dyn #root::Tensor<#elem>),
            ) {
                #( #root::Params::visit_with(&mut self.#idents, &other.#idents, &#root::join_name(prefix, #names), f); )*
            }
        }
        impl #impl_generics #root::Differentiable for #name #ty_generics #where_clause {
            type Grad = Self;
            fn lazy_zero(&self) -> Self {
                Self {
                    #( #idents: #root::Differentiable::lazy_zero(&self.#idents), )*
                    #( #skipped: ::core::clone::Clone::clone(&self.#skipped), )*
                }
            }
            fn finalize(&self, g: Self) -> Self {
                Self {
                    #( #idents: #root::Differentiable::finalize(&self.#idents, g.#idents), )*
                    #( #skipped: g.#skipped, )*
                }
            }
        }
        impl #impl_generics #root::GradOf<#name #ty_generics> for #name #ty_generics #where_clause {
            fn into_grad(self) -> Self {
                self
            }
        }
        impl #impl_generics #root::Accumulate for #name #ty_generics #where_clause {
            fn accumulate(&mut self, other: Self) {
                #( #root::Accumulate::accumulate(&mut self.#idents, other.#idents); )*
            }
        }
    })
}
