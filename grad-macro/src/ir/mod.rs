//! The intermediate representation: the body of a `#[differentiable]` fn as single
//! operations on SSA values, with structured `if`/`for`/`return`.

// Used by the debug-build check and by tests only.
#[cfg_attr(not(debug_assertions), allow(dead_code))]
pub mod show;

use proc_macro2::{Span, TokenStream};
use syn::{Expr, Ident, Member, Path};

/// An SSA value: assigned once, by one [`Assign`] (or a parameter, phi, loop head...).
pub type VarId = usize;

/// What the emitter needs to know of a value.
#[derive(Clone)]
pub struct VarInfo {
    /// Its name in generated code (a parameter keeps its own name).
    pub ident: Ident,
    /// Whether the value is a reference (`&T` parameters, field borrows).
    pub is_ref: bool,
    /// The value is a field of another (`&base.field` is kept): used as a plain value, it
    /// is read through the reference (`*field`).
    pub is_place: bool,
    /// Whether a gradient flows into it (it depends on an active parameter).
    pub active: bool,
    /// The parameters it depends on.
    pub deps: Deps,
}

/// A set of parameter positions (any number of parameters), one bit each.
#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct Deps(Vec<u64>);

impl Deps {
    /// `{pos}`
    pub fn single(pos: usize) -> Self {
        let mut words = vec![0; pos / 64 + 1];
        words[pos / 64] = 1 << (pos % 64);
        Deps(words)
    }

    /// The union, in place.
    pub fn union_with(&mut self, other: &Deps) {
        if self.0.len() < other.0.len() {
            self.0.resize(other.0.len(), 0);
        }
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a |= b;
        }
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    /// The union.
    pub fn union(&self, other: &Deps) -> Deps {
        let mut d = self.clone();
        d.union_with(other);
        d
    }

    /// The positions, in increasing order.
    pub fn positions(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(w, bits)| {
            (0..64)
                .filter(move |b| bits & (1u64 << b) != 0)
                .map(move |b| w * 64 + b)
        })
    }
}

/// An operand: a value, or a constant expression (literal, `const`, path) copied verbatim.
#[derive(Clone)]
pub enum Operand {
    Var(VarId),
    Const(Expr),
}

/// The scalar math functions, with their arity.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MathFn {
    Sin,
    Cos,
    Tan,
    Asin,
    Acos,
    Atan,
    Atan2,
    Sinh,
    Cosh,
    Tanh,
    Exp,
    Exp2,
    Ln,
    Log10,
    Log2,
    Log,
    Sqrt,
    Cbrt,
    Powi,
    Powf,
    Abs,
    Max,
    Min,
    Hypot,
    Recip,
    MulAdd,
    Signum,
    ExpM1,
    Ln1p,
    Asinh,
    Acosh,
    Atanh,
    /// `x as f32` of a value that carries a gradient (an `f64`, or an `f32`).
    AsF32,
    /// `x as f64`
    AsF64,
}

impl MathFn {
    pub const ALL: &'static [(&'static str, MathFn, usize)] = &[
        ("sin", MathFn::Sin, 1),
        ("cos", MathFn::Cos, 1),
        ("tan", MathFn::Tan, 1),
        ("asin", MathFn::Asin, 1),
        ("acos", MathFn::Acos, 1),
        ("atan", MathFn::Atan, 1),
        ("atan2", MathFn::Atan2, 2),
        ("sinh", MathFn::Sinh, 1),
        ("cosh", MathFn::Cosh, 1),
        ("tanh", MathFn::Tanh, 1),
        ("exp", MathFn::Exp, 1),
        ("exp2", MathFn::Exp2, 1),
        ("ln", MathFn::Ln, 1),
        ("log10", MathFn::Log10, 1),
        ("log2", MathFn::Log2, 1),
        ("log", MathFn::Log, 2),
        ("sqrt", MathFn::Sqrt, 1),
        ("cbrt", MathFn::Cbrt, 1),
        ("powi", MathFn::Powi, 2),
        ("powf", MathFn::Powf, 2),
        ("abs", MathFn::Abs, 1),
        ("max", MathFn::Max, 2),
        ("min", MathFn::Min, 2),
        ("hypot", MathFn::Hypot, 2),
        ("recip", MathFn::Recip, 1),
        ("mul_add", MathFn::MulAdd, 3),
        ("signum", MathFn::Signum, 1),
        ("exp_m1", MathFn::ExpM1, 1),
        ("ln_1p", MathFn::Ln1p, 1),
        ("asinh", MathFn::Asinh, 1),
        ("acosh", MathFn::Acosh, 1),
        ("atanh", MathFn::Atanh, 1),
    ];

    pub fn lookup(name: &str) -> Option<(MathFn, usize)> {
        Self::ALL
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, f, a)| (*f, *a))
    }

    pub fn name(self) -> &'static str {
        match self {
            MathFn::AsF32 => "as_f32",
            MathFn::AsF64 => "as_f64",
            _ => Self::ALL.iter().find(|(_, f, _)| *f == self).unwrap().0,
        }
    }

    /// The float type a cast converts to (`AsF32`: `f32`), `None` for the other functions.
    pub fn cast_target(self) -> Option<proc_macro2::Ident> {
        let t = match self {
            MathFn::AsF32 => "f32",
            MathFn::AsF64 => "f64",
            _ => return None,
        };
        Some(proc_macro2::Ident::new(t, proc_macro2::Span::call_site()))
    }
}

