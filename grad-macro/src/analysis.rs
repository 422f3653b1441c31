//! Data-flow facts over the IR, computed by walking it (not by emitting code): which outer
//! values the adjoint of a block adds to. The emitter keeps the results in side tables keyed
//! by value; nothing is stored in the IR.

use crate::ir::*;
use std::collections::{BTreeSet, HashMap, HashSet};

/// The values an operation reads (its operands, the base of a field or an index, the
/// receiver of a method call).
pub fn op_reads(op: &Op) -> Vec<VarId> {
    let mut out = Vec::new();
    let mut push = |o: &Operand| {
        if let Operand::Var(v) = o {
            out.push(*v);
        }
    };
    match op {
        Op::Clone(x) | Op::Neg(x) | Op::Transpose(x) | Op::Sum(x) | Op::Mean(x) => push(x),
        Op::Add(x, y)
        | Op::Sub(x, y)
        | Op::Mul(x, y)
        | Op::Div(x, y)
        | Op::MatMulNt(x, y)
        | Op::MatMulTn(x, y)
        | Op::ComponentMul(x, y) => {
            push(x);
            push(y);
        }
        Op::Math(_, args, _) => args.iter().for_each(&mut push),
        Op::Call(callee, args) => {
            if let Callee::Method { receiver, .. } = callee {
                push(&Operand::Var(*receiver));
            }
            args.iter().for_each(|a| push(&a.operand));
        }
        Op::Field(b, _) => push(&Operand::Var(*b)),
        Op::Index(b, i) => {
            push(&Operand::Var(*b));
            push(i);
        }
        Op::ArrayLit(xs, _) => xs.iter().for_each(&mut push),
        Op::Tuple(xs) => xs.iter().for_each(&mut push),
        Op::Repeat(x, ..) => push(x),
        Op::SetIndex(b, i, v) => {
            push(&Operand::Var(*b));
            push(i);
            push(v);
        }
        Op::Push(b, v) => {
            push(&Operand::Var(*b));
            push(v);
        }
        Op::Map(x, m) => {
            push(x);
            m.captures.iter().for_each(|c| push(&Operand::Var(*c)));
        }
        Op::Inactive(_) => {}
    }
    out
}

/// Every value defined inside a block, nested blocks included (loop indices and heads too).
pub fn deep_locals(b: &Block) -> HashSet<VarId> {
    let mut out = HashSet::new();
    fn walk(b: &Block, out: &mut HashSet<VarId>) {
        out.extend(b.defined());
        for s in &b.stmts {
            match s {
                Stmt::If(i) => {
                    walk(&i.then_b, out);
                    walk(&i.else_b, out);
                }
                Stmt::For(f) => {
                    out.insert(f.index);
                    out.extend(f.carried.iter().map(|c| c.head));
                    walk(&f.body, out);
                }
                _ => {}
            }
        }
    }
    walk(b, &mut out);
    out
}

/// Every value read anywhere in a block: operands, the inputs of merges (phis) and of loop
/// heads.
fn deep_reads(b: &Block, out: &mut BTreeSet<VarId>) {
    let var = |o: &Operand| match o {
        Operand::Var(v) => Some(*v),
        Operand::Const(_) => None,
    };
    for s in &b.stmts {
        match s {
            Stmt::Assign(a) => out.extend(op_reads(&a.op)),
            Stmt::If(i) => {
                for p in &i.phis {
                    out.extend(var(&p.then_v));
                    out.extend(var(&p.else_v));
                }
                deep_reads(&i.then_b, out);
                deep_reads(&i.else_b, out);
            }
            Stmt::For(f) => {
                for c in &f.carried {
                    out.extend(var(&c.init));
                    out.extend(var(&c.end));
                }
                deep_reads(&f.body, out);
            }
            // A return's adjoint is seeded by the exit, not by the block's sweep.
            Stmt::Return(..) => {}
        }
    }
}

/// The active values defined outside `b` (or listed in `also`) whose adjoint the reverse
/// sweep of `b` may add to: a superset of the values a branch or an iteration writes
/// adjoints to, so that those adjoints are made mutable before the branch or loop.
/// `also` are values the sweep is seeded through (the branch's phi inputs).
pub fn adjoint_targets(
    b: &Block,
    also: &[VarId],
    extra_locals: &[VarId],
    active: impl Fn(VarId) -> bool,
) -> Vec<VarId> {
    let mut reads = BTreeSet::new();
    deep_reads(b, &mut reads);
    reads.extend(also.iter().copied());
    let locals = deep_locals(b);
    reads
        .into_iter()
        .filter(|v| active(*v) && !locals.contains(v) && !extra_locals.contains(v))
        .collect()
}

