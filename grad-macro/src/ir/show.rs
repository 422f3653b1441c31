//! A printer and a verifier for the IR.
//!
//! [`Listing`] prints a lowered function one operation a line (`%3 = mul %1, 0.5`), with the
//! structured `if`/`for` and their merges, activity marked `*`: what `SYMGRAD_IR` tests and
//! the verifier's failures show. [`verify`] checks the invariants every pass relies on: each
//! value is defined once, every use is defined before it in an enclosing block, merges and
//! loop-carried values read values in the right scope, and `diverges` is what the block's
//! statements say. The macro runs it on every function in debug builds.

use crate::ir::*;
use crate::lower::Function;
use quote::ToTokens;
use std::collections::HashSet;
use std::fmt::{self, Write as _};

/// `Display` of a lowered function.
pub struct Listing<'a>(pub &'a Function);

fn operand(f: &Function, o: &Operand) -> String {
    match o {
        Operand::Var(v) => var(f, *v),
        Operand::Const(e) => e.to_token_stream().to_string(),
    }
}

fn var(f: &Function, v: VarId) -> String {
    match f.vars.get(v) {
        Some(info) if info.active => format!("%{v}*"),
        _ => format!("%{v}"),
    }
}

fn op_text(f: &Function, op: &Op) -> String {
    let o = |x: &Operand| operand(f, x);
    match op {
        Op::Clone(x) => format!("clone {}", o(x)),
        Op::Add(x, y) => format!("add {}, {}", o(x), o(y)),
        Op::Sub(x, y) => format!("sub {}, {}", o(x), o(y)),
        Op::Mul(x, y) => format!("mul {}, {}", o(x), o(y)),
        Op::Div(x, y) => format!("div {}, {}", o(x), o(y)),
        Op::Neg(x) => format!("neg {}", o(x)),
        Op::MatMulNt(x, y) => format!("matmul_nt {}, {}", o(x), o(y)),
        Op::MatMulTn(x, y) => format!("matmul_tn {}, {}", o(x), o(y)),
        Op::Math(m, args, _) => {
            let a: Vec<String> = args.iter().map(o).collect();
            format!("{} {}", m.name(), a.join(", "))
        }
        Op::Call(callee, args) => {
            let a: Vec<String> = args
                .iter()
                .map(|a| format!("{}{}", if a.by_ref { "&" } else { "" }, o(&a.operand)))
                .collect();
            match callee {
                Callee::Path(p) => {
                    format!(
                        "call {}({})",
                        p.to_token_stream().to_string().replace(' ', ""),
                        a.join(", ")
                    )
                }
                Callee::Method {
                    receiver, method, ..
                } => format!("call {}.{method}({})", var(f, *receiver), a.join(", ")),
            }
        }
        Op::Field(b, m) => format!("field {}.{}", var(f, *b), m.to_token_stream()),
        Op::Index(b, i) => format!("index {}[{}]", var(f, *b), o(i)),
        Op::Transpose(x) => format!("transpose {}", o(x)),
        Op::Sum(x) => format!("sum {}", o(x)),
        Op::Mean(x) => format!("mean {}", o(x)),
        Op::ComponentMul(x, y) => format!("component_mul {}, {}", o(x), o(y)),
        Op::ArrayLit(xs, vec) => {
            let xs: Vec<String> = xs.iter().map(o).collect();
            format!(
                "array{} [{}]",
                if *vec { " vec" } else { "" },
                xs.join(", ")
            )
        }
        Op::Tuple(xs) => {
            let xs: Vec<String> = xs.iter().map(o).collect();
            format!("tuple ({})", xs.join(", "))
        }
        Op::Repeat(x, n, vec) => {
            format!("repeat{} [{}; {n}]", if *vec { " vec" } else { "" }, o(x))
        }
        Op::SetIndex(b, i, v) => format!("set {}[{}] = {}", var(f, *b), o(i), o(v)),
        Op::Push(b, v) => format!("push {}, {}", var(f, *b), o(v)),
        Op::Map(x, m) => {
            let caps: Vec<String> = m.captures.iter().map(|c| var(f, *c)).collect();
            format!("map {} with [{}]", o(x), caps.join(", "))
        }
        Op::Inactive(ts) => format!("const {{ {ts} }}"),
    }
}

