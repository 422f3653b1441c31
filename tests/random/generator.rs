//! A generator of random scalar Rust functions for `#[differentiable]`.
//!
//! Deterministic from a seed (`ChaCha8Rng`). Every construct the macro documents can be
//! switched on or off (`Construct`), so that a program set can be generated without the
//! constructs the macro does not compile yet. Values are kept bounded by construction: each
//! expression carries an upper bound of its magnitude, products and `exp` are only formed
//! when the bound stays small, and assignments inside loops are contracting or add at most
//! about 1 per iteration. Inputs are drawn from `[-2, 2]` by the checker.
//!
//! A program is one or two functions (a callee `NAME_h`, also `#[differentiable]`, and the
//! main function `NAME`). The generator also writes an instrumented f64 copy of each
//! function, `NAME_path(.., h)`, with the same body except that every branch condition
//! goes through `__p(cond, h)`, which folds the decision into the hash `h`: the checker uses
//! it to skip points whose finite-difference stencil crosses a branch boundary (a kink).
//!
//! Text placeholders: a condition is written `⟦cond⟧` and a call `⟪name⟫(args⦆`; `render`
//! replaces them for the plain and the instrumented copy.

#![allow(dead_code)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;
use std::fmt::Write;

/// One construct of the supported syntax.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Construct {
    /// `if`/`else` as a statement (branches assign outer locals).
    IfStmt,
    /// `if`/`else` as an expression (`let t = if c { a } else { b };`, or inside an expression).
    IfExpr,
    /// `else if` chains (of statements and of expressions).
    ElseIf,
    /// an `if` statement as the last thing in a block without a value (loop body, branch).
    TrailingIf,
    /// `for i in 0..K` loops with loop-carried values.
    Loop,
    /// a `for` loop inside a `for` loop.
    NestedLoop,
    /// an `if` (statement or expression) inside a `for` loop.
    IfInLoop,
    /// early `return` inside an `if` outside loops.
    Return,
    /// early `return` inside a `for` loop.
    ReturnInLoop,
    /// `+=`, `-=`, `*=`, `/=` on locals that carry a gradient.
    CompoundActive,
    /// `let mut c: f64 = 0.0;` and `c += 1.0` etc. on locals that carry no gradient.
    CompoundInactive,
    /// `let x = .. x ..;` rebinding a name (parameters and locals).
    Shadow,
    /// a `&[f64]` parameter, indexed by constants and loop indices, `0..xs.len()` loops.
    Slice,
    /// a `[f64; N]` parameter, indexed by constants and loop indices.
    Array,
    /// a call to another `#[differentiable]` function.
    Call,
    /// `const` items.
    Const,
    /// the program is written for `f32` instead of `f64`.
    F32,
    /// an integer parameter `n: usize` used as a loop bound.
    IntBound,
    /// `while ⟦k < K && cond⟧ { k += 1; .. }`: a counter bound and/or a condition on active
    /// values (the counter is incremented first, so the loop always terminates).
    While,
    /// `if ⟦cond⟧ { break; }` in `for`/`while`/`loop` bodies.
    Break,
    /// `if ⟦cond⟧ { continue; }` in `for`/`while`/`loop` bodies.
    Continue,
    /// `'l: for ..` with `break 'l`/`continue 'l` from a nested loop.
    LabeledBreak,
    /// `loop { k += 1; if ⟦k > K⟧ { break e; } .. }`, as `let r = loop {..};` with
    /// `break value` or as a statement with plain `break`.
    LoopBreakValue,
    /// `match` on inactive integers (loop indices `i % m`, counters, `n`): literals,
    /// or-patterns, ranges, guards, bindings, `_`; arms as expressions, blocks, `return`.
    Match,
    /// `match` on active values: a float scrutinee with guards on a binding
    /// (`v if ⟦v < c⟧ => ..`), and `match ⟦cond⟧ { true => .., false => .. }`.
    MatchActive,
    /// `if let 0 = i % 2`, `if let 1..=2 = n`, `if let Some(q) = o` on a local `Option`.
    IfLet,
    /// `for` over slice/array parameters: `for &x in xs`, `for x in xs.iter()`,
    /// `enumerate`, `zip`, `rev`, `skip`, `take`, `step_by`, and over `(0..K).rev()`.
    IterFor,
    /// iterator chains in expressions: `map`/`sum`/`product`/`fold`/`count` over
    /// `zip`/`enumerate`/`rev`/`skip`/`take`/`step_by` of slices, arrays and ranges.
    IterConsume,
    /// `let f = |t: f64| ..;` (and `move`) capturing active locals, called as `f(e)` and
    /// passed to `map`.
    Closure,
}

pub use Construct as C;

/// Every construct, in declaration order.
pub const ALL: [C; 29] = [
    C::IfStmt,
    C::IfExpr,
    C::ElseIf,
    C::TrailingIf,
    C::Loop,
    C::NestedLoop,
    C::IfInLoop,
    C::Return,
    C::ReturnInLoop,
    C::CompoundActive,
    C::CompoundInactive,
    C::Shadow,
    C::Slice,
    C::Array,
    C::Call,
    C::Const,
    C::F32,
    C::IntBound,
    C::While,
    C::Break,
    C::Continue,
    C::LabeledBreak,
    C::LoopBreakValue,
    C::Match,
    C::MatchActive,
    C::IfLet,
    C::IterFor,
    C::IterConsume,
    C::Closure,
];

impl Construct {
    /// The name used on command lines (`FUZZ_OFF=if_in_loop,trailing_if`).
    pub fn name(self) -> &'static str {
        match self {
            C::IfStmt => "if_stmt",
            C::IfExpr => "if_expr",
            C::ElseIf => "else_if",
            C::TrailingIf => "trailing_if",
            C::Loop => "loop",
            C::NestedLoop => "nested_loop",
            C::IfInLoop => "if_in_loop",
            C::Return => "return",
            C::ReturnInLoop => "return_in_loop",
            C::CompoundActive => "compound_active",
            C::CompoundInactive => "compound_inactive",
            C::Shadow => "shadow",
            C::Slice => "slice",
            C::Array => "array",
            C::Call => "call",
            C::Const => "const",
            C::F32 => "f32",
            C::IntBound => "int_bound",
            C::While => "while",
            C::Break => "break",
            C::Continue => "continue",
            C::LabeledBreak => "labeled_break",
            C::LoopBreakValue => "loop_break_value",
            C::Match => "match",
            C::MatchActive => "match_active",
            C::IfLet => "if_let",
            C::IterFor => "iter_for",
            C::IterConsume => "iter_consume",
            C::Closure => "closure",
        }
    }

    pub fn parse(s: &str) -> Option<C> {
        ALL.iter().copied().find(|c| c.name() == s.trim())
    }
}

/// Which constructs the generator may use.
#[derive(Clone, Debug)]
pub struct Config {
    pub on: BTreeSet<C>,
}

impl Config {
    pub fn all() -> Config {
        Config {
            on: ALL.iter().copied().collect(),
        }
    }

    /// All constructs except `off`.
    pub fn without(off: &[C]) -> Config {
        let mut c = Config::all();
        for o in off {
            c.on.remove(o);
        }
        c
    }

    /// Parses a comma-separated list of construct names to switch off.
    pub fn parse_off(list: &str) -> Result<Config, String> {
        let mut off = Vec::new();
        for s in list.split(',').filter(|s| !s.trim().is_empty()) {
            off.push(C::parse(s).ok_or_else(|| {
                format!(
                    "unknown construct `{s}`; known: {}",
                    ALL.map(C::name).join(", ")
                )
            })?);
        }
        Ok(Config::without(&off))
    }

    fn has(&self, c: C) -> bool {
        self.on.contains(&c)
    }
}

/// A generated program.
#[derive(Clone, Debug)]
pub struct Program {
    /// The main function's name (`p00042`).
    pub name: String,
    /// The seed it was generated from (`program(seed, ..)` regenerates it).
    pub seed: u64,
    /// The constructs it actually uses.
    pub used: BTreeSet<C>,
    /// The `#[differentiable]` functions and constants, with placeholders (see `render`).
    pub raw: String,
    /// The entry of the `CASES` table: a `Case { .. }` expression.
    pub case: String,
}

impl Program {
    /// The code as the user writes it: the functions with `#[differentiable]`.
    pub fn source(&self) -> String {
        render(&self.raw, false)
    }

    /// The instrumented f64 copy (`NAME_path`), without the attribute.
    pub fn path_source(&self) -> String {
        render(&self.raw, true)
    }

    /// Both, and the case's wrapper functions.
    pub fn full(&self) -> String {
        format!("{}\n{}\n", self.source(), self.path_source())
    }
}

