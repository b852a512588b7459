//! Checking expressions: names (locals, fields, builtins, enum and flag names), operators,
//! and the calls that produce values. Errors yield a `Void`-typed placeholder so one mistake
//! does not cascade into many.

use mmql_lang::ast::{BinOp, Expr, ExprKind, UnOp};
use mmql_lang::diag::did_you_mean;
use mmql_lang::Span;

use super::error::CheckError;
use super::{field_ref, Checker, Scope};
use crate::format::{Event, Field, FieldKind};
use crate::program::*;
use crate::types::Type;

/// Longest string mmql copies out of a `__data_loc` field.
pub const DATA_LOC_CAP: u32 = 64;

pub(crate) const USER_FUNCTIONS: &[&str] = &["print", "clear", "zero", "time"];
pub(crate) const STATEMENT_FUNCTIONS: &[&str] = &["printf", "exit", "delete"];
pub(crate) const VALUE_FUNCTIONS: &[&str] = &["ksym"];

pub(crate) fn poison(span: Span) -> TExpr {
    TExpr {
        kind: TExprKind::Int(0),
        ty: Type::Void,
        span,
    }
}

fn all_functions() -> impl Iterator<Item = &'static str> {
    crate::agg::names()
        .chain(USER_FUNCTIONS.iter().copied())
        .chain(STATEMENT_FUNCTIONS.iter().copied())
        .chain(VALUE_FUNCTIONS.iter().copied())
        .chain(super::userfn::names())
}

