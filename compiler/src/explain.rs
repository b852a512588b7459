//! `mmql explain`: the checked program as readable text: probes with their resolved events,
//! maps with key and value types, per-probe actions, userspace blocks, printf formats.
//! Golden tests pin this text, so it holds no addresses, ids or kernel versions.

use std::fmt::Write;

use mmql_lang::ast::BinOp;

use crate::agg::Agg;
use crate::program::*;
use crate::types::{Type, TypeDisplay};

pub fn explain(p: &Program) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "probes:");
    for k in &p.probes {
        probe(w, p, k);
    }
    if p.probes.is_empty() {
        let _ = writeln!(w, "  (none)");
    }
    let _ = writeln!(w, "maps:");
    let mut any = false;
    for m in &p.maps {
        any = true;
        let keys: Vec<String> = m
            .keys
            .iter()
            .map(|t| TypeDisplay(t, &p.symtabs).to_string())
            .collect();
        let value = match &m.value {
            ValueKind::Last(t) => format!("value {}", TypeDisplay(t, &p.symtabs)),
            ValueKind::Agg(Agg::Lhist { lo, hi, step }) => format!("lhist {lo}..{hi} step {step}"),
            ValueKind::Agg(Agg::Heatmap { slice }) => {
                format!(
                    "heatmap, log2 buckets per {} slice",
                    duration_text(*slice as u64)
                )
            }
            ValueKind::SpanState { saved } => {
                format!("span state: start time + {saved} saved field(s)")
            }
            v => v.name().to_string(),
        };
        // A span's state map is keyed the way its begin probe pairs events.
        let span_key = p.probes.iter().find_map(|k| match &k.role {
            ProbeRole::SpanBegin { state, key, .. } if p.maps[*state].name == m.name => Some(key),
            _ => None,
        });
        let keys = if let Some(key) = span_key {
            format!("keyed {}", key_text(key))
        } else if m.internal {
            "keyed by thread or node".to_string()
        } else if keys.is_empty() {
            "no key".to_string()
        } else {
            format!("key [{}]", keys.join(", "))
        };
        let domain = m.domain.map(|d| format!(", {d} slots")).unwrap_or_default();
        let _ = writeln!(w, "  {}: {value}; {keys}{domain}", m.name);
    }
    if !any {
        let _ = writeln!(w, "  (none)");
    }
    if !p.begin.is_empty() {
        let _ = writeln!(w, "on begin (userspace):");
        ustmts(w, p, &p.begin);
    }
    for t in &p.timers {
        let _ = writeln!(
            w,
            "{} {} (userspace):",
            if t.repeat { "every" } else { "after" },
            duration_text(t.nanos)
        );
        ustmts(w, p, &t.body);
    }
    if !p.end.is_empty() {
        let _ = writeln!(w, "on end (userspace):");
        ustmts(w, p, &p.end);
    }
    let _ = writeln!(w, "at exit: print every non-empty map");
    out
}

fn probe(w: &mut String, p: &Program, k: &KProbe) {
    let head = format!("{}:{}", k.category, k.event);
    match &k.role {
        ProbeRole::Plain => {
            let _ = writeln!(w, "  on {head}");
        }
        ProbeRole::SpanBegin { state, key, saved } => {
            let names: Vec<&str> = saved.iter().map(|s| s.name.as_str()).collect();
            let _ = writeln!(w, "  on {head} (span begin, paired {})", key_text(key));
            let mut what = String::from("nsecs");
            for n in names {
                what.push_str(", ");
                what.push_str(n);
            }
            let _ = writeln!(w, "    save {what} in {}", p.maps[*state].name);
            return;
        }
        ProbeRole::SpanEnd {
            state,
            key,
            begin_event,
        } => {
            let _ = writeln!(
                w,
                "  on {head} (span end of {begin_event}, paired {})",
                key_text(key)
            );
            let _ = writeln!(
                w,
                "    find and delete {}; skip when absent; duration = nsecs - start",
                p.maps[*state].name
            );
        }
    }
    let cx = Cx { p, k };
    if let Some(f) = &k.filter {
        let _ = writeln!(w, "    where {}", cx.expr(f));
    }
    for (name, ty) in &k.locals {
        let _ = writeln!(w, "    local {name}: {}", TypeDisplay(ty, &p.symtabs));
    }
    cx.stmts(w, &k.body, 4);
}

