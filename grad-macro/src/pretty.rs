//! A small printer that lays generated tokens out as readable lines, for the docs.

use proc_macro2::{Delimiter, TokenStream, TokenTree};

/// One statement per line, blocks indented by four spaces.
pub fn pretty(ts: &TokenStream) -> String {
    let mut lines = Vec::new();
    let mut cur = String::new();
    write(ts.clone(), 0, &mut cur, &mut lines);
    flush(&mut cur, 0, &mut lines);
    lines.join("\n")
}

fn flush(cur: &mut String, indent: usize, lines: &mut Vec<String>) {
    let text = tidy(cur.trim());
    if !text.is_empty() {
        lines.push(format!("{}{}", "    ".repeat(indent), text));
    }
    cur.clear();
}

/// Removes the spaces that `TokenStream`'s `Display` puts around punctuation.
fn tidy(s: &str) -> String {
    let mut s = s.to_string();
    for (from, to) in [
        (" :: ", "::"),
        (":: ", "::"),
        (" . ", "."),
        (" ,", ","),
        (" ;", ";"),
        ("( ", "("),
        (" )", ")"),
        ("[ ", "["),
        (" ]", "]"),
        ("& ", "&"),
        ("& &", "&&"),
        (" (", "("),
        (" [", "["),
        ("=(", "= ("),
        (",(", ", ("),
        ("-(", "-("),
        ("(- ", "(-"),
        ("=::", "= ::"),
        (",::", ", ::"),
        ("(::", "(::"),
        ("let(", "let ("),
        ("for(", "for ("),
        ("return(", "return ("),
        (" *(", " * ("),
        (" /(", " / ("),
        ("->(", "-> ("),
        ("in(", "in ("),
        ("=>", " => "),
        ("  =>", " =>"),
    ] {
        s = s.replace(from, to);
    }
    s
}

fn write(ts: TokenStream, indent: usize, cur: &mut String, lines: &mut Vec<String>) {
    let mut joint = false;
    for tt in ts {
        match &tt {
            TokenTree::Group(g) if g.delimiter() == Delimiter::Brace => {
                cur.push_str(" {");
                flush(cur, indent, lines);
                write(g.stream(), indent + 1, cur, lines);
                flush(cur, indent + 1, lines);
                cur.push('}');
            }

            TokenTree::Punct(p) if p.as_char() == ';' => {
                cur.push(';');
                flush(cur, indent, lines);
            }
            TokenTree::Group(g) => {
                let (open, close) = match g.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Bracket => ("[", "]"),
                    _ => ("", ""),
                };
                if cur.ends_with('}') {
                    flush(cur, indent, lines);
                }
                if !joint {
                    cur.push(' ');
                }
                cur.push_str(open);
                write(g.stream(), indent, cur, lines);
                cur.push_str(close);
                joint = false;
                continue;
            }
            other => {
                if cur.ends_with('}') {
                    flush(cur, indent, lines);
                }
                if !joint {
                    cur.push(' ');
                }
                cur.push_str(&other.to_string());
                joint = matches!(other, TokenTree::Punct(p) if p.spacing() == proc_macro2::Spacing::Joint);
                continue;
            }
        }
    }
}
