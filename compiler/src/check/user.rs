//! Checking userspace blocks (`on begin`, `on end`, `every`, `after`): printing, clearing
//! and zeroing maps, printf of constants and scalar map values, `time`, `exit`.

use mmql_lang::ast::{Block, Expr, ExprKind, StmtKind};
use mmql_lang::diag::did_you_mean;

use super::error::CheckError;
use super::printf::parse_format;
use super::stmt::constant;
use super::Checker;
use crate::program::*;

impl Checker<'_> {
    pub(crate) fn user_block(&mut self, block: &Block, filter: Option<&Expr>) -> Vec<UStmt> {
        if let Some(f) = filter {
            self.report(CheckError::WhereOnUserBlock { span: f.span });
        }
        let mut out = Vec::new();
        for s in &block.stmts {
            match &s.node {
                StmtKind::Expr(e) => {
                    if let Some(u) = self.user_call(e) {
                        out.push(u);
                    }
                }
                _ => self.report(CheckError::UserBlockStatement { span: s.span }),
            }
        }
        out
    }

    fn user_map(&mut self, e: &Expr) -> Option<MapId> {
        let ExprKind::Map(m) = &e.node else {
            self.report(CheckError::ExpectedMap { span: e.span });
            return None;
        };
        let name = m.display_name();
        if !m.keys.is_empty() {
            self.report(CheckError::MapWithKeys { name, span: m.span });
            return None;
        }
        match self.map_index.get(&name) {
            Some(&id) => Some(id),
            None => {
                let suggestion = did_you_mean(&name, self.map_index.keys().map(String::as_str));
                self.report(CheckError::NeverWritten {
                    name,
                    span: m.span,
                    suggestion,
                    userspace: true,
                });
                None
            }
        }
    }

    fn user_call(&mut self, e: &Expr) -> Option<UStmt> {
        let ExprKind::Call { func, args } = &e.node else {
            return None;
        };
        let f = func.node.as_str();
        match (f, args.as_slice()) {
            ("print", [m]) => Some(UStmt::Print {
                map: self.user_map(m)?,
                top: None,
            }),
            ("print", [m, n]) => {
                let map = self.user_map(m)?;
                match constant(n) {
                    Some(top) if top > 0 => Some(UStmt::Print {
                        map,
                        top: Some(top as u64),
                    }),
                    _ => {
                        self.report(CheckError::PrintTop { span: n.span });
                        None
                    }
                }
            }
            ("clear", [m]) => Some(UStmt::Clear(self.user_map(m)?)),
            ("zero", [m]) => Some(UStmt::Zero(self.user_map(m)?)),
            ("exit", []) => Some(UStmt::Exit),
            ("time", []) => Some(UStmt::Time("%H:%M:%S\n".into())),
            (
                "time",
                [Expr {
                    node: ExprKind::Str(s),
                    ..
                }],
            ) => Some(UStmt::Time(s.clone())),
            (
                "printf",
                [Expr {
                    node: ExprKind::Str(fmt),
                    span: fspan,
                }, rest @ ..],
            ) => {
                let format = match parse_format(fmt, *fspan) {
                    Ok(f) => f,
                    Err(e) => {
                        self.report(e);
                        return None;
                    }
                };
                let n = format.conversions().count();
                if n != rest.len() {
                    self.report(CheckError::PrintfArgCount {
                        conversions: n,
                        args: rest.len(),
                        span: *fspan,
                        extra: rest.get(n).map(|a| a.span),
                    });
                    return None;
                }
                let mut uargs = Vec::new();
                for a in rest {
                    uargs.push(match &a.node {
                        ExprKind::Str(s) => UArg::Str(s.clone()),
                        ExprKind::Map(_) => {
                            let id = self.user_map(a)?;
                            let keyed = match &self.maps[id] {
                                Some(slot) => !slot.info.keys.is_empty(),
                                None => self
                                    .first_writes
                                    .get(id)
                                    .and_then(|w| w.1.as_ref())
                                    .is_some_and(|w| !w.target.keys.is_empty()),
                            };
                            if keyed {
                                self.report(CheckError::UserPrintfKeyedMap { span: a.span });
                                return None;
                            }
                            UArg::MapValue(id)
                        }
                        _ => match constant(a) {
                            Some(c) => UArg::Int(c),
                            None => {
                                self.report(CheckError::UserPrintfArg { span: a.span });
                                return None;
                            }
                        },
                    });
                }
                Some(UStmt::Printf {
                    format,
                    args: uargs,
                })
            }
            (name @ ("print" | "clear" | "zero" | "exit" | "time" | "printf"), _) => {
                self.report(CheckError::UserWrongArgs {
                    name: name.to_string(),
                    span: e.span,
                    usage: usage(name),
                });
                None
            }
            ("delete", _) | ("ksym", _) => {
                self.report(CheckError::ProbeOnly {
                    name: f.to_string(),
                    span: e.span,
                });
                None
            }
            _ => {
                self.report(CheckError::NotInUserspace {
                    name: f.to_string(),
                    span: func.span,
                    suggestion: did_you_mean(
                        f,
                        ["print", "clear", "zero", "printf", "time", "exit"],
                    ),
                    aggregation: crate::agg::lookup(f).is_some(),
                });
                None
            }
        }
    }
}

fn usage(name: &str) -> &'static str {
    match name {
        "print" => "print(@map) or print(@map, TOP_N)",
        "clear" => "clear(@map)",
        "zero" => "zero(@map)",
        "exit" => "exit()",
        "time" => "time() or time(\"%H:%M:%S \")",
        _ => "printf(\"format\", args...)",
    }
}
