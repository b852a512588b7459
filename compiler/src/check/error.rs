//! Checking errors: what the checker found, as data ([`CheckError`]), and the one place that
//! words each as a diagnostic (code, message, labels, help). The checking logic decides
//! *what* is wrong and where; this file decides how it reads.

use mmql_lang::ast::BinOp;
use mmql_lang::diag::{Code, Diagnostic};
use mmql_lang::Span;

use super::a_type;
use super::expr::preview;
use crate::types::{Symtab, Type, TypeDisplay};

pub(crate) enum CheckError {
    // Probes and blocks.
    SecondBeginEnd {
        span: Span,
        first: Span,
    },
    IntervalTooShort {
        span: Span,
    },
    SpanWithOtherEvents {
        span: Span,
    },
    WhereOnUserBlock {
        span: Span,
    },
    UserBlockStatement {
        span: Span,
    },
    // Names, fields and builtins.
    LetShadows {
        name: String,
        span: Span,
        what: String,
    },
    FieldShadowsBuiltin {
        name: String,
        span: Span,
        event: String,
        builtin: &'static str,
    },
    OutsideEvent {
        name: &'static str,
        span: Span,
    },
    BuiltinOutsideEvent {
        name: String,
        span: Span,
    },
    BeginOutsideSpan {
        span: Span,
    },
    BeginStringField {
        span: Span,
    },
    EnumNameAlone {
        name: String,
        field: String,
        flags: bool,
        span: Span,
    },
    UnknownSymbol {
        name: String,
        flags: bool,
        span: Span,
        suggestion: Option<String>,
        known: Vec<String>,
    },
    UnknownName {
        name: String,
        span: Span,
        event: Option<String>,
        suggestion: Option<String>,
        fields: Vec<String>,
    },
    UnknownBuiltin {
        name: String,
        span: Span,
        suggestion: Option<String>,
    },
    UnknownQualifier {
        name: String,
        span: Span,
    },
    FieldMissingFromSome {
        name: String,
        owner: String,
        here: String,
        span: Span,
    },
    UnknownField {
        event: String,
        field: String,
        span: Span,
        suggestion: Option<String>,
        fields: Vec<String>,
    },
    UnreadableField {
        field: String,
        c_type: String,
        span: Span,
    },
    NumberHasName {
        number: i64,
        name: String,
        span: Span,
    },
    // Expressions.
    ConditionType {
        span: Span,
        ty: Type,
    },
    BranchTypes {
        a: (Span, Type),
        b: (Span, Type),
    },
    UnaryNeedsNumber {
        op: &'static str,
        span: Span,
    },
    StringsNeedLiteral {
        span: Span,
    },
    StringOrdering {
        op: &'static str,
        span: Span,
    },
    DivisionByZero {
        span: Span,
    },
    OperandTypes {
        op: BinOp,
        a: (Span, Type),
        b: (Span, Type),
    },
    NeedsNumber {
        what: String,
        span: Span,
        ty: Type,
    },
    KsymArity {
        span: Span,
    },
    KsymNeedsAddress {
        span: Span,
    },
    AggregationAsValue {
        name: String,
        span: Span,
    },
    NotCalled {
        name: String,
        aggregation: bool,
        span: Span,
    },
    NoValue {
        name: String,
        span: Span,
    },
    UnknownFunction {
        name: String,
        span: Span,
        suggestion: Option<String>,
        known: Vec<String>,
    },
    UnusedValue {
        span: Span,
    },
    // Maps and aggregations.
    StackAsValue {
        span: Span,
    },
    AggregationArity {
        name: String,
        given: usize,
        span: Span,
        usage: &'static str,
    },
    NotConstant {
        error: &'static str,
        example: &'static str,
        span: Span,
    },
    AggregationRule {
        message: String,
        label: String,
        span: Span,
    },
    TooManyKeys {
        name: String,
        count: usize,
        max: usize,
        span: Span,
    },
    KeysDiffer {
        name: String,
        now: Vec<Type>,
        was: Vec<Type>,
        span: Span,
        first: Span,
    },
    KindsDiffer {
        name: String,
        now: &'static str,
        was: &'static str,
        span: Span,
        first: Span,
    },
    NeverWritten {
        name: String,
        span: Span,
        suggestion: Option<String>,
        userspace: bool,
    },
    UndefinedWrite {
        name: String,
        span: Span,
    },
    ReadBeforeTyped {
        name: String,
        span: Span,
        first: Span,
    },
    AggregationRead {
        name: String,
        kind: &'static str,
        span: Span,
    },
    ReadKeyCount {
        name: String,
        keys: usize,
        given: usize,
        span: Span,
    },
    // Statements and calls.
    ExitArgs {
        span: Span,
    },
    DeleteShape {
        span: Span,
    },
    UserFnInProbe {
        name: String,
        span: Span,
    },
    ExpectedMap {
        span: Span,
    },
    MapWithKeys {
        name: String,
        span: Span,
    },
    PrintTop {
        span: Span,
    },
    UserWrongArgs {
        name: String,
        span: Span,
        usage: &'static str,
    },
    ProbeOnly {
        name: String,
        span: Span,
    },
    NotInUserspace {
        name: String,
        span: Span,
        suggestion: Option<String>,
        aggregation: bool,
    },
    // printf.
    PrintfNeedsFormat {
        span: Span,
    },
    BadFormat {
        message: String,
        span: Span,
    },
    PrintfArgCount {
        conversions: usize,
        args: usize,
        span: Span,
        extra: Option<Span>,
    },
    PrintfArgType {
        directive: String,
        wants_string: bool,
        span: Span,
        ty: Type,
    },
    UserPrintfArg {
        span: Span,
    },
    UserPrintfKeyedMap {
        span: Span,
    },
    PrintfTimeArity {
        name: String,
        want: usize,
        given: usize,
        span: Span,
        usage: &'static str,
    },
    PrintfTimeNotLiteral {
        name: String,
        span: Span,
        usage: &'static str,
    },
    PrintfTimeNotInteger {
        name: String,
        span: Span,
        ty: Type,
        usage: &'static str,
    },
    ZoneinfoKey {
        key: String,
        span: Span,
        suggestion: Option<String>,
    },
    PrintfTimeMisplaced {
        name: String,
        span: Span,
        usage: &'static str,
    },
}