/// Something the reverse sweep may read: a value, the branch tag of an `if`, the tape of a
/// `for`, or the pullback of a call.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Kept {
    Var(VarId),
    Tag(usize),
    Tape(usize),
    Pullback(VarId),
}

/// What the reverse rules depend on besides the IR: which values are active, and whether a
/// contribution from `from` to `v` is guarded by the caller's mask of needed gradients
/// (`if need { g } else { zero(v) }`, which reads `v`).
pub struct RevCtx<'a> {
    pub vars: &'a [VarInfo],
    /// The adjoint runs in a `_pullback` closure, which takes the mask.
    pub masked: bool,
    /// The parameters every gradient may depend on (no guard is needed for those).
    pub all_deps: &'a Deps,
    /// By loop id, the values its iterations' adjoint recomputes instead of taping (see
    /// [`remat`]); their operands are read instead of them.
    pub remat: &'a RematMap,
    /// The defining assignment of each value defined by one.
    pub defs: &'a HashMap<VarId, &'a Assign>,
    /// Values known to be scalars: their zero adjoints are `0.0`, made from no value.
    pub scalars: &'a HashSet<VarId>,
}

impl RevCtx<'_> {
    pub fn active(&self, v: VarId) -> bool {
        self.vars[v].active
    }

    fn active_op(&self, o: &Operand) -> Option<VarId> {
        match o {
            Operand::Var(v) if self.active(*v) => Some(*v),
            _ => None,
        }
    }

    /// Whether the contribution from `from` to `v` is wrapped in the mask test.
    pub fn guarded(&self, v: VarId, from: VarId) -> bool {
        let d = &self.vars[v].deps;
        self.masked && *d != self.vars[from].deps && d != self.all_deps
    }
}

/// Everything the reverse sweep of `b` reads, from the IR alone, one reverse rule at a time:
/// the operands (or results) each rule of an active operation reads, the values a guarded
/// contribution makes a zero from, the outer values whose adjoints a nested branch or loop
/// materialises as zeros, branch tags, tapes, call pullbacks, and for each loop the operands
/// of the values its iterations recompute. What a branch or an iteration keeps is this set
/// restricted to its own values (less what it recomputes), so the sweep can never read a value
/// that was not kept; the emitter's rules and these must agree (rustc checks it: a value the
/// sweep reads and nobody kept is an unknown name).
pub fn reverse_reads(b: &Block, cx: &RevCtx, out: &mut BTreeSet<Kept>) {
    for s in &b.stmts {
        match s {
            Stmt::Assign(a) => {
                if cx.active(a.dst) {
                    op_reverse_reads(a, cx, out);
                }
            }
            Stmt::If(i) => {
                if !(i.then_b.diverges && i.else_b.diverges) {
                    out.insert(Kept::Tag(i.id));
                }
                for (arm, then) in [(&i.then_b, true), (&i.else_b, false)] {
                    let seeds: Vec<VarId> = i
                        .phis
                        .iter()
                        .filter(|p| cx.active(p.dst))
                        .filter_map(|p| cx.active_op(if then { &p.then_v } else { &p.else_v }))
                        .collect();
                    if !arm.diverges {
                        for v in adjoint_targets(arm, &seeds, &[], |v| cx.active(v)) {
                            out.insert(Kept::Var(v));
                        }
                    }
                    reverse_reads(arm, cx, out);
                }
            }
            Stmt::For(f) => {
                if !f.carried.iter().any(|c| cx.active(c.head)) {
                    continue;
                }
                out.insert(Kept::Tape(f.id));
                out.insert(Kept::Var(f.index));
                let mut extra = vec![f.index];
                extra.extend(f.carried.iter().map(|c| c.head));
                let ends: Vec<VarId> = f
                    .carried
                    .iter()
                    .filter(|c| cx.active(c.head))
                    .filter_map(|c| cx.active_op(&c.end))
                    .collect();
                // Zero adjoints of the carried values are made from them (not for scalars).
                for c in f.carried.iter().filter(|c| cx.active(c.head)) {
                    for v in [c.head, c.after] {
                        if !cx.scalars.contains(&v) {
                            out.insert(Kept::Var(v));
                        }
                    }
                }
                for v in adjoint_targets(&f.body, &ends, &extra, |v| cx.active(v)) {
                    out.insert(Kept::Var(v));
                }
                for v in cx.remat.get(&f.id).into_iter().flatten() {
                    out.extend(remat_reads(cx.defs[v], cx.vars).into_iter().map(Kept::Var));
                }
                reverse_reads(&f.body, cx, out);
            }
            Stmt::Return(..) => {}
        }
    }
}

