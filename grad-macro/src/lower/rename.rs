//! Constant code (conditions, loop ranges, indices, casts, statement macros) kept as
//! tokens, with the function's names renamed to the values they stand for at that point:
//! closures bound with `let` are inlined, windows indexed into their slice, `*x` of a
//! by-value element dropped; a value that carries a gradient is an error where only
//! constants may appear (a cast).

use super::*;

impl Lowerer {
    /// An expression of constants, with local names renamed; `allow_active` lets it read
    /// values that carry gradients (conditions, comparisons).
    pub(super) fn inactive_expr(&mut self, e: &Expr, allow_active: bool) -> TokenStream {
        struct Renamer<'a> {
            l: &'a Lowerer,
            /// The scopes names are looked up in (a closure's, while its body is inlined).
            scopes: Option<&'a Scopes>,
            allow_active: bool,
            errors: Vec<syn::Error>,
            named: Vec<VarId>,
        }
        impl<'a> Renamer<'a> {
            fn scopes(&self) -> &'a Scopes {
                self.scopes.unwrap_or(&self.l.scopes)
            }

            fn view_of(&self, e: &Expr) -> Option<&'a iterators::View> {
                named_binding(self.scopes(), e).and_then(|b| b.view.as_deref())
            }

            fn lookup(&self, name: &str) -> Option<&'a Binding> {
                lookup_in(self.scopes(), name)
            }

            /// `f(args)` of a closure bound with `let`: its body, inline.
            fn inline_closure(
                &mut self,
                def: &'a iterators::ClosureDef,
                c: &syn::ExprCall,
            ) -> Expr {
                let cl = &def.closure;
                let mut names = Vec::new();
                let mut lets: Vec<syn::Stmt> = Vec::new();
                for (pat, arg) in cl.inputs.iter().zip(&c.args) {
                    let (pat, ty) = match pat {
                        Pat::Type(t) => (&*t.pat, Some(&t.ty)),
                        p => (p, None),
                    };
                    let Pat::Ident(pi) = pat else {
                        self.errors.push(err_node(pat, "closure parameters must be names (`|x, y| ..`) in a #[differentiable] fn"));
                        continue;
                    };
                    names.push(pi.ident.to_string());
                    let id = format_ident!("__pb_{}", pi.ident);
                    let mut arg = arg.clone();
                    self.visit_expr_mut(&mut arg);
                    lets.push(match ty {
                        Some(ty) => parse_quote!(let #id: #ty = #arg;),
                        None => parse_quote!(let #id = #arg;),
                    });
                }
                let mut body = (*cl.body).clone();
                branches::GuardNames(&names).visit_expr_mut(&mut body);
                let mut inner = Renamer {
                    l: self.l,
                    scopes: Some(&def.scopes),
                    allow_active: self.allow_active,
                    errors: Vec::new(),
                    named: Vec::new(),
                };
                inner.visit_expr_mut(&mut body);
                self.errors.extend(inner.errors);
                self.named.extend(inner.named);
                parse_quote!({ #(#lets)* #body })
            }
        }
        impl VisitMut for Renamer<'_> {
            fn visit_expr_mut(&mut self, e: &mut Expr) {
                if let Expr::Call(c) = e {
                    if let Some(inner) = iterators::inactive_marker(c) {
                        *e = paren(inner);
                        return self.visit_expr_mut(e);
                    }
                    let def =
                        named_binding(self.scopes(), &c.func).and_then(|b| b.closure.as_deref());
                    if let Some(def) = def {
                        let c = c.clone();
                        *e = self.inline_closure(def, &c);
                        return;
                    }
                }
                if let Expr::Index(ix) = e
                    && let Some(v) = self.view_of(&ix.expr)
                {
                    *e = v.at(&ix.index);
                    return self.visit_expr_mut(e);
                }
                if let Expr::MethodCall(m) = e
                    && let (Some(v), true) = (self.view_of(&m.receiver), m.method == "len")
                {
                    *e = paren(&v.len);
                    return self.visit_expr_mut(e);
                }
                if let Expr::Unary(u) = e
                    && matches!(u.op, UnOp::Deref(_))
                    && let Some(v) = self.view_of(&u.expr)
                {
                    // `*a` of an element of `iter_mut`.
                    *e = v.at(&parse_quote!(0usize));
                    return self.visit_expr_mut(e);
                }
                if let Expr::Unary(u) = e {
                    // `*x` of a value the IR holds by value (an element bound by a pattern
                    // or an iterator): the value itself.
                    if let (UnOp::Deref(_), Expr::Path(p)) = (&u.op, strip_paren(&u.expr)) {
                        let by_value = p
                            .path
                            .get_ident()
                            .and_then(|id| self.lookup(&id.to_string()))
                            .is_some_and(|b| {
                                matches!(&b.op, Operand::Var(v) if !self.l.vars[*v].is_ref)
                                    || matches!(&b.op, Operand::Const(_))
                            });
                        if by_value {
                            *e = (*u.expr).clone();
                            return self.visit_expr_mut(e);
                        }
                    }
                }
                if let Expr::Path(p) = e
                    && p.qself.is_none()
                    && p.path.segments.len() == 1
                {
                    let name = p.path.segments[0].ident.to_string();
                    if let Some(b) = self.lookup(&name) {
                        if let Some(def) = &b.closure {
                            // Passed by name (`.map(f)`): as `|a| f(a)`, whose call is
                            // inlined like any other.
                            let args: Vec<syn::Ident> = (0..def.closure.inputs.len())
                                .map(|k| format_ident!("__cl_arg{}", k))
                                .collect();
                            let func = &p.path.segments[0].ident;
                            *e = parse_quote!(|#(#args),*| #func(#(#args),*));
                            return self.visit_expr_mut(e);
                        }
                        match &b.op {
                            Operand::Var(v) => {
                                let info = &self.l.vars[*v];
                                if info.active && !self.allow_active {
                                    self.errors.push(err(
                                            p.span(),
                                            format!(
                                                "`{name}` carries a gradient and cannot be used here; only constants and integer values can (casts, indices, loop bounds)"
                                            ),
                                        ));
                                }
                                let id = &info.ident;
                                *e = syn::parse_quote!(#id);
                                self.named.push(*v);
                            }
                            Operand::Const(c) => {
                                *e = syn::parse_quote!((#c));
                            }
                        }
                        return;
                    }
                }
                if let Expr::MethodCall(m) = e {
                    // `x.len()` reads the structure of `x`, not its numbers.
                    if m.args.is_empty()
                        && STRUCTURAL_METHODS.contains(&m.method.to_string().as_str())
                    {
                        let saved = std::mem::replace(&mut self.allow_active, true);
                        self.visit_expr_mut(&mut m.receiver);
                        self.allow_active = saved;
                        return;
                    }
                }
                if let Expr::Cast(c) = e {
                    // A cast drops the gradient: never of a value that carries one.
                    let saved = std::mem::replace(&mut self.allow_active, false);
                    self.visit_expr_mut(&mut c.expr);
                    self.allow_active = saved;
                    return;
                }
                if let Expr::Closure(c) = e {
                    // Constant code keeps its closures (`xs.iter().map(|x| ..)` in a
                    // condition); their parameters are renamed apart from the locals.
                    let mut pn = branches::PatNames {
                        names: Vec::new(),
                        wild: false,
                    };
                    for p in c.inputs.iter_mut() {
                        pn.visit_pat_mut(p);
                    }
                    branches::GuardNames(&pn.names).visit_expr_mut(&mut c.body);
                    self.visit_expr_mut(&mut c.body);
                    return;
                }
                syn::visit_mut::visit_expr_mut(self, e);
            }
            fn visit_item_mut(&mut self, _: &mut syn::Item) {}
        }
        let mut e = e.clone();
        let mut r = Renamer {
            l: self,
            scopes: None,
            allow_active,
            errors: Vec::new(),
            named: Vec::new(),
        };
        r.visit_expr_mut(&mut e);
        let (errs, named) = (r.errors, r.named);
        self.errors.extend(errs);
        self.named.extend(named);
        e.into_token_stream()
    }
}