use CheckError as E;

fn err(code: Code, message: impl Into<String>) -> Diagnostic {
    Diagnostic::error(code, message)
}

impl CheckError {
    /// The diagnostic the user sees; `symtabs` names enum and flag types.
    pub(crate) fn diagnostic(self, symtabs: &[Symtab]) -> Diagnostic {
        let a = |t: &Type| a_type(t, symtabs);
        match self {
            E::SecondBeginEnd { span, first } => {
                err(Code::E0113, "a script has at most one `on begin` and one `on end`")
                    .at(span, "second one here")
                    .also(first, "first one here")
                    .with_help("merge the two blocks")
            }
            E::IntervalTooShort { span } => err(Code::E0215, "interval must be at least 1ms")
                .at(span, "too short")
                .with_help("timers run in userspace; use `1ms` or longer"),
            E::SpanWithOtherEvents { span } => {
                err(Code::E0109, "a span cannot share a probe with other events")
                    .at(span, "this name is a begin/end span")
                    .with_help("give the span its own `on` block")
            }
            E::WhereOnUserBlock { span } => {
                err(Code::E0010, "only event probes take `where`").at(span, "no event to filter")
            }
            E::UserBlockStatement { span } => err(
                Code::E0210,
                "this block runs in userspace: it can only print, clear, zero, printf, time and exit",
            )
            .at(span, "not allowed here")
            .with_help("maps are written by event probes (`on CATEGORY:NAME { ... }`)"),
            E::LetShadows { name, span, what } => {
                err(Code::E0111, format!("`{name}` is already {what}"))
                    .at(span, "pick another name")
                    .with_help(format!("a `let` may not hide a field or builtin, so `{name}` means one thing throughout a probe"))
            }
            E::FieldShadowsBuiltin {
                name,
                span,
                event,
                builtin,
            } => err(
                Code::E0111,
                format!("`{name}` is both a field of {event} and a builtin"),
            )
            .at(span, "which one?")
            .with_help(format!(
                "write `args.{name}` for the event's field, or `current.{name}` for the {builtin} of the task that hit the event"
            )),
            E::OutsideEvent { name, span } => {
                err(Code::E0112, format!("`{name}` only exists inside an event probe"))
                    .at(span, "no event here")
            }
            E::BuiltinOutsideEvent { name, span } => err(
                Code::E0112,
                format!("`{name}` only has a value inside an event probe"),
            )
            .at(span, "no event here")
            .with_help("`begin`, `end`, `every` and `after` blocks run in userspace"),
            E::BeginOutsideSpan { span } => {
                err(Code::E0108, "`begin.` only works in a span probe")
                    .at(span, "this probe is not a span")
                    .with_help("spans are `on CATEGORY:X` where X_begin/X_end exist, e.g. `on vmscan:direct_reclaim`")
            }
            E::BeginStringField { span } => err(
                Code::E0212,
                "begin fields that are strings cannot be carried to the end event yet",
            )
            .at(span, "a string field"),
            E::EnumNameAlone {
                name,
                field,
                flags,
                span,
            } => {
                let op = if flags { "has" } else { "==" };
                err(
                    Code::E0105,
                    format!("`{name}` is a name of `{field}` values, not a value by itself"),
                )
                .at(span, "compare a field with it")
                .with_help(format!("for example `{field} {op} {name}`"))
            }
            E::UnknownSymbol {
                name,
                flags,
                span,
                suggestion,
                known,
            } => {
                let kind = if flags { "flag" } else { "value" };
                err(Code::E0107, format!("`{name}` is not a {kind} name here"))
                    .at(span, "unknown name")
                    .with_help(
                        suggestion.unwrap_or_else(|| format!("known names: {}", preview(&known))),
                    )
            }
            E::UnknownName {
                name,
                span,
                event,
                suggestion,
                fields,
            } => {
                let place = match &event {
                    Some(what) => format!("in {what}"),
                    None => "here".to_string(),
                };
                let help = suggestion.or_else(|| {
                    event.map(|what| format!("fields of {what}: {}", preview(&fields)))
                });
                err(Code::E0105, format!("unknown name `{name}` {place}"))
                    .at(span, "not a local, field or builtin")
                    .help_opt(help)
            }
            E::UnknownBuiltin {
                name,
                span,
                suggestion,
            } => err(Code::E0105, format!("no builtin `{name}`"))
                .at(span, "unknown builtin")
                .help_opt(suggestion),
            E::UnknownQualifier { name, span } => {
                err(Code::E0105, format!("unknown name `{name}`"))
                    .at(span, "expected `args`, `begin` or `current`")
                    .with_help("`args.FIELD` is an event field, `begin.FIELD` a span's begin field, `current.pid` a builtin")
            }
            E::FieldMissingFromSome {
                name,
                owner,
                here,
                span,
            } => err(
                Code::E0110,
                format!("`{name}` is a field of {owner} but not of {here}"),
            )
            .at(span, format!("missing from {here}"))
            .with_help("every event of a probe must have the fields it uses: narrow the pattern, or give these events their own probe"),
            E::UnknownField {
                event,
                field,
                span,
                suggestion,
                fields,
            } => {
                let help = suggestion
                    .unwrap_or_else(|| format!("fields of {event}: {}", preview(&fields)));
                err(Code::E0104, format!("{event} has no field `{field}`"))
                    .at(span, "unknown field")
                    .with_help(help)
            }
            E::UnreadableField {
                field,
                c_type,
                span,
            } => err(
                Code::E0204,
                format!("field `{field}` ({c_type}) cannot be read by mmql yet"),
            )
            .at(span, "an array field"),
            E::NumberHasName { number, name, span } => Diagnostic::warning(
                Code::W0003,
                format!("`{number}` has a name here: `{name}`"),
            )
            .at(span, format!("write `{name}`"))
            .with_note("names are checked against the kernel's format file; numbers are not"),
            E::ConditionType { span, ty } => {
                err(Code::E0202, "condition is not a boolean or integer")
                    .at(span, format!("this is {}", a(&ty)))
                    .with_help("compare it: strings with `== \"...\"`")
            }
            E::BranchTypes { a: (sa, ta), b: (sb, tb) } => err(
                Code::E0201,
                "the two branches of `?:` have different types",
            )
            .at(sb, format!("this is {}", a(&tb)))
            .also(sa, format!("this is {}", a(&ta))),
            E::UnaryNeedsNumber { op, span } => {
                err(Code::E0201, format!("`{op}` needs a number")).at(span, "not a number")
            }
            E::StringsNeedLiteral { span } => err(
                Code::E0212,
                "strings can only be compared with a string literal",
            )
            .at(span, "two non-literal strings")
            .with_help("compare each with a literal, e.g. `current.comm == \"kswapd0\"`"),
            E::StringOrdering { op, span } => {
                err(Code::E0212, format!("strings cannot be ordered with `{op}`"))
                    .at(span, "two strings")
                    .with_help("strings support only `==` and `!=` against a literal")
            }
            E::DivisionByZero { span } => {
                err(Code::E0214, "division by zero").at(span, "this is zero")
            }
            E::OperandTypes {
                op,
                a: (sa, ta),
                b: (sb, tb),
            } => {
                let (x, y) = (a(&ta), a(&tb));
                let help = match op {
                    BinOp::Has => {
                        "`has` tests bits of a flags field: `gfp_flags has __GFP_DIRECT_RECLAIM`"
                    }
                    _ => "strings support only `==` and `!=` against a literal",
                };
                err(
                    Code::E0201,
                    format!("`{}` cannot combine {x} and {y}", op.symbol()),
                )
                .at(sb, format!("this is {y}"))
                .also(sa, format!("this is {x}"))
                .with_help(help)
            }
            E::NeedsNumber { what, span, ty } => {
                err(Code::E0204, format!("`{what}` needs a number"))
                    .at(span, format!("this is {}", a(&ty)))
            }
            E::KsymArity { span } => err(Code::E0203, "`ksym` takes one argument")
                .at(span, "an address, e.g. `ksym(call_site)`"),
            E::KsymNeedsAddress { span } => {
                err(Code::E0204, "`ksym` needs an address").at(span, "not an integer")
            }
            E::AggregationAsValue { name, span } => err(
                Code::E0207,
                format!("`{name}()` is an aggregation, not a value"),
            )
            .at(span, "used as a value")
            .with_help(format!(
                "assign it to a map: `@m = {name}({})`, then `print(@m)`",
                if name == "count" { "" } else { "..." }
            )),
            E::NotCalled {
                name,
                aggregation,
                span,
            } => {
                let kind = if aggregation {
                    "an aggregation"
                } else {
                    "a function"
                };
                err(
                    Code::E0105,
                    format!("`{name}` is {kind}, called with parentheses"),
                )
                .at(span, "not called")
                .with_help(format!("write `{name}()`"))
            }
            E::NoValue { name, span } => {
                err(Code::E0207, format!("`{name}()` does not return a value"))
                    .at(span, "used as a value")
            }
            E::UnknownFunction {
                name,
                span,
                suggestion,
                known,
            } => err(Code::E0106, format!("unknown function `{name}`"))
                .at(span, "not a function mmql knows")
                .with_help(
                    suggestion.unwrap_or_else(|| format!("mmql's functions: {}", preview(&known))),
                ),
            E::UnusedValue { span } => {
                err(Code::E0207, "this value is computed and thrown away")
                    .at(span, "unused value")
            }
            E::StackAsValue { span } => err(Code::E0204, "`kstack` can only be a map key")
                .at(span, "use `@m[kstack] = count()`"),
            E::AggregationArity {
                name,
                given,
                span,
                usage,
            } => err(
                Code::E0203,
                format!("`{name}` called with {given} argument(s)"),
            )
            .at(span, usage),
            E::NotConstant {
                error,
                example,
                span,
            } => err(Code::E0213, error)
                .at(span, "not a constant")
                .with_help(example),
            E::AggregationRule {
                message,
                label,
                span,
            } => err(Code::E0213, message).at(span, label),
            E::TooManyKeys {
                name,
                count,
                max,
                span,
            } => err(
                Code::E0217,
                format!("`{name}` has {count} keys; at most {max}"),
            )
            .at(span, "too many keys"),
            E::KeysDiffer {
                name,
                now,
                was,
                span,
                first,
            } => {
                let list = |ts: &[Type]| {
                    ts.iter()
                        .map(|t| TypeDisplay(t, symtabs).to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                err(Code::E0205, format!("`{name}` is used with different keys"))
                    .at(span, format!("keys here: [{}]", list(&now)))
                    .also(first, format!("keys first: [{}]", list(&was)))
                    .with_help("use one map per key shape")
            }
            E::KindsDiffer {
                name,
                now,
                was,
                span,
                first,
            } => err(
                Code::E0206,
                format!("`{name}` holds a {now} here but a {was} elsewhere"),
            )
            .at(span, format!("a {now}"))
            .also(first, format!("a {was}"))
            .with_help("use a separate map for each aggregation"),
            E::NeverWritten {
                name,
                span,
                suggestion,
                userspace: false,
            } => err(Code::E0216, format!("`{name}` is never written"))
                .at(span, "read here")
                .with_help(suggestion.unwrap_or_else(|| {
                    "maps come to exist when a probe writes them: `@m[k] = ...`".into()
                })),
            E::NeverWritten {
                name,
                span,
                suggestion,
                userspace: true,
            } => err(Code::E0216, format!("`{name}` is never written"))
                .at(span, "no probe writes this map")
                .help_opt(suggestion),
            E::UndefinedWrite { name, span } => {
                err(Code::E0216, format!("`{name}` is never written"))
                    .at(span, "this write did not check")
            }
            E::ReadBeforeTyped { name, span, first } => err(
                Code::E0216,
                format!("`{name}` is read before its type is known"),
            )
            .at(span, "read here")
            .also(first, "first written here")
            .with_help("a map takes its type from its first write: write it with a value of a field, a builtin or a constant, or read it after that write"),
            E::AggregationRead { name, kind, span } => err(
                Code::E0211,
                format!("`{name}` is a {kind} aggregation; it can't be read inside an event probe"),
            )
            .at(span, "read here")
            .with_help("aggregations are merged across CPUs in userspace: print them from `every` or `on end`"),
            E::ReadKeyCount {
                name,
                keys,
                given,
                span,
            } => err(
                Code::E0205,
                format!("`{name}` has {keys} key(s), read with {given}"),
            )
            .at(span, "wrong key count"),
            E::ExitArgs { span } => {
                err(Code::E0203, "`exit()` takes no arguments").at(span, "remove the arguments")
            }
            E::DeleteShape { span } => err(Code::E0204, "`delete` takes one map element")
                .at(span, "e.g. `delete(@start[tid])`"),
            E::UserFnInProbe { name, span } => {
                let help = if name == "time" {
                    // bpftrace habit: a timestamp per event. That is a printf of `nsecs`.
                    "to stamp each event, print its time: `printf(\"%s ...\\n\", strftime(\"%H:%M:%S\", nsecs))` (or `nsecs`, ns since boot); to print the time now and then, call `time()` from `every 5s { ... }`".to_string()
                } else {
                    format!("call it from `every 5s {{ {name}(...) }}` or `on end {{ ... }}`; maps are printed at exit anyway")
                };
                err(
                    Code::E0209,
                    format!("`{name}()` runs in userspace, not in an event probe"),
                )
                .at(span, "inside an event probe")
                .with_help(help)
            }
            E::ExpectedMap { span } => err(Code::E0204, "expected a map").at(span, "e.g. `@orders`"),
            E::MapWithKeys { name, span } => {
                err(Code::E0204, "give the whole map, without keys")
                    .at(span, format!("write `{name}`"))
            }
            E::PrintTop { span } => err(
                Code::E0213,
                "the top-N of `print` must be a positive constant",
            )
            .at(span, "e.g. `print(@m, 10)`"),
            E::UserWrongArgs { name, span, usage } => {
                err(Code::E0203, format!("wrong arguments to `{name}`")).at(span, usage)
            }
            E::ProbeOnly { name, span } => err(
                Code::E0210,
                format!("`{name}` only works inside an event probe"),
            )
            .at(span, "in a userspace block"),
            E::NotInUserspace {
                name,
                span,
                suggestion,
                aggregation,
            } => {
                let code = if aggregation { Code::E0210 } else { Code::E0106 };
                err(code, format!("`{name}` cannot be called in a userspace block"))
                    .at(span, "not available here")
                    .help_opt(suggestion)
            }
            E::PrintfNeedsFormat { span } => {
                err(Code::E0204, "`printf` needs a format string first")
                    .at(span, "e.g. `printf(\"%d\\n\", pid)`")
            }
            E::BadFormat { message, span } => err(Code::E0208, message)
                .at(span, "this directive")
                .with_help("supported: %d %i %u %x %X %o %c %s, with flags, width, precision and length modifiers; %% for a percent sign"),
            E::PrintfArgCount {
                conversions,
                args,
                span,
                extra,
            } => {
                let d = err(
                    Code::E0208,
                    format!(
                        "the format has {conversions} conversion(s) but {args} argument(s) follow"
                    ),
                )
                .at(span, format!("{conversions} conversion(s)"));
                match extra {
                    Some(at) => d.also(at, "no conversion for this"),
                    None => d,
                }
            }
            E::PrintfArgType {
                directive,
                wants_string,
                span,
                ty,
            } => {
                let ty = a(&ty);
                let help = if wants_string {
                    "use `%d` or `%u` for numbers"
                } else {
                    "use `%s` for strings"
                };
                err(Code::E0208, format!("`{directive}` does not fit {ty}"))
                    .at(span, format!("this is {ty}"))
                    .with_help(help)
            }
            E::UserPrintfArg { span } => err(
                Code::E0210,
                "userspace printf takes constants and maps without keys",
            )
            .at(span, "not available in userspace"),
            E::UserPrintfKeyedMap { span } => err(
                Code::E0204,
                "only a map without keys has a single value to print",
            )
            .at(span, "a keyed map"),
            E::PrintfTimeArity {
                name,
                want,
                given,
                span,
                usage,
            } => err(
                Code::E0203,
                format!("`{name}` takes {want} argument(s), not {given}"),
            )
            .at(span, "wrong number of arguments")
            .with_help(usage),
            E::PrintfTimeNotLiteral { name, span, usage } => err(
                Code::E0213,
                format!("this argument of `{name}` must be a string literal"),
            )
            .at(span, "not a literal")
            .with_help(usage),
            E::PrintfTimeNotInteger {
                name,
                span,
                ty,
                usage,
            } => err(Code::E0204, format!("`{name}` needs an integer here"))
                .at(span, format!("this is {}", a(&ty)))
                .with_help(usage),
            E::ZoneinfoKey {
                key,
                span,
                suggestion,
            } => err(
                Code::E0204,
                format!("/proc/zoneinfo has no per-zone `{key}`"),
            )
            .at(span, "unknown key")
            .with_help(suggestion.unwrap_or_else(|| {
                "keys: `min`, `low`, `high`, `free`, `managed`, `present`, `spanned`, or an `nr_*` counter".into()
            })),
            E::PrintfTimeMisplaced { name, span, usage } => err(
                Code::E0218,
                format!("`{name}` can only be a printf argument"),
            )
            .at(span, "used as a value")
            .with_help(format!(
                "it is evaluated in userspace when the line is printed: {usage}"
            ))
            .with_note("the kernel never sees its result, so it cannot be a key, a filter or a stored value"),
        }
    }
}
