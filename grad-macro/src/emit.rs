//! Emission: the forward pass (the original computation, keeping what the adjoint needs)
//! and the adjoint sweep (the IR walked backwards, one rule per operation).
//!
//! Control flow. The forward pass runs inside a labeled block; every `return` leaves it
//! with the value and the values its adjoint needs (its *stash*), tagged with which return
//! it was. The adjoint of that return is emitted at that point's path: the statements
//! executed before it, in reverse, through the branches it is inside of and the loop
//! iterations before it. So no path is merged: each return has its own straight adjoint.
//! (A function with many returns reaches here already rewritten to one exit, by
//! `lower/returns.rs`, so that this stays linear.)
//! A completed `if` leaves a `Branch::Then/Else` with the values of the branch taken; a
//! completed `for` leaves a `Vec` with one tuple of values per iteration (a tape of typed
//! values, never a recomputation).

use crate::analysis;
use crate::ir::*;
use crate::lower::Function;
use proc_macro2::{Literal, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use syn::Ident;

mod shared;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `_pullback`: the forward pass returns a closure that runs the adjoint later; the
    /// closure gets the parameters again, the seed and a mask of the gradients needed.
    Pullback,
    /// The adjoint written in place at each `return` with the seed 1 folded: only for the
    /// listing in `_grad`'s documentation (the functions themselves wrap `_pullback`).
    Grad,
}

/// How an operand is written: borrowed, by value, or as it is.
#[derive(Clone, Copy)]
enum Form {
    Ref,
    Val,
    Plain,
}

