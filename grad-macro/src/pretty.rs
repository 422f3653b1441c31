//! A small printer that lays generated tokens out as readable lines, for the docs.

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};

/// One statement per line, blocks indented by four spaces.
pub fn pretty(ts: &TokenStream) -> String {
    let mut out = String::new();
    write(ts.clone(), 0, &mut out);
    out.lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

fn newline(out: &mut String, indent: usize) {
    out.push('\n');
    out.push_str(&"    ".repeat(indent));
}

fn write(ts: TokenStream, indent: usize, out: &mut String) {
    let mut prev_joint = false;
    let mut prev: Option<String> = None;
    for tt in ts {
        let text = match &tt {
            TokenTree::Group(g) => match g.delimiter() {
                Delimiter::Brace => {
                    out.push_str(" {");
                    let mut inner = String::new();
                    write(g.stream(), indent + 1, &mut inner);
                    newline(out, indent + 1);
                    out.push_str(inner.trim());
                    newline(out, indent);
                    out.push('}');
                    newline(out, indent);
                    prev = Some("}".into());
                    prev_joint = false;
                    continue;
                }
                Delimiter::Parenthesis | Delimiter::Bracket => {
                    let (o, c) = if g.delimiter() == Delimiter::Parenthesis {
                        ("(", ")")
                    } else {
                        ("[", "]")
                    };
                    let mut inner = String::new();
                    write(g.stream(), indent, &mut inner);
                    format!("{o}{}{c}", inner.trim())
                }
                Delimiter::None => {
                    let mut inner = String::new();
                    write(g.stream(), indent, &mut inner);
                    inner
                }
            },
            other => other.to_string(),
        };
        let glue = match prev.as_deref() {
            None => false,
            Some(p) => {
                prev_joint
                    || p == "."
                    || p == "&"
                    || p == "!"
                    || p == "::"
                    || text == "."
                    || text == ","
                    || text == ";"
                    || text == "::"
                    || (text.starts_with('(')
                        && !matches!(
                            p,
                            "=" | ","
                                | "+"
                                | "-"
                                | "*"
                                | "/"
                                | "in"
                                | "=>"
                                | "if"
                                | "let"
                                | "("
                                | "mut"
                                | "||"
                        ))
                    || text.starts_with('[') && p != "="
            }
        };
        if !glue && !out.is_empty() && !out.ends_with(' ') && !out.ends_with('\n') {
            out.push(' ');
        }
        out.push_str(&text);
        if let TokenTree::Punct(p) = &tt {
            prev_joint = p.spacing() == Spacing::Joint;
            if p.as_char() == ';' || (p.as_char() == ',' && text == "," && false) {
                newline(out, indent);
            }
            if p.as_char() == ':' && prev_joint {
                prev = Some("::".into());
                continue;
            }
        } else {
            prev_joint = false;
        }
        prev = Some(text);
    }
}
