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

/// An `else if` chain of `arms` arms in a ~`arms + 8`-line function (the shape of issue 8's
/// compile-time blow-up).
pub fn else_if_chain(arms: usize) -> String {
    let mut src = String::from(
        "#[differentiable]\nfn chain(x: f64, y: f64) -> f64 {\n    let a = x * y;\n    let mut s = a;\n    if x < -4.0 {\n        s = a * x.sin();\n",
    );
    for k in 1..arms.saturating_sub(1) {
        let t = -4.0 + 8.0 * k as f64 / arms as f64;
        src.push_str(&format!(
            "    }} else if x < {t:.4} {{\n        s = a * {k}.0 + y.cos() * s;\n"
        ));
    }
    src.push_str("    } else {\n        s = s - y;\n    }\n    s * x\n}\n");
    src
}

#[cfg(test)]
mod tests {
    /// Expansion time and size against the arms of an `else if` chain: run with
    /// `cargo test --release -p symgrad-macro chain_scaling -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement: prints expansion time and lines against arms"]
    fn chain_scaling() {
        for arms in [4, 8, 12, 14, 16, 20, 32] {
            let src = super::else_if_chain(arms);
            let t = std::time::Instant::now();
            let out = super::expansions_of_file(&src);
            let dt = t.elapsed();
            println!(
                "arms {arms:2}: expansion {:8.2} ms, {} lines (original {} lines)",
                dt.as_secs_f64() * 1e3,
                out.lines().count(),
                src.lines().count()
            );
        }
    }

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