/// A call to a differentiable function or method, through its `_pullback`.
#[derive(Clone)]
pub enum Callee {
    /// `path(args)`: calls `path_pullback(args)`.
    Path(Path),
    /// `receiver.method(args)`: calls `receiver.method_pullback(args)`; the receiver's
    /// gradient is the first entry of the pullback's result.
    Method {
        receiver: VarId,
        method: Ident,
        span: Span,
    },
}

/// One argument of a call.
#[derive(Clone)]
pub struct Arg {
    pub operand: Operand,
    /// Written `&expr` by the user.
    pub by_ref: bool,
    /// The argument expression, for errors on it.
    pub span: Span,
}

#[derive(Clone)]
pub enum Op {
    /// `x.clone()`
    Clone(Operand),
    Add(Operand, Operand),
    Sub(Operand, Operand),
    Mul(Operand, Operand),
    Div(Operand, Operand),
    Neg(Operand),
    /// `a * b.transpose()`, without materialising the transpose.
    MatMulNt(Operand, Operand),
    /// `a.transpose() * b`
    MatMulTn(Operand, Operand),
    /// A scalar math function; the type prefix of the path form (`f64::hypot(a, b)`).
    Math(MathFn, Vec<Operand>, Option<Ident>),
    Call(Callee, Vec<Arg>),
    /// `&base.member`
    Field(VarId, Member),
    /// `base[index]` (index is a constant or an integer value)
    Index(VarId, Operand),
    Transpose(Operand),
    Sum(Operand),
    Mean(Operand),
    ComponentMul(Operand, Operand),
    /// `[a, b, c]`, or `vec![a, b, c]` when the flag is set.
    ArrayLit(Vec<Operand>, bool),
    /// `(a, b, ..)`: a tuple of values (a function's result, or a local destructured or
    /// read by field, `p.0`, later).
    Tuple(Vec<Operand>),
    /// `[x; n]` (`vec![x; n]`); the count is constant code.
    Repeat(Operand, TokenStream, bool),
    /// The array `base` with element `index` set to `value` (`a[i] = v` on a local).
    SetIndex(VarId, Operand, Operand),
    /// The `Vec` `base` with `value` pushed (`v.push(x)` on a local).
    Push(VarId, Operand),
    /// `x.map(|v| ...)`: the closure differentiated as a scalar function; the values are
    /// the mapped matrix and the active scalars the closure captures.
    Map(Operand, std::rc::Rc<crate::lower::MapClosure>),
    /// An expression of constants only (integer arithmetic, casts of loop indices...),
    /// already renamed.
    Inactive(TokenStream),
}

#[derive(Clone)]
pub struct Assign {
    pub dst: VarId,
    pub op: Op,
    pub span: Span,
}

#[derive(Clone)]
pub struct Phi {
    pub dst: VarId,
    pub then_v: Operand,
    pub else_v: Operand,
}

#[derive(Clone)]
pub struct If {
    pub id: usize,
    pub cond: TokenStream,
    pub then_b: Block,
    pub else_b: Block,
    pub phis: Vec<Phi>,
}

#[derive(Clone)]
pub struct Carried {
    pub init: Operand,
    pub head: VarId,
    pub end: Operand,
    pub after: VarId,
}

#[derive(Clone)]
pub struct For {
    pub id: usize,
    pub index: VarId,
    pub iter: TokenStream,
    /// Checked at the start of each iteration, once the heads are bound: the loop ends
    /// when it is false (`while` conditions, and the flags `break` and labels set).
    pub cond: Option<TokenStream>,
    pub body: Block,
    pub carried: Vec<Carried>,
}

impl For {
    /// `if !(cond) { restore break; }`, the check at the top of each iteration (every
    /// emitter writes the loop with it), if the loop has a condition. The iteration has
    /// already moved the carried values into its heads (`let head = cur;`); `restore` moves
    /// them back (`cur = head;`) before the loop ends, so a carried value that is not `Copy`
    /// (a matrix) is still there after the loop.
    pub fn exit_check(&self, restore: TokenStream) -> Option<TokenStream> {
        self.cond
            .as_ref()
            .map(|c| quote::quote!(if !(#c) { #restore break; }))
    }
}

#[derive(Clone)]
pub enum Stmt {
    Assign(Assign),
    If(If),
    For(For),
    Return(Operand, Span),
}

#[derive(Clone, Default)]
pub struct Block {
    pub stmts: Vec<Stmt>,
    /// Every path through the block returns.
    pub diverges: bool,
}

impl Block {
    /// The values defined at the top level of this block (not inside nested blocks).
    pub fn defined(&self) -> Vec<VarId> {
        let mut out = Vec::new();
        for s in &self.stmts {
            match s {
                Stmt::Assign(a) => out.push(a.dst),
                Stmt::If(i) => out.extend(i.phis.iter().map(|p| p.dst)),
                Stmt::For(f) => out.extend(f.carried.iter().map(|c| c.after)),
                Stmt::Return(..) => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::Deps;

    #[test]
    fn deps_hold_any_number_of_parameters() {
        let a = Deps::single(3);
        let b = Deps::single(130);
        let u = a.union(&b);
        assert_eq!(u.positions().collect::<Vec<_>>(), vec![3, 130]);
        assert_eq!(u.union(&a), u);
        assert_ne!(u, a);
        assert_eq!(Deps::default().union(&a), a);
        assert_eq!(Deps::default().positions().count(), 0);
    }
}