impl Listing<'_> {
    fn block(&self, out: &mut fmt::Formatter<'_>, b: &Block, depth: usize) -> fmt::Result {
        let f = self.0;
        let pad = "    ".repeat(depth);
        for s in &b.stmts {
            match s {
                Stmt::Assign(a) => writeln!(out, "{pad}{} = {}", var(f, a.dst), op_text(f, &a.op))?,
                Stmt::Return(v, _) => writeln!(out, "{pad}return {}", operand(f, v))?,
                Stmt::If(i) => {
                    writeln!(out, "{pad}if#{} {{ {} }} {{", i.id, i.cond)?;
                    self.block(out, &i.then_b, depth + 1)?;
                    writeln!(out, "{pad}}} else {{")?;
                    self.block(out, &i.else_b, depth + 1)?;
                    writeln!(out, "{pad}}}")?;
                    for p in &i.phis {
                        writeln!(
                            out,
                            "{pad}{} = phi {}, {}",
                            var(f, p.dst),
                            operand(f, &p.then_v),
                            operand(f, &p.else_v)
                        )?;
                    }
                }
                Stmt::For(l) => {
                    write!(
                        out,
                        "{pad}for#{} {} in {{ {} }}",
                        l.id,
                        var(f, l.index),
                        l.iter
                    )?;
                    if let Some(c) = &l.cond {
                        write!(out, " while {{ {c} }}")?;
                    }
                    for c in &l.carried {
                        write!(
                            out,
                            " carry {} = {} .. {} -> {}",
                            var(f, c.head),
                            operand(f, &c.init),
                            operand(f, &c.end),
                            var(f, c.after)
                        )?;
                    }
                    writeln!(out, " {{")?;
                    self.block(out, &l.body, depth + 1)?;
                    writeln!(out, "{pad}}}")?;
                }
            }
        }
        if b.diverges {
            writeln!(out, "{pad}// diverges")?;
        }
        Ok(())
    }
}

impl fmt::Display for Listing<'_> {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        let f = self.0;
        let params: Vec<String> = f
            .params
            .iter()
            .map(|p| format!("{}: {}", p.ident, var(f, p.var)))
            .collect();
        writeln!(out, "fn({}) {{", params.join(", "))?;
        self.block(out, &f.body, 1)?;
        write!(out, "}}")
    }
}

struct Verifier<'a> {
    f: &'a Function,
    defined: HashSet<VarId>,
    /// The values visible at this point: one set per enclosing block.
    scopes: Vec<HashSet<VarId>>,
    errors: Vec<String>,
}

impl Verifier<'_> {
    fn define(&mut self, v: VarId, what: &str) {
        if v >= self.f.vars.len() {
            self.errors
                .push(format!("{what} defines %{v}, which has no VarInfo"));
        } else if !self.defined.insert(v) {
            self.errors
                .push(format!("%{v} is defined twice (again by {what})"));
        }
        self.scopes.last_mut().unwrap().insert(v);
    }

    fn visible(&self, v: VarId) -> bool {
        self.scopes.iter().any(|s| s.contains(&v))
    }

    fn use_op(&mut self, o: &Operand, what: &str) {
        if let Operand::Var(v) = o {
            self.use_var(*v, what);
        }
    }

    fn use_var(&mut self, v: VarId, what: &str) {
        if !self.visible(v) {
            self.errors
                .push(format!("{what} reads %{v}, not defined before it in scope"));
        }
    }

    /// Checks a block in a new scope; returns the values it defined at its top level.
    fn block(&mut self, b: &Block, pre: &[VarId], what: &str) -> HashSet<VarId> {
        self.scopes.push(pre.iter().copied().collect());
        for s in &b.stmts {
            self.stmt(s);
        }
        let ends_in_return = match b.stmts.last() {
            Some(Stmt::Return(..)) => true,
            Some(Stmt::If(i)) => i.then_b.diverges && i.else_b.diverges,
            _ => false,
        };
        if b.diverges != ends_in_return {
            self.errors.push(format!(
                "{what}: `diverges` is {} but the block {} in a return",
                b.diverges,
                if ends_in_return {
                    "ends"
                } else {
                    "does not end"
                }
            ));
        }
        self.scopes.pop().unwrap()
    }

    fn stmt(&mut self, s: &Stmt) {
        match s {
            Stmt::Assign(a) => {
                let what = format!("%{} = ..", a.dst);
                for r in crate::analysis::op_reads(&a.op) {
                    self.use_var(r, &what);
                }
                self.define(a.dst, &what);
            }
            Stmt::Return(v, _) => self.use_op(v, "return"),
            Stmt::If(i) => {
                let what = format!("if#{}", i.id);
                let then_defs = self.block(&i.then_b, &[], &format!("{what} then"));
                let else_defs = self.block(&i.else_b, &[], &format!("{what} else"));
                for p in &i.phis {
                    for (o, defs, side, diverges) in [
                        (&p.then_v, &then_defs, "then", i.then_b.diverges),
                        (&p.else_v, &else_defs, "else", i.else_b.diverges),
                    ] {
                        if let Operand::Var(v) = o
                            && !diverges
                            && !defs.contains(v)
                            && !self.visible(*v)
                        {
                            self.errors.push(format!(
                                    "{what}: phi %{} reads %{v} from the {side} branch, where it is not defined",
                                    p.dst
                                ));
                        }
                    }
                    self.define(p.dst, &format!("{what} phi"));
                }
            }
            Stmt::For(l) => {
                let what = format!("for#{}", l.id);
                for c in &l.carried {
                    self.use_op(&c.init, &format!("{what} carried init"));
                }
                let mut pre = vec![l.index];
                pre.extend(l.carried.iter().map(|c| c.head));
                for &v in &pre {
                    if !self.defined.insert(v) {
                        self.errors
                            .push(format!("%{v} is defined twice (again by {what})"));
                    }
                }
                let defs = self.block(&l.body, &pre, &what);
                for c in &l.carried {
                    if let Operand::Var(v) = &c.end
                        && !l.body.diverges
                        && !defs.contains(v)
                        && !pre.contains(v)
                        && !self.visible(*v)
                    {
                        self.errors.push(format!(
                            "{what}: carried end %{v} is not defined in the body or before the loop"
                        ));
                    }
                    self.define(c.after, &format!("{what} carried"));
                }
            }
        }
    }
}