fn key_text(k: &SpanKeyExpr) -> String {
    match k {
        SpanKeyExpr::Thread => "per thread".to_string(),
        SpanKeyExpr::Field { name, .. } => format!("per `{name}`"),
    }
}

/// A nanosecond count in the largest unit that divides it: `5s`, `100ms`, `1500us`.
pub fn duration_text(ns: u64) -> String {
    for (unit, div) in [
        ("h", 3_600_000_000_000u64),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
    ] {
        if ns % div == 0 {
            return format!("{}{unit}", ns / div);
        }
    }
    format!("{ns}ns")
}

fn ustmts(w: &mut String, p: &Program, body: &[UStmt]) {
    for s in body {
        let text = match s {
            UStmt::Print { map, top: None } => format!("print({})", p.maps[*map].name),
            UStmt::Print { map, top: Some(n) } => format!("print({}, {n})", p.maps[*map].name),
            UStmt::Clear(m) => format!("clear({})", p.maps[*m].name),
            UStmt::Zero(m) => format!("zero({})", p.maps[*m].name),
            UStmt::Exit => "exit()".to_string(),
            UStmt::Time(f) => format!("time({f:?})"),
            UStmt::Printf { format, args } => {
                let mut s = format!("printf({:?}", format.text);
                for a in args {
                    s.push_str(", ");
                    match a {
                        UArg::Int(n) => s.push_str(&n.to_string()),
                        UArg::Str(t) => s.push_str(&format!("{t:?}")),
                        UArg::MapValue(m) => s.push_str(&p.maps[*m].name),
                    }
                }
                s + ")"
            }
        };
        let _ = writeln!(w, "  {text}");
    }
}

struct Cx<'a> {
    p: &'a Program,
    k: &'a KProbe,
}

