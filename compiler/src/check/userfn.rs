//! Checking printf-time functions: a call such as `zone_name(zone_start)` in a printf's
//! arguments (AST) → the record slots the kernel must send and the `UserFn` the runtime
//! evaluates when it prints the record (program). One table holds the whole family.
//!
//! Why a separate family: some answers are not in any tracepoint record — which zone a pfn
//! belongs to, the zone's watermarks, its fragmentation index, the wall-clock time of an
//! event — but the runtime can read them from /proc and debugfs when it prints the line. The
//! kernel side stays unchanged: it sends integer slots like any printf argument.

use mmql_lang::ast::{Expr, ExprKind};
use mmql_lang::Span;

use super::error::CheckError;
use super::{Checker, Scope};
use crate::program::{TExpr, UserFn};
use crate::types::Type;

/// What one parameter takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Param {
    /// Any integer expression of the event: sent in the record.
    Value,
    /// A string literal, fixed when the script is checked.
    Const,
}

/// One printf-time function: name, parameters, the type its result has for printf, and what
/// it means (the help line of its errors).
struct Row {
    name: &'static str,
    params: &'static [Param],
    result: Type,
    usage: &'static str,
}

use Param::{Const, Value};

const ROWS: &[Row] = &[
    Row {
        name: "zone_node",
        params: &[Value],
        result: Type::I64,
        usage: "`zone_node(zone_start)`: the NUMA node of the zone whose first pfn is `zone_start`",
    },
    Row {
        name: "zone_name",
        params: &[Value],
        result: Type::Str { cap: 16 },
        usage: "`zone_name(zone_start)`: `ZONE_NORMAL`, `ZONE_DMA32`, … of the zone whose first pfn is `zone_start`",
    },
    Row {
        name: "zoneinfo",
        params: &[Value, Const],
        result: Type::I64,
        usage: "`zoneinfo(zone_start, \"min\")`: a number of the zone's /proc/zoneinfo block: \"min\", \"low\", \"high\", \"free\", \"managed\", \"nr_…\"",
    },
    Row {
        name: "fragindex",
        params: &[Value, Value],
        result: Type::Str { cap: 8 },
        usage: "`fragindex(zone_start, order)`: the zone's fragmentation index for `order` (`0.000`..`1.000`, `-1.000` when the allocation would succeed)",
    },
    Row {
        name: "strftime",
        params: &[Const, Value],
        result: Type::Str { cap: 64 },
        usage: "`strftime(\"%H:%M:%S\", nsecs)`: the wall-clock time of a `nsecs` value; `%f` adds microseconds",
    },
];

/// Whether `name` is a printf-time function.
pub(crate) fn is_printf_time(name: &str) -> bool {
    ROWS.iter().any(|r| r.name == name)
}

pub(crate) fn names() -> impl Iterator<Item = &'static str> {
    ROWS.iter().map(|r| r.name)
}

/// The usage line of a printf-time function, for errors that find one outside printf.
pub(crate) fn usage(name: &str) -> &'static str {
    ROWS.iter().find(|r| r.name == name).map_or("", |r| r.usage)
}

/// Keys `zoneinfo` accepts besides the `nr_*` counters: the zone's own lines. `free` is the
/// `pages free` line.
const ZONEINFO_KEYS: &[&str] = &[
    "free", "boost", "min", "low", "high", "promo", "spanned", "present", "managed", "cma",
];

impl Checker<'_> {
    /// Checks a printf-time call. Returns the function, the value arguments (to become record
    /// slots) and the type printf sees; None after reporting an error.
    pub(crate) fn printf_time_call(
        &mut self,
        name: &str,
        args: &[Expr],
        span: Span,
        scope: &mut Scope,
    ) -> Option<(UserFn, Vec<TExpr>, Type)> {
        let row = ROWS.iter().find(|r| r.name == name)?;
        if args.len() != row.params.len() {
            self.report(CheckError::PrintfTimeArity {
                name: name.to_string(),
                want: row.params.len(),
                given: args.len(),
                span,
                usage: row.usage,
            });
            return None;
        }
        let mut values = Vec::new();
        let mut consts = Vec::new();
        let mut ok = true;
        for (p, a) in row.params.iter().zip(args) {
            match p {
                Param::Const => match &a.node {
                    ExprKind::Str(s) => consts.push(s.clone()),
                    _ => {
                        self.report(CheckError::PrintfTimeNotLiteral {
                            name: name.to_string(),
                            span: a.span,
                            usage: row.usage,
                        });
                        ok = false;
                    }
                },
                Param::Value => {
                    let t = self.expr(a, scope, None);
                    if t.ty == Type::Void {
                        ok = false;
                    } else if !t.ty.is_integer_like() {
                        self.report(CheckError::PrintfTimeNotInteger {
                            name: name.to_string(),
                            span: a.span,
                            ty: t.ty.clone(),
                            usage: row.usage,
                        });
                        ok = false;
                    }
                    values.push(t);
                }
            }
        }
        if !ok {
            return None;
        }
        let first = consts.first().cloned().unwrap_or_default();
        let func = match name {
            "zone_node" => UserFn::ZoneNode,
            "zone_name" => UserFn::ZoneName,
            "fragindex" => UserFn::FragIndex,
            "zoneinfo" => {
                if !(ZONEINFO_KEYS.contains(&first.as_str()) || valid_counter(&first)) {
                    self.report(CheckError::ZoneinfoKey {
                        suggestion: mmql_lang::diag::did_you_mean(
                            &first,
                            ZONEINFO_KEYS.iter().copied(),
                        ),
                        key: first,
                        span: args[1].span,
                    });
                    return None;
                }
                UserFn::ZoneInfo(first)
            }
            _ => UserFn::Strftime(first),
        };
        Some((func, values, row.result.clone()))
    }

    /// A printf-time function met outside printf's arguments.
    pub(crate) fn printf_time_misplaced(&mut self, name: &str, span: Span) {
        self.report(CheckError::PrintfTimeMisplaced {
            name: name.to_string(),
            span,
            usage: usage(name),
        });
    }
}

/// `nr_free_pages`, `nr_zone_inactive_file`, …: lowercase words after `nr_`.
fn valid_counter(key: &str) -> bool {
    key.strip_prefix("nr_").is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        for r in ROWS {
            assert!(is_printf_time(r.name));
            assert!(
                r.usage.contains(r.name),
                "{}: usage names the function",
                r.name
            );
            assert!(!r.params.is_empty());
        }
        assert!(!is_printf_time("ksym"));
    }

    #[test]
    fn counters() {
        assert!(valid_counter("nr_free_pages"));
        assert!(!valid_counter("nr_"));
        assert!(!valid_counter("Nr_free"));
        assert!(!valid_counter("free"));
    }
}
