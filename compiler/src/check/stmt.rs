//! Checking kernel probe bodies: locals, map writes and aggregations, `if`, `printf`,
//! `delete`, `exit`; and keeping every map's key and value types consistent.

use mmql_lang::ast::{Block, Expr, ExprKind, MapRef, StmtKind, UpdateOp};
use mmql_lang::diag::did_you_mean;
use mmql_lang::Span;
use mmql_stdlib::knowledge;

use super::error::CheckError;
use super::expr::{poison, USER_FUNCTIONS};
use super::printf::check_printf;
use super::{Checker, MapSlot, Scope};
use crate::agg::{self, Agg, Param};
use crate::printf::Format;
use crate::program::*;
use crate::types::Type;

/// Most keys a map may have; each is a slot of the BPF map key.
pub const MAX_KEYS: usize = 8;

impl Checker<'_> {
    pub(crate) fn kernel_block(&mut self, block: &Block, scope: &mut Scope) -> Vec<TStmt> {
        let depth = scope.locals.len();
        let mut out = Vec::new();
        for s in &block.stmts {
            if let Some(t) = self.kernel_stmt(&s.node, s.span, scope) {
                out.push(t);
            }
        }
        scope.locals.truncate(depth);
        out
    }

    fn kernel_stmt(&mut self, s: &StmtKind, span: Span, scope: &mut Scope) -> Option<TStmt> {
        match s {
            StmtKind::Let { name, value } => {
                let n = name.node.as_str();
                let taken = if scope.event.is_some_and(|e| e.field(n).is_some()) {
                    Some(format!("a field of {}", scope.what))
                } else if Builtin::lookup(n).is_some() {
                    Some("a builtin".to_string())
                } else if matches!(n, "args" | "begin" | "current" | "duration") {
                    Some("reserved".to_string())
                } else {
                    None
                };
                if let Some(what) = taken {
                    self.report(CheckError::LetShadows {
                        name: n.to_string(),
                        span: name.span,
                        what,
                    });
                }
                let v = self.expr(value, scope, None);
                let id = scope.local_types.len();
                scope.local_types.push(v.ty.clone());
                scope.local_names.push(name.node.clone());
                scope.locals.push((name.node.clone(), id));
                Some(TStmt::Let {
                    local: id,
                    value: v,
                })
            }
            StmtKind::Assign { target, value } => {
                let keys = self.map_keys(target, scope);
                let (op, kind) = self.assigned_value(value, scope)?;
                let map = self.define_map(target, &keys, kind, span)?;
                Some(TStmt::Update {
                    map,
                    keys,
                    op,
                    span,
                })
            }
            StmtKind::Update { target, op, value } => {
                let keys = self.map_keys(target, scope);
                let v = match (op, value) {
                    (UpdateOp::Incr, _) => TExpr {
                        kind: TExprKind::Int(1),
                        ty: Type::I64,
                        span,
                    },
                    (UpdateOp::Decr, _) => TExpr {
                        kind: TExprKind::Int(-1),
                        ty: Type::I64,
                        span,
                    },
                    (UpdateOp::AddAssign, Some(v)) => self.number(v, scope, "+="),
                    (UpdateOp::SubAssign, Some(v)) => {
                        let inner = self.number(v, scope, "-=");
                        let vspan = inner.span;
                        TExpr {
                            kind: TExprKind::Unary(mmql_lang::ast::UnOp::Neg, Box::new(inner)),
                            ty: Type::I64,
                            span: vspan,
                        }
                    }
                    (_, None) => return None,
                };
                let map = self.define_map(target, &keys, ValueKind::Agg(Agg::Sum), span)?;
                Some(TStmt::Update {
                    map,
                    keys,
                    op: AggOp::Agg(Some(v)),
                    span,
                })
            }
            StmtKind::If { cond, then, els } => {
                let cond = self.condition(cond, scope);
                let then = self.kernel_block(then, scope);
                let els = els
                    .as_ref()
                    .map(|b| self.kernel_block(b, scope))
                    .unwrap_or_default();
                Some(TStmt::If { cond, then, els })
            }
            StmtKind::Expr(e) => self.kernel_call_stmt(e, scope),
        }
    }

    fn number(&mut self, e: &Expr, scope: &mut Scope, what: &str) -> TExpr {
        let t = self.expr(e, scope, None);
        if !(t.ty.is_integer_like() || t.ty == Type::Void) {
            self.report(CheckError::NeedsNumber {
                what: what.to_string(),
                span: e.span,
                ty: t.ty.clone(),
            });
            return poison(t.span);
        }
        t
    }

    /// The right side of `@m[k] = ...`: an aggregation call or a plain value.
    fn assigned_value(&mut self, value: &Expr, scope: &mut Scope) -> Option<(AggOp, ValueKind)> {
        let ExprKind::Call { func, args } = &value.node else {
            let v = self.expr(value, scope, None);
            if v.ty == Type::Stack {
                // Stacks are fine as keys; as values they would need a second lookup.
                self.report(CheckError::StackAsValue { span: value.span });
                return None;
            }
            let ty = v.ty.clone();
            return Some((AggOp::Assign(v), ValueKind::Last(ty)));
        };
        let f = func.node.as_str();
        let Some(row) = agg::lookup(f) else {
            let v = self.expr(value, scope, None);
            let ty = v.ty.clone();
            return Some((AggOp::Assign(v), ValueKind::Last(ty)));
        };
        if args.len() > row.params.len() || args.len() + row.optional < row.params.len() {
            self.report(CheckError::AggregationArity {
                name: f.to_string(),
                given: args.len(),
                span: value.span,
                usage: row.usage,
            });
            return None;
        }
        let mut operand = None;
        let mut consts = Vec::new();
        for (param, a) in row.params.iter().zip(args) {
            match param {
                Param::Value => operand = Some(self.number(a, scope, f)),
                Param::Const { error, example } => match constant(a) {
                    Some(c) => consts.push(c),
                    None => {
                        self.report(CheckError::NotConstant {
                            error,
                            example,
                            span: a.span,
                        });
                        return None;
                    }
                },
            }
        }
        match (row.build)(&consts) {
            Ok(a) => Some((AggOp::Agg(operand), ValueKind::Agg(a))),
            Err((message, label)) => {
                self.report(CheckError::AggregationRule {
                    message,
                    label,
                    span: value.span,
                });
                None
            }
        }
    }

    fn map_keys(&mut self, m: &MapRef, scope: &mut Scope) -> Vec<TExpr> {
        if m.keys.len() > MAX_KEYS {
            self.report(CheckError::TooManyKeys {
                name: m.display_name(),
                count: m.keys.len(),
                max: MAX_KEYS,
                span: m.span,
            });
        }
        m.keys
            .iter()
            .map(|k| {
                let t = self.expr(k, scope, None);
                if t.ty == Type::Bool {
                    TExpr {
                        ty: Type::Int {
                            signed: false,
                            bytes: 1,
                        },
                        ..t
                    }
                } else {
                    t
                }
            })
            .collect()
    }

    /// Records a write to a map; checks it against the map's earlier writes.
    fn define_map(
        &mut self,
        m: &MapRef,
        keys: &[TExpr],
        value: ValueKind,
        span: Span,
    ) -> Option<MapId> {
        let name = m.display_name();
        let key_types: Vec<Type> = keys.iter().map(|k| k.ty.clone()).collect();
        if key_types.contains(&Type::Void) || matches!(value, ValueKind::Last(Type::Void)) {
            return None;
        }
        let domain = match keys {
            [k] => key_domain(k, &self.symtabs),
            _ => None,
        };
        let key_names = keys
            .iter()
            .enumerate()
            .map(|(i, k)| key_name(k, i))
            .collect();
        // A map is defined by its first write.
        let id = self.declared_id(&name, span);
        let Some(slot) = &self.maps[id] else {
            self.maps[id] = Some(MapSlot {
                info: MapInfo {
                    name,
                    keys: key_types,
                    key_names,
                    value,
                    domain,
                    internal: false,
                    span: m.span,
                },
                defined_at: span,
            });
            return Some(id);
        };
        let def = slot.defined_at;
        let old = &slot.info;
        if old.keys.len() != key_types.len()
            || !old
                .keys
                .iter()
                .zip(&key_types)
                .all(|(a, b)| compatible(a, b))
        {
            let was = old.keys.clone();
            self.report(CheckError::KeysDiffer {
                name,
                now: key_types,
                was,
                span: m.span,
                first: def,
            });
            return None;
        }
        let same_kind = match (&old.value, &value) {
            (ValueKind::Last(a), ValueKind::Last(b)) => compatible(a, b),
            (a, b) => a == b,
        };
        if !same_kind {
            let was = old.value.name();
            self.report(CheckError::KindsDiffer {
                name,
                now: value.name(),
                was,
                span,
                first: def,
            });
            return None;
        }
        // Widen string keys and values so every writer fits.
        let Some(MapSlot { info, .. }) = self.maps[id].as_mut() else {
            return None;
        };
        for (a, b) in info.keys.iter_mut().zip(&key_types) {
            widen(a, b);
        }
        if let (ValueKind::Last(a), ValueKind::Last(b)) = (&mut info.value, &value) {
            widen(a, b);
        }
        if info.domain != domain {
            info.domain = None;
        }
        Some(id)
    }

    pub(crate) fn map_read(&mut self, m: &MapRef, scope: &mut Scope) -> TExpr {
        let name = m.display_name();
        let keys = self.map_keys(m, scope);
        let Some(&id) = self.map_index.get(&name) else {
            let suggestion = did_you_mean(&name, self.map_index.keys().map(String::as_str));
            self.report(CheckError::NeverWritten {
                name,
                span: m.span,
                suggestion,
                userspace: false,
            });
            return poison(m.span);
        };
        let (value, key_count) = match &self.maps[id] {
            Some(slot) => (Some(slot.info.value.clone()), slot.info.keys.len()),
            None => self.lookahead(id),
        };
        let ty = match value {
            Some(ValueKind::Last(ty)) => ty,
            Some(v) => {
                self.report(CheckError::AggregationRead {
                    name,
                    kind: v.name(),
                    span: m.span,
                });
                return poison(m.span);
            }
            None => {
                // The first write failed to check (reported there), or its value uses names
                // of its own probe that a read elsewhere cannot see yet.
                if let Some(&(first, _)) = self.first_writes.get(id) {
                    self.report(CheckError::ReadBeforeTyped {
                        name,
                        span: m.span,
                        first,
                    });
                }
                return poison(m.span);
            }
        };
        if key_count != keys.len() {
            self.report(CheckError::ReadKeyCount {
                name,
                keys: key_count,
                given: keys.len(),
                span: m.span,
            });
            return poison(m.span);
        }
        TExpr {
            kind: TExprKind::MapRead { map: id, keys },
            ty,
            span: m.span,
        }
    }

    /// The value kind and key count of a map read before its first write is checked (a read
    /// above the write in the same probe, or probes that read each other's maps): the first
    /// write's value, typed in its own event and thrown away (the write itself is checked,
    /// and reports, in its turn). `None` value when it does not type there.
    fn lookahead(&mut self, id: MapId) -> (Option<ValueKind>, usize) {
        let Some((_, Some(w))) = self.first_writes.get(id).cloned() else {
            return (None, 0);
        };
        let keys = w.target.keys.len();
        let agg = match &w.value {
            None => Some(Agg::Sum),
            Some(Expr {
                node: ExprKind::Call { func, args },
                ..
            }) => agg::lookup(&func.node).and_then(|row| {
                let consts: Vec<i64> = args.iter().filter_map(constant).collect();
                (row.build)(&consts).ok().or_else(|| (row.build)(&[]).ok())
            }),
            Some(_) => None,
        };
        if let Some(a) = agg {
            return (Some(ValueKind::Agg(a)), keys);
        }
        let catalog = self.catalog;
        let (Some(value), Some(event)) = (&w.value, catalog.get(&w.event.0, &w.event.1)) else {
            return (None, keys);
        };
        if self.looking_ahead.contains(&id) {
            return (None, keys);
        }
        let begin = w
            .begin
            .as_ref()
            .and_then(|b| catalog.get(&w.event.0, b))
            .map(|begin| super::SpanScope {
                begin,
                saved: vec![],
            });
        let mut scope = Scope::new(Some(event), begin, format!("{}:{}", w.event.0, w.event.1));
        let reported = self.diags.len();
        self.looking_ahead.push(id);
        for (name, e) in &w.lets {
            let t = self.expr(e, &mut scope, None);
            let local = scope.local_types.len();
            scope.local_types.push(t.ty);
            scope.local_names.push(name.clone());
            scope.locals.push((name.clone(), local));
        }
        let t = self.expr(value, &mut scope, None);
        self.looking_ahead.pop();
        self.diags.truncate(reported);
        match t.ty {
            Type::Void | Type::Stack => (None, keys),
            ty => (Some(ValueKind::Last(ty)), keys),
        }
    }

    fn kernel_call_stmt(&mut self, e: &Expr, scope: &mut Scope) -> Option<TStmt> {
        let ExprKind::Call { func, args } = &e.node else {
            return None;
        };
        match func.node.as_str() {
            "printf" => {
                let (format, targs, shown) = self.printf_args(func.span, args, e.span, scope)?;
                let types = targs.iter().map(|a| a.ty.clone()).collect();
                self.printfs.push(PrintfSpec {
                    format,
                    args: types,
                    shown,
                    span: e.span,
                });
                Some(TStmt::Printf {
                    id: self.printfs.len() - 1,
                    args: targs,
                })
            }
            "exit" => {
                if !args.is_empty() {
                    self.report(CheckError::ExitArgs { span: e.span });
                }
                Some(TStmt::Exit)
            }
            "delete" => {
                let [Expr {
                    node: ExprKind::Map(m),
                    ..
                }] = args.as_slice()
                else {
                    self.report(CheckError::DeleteShape { span: e.span });
                    return None;
                };
                let read = self.map_read(m, scope);
                let TExprKind::MapRead { map, keys } = read.kind else {
                    return None;
                };
                Some(TStmt::Delete { map, keys })
            }
            f if USER_FUNCTIONS.contains(&f) => {
                self.report(CheckError::UserFnInProbe {
                    name: f.to_string(),
                    span: e.span,
                });
                None
            }
            _ => {
                let v = self.expr(e, scope, None);
                if v.ty != Type::Void {
                    self.report(CheckError::UnusedValue { span: e.span });
                }
                None
            }
        }
    }

    pub(crate) fn printf_args(
        &mut self,
        fspan: Span,
        args: &[Expr],
        span: Span,
        scope: &mut Scope,
    ) -> Option<(Format, Vec<TExpr>, Vec<Shown>)> {
        let Some(Expr {
            node: ExprKind::Str(format),
            span: fmt_span,
        }) = args.first()
        else {
            self.report(CheckError::PrintfNeedsFormat {
                span: fspan.to(span),
            });
            return None;
        };
        // Printf-time functions (`zone_name(zone_start)`) send their value arguments as slots
        // and show their result; everything else is one slot shown as is.
        let mut targs: Vec<TExpr> = Vec::new();
        let mut shown = Vec::new();
        let mut shown_types = Vec::new();
        let mut failed = false;
        for a in &args[1..] {
            match &a.node {
                ExprKind::Call { func, args: cargs }
                    if super::userfn::is_printf_time(&func.node) =>
                {
                    let Some((f, values, ty)) =
                        self.printf_time_call(&func.node, cargs, a.span, scope)
                    else {
                        failed = true;
                        continue;
                    };
                    let slots = (targs.len()..targs.len() + values.len()).collect();
                    targs.extend(values);
                    shown.push(Shown::Call { func: f, slots });
                    shown_types.push((ty, a.span));
                }
                _ => {
                    let t = self.expr(a, scope, None);
                    failed |= t.ty == Type::Void;
                    shown.push(Shown::Slot(targs.len()));
                    shown_types.push((t.ty.clone(), t.span));
                    targs.push(t);
                }
            }
        }
        if failed {
            return None;
        }
        match check_printf(format, *fmt_span, &shown_types) {
            Ok(format) => Some((format, targs, shown)),
            Err(d) => {
                self.report(d);
                None
            }
        }
    }
}