impl Cx<'_> {
    fn stmts(&self, w: &mut String, body: &[TStmt], indent: usize) {
        let pad = " ".repeat(indent);
        for s in body {
            match s {
                TStmt::Let { local, value } => {
                    let name = self.k.locals.get(*local).map_or("?", |(n, _)| n.as_str());
                    let _ = writeln!(w, "{pad}let {name} = {}", self.expr(value));
                }
                TStmt::Update { map, keys, op, .. } => {
                    let target = self.map_ref(*map, keys);
                    let rhs = match op {
                        AggOp::Agg(operand) => {
                            let value = &self.p.maps[*map].value;
                            let mut args: Vec<String> =
                                operand.iter().map(|e| self.expr(e)).collect();
                            let consts = value.agg().map(Agg::constants).unwrap_or_default();
                            args.extend(consts.iter().map(i64::to_string));
                            format!("{}({})", value.name(), args.join(", "))
                        }
                        AggOp::Assign(e) => self.expr(e),
                    };
                    let _ = writeln!(w, "{pad}{target} = {rhs}");
                }
                TStmt::Delete { map, keys } => {
                    let _ = writeln!(w, "{pad}delete({})", self.map_ref(*map, keys));
                }
                TStmt::If { cond, then, els } => {
                    let _ = writeln!(w, "{pad}if {} {{", self.expr(cond));
                    self.stmts(w, then, indent + 2);
                    if !els.is_empty() {
                        let _ = writeln!(w, "{pad}}} else {{");
                        self.stmts(w, els, indent + 2);
                    }
                    let _ = writeln!(w, "{pad}}}");
                }
                TStmt::Printf { id, args } => {
                    let spec = &self.p.printfs[*id];
                    let mut s = format!("printf({:?}", spec.format.text);
                    for shown in &spec.shown {
                        s.push_str(", ");
                        s.push_str(&self.shown(shown, args));
                    }
                    let _ = writeln!(w, "{pad}{s}) -> ring buffer record #{id}");
                }
                TStmt::Exit => {
                    let _ = writeln!(w, "{pad}exit() -> ring buffer record");
                }
            }
        }
    }

    /// A printf argument as written; printf-time functions are marked as evaluated when the
    /// record is printed, since their value never exists in the kernel.
    fn shown(&self, shown: &Shown, args: &[TExpr]) -> String {
        let slot = |i: &usize| {
            args.get(*i)
                .map_or_else(|| format!("slot{i}"), |a| self.expr(a))
        };
        match shown {
            Shown::Slot(i) => slot(i),
            Shown::Call { func, slots } => {
                let vals: Vec<String> = slots.iter().map(slot).collect();
                let (name, text) = match func {
                    UserFn::ZoneNode => ("zone_node", vals.join(", ")),
                    UserFn::ZoneName => ("zone_name", vals.join(", ")),
                    UserFn::FragIndex => ("fragindex", vals.join(", ")),
                    UserFn::ZoneInfo(key) => ("zoneinfo", format!("{}, {key:?}", vals.join(", "))),
                    UserFn::Strftime(fmt) => ("strftime", format!("{fmt:?}, {}", vals.join(", "))),
                };
                format!("{name}({text})@print")
            }
        }
    }

    fn map_ref(&self, map: MapId, keys: &[TExpr]) -> String {
        let name = &self.p.maps[map].name;
        if keys.is_empty() {
            return name.clone();
        }
        let ks: Vec<String> = keys.iter().map(|k| self.expr(k)).collect();
        format!("{name}[{}]", ks.join(", "))
    }

    /// Source-like text with the types that matter spelled out: fields show their record
    /// offset and size, enum constants their number.
    fn expr(&self, e: &TExpr) -> String {
        match &e.kind {
            TExprKind::Int(n) => match &e.ty {
                Type::Enum(id) | Type::Flags(id) => {
                    let name = self
                        .p
                        .symtabs
                        .get(*id)
                        .map_or_else(|| n.to_string(), |s| s.render(*n));
                    format!("{name}({n})")
                }
                Type::Bool => (*n != 0).to_string(),
                _ => n.to_string(),
            },
            TExprKind::Str(s) => format!("{s:?}"),
            TExprKind::Field(f) => {
                let how = match f.kind {
                    FieldAccess::Int => {
                        format!("{}{}", if f.signed { "s" } else { "u" }, f.size * 8)
                    }
                    FieldAccess::CharArray { len } => format!("char[{len}]"),
                    FieldAccess::DataLoc => "data_loc str".to_string(),
                };
                format!("{}<{how}@{}>", f.name, f.offset)
            }
            TExprKind::BeginField(i) => {
                let name = match &self.k.role {
                    ProbeRole::SpanEnd { .. } => self.begin_field_name(*i),
                    _ => format!("#{i}"),
                };
                format!("begin.{name}")
            }
            TExprKind::Duration => "duration".to_string(),
            TExprKind::Builtin(b) => b.name().to_string(),
            TExprKind::Local(id) => self
                .k
                .locals
                .get(*id)
                .map_or_else(|| format!("local{id}"), |(n, _)| n.clone()),
            TExprKind::MapRead { map, keys } => self.map_ref(*map, keys),
            TExprKind::Unary(op, a) => format!("{}{}", op.symbol(), self.expr(a)),
            TExprKind::Binary(op, a, b) => {
                let sym = if *op == BinOp::Has {
                    "has"
                } else {
                    op.symbol()
                };
                format!("({} {sym} {})", self.expr(a), self.expr(b))
            }
            TExprKind::Ternary(c, a, b) => {
                format!("({} ? {} : {})", self.expr(c), self.expr(a), self.expr(b))
            }
            TExprKind::Ksym(a) => format!("ksym({})", self.expr(a)),
        }
    }

    fn begin_field_name(&self, i: u32) -> String {
        // The begin probe sits right before its end probe and owns the saved list.
        self.p
            .probes
            .iter()
            .find_map(|k| match &k.role {
                ProbeRole::SpanBegin { saved, .. } if k.source_index == self.k.source_index => {
                    saved.get(i as usize).map(|s| s.name.clone())
                }
                _ => None,
            })
            .unwrap_or_else(|| format!("#{i}"))
    }
}