impl Checker<'_> {
    pub(crate) fn condition(&mut self, e: &Expr, scope: &mut Scope) -> TExpr {
        let t = self.expr(e, scope, None);
        if !(t.ty.is_integer_like() || t.ty == Type::Void || t.ty == Type::Sym) {
            self.report(CheckError::ConditionType {
                span: e.span,
                ty: t.ty.clone(),
            });
        }
        t
    }

    pub(crate) fn expr(&mut self, e: &Expr, scope: &mut Scope, expect: Option<&Type>) -> TExpr {
        let span = e.span;
        match &e.node {
            ExprKind::Int(n) => {
                let ty = match expect {
                    Some(t @ (Type::Enum(_) | Type::Flags(_))) => {
                        let t = t.clone();
                        self.warn_number_for_name(*n as i64, &t, span);
                        Type::I64
                    }
                    _ => Type::I64,
                };
                TExpr {
                    kind: TExprKind::Int(*n as i64),
                    ty,
                    span,
                }
            }
            ExprKind::Str(s) => TExpr {
                kind: TExprKind::Str(s.clone()),
                ty: Type::Str {
                    cap: s.len() as u32 + 1,
                },
                span,
            },
            ExprKind::Bool(b) => TExpr {
                kind: TExprKind::Int(i64::from(*b)),
                ty: Type::Bool,
                span,
            },
            ExprKind::Name(n) => self.name(n, span, scope, expect),
            ExprKind::Qualified { base, field } => {
                self.qualified(&base.node, base.span, &field.node, field.span, span, scope)
            }
            ExprKind::Map(m) => self.map_read(m, scope),
            ExprKind::Unary(op, inner) => self.unary(*op, inner, span, scope),
            ExprKind::Binary(op, a, b) => self.binary(*op, a, b, span, scope, expect),
            ExprKind::Ternary(c, a, b) => {
                let c = self.condition(c, scope);
                let a = self.expr(a, scope, expect);
                let b = self.expr(
                    b,
                    scope,
                    Some(&a.ty).filter(|t| **t != Type::Void).or(expect),
                );
                let ty = match (&a.ty, &b.ty) {
                    (Type::Void, _) | (_, Type::Void) => Type::Void,
                    (Type::Str { cap: x }, Type::Str { cap: y }) => Type::Str { cap: (*x).max(*y) },
                    (x, y) if x == y => x.clone(),
                    (x, y) if x.is_integer_like() && y.is_integer_like() => Type::I64,
                    (x, y) => {
                        self.report(CheckError::BranchTypes {
                            a: (a.span, x.clone()),
                            b: (b.span, y.clone()),
                        });
                        Type::Void
                    }
                };
                TExpr {
                    kind: TExprKind::Ternary(Box::new(c), Box::new(a), Box::new(b)),
                    ty,
                    span,
                }
            }
            ExprKind::Call { func, args } => {
                self.value_call(&func.node, func.span, args, span, scope)
            }
        }
    }

    fn warn_number_for_name(&mut self, n: i64, ty: &Type, span: Span) {
        let (Type::Enum(id) | Type::Flags(id)) = ty else {
            return;
        };
        let Some(tab) = self.symtabs.get(*id) else {
            return;
        };
        let name = tab.render(n);
        if name != n.to_string() {
            self.report(CheckError::NumberHasName {
                number: n,
                name,
                span,
            });
        }
    }

    fn name(&mut self, n: &str, span: Span, scope: &mut Scope, expect: Option<&Type>) -> TExpr {
        if let Some(&(_, id)) = scope.locals.iter().rev().find(|(name, _)| name == n) {
            return TExpr {
                kind: TExprKind::Local(id),
                ty: scope.local_types[id].clone(),
                span,
            };
        }
        if let Some(t @ (Type::Enum(id) | Type::Flags(id))) = expect {
            if let Some(v) = self.symtabs.get(*id).and_then(|s| s.value_of(n)) {
                return TExpr {
                    kind: TExprKind::Int(v),
                    ty: t.clone(),
                    span,
                };
            }
        }
        let builtin = Builtin::lookup(n);
        if let Some(event) = scope.event {
            if let Some(f) = event.field(n) {
                if let Some(b) = builtin {
                    self.report(CheckError::FieldShadowsBuiltin {
                        name: n.to_string(),
                        span,
                        event: scope.what.clone(),
                        builtin: b.name(),
                    });
                    return poison(span);
                }
                return self.field_expr(event, f, span);
            }
        }
        if scope.span.is_some() && n == "duration" {
            return TExpr {
                kind: TExprKind::Duration,
                ty: Type::U64,
                span,
            };
        }
        if let Some(b) = builtin {
            if scope.event.is_none() {
                self.report(CheckError::BuiltinOutsideEvent {
                    name: n.to_string(),
                    span,
                });
                return poison(span);
            }
            return TExpr {
                kind: TExprKind::Builtin(b),
                ty: b.ty(),
                span,
            };
        }
        // A name of some enum, used where no enum is expected.
        if let Some(event) = scope.event {
            let owner = event.fields.iter().find(|f| match &f.symbols {
                Some(crate::format::Symbols::Enum(v)) => v.iter().any(|(_, s)| s == n),
                Some(crate::format::Symbols::Flags(v)) => v.iter().any(|(_, s)| s == n),
                None => false,
            });
            if let Some(f) = owner {
                self.report(CheckError::EnumNameAlone {
                    name: n.to_string(),
                    field: f.name.clone(),
                    flags: matches!(f.symbols, Some(crate::format::Symbols::Flags(_))),
                    span,
                });
                return poison(span);
            }
        }
        // bpftrace lets `@n = count` stand for `count()`; here a function is always called.
        if all_functions().any(|f| f == n) {
            self.report(CheckError::NotCalled {
                name: n.to_string(),
                aggregation: crate::agg::lookup(n).is_some(),
                span,
            });
            return poison(span);
        }
        if self.missing_from_some(n, span, scope) {
            return poison(span);
        }
        let mut candidates: Vec<&str> = scope.locals.iter().map(|(n, _)| n.as_str()).collect();
        if let Some(ev) = scope.event {
            candidates.extend(ev.fields.iter().map(|f| f.name.as_str()));
            candidates.extend(Builtin::ALL.iter().map(|(n, _)| *n));
        }
        if let Some(t @ (Type::Enum(id) | Type::Flags(id))) = expect {
            let names: Vec<String> = self
                .symtabs
                .get(*id)
                .map(|s| s.names().map(str::to_string).collect())
                .unwrap_or_default();
            self.report(CheckError::UnknownSymbol {
                name: n.to_string(),
                flags: matches!(t, Type::Flags(_)),
                span,
                suggestion: did_you_mean(n, names.iter().map(String::as_str)),
                known: names,
            });
            return poison(span);
        }
        self.report(CheckError::UnknownName {
            name: n.to_string(),
            span,
            event: scope.event.map(|_| scope.what.clone()),
            suggestion: did_you_mean(n, candidates.iter().copied()),
            fields: scope
                .event
                .map(|ev| ev.fields.iter().map(|f| f.name.clone()).collect())
                .unwrap_or_default(),
        });
        poison(span)
    }

    fn qualified(
        &mut self,
        base: &str,
        bspan: Span,
        field: &str,
        fspan: Span,
        span: Span,
        scope: &mut Scope,
    ) -> TExpr {
        match base {
            "args" => {
                let Some(event) = scope.event else {
                    self.report(CheckError::OutsideEvent {
                        name: "args",
                        span: bspan,
                    });
                    return poison(span);
                };
                match event.field(field) {
                    Some(f) => self.field_expr(event, f, span),
                    None if self.missing_from_some(field, fspan, scope) => poison(span),
                    None => self.unknown_field(event, field, fspan, &scope.what),
                }
            }
            "begin" => {
                let Some(sp) = scope.span.as_mut() else {
                    self.report(CheckError::BeginOutsideSpan { span: bspan });
                    return poison(span);
                };
                let begin = sp.begin;
                let Some(f) = begin.field(field) else {
                    let what = format!("{}:{}", begin.category, begin.name);
                    return self.unknown_field(begin, field, fspan, &what);
                };
                let ty = self.field_type(begin, f, fspan);
                if matches!(ty, Type::Str { .. } | Type::Void) {
                    self.report(CheckError::BeginStringField { span });
                    return poison(span);
                }
                let Some(sp) = scope.span.as_mut() else {
                    return poison(span);
                };
                let idx = match sp.saved.iter().position(|s| s.name == field) {
                    Some(i) => i,
                    None => {
                        sp.saved.push(SavedField {
                            name: field.to_string(),
                            field: field_ref(f),
                            ty: ty.clone(),
                        });
                        sp.saved.len() - 1
                    }
                };
                TExpr {
                    kind: TExprKind::BeginField(idx as u32),
                    ty,
                    span,
                }
            }
            "current" => match Builtin::lookup(field) {
                Some(b) if scope.event.is_some() => TExpr {
                    kind: TExprKind::Builtin(b),
                    ty: b.ty(),
                    span,
                },
                Some(_) => {
                    self.report(CheckError::OutsideEvent {
                        name: "current",
                        span: bspan,
                    });
                    poison(span)
                }
                None => {
                    self.report(CheckError::UnknownBuiltin {
                        name: field.to_string(),
                        span: fspan,
                        suggestion: did_you_mean(field, Builtin::ALL.iter().map(|(n, _)| *n)),
                    });
                    poison(span)
                }
            },
            other => {
                self.report(CheckError::UnknownQualifier {
                    name: other.to_string(),
                    span: bspan,
                });
                poison(span)
            }
        }
    }

    /// A probe over several events uses a field only some of them have: say so, rather than
    /// "unknown name", which reads as a typo. True when reported.
    fn missing_from_some(&mut self, n: &str, span: Span, scope: &Scope) -> bool {
        let Some(event) = scope.event else {
            return false;
        };
        let Some(owner) = self.probe_events.iter().find(|e| e.field(n).is_some()) else {
            return false;
        };
        self.report(CheckError::FieldMissingFromSome {
            name: n.to_string(),
            owner: format!("{}:{}", owner.category, owner.name),
            here: format!("{}:{}", event.category, event.name),
            span,
        });
        true
    }

    fn unknown_field(&mut self, event: &Event, field: &str, span: Span, what: &str) -> TExpr {
        let fields: Vec<String> = event.fields.iter().map(|f| f.name.clone()).collect();
        self.report(CheckError::UnknownField {
            event: what.to_string(),
            field: field.to_string(),
            span,
            suggestion: did_you_mean(field, fields.iter().map(String::as_str)),
            fields,
        });
        poison(span)
    }

    pub(crate) fn field_type(&mut self, event: &Event, f: &Field, span: Span) -> Type {
        match &f.kind {
            FieldKind::Int { is_bool: true } => Type::Bool,
            FieldKind::Int { .. } => match &f.symbols {
                Some(sym) => {
                    let origin = format!("{}:{}.{}", event.category, event.name, f.name);
                    let id = self.symtab(origin, sym);
                    if matches!(sym, crate::format::Symbols::Flags(_)) {
                        Type::Flags(id)
                    } else {
                        Type::Enum(id)
                    }
                }
                None => Type::Int {
                    signed: f.signed,
                    bytes: f.size.min(8) as u8,
                },
            },
            FieldKind::Pointer => Type::Int {
                signed: false,
                bytes: 8,
            },
            FieldKind::CharArray { len } => Type::Str { cap: *len },
            FieldKind::DataLocString => Type::Str { cap: DATA_LOC_CAP },
            FieldKind::Array { .. } | FieldKind::Unsupported => {
                self.report(CheckError::UnreadableField {
                    field: f.name.clone(),
                    c_type: f.c_type.clone(),
                    span,
                });
                Type::Void
            }
        }
    }

    fn field_expr(&mut self, event: &Event, f: &Field, span: Span) -> TExpr {
        let ty = self.field_type(event, f, span);
        if ty == Type::Void {
            return poison(span);
        }
        TExpr {
            kind: TExprKind::Field(field_ref(f)),
            ty,
            span,
        }
    }

    fn unary(&mut self, op: UnOp, inner: &Expr, span: Span, scope: &mut Scope) -> TExpr {
        let t = self.expr(inner, scope, None);
        if matches!(t.ty, Type::Str { .. } | Type::Stack) {
            self.report(CheckError::UnaryNeedsNumber {
                op: op.symbol(),
                span: inner.span,
            });
            return poison(span);
        }
        if let (UnOp::Neg, TExprKind::Int(n)) = (op, &t.kind) {
            return TExpr {
                kind: TExprKind::Int(n.wrapping_neg()),
                ty: Type::I64,
                span,
            };
        }
        let ty = match op {
            UnOp::Not => Type::Bool,
            UnOp::Neg => Type::I64,
            UnOp::BitNot => Type::U64,
        };
        TExpr {
            kind: TExprKind::Unary(op, Box::new(t)),
            ty,
            span,
        }
    }

    fn binary(
        &mut self,
        op: BinOp,
        a: &Expr,
        b: &Expr,
        span: Span,
        scope: &mut Scope,
        expect: Option<&Type>,
    ) -> TExpr {
        // `success == status`: let the side that knows its type go first.
        let swap = matches!(&a.node, ExprKind::Name(n) if !self.resolves_plainly(n, scope))
            && (op.is_comparison() || op == BinOp::Has);
        let (ta, tb) = if swap {
            let tb = self.expr(b, scope, None);
            let ta = self.expr(a, scope, Some(&tb.ty));
            (ta, tb)
        } else {
            let pass = if matches!(op, BinOp::BitOr | BinOp::BitAnd | BinOp::BitXor) {
                expect
            } else {
                None
            };
            let ta = self.expr(a, scope, pass);
            // `gfp_flags & __GFP_IO`: a flags field lends its names to the other operand.
            let bit_op = matches!(op, BinOp::BitOr | BinOp::BitAnd | BinOp::BitXor);
            let hint = if op.is_comparison()
                || op == BinOp::Has
                || pass.is_some()
                || bit_op && matches!(ta.ty, Type::Flags(_))
            {
                Some(ta.ty.clone())
            } else {
                None
            };
            let tb = self.expr(b, scope, hint.as_ref().filter(|t| **t != Type::Void));
            (ta, tb)
        };
        if ta.ty == Type::Void || tb.ty == Type::Void {
            return poison(span);
        }
        let is_str = |t: &Type| matches!(t, Type::Str { .. });
        let ty = match op {
            BinOp::Eq | BinOp::Ne if is_str(&ta.ty) || is_str(&tb.ty) => {
                let lit = |t: &TExpr| matches!(t.kind, TExprKind::Str(_));
                if !(is_str(&ta.ty) && is_str(&tb.ty)) {
                    return self.mismatch(op, &ta, &tb, span);
                }
                if !(lit(&ta) || lit(&tb)) {
                    self.report(CheckError::StringsNeedLiteral { span });
                    return poison(span);
                }
                Type::Bool
            }
            _ if op.is_comparison() && is_str(&ta.ty) && is_str(&tb.ty) => {
                self.report(CheckError::StringOrdering {
                    op: op.symbol(),
                    span,
                });
                return poison(span);
            }
            _ if is_str(&ta.ty)
                || is_str(&tb.ty)
                || ta.ty == Type::Stack
                || tb.ty == Type::Stack =>
            {
                return self.mismatch(op, &ta, &tb, span);
            }
            BinOp::Has => {
                if !matches!(ta.ty, Type::Flags(_) | Type::Int { .. }) {
                    return self.mismatch(op, &ta, &tb, span);
                }
                Type::Bool
            }
            BinOp::Div | BinOp::Mod if matches!(tb.kind, TExprKind::Int(0)) => {
                self.report(CheckError::DivisionByZero { span: b.span });
                return poison(span);
            }
            _ if op.is_comparison() || matches!(op, BinOp::And | BinOp::Or) => Type::Bool,
            BinOp::BitOr | BinOp::BitAnd | BinOp::BitXor
                if ta.ty == tb.ty && matches!(ta.ty, Type::Flags(_)) =>
            {
                ta.ty.clone()
            }
            _ => Type::Int {
                signed: ta.ty.is_signed() || tb.ty.is_signed(),
                bytes: 8,
            },
        };
        TExpr {
            kind: TExprKind::Binary(op, Box::new(ta), Box::new(tb)),
            ty,
            span,
        }
    }

    fn resolves_plainly(&self, n: &str, scope: &Scope) -> bool {
        scope.locals.iter().any(|(l, _)| l == n)
            || scope.event.is_some_and(|e| e.field(n).is_some())
            || Builtin::lookup(n).is_some()
            || (scope.span.is_some() && n == "duration")
    }

    fn mismatch(&mut self, op: BinOp, a: &TExpr, b: &TExpr, span: Span) -> TExpr {
        self.report(CheckError::OperandTypes {
            op,
            a: (a.span, a.ty.clone()),
            b: (b.span, b.ty.clone()),
        });
        poison(span)
    }

    fn value_call(
        &mut self,
        func: &str,
        fspan: Span,
        args: &[Expr],
        span: Span,
        scope: &mut Scope,
    ) -> TExpr {
        match func {
            "ksym" => {
                if args.len() != 1 {
                    self.report(CheckError::KsymArity { span });
                    return poison(span);
                }
                let a = self.expr(&args[0], scope, None);
                if !matches!(a.ty, Type::Int { .. } | Type::Void) {
                    self.report(CheckError::KsymNeedsAddress { span: args[0].span });
                    return poison(span);
                }
                TExpr {
                    kind: TExprKind::Ksym(Box::new(a)),
                    ty: Type::Sym,
                    span,
                }
            }
            f if super::userfn::is_printf_time(f) => {
                self.printf_time_misplaced(f, span);
                poison(span)
            }
            f if crate::agg::lookup(f).is_some() => {
                self.report(CheckError::AggregationAsValue {
                    name: f.to_string(),
                    span,
                });
                poison(span)
            }
            f if USER_FUNCTIONS.contains(&f) || STATEMENT_FUNCTIONS.contains(&f) => {
                self.report(CheckError::NoValue {
                    name: f.to_string(),
                    span,
                });
                poison(span)
            }
            f => {
                self.report(CheckError::UnknownFunction {
                    name: f.to_string(),
                    span: fspan,
                    suggestion: did_you_mean(f, all_functions()),
                    known: all_functions().map(str::to_string).collect(),
                });
                poison(span)
            }
        }
    }
}

/// The first few names of a list, for help lines.
pub(crate) fn preview(names: &[String]) -> String {
    const MAX: usize = 12;
    let mut s = names
        .iter()
        .take(MAX)
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > MAX {
        s.push_str(&format!(" and {} more", names.len() - MAX));
    }
    s
}
