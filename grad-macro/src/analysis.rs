//! Data-flow facts over the IR, computed by walking it (not by emitting code): which outer
//! values the adjoint of a block adds to. The emitter keeps the results in side tables keyed
//! by value; nothing is stored in the IR.

use crate::ir::*;
use std::collections::{BTreeSet, HashSet};

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

/// Everything the reverse sweep of `b` may read, from the IR alone: the operands and the
/// result of every active operation (the rules read both, and zero adjoints are made from
/// values), the inputs and outputs of active merges and loop-carried values, branch tags,
/// tapes and call pullbacks. An over-approximation: what a branch or an iteration keeps is
/// this set restricted to its own values, so the sweep can never read a value that was not
/// kept.
pub fn reverse_reads(b: &Block, active: &impl Fn(VarId) -> bool, out: &mut BTreeSet<Kept>) {
    fn var(o: &Operand, out: &mut BTreeSet<Kept>) {
        if let Operand::Var(v) = o {
            out.insert(Kept::Var(*v));
        }
    }
    for s in &b.stmts {
        match s {
            Stmt::Assign(a) => {
                if active(a.dst) {
                    out.insert(Kept::Var(a.dst));
                    out.extend(op_reads(&a.op).into_iter().map(Kept::Var));
                    if let Op::Call(..) | Op::Map(..) = a.op {
                        out.insert(Kept::Pullback(a.dst));
                    }
                }
            }
            Stmt::If(i) => {
                if !(i.then_b.diverges && i.else_b.diverges) {
                    out.insert(Kept::Tag(i.id));
                }
                for p in i.phis.iter().filter(|p| active(p.dst)) {
                    out.insert(Kept::Var(p.dst));
                    var(&p.then_v, out);
                    var(&p.else_v, out);
                }
                reverse_reads(&i.then_b, active, out);
                reverse_reads(&i.else_b, active, out);
            }
            Stmt::For(f) => {
                if f.carried.iter().any(|c| active(c.head)) {
                    out.insert(Kept::Tape(f.id));
                }
                out.insert(Kept::Var(f.index));
                for c in f.carried.iter().filter(|c| active(c.head)) {
                    out.insert(Kept::Var(c.head));
                    out.insert(Kept::Var(c.after));
                    var(&c.init, out);
                    var(&c.end, out);
                }
                reverse_reads(&f.body, active, out);
            }
            Stmt::Return(..) => {}
        }
    }
}