/// Checks the IR's invariants; the errors, or nothing.
pub fn verify(f: &Function) -> Result<(), Vec<String>> {
    let mut v = Verifier {
        f,
        defined: HashSet::new(),
        scopes: vec![HashSet::new()],
        errors: Vec::new(),
    };
    for p in &f.params {
        v.define(p.var, &format!("parameter `{}`", p.ident));
    }
    let _ = v.block(&f.body, &[], "the body");
    if v.errors.is_empty() {
        Ok(())
    } else {
        Err(v.errors)
    }
}

/// [`verify`], panicking with the listing on failure: a bug in the macro, not in the user's
/// code. Run on every function in debug builds of the macro.
pub fn check(f: &Function) {
    if let Err(errors) = verify(f) {
        let mut msg = String::from("symgrad internal error: the IR is malformed\n");
        for e in &errors {
            let _ = writeln!(msg, "  {e}");
        }
        let _ = write!(msg, "{}", Listing(f));
        panic!("{msg}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn lowered(item: syn::ItemFn) -> Function {
        crate::lower::lower(&item, &crate::args::Args::default())
            .unwrap_or_else(|_| panic!("lowering failed"))
    }

    #[test]
    fn listing_shows_operations_merges_and_loops() {
        let f = lowered(parse_quote! {
            fn f(x: f64, xs: &[f64]) -> f64 {
                let mut s = x;
                for i in 0..xs.len() {
                    s = if s > xs[i] { s * xs[i] } else { s + 1.0 };
                }
                s.sin()
            }
        });
        let text = Listing(&f).to_string();
        for needle in [
            "fn(x: %", "for#", " carry ", "if#", "phi ", "mul ", "add ", "sin ", "return ",
        ] {
            assert!(text.contains(needle), "no `{needle}` in\n{text}");
        }
        verify(&f).unwrap();
    }

    #[test]
    fn verifier_rejects_a_use_before_its_definition_and_a_double_definition() {
        let mut f = lowered(parse_quote! {
            fn f(x: f64, y: f64) -> f64 {
                let a = x * y;
                let b = a + x;
                b * a
            }
        });
        verify(&f).unwrap();
        // Swap the first two operations: `b` now reads `a` before it exists.
        f.body.stmts.swap(0, 1);
        let errors = verify(&f).unwrap_err();
        assert!(
            errors.iter().any(|e| e.contains("not defined before it")),
            "{errors:?}"
        );
        f.body.stmts.swap(0, 1);
        // Define the first value twice.
        let first = f.body.stmts[0].clone();
        f.body.stmts.insert(1, first);
        let errors = verify(&f).unwrap_err();
        assert!(
            errors.iter().any(|e| e.contains("defined twice")),
            "{errors:?}"
        );
    }

    #[test]
    fn verifier_rejects_a_wrong_diverges_flag() {
        let mut f = lowered(parse_quote! {
            fn f(x: f64) -> f64 {
                if x > 0.0 {
                    return x;
                }
                x * 2.0
            }
        });
        verify(&f).unwrap();
        f.body.diverges = !f.body.diverges;
        assert!(
            verify(&f)
                .unwrap_err()
                .iter()
                .any(|e| e.contains("diverges"))
        );
    }

    /// Every function of the golden set and of the random-program set lowers to valid IR.
    #[test]
    fn every_known_function_lowers_to_valid_ir() {
        let mut n = 0;
        for (_, attr, item) in crate::golden::cases() {
            let args: crate::args::Args = syn::parse2(attr).unwrap();
            let f = crate::lower::lower(&item, &args).unwrap_or_else(|_| panic!("lowering"));
            verify(&f).unwrap_or_else(|e| panic!("{e:?}\n{}", Listing(&f)));
            n += 1;
        }
        let src = include_str!("../../../tests/random/programs.rs");
        let file: syn::File = syn::parse_file(src).unwrap();
        fn walk(items: &[syn::Item], n: &mut usize) {
            for item in items {
                match item {
                    syn::Item::Fn(f)
                        if f.attrs.iter().any(|a| a.path().is_ident("differentiable")) =>
                    {
                        let lowered = crate::lower::lower(f, &crate::args::Args::default())
                            .unwrap_or_else(|_| panic!("lowering {}", f.sig.ident));
                        verify(&lowered).unwrap_or_else(|e| {
                            panic!("{}: {e:?}\n{}", f.sig.ident, Listing(&lowered))
                        });
                        *n += 1;
                    }
                    syn::Item::Mod(m) => {
                        if let Some((_, items)) = &m.content {
                            walk(items, n);
                        }
                    }
                    _ => {}
                }
            }
        }
        walk(&file.items, &mut n);
        assert!(n > 300, "only {n} functions checked");
    }
}