/// What the reverse rule of one active assignment reads (mirrors `Gen::rev_assign`).
fn op_reverse_reads(a: &Assign, cx: &RevCtx, out: &mut BTreeSet<Kept>) {
    let t = a.dst;
    let mut read = |o: &Operand| {
        if let Operand::Var(v) = o {
            out.insert(Kept::Var(*v));
        }
    };
    // A guarded contribution to `v` makes its zero from `v`.
    let guard = |o: &Operand, read: &mut dyn FnMut(&Operand)| {
        if let Some(v) = cx.active_op(o)
            && cx.guarded(v, t)
        {
            read(o);
        }
    };
    match &a.op {
        Op::Clone(_)
        | Op::Neg(_)
        | Op::Transpose(_)
        | Op::ArrayLit(..)
        | Op::Repeat(..)
        | Op::Tuple(_) => {}
        Op::Add(x, y) | Op::Sub(x, y) => {
            guard(x, &mut read);
            guard(y, &mut read);
        }
        // With a constant factor the rule is `g * c`; otherwise it reads both factors.
        Op::Mul(x, y) => {
            if let (Operand::Var(_), Operand::Var(_)) = (x, y) {
                read(x);
                read(y);
            }
            guard(x, &mut read);
            guard(y, &mut read);
        }
        Op::MatMulNt(x, y) | Op::MatMulTn(x, y) | Op::ComponentMul(x, y) => {
            read(x);
            read(y);
            guard(x, &mut read);
            guard(y, &mut read);
        }
        // `g / c` for a constant divisor; otherwise the rules read both.
        Op::Div(x, y) => {
            if let Operand::Var(_) = y {
                read(x);
                read(y);
            }
            guard(x, &mut read);
        }
        Op::Math(m, args, _) => {
            use MathFn::*;
            match m {
                Signum => {}
                Tan | Tanh | Exp | Exp2 | Sqrt | Cbrt | Recip | ExpM1 => read(&Operand::Var(t)),
                Powf | Hypot => {
                    args.iter().take(2).for_each(&mut read);
                    read(&Operand::Var(t));
                }
                Powi | Atan2 | Log | Max | Min | MulAdd => args.iter().take(2).for_each(&mut read),
                _ => read(&args[0]),
            }
        }
        Op::Call(..) => {
            for v in op_reads(&a.op) {
                read(&Operand::Var(v));
            }
        }
        Op::Field(b, _) => read(&Operand::Var(*b)),
        Op::Index(b, i) => {
            read(&Operand::Var(*b));
            read(i);
        }
        Op::Sum(x) | Op::Mean(x) => read(x),
        Op::SetIndex(_, i, _) => read(i),
        Op::Push(b, _) => read(&Operand::Var(*b)),
        Op::Map(x, m) => {
            guard(x, &mut read);
            for c in &m.captures {
                guard(&Operand::Var(*c), &mut read);
            }
        }
        Op::Inactive(_) => {}
    }
    if let Op::Call(..) | Op::Map(..) = a.op {
        out.insert(Kept::Pullback(t));
    }
}

/// The identifiers in a token stream (nested groups included).
pub fn idents(ts: &proc_macro2::TokenStream) -> Vec<proc_macro2::Ident> {
    let mut out = Vec::new();
    for t in ts.clone() {
        match t {
            proc_macro2::TokenTree::Ident(i) => out.push(i),
            proc_macro2::TokenTree::Group(g) => out.extend(idents(&g.stream())),
            _ => {}
        }
    }
    out
}

/// The values a rematerialised assignment reads: its operands, or for constant code the
/// values its identifiers name.
pub fn remat_reads(a: &Assign, vars: &[VarInfo]) -> Vec<VarId> {
    match &a.op {
        Op::Inactive(ts) => idents(ts)
            .iter()
            .filter_map(|n| vars.iter().position(|v| v.ident == *n))
            .collect(),
        op => op_reads(op),
    }
}

