//! Checking userspace blocks (`on begin`, `on end`, `every`, `after`): printing, clearing
//! and zeroing maps, printf of constants and scalar map values, `time`, `exit`.

use mmql_lang::ast::{Block, Expr, ExprKind, StmtKind};
use mmql_lang::diag::{did_you_mean, Code, Diagnostic};

use super::printf::parse_format;
use super::stmt::constant;
use super::Checker;
use crate::program::*;

impl Checker<'_> {
    pub(crate) fn user_block(&mut self, block: &Block, filter: Option<&Expr>) -> Vec<UStmt> {
        if let Some(f) = filter {
            self.report(
                Diagnostic::error(Code::E0010, "only event probes take `where`")
                    .at(f.span, "no event to filter"),
            );
        }
        let mut out = Vec::new();
        for s in &block.stmts {
            match &s.node {
                StmtKind::Expr(e) => {
                    if let Some(u) = self.user_call(e) {
                        out.push(u);
                    }
                }
                _ => self.report(
                    Diagnostic::error(Code::E0210, "this block runs in userspace: it can only print, clear, zero, printf, time and exit")
                        .at(s.span, "not allowed here")
                        .with_help("maps are written by event probes (`on CATEGORY:NAME { ... }`)"),
                ),
            }
        }
        out
    }

    fn user_map(&mut self, e: &Expr) -> Option<MapId> {
        let ExprKind::Map(m) = &e.node else {
            self.report(
                Diagnostic::error(Code::E0204, "expected a map").at(e.span, "e.g. `@orders`"),
            );
            return None;
        };
        let name = m.display_name();
        if !m.keys.is_empty() {
            self.report(
                Diagnostic::error(Code::E0204, "give the whole map, without keys")
                    .at(m.span, format!("write `{name}`")),
            );
            return None;
        }
        match self.map_index.get(&name) {
            Some(&id) => Some(id),
            None => {
                let help = did_you_mean(&name, self.map_index.keys().map(String::as_str));
                self.report(
                    Diagnostic::error(Code::E0216, format!("`{name}` is never written"))
                        .at(m.span, "no probe writes this map")
                        .help_opt(help),
                );
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
                        self.report(
                            Diagnostic::error(
                                Code::E0213,
                                "the top-N of `print` must be a positive constant",
                            )
                            .at(n.span, "e.g. `print(@m, 10)`"),
                        );
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
                    Err(d) => {
                        self.report(d);
                        return None;
                    }
                };
                let n = format.conversions().count();
                if n != rest.len() {
                    self.report(
                        Diagnostic::error(
                            Code::E0208,
                            format!(
                                "the format has {} conversion(s) but {} argument(s) follow",
                                n,
                                rest.len()
                            ),
                        )
                        .at(*fspan, "here"),
                    );
                    return None;
                }
                let mut uargs = Vec::new();
                for a in rest {
                    uargs.push(match &a.node {
                        ExprKind::Str(s) => UArg::Str(s.clone()),
                        ExprKind::Map(_) => {
                            let id = self.user_map(a)?;
                            if !self.maps[id].info.keys.is_empty() {
                                self.report(Diagnostic::error(Code::E0204, "only a map without keys has a single value to print").at(a.span, "a keyed map"));
                                return None;
                            }
                            UArg::MapValue(id)
                        }
                        _ => match constant(a) {
                            Some(c) => UArg::Int(c),
                            None => {
                                self.report(
                                    Diagnostic::error(Code::E0210, "userspace printf takes constants and maps without keys")
                                        .at(a.span, "not available in userspace"),
                                );
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
                self.report(
                    Diagnostic::error(Code::E0203, format!("wrong arguments to `{name}`"))
                        .at(e.span, usage(name)),
                );
                None
            }
            ("delete", _) | ("ksym", _) => {
                self.report(
                    Diagnostic::error(
                        Code::E0210,
                        format!("`{f}` only works inside an event probe"),
                    )
                    .at(e.span, "in a userspace block"),
                );
                None
            }
            _ => {
                let help = did_you_mean(f, ["print", "clear", "zero", "printf", "time", "exit"]);
                let code = if crate::agg::lookup(f).is_some() {
                    Code::E0210
                } else {
                    Code::E0106
                };
                self.report(
                    Diagnostic::error(code, format!("`{f}` cannot be called in a userspace block"))
                        .at(func.span, "not available here")
                        .help_opt(help),
                );
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
