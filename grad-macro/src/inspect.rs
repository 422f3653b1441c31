//! Printing an expansion from the macro crate's own tests: the dependable way to read what
//! `#[differentiable]` writes for a function (cargo rebuilds nothing and caches nothing here).
//!
//! ```text
//! SYMGRAD_EXPAND=path/to/file.rs cargo test -p symgrad-macro print_expansion -- --ignored --nocapture
//! ```
//! prints the expansion of every `#[differentiable]` fn in the file (nested modules
//! included), one statement a line.

use proc_macro2::TokenStream;

/// The expansion of `#[differentiable(attr)] item`, pretty-printed (errors as
/// `compile_error!` calls, as rustc would see them).
pub fn expansion(attr: TokenStream, item: syn::ItemFn) -> String {
    let args: crate::args::Args = match syn::parse2(attr) {
        Ok(a) => a,
        Err(e) => return e.to_string(),
    };
    let out = crate::expand(&args, &item).unwrap_or_else(|errs| crate::fallback(&item, errs));
    crate::pretty::pretty(&out)
}

/// The expansions of every `#[differentiable]` fn of a source file.
pub fn expansions_of_file(src: &str) -> String {
    let file: syn::File = match syn::parse_file(src) {
        Ok(f) => f,
        Err(e) => return format!("parse error: {e}"),
    };
    let mut out = String::new();
    walk(&file.items, &mut out);
    out
}

fn walk(items: &[syn::Item], out: &mut String) {
    for item in items {
        match item {
            syn::Item::Fn(f) => {
                if let Some(a) = f.attrs.iter().find(|a| a.path().is_ident("differentiable")) {
                    let attr = match &a.meta {
                        syn::Meta::List(l) => l.tokens.clone(),
                        _ => TokenStream::new(),
                    };
                    let mut f = f.clone();
                    f.attrs.retain(|x| !x.path().is_ident("differentiable"));
                    out.push_str(&format!("// ---- {} ----\n", f.sig.ident));
                    out.push_str(&expansion(attr, f));
                    out.push_str("\n\n");
                }
            }
            syn::Item::Mod(m) => {
                if let Some((_, items)) = &m.content {
                    walk(items, out);
                }
            }
            syn::Item::Impl(_) => {}
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    /// Prints the expansions of the file named by `SYMGRAD_EXPAND` (see the module docs).
    #[test]
    #[ignore = "a tool: prints the expansion of the file named by SYMGRAD_EXPAND"]
    fn print_expansion() {
        let path = std::env::var("SYMGRAD_EXPAND")
            .expect("set SYMGRAD_EXPAND to the path of a .rs file with #[differentiable] fns");
        let src = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        println!("{}", super::expansions_of_file(&src));
    }
}