/// Values known to be scalars (or small `Copy` elements): float parameters, elements read
/// by indexing, and arithmetic and math on those. Rematerialisation recomputes only these,
/// never a matrix.
pub fn scalars(params: &[(VarId, &syn::Type)], body: &Block) -> HashSet<VarId> {
    fn is_float(ty: &syn::Type) -> bool {
        match ty {
            syn::Type::Path(p) => {
                p.qself.is_none() && (p.path.is_ident("f64") || p.path.is_ident("f32"))
            }
            syn::Type::Reference(r) => is_float(&r.elem),
            syn::Type::Paren(p) => is_float(&p.elem),
            _ => false,
        }
    }
    fn walk(b: &Block, out: &mut HashSet<VarId>) {
        let sc = |o: &Operand, out: &HashSet<VarId>| match o {
            Operand::Var(v) => out.contains(v),
            Operand::Const(_) => true,
        };
        for s in &b.stmts {
            match s {
                Stmt::Assign(a) => {
                    let yes = match &a.op {
                        Op::Index(..) => true,
                        Op::Inactive(ts) => int_code(ts).is_some(),
                        Op::Clone(x) | Op::Neg(x) => sc(x, out),
                        Op::Add(x, y) | Op::Sub(x, y) | Op::Mul(x, y) | Op::Div(x, y) => {
                            sc(x, out) && sc(y, out)
                        }
                        Op::Math(_, args, _) => args.iter().all(|x| sc(x, out)),
                        _ => false,
                    };
                    if yes {
                        out.insert(a.dst);
                    }
                }
                Stmt::If(i) => {
                    walk(&i.then_b, out);
                    walk(&i.else_b, out);
                    for p in &i.phis {
                        if sc(&p.then_v, out) && sc(&p.else_v, out) {
                            out.insert(p.dst);
                        }
                    }
                }
                Stmt::For(f) => {
                    for c in &f.carried {
                        if sc(&c.init, out) {
                            out.insert(c.head);
                        }
                    }
                    walk(&f.body, out);
                    for c in &f.carried {
                        if sc(&c.init, out) && sc(&c.end, out) {
                            out.insert(c.after);
                        } else {
                            out.remove(&c.head);
                        }
                    }
                }
                Stmt::Return(..) => {}
            }
        }
    }
    let mut out: HashSet<VarId> = params
        .iter()
        .filter(|(_, ty)| is_float(ty))
        .map(|(v, _)| *v)
        .collect();
    walk(body, &mut out);
    out
}

/// The identifiers of constant code that is plain arithmetic on values and element reads
/// (`i + 1`, `n - 1 - i`, `k as f64`, `ys[i]`): no calls, methods, macros or paths; names of
/// values, upper-case constants and primitive type names only. `None` for anything else.
fn int_code(ts: &proc_macro2::TokenStream) -> Option<Vec<proc_macro2::Ident>> {
    const PRIM: &[&str] = &[
        "as", "usize", "isize", "u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64", "f32", "f64",
    ];
    let mut names = Vec::new();
    let mut prev_ident = false;
    for t in ts.clone() {
        match &t {
            proc_macro2::TokenTree::Ident(i) => {
                let s = i.to_string();
                if s == "self" {
                    return None;
                }
                if !PRIM.contains(&s.as_str()) {
                    names.push(i.clone());
                }
                prev_ident = true;
            }
            proc_macro2::TokenTree::Group(g) => {
                // `a[i]` after a name: an element read; `f(..)` or `S { .. }` after a name, or
                // a bracket or brace anywhere else: a call, a literal or a block.
                let ok = match g.delimiter() {
                    proc_macro2::Delimiter::Parenthesis => !prev_ident,
                    proc_macro2::Delimiter::Bracket => prev_ident,
                    _ => false,
                };
                if !ok {
                    return None;
                }
                names.extend(int_code(&g.stream())?);
                prev_ident = false;
            }
            proc_macro2::TokenTree::Punct(p) => {
                if matches!(p.as_char(), '.' | ':' | '!' | '&' | '|' | '=' | ';' | '?') {
                    return None;
                }
                prev_ident = false;
            }
            proc_macro2::TokenTree::Literal(_) => prev_ident = false,
        }
    }
    Some(names)
}