/// The value of a constant expression (`10`, `-1`, `1 << 20`), if it is one.
pub(crate) fn constant(e: &Expr) -> Option<i64> {
    use mmql_lang::ast::{BinOp, UnOp};
    match &e.node {
        ExprKind::Int(n) => i64::try_from(*n).ok(),
        ExprKind::Unary(UnOp::Neg, inner) => constant(inner).map(i64::wrapping_neg),
        ExprKind::Binary(op, a, b) => {
            let (a, b) = (constant(a)?, constant(b)?);
            match op {
                BinOp::Add => a.checked_add(b),
                BinOp::Sub => a.checked_sub(b),
                BinOp::Mul => a.checked_mul(b),
                BinOp::Div => a.checked_div(b),
                BinOp::Shl => u32::try_from(b).ok().and_then(|b| a.checked_shl(b)),
                _ => None,
            }
        }
        _ => None,
    }
}

fn compatible(a: &Type, b: &Type) -> bool {
    match (a, b) {
        (Type::Str { .. }, Type::Str { .. }) => true,
        (Type::Int { .. } | Type::Bool, Type::Int { .. } | Type::Bool) => true,
        (a, b) => a == b,
    }
}

fn widen(into: &mut Type, other: &Type) {
    match (into, other) {
        (Type::Str { cap: a }, Type::Str { cap: b }) => *a = (*a).max(*b),
        (
            Type::Int {
                signed: s1,
                bytes: b1,
            },
            Type::Int {
                signed: s2,
                bytes: b2,
            },
        ) => {
            *s1 |= *s2;
            *b1 = (*b1).max(*b2);
        }
        _ => {}
    }
}

/// Slots a per-CPU array needs when this key can only take a few values.
fn key_domain(k: &TExpr, symtabs: &[crate::types::Symtab]) -> Option<u32> {
    match (&k.kind, &k.ty) {
        (_, Type::Bool) => Some(2),
        (_, Type::Enum(id)) => {
            let max = symtabs.get(*id)?.entries.iter().map(|&(v, _)| v).max()?;
            let min = symtabs.get(*id)?.entries.iter().map(|&(v, _)| v).min()?;
            (min >= 0 && max < 256).then_some(max as u32 + 1)
        }
        (TExprKind::Builtin(Builtin::Cpu), _) => Some(1024),
        _ => None,
    }
    .or_else(|| field_name(k).and_then(knowledge::small_domain))
}

fn field_name(k: &TExpr) -> Option<&str> {
    match &k.kind {
        TExprKind::Field(f) => Some(&f.name),
        _ => None,
    }
}

fn key_name(k: &TExpr, i: usize) -> String {
    match &k.kind {
        TExprKind::Builtin(b) => b.name().to_string(),
        TExprKind::Ksym(_) => "ksym".to_string(),
        TExprKind::Field(f) => f.name.clone(),
        _ => format!("key{}", i + 1),
    }
}