impl Form {
    /// A value named `name` (a reference if `is_ref`) in this form.
    fn apply(self, name: TokenStream, is_ref: bool) -> TokenStream {
        match (self, is_ref) {
            (Form::Ref, false) => quote!(&#name),
            (Form::Val, true) => quote!((*#name)),
            _ => name,
        }
    }

    /// A constant expression in this form.
    fn constant(self, e: &syn::Expr) -> TokenStream {
        match self {
            Form::Ref => quote!(&(#e)),
            Form::Val | Form::Plain => quote!((#e)),
        }
    }
}

#[derive(Clone)]
enum Adj {
    Lit(f64),
    Var(Ident),
}

enum Contrib {
    Lit(f64),
    Ts(TokenStream),
}

#[derive(Clone, Default)]
struct Rev {
    adj: HashMap<VarId, Adj>,
}

enum FrameKind<'a> {
    Top,
    Branch,
    Loop(&'a For),
}

struct Frame<'a> {
    kind: FrameKind<'a>,
    done: Vec<&'a Stmt>,
}

pub struct Exit {
    pub stash: Vec<Ident>,
    pub reverse: TokenStream,
}

pub struct Gen<'a> {
    f: &'a Function,
    root: TokenStream,
    mode: Mode,
    reads: BTreeMap<String, Ident>,
    pub exits: Vec<Exit>,
    stash_cache: HashMap<(usize, u8), Vec<Ident>>,
    all_deps: Deps,
    seed: Ident,
    tmp: usize,
    fields: HashMap<VarId, (VarId, syn::Member)>,
    in_closure: bool,
    /// Inside the adjoint of a loop's iterations: values come from the tape, whose element
    /// type rustc may not know yet at that point (a `return` inside the loop).
    in_tape: usize,
    /// Arities of the `__call_pb{n}` helpers used (a pullback taken from a tape is called
    /// through a generic function, so rustc need not know its type at the call).
    call_arities: std::collections::BTreeSet<usize>,
    /// The defining assignment of each value.
    defs: HashMap<VarId, &'a Assign>,
    /// By loop id, what each iteration's adjoint recomputes instead of taping.
    remat: HashMap<usize, Vec<VarId>>,
    /// Values known to be scalars (a zero adjoint is `0.0`, made from no value).
    scalars: std::collections::HashSet<VarId>,
    /// Active values read element by element inside a loop (`x[i]`).
    indexed: std::collections::HashSet<VarId>,
    /// Values read by index whose adjoint the enclosing loop reversals made full-size before
    /// their loops (element updates in those loops skip the size check).
    sized: std::collections::HashSet<VarId>,
    /// Ids of the nested loops whose instances share one tape (see `shared.rs`).
    shared: std::collections::HashSet<usize>,
}

fn lit(x: f64) -> TokenStream {
    if x < 0.0 {
        let l = Literal::f64_unsuffixed(-x);
        quote!((-#l))
    } else {
        let l = Literal::f64_unsuffixed(x);
        quote!(#l)
    }
}

impl<'a> Gen<'a> {
    pub fn new(f: &'a Function, root: TokenStream, mode: Mode, seed: Ident) -> Self {
        let all_deps = f
            .params
            .iter()
            .fold(Deps::default(), |d, p| d.union(&f.vars[p.var].deps));
        let defs = analysis::defs(&f.body);
        let indexed = analysis::indexed_in_loops(&f.body);
        let params: Vec<(VarId, &syn::Type)> = f.params.iter().map(|p| (p.var, &p.ty)).collect();
        let scalars = analysis::scalars(&params, &f.body);
        let remat = analysis::remat_all(
            &f.body,
            &f.vars,
            mode == Mode::Pullback,
            &all_deps,
            &defs,
            &scalars,
        );
        let mut g = Gen {
            f,
            root,
            mode,
            reads: BTreeMap::new(),
            exits: Vec::new(),
            stash_cache: HashMap::new(),
            all_deps,
            seed,
            tmp: 0,
            fields: field_defs(&f.body),
            in_closure: false,
            in_tape: 0,
            call_arities: std::collections::BTreeSet::new(),
            defs,
            remat,
            scalars,
            indexed,
            sized: Default::default(),
            shared: Default::default(),
        };
        g.decide_shared();
        g
    }

    /// What the reverse rules depend on, for the analyses.
    fn cx(&self) -> analysis::RevCtx<'_> {
        analysis::RevCtx {
            vars: &self.f.vars,
            masked: self.mode == Mode::Pullback,
            all_deps: &self.all_deps,
            remat: &self.remat,
            defs: &self.defs,
            scalars: &self.scalars,
        }
    }

    fn inline(&self) -> bool {
        self.mode != Mode::Pullback
    }

    /// How reverse code names the value `v`: its identifier (`__self` for the receiver in
    /// a pullback closure), or for a field borrow the borrow itself, recomputed from its
    /// base, so that borrows are never kept.
    fn rev_name(&mut self, v: VarId) -> TokenStream {
        if let Some((base, m)) = self.fields.get(&v).cloned() {
            let b = self.rev_name(base);
            return quote!((&#b.#m));
        }
        self.read(v);
        let id = self.id(v);
        if self.in_closure && id == "self" {
            quote!(__self)
        } else {
            quote!(#id)
        }
    }

    fn id(&self, v: VarId) -> &Ident {
        &self.f.vars[v].ident
    }

    fn adj_ident(&self, v: VarId) -> Ident {
        let name = self.f.vars[v].ident.to_string();
        format_ident!("__g_{}", name.trim_start_matches("__"))
    }

    fn is_param(&self, name: &str) -> bool {
        self.f.params.iter().any(|p| p.ident == name)
    }

    fn read(&mut self, v: VarId) {
        let id = self.f.vars[v].ident.clone();
        if !self.is_param(&id.to_string()) {
            self.reads.insert(id.to_string(), id);
        }
    }

    fn read_ident(&mut self, id: &Ident) {
        self.reads.insert(id.to_string(), id.clone());
    }

    /// A reference to the operand in adjoint code (`x` for a reference, `&x` for an owned
    /// value), recording the read.
    fn r(&mut self, o: &Operand) -> TokenStream {
        self.rev_operand(o, Form::Ref)
    }

    /// The operand by value in adjoint code (scalars), recording the read.
    fn val(&mut self, o: &Operand) -> TokenStream {
        self.rev_operand(o, Form::Val)
    }

    fn rev_operand(&mut self, o: &Operand, form: Form) -> TokenStream {
        match o {
            Operand::Var(v) => {
                let name = self.rev_name(*v);
                form.apply(name, self.f.vars[*v].is_ref)
            }
            Operand::Const(e) => form.constant(e),
        }
    }

    /// An operand in the forward pass, by reference.
    fn fwd_ref(&self, o: &Operand) -> TokenStream {
        self.fwd_operand(o, Form::Ref)
    }

    /// An operand in the forward pass, by value.
    fn fwd_val(&self, o: &Operand) -> TokenStream {
        self.fwd_operand(o, Form::Val)
    }

    /// An operand in the forward pass, as it is.
    fn fwd_plain(&self, o: &Operand) -> TokenStream {
        self.fwd_operand(o, Form::Plain)
    }

    fn fwd_operand(&self, o: &Operand, form: Form) -> TokenStream {
        match o {
            Operand::Var(v) => {
                let id = self.id(*v);
                form.apply(quote!(#id), self.f.vars[*v].is_ref)
            }
            Operand::Const(e) => form.constant(e),
        }
    }

    /// How a call argument is passed: `&expr` by reference; a field (`net.slope`) by value
    /// through the kept reference; anything else as it is.
    fn arg_form(&self, a: &Arg) -> Form {
        match &a.operand {
            _ if a.by_ref => Form::Ref,
            Operand::Var(v) if self.f.vars[*v].is_place => Form::Val,
            _ => Form::Plain,
        }
    }

    /// Fresh names for the gradients a rule returns, one per operand, and the tuple pattern
    /// that binds them (`_` for an operand that takes no gradient).
    fn grad_pattern(&mut self, operands: &[Operand]) -> (Vec<Ident>, Vec<TokenStream>) {
        let names: Vec<Ident> = operands.iter().map(|_| self.fresh("d")).collect();
        let pats = operands
            .iter()
            .zip(&names)
            .map(|(o, n)| match self.active(o) {
                Some(_) => quote!(#n),
                None => quote!(_),
            })
            .collect();
        (names, pats)
    }

    fn active(&self, o: &Operand) -> Option<VarId> {
        match o {
            Operand::Var(v) if self.f.vars[*v].active => Some(*v),
            _ => None,
        }
    }

    fn fresh(&mut self, base: &str) -> Ident {
        self.tmp += 1;
        format_ident!("__{}{}", base, self.tmp)
    }

    // ----- forward -----

    fn fwd_assign(&self, a: &Assign) -> TokenStream {
        let root = &self.root;
        let t = self.id(a.dst);
        let span = a.span;
        let ty = self.f.types.get(&a.dst).map(|ty| quote!(: #ty));
        let rhs = match &a.op {
            Op::Clone(x) => {
                let x = self.fwd_ref(x);
                quote!(::core::clone::Clone::clone(#x))
            }
            Op::Add(x, y) => {
                let (x, y) = (self.fwd_ref(x), self.fwd_ref(y));
                quote_spanned!(span=> #root::add(#x, #y))
            }
            Op::Sub(x, y) => {
                let (x, y) = (self.fwd_ref(x), self.fwd_ref(y));
                quote_spanned!(span=> #root::sub(#x, #y))
            }
            Op::Neg(x) => {
                let x = self.fwd_ref(x);
                quote_spanned!(span=> -#x)
            }
            Op::Mul(x, y) => {
                let (x, y) = (self.fwd_ref(x), self.fwd_ref(y));
                quote_spanned!(span=> #root::mul(#x, #y))
            }
            Op::Div(x, y) => {
                let (x, y) = (self.fwd_ref(x), self.fwd_ref(y));
                quote_spanned!(span=> #root::div(#x, #y))
            }
            Op::MatMulNt(x, y) => {
                let (x, y) = (self.fwd_ref(x), self.fwd_ref(y));
                quote_spanned!(span=> #root::matmul_nt(#x, #y))
            }
            Op::MatMulTn(x, y) => {
                let (x, y) = (self.fwd_ref(x), self.fwd_ref(y));
                quote_spanned!(span=> #root::matmul_tn(#x, #y))
            }
            Op::Math(m, args, prefix) => {
                let name = format_ident!("{}", m.name(), span = span);
                let all: Vec<TokenStream> = args.iter().map(|a| self.fwd_val(a)).collect();
                match prefix {
                    _ if m.cast_target().is_some() => {
                        let (x, ty) = (&all[0], m.cast_target());
                        quote_spanned!(span=> (#x as #ty))
                    }
                    Some(ty) => quote_spanned!(span=> #ty::#name(#(#all),*)),
                    None => {
                        let (recv, rest) = (&all[0], &all[1..]);
                        quote_spanned!(span=> #recv.#name(#(#rest),*))
                    }
                }
            }
            Op::Call(callee, args) => {
                let pb = pullback_name(t);
                let args: Vec<TokenStream> = args
                    .iter()
                    .map(|a| self.fwd_operand(&a.operand, self.arg_form(a)))
                    .collect();
                let call = match callee {
                    Callee::Path(p) => {
                        let mut p = p.clone();
                        let last = p.segments.last_mut().unwrap();
                        last.ident =
                            format_ident!("{}_pullback", last.ident, span = last.ident.span());
                        quote_spanned!(span=> #p(#(#args),*))
                    }
                    Callee::Method {
                        receiver, method, ..
                    } => {
                        let r = self.id(*receiver);
                        let m = format_ident!("{}_pullback", method, span = method.span());
                        quote_spanned!(span=> #r.#m(#(#args),*))
                    }
                };
                return quote_spanned!(span=> let (#t, #pb) = #call;);
            }
            Op::Field(b, m) => {
                let b = self.id(*b);
                quote_spanned!(span=> &#b.#m)
            }
            Op::Index(b, i) => {
                let b = self.id(*b);
                let i = self.fwd_plain(i);
                quote_spanned!(span=> #b[#i])
            }
            Op::Transpose(x) => {
                let x = self.fwd_plain(x);
                quote_spanned!(span=> #x.transpose())
            }
            Op::Sum(x) => {
                let x = self.fwd_plain(x);
                quote_spanned!(span=> #x.sum())
            }
            Op::Mean(x) => {
                let x = self.fwd_plain(x);
                quote_spanned!(span=> #x.mean())
            }
            Op::ComponentMul(x, y) => {
                let (x, y) = (self.fwd_ref(x), self.fwd_ref(y));
                quote_spanned!(span=> #root::component_mul(#x, #y))
            }
            Op::Map(x, m) => {
                let pb = pullback_name(t);
                let x = self.fwd_ref(x);
                let closure = m.tokens(root);
                return quote_spanned!(span=> let (#t, #pb) = #root::map_pullback(#x, #closure););
            }
            Op::Inactive(ts) => ts.clone(),
            Op::Tuple(xs) => tuple_value(xs, |o| {
                let r = self.fwd_ref(o);
                quote!(::core::clone::Clone::clone(#r))
            }),
            op @ (Op::ArrayLit(..) | Op::Repeat(..) | Op::SetIndex(..) | Op::Push(..)) => {
                crate::arrays::value(op, &|o| self.fwd_plain(o), &|v| self.id(v).clone(), span)
                    .unwrap()
            }
        };
        quote!(let #t #ty = #rhs;)
    }

    fn local_names(&self, b: &Block) -> Vec<String> {
        let mut out: Vec<String> = b
            .defined()
            .iter()
            .map(|v| self.id(*v).to_string())
            .collect();
        for s in &b.stmts {
            match s {
                Stmt::Assign(Assign {
                    dst,
                    op: Op::Call(..) | Op::Map(..),
                    ..
                }) => {
                    out.push(pullback_name(self.id(*dst)).to_string());
                }
                Stmt::If(i) => out.push(format!("__br_{}", i.id)),
                Stmt::For(f) if self.is_shared(f.id) => {
                    let n = shared::names(f.id);
                    out.push(n.mark.to_string());
                    out.push(n.end.to_string());
                }
                Stmt::For(f) => out.push(format!("__tape_{}", f.id)),
                _ => {}
            }
        }
        out
    }

    /// The values that the adjoint of `b` may read among those `b` defines: what a branch
    /// or a loop iteration must keep. `extra` are further local names (loop index, heads).
    /// Computed from the IR by [`analysis::reverse_reads`], never by emitting the sweep, so
    /// the sweep cannot read a value that was not kept.
    fn stash_of(
        &mut self,
        key: (usize, u8),
        b: &'a Block,
        keep: &[VarId],
        own: &[VarId],
    ) -> Vec<Ident> {
        if let Some(s) = self.stash_cache.get(&key) {
            return s.clone();
        }
        let mut kept = BTreeSet::new();
        analysis::reverse_reads(b, &self.cx(), &mut kept);
        // A loop's active heads (the adjoint makes zeros from them), and what its iterations
        // recompute from; not what they recompute.
        kept.extend(keep.iter().map(|v| analysis::Kept::Var(*v)));
        let remat = if key.1 == 2 {
            self.remat.get(&key.0).cloned().unwrap_or_default()
        } else {
            Vec::new()
        };
        for v in &remat {
            let reads = analysis::remat_reads(self.defs[v], &self.f.vars);
            kept.extend(reads.into_iter().map(analysis::Kept::Var));
        }
        let mut names: BTreeMap<String, Ident> = BTreeMap::new();
        for k in kept {
            let id = match k {
                analysis::Kept::Var(v) if remat.contains(&v) => continue,
                analysis::Kept::Var(mut v) => {
                    // A field borrow is recomputed from its base.
                    while let Some((base, _)) = self.fields.get(&v) {
                        v = *base;
                    }
                    self.id(v).clone()
                }
                analysis::Kept::Tag(i) => format_ident!("__br_{}", i),
                analysis::Kept::Tape(i) if self.is_shared(i) => {
                    // An instance of a loop sharing its tape is its bounds on that tape.
                    let n = shared::names(i);
                    names.insert(n.mark.to_string(), n.mark);
                    n.end
                }
                analysis::Kept::Tape(i) => format_ident!("__tape_{}", i),
                analysis::Kept::Pullback(v) => pullback_name(self.id(v)),
            };
            names.insert(id.to_string(), id);
        }
        let mut local = self.local_names(b);
        local.extend(own.iter().map(|v| self.id(*v).to_string()));
        let stash: Vec<Ident> = names
            .into_iter()
            .filter(|(n, _)| local.contains(n))
            .map(|(_, i)| i)
            .collect();
        self.stash_cache.insert(key, stash.clone());
        stash
    }

    /// Whether the loop's "tape" is a copy of its range: it keeps nothing but the index
    /// (`stash`), it iterates over a range written `a..b`, and every iteration runs to its
    /// end (no condition, no `break` flag, no `return` inside), so its adjoint can run the
    /// range backwards, with no allocation and nothing written per iteration.
    fn range_tape(&self, f: &For, stash: &[Ident]) -> bool {
        fn returns(b: &Block) -> bool {
            b.stmts.iter().any(|s| match s {
                Stmt::Return(..) => true,
                Stmt::If(i) => returns(&i.then_b) || returns(&i.else_b),
                Stmt::For(f) => returns(&f.body),
                Stmt::Assign(_) => false,
            })
        }
        let index = self.id(f.index);
        f.cond.is_none()
            && stash.iter().all(|s| s == index)
            && !returns(&f.body)
            && matches!(
                syn::parse2::<syn::ExprRange>(f.iter.clone()),
                Ok(syn::ExprRange {
                    start: Some(_),
                    end: Some(_),
                    limits: syn::RangeLimits::HalfOpen(_),
                    ..
                })
            )
    }

    /// The heads of a loop an iteration's adjoint may make a zero adjoint from (active
    /// values not known to be scalars).
    fn active_heads(&self, f: &For) -> Vec<VarId> {
        f.carried
            .iter()
            .map(|c| c.head)
            .filter(|h| self.f.vars[*h].active && !self.scalars.contains(h))
            .collect()
    }

    /// What each branch of `i` keeps for its adjoint (the branch's values its adjoint reads,
    /// seeded through the phis).
    fn branch_stashes(&mut self, i: &'a If) -> (Vec<Ident>, Vec<Ident>) {
        (
            self.stash_of((i.id, 0), &i.then_b, &[], &[]),
            self.stash_of((i.id, 1), &i.else_b, &[], &[]),
        )
    }

    fn tuple(ids: &[Ident]) -> TokenStream {
        quote!((#(#ids,)*))
    }

    /// Forward pass of a block; `frames` is the path to it.
    fn fwd_block(&mut self, b: &'a Block, frames: &mut Vec<Frame<'a>>) -> TokenStream {
        let root = self.root.clone();
        let mut out = TokenStream::new();
        for s in &b.stmts {
            match s {
                Stmt::Assign(a) => {
                    out.extend(self.fwd_assign(a));
                    frames.last_mut().unwrap().done.push(s);
                }
                Stmt::Return(v, span) => {
                    let k = self.exits.len();
                    let (stash, reverse) = self.rev_exit(frames, v);
                    if self.inline() {
                        let value = self.fwd_plain(v);
                        out.extend(quote_spanned!(*span=> {
                            let __grads = { #reverse };
                            return (#value, __grads);
                        }));
                        self.exits.push(Exit { stash, reverse });
                        return out;
                    }
                    let variant = format_ident!("E{}", k);
                    let value = match v {
                        Operand::Var(id) if stash.iter().any(|s| s == self.id(*id)) => {
                            let i = self.id(*id);
                            quote!(::core::clone::Clone::clone(&#i))
                        }
                        o => self.fwd_plain(o),
                    };
                    let t = Self::tuple(&stash);
                    out.extend(
                        quote_spanned!(*span=> break '__fwd (#value, __Exit::#variant(#t));),
                    );
                    self.exits.push(Exit { stash, reverse });
                    return out;
                }
                Stmt::If(i) => {
                    let br = format_ident!("__br_{}", i.id);
                    let cond = &i.cond;
                    let (then_stash, else_stash) = self.branch_stashes(i);
                    let mk = |g: &mut Self,
                              block: &'a Block,
                              stash: &[Ident],
                              which: bool,
                              frames: &mut Vec<Frame<'a>>| {
                        frames.push(Frame {
                            kind: FrameKind::Branch,
                            done: Vec::new(),
                        });
                        let body = g.fwd_block(block, frames);
                        frames.pop();
                        if block.diverges {
                            return quote!({ #body });
                        }
                        let locals = g.local_names(block);
                        let vals: Vec<TokenStream> = i
                            .phis
                            .iter()
                            .map(|p| {
                                let o = if which { &p.then_v } else { &p.else_v };
                                match o {
                                    Operand::Var(v) => {
                                        let id = g.id(*v).clone();
                                        let name = id.to_string();
                                        if locals.contains(&name) && !stash.contains(&id) {
                                            quote!(#id)
                                        } else {
                                            quote!(::core::clone::Clone::clone(&#id))
                                        }
                                    }
                                    Operand::Const(e) => quote!((#e)),
                                }
                            })
                            .collect();
                        let t = Self::tuple(stash);
                        let other_diverges = if which {
                            i.else_b.diverges
                        } else {
                            i.then_b.diverges
                        };
                        let tag = match (which, other_diverges) {
                            (true, false) => quote!(#root::Branch::Then(#t)),
                            (true, true) => quote!(#root::Branch::<_, ()>::Then(#t)),
                            (false, false) => quote!(#root::Branch::Else(#t)),
                            (false, true) => quote!(#root::Branch::<(), _>::Else(#t)),
                        };
                        quote!({ #body (#(#vals,)* #tag) })
                    };
                    let then_t = mk(self, &i.then_b, &then_stash, true, frames);
                    let else_t = mk(self, &i.else_b, &else_stash, false, frames);
                    if i.then_b.diverges && i.else_b.diverges {
                        out.extend(quote!(if #cond #then_t else #else_t));
                        return out;
                    }
                    let phis: Vec<&Ident> = i.phis.iter().map(|p| self.id(p.dst)).collect();
                    out.extend(quote!(let (#(#phis,)* #br) = if #cond #then_t else #else_t;));
                    frames.last_mut().unwrap().done.push(s);
                }
                Stmt::For(fl) => {
                    let tape = format_ident!("__tape_{}", fl.id);
                    let iter_var = format_ident!("__iter_{}", fl.id);
                    let index = self.id(fl.index).clone();
                    let iter = &fl.iter;
                    let taped = fl.carried.iter().any(|c| self.f.vars[c.head].active);
                    let mut extra = vec![fl.index];
                    extra.extend(fl.carried.iter().map(|c| c.head));
                    let stash = if taped {
                        self.stash_of((fl.id, 2), &fl.body, &self.active_heads(fl), &extra)
                    } else {
                        Vec::new()
                    };
                    let mut pre = TokenStream::new();
                    let mut heads = TokenStream::new();
                    let mut ends = TokenStream::new();
                    let mut post = TokenStream::new();
                    let mut restore = TokenStream::new();
                    let locals = {
                        let mut l = self.local_names(&fl.body);
                        l.extend(extra.iter().map(|v| self.id(*v).to_string()));
                        l
                    };
                    for c in &fl.carried {
                        let cur = format_ident!("__c_{}", c.after);
                        let init = match &c.init {
                            Operand::Var(v) => {
                                let id = self.id(*v);
                                quote!(::core::clone::Clone::clone(&#id))
                            }
                            Operand::Const(e) => quote!((#e)),
                        };
                        pre.extend(quote!(let mut #cur = #init;));
                        let head = self.id(c.head);
                        heads.extend(quote!(let #head = #cur;));
                        restore.extend(quote!(#cur = #head;));
                        let end = match &c.end {
                            Operand::Var(v) => {
                                let id = self.id(*v).clone();
                                if locals.contains(&id.to_string()) && !stash.contains(&id) {
                                    quote!(#id)
                                } else {
                                    quote!(::core::clone::Clone::clone(&#id))
                                }
                            }
                            Operand::Const(e) => quote!((#e)),
                        };
                        ends.extend(quote!(#cur = #end;));
                        let after = self.id(c.after);
                        post.extend(quote!(let #after = #cur;));
                    }
                    frames.push(Frame {
                        kind: FrameKind::Loop(fl),
                        done: Vec::new(),
                    });
                    let body = self.fwd_block(&fl.body, frames);
                    frames.pop();
                    let t = Self::tuple(&stash);
                    let (tape_decl, push) = if taped && self.range_tape(fl, &stash) {
                        // The iterations' indices are the range's: keep the range.
                        let it = quote!(::core::clone::Clone::clone(&#iter_var));
                        (quote!(let #tape = #it;), TokenStream::new())
                    } else if self.is_shared(fl.id) {
                        // One tape for all instances (declared at the top): keep this
                        // instance's bounds on it.
                        let shared::SharedNames { mark, end, .. } = shared::names(fl.id);
                        post.extend(quote!(let #end = #tape.len();));
                        (
                            quote!(let #mark = #tape.len();),
                            quote!(#root::tape_push(&mut #tape, #t);),
                        )
                    } else if taped {
                        (
                            quote!(let mut #tape = #root::tape_for(&#iter_var);),
                            quote!(#root::tape_push(&mut #tape, #t);),
                        )
                    } else {
                        (TokenStream::new(), TokenStream::new())
                    };
                    let tail = if fl.body.diverges {
                        TokenStream::new()
                    } else {
                        quote!(#ends #push)
                    };
                    let check = fl.exit_check(restore);
                    out.extend(quote! {
                        #pre
                        let #iter_var = #iter;
                        #tape_decl
                        for #index in #iter_var {
                            #heads
                            #check
                            #body
                            #tail
                        }
                        #post
                    });
                    frames.last_mut().unwrap().done.push(s);
                }
            }
        }
        out
    }

    // ----- reverse -----

    /// `-c`; inside a loop's adjoint through a function, as rustc may not know the type of
    /// values read back from the tape at that point (a `return` inside the loop).
    fn neg(&self, c: Contrib) -> Contrib {
        let root = &self.root;
        match c {
            Contrib::Lit(x) => Contrib::Lit(-x),
            Contrib::Ts(t) if self.in_tape > 0 => Contrib::Ts(quote!(#root::neg_grad(#t))),
            Contrib::Ts(t) => Contrib::Ts(quote!(-(#t))),
        }
    }

    fn need_expr(&self, deps: &Deps) -> TokenStream {
        let bits: Vec<TokenStream> = deps
            .positions()
            .map(|i| {
                let i = Literal::usize_unsuffixed(i);
                quote!(__need[#i])
            })
            .collect();
        quote!(#(#bits)||*)
    }

    /// Wraps the contribution to `v` so that the pullback skips it when the caller does not
    /// need any gradient that flows through `v`.
    fn guard(&mut self, v: VarId, from: VarId, c: Contrib) -> Contrib {
        if !self.cx().guarded(v, from) {
            return c;
        }
        match c {
            Contrib::Lit(_) => c,
            Contrib::Ts(t) => {
                let need = self.need_expr(&self.f.vars[v].deps);
                let r = self.r(&Operand::Var(v));
                let root = &self.root;
                Contrib::Ts(quote!(if #need { #t } else { #root::zero(#r) }))
            }
        }
    }

    fn contribute(&mut self, st: &mut Rev, out: &mut TokenStream, v: VarId, c: Contrib) {
        if !self.f.vars[v].active {
            return;
        }
        let root = self.root.clone();
        let g = self.adj_ident(v);
        match (st.adj.get(&v).cloned(), c) {
            (None, Contrib::Lit(x)) => {
                st.adj.insert(v, Adj::Lit(x));
            }
            (None, Contrib::Ts(t)) => {
                out.extend(quote!(let mut #g = #t;));
                st.adj.insert(v, Adj::Var(g));
            }
            (Some(Adj::Lit(x)), Contrib::Lit(y)) => {
                st.adj.insert(v, Adj::Lit(x + y));
            }
            (Some(Adj::Lit(x)), Contrib::Ts(t)) => {
                let x = lit(x);
                out.extend(quote!(let mut #g = #t; #root::acc(&mut #g, #x);));
                st.adj.insert(v, Adj::Var(g));
            }
            (Some(Adj::Var(g)), Contrib::Lit(y)) => {
                let y = lit(y);
                out.extend(quote!(#root::acc(&mut #g, #y);));
            }
            (Some(Adj::Var(g)), Contrib::Ts(t)) => {
                out.extend(quote!(#root::acc(&mut #g, #t);));
            }
        }
    }

    /// Makes sure `v`'s adjoint is a named, mutable value (for field and index updates and
    /// for accumulation inside branches and loops).
    fn materialize(&mut self, st: &mut Rev, out: &mut TokenStream, v: VarId) -> Ident {
        let root = self.root.clone();
        let g = self.adj_ident(v);
        match st.adj.get(&v).cloned() {
            Some(Adj::Var(g)) => g,
            Some(Adj::Lit(x)) => {
                let x = lit(x);
                out.extend(quote!(let mut #g = #x;));
                st.adj.insert(v, Adj::Var(g.clone()));
                g
            }
            // The adjoint of a value whose elements are read one at a time (`x[i]`) is
            // allocated at its full size at once, so that adding to an element needs no size
            // check (a lazy zero would be grown at the first element added).
            None if self.indexed.contains(&v) => {
                let r = self.r(&Operand::Var(v));
                out.extend(quote!(let mut #g = #root::finalize(#r, #root::zero(#r));));
                st.adj.insert(v, Adj::Var(g.clone()));
                g
            }
            None => {
                let r = self.r(&Operand::Var(v));
                out.extend(quote!(let mut #g = #root::zero(#r);));
                st.adj.insert(v, Adj::Var(g.clone()));
                g
            }
        }
    }

    /// Names the adjoints of `targets` (what a branch or loop adds to) before it, so that its
    /// arms or iterations accumulate into them. With `size`, the adjoints of values read by
    /// index are also made full-size (`materialize` allocates a new one so; one that exists
    /// may still be a lazy zero) and returned: element updates need no size check then, and
    /// inside a loop the gradient's length and pointer stay in registers.
    fn name_targets(
        &mut self,
        st: &mut Rev,
        out: &mut TokenStream,
        targets: Vec<VarId>,
        size: bool,
    ) -> Vec<VarId> {
        let root = self.root.clone();
        let mut sized = Vec::new();
        for v in targets {
            let existed = matches!(st.adj.get(&v), Some(Adj::Var(_)));
            if existed && !size {
                continue;
            }
            let g = self.materialize(st, out, v);
            if size && self.indexed.contains(&v) {
                if existed {
                    let base = self.rev_name(v);
                    out.extend(quote!(#root::size_grad(&mut #g, &#base);));
                }
                sized.push(v);
            }
        }
        sized
    }

    fn take(&mut self, st: &mut Rev, v: VarId) -> Option<Adj> {
        if !self.f.vars[v].active {
            return None;
        }
        st.adj.remove(&v)
    }

    fn rev_stmts(&mut self, stmts: &[&'a Stmt], st: &mut Rev, out: &mut TokenStream) {
        for s in stmts.iter().rev() {
            match s {
                Stmt::Assign(a) => self.rev_assign(a, st, out),
                Stmt::If(i) => self.rev_if(i, st, out),
                Stmt::For(f) => {
                    let init: Vec<Option<Adj>> =
                        f.carried.iter().map(|c| self.take(st, c.after)).collect();
                    self.rev_loop(f, init, false, st, out);
                }
                Stmt::Return(..) => {}
            }
        }
    }

    fn g_tokens(g: &Adj) -> TokenStream {
        match g {
            Adj::Lit(x) => lit(*x),
            Adj::Var(i) => quote!(#i),
        }
    }

    fn rev_assign(&mut self, a: &Assign, st: &mut Rev, out: &mut TokenStream) {
        let t = a.dst;
        let Some(g) = self.take(st, t) else {
            return;
        };
        let root = self.root.clone();
        let span = a.span;
        let gt = Self::g_tokens(&g);
        let as_contrib = |g: &Adj| match g {
            Adj::Lit(x) => Contrib::Lit(*x),
            Adj::Var(i) => Contrib::Ts(quote!(#i)),
        };
        match &a.op {
            Op::Clone(x) => {
                if let Some(v) = self.active(x) {
                    self.contribute(st, out, v, as_contrib(&g));
                }
            }
            Op::Add(x, y) | Op::Sub(x, y) => {
                let neg = matches!(a.op, Op::Sub(..));
                let (ax, ay) = (self.active(x), self.active(y));
                if let Some(v) = ax {
                    let c = if ay.is_some() {
                        match &g {
                            Adj::Lit(x) => Contrib::Lit(*x),
                            Adj::Var(i) => Contrib::Ts(quote!(::core::clone::Clone::clone(&#i))),
                        }
                    } else {
                        as_contrib(&g)
                    };
                    let c = self.guard(v, t, c);
                    self.contribute(st, out, v, c);
                }
                if let Some(v) = ay {
                    let c = as_contrib(&g);
                    let c = if neg { self.neg(c) } else { c };
                    let c = self.guard(v, t, c);
                    self.contribute(st, out, v, c);
                }
            }
            Op::Neg(x) => {
                if let Some(v) = self.active(x) {
                    let c = self.neg(as_contrib(&g));
                    self.contribute(st, out, v, c);
                }
            }
            Op::Mul(x, y) => {
                for (side, this, other) in [(0, x, y), (1, y, x)] {
                    let Some(v) = self.active(this) else { continue };
                    let c = match (other, &g) {
                        (Operand::Const(c), Adj::Lit(k)) if *k == 1.0 => Contrib::Ts(quote!((#c))),
                        (Operand::Const(c), Adj::Lit(k)) if *k == -1.0 => {
                            Contrib::Ts(quote!(-(#c)))
                        }
                        (Operand::Const(c), _) => Contrib::Ts(quote_spanned!(span=> #gt * (#c))),
                        (Operand::Var(_), Adj::Lit(k)) if *k == 1.0 => Contrib::Ts(self.val(other)),
                        (Operand::Var(_), Adj::Lit(k)) if *k == -1.0 => {
                            let o = self.val(other);
                            self.neg(Contrib::Ts(o))
                        }
                        _ => {
                            let (rx, ry) = (self.r(x), self.r(y));
                            if side == 0 {
                                Contrib::Ts(
                                    quote_spanned!(span=> #root::mul_grad_lhs(#rx, #ry, &#gt)),
                                )
                            } else {
                                Contrib::Ts(
                                    quote_spanned!(span=> #root::mul_grad_rhs(#rx, #ry, &#gt)),
                                )
                            }
                        }
                    };
                    let c = self.guard(v, t, c);
                    self.contribute(st, out, v, c);
                }
            }
            Op::Div(x, y) => {
                if let Some(v) = self.active(x) {
                    let c = match y {
                        Operand::Const(c) => Contrib::Ts(quote_spanned!(span=> #gt / (#c))),
                        _ => {
                            let (rx, ry) = (self.r(x), self.r(y));
                            Contrib::Ts(quote_spanned!(span=> #root::div_grad_lhs(#rx, #ry, &#gt)))
                        }
                    };
                    let c = self.guard(v, t, c);
                    self.contribute(st, out, v, c);
                }
                if let Some(v) = self.active(y) {
                    let (rx, ry) = (self.r(x), self.r(y));
                    let c = Contrib::Ts(quote_spanned!(span=> #root::div_grad_rhs(#rx, #ry, &#gt)));
                    let c = self.guard(v, t, c);
                    self.contribute(st, out, v, c);
                }
            }
            Op::MatMulNt(x, y) | Op::MatMulTn(x, y) => {
                let (fl, fr) = if matches!(a.op, Op::MatMulNt(..)) {
                    (quote!(matmul_nt_grad_lhs), quote!(matmul_nt_grad_rhs))
                } else {
                    (quote!(matmul_tn_grad_lhs), quote!(matmul_tn_grad_rhs))
                };
                for (this, f) in [(x, fl), (y, fr)] {
                    let Some(v) = self.active(this) else { continue };
                    let (rx, ry) = (self.r(x), self.r(y));
                    let c = Contrib::Ts(quote_spanned!(span=> #root::#f(#rx, #ry, &#gt)));
                    let c = self.guard(v, t, c);
                    self.contribute(st, out, v, c);
                }
            }
            Op::Math(m, args, _) => self.rev_math(*m, args, t, &gt, span, st, out),
            Op::Call(callee, args) => {
                let pb = pullback_name(self.id(t));
                self.read_ident(&pb);
                let mut operands: Vec<Operand> = Vec::new();
                let mut spans: Vec<Span> = Vec::new();
                if let Callee::Method { receiver, span, .. } = callee {
                    operands.push(Operand::Var(*receiver));
                    spans.push(*span);
                }
                operands.extend(args.iter().map(|a| a.operand.clone()));
                spans.extend(args.iter().map(|a| a.span));
                let (names, pats) = self.grad_pattern(&operands);
                let masks: Vec<TokenStream> = operands
                    .iter()
                    .map(|o| match self.active(o) {
                        Some(v)
                            if self.mode == Mode::Pullback
                                && self.f.vars[v].deps != self.all_deps =>
                        {
                            self.need_expr(&self.f.vars[v].deps)
                        }
                        Some(_) => quote!(true),
                        None => quote!(false),
                    })
                    .collect();
                // The pullback gets the arguments again (it keeps no borrow of them).
                let mut again: Vec<TokenStream> = Vec::new();
                if let Callee::Method { receiver, .. } = callee {
                    again.push(self.r(&Operand::Var(*receiver)));
                }
                for a in args {
                    let form = self.arg_form(a);
                    again.push(self.rev_operand(&a.operand, form));
                }
                if self.in_tape > 0 {
                    let n = again.len() + 2;
                    self.call_arities.insert(n);
                    let helper = format_ident!("__call_pb{}", n);
                    out.extend(quote_spanned!(span=>
                        let (#(#pats,)*) = #helper(#pb, #(#again,)* #gt, [#(#masks),*]);
                    ));
                } else {
                    out.extend(quote_spanned!(span=>
                        let (#(#pats,)*) = #pb(#(#again,)* #gt, [#(#masks),*]);
                    ));
                }
                for ((o, n), arg_span) in operands.iter().zip(&names).zip(spans) {
                    if let Some(v) = self.active(o) {
                        let r = self.r(o);
                        // Located at the argument, so that a type error lands on it.
                        let check = located_at(quote!(#root::grad_of(#r, #n)), arg_span);
                        self.contribute(st, out, v, Contrib::Ts(check));
                    }
                }
            }
            Op::Field(b, m) => {
                let gb = self.materialize(st, out, *b);
                out.extend(quote!(#root::acc(&mut #gb.#m, #gt);));
            }
            Op::Index(b, i) => {
                let gb = self.materialize(st, out, *b);
                let base = self.rev_name(*b);
                let i = self.val(i);
                // Inside a loop whose reversal made this gradient full-size beforehand, the
                // update needs no size check (see `rev_loop`).
                let f = if self.sized.contains(b) {
                    quote!(acc_at_sized)
                } else {
                    quote!(acc_at)
                };
                out.extend(quote!(#root::#f(&mut #gb, &#base, #i, #gt);));
            }
            Op::Transpose(x) => {
                if let Some(v) = self.active(x) {
                    self.contribute(st, out, v, Contrib::Ts(quote!(#root::transpose_vjp(&#gt))));
                }
            }
            Op::Sum(x) | Op::Mean(x) => {
                if let Some(v) = self.active(x) {
                    let f = if matches!(a.op, Op::Sum(_)) {
                        quote!(sum_vjp)
                    } else {
                        quote!(mean_vjp)
                    };
                    let rx = self.r(x);
                    self.contribute(st, out, v, Contrib::Ts(quote!(#root::#f(#rx, #gt))));
                }
            }
            Op::ComponentMul(x, y) => {
                for (this, other) in [(x, y), (y, x)] {
                    let Some(v) = self.active(this) else { continue };
                    let ro = self.r(other);
                    let c = Contrib::Ts(quote!(#root::component_mul_vjp(#ro, &#gt)));
                    let c = self.guard(v, t, c);
                    self.contribute(st, out, v, c);
                }
            }
            Op::ArrayLit(xs, _) => {
                for (k, x) in xs.iter().enumerate() {
                    if let Some(v) = self.active(x) {
                        let c = Contrib::Ts(quote!(#root::grad_at(&#gt, #k)));
                        self.contribute(st, out, v, c);
                    }
                }
            }
            Op::Tuple(xs) => {
                // The adjoint of a tuple is the tuple of its parts' adjoints.
                for (k, x) in xs.iter().enumerate() {
                    if let Some(v) = self.active(x) {
                        let k = syn::Index::from(k);
                        let c = Contrib::Ts(quote!(::core::clone::Clone::clone(&#gt.#k)));
                        self.contribute(st, out, v, c);
                    }
                }
            }
            Op::Repeat(x, ..) => {
                if let Some(v) = self.active(x) {
                    self.contribute(st, out, v, Contrib::Ts(quote!(#root::grad_sum(&#gt))));
                }
            }
            Op::SetIndex(b, i, x) => {
                let i = self.val(i);
                if let Some(v) = self.active(x) {
                    let c = Contrib::Ts(quote!(#root::grad_at(&#gt, #i)));
                    self.contribute(st, out, v, c);
                }
                if self.f.vars[*b].active {
                    let c = Contrib::Ts(quote!(#root::grad_without(&#gt, #i)));
                    self.contribute(st, out, *b, c);
                }
            }
            Op::Push(b, x) => {
                let rb = self.rev_name(*b);
                if let Some(v) = self.active(x) {
                    let c = Contrib::Ts(quote!(#root::grad_at(&#gt, #rb.len())));
                    self.contribute(st, out, v, c);
                }
                if self.f.vars[*b].active {
                    let c = Contrib::Ts(quote!(#root::grad_truncate(&#gt, #rb.len())));
                    self.contribute(st, out, *b, c);
                }
            }
            Op::Map(x, m) => {
                let pb = pullback_name(self.id(t));
                self.read_ident(&pb);
                if let Some(v) = self.active(x) {
                    let c = Contrib::Ts(quote_spanned!(span=> #root::map_vjp(&#pb, 0, &#gt)));
                    let c = self.guard(v, t, c);
                    self.contribute(st, out, v, c);
                }
                for (k, &cv) in m.captures.iter().enumerate() {
                    let k = Literal::usize_unsuffixed(k + 1);
                    let c =
                        Contrib::Ts(quote_spanned!(span=> #root::map_capture_vjp(&#pb, #k, &#gt)));
                    let c = self.guard(cv, t, c);
                    self.contribute(st, out, cv, c);
                }
            }
            Op::Inactive(_) => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn rev_math(
        &mut self,
        m: MathFn,
        args: &[Operand],
        t: VarId,
        gt: &TokenStream,
        span: Span,
        st: &mut Rev,
        out: &mut TokenStream,
    ) {
        use MathFn::*;
        let root = self.root.clone();
        let f = format_ident!("{}_vjp", m.name(), span = span);
        let a0 = &args[0];
        match m {
            Signum => {}
            Sin | Cos | Asin | Acos | Atan | Sinh | Cosh | Ln | Log10 | Log2 | Abs | Ln1p
            | Asinh | Acosh | Atanh | AsF32 | AsF64 => {
                if let Some(v) = self.active(a0) {
                    let x = self.val(a0);
                    self.contribute(
                        st,
                        out,
                        v,
                        Contrib::Ts(quote_spanned!(span=> #root::#f(#x, #gt))),
                    );
                }
            }
            Tan | Tanh | Exp | Exp2 | Sqrt | Cbrt | Recip | ExpM1 => {
                if let Some(v) = self.active(a0) {
                    let y = self.val(&Operand::Var(t));
                    self.contribute(
                        st,
                        out,
                        v,
                        Contrib::Ts(quote_spanned!(span=> #root::#f(#y, #gt))),
                    );
                }
            }
            Powi => {
                if let Some(v) = self.active(a0) {
                    let x = self.val(a0);
                    let n = self.val(&args[1]);
                    self.contribute(
                        st,
                        out,
                        v,
                        Contrib::Ts(quote_spanned!(span=> #root::#f(#x, #n, #gt))),
                    );
                }
            }
            Atan2 | Log | Max | Min | Powf | Hypot | MulAdd => {
                let mut call_args: Vec<TokenStream> =
                    args.iter().take(2).map(|a| self.val(a)).collect();
                if matches!(m, Powf | Hypot) {
                    call_args.push(self.val(&Operand::Var(t)));
                }
                let (names, pats) = self.grad_pattern(args);
                out.extend(
                    quote_spanned!(span=> let (#(#pats,)*) = #root::#f(#(#call_args,)* #gt);),
                );
                for (o, n) in args.iter().zip(&names) {
                    if let Some(v) = self.active(o) {
                        self.contribute(st, out, v, Contrib::Ts(quote!(#n)));
                    }
                }
            }
        }
    }

    fn rev_if(&mut self, i: &'a If, st: &mut Rev, out: &mut TokenStream) {
        let seeds: Vec<(usize, Adj)> = i
            .phis
            .iter()
            .enumerate()
            .filter_map(|(k, p)| self.take(st, p.dst).map(|g| (k, g)))
            .collect();
        if seeds.is_empty() {
            return;
        }
        let root = self.root.clone();
        let br = format_ident!("__br_{}", i.id);
        self.read_ident(&br);
        let (then_stash, else_stash) = self.branch_stashes(i);
        let arm = |g: &mut Self, st: &mut Rev, out: &mut TokenStream, which: bool| {
            let block = if which { &i.then_b } else { &i.else_b };
            for (k, a) in &seeds {
                let p = &i.phis[*k];
                let o = if which { &p.then_v } else { &p.else_v };
                if let Some(v) = g.active(o) {
                    let c = match a {
                        Adj::Lit(x) => Contrib::Lit(*x),
                        Adj::Var(id) => Contrib::Ts(quote!(#id)),
                    };
                    g.contribute(st, out, v, c);
                }
            }
            let refs: Vec<&Stmt> = block.stmts.iter().collect();
            g.rev_stmts(&refs, st, out);
        };
        // The outer adjoints an arm may add to are made mutable before the `match`.
        let mut targets = Vec::new();
        for which in [true, false] {
            let block = if which { &i.then_b } else { &i.else_b };
            if block.diverges {
                continue;
            }
            let seeded: Vec<VarId> = seeds
                .iter()
                .filter_map(|(k, _)| {
                    let p = &i.phis[*k];
                    self.active(if which { &p.then_v } else { &p.else_v })
                })
                .collect();
            targets.extend(analysis::adjoint_targets(block, &seeded, &[], |v| {
                self.f.vars[v].active
            }));
        }
        targets.sort();
        targets.dedup();
        // The adjoints the arms add to, named before the `if`.
        self.name_targets(st, out, targets, false);
        let mut arms = TokenStream::new();
        for which in [true, false] {
            if (which && i.then_b.diverges) || (!which && i.else_b.diverges) {
                continue;
            }
            let mut scratch = st.clone();
            let mut body = TokenStream::new();
            let outer_reads = self.reads.clone();
            arm(self, &mut scratch, &mut body, which);
            let (stash, variant) = if which {
                (Self::tuple(&then_stash), quote!(Then))
            } else {
                (Self::tuple(&else_stash), quote!(Else))
            };
            arms.extend(quote!(#root::Branch::#variant(#stash) => { #body }));
            let block = if which { &i.then_b } else { &i.else_b };
            let locals = self.local_names(block);
            self.reads
                .retain(|n, _| !locals.contains(n) || outer_reads.contains_key(n));
        }
        if i.then_b.diverges || i.else_b.diverges {
            arms.extend(quote!(_ => ::core::unreachable!(),));
        }
        out.extend(quote!(match #br { #arms }));
    }

    /// The adjoint of a loop's iterations (all of them, or those before the current one),
    /// given the adjoints of the carried values at the end of the last one.
    fn rev_loop(
        &mut self,
        f: &'a For,
        init: Vec<Option<Adj>>,
        in_iteration: bool,
        st: &mut Rev,
        out: &mut TokenStream,
    ) {
        let taped = f.carried.iter().any(|c| self.f.vars[c.head].active);
        if !taped {
            return;
        }
        let tape = format_ident!("__tape_{}", f.id);
        self.read_ident(&tape);
        let mut extra = vec![f.index];
        extra.extend(f.carried.iter().map(|c| c.head));
        let stash = self.stash_of((f.id, 2), &f.body, &self.active_heads(f), &extra);
        if init.iter().all(|a| a.is_none()) {
            return;
        }
        let root = self.root.clone();
        let gcs: Vec<Ident> = f
            .carried
            .iter()
            .map(|c| format_ident!("__gc_{}", c.after))
            .collect();
        // One iteration's adjoint: seed the carried ends, run the body backwards, hand the
        // heads' adjoints to the previous iteration.
        let iteration = |g: &mut Self, st: &mut Rev, out: &mut TokenStream| {
            for (c, gc) in f.carried.iter().zip(&gcs) {
                if let Some(v) = g.active(&c.end)
                    && g.f.vars[c.head].active
                {
                    g.contribute(st, out, v, Contrib::Ts(quote!(#gc)));
                }
            }
            let refs: Vec<&Stmt> = f.body.stmts.iter().collect();
            g.rev_stmts(&refs, st, out);
            for (c, gc) in f.carried.iter().zip(&gcs) {
                if !g.f.vars[c.head].active {
                    continue;
                }
                let v = match g.take(st, c.head) {
                    Some(Adj::Var(i)) => quote!(#i),
                    Some(Adj::Lit(x)) => lit(x),
                    None if g.scalars.contains(&c.head) => lit(0.0),
                    None => {
                        let r = g.r(&Operand::Var(c.head));
                        quote!(#root::zero(#r))
                    }
                };
                out.extend(quote!(#gc = #v;));
            }
        };
        let ends: Vec<VarId> = f
            .carried
            .iter()
            .filter(|c| self.f.vars[c.head].active)
            .filter_map(|c| self.active(&c.end))
            .collect();
        let targets = analysis::adjoint_targets(&f.body, &ends, &extra, |v| self.f.vars[v].active);
        let mut locals = self.local_names(&f.body);
        locals.extend(extra.iter().map(|v| self.id(*v).to_string()));
        // The adjoints the iterations add to, named before the loop; the read-by-index ones
        // full-size, so that element updates in the iterations skip the size check.
        let sized = self.name_targets(st, out, targets, true);
        for ((c, gc), a) in f.carried.iter().zip(&gcs).zip(init) {
            if !self.f.vars[c.head].active {
                continue;
            }
            let v = match a {
                Some(Adj::Var(i)) => quote!(#i),
                Some(Adj::Lit(x)) => lit(x),
                None => {
                    let v = if in_iteration { c.head } else { c.after };
                    if self.scalars.contains(&v) {
                        lit(0.0)
                    } else {
                        let r = self.r(&Operand::Var(v));
                        quote!(#root::zero(#r))
                    }
                }
            };
            out.extend(quote!(let mut #gc = #v;));
        }
        let mut body = TokenStream::new();
        let mut scratch = st.clone();
        let outer_reads = self.reads.clone();
        // What the iteration's adjoint recomputes instead of reading it from the tape.
        for v in self.remat.get(&f.id).cloned().unwrap_or_default() {
            let a = self.defs[&v];
            for u in analysis::remat_reads(a, &self.f.vars) {
                self.read(u);
            }
            body.extend(self.fwd_assign(a));
        }
        self.in_tape += 1;
        let outer_sized = self.sized.clone();
        self.sized.extend(sized);
        iteration(self, &mut scratch, &mut body);
        self.sized = outer_sized;
        self.in_tape -= 1;
        self.reads
            .retain(|n, _| !locals.contains(n) || outer_reads.contains_key(n));
        let t = Self::tuple(&stash);
        if self.range_tape(f, &stash) {
            let index = self.id(f.index);
            out.extend(quote! {
                for #index in ::core::iter::Iterator::rev(#tape) {
                    #body
                }
            });
        } else if self.is_shared(f.id) {
            // This instance's entries on the shared tape: from its mark to its end, or to the
            // tape's end for the instance an exit leaves (nothing was pushed after it).
            let shared::SharedNames { mark, end, .. } = shared::names(f.id);
            self.read_ident(&mark);
            let end = if in_iteration {
                quote!(#tape.len())
            } else {
                self.read_ident(&end);
                quote!(#end)
            };
            out.extend(quote! {
                for #t in #root::tape_range_rev(&#tape, #mark, #end) {
                    #body
                }
            });
        } else {
            out.extend(quote! {
                for #t in #root::tape_rev(#tape) {
                    #body
                }
            });
        }
        for (c, gc) in f.carried.iter().zip(&gcs) {
            if !self.f.vars[c.head].active {
                continue;
            }
            if let Some(v) = self.active(&c.init) {
                self.contribute(st, out, v, Contrib::Ts(quote!(#gc)));
            }
        }
    }

    /// The adjoint of the path that ends at a `return v`: what the match arm of that exit runs.
    fn rev_exit(&mut self, frames: &[Frame<'a>], v: &Operand) -> (Vec<Ident>, TokenStream) {
        let saved_reads = std::mem::take(&mut self.reads);
        self.in_closure = self.mode == Mode::Pullback;
        let mut st = Rev::default();
        let mut out = TokenStream::new();
        if let Some(id) = self.active(v) {
            let seed = &self.seed;
            let c = match self.mode {
                Mode::Grad => Contrib::Lit(1.0),
                Mode::Pullback => Contrib::Ts(quote!(#seed)),
            };
            self.contribute(&mut st, &mut out, id, c);
        }
        for frame in frames.iter().rev() {
            self.rev_stmts(&frame.done, &mut st, &mut out);
            if let FrameKind::Loop(f) = frame.kind {
                let init: Vec<Option<Adj>> = f
                    .carried
                    .iter()
                    .map(|c| self.take(&mut st, c.head))
                    .collect();
                self.rev_loop(f, init, true, &mut st, &mut out);
            }
        }
        out.extend(self.result(&mut st));
        self.in_closure = false;
        let reads = std::mem::replace(&mut self.reads, saved_reads);
        let stash = reads.into_values().collect();
        (stash, out)
    }

    /// The gradients at the end of an exit's adjoint.
    fn result(&mut self, st: &mut Rev) -> TokenStream {
        let root = self.root.clone();
        let mut items = Vec::new();
        for p in &self.f.params {
            if !p.active {
                if self.mode == Mode::Pullback {
                    items.push(quote!(()));
                }
                continue;
            }
            let g = match st.adj.get(&p.var).cloned() {
                Some(Adj::Var(i)) => quote!(#i),
                Some(Adj::Lit(x)) => lit(x),
                None => {
                    let r = self.r(&Operand::Var(p.var));
                    quote!(#root::zero(#r))
                }
            };
            let r = self.r(&Operand::Var(p.var));
            items.push(match self.mode {
                Mode::Pullback => g,
                Mode::Grad => quote!(#root::finalize(#r, #g)),
            });
        }
        if self.inline() && items.len() == 1 {
            let g = &items[0];
            quote!(#g)
        } else {
            quote!((#(#items,)*))
        }
    }

    /// The body of a generated function: forward pass, then the adjoint of the exit taken.
    pub fn body(&mut self, ret_ty: &syn::Type) -> TokenStream {
        let mut frames = vec![Frame {
            kind: FrameKind::Top,
            done: Vec::new(),
        }];
        let fwd = self.fwd_block(&self.f.body, &mut frames);
        let fwd = {
            let decls = self.shared_decls();
            quote!(#decls #fwd)
        };
        let helpers = self.call_helpers();
        if self.inline() {
            return quote!(#helpers #fwd);
        }
        let n = self.exits.len();
        let params: Vec<Ident> = (0..n).map(|k| format_ident!("T{}", k)).collect();
        let variants: Vec<Ident> = (0..n).map(|k| format_ident!("E{}", k)).collect();
        let arms: Vec<TokenStream> = self
            .exits
            .iter()
            .zip(&variants)
            .map(|(e, v)| {
                let t = Self::tuple(&e.stash);
                let r = &e.reverse;
                quote!(__Exit::#v(#t) => { #r })
            })
            .collect();
        let enum_def = quote! {
            enum __Exit<#(#params),*> { #(#variants(#params)),* }
        };
        let seed = &self.seed;
        let np = self.f.params.len();
        let closure_params: Vec<TokenStream> = self
            .f
            .params
            .iter()
            .map(|p| {
                let ty = &p.ty;
                if p.ident == "self" {
                    quote!(__self: #ty)
                } else {
                    let id = &p.ident;
                    quote!(#id: #ty)
                }
            })
            .collect();
        quote! {
            #helpers
            #enum_def
            let (__value, __exit) = '__fwd: { #fwd };
            (__value, move |#(#closure_params,)* #seed: #ret_ty, __need: [bool; #np]| match __exit { #(#arms)* })
        }
    }

    /// `fn __call_pb{n}(f, a1, ..) -> R { f(a1, ..) }` for each arity used.
    fn call_helpers(&self) -> TokenStream {
        let mut out = TokenStream::new();
        for &n in &self.call_arities {
            let name = format_ident!("__call_pb{}", n);
            let tys: Vec<Ident> = (0..n).map(|k| format_ident!("A{}", k)).collect();
            let args: Vec<Ident> = (0..n).map(|k| format_ident!("a{}", k)).collect();
            out.extend(quote! {
                #[inline(always)]
                fn #name<F: ::core::ops::FnOnce(#(#tys),*) -> R, #(#tys,)* R>(f: F, #(#args: #tys),*) -> R {
                    f(#(#args),*)
                }
            });
        }
        out
    }

    /// The adjoint code of every exit, for the documentation.
    pub fn reverse_listing(&self) -> Vec<TokenStream> {
        self.exits.iter().map(|e| e.reverse.clone()).collect()
    }
}

/// The field borrows of a body (`t = &base.member`), by value id.
fn field_defs(b: &Block) -> HashMap<VarId, (VarId, syn::Member)> {
    let mut out = HashMap::new();
    fn walk(b: &Block, out: &mut HashMap<VarId, (VarId, syn::Member)>) {
        for s in &b.stmts {
            match s {
                Stmt::Assign(a) => {
                    if let Op::Field(base, m) = &a.op {
                        out.insert(a.dst, (*base, m.clone()));
                    }
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
    walk(b, &mut out);
    out
}

/// `(a, b, ..)`: a tuple of the operands, each written by `part` (a one-element tuple keeps
/// its comma).
pub(crate) fn tuple_value(xs: &[Operand], part: impl Fn(&Operand) -> TokenStream) -> TokenStream {
    let parts: Vec<TokenStream> = xs.iter().map(part).collect();
    quote!((#(#parts,)*))
}

/// The name of the pullback closure that a call returned along with the value `t`.
fn pullback_name(t: &Ident) -> Ident {
    format_ident!("__pb_{}", t.to_string().trim_start_matches("__"))
}

/// `ts` with every token's location moved to `span` (name resolution unchanged).
pub(crate) fn located_at(ts: TokenStream, span: Span) -> TokenStream {
    ts.into_iter()
        .map(|mut tt| {
            if let proc_macro2::TokenTree::Group(g) = &tt {
                let mut ng = proc_macro2::Group::new(g.delimiter(), located_at(g.stream(), span));
                ng.set_span(g.span().located_at(span));
                tt = proc_macro2::TokenTree::Group(ng);
            } else {
                tt.set_span(tt.span().located_at(span));
            }
            tt
        })
        .collect()
}