/// The values of a loop's body that the adjoint of an iteration recomputes at its top
/// instead of keeping them on the tape, in the order they are defined: index reads
/// (`x[i]`), arithmetic on indices (`i + 1`) and `+ - * /`, negation and copies of scalars,
/// defined at the top level of the body, whose operands the adjoint has without a tape (the
/// loop index, values defined before the loop, constants, other recomputed values), and that
/// the adjoint reads (`reads`: the body's [`reverse_reads`]). A recomputed value never makes
/// the tape hold something it would not hold anyway: the tape keeps fewer values, the adjoint
/// repeats a few cheap operations.
pub fn remat(
    f: &For,
    vars: &[VarInfo],
    scalars: &HashSet<VarId>,
    defs: &HashMap<VarId, &Assign>,
    reads: &BTreeSet<Kept>,
) -> Vec<VarId> {
    let locals = deep_locals(&f.body);
    let heads: HashSet<VarId> = f.carried.iter().map(|c| c.head).collect();
    let mut cand: HashSet<VarId> = HashSet::new();
    let mut order = Vec::new();
    let avail = |v: VarId, cand: &HashSet<VarId>| {
        v == f.index || cand.contains(&v) || (!locals.contains(&v) && !heads.contains(&v))
    };
    for s in &f.body.stmts {
        let Stmt::Assign(a) = s else { continue };
        let ok = match &a.op {
            Op::Index(b, i) => {
                vars[*b].ident != "self"
                    && !matches!(defs.get(b).map(|d| &d.op), Some(Op::Field(..)))
                    && avail(*b, &cand)
                    && operand_avail(i, &|u| avail(u, &cand))
            }
            Op::Inactive(ts) => int_code(ts).is_some_and(|names| {
                names
                    .iter()
                    .all(|n| match vars.iter().position(|v| v.ident == *n) {
                        Some(u) => avail(u, &cand) && vars[u].ident != "self",
                        None => n
                            .to_string()
                            .chars()
                            .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit()),
                    })
            }),
            Op::Clone(x) | Op::Neg(x) => {
                scalars.contains(&a.dst) && operand_avail(x, &|v| avail(v, &cand))
            }
            Op::Add(x, y) | Op::Sub(x, y) | Op::Mul(x, y) | Op::Div(x, y) => {
                scalars.contains(&a.dst)
                    && operand_avail(x, &|v| avail(v, &cand))
                    && operand_avail(y, &|v| avail(v, &cand))
            }
            _ => false,
        };
        if ok {
            cand.insert(a.dst);
            order.push(a);
        }
    }
    // Keep those the adjoint reads, and what they are recomputed from.
    let mut need: HashSet<VarId> = reads
        .iter()
        .filter_map(|k| match k {
            Kept::Var(v) if cand.contains(v) => Some(*v),
            _ => None,
        })
        .collect();
    for a in order.iter().rev() {
        if need.contains(&a.dst) {
            need.extend(
                remat_reads(a, vars)
                    .into_iter()
                    .filter(|u| cand.contains(u)),
            );
        }
    }
    order
        .iter()
        .filter(|a| need.contains(&a.dst))
        .map(|a| a.dst)
        .collect()
}

fn operand_avail(o: &Operand, avail: &dyn Fn(VarId) -> bool) -> bool {
    match o {
        Operand::Var(v) => avail(*v),
        Operand::Const(_) => true,
    }
}

/// By loop id, what its iterations' adjoint recomputes.
pub type RematMap = HashMap<usize, Vec<VarId>>;

/// [`remat`] for every loop in `body`, inner loops first (an outer loop's reads include what
/// its inner loops recompute from).
pub fn remat_all(
    body: &Block,
    vars: &[VarInfo],
    masked: bool,
    all_deps: &Deps,
    defs: &HashMap<VarId, &Assign>,
    scalars: &HashSet<VarId>,
) -> RematMap {
    fn walk(b: &Block, map: &mut RematMap, go: &dyn Fn(&For, &RematMap) -> Vec<VarId>) {
        for s in &b.stmts {
            match s {
                Stmt::If(i) => {
                    walk(&i.then_b, map, go);
                    walk(&i.else_b, map, go);
                }
                Stmt::For(f) => {
                    walk(&f.body, map, go);
                    let r = go(f, map);
                    map.insert(f.id, r);
                }
                _ => {}
            }
        }
    }
    let go = |f: &For, map: &RematMap| {
        let cx = RevCtx {
            vars,
            masked,
            all_deps,
            remat: map,
            defs,
            scalars,
        };
        let mut reads = BTreeSet::new();
        reverse_reads(&f.body, &cx, &mut reads);
        remat(f, vars, scalars, defs, &reads)
    };
    let mut map = HashMap::new();
    walk(body, &mut map, &go);
    map
}

