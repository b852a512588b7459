//! Checking kernel probe bodies: locals, map writes and aggregations, `if`, `printf`,
//! `delete`, `exit`; and keeping every map's key and value types consistent.

use mmql_lang::ast::{Block, Expr, ExprKind, MapRef, StmtKind, UpdateOp};
use mmql_lang::diag::{did_you_mean, Code, Diagnostic};
use mmql_lang::Span;
use mmql_stdlib::knowledge;

use super::expr::{poison, USER_FUNCTIONS};
use super::printf::check_printf;
use super::{Checker, MapSlot, Scope};
use crate::agg::{self, Agg, Param};
use crate::printf::Format;
use crate::program::*;
use crate::types::{Type, TypeDisplay};

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
                    self.report(
                        Diagnostic::error(
                            Code::E0111,
                            format!("`{n}` is already {what}"),
                        )
                        .at(name.span, "pick another name")
                        .with_help(format!("a `let` may not hide a field or builtin, so `{n}` means one thing throughout a probe")),
                    );
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
            let ty = super::a_type(&t.ty, &self.symtabs);
            self.report(
                Diagnostic::error(Code::E0204, format!("`{what}` needs a number"))
                    .at(e.span, format!("this is {ty}")),
            );
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
                self.report(
                    Diagnostic::error(Code::E0204, "`kstack` can only be a map key")
                        .at(value.span, "use `@m[kstack] = count()`"),
                );
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
            self.report(
                Diagnostic::error(
                    Code::E0203,
                    format!("`{f}` called with {} argument(s)", args.len()),
                )
                .at(value.span, row.usage),
            );
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
                        self.report(
                            Diagnostic::error(Code::E0213, *error)
                                .at(a.span, "not a constant")
                                .with_help(*example),
                        );
                        return None;
                    }
                },
            }
        }
        match (row.build)(&consts) {
            Ok(a) => Some((AggOp::Agg(operand), ValueKind::Agg(a))),
            Err((message, label)) => {
                self.report(Diagnostic::error(Code::E0213, message).at(value.span, label));
                None
            }
        }
    }

    fn map_keys(&mut self, m: &MapRef, scope: &mut Scope) -> Vec<TExpr> {
        if m.keys.len() > MAX_KEYS {
            self.report(
                Diagnostic::error(
                    Code::E0217,
                    format!(
                        "`{}` has {} keys; at most {MAX_KEYS}",
                        m.display_name(),
                        m.keys.len()
                    ),
                )
                .at(m.span, "too many keys"),
            );
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
        let Some(&id) = self.map_index.get(&name) else {
            let id = self.maps.len();
            self.maps.push(MapSlot {
                info: MapInfo {
                    name: name.clone(),
                    keys: key_types,
                    key_names,
                    value,
                    domain,
                    internal: false,
                    span: m.span,
                },
                defined_at: Some(span),
            });
            self.map_index.insert(name, id);
            return Some(id);
        };
        let slot = &self.maps[id];
        let def = slot.defined_at.unwrap_or(span);
        let old = &slot.info;
        if old.keys.len() != key_types.len()
            || !old
                .keys
                .iter()
                .zip(&key_types)
                .all(|(a, b)| compatible(a, b))
        {
            let was: Vec<String> = old
                .keys
                .iter()
                .map(|t| TypeDisplay(t, &self.symtabs).to_string())
                .collect();
            let now: Vec<String> = key_types
                .iter()
                .map(|t| TypeDisplay(t, &self.symtabs).to_string())
                .collect();
            self.report(
                Diagnostic::error(Code::E0205, format!("`{name}` is used with different keys"))
                    .at(m.span, format!("keys here: [{}]", now.join(", ")))
                    .also(def, format!("keys first: [{}]", was.join(", ")))
                    .with_help("use one map per key shape"),
            );
            return None;
        }
        let same_kind = match (&old.value, &value) {
            (ValueKind::Last(a), ValueKind::Last(b)) => compatible(a, b),
            (a, b) => a == b,
        };
        if !same_kind {
            self.report(
                Diagnostic::error(
                    Code::E0206,
                    format!(
                        "`{name}` holds a {} here but a {} elsewhere",
                        value.name(),
                        old.value.name()
                    ),
                )
                .at(span, format!("a {}", value.name()))
                .also(def, format!("a {}", old.value.name()))
                .with_help("use a separate map for each aggregation"),
            );
            return None;
        }
        // Widen string keys and values so every writer fits.
        let info = &mut self.maps[id].info;
        for (a, b) in info.keys.iter_mut().zip(&key_types) {
            widen(a, b);
        }
        if let (ValueKind::Last(a), ValueKind::Last(b)) = (&mut info.value, &value) {
            widen(a, b);
        }
        if info.domain != domain {
            info.domain = None;
        }
        if self.maps[id].defined_at.is_none() {
            self.maps[id].defined_at = Some(span);
        }
        Some(id)
    }

    pub(crate) fn map_read(&mut self, m: &MapRef, scope: &mut Scope) -> TExpr {
        let name = m.display_name();
        let keys = self.map_keys(m, scope);
        let Some(&id) = self.map_index.get(&name) else {
            if !self.silent {
                let help = did_you_mean(&name, self.map_index.keys().map(String::as_str));
                self.report(
                    Diagnostic::error(Code::E0216, format!("`{name}` is never written"))
                        .at(m.span, "read here")
                        .help_opt(help.or_else(|| {
                            Some(
                                "maps come to exist when a probe writes them: `@m[k] = ...`".into(),
                            )
                        })),
                );
            }
            return poison(m.span);
        };
        let info = &self.maps[id].info;
        let ValueKind::Last(ty) = &info.value else {
            let kind = info.value.name();
            self.report(
                Diagnostic::error(Code::E0211, format!("`{name}` is a {kind} aggregation; it can't be read inside an event probe"))
                    .at(m.span, "read here")
                    .with_help("aggregations are merged across CPUs in userspace: print them from `every` or `on end`"),
            );
            return poison(m.span);
        };
        let ty = ty.clone();
        if info.keys.len() != keys.len() {
            let n = info.keys.len();
            self.report(
                Diagnostic::error(
                    Code::E0205,
                    format!("`{name}` has {n} key(s), read with {}", keys.len()),
                )
                .at(m.span, "wrong key count"),
            );
            return poison(m.span);
        }
        TExpr {
            kind: TExprKind::MapRead { map: id, keys },
            ty,
            span: m.span,
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
                    self.report(
                        Diagnostic::error(Code::E0203, "`exit()` takes no arguments")
                            .at(e.span, "remove the arguments"),
                    );
                }
                Some(TStmt::Exit)
            }
            "delete" => {
                let [Expr {
                    node: ExprKind::Map(m),
                    ..
                }] = args.as_slice()
                else {
                    self.report(
                        Diagnostic::error(Code::E0204, "`delete` takes one map element")
                            .at(e.span, "e.g. `delete(@start[tid])`"),
                    );
                    return None;
                };
                let read = self.map_read(m, scope);
                let TExprKind::MapRead { map, keys } = read.kind else {
                    return None;
                };
                Some(TStmt::Delete { map, keys })
            }
            f if USER_FUNCTIONS.contains(&f) => {
                let help = if f == "time" {
                    // bpftrace habit: a timestamp per event. That is a printf of `nsecs`.
                    "to stamp each event, print its time: `printf(\"%s ...\\n\", strftime(\"%H:%M:%S\", nsecs))` (or `nsecs`, ns since boot); to print the time now and then, call `time()` from `every 5s { ... }`".to_string()
                } else {
                    format!("call it from `every 5s {{ {f}(...) }}` or `on end {{ ... }}`; maps are printed at exit anyway")
                };
                self.report(
                    Diagnostic::error(
                        Code::E0209,
                        format!("`{f}()` runs in userspace, not in an event probe"),
                    )
                    .at(e.span, "inside an event probe")
                    .with_help(help),
                );
                None
            }
            _ => {
                let v = self.expr(e, scope, None);
                if v.ty != Type::Void {
                    self.report(
                        Diagnostic::error(Code::E0207, "this value is computed and thrown away")
                            .at(e.span, "unused value"),
                    );
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
            self.report(
                Diagnostic::error(Code::E0204, "`printf` needs a format string first")
                    .at(fspan.to(span), "e.g. `printf(\"%d\\n\", pid)`"),
            );
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
        match check_printf(format, *fmt_span, &shown_types, &self.symtabs) {
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
