//! A small printer that lays generated tokens out as readable Rust, one statement a line,
//! for the derivative listings in the docs.

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};

/// One statement per line, blocks indented by four spaces.
pub fn pretty(ts: &TokenStream) -> String {
    let mut p = Printer::default();
    p.stream(ts.clone(), 0);
    p.flush(0);
    p.lines.join("\n")
}

const KEYWORDS: &[&str] = &[
    "let", "mut", "in", "for", "if", "else", "return", "match", "as", "move", "fn", "impl",
    "where", "break", "loop", "while", "const", "static", "pub", "use", "dyn", "ref",
];

/// What the previous token was, for the spacing rules.
#[derive(Clone, Copy, PartialEq)]
enum Prev {
    /// Start of a line or just inside an opening delimiter.
    Open,
    /// An identifier that is not a keyword, a literal, or a closing delimiter: an operand.
    Operand,
    Keyword,
    /// Punctuation joined to the next one (`:` of `::`, `-` of `->`, ...).
    Joint,
    /// The second `:` of `::`, `.`, `#`, or a unary `&`, `!`, `-`, `*`.
    Glue,
    /// A binary operator or `,`, `=`, `:`.
    Operator,
}

#[derive(Default)]
struct Printer {
    lines: Vec<String>,
    cur: String,
    prev: Option<Prev>,
}

impl Printer {
    fn flush(&mut self, indent: usize) {
        let text = self.cur.trim();
        if !text.is_empty() {
            self.lines
                .push(format!("{}{}", "    ".repeat(indent), text));
        }
        self.cur.clear();
        self.prev = None;
    }

    fn push(&mut self, text: &str, space: bool, next: Prev) {
        if space && !self.cur.is_empty() {
            self.cur.push(' ');
        }
        self.cur.push_str(text);
        self.prev = Some(next);
    }

    fn stream(&mut self, ts: TokenStream, indent: usize) {
        let mut tokens = ts.into_iter().peekable();
        while let Some(tt) = tokens.next() {
            let prev = self.prev.unwrap_or(Prev::Open);
            match &tt {
                TokenTree::Group(g) if g.delimiter() == Delimiter::Brace => {
                    self.push("{", true, Prev::Open);
                    self.flush(indent);
                    self.stream(g.stream(), indent + 1);
                    self.flush(indent + 1);
                    self.push("}", false, Prev::Operand);
                    if !matches!(tokens.peek(), Some(TokenTree::Punct(p)) if p.as_char() == ',' || p.as_char() == ';')
                    {
                        self.flush(indent);
                    }
                }
                TokenTree::Group(g) => {
                    let (open, close) = match g.delimiter() {
                        Delimiter::Parenthesis => ("(", ")"),
                        Delimiter::Bracket => ("[", "]"),
                        _ => ("", ""),
                    };
                    // A call or an index glues to what it applies to.
                    let space =
                        !matches!(prev, Prev::Operand | Prev::Glue | Prev::Joint | Prev::Open);
                    self.push(open, space, Prev::Open);
                    self.stream(g.stream(), indent);
                    self.push(close, false, Prev::Operand);
                }
                TokenTree::Ident(i) => {
                    let s = i.to_string();
                    let kind = if KEYWORDS.contains(&s.as_str()) {
                        Prev::Keyword
                    } else {
                        Prev::Operand
                    };
                    let space = !matches!(prev, Prev::Glue | Prev::Joint | Prev::Open);
                    self.push(&s, space, kind);
                }
                TokenTree::Literal(l) => {
                    let space = !matches!(prev, Prev::Glue | Prev::Joint | Prev::Open);
                    self.push(&l.to_string(), space, Prev::Operand);
                }
                TokenTree::Punct(p) => {
                    let c = p.as_char();
                    let joint = p.spacing() == Spacing::Joint;
                    match c {
                        ';' => {
                            self.push(";", false, Prev::Open);
                            self.flush(indent);
                        }
                        ',' => self.push(",", false, Prev::Operator),
                        '.' | '#' => self.push(&c.to_string(), false, Prev::Glue),
                        ':' if joint => {
                            // the first `:` of a path separator: glued to an operand before it
                            let space = !matches!(
                                prev,
                                Prev::Operand | Prev::Glue | Prev::Joint | Prev::Open
                            );
                            self.push(":", space, Prev::Joint);
                        }
                        ':' if prev == Prev::Joint => self.push(":", false, Prev::Glue),
                        '&' | '!' | '-' | '*' if !joint && prev != Prev::Operand => {
                            // unary
                            let space = !matches!(prev, Prev::Open | Prev::Glue | Prev::Joint);
                            self.push(&c.to_string(), space, Prev::Glue);
                        }
                        _ => {
                            let space = prev != Prev::Joint && prev != Prev::Open;
                            let next = if joint { Prev::Joint } else { Prev::Operator };
                            self.push(&c.to_string(), space, next);
                        }
                    }
                }
            }
        }
    }
}