/// The values read element by element (`Op::Index` bases) inside a loop.
pub fn indexed_in_loops(b: &Block) -> HashSet<VarId> {
    fn walk(b: &Block, in_loop: bool, out: &mut HashSet<VarId>) {
        for s in &b.stmts {
            match s {
                Stmt::Assign(Assign {
                    op: Op::Index(base, _),
                    ..
                }) if in_loop => {
                    out.insert(*base);
                }
                Stmt::If(i) => {
                    walk(&i.then_b, in_loop, out);
                    walk(&i.else_b, in_loop, out);
                }
                Stmt::For(f) => walk(&f.body, true, out),
                _ => {}
            }
        }
    }
    let mut out = HashSet::new();
    walk(b, false, &mut out);
    out
}

/// The defining assignment of every value defined by one, nested blocks included.
pub fn defs(b: &Block) -> HashMap<VarId, &Assign> {
    fn walk<'a>(b: &'a Block, out: &mut HashMap<VarId, &'a Assign>) {
        for s in &b.stmts {
            match s {
                Stmt::Assign(a) => {
                    out.insert(a.dst, a);
                }
                Stmt::If(i) => {
                    walk(&i.then_b, out);
                    walk(&i.else_b, out);
                }
                Stmt::For(f) => walk(&f.body, out),
                Stmt::Return(..) => {}
            }
        }
    }
    let mut out = HashMap::new();
    walk(b, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn lowered(item: syn::ItemFn) -> crate::lower::Function {
        crate::lower::lower(&item, &crate::args::Args::default())
            .unwrap_or_else(|_| panic!("lowering failed"))
    }

    /// The loop of `f` (the first top-level `for`) and the names of what its adjoint
    /// recomputes.
    fn recomputed(item: syn::ItemFn) -> Vec<String> {
        let f = lowered(item);
        let all = f
            .params
            .iter()
            .fold(Deps::default(), |d, p| d.union(&f.vars[p.var].deps));
        let defs = defs(&f.body);
        let params: Vec<(VarId, &syn::Type)> = f.params.iter().map(|p| (p.var, &p.ty)).collect();
        let sc = scalars(&params, &f.body);
        let map = remat_all(&f.body, &f.vars, true, &all, &defs, &sc);
        let id = f
            .body
            .stmts
            .iter()
            .find_map(|s| match s {
                Stmt::For(l) => Some(l.id),
                _ => None,
            })
            .expect("a loop");
        map[&id]
            .iter()
            .map(|v| f.vars[*v].ident.to_string())
            .collect()
    }

    #[test]
    fn index_reads_and_cheap_arithmetic_on_them_are_recomputed() {
        let names = recomputed(parse_quote! {
            fn f(x: &[f64]) -> f64 {
                let mut s = 0.0;
                for i in 0..x.len() - 1 {
                    let a = x[i + 1] - x[i] * x[i];
                    s += 100.0 * a * a;
                }
                s
            }
        });
        // `100 * a` and `a` (read by the rule of their product) and what they are made of:
        // i + 1, the three reads and x[i] * x[i].
        assert!(names.iter().any(|n| n.starts_with("__a_")), "{names:?}");
        assert_eq!(names.len(), 7, "{names:?}");
    }

    #[test]
    fn math_results_and_values_made_from_the_carried_value_are_taped() {
        let names = recomputed(parse_quote! {
            fn f(x: &[f64], w: f64) -> f64 {
                let mut s = w;
                for i in 0..x.len() {
                    let e = (x[i] * w).exp();
                    let h = s * x[i];
                    s = h * e;
                }
                s
            }
        });
        // `x[i] * w` feeds only `exp`, whose rule reads its result: nothing reads the
        // product, so it is not recomputed either; `e` is a math result and `h` depends on
        // the carried `s`: both taped.
        assert!(
            !names
                .iter()
                .any(|n| n.starts_with("__e_") || n.starts_with("__h_")),
            "{names:?}"
        );
        assert!(names.iter().all(|n| n.starts_with("__t")), "{names:?}");
    }

    #[test]
    fn matrices_are_never_recomputed() {
        let names = recomputed(parse_quote! {
            fn f(w: &DMatrix<f64>, xs: &[f64]) -> f64 {
                let mut s = 0.0;
                for i in 0..xs.len() {
                    let m = w * xs[i];
                    let t = m * xs[i];
                    s += t.sum();
                }
                s
            }
        });
        assert!(
            !names
                .iter()
                .any(|n| n.starts_with("__m_") || n.starts_with("__t_")),
            "{names:?}"
        );
    }
}