/// Replaces the placeholders: plain (`⟦c⟧` -> `c`, `⟪g⟫(` -> `g(`) or instrumented
/// (`__p(c, h)`, `g_path(.., h)`, every `f32` -> `f64`, no attribute, `_path` names).
pub fn render(raw: &str, path: bool) -> String {
    if !path {
        return raw
            .replace('⟦', "")
            .replace('⟧', "")
            .replace('⟪', "")
            .replace("⟫(", "(")
            .replace('⦆', ")")
            .replace("@ATTR", "#[differentiable]")
            .replace("@SIG", "")
            .replace("@NAME", "");
    }
    let mut s = raw
        .replace('⟦', "__p(")
        .replace('⟧', ", h)")
        .replace('⟪', "")
        .replace("⟫(", "_path(")
        .replace('⦆', ", h)")
        .replace("@ATTR", "")
        .replace("@SIG", ", h: &mut u64")
        .replace("@NAME", "_path")
        .replace("f32", "f64");
    // The copy has its own f64 constants (`P00001_PK0`); its functions are visible to the
    // parent module (the scratch crate puts them in a child module).
    s = s
        .replace("_K", "_PK")
        .lines()
        .map(|l| match l.strip_prefix("fn ") {
            Some(rest) => format!("pub(super) fn {rest}"),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    s
}

#[derive(Clone, Debug, PartialEq)]
enum Kind {
    /// a float that may carry a gradient
    Active,
    /// a float computed from constants only
    Inactive,
    /// a loop index; `trip` is an upper bound on its value + 1
    Index {
        trip: usize,
    },
    Slice {
        len: usize,
    },
    Array {
        len: usize,
    },
    Int {
        value: usize,
    },
    /// a `&f64` loop variable (`for x in xs.iter()`), read as `*x`
    Ref,
    /// a closure `|t| ..` taking `arity` floats bounded by `CLOSURE_ARG`; `bound` is that
    /// of its value
    Closure {
        arity: usize,
    },
    /// a local `Option<f64>` of a constant
    Opt,
}

/// What a loop needs to know about the loops around a `break`/`continue`.
#[derive(Clone, Debug)]
struct Frame {
    /// `'l3`, if the loop may be named by a labeled `break`/`continue`
    label: Option<String>,
    label_used: bool,
    /// a `loop` whose `break` carries a value; the bound of the values broken with
    value: Option<f64>,
}

#[derive(Clone, Debug)]
struct Var {
    name: String,
    kind: Kind,
    mutable: bool,
    /// `|value| <= bound` (floats)
    bound: f64,
    /// a parameter (never assigned)
    param: bool,
}

/// An expression: its text, a bound on its magnitude, whether it needs no parentheses.
#[derive(Clone, Debug)]
struct E {
    s: String,
    b: f64,
    atom: bool,
    active: bool,
    /// rustc knows its float type (false for expressions of literals only)
    typed: bool,
}

impl E {
    fn p(&self) -> String {
        if self.atom {
            self.s.clone()
        } else {
            format!("({})", self.s)
        }
    }
}

const PRODUCT_CAP: f64 = 40.0;
/// Closure arguments are bounded by this (larger ones go through `tanh`).
const CLOSURE_ARG: f64 = 4.0;

struct Gen {
    rng: ChaCha8Rng,
    cfg: Config,
    used: BTreeSet<C>,
    scopes: Vec<Vec<Var>>,
    fresh: usize,
    ty: &'static str,
    /// nesting of loops (0 outside)
    loops: usize,
    /// nesting of `if` statements/expressions
    ifs: usize,
    /// the callee: name, arity, bound of its result
    callee: Option<(String, usize, f64)>,
    consts: Vec<(String, f64)>,
    /// statements generated so far in the function (caps the size)
    budget: i32,
    /// the loops around the current statement, innermost last
    frames: Vec<Frame>,
    /// inside a closure body (no nested closures or iterator consumers)
    closure: usize,
    /// inside a `let`-bound closure: no conditions or calls (its instrumented copy cannot
    /// hold `h` while `h` is used elsewhere), and no mutable locals unless `move`
    no_h: bool,
    immutable_only: bool,
}

/// Generates program number `index` of the set seeded by `seed`.
pub fn program(seed: u64, index: usize, cfg: &Config) -> Program {
    let pseed = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(index as u64);
    let name = format!("p{index:05}");
    let mut g = Gen {
        rng: ChaCha8Rng::seed_from_u64(pseed),
        cfg: cfg.clone(),
        used: BTreeSet::new(),
        scopes: vec![],
        fresh: 0,
        ty: "f64",
        loops: 0,
        ifs: 0,
        callee: None,
        consts: vec![],
        budget: 0,
        frames: vec![],
        closure: 0,
        no_h: false,
        immutable_only: false,
    };
    if g.on(C::F32) && g.rng.gen_bool(0.15) {
        g.ty = "f32";
    }
    let mut raw = String::new();
    // Constants.
    if g.on(C::Const) && g.rng.gen_bool(0.4) {
        for k in 0..g.rng.gen_range(1..=2) {
            let v: f64 = g.rng.gen_range(-1.5..1.5);
            let cname = format!("{}_K{k}", name.to_uppercase());
            writeln!(raw, "const {cname}: {} = {};", g.ty, lit(v)).unwrap();
            g.consts.push((cname, v.abs()));
        }
        g.used.insert(C::Const);
    }
    // The callee.
    if g.on(C::Call) && g.rng.gen_bool(0.35) {
        let arity = g.rng.gen_range(1..=3);
        let cname = format!("{name}_h");
        let params: Vec<Var> = (0..arity)
            .map(|i| Var {
                name: ["a", "b", "c"][i].to_string(),
                kind: Kind::Active,
                mutable: false,
                bound: 20.0,
                param: true,
            })
            .collect();
        let sig = params
            .iter()
            .map(|p| format!("{}: {}", p.name, g.ty))
            .collect::<Vec<_>>()
            .join(", ");
        g.scopes = vec![params];
        g.budget = 3;
        let saved = g.cfg.clone();
        let restricted = Config {
            on: saved
                .on
                .iter()
                .copied()
                .filter(|c| matches!(c, C::IfExpr | C::IfStmt | C::ElseIf | C::Shadow | C::Const))
                .collect(),
        };
        g.cfg = restricted;
        let body = g.fn_body();
        g.cfg = saved;
        let bound = body.1;
        writeln!(
            raw,
            "@ATTR\nfn {cname}@NAME({sig}@SIG) -> {} {{\n{}}}\n",
            g.ty, body.0
        )
        .unwrap();
        g.callee = Some((cname, arity, bound));
    }
    // The main function's parameters.
    let mut params = Vec::new();
    let nscalar = g.rng.gen_range(1..=3);
    for i in 0..nscalar {
        params.push(Var {
            name: format!("x{i}"),
            kind: Kind::Active,
            mutable: false,
            bound: 2.0,
            param: true,
        });
    }
    if g.on(C::Slice) && g.rng.gen_bool(0.4) {
        let len = g.rng.gen_range(1..=4);
        params.push(Var {
            name: "xs".into(),
            kind: Kind::Slice { len },
            mutable: false,
            bound: 2.0,
            param: true,
        });
    }
    if g.on(C::Array) && g.rng.gen_bool(0.4) {
        let len = g.rng.gen_range(1..=4);
        params.push(Var {
            name: "w".into(),
            kind: Kind::Array { len },
            mutable: false,
            bound: 2.0,
            param: true,
        });
    }
    if g.on(C::IntBound) && g.on(C::Loop) && g.rng.gen_bool(0.2) {
        let value = g.rng.gen_range(0..=4);
        params.push(Var {
            name: "n".into(),
            kind: Kind::Int { value },
            mutable: false,
            bound: 0.0,
            param: true,
        });
    }
    // Shuffle the parameter order a little.
    if params.len() > 1 && g.rng.gen_bool(0.3) {
        let i = g.rng.gen_range(0..params.len());
        let last = params.len() - 1;
        params.swap(i, last);
    }
    let ty = g.ty;
    let sig = params
        .iter()
        .map(|p| {
            let t = match &p.kind {
                Kind::Slice { .. } => format!("&[{ty}]"),
                Kind::Array { len } => format!("[{ty}; {len}]"),
                Kind::Int { .. } => "usize".to_string(),
                _ => ty.to_string(),
            };
            format!("{}: {t}", p.name)
        })
        .collect::<Vec<_>>()
        .join(", ");
    g.scopes = vec![params.clone()];
    g.budget = g.rng.gen_range(4..=9);
    let body = g.fn_body();
    writeln!(
        raw,
        "@ATTR\nfn {name}@NAME({sig}@SIG) -> {ty} {{\n{}}}",
        body.0
    )
    .unwrap();
    for p in &params {
        match p.kind {
            Kind::Slice { .. } => g.used.insert(C::Slice),
            Kind::Array { .. } => g.used.insert(C::Array),
            Kind::Int { .. } => g.used.insert(C::IntBound),
            _ => false,
        };
    }
    if ty == "f32" {
        g.used.insert(C::F32);
    }
    let case = case_entry(&name, pseed, &params, ty);
    Program {
        name,
        seed: pseed,
        used: g.used,
        raw,
        case,
    }
}

/// `Case { .. }` with wrappers that unpack a flat `&[f64]` into the parameters.
fn case_entry(name: &str, seed: u64, params: &[Var], ty: &str) -> String {
    let f32 = ty == "f32";
    let mut k = 0;
    let mut args = Vec::new(); // for the original / grad (in `ty`)
    let mut args64 = Vec::new(); // for the f64 path copy
    for p in params {
        match p.kind {
            Kind::Active => {
                args.push(if f32 {
                    format!("v[{k}] as f32")
                } else {
                    format!("v[{k}]")
                });
                args64.push(format!("v[{k}]"));
                k += 1;
            }
            Kind::Slice { len } => {
                args.push(if f32 {
                    format!(
                        "&v[{k}..{}].iter().map(|&t| t as f32).collect::<Vec<f32>>()",
                        k + len
                    )
                } else {
                    format!("&v[{k}..{}]", k + len)
                });
                args64.push(format!("&v[{k}..{}]", k + len));
                k += len;
            }
            Kind::Array { len } => {
                let el = |i: usize| {
                    if f32 {
                        format!("v[{}] as f32", k + i)
                    } else {
                        format!("v[{}]", k + i)
                    }
                };
                args.push(format!(
                    "[{}]",
                    (0..len).map(el).collect::<Vec<_>>().join(", ")
                ));
                args64.push(format!(
                    "[{}]",
                    (0..len)
                        .map(|i| format!("v[{}]", k + i))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                k += len;
            }
            Kind::Int { value } => {
                args.push(format!("{value}"));
                args64.push(format!("{value}"));
            }
            _ => unreachable!(),
        }
    }
    let a = args.join(", ");
    let a64 = args64.join(", ");
    let seed_arg = if f32 { "s as f32" } else { "s" };
    format!(
        "Case {{ name: \"{name}\", seed: {seed}, inputs: {k}, f32: {f32}, \
         f: |v| {name}({a}) as f64, \
         path: |v, h| {name}_path({a64}, h), \
         grad: |v| {{ let (y, g) = {name}_grad({a}); (y as f64, g.flat()) }}, \
         vjp: |v, s| {{ let (y, g) = {name}_vjp({a}, {seed_arg}); (y as f64, g.flat()) }} }}"
    )
}

/// A float literal with a decimal point.
fn lit(v: f64) -> String {
    let s = format!("{:.2}", v);
    if s == "-0.00" { "0.0".into() } else { s }
}

impl Gen {
    fn on(&self, c: C) -> bool {
        self.cfg.has(c)
    }

    fn coin(&mut self, p: f64) -> bool {
        self.rng.gen_bool(p)
    }

    fn fresh(&mut self, base: &str) -> String {
        self.fresh += 1;
        format!("{base}{}", self.fresh)
    }

    fn vars(&self) -> Vec<Var> {
        // innermost binding of each name
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for scope in self.scopes.iter().rev() {
            for v in scope.iter().rev() {
                if seen.insert(v.name.clone()) && !(self.immutable_only && v.mutable) {
                    out.push(v.clone());
                }
            }
        }
        out
    }

    fn lookup_mut(&mut self, name: &str) -> Option<&mut Var> {
        for scope in self.scopes.iter_mut().rev() {
            for v in scope.iter_mut().rev() {
                if v.name == name {
                    return Some(v);
                }
            }
        }
        None
    }

    fn push(&mut self, v: Var) {
        self.scopes.last_mut().unwrap().push(v);
    }

    // ---------------------------------------------------------------- expressions

    fn literal(&mut self) -> E {
        let v: f64 = self.rng.gen_range(-2.0..2.0);
        let s = lit(v);
        E {
            b: v.abs(),
            atom: !s.starts_with('-'),
            s,
            active: false,
            typed: false,
        }
    }

    /// A leaf: a variable, an element, a constant, a literal, an index cast.
    fn leaf(&mut self, want_active: bool) -> E {
        let vars = self.vars();
        let mut cands: Vec<E> = Vec::new();
        for v in &vars {
            match &v.kind {
                Kind::Active => cands.push(E {
                    s: v.name.clone(),
                    b: v.bound,
                    atom: true,
                    active: true,
                    typed: true,
                }),
                Kind::Inactive if !want_active => cands.push(E {
                    s: v.name.clone(),
                    b: v.bound,
                    atom: true,
                    active: false,
                    typed: true,
                }),
                Kind::Array { len } | Kind::Slice { len } => {
                    let len = *len;
                    // a constant index, or a loop index that stays in range
                    let mut idx = vec![format!("{}", self.rng.gen_range(0..len))];
                    for w in &vars {
                        if let Kind::Index { trip } = w.kind {
                            if trip <= len {
                                idx.push(w.name.clone());
                            }
                        }
                    }
                    let i = idx[self.rng.gen_range(0..idx.len())].clone();
                    cands.push(E {
                        s: format!("{}[{i}]", v.name),
                        b: 2.0,
                        atom: true,
                        active: true,
                        typed: true,
                    });
                }
                Kind::Ref => cands.push(E {
                    s: format!("*{}", v.name),
                    b: 2.0,
                    atom: false,
                    active: true,
                    typed: true,
                }),
                Kind::Index { trip } if !want_active => cands.push(E {
                    s: format!("({} as {})", v.name, self.ty),
                    b: *trip as f64,
                    atom: true,
                    active: false,
                    typed: true,
                }),
                _ => {}
            }
        }
        if !want_active {
            for (c, b) in self.consts.clone() {
                cands.push(E {
                    s: c,
                    b,
                    atom: true,
                    active: false,
                    typed: true,
                });
            }
            if cands.is_empty() || self.coin(0.3) {
                return self.literal();
            }
        }
        if cands.is_empty() {
            return self.literal();
        }
        cands[self.rng.gen_range(0..cands.len())].clone()
    }

    /// An expression that carries a gradient (if any active value is in scope), of a type
    /// rustc knows (a bare literal is multiplied by a value, so that methods resolve).
    fn expr(&mut self, depth: u32) -> E {
        let e = self.expr_raw(depth);
        if e.typed {
            return e;
        }
        let l = self.leaf(true);
        E {
            s: format!("{} * {}", e.p(), l.p()),
            b: e.b * l.b,
            atom: false,
            active: l.active,
            typed: l.typed,
        }
    }

    fn expr_raw(&mut self, depth: u32) -> E {
        if depth == 0 {
            return if self.coin(0.8) {
                self.leaf(true)
            } else {
                self.leaf(false)
            };
        }
        if self.closure == 0 && self.on(C::IterConsume) && self.coin(0.06) {
            return self.iter_consume(depth);
        }
        if self.coin(0.12) {
            if let Some(e) = self.closure_call(depth) {
                return e;
            }
        }
        if self.on(C::MatchActive)
            && !self.no_h
            && self.ifs < 2
            && self.budget > 0
            && self.coin(0.03)
        {
            self.budget -= 1;
            return self.bool_match_expr(depth - 1);
        }
        let r = self.rng.gen_range(0..100);
        match r {
            0..=14 => {
                let a = self.expr(depth - 1);
                let b = self.expr(depth - 1);
                let op = if self.coin(0.5) { "+" } else { "-" };
                let bs = if op == "-" && !b.atom {
                    b.p()
                } else {
                    b.s.clone()
                };
                E {
                    s: format!("{} {op} {bs}", a.s),
                    b: a.b + b.b,
                    atom: false,
                    active: a.active || b.active,
                    typed: true,
                }
            }
            15..=29 => {
                let a = self.expr(depth - 1);
                let b = self.expr(depth - 1);
                if a.b * b.b <= PRODUCT_CAP {
                    E {
                        s: format!("{} * {}", a.p(), b.p()),
                        b: a.b * b.b,
                        atom: false,
                        active: a.active || b.active,
                        typed: true,
                    }
                } else {
                    E {
                        s: format!("{}.tanh() * {}", a.p(), b.p()),
                        b: b.b,
                        atom: false,
                        active: a.active || b.active,
                        typed: true,
                    }
                }
            }
            30..=49 => {
                let a = self.expr(depth - 1);
                let f = ["sin", "cos", "tanh"][self.rng.gen_range(0..3)];
                self.method(a, f)
            }
            50..=56 => {
                let a = self.expr(depth - 1);
                if a.b <= 3.0 {
                    let b = a.b.exp();
                    E {
                        s: format!("{}.exp()", a.p()),
                        b,
                        atom: true,
                        active: a.active,
                        typed: true,
                    }
                } else {
                    E {
                        s: format!("{}.sin().exp()", a.p()),
                        b: std::f64::consts::E,
                        atom: true,
                        active: a.active,
                        typed: true,
                    }
                }
            }
            57..=63 => {
                let a = self.expr(depth - 1);
                if a.b <= 30.0 {
                    E {
                        s: format!("(1.0 + {}.powi(2)).sqrt()", a.p()),
                        b: 1.0 + a.b,
                        atom: true,
                        active: a.active,
                        typed: true,
                    }
                } else {
                    self.method(a, "sin")
                }
            }
            64..=71 => {
                let a = self.expr(depth - 1);
                let b = self.expr(depth - 1);
                if b.b <= 30.0 {
                    E {
                        s: format!("{} / (1.0 + {}.powi(2))", a.p(), b.p()),
                        b: a.b,
                        atom: false,
                        active: a.active || b.active,
                        typed: true,
                    }
                } else {
                    E {
                        s: format!("{} / (1.5 + {}.cos())", a.p(), b.p()),
                        b: 2.0 * a.b,
                        atom: false,
                        active: a.active || b.active,
                        typed: true,
                    }
                }
            }
            72..=75 => {
                let a = self.expr(depth - 1);
                E {
                    s: format!("(2.0 + {}.sin()).ln()", a.p()),
                    b: 1.1,
                    atom: true,
                    active: a.active,
                    typed: true,
                }
            }
            76..=81 => {
                let a = self.expr(depth - 1);
                let c = self.literal();
                if c.b * a.b <= PRODUCT_CAP {
                    E {
                        s: format!("{} * {}", c.p(), a.p()),
                        b: c.b * a.b,
                        atom: false,
                        active: a.active,
                        typed: true,
                    }
                } else {
                    a
                }
            }
            82..=84 => {
                let a = self.expr(depth - 1);
                E {
                    s: format!("-{}", a.p()),
                    b: a.b,
                    atom: false,
                    active: a.active,
                    typed: true,
                }
            }
            85..=91 if self.on(C::IfExpr) && !self.no_h && self.ifs < 2 && self.budget > 0 => {
                self.budget -= 1;
                let e = self.if_expr(depth - 1);
                E {
                    s: format!("({})", e.s),
                    ..e
                }
            }
            92..=96 if self.callee.is_some() && !self.no_h => {
                let (name, arity, bound) = self.callee.clone().unwrap();
                let args: Vec<E> = (0..arity).map(|_| self.expr(depth - 1)).collect();
                // the callee was generated for arguments bounded by 20
                let args: Vec<String> = args
                    .into_iter()
                    .map(|a| {
                        if a.b <= 20.0 {
                            a.s
                        } else {
                            format!("{}.tanh()", a.p())
                        }
                    })
                    .collect();
                self.used.insert(C::Call);
                E {
                    s: format!("⟪{name}⟫({}⦆", args.join(", ")),
                    b: bound,
                    atom: true,
                    active: true,
                    typed: true,
                }
            }
            _ => self.leaf(true),
        }
    }

    fn method(&mut self, a: E, f: &str) -> E {
        E {
            s: format!("{}.{f}()", a.p()),
            b: 1.0,
            atom: true,
            active: a.active,
            typed: true,
        }
    }

    /// A value of at most about 1 in magnitude (for updates inside loops).
    fn small(&mut self, depth: u32) -> E {
        let a = self.expr(depth);
        if a.b <= 1.0 {
            return a;
        }
        let f = ["sin", "cos", "tanh"][self.rng.gen_range(0..3)];
        self.method(a, f)
    }

    /// A float expression with no gradient (literals, constants, inactive locals, indices).
    fn inactive_expr(&mut self) -> E {
        let a = self.leaf(false);
        if self.coin(0.4) {
            let b = self.literal();
            E {
                s: format!("{} * {}", a.p(), b.p()),
                b: a.b * b.b,
                atom: false,
                active: false,
                typed: true,
            }
        } else {
            a
        }
    }

    /// A branch condition, instrumented (`⟦c⟧`).
    fn cond(&mut self) -> String {
        let c = self.cond_raw();
        format!("⟦{c}⟧")
    }

    /// A branch condition, without the instrumentation brackets.
    fn cond_raw(&mut self) -> String {
        let vars = self.vars();
        let has_index = vars.iter().any(|v| matches!(v.kind, Kind::Index { .. }));
        if has_index && self.coin(0.15) {
            let idx: Vec<&Var> = vars
                .iter()
                .filter(|v| matches!(v.kind, Kind::Index { .. }))
                .collect();
            let v = idx[self.rng.gen_range(0..idx.len())];
            let Kind::Index { trip } = v.kind else {
                unreachable!()
            };
            let k = self.rng.gen_range(0..trip.max(1));
            return format!("{} > {k}", v.name);
        }
        let d = if self.coin(0.5) { 0 } else { 1 };
        let a = self.expr(d);
        let op = ["<", ">", "<=", ">="][self.rng.gen_range(0..4)];
        let rhs = if self.coin(0.7) {
            let t: f64 = self.rng.gen_range(-1.0..1.0) * a.b.clamp(0.5, 2.0);
            lit(t)
        } else {
            self.leaf(true).s
        };
        format!("{} {op} {rhs}", a.s)
    }

    /// `if c { e } else if c2 { e2 } else { e3 }` (text without outer parentheses).
    fn if_expr(&mut self, depth: u32) -> E {
        self.used.insert(C::IfExpr);
        if self.loops > 0 {
            self.used.insert(C::IfInLoop);
        }
        self.ifs += 1;
        let mut s = String::new();
        let mut b: f64 = 0.0;
        let arms = if self.on(C::ElseIf) && self.coin(0.3) {
            self.used.insert(C::ElseIf);
            self.rng.gen_range(2..=4)
        } else {
            1
        };
        for k in 0..arms {
            let c = self.cond();
            if k > 0 {
                s.push_str(" else ");
            }
            let (text, eb) = self.value_block(depth);
            write!(s, "if {c} {{\n{text}}}").unwrap();
            b = b.max(eb);
        }
        let (text, eb) = self.value_block(depth);
        write!(s, " else {{\n{text}}}").unwrap();
        b = b.max(eb);
        self.ifs -= 1;
        E {
            s,
            b,
            atom: false,
            active: true,
            typed: true,
        }
    }

    /// A block with a value: maybe a `let`, then an expression.
    fn value_block(&mut self, depth: u32) -> (String, f64) {
        self.scopes.push(vec![]);
        let mut s = String::new();
        if self.coin(0.3) {
            let e = self.expr(depth);
            let name = self.fresh("t");
            writeln!(s, "let {name} = {};", e.s).unwrap();
            self.push(Var {
                name,
                kind: Kind::Active,
                mutable: false,
                bound: e.b,
                param: false,
            });
        }
        let e = self.expr(depth);
        writeln!(s, "{}", e.s).unwrap();
        self.scopes.pop();
        (s, e.b)
    }

    // ---------------------------------------------------------------- statements

    /// The body of a function: statements, then a tail expression using several values.
    fn fn_body(&mut self) -> (String, f64) {
        let mut s = String::new();
        // a few mutable accumulators, so that branches and loops have something to carry
        let nacc = self.rng.gen_range(1..=2);
        for _ in 0..nacc {
            let e = self.expr(1);
            let name = self.fresh("s");
            writeln!(s, "let mut {name} = {};", e.s).unwrap();
            self.push(Var {
                name,
                kind: Kind::Active,
                mutable: true,
                bound: e.b,
                param: false,
            });
        }
        if self.on(C::CompoundInactive) && self.coin(0.3) {
            let name = self.fresh("c");
            let v = lit(self.rng.gen_range(-1.0..1.0));
            writeln!(s, "let mut {name}: {} = {v};", self.ty).unwrap();
            self.push(Var {
                name,
                kind: Kind::Inactive,
                mutable: true,
                bound: 1.0,
                param: false,
            });
        }
        while self.budget > 0 {
            self.budget -= 1;
            let st = self.stmt(0);
            s.push_str(&st);
        }
        // the tail: a combination of the last few float values
        let vars: Vec<Var> = self
            .vars()
            .into_iter()
            .filter(|v| matches!(v.kind, Kind::Active))
            .take(3)
            .collect();
        let mut tail = E {
            s: String::new(),
            b: 0.0,
            atom: true,
            active: true,
            typed: true,
        };
        for (k, v) in vars.iter().enumerate() {
            let term = if v.bound > 10.0 {
                format!("{}.tanh()", v.name)
            } else {
                v.name.clone()
            };
            let c = lit(self.rng.gen_range(0.3..1.5));
            if k == 0 {
                tail.s = term;
            } else {
                write!(tail.s, " + {c} * {term}").unwrap();
            }
            tail.b += v.bound.min(10.0) * 1.5;
        }
        if tail.s.is_empty() {
            tail = self.expr(2);
        }
        if let Some((name, arity, bound)) = self.callee.clone() {
            if !self.used.contains(&C::Call) {
                let args: Vec<String> = (0..arity)
                    .map(|_| {
                        let l = self.leaf(true);
                        if l.b <= 20.0 {
                            l.s
                        } else {
                            format!("{}.tanh()", l.p())
                        }
                    })
                    .collect();
                write!(tail.s, " + ⟪{name}⟫({}⦆", args.join(", ")).unwrap();
                tail.b += bound;
                self.used.insert(C::Call);
            }
        }
        if self.coin(0.3) {
            let e = self.expr(1);
            if tail.b * e.b <= PRODUCT_CAP {
                tail.s = format!("({}) * {}", tail.s, e.p());
                tail.b *= e.b;
            }
        }
        writeln!(s, "{}", tail.s).unwrap();
        (s, tail.b)
    }

    fn assignable(&self, active: bool) -> Vec<Var> {
        self.vars()
            .into_iter()
            .filter(|v| {
                v.mutable
                    && !v.param
                    && if active {
                        v.kind == Kind::Active
                    } else {
                        v.kind == Kind::Inactive
                    }
            })
            .collect()
    }

    /// One statement (a line or a compound statement), at nesting `depth`.
    fn stmt(&mut self, depth: usize) -> String {
        if self.coin(0.35) {
            if let Some(s) = self.new_stmt(depth) {
                return s;
            }
        }
        let r = self.rng.gen_range(0..100);
        match r {
            0..=17 => self.let_stmt(),
            18..=37 => self.assign_stmt(),
            38..=54
                if self.on(C::IfStmt) && depth < 3 && (self.loops == 0 || self.on(C::IfInLoop)) =>
            {
                self.if_stmt(depth)
            }
            55..=69
                if self.on(C::Loop)
                    && (self.loops == 0 || (self.on(C::NestedLoop) && self.loops < 2)) =>
            {
                self.for_stmt(depth)
            }
            70..=77 if self.on(C::Return) && self.loops == 0 && self.ifs < 3 => {
                self.return_stmt(depth)
            }
            70..=77 if self.on(C::ReturnInLoop) && self.loops > 0 && self.ifs < 3 => {
                self.return_stmt(depth)
            }
            78..=84 if self.on(C::CompoundInactive) => self.inactive_assign(),
            _ if depth > 0 => self.assign_or_let(),
            _ => self.let_stmt(),
        }
    }

    fn let_stmt(&mut self) -> String {
        let e = if self.on(C::IfExpr)
            && self.coin(0.2)
            && self.ifs < 2
            && (self.loops == 0 || self.on(C::IfInLoop))
        {
            self.if_expr(1)
        } else {
            let d = self.rng.gen_range(1..=3);
            self.expr(d)
        };
        // shadow an existing active value (a local or a scalar parameter)?
        let mut name = None;
        if self.on(C::Shadow) && self.coin(0.25) {
            let cands: Vec<Var> = self
                .vars()
                .into_iter()
                .filter(|v| v.kind == Kind::Active && !v.mutable)
                .collect();
            if !cands.is_empty() {
                name = Some(cands[self.rng.gen_range(0..cands.len())].name.clone());
                self.used.insert(C::Shadow);
            }
        }
        let name = name.unwrap_or_else(|| self.fresh("v"));
        let mutable = self.coin(0.3);
        self.push(Var {
            name: name.clone(),
            kind: Kind::Active,
            mutable,
            bound: e.b,
            param: false,
        });
        let m = if mutable { "mut " } else { "" };
        format!("let {m}{name} = {};\n", e.s)
    }

    fn assign_stmt(&mut self) -> String {
        let targets = self.assignable(true);
        if targets.is_empty() {
            return self.let_stmt();
        }
        let t = targets[self.rng.gen_range(0..targets.len())].clone();
        let compound = self.on(C::CompoundActive) && self.coin(0.5);
        let in_loop = self.loops > 0;
        let (text, nb) = if !compound {
            if in_loop {
                // contracting: |new| <= 1, or a damped mix with the old value
                if self.coin(0.5) {
                    let e = self.small(2);
                    (format!("{} = {};", t.name, e.s), t.bound.max(e.b))
                } else {
                    let e = self.small(2);
                    (
                        format!("{} = 0.5 * {} + {};", t.name, t.name, e.p()),
                        t.bound.max(2.0 * e.b),
                    )
                }
            } else {
                let e = self.expr(2);
                let e = if e.b > 20.0 {
                    self.method(e, "tanh")
                } else {
                    e
                };
                (format!("{} = {};", t.name, e.s), e.b)
            }
        } else {
            self.used.insert(C::CompoundActive);
            match self.rng.gen_range(0..4) {
                0 | 1 => {
                    let op = if self.coin(0.5) { "+=" } else { "-=" };
                    let e = if in_loop { self.small(2) } else { self.expr(2) };
                    (format!("{} {op} {};", t.name, e.s), t.bound + e.b)
                }
                2 => {
                    let e = self.expr(1);
                    (
                        format!("{} *= 0.5 + 0.25 * {}.cos();", t.name, e.p()),
                        t.bound,
                    )
                }
                _ => {
                    let e = self.small(1);
                    (format!("{} /= 1.0 + {}.powi(2);", t.name, e.p()), t.bound)
                }
            }
        };
        let keep = in_loop || self.ifs > 0;
        if let Some(v) = self.lookup_mut(&t.name) {
            v.bound = if keep { v.bound.max(nb) } else { nb };
        }
        text + "\n"
    }

    fn inactive_assign(&mut self) -> String {
        let targets = self.assignable(false);
        if targets.is_empty() {
            return self.let_stmt();
        }
        self.used.insert(C::CompoundInactive);
        let t = targets[self.rng.gen_range(0..targets.len())].clone();
        let (text, nb) = match self.rng.gen_range(0..4) {
            0 => ("+= 1.0".to_string(), t.bound + 1.0),
            1 => ("-= 0.5".to_string(), t.bound + 0.5),
            2 => ("*= 0.5".to_string(), t.bound),
            _ => {
                let e = self.inactive_expr();
                if e.b <= 1.0 {
                    (format!("= {}", e.s), e.b.max(t.bound))
                } else {
                    ("/= 2.0".to_string(), t.bound)
                }
            }
        };
        if let Some(v) = self.lookup_mut(&t.name) {
            v.bound = v.bound.max(nb);
        }
        format!("{} {text};\n", t.name)
    }

    /// A block of statements without a value (a branch or a loop body).
    fn stmt_block(&mut self, depth: usize, n: usize) -> String {
        self.scopes.push(vec![]);
        let mut s = String::new();
        let mut last_compound = false;
        for _ in 0..n {
            let st = self.stmt(depth + 1);
            last_compound =
                st.trim_start().starts_with("if ") || st.trim_start().starts_with("for ");
            s.push_str(&st);
        }
        if last_compound {
            if self.on(C::TrailingIf) {
                self.used.insert(C::TrailingIf);
            } else {
                // end the block with a plain statement
                s.push_str(&self.assign_or_let());
            }
        }
        self.scopes.pop();
        s
    }

    fn assign_or_let(&mut self) -> String {
        if self.assignable(true).is_empty() {
            self.let_stmt()
        } else {
            self.assign_stmt()
        }
    }

    fn if_stmt(&mut self, depth: usize) -> String {
        self.used.insert(C::IfStmt);
        if self.loops > 0 {
            self.used.insert(C::IfInLoop);
        }
        self.ifs += 1;
        let arms = if self.on(C::ElseIf) && self.coin(0.3) {
            self.used.insert(C::ElseIf);
            self.rng.gen_range(2..=4)
        } else {
            1
        };
        let mut s = String::new();
        for k in 0..arms {
            let c = self.cond();
            if k > 0 {
                s.push_str(" else ");
            }
            let n = self.rng.gen_range(1..=2);
            let body = self.stmt_block(depth, n);
            write!(s, "if {c} {{\n{body}}}").unwrap();
        }
        if self.coin(0.7) {
            let n = self.rng.gen_range(1..=2);
            let body = self.stmt_block(depth, n);
            write!(s, " else {{\n{body}}}").unwrap();
        }
        self.ifs -= 1;
        s.push('\n');
        s
    }

    fn for_stmt(&mut self, depth: usize) -> String {
        self.used.insert(C::Loop);
        if self.loops > 0 {
            self.used.insert(C::NestedLoop);
        }
        let vars = self.vars();
        let mut ranges: Vec<(String, usize)> = Vec::new();
        let k = self.rng.gen_range(1..=4);
        ranges.push((format!("0..{k}"), k));
        for v in &vars {
            match v.kind {
                Kind::Slice { len } => ranges.push((format!("0..{}.len()", v.name), len)),
                Kind::Int { value } => ranges.push((format!("0..{}", v.name), value)),
                Kind::Array { len } => ranges.push((format!("0..{len}"), len)),
                _ => {}
            }
        }
        let (range, trip) = ranges[self.rng.gen_range(0..ranges.len())].clone();
        let idx = self.fresh("i");
        self.enter_loop(trip, false);
        self.scopes.push(vec![Var {
            name: idx.clone(),
            kind: Kind::Index { trip },
            mutable: false,
            bound: 0.0,
            param: false,
        }]);
        let n = self.rng.gen_range(1..=3);
        let body = self.stmt_block(depth, n);
        self.scopes.pop();
        let label = self.leave_loop();
        format!("{label}for {idx} in {range} {{\n{body}}}\n")
    }

    fn return_stmt(&mut self, depth: usize) -> String {
        self.used.insert(if self.loops > 0 {
            C::ReturnInLoop
        } else {
            C::Return
        });
        let c = self.cond();
        let e = self.expr(2);
        let _ = depth;
        format!("if {c} {{\nreturn {};\n}}\n", e.s)
    }
}

// -------------------------------------------------------------------- loops, exits, match,
// if let, iterators and closures

impl Gen {
    /// Whether a loop may start here (nesting limits).
    fn loop_ok(&self, depth: usize) -> bool {
        depth < 3 && (self.loops == 0 || (self.on(C::NestedLoop) && self.loops < 2))
    }

    /// Values assigned in a loop body may grow by about 1 per iteration; the loop frame
    /// (maybe with a label for `break 'l`/`continue 'l`).
    fn enter_loop(&mut self, trip: usize, value: bool) {
        if self.loops > 0 {
            self.used.insert(C::NestedLoop);
        }
        let grow = trip.max(1) as f64;
        for scope in self.scopes.iter_mut() {
            for v in scope.iter_mut() {
                if v.mutable && matches!(v.kind, Kind::Active | Kind::Inactive) {
                    v.bound += grow;
                }
            }
        }
        let label = if self.on(C::LabeledBreak) && self.coin(0.5) {
            Some(format!("'{}", self.fresh("l")))
        } else {
            None
        };
        self.frames.push(Frame {
            label,
            label_used: false,
            value: if value { Some(0.0) } else { None },
        });
        self.loops += 1;
    }

    /// Pops the frame; returns the label prefix (`'l3: `) if a `break`/`continue` named it.
    fn leave_loop(&mut self) -> String {
        self.loops -= 1;
        let f = self.frames.pop().expect("a loop frame");
        match f.label {
            Some(l) if f.label_used => format!("{l}: "),
            _ => String::new(),
        }
    }

    /// One of the statements of the newer constructs, if one is switched on and fits here.
    fn new_stmt(&mut self, depth: usize) -> Option<String> {
        let lo = self.loop_ok(depth);
        let mut c: Vec<u8> = Vec::new();
        if self.on(C::While) && lo {
            c.push(0);
        }
        if self.on(C::LoopBreakValue) && lo {
            c.push(1);
        }
        if self.loops > 0
            && (self.on(C::Break) || self.on(C::Continue) || self.on(C::LabeledBreak))
            && self.ifs < 3
        {
            c.extend([2, 2]);
        }
        if self.on(C::Match) && depth < 3 && self.ifs < 3 {
            c.push(3);
        }
        if self.on(C::MatchActive) && depth < 3 && self.ifs < 3 {
            c.push(4);
        }
        if self.on(C::IfLet) && depth < 3 && self.ifs < 3 {
            c.push(5);
        }
        if self.on(C::IterFor) && lo {
            c.push(6);
        }
        if self.on(C::Closure) && self.closure == 0 {
            c.push(7);
        }
        if c.is_empty() {
            return None;
        }
        Some(match c[self.rng.gen_range(0..c.len())] {
            0 => self.while_stmt(depth),
            1 => self.loop_stmt(depth),
            2 => self.break_stmt()?,
            3 => self.match_stmt(depth),
            4 => self.match_active_stmt(depth),
            5 => self.if_let_stmt(depth),
            6 => self.iter_for_stmt(depth),
            _ => self.closure_stmt(),
        })
    }

    /// An expression of at most `cap` (through `tanh` if larger).
    fn capped(&mut self, depth: u32, cap: f64) -> E {
        let e = self.expr(depth);
        if e.b <= cap {
            e
        } else {
            self.method(e, "tanh")
        }
    }

    /// `let mut k = 0; while ⟦k < K && c⟧ { k += 1; .. }`.
    fn while_stmt(&mut self, depth: usize) -> String {
        self.used.insert(C::While);
        let k = self.fresh("k");
        let kk = self.rng.gen_range(1..=5);
        self.enter_loop(kk, false);
        // the counter: at most `kk` after the loop, `1..=kk` in the body
        self.push(Var {
            name: k.clone(),
            kind: Kind::Index { trip: kk + 1 },
            mutable: true,
            bound: 0.0,
            param: false,
        });
        let cond = match self.rng.gen_range(0..4) {
            0 => format!("{k} < {kk}"),
            1 => {
                let c = self.cond_raw();
                format!("{k} < {kk} && {c}")
            }
            2 => {
                let c = self.cond_raw();
                format!("{c} && {k} < {kk}")
            }
            _ => {
                let cands: Vec<Var> = self
                    .vars()
                    .into_iter()
                    .filter(|v| v.kind == Kind::Active)
                    .collect();
                if cands.is_empty() {
                    format!("{k} < {kk}")
                } else {
                    let v = cands[self.rng.gen_range(0..cands.len())].name.clone();
                    let b = lit(self.rng.gen_range(0.5..4.0));
                    format!("{k} < {kk} && {v}.abs() < {b}")
                }
            }
        };
        let n = self.rng.gen_range(1..=3);
        let body = self.stmt_block(depth, n);
        let label = self.leave_loop();
        format!("let mut {k} = 0;\n{label}while ⟦{cond}⟧ {{\n{k} += 1;\n{body}}}\n")
    }

    /// `let r = loop { k += 1; if ⟦k > K⟧ { break e; } .. };` or the same statement with a
    /// plain `break`.
    fn loop_stmt(&mut self, depth: usize) -> String {
        self.used.insert(C::LoopBreakValue);
        let k = self.fresh("k");
        let kk = self.rng.gen_range(1..=5);
        let value = self.coin(0.6);
        self.enter_loop(kk, value);
        self.scopes.push(vec![Var {
            name: k.clone(),
            kind: Kind::Index { trip: kk + 2 },
            mutable: true,
            bound: 0.0,
            param: false,
        }]);
        let exit = if value {
            let e = self.capped(2, 20.0);
            let f = self.frames.last_mut().unwrap();
            f.value = Some(f.value.unwrap_or(0.0).max(e.b));
            format!("break {};", e.s)
        } else {
            "break;".to_string()
        };
        let n = self.rng.gen_range(1..=3);
        let body = self.stmt_block(depth, n);
        let bound = self.frames.last().unwrap().value;
        let label = self.leave_loop();
        self.scopes.pop();
        // the counter is declared before the loop
        self.push(Var {
            name: k.clone(),
            kind: Kind::Index { trip: kk + 2 },
            mutable: true,
            bound: 0.0,
            param: false,
        });
        let head = format!(
            "let mut {k} = 0;\n{{LET}}{label}loop {{\n{k} += 1;\nif ⟦{k} > {kk}⟧ {{\n{exit}\n}}\n{body}}}"
        );
        match bound {
            Some(b) => {
                let r = self.fresh("r");
                let mutable = self.coin(0.3);
                self.push(Var {
                    name: r.clone(),
                    kind: Kind::Active,
                    mutable,
                    bound: b,
                    param: false,
                });
                let m = if mutable { "mut " } else { "" };
                head.replace("{LET}", &format!("let {m}{r} = ")) + ";\n"
            }
            None => head.replace("{LET}", "") + "\n",
        }
    }

    /// `if ⟦c⟧ { break; }`, `continue`, `break e` (in a `loop` with a value), labeled.
    fn break_stmt(&mut self) -> Option<String> {
        let n = self.frames.len();
        let mut plain = Vec::new();
        if self.on(C::Break) {
            plain.push(true);
        }
        if self.on(C::Continue) {
            plain.push(false);
        }
        let labeled: Vec<usize> = if self.on(C::LabeledBreak) {
            (0..n).filter(|&i| self.frames[i].label.is_some()).collect()
        } else {
            vec![]
        };
        let (target, is_break, lab) = if !labeled.is_empty() && (plain.is_empty() || self.coin(0.4))
        {
            let t = labeled[self.rng.gen_range(0..labeled.len())];
            self.frames[t].label_used = true;
            self.used.insert(C::LabeledBreak);
            let l = self.frames[t].label.clone().unwrap();
            (t, self.coin(0.5), format!(" {l}"))
        } else if !plain.is_empty() {
            let b = plain[self.rng.gen_range(0..plain.len())];
            self.used.insert(if b { C::Break } else { C::Continue });
            (n - 1, b, String::new())
        } else {
            return None;
        };
        let c = self.cond();
        let text = if !is_break {
            format!("continue{lab}")
        } else if self.frames[target].value.is_some() {
            let e = self.capped(1, 20.0);
            let f = &mut self.frames[target];
            f.value = Some(f.value.unwrap_or(0.0).max(e.b));
            format!("break{lab} {}", e.s)
        } else {
            format!("break{lab}")
        };
        Some(format!("if {c} {{\n{text};\n}}\n"))
    }

    /// Whether `return` may be written here.
    fn return_ok(&self) -> bool {
        self.ifs < 3
            && if self.loops > 0 {
                self.on(C::ReturnInLoop)
            } else {
                self.on(C::Return)
            }
    }

    /// An inactive integer to match on: `(text, values 0..m it takes)`.
    fn int_scrutinee(&mut self) -> Option<(String, usize)> {
        let mut cands = Vec::new();
        for v in self.vars() {
            match v.kind {
                Kind::Index { trip } => {
                    let m = self.rng.gen_range(2..=4);
                    if self.coin(0.6) {
                        cands.push((format!("{} % {m}", v.name), m));
                    } else {
                        cands.push((v.name.clone(), trip.max(1)));
                    }
                }
                Kind::Int { .. } => cands.push((v.name.clone(), 5)),
                _ => {}
            }
        }
        if cands.is_empty() {
            return None;
        }
        Some(cands[self.rng.gen_range(0..cands.len())].clone())
    }

    /// Patterns covering some of `0..m` without overlap (`0`, `1 | 3`, `2..=3`); `_` last.
    fn int_patterns(&mut self, m: usize) -> Vec<String> {
        let mut vals: Vec<usize> = (0..m + 1).collect();
        // shuffle
        for i in (1..vals.len()).rev() {
            let j = self.rng.gen_range(0..=i);
            vals.swap(i, j);
        }
        let take = self.rng.gen_range(1..=vals.len().min(4));
        let mut pats = Vec::new();
        let mut rest = &vals[..take];
        while !rest.is_empty() {
            let g = self.rng.gen_range(1..=rest.len().min(2));
            let mut grp = rest[..g].to_vec();
            rest = &rest[g..];
            grp.sort();
            pats.push(match grp.as_slice() {
                [a] => format!("{a}"),
                [a, b] if b - a == 1 && self.coin(0.6) => format!("{a}..={b}"),
                _ => grp
                    .iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join(" | "),
            });
        }
        pats
    }

    /// A value arm: an expression, a block with a value, or `return e`.
    fn value_arm(&mut self, depth: u32, may_return: bool) -> (String, Option<f64>) {
        let r = self.rng.gen_range(0..10);
        if may_return && r == 0 && self.return_ok() {
            self.used.insert(if self.loops > 0 {
                C::ReturnInLoop
            } else {
                C::Return
            });
            let e = self.expr(2);
            return (format!("return {}", e.s), None);
        }
        if r < 4 {
            let (text, b) = self.value_block(depth);
            return (format!("{{\n{text}}}"), Some(b));
        }
        let e = self.expr(depth);
        (e.s, Some(e.b))
    }

    /// A statement arm: `s += e`, a block of statements, or `{}`.
    fn stmt_arm(&mut self, depth: usize) -> String {
        match self.rng.gen_range(0..6) {
            0 => "{}".to_string(),
            1 | 2 => {
                let st = self.assign_or_let();
                let st = st.trim();
                if st.starts_with("let ") {
                    format!("{{\n{st}\n}}")
                } else {
                    st.trim_end_matches(';').to_string()
                }
            }
            _ => {
                let n = self.rng.gen_range(1..=2);
                let body = self.stmt_block(depth, n);
                format!("{{\n{body}}}")
            }
        }
    }

    /// Arms of a match; `pats` are `(pattern, binding)`; the last arm must not be `return`.
    /// Returns the arms' text and the bound of the values (`None` for statement arms).
    fn arms(
        &mut self,
        pats: Vec<(String, Option<Var>)>,
        value: bool,
        depth: usize,
    ) -> (String, f64) {
        self.ifs += 1;
        let mut s = String::new();
        let mut b: f64 = 0.0;
        let k = pats.len();
        for (j, (pat, bind)) in pats.into_iter().enumerate() {
            self.scopes.push(bind.into_iter().collect());
            let arm = if value {
                let (text, ab) = self.value_arm(1, j + 1 < k);
                b = b.max(ab.unwrap_or(0.0));
                text
            } else {
                self.stmt_arm(depth)
            };
            self.scopes.pop();
            let sep = if arm.ends_with('}') { "" } else { "," };
            writeln!(s, "{pat} => {arm}{sep}").unwrap();
        }
        self.ifs -= 1;
        (s, b)
    }

    /// `let t = match ..;` or `match .. { .. }` on an inactive integer (or, without one, on
    /// a condition).
    fn match_stmt(&mut self, depth: usize) -> String {
        let Some((scrut, m)) = self.int_scrutinee() else {
            return self.match_active_stmt(depth);
        };
        self.used.insert(C::Match);
        let mut pats: Vec<(String, Option<Var>)> = Vec::new();
        for p in self.int_patterns(m) {
            if self.coin(0.25) {
                let c = self.cond();
                pats.push((format!("{p} if {c}"), None));
            } else {
                pats.push((p, None));
            }
        }
        if self.coin(0.25) {
            let bname = self.fresh("b");
            let t = self.rng.gen_range(0..m.max(1));
            pats.push((
                format!("{bname} if {bname} >= {t}"),
                Some(Var {
                    name: bname,
                    kind: Kind::Index { trip: m + 1 },
                    mutable: false,
                    bound: 0.0,
                    param: false,
                }),
            ));
        }
        pats.push(("_".to_string(), None));
        self.finish_match(format!("match {scrut}"), pats, depth)
    }

    fn finish_match(
        &mut self,
        head: String,
        pats: Vec<(String, Option<Var>)>,
        depth: usize,
    ) -> String {
        if self.coin(0.55) {
            let (arms, b) = self.arms(pats, true, depth);
            let name = self.fresh("v");
            let mutable = self.coin(0.3);
            self.push(Var {
                name: name.clone(),
                kind: Kind::Active,
                mutable,
                bound: b,
                param: false,
            });
            let m = if mutable { "mut " } else { "" };
            format!("let {m}{name} = {head} {{\n{arms}}};\n")
        } else {
            let (arms, _) = self.arms(pats, false, depth);
            format!("{head} {{\n{arms}}}\n")
        }
    }

    /// `match e { v if ⟦v < c⟧ => .., v => .. }` on an active float, or
    /// `match ⟦c⟧ { true => .., false => .. }`.
    fn match_active_stmt(&mut self, depth: usize) -> String {
        self.used.insert(C::MatchActive);
        if self.coin(0.3) {
            let c = self.cond();
            let pats = vec![("true".to_string(), None), ("false".to_string(), None)];
            return self.finish_match(format!("match {c}"), pats, depth);
        }
        let e = self.capped(2, 20.0);
        let v = self.fresh("m");
        let bind = Var {
            name: v.clone(),
            kind: Kind::Active,
            mutable: false,
            bound: e.b,
            param: false,
        };
        let mut pats = Vec::new();
        for _ in 0..self.rng.gen_range(1..=3) {
            let op = ["<", ">", "<=", ">="][self.rng.gen_range(0..4)];
            let t = lit(self.rng.gen_range(-1.0..1.0) * e.b.clamp(0.5, 2.0));
            pats.push((format!("{v} if ⟦{v} {op} {t}⟧"), Some(bind.clone())));
        }
        if self.coin(0.5) {
            pats.push((v.clone(), Some(bind)));
        } else {
            pats.push(("_".to_string(), None));
        }
        let head = format!("match {}", e.s);
        self.finish_match(head, pats, depth)
    }

    /// `(match ⟦c⟧ { true => a, false => b })` inside an expression.
    fn bool_match_expr(&mut self, depth: u32) -> E {
        self.used.insert(C::MatchActive);
        let c = self.cond();
        self.ifs += 1;
        let a = self.expr(depth);
        let b = self.expr(depth);
        self.ifs -= 1;
        E {
            s: format!("(match {c} {{\ntrue => {},\nfalse => {},\n}})", a.s, b.s),
            b: a.b.max(b.b),
            atom: true,
            active: true,
            typed: true,
        }
    }

    /// `if let 0 = i % 2 {..}`, `if let 1..=2 = n {..}`, or
    /// `let o = ..Some(c)..; if let Some(q) = o {..} else if ⟦c⟧ {..} else {..}`.
    fn if_let_stmt(&mut self, depth: usize) -> String {
        self.used.insert(C::IfLet);
        let mut pre = String::new();
        let mut bind = None;
        let head = match self.int_scrutinee() {
            Some((scrut, m)) if self.coin(0.5) => {
                let p = self.int_patterns(m).remove(0);
                format!("if let {p} = {scrut}")
            }
            sc => {
                let o = self.fresh("o");
                let v = self.rng.gen_range(-1.5..1.5);
                let ty = self.ty;
                match sc {
                    Some((scrut, m)) => {
                        let t = self.rng.gen_range(0..m);
                        writeln!(
                            pre,
                            "let {o}: Option<{ty}> = if {scrut} == {t} {{ Some({}) }} else {{ None }};",
                            lit(v)
                        )
                        .unwrap();
                    }
                    None if self.coin(0.8) => {
                        writeln!(pre, "let {o}: Option<{ty}> = Some({});", lit(v)).unwrap()
                    }
                    None => writeln!(pre, "let {o}: Option<{ty}> = None;").unwrap(),
                }
                let q = self.fresh("q");
                bind = Some(Var {
                    name: q.clone(),
                    kind: Kind::Inactive,
                    mutable: false,
                    bound: v.abs(),
                    param: false,
                });
                format!("if let Some({q}) = {o}")
            }
        };
        self.ifs += 1;
        self.scopes.push(bind.into_iter().collect());
        let n = self.rng.gen_range(1..=2);
        let body = self.stmt_block(depth, n);
        self.scopes.pop();
        let mut s = format!("{pre}{head} {{\n{body}}}");
        if self.on(C::ElseIf) && self.coin(0.3) {
            let c = self.cond();
            let n = self.rng.gen_range(1..=2);
            let body = self.stmt_block(depth, n);
            write!(s, " else if {c} {{\n{body}}}").unwrap();
        }
        if self.coin(0.5) {
            let n = self.rng.gen_range(1..=2);
            let body = self.stmt_block(depth, n);
            write!(s, " else {{\n{body}}}").unwrap();
        }
        self.ifs -= 1;
        s.push('\n');
        s
    }

    /// Slice and array parameters: `(name, len, is_array)`.
    fn sequences(&self) -> Vec<(String, usize, bool)> {
        self.vars()
            .into_iter()
            .filter_map(|v| match v.kind {
                Kind::Slice { len } => Some((v.name, len, false)),
                Kind::Array { len } => Some((v.name, len, true)),
                _ => None,
            })
            .collect()
    }

    /// `.rev()`, `.skip(n)`, `.take(n)`, `.step_by(k)`, each maybe.
    fn adapters(&mut self) -> String {
        let mut s = String::new();
        if self.coin(0.3) {
            s.push_str(".rev()");
        }
        if self.coin(0.2) {
            write!(s, ".skip({})", self.rng.gen_range(0..=2)).unwrap();
        }
        if self.coin(0.2) {
            write!(s, ".take({})", self.rng.gen_range(1..=3)).unwrap();
        }
        if self.coin(0.2) {
            write!(s, ".step_by({})", self.rng.gen_range(1..=3)).unwrap();
        }
        s
    }

    /// `xs.iter()` with adapters: the chain and an upper bound of its length.
    fn chain(&mut self) -> Option<(String, usize)> {
        let seqs = self.sequences();
        if seqs.is_empty() {
            return None;
        }
        let (name, len, _) = seqs[self.rng.gen_range(0..seqs.len())].clone();
        let a = self.adapters();
        Some((format!("{name}.iter(){a}"), len))
    }

    fn float_var(&self, name: String, kind: Kind) -> Var {
        Var {
            name,
            kind,
            mutable: false,
            bound: 2.0,
            param: false,
        }
    }

    /// `for` over an iterator: slices and arrays (by reference, by value, `enumerate`,
    /// `zip`, adapters) or a range with adapters.
    fn iter_for_stmt(&mut self, depth: usize) -> String {
        self.used.insert(C::IterFor);
        let seqs = self.sequences();
        let x = self.fresh("x");
        let mut vars = Vec::new();
        let (head, trip) = if seqs.is_empty() || self.coin(0.15) {
            let k = self.rng.gen_range(1..=4);
            let i = self.fresh("i");
            let a = match self.rng.gen_range(0..3) {
                0 => ".rev()".to_string(),
                1 => format!(".step_by({})", self.rng.gen_range(1..=2)),
                _ => format!(".skip(1).rev().take({})", self.rng.gen_range(1..=3)),
            };
            vars.push(Var {
                name: i.clone(),
                kind: Kind::Index { trip: k },
                mutable: false,
                bound: 0.0,
                param: false,
            });
            (format!("{i} in (0..{k}){a}"), k)
        } else {
            let (name, len, array) = seqs[self.rng.gen_range(0..seqs.len())].clone();
            match self.rng.gen_range(0..5) {
                0 => {
                    vars.push(self.float_var(x.clone(), Kind::Active));
                    let src = match (array, self.coin(0.5)) {
                        (false, _) => name,
                        (true, true) => format!("&{name}"),
                        (true, false) => {
                            return self.finish_for(format!("{x} in {name}"), len, vars, depth);
                        }
                    };
                    (format!("&{x} in {src}"), len)
                }
                1 | 2 => {
                    let a = self.adapters();
                    let (pat, kind) = if self.coin(0.5) {
                        (format!("&{x}"), Kind::Active)
                    } else {
                        (x.clone(), Kind::Ref)
                    };
                    vars.push(self.float_var(x.clone(), kind));
                    (format!("{pat} in {name}.iter(){a}"), len)
                }
                3 => {
                    let a = self.adapters();
                    let i = self.fresh("i");
                    let (pat, kind) = if self.coin(0.5) {
                        (format!("&{x}"), Kind::Active)
                    } else {
                        (x.clone(), Kind::Ref)
                    };
                    vars.push(self.float_var(x.clone(), kind));
                    vars.push(Var {
                        name: i.clone(),
                        kind: Kind::Index { trip: len },
                        mutable: false,
                        bound: 0.0,
                        param: false,
                    });
                    (format!("({i}, {pat}) in {name}.iter(){a}.enumerate()"), len)
                }
                _ => {
                    let (n2, l2, _) = seqs[self.rng.gen_range(0..seqs.len())].clone();
                    let y = self.fresh("y");
                    let a = self.adapters();
                    let (px, py, kind) = if self.coin(0.5) {
                        (format!("&{x}"), format!("&{y}"), Kind::Active)
                    } else {
                        (x.clone(), y.clone(), Kind::Ref)
                    };
                    vars.push(self.float_var(x.clone(), kind.clone()));
                    vars.push(self.float_var(y, kind));
                    (
                        format!("({px}, {py}) in {name}.iter(){a}.zip({n2}.iter())"),
                        len.min(l2),
                    )
                }
            }
        };
        self.finish_for(head, trip, vars, depth)
    }

    fn finish_for(&mut self, head: String, trip: usize, vars: Vec<Var>, depth: usize) -> String {
        self.enter_loop(trip, false);
        self.scopes.push(vars);
        let n = self.rng.gen_range(1..=3);
        let body = self.stmt_block(depth, n);
        self.scopes.pop();
        let label = self.leave_loop();
        format!("{label}for {head} {{\n{body}}}\n")
    }

    /// The body of an inline or `let` closure with the given parameters.
    fn closure_body(&mut self, params: Vec<Var>, depth: u32) -> E {
        self.closure += 1;
        self.scopes.push(params);
        let e = self.expr(depth);
        self.scopes.pop();
        self.closure -= 1;
        e
    }

    /// A consumer of an iterator chain: `map(..).sum()`, `product`, `fold`, `count`, over
    /// slices, arrays (`zip`, `enumerate`, adapters) and ranges.
    fn iter_consume(&mut self, depth: u32) -> E {
        self.used.insert(C::IterConsume);
        let ty = self.ty;
        let d = depth - 1;
        let t = self.fresh("t");
        let chain = self.chain();
        let r = self.rng.gen_range(0..8);
        let Some((ch, len)) = chain else {
            return self.range_sum(d);
        };
        let len_f = len as f64;
        match r {
            0 | 1 => {
                let (pat, kind) = if self.coin(0.7) {
                    (format!("&{t}"), Kind::Active)
                } else {
                    (t.clone(), Kind::Ref)
                };
                let e = self.closure_body(vec![self.float_var(t.clone(), kind)], d);
                E {
                    s: format!("{ch}.map(|{pat}| {}).sum::<{ty}>()", e.s),
                    b: len_f * e.b,
                    atom: true,
                    active: true,
                    typed: true,
                }
            }
            2 => {
                let tv = self.float_var(t.clone(), Kind::Active);
                self.closure += 1;
                self.scopes.push(vec![tv]);
                let e = self.small(d);
                self.scopes.pop();
                self.closure -= 1;
                E {
                    s: format!("{ch}.map(|&{t}| 1.0 + 0.3 * {}).product::<{ty}>()", e.p()),
                    b: 1.3f64.powi(len as i32),
                    atom: true,
                    active: true,
                    typed: true,
                }
            }
            3 => {
                let init = self.capped(d, 20.0);
                let acc = self.fresh("acc");
                let mut accv = self.float_var(acc.clone(), Kind::Active);
                accv.bound = init.b + 2.0;
                let tv = self.float_var(t.clone(), Kind::Active);
                self.closure += 1;
                self.scopes.push(vec![accv, tv]);
                let e = self.small(d);
                self.scopes.pop();
                self.closure -= 1;
                E {
                    s: format!(
                        "{ch}.fold({}, |{acc}, &{t}| 0.5 * {acc} + {})",
                        init.s,
                        e.p()
                    ),
                    b: init.b + 2.0,
                    atom: true,
                    active: true,
                    typed: true,
                }
            }
            4 => {
                let Some((ch2, len2)) = self.chain() else {
                    unreachable!()
                };
                let u = self.fresh("u");
                let e = self.closure_body(
                    vec![
                        self.float_var(t.clone(), Kind::Active),
                        self.float_var(u.clone(), Kind::Active),
                    ],
                    d,
                );
                E {
                    s: format!("{ch}.zip({ch2}).map(|(&{t}, &{u})| {}).sum::<{ty}>()", e.s),
                    b: len.min(len2) as f64 * e.b,
                    atom: true,
                    active: true,
                    typed: true,
                }
            }
            5 => {
                let i = self.fresh("i");
                let e = self.closure_body(
                    vec![
                        self.float_var(t.clone(), Kind::Active),
                        Var {
                            name: i.clone(),
                            kind: Kind::Index { trip: len },
                            mutable: false,
                            bound: 0.0,
                            param: false,
                        },
                    ],
                    d,
                );
                E {
                    s: format!("{ch}.enumerate().map(|({i}, &{t})| {}).sum::<{ty}>()", e.s),
                    b: len_f * e.b,
                    atom: true,
                    active: true,
                    typed: true,
                }
            }
            6 => {
                // a `let` closure passed to `map`
                let fs: Vec<Var> = self
                    .vars()
                    .into_iter()
                    .filter(|v| v.kind == Kind::Closure { arity: 1 })
                    .collect();
                if fs.is_empty() {
                    return E {
                        s: format!("({ch}.count() as {ty})"),
                        b: len_f,
                        atom: true,
                        active: false,
                        typed: true,
                    };
                }
                let f = fs[self.rng.gen_range(0..fs.len())].clone();
                self.used.insert(C::Closure);
                E {
                    s: format!("{ch}.copied().map({}).sum::<{ty}>()", f.name),
                    b: len_f * f.bound,
                    atom: true,
                    active: true,
                    typed: true,
                }
            }
            _ => self.range_sum(d),
        }
    }

    /// `(0..K).map(|i| ..).sum()` (maybe `.rev()`, `.step_by(2)`).
    fn range_sum(&mut self, d: u32) -> E {
        let ty = self.ty;
        let k = self.rng.gen_range(1..=4);
        let i = self.fresh("i");
        let a = ["", ".rev()", ".step_by(2)"][self.rng.gen_range(0..3)];
        let e = self.closure_body(
            vec![Var {
                name: i.clone(),
                kind: Kind::Index { trip: k },
                mutable: false,
                bound: 0.0,
                param: false,
            }],
            d,
        );
        E {
            s: format!("(0..{k}){a}.map(|{i}| {}).sum::<{ty}>()", e.s),
            b: k as f64 * e.b,
            atom: true,
            active: true,
            typed: true,
        }
    }

    /// `let f = |t: f64| ..;` (or `move |t: f64, u: f64| ..`) capturing values in scope; no
    /// conditions inside (see `no_h`).
    fn closure_stmt(&mut self) -> String {
        self.used.insert(C::Closure);
        let mv = self.coin(0.4);
        let arity = if self.coin(0.75) { 1 } else { 2 };
        let params: Vec<Var> = (0..arity)
            .map(|_| Var {
                name: self.fresh("t"),
                kind: Kind::Active,
                mutable: false,
                bound: CLOSURE_ARG,
                param: true,
            })
            .collect();
        let saved = (self.no_h, self.immutable_only);
        self.no_h = true;
        self.immutable_only = !mv;
        let d = self.rng.gen_range(1..=2);
        let e = self.closure_body(params.clone(), d);
        (self.no_h, self.immutable_only) = saved;
        let name = self.fresh("f");
        let ty = self.ty;
        let sig = params
            .iter()
            .map(|p| format!("{}: {ty}", p.name))
            .collect::<Vec<_>>()
            .join(", ");
        self.push(Var {
            name: name.clone(),
            kind: Kind::Closure { arity },
            mutable: false,
            bound: e.b,
            param: false,
        });
        let m = if mv { "move " } else { "" };
        let mut s = format!("let {name} = {m}|{sig}| {};\n", e.s);
        // and a use right away (more uses come from `closure_call`)
        let args: Vec<String> = (0..arity).map(|_| self.capped(1, CLOSURE_ARG).s).collect();
        let call = format!("{name}({})", args.join(", "));
        let targets = self.assignable(true);
        if !targets.is_empty() && self.coin(0.5) {
            let t = targets[self.rng.gen_range(0..targets.len())].clone();
            let nb = t.bound + e.b.min(1.0);
            let use_ = if e.b <= 1.0 {
                call
            } else {
                format!("{call}.tanh()")
            };
            writeln!(s, "{} += {use_};", t.name).unwrap();
            if let Some(v) = self.lookup_mut(&t.name) {
                v.bound = v.bound.max(nb);
            }
        } else {
            let v = self.fresh("v");
            writeln!(s, "let {v} = {call};").unwrap();
            self.push(Var {
                name: v,
                kind: Kind::Active,
                mutable: false,
                bound: e.b,
                param: false,
            });
        }
        s
    }

    /// `f(a, ..)` for a `let` closure in scope.
    fn closure_call(&mut self, depth: u32) -> Option<E> {
        let fs: Vec<Var> = self
            .vars()
            .into_iter()
            .filter(|v| matches!(v.kind, Kind::Closure { .. }))
            .collect();
        if fs.is_empty() {
            return None;
        }
        let f = fs[self.rng.gen_range(0..fs.len())].clone();
        let Kind::Closure { arity } = f.kind else {
            unreachable!()
        };
        let args: Vec<String> = (0..arity)
            .map(|_| self.capped(depth - 1, CLOSURE_ARG).s)
            .collect();
        Some(E {
            s: format!("{}({})", f.name, args.join(", ")),
            b: f.bound,
            atom: true,
            active: true,
            typed: true,
        })
    }
}
