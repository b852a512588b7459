//! The checked program: what the checker produces from the AST and the catalog, and what
//! `explain`, lowering and the runtime's userspace part consume. Names are resolved, every
//! expression is typed, fields carry their record offsets.

use mmql_lang::Span;

use crate::agg::Agg;
use crate::printf::Format;
use crate::types::{Symtab, Type};

pub type MapId = usize;
pub type LocalId = usize;
pub type PrintfId = usize;

#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    pub probes: Vec<KProbe>,
    pub maps: Vec<MapInfo>,
    pub symtabs: Vec<Symtab>,
    pub printfs: Vec<PrintfSpec>,
    pub begin: Vec<UStmt>,
    pub end: Vec<UStmt>,
    pub timers: Vec<Timer>,
}

/// One tracepoint program: a probe body specialised to one event's record layout.
#[derive(Debug, Clone, PartialEq)]
pub struct KProbe {
    /// Index of the source probe this came from (several events → several KProbes).
    pub source_index: usize,
    pub category: String,
    pub event: String,
    pub role: ProbeRole,
    pub filter: Option<TExpr>,
    pub body: Vec<TStmt>,
    /// Locals by id: (name, type).
    pub locals: Vec<(String, Type)>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProbeRole {
    Plain,
    /// The begin half of a span: saves `nsecs` and the listed begin fields in `state`.
    SpanBegin {
        state: MapId,
        key: SpanKeyExpr,
        saved: Vec<SavedField>,
    },
    /// The end half: looks the begin state up, runs the body, deletes the state.
    SpanEnd {
        state: MapId,
        key: SpanKeyExpr,
        begin_event: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum SpanKeyExpr {
    Thread,
    /// A field of both events (e.g. `nid`): (begin-record field, end-record field).
    Field {
        name: String,
        begin: FieldRef,
        end: FieldRef,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct SavedField {
    pub name: String,
    pub field: FieldRef,
    pub ty: Type,
}

/// How to read one field out of the tracepoint record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRef {
    pub name: String,
    pub offset: u32,
    pub size: u32,
    pub signed: bool,
    pub kind: FieldAccess,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldAccess {
    Int,
    /// `char name[len]` inline.
    CharArray {
        len: u32,
    },
    /// `__data_loc char[]`: the u32 at `offset` locates the string in the record.
    DataLoc,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MapInfo {
    /// `@name` as written (`@` for the anonymous map).
    pub name: String,
    pub keys: Vec<Type>,
    /// Names for the key columns in JSON output (`comm`, `order`, `key1`).
    pub key_names: Vec<String>,
    pub value: ValueKind,
    /// When the single key comes from a small fixed domain: the number of slots, so the map
    /// can be a per-CPU array.
    pub domain: Option<u32>,
    /// Span states are internal maps: not printed.
    pub internal: bool,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ValueKind {
    /// An aggregation (`count()`, `hist(x)`, …): its row in `crate::agg` says the rest.
    Agg(Agg),
    /// Plain assignment: the last value written.
    Last(Type),
    /// Span begin state: start time plus saved fields (8 bytes each).
    SpanState { saved: u32 },
}

impl ValueKind {
    pub fn name(&self) -> &'static str {
        match self {
            ValueKind::Agg(a) => a.name(),
            ValueKind::Last(_) => "value",
            ValueKind::SpanState { .. } => "span state",
        }
    }

    pub fn is_aggregation(&self) -> bool {
        matches!(self, ValueKind::Agg(_))
    }

    pub fn agg(&self) -> Option<&Agg> {
        match self {
            ValueKind::Agg(a) => Some(a),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PrintfSpec {
    pub format: Format,
    /// The record's slots, in order: what the kernel writes (the `TStmt::Printf` arguments).
    pub args: Vec<Type>,
    /// What each conversion shows, in order: a slot as is, or a function of slots evaluated
    /// in userspace when the record is printed. Plain printfs map conversion i to slot i.
    pub shown: Vec<Shown>,
    pub span: Span,
}

/// One printf conversion's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Shown {
    Slot(usize),
    Call { func: UserFn, slots: Vec<usize> },
}

/// Functions evaluated by the runtime when a printf record is printed, from kernel state the
/// tracepoint does not carry (`compiler/src/check/userfn.rs` has their table). Constant
/// arguments are part of the function; the others are record slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserFn {
    /// `zone_node(zone_start)`: the NUMA node of the zone starting at this pfn.
    ZoneNode,
    /// `zone_name(zone_start)`: `ZONE_NORMAL`, … for the zone starting at this pfn.
    ZoneName,
    /// `zoneinfo(zone_start, "KEY")`: a number from the zone's block of /proc/zoneinfo.
    ZoneInfo(String),
    /// `fragindex(zone_start, order)`: the zone's fragmentation index for `order`.
    FragIndex,
    /// `strftime("FORMAT", nsecs)`: a `nsecs` value as wall-clock time.
    Strftime(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Timer {
    pub nanos: u64,
    pub repeat: bool,
    pub body: Vec<UStmt>,
    pub span: Span,
}

/// Statements of `begin`, `end`, `every` and `after` blocks: they run in userspace.
#[derive(Debug, Clone, PartialEq)]
pub enum UStmt {
    Print { map: MapId, top: Option<u64> },
    Clear(MapId),
    Zero(MapId),
    Printf { format: Format, args: Vec<UArg> },
    Time(String),
    Exit,
}

#[derive(Debug, Clone, PartialEq)]
pub enum UArg {
    Int(i64),
    Str(String),
    /// The merged value of a scalar map (count/sum/min/max/avg/value).
    MapValue(MapId),
}

#[derive(Debug, Clone, PartialEq)]
pub struct TExpr {
    pub kind: TExprKind,
    pub ty: Type,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TExprKind {
    Int(i64),
    Str(String),
    Field(FieldRef),
    /// A field saved by the span's begin event: index into the saved list.
    BeginField(u32),
    /// Nanoseconds since the span's begin.
    Duration,
    Builtin(Builtin),
    Local(LocalId),
    /// Read of a `Last` map (0 / empty when absent).
    MapRead {
        map: MapId,
        keys: Vec<TExpr>,
    },
    Unary(mmql_lang::ast::UnOp, Box<TExpr>),
    Binary(mmql_lang::ast::BinOp, Box<TExpr>, Box<TExpr>),
    Ternary(Box<TExpr>, Box<TExpr>, Box<TExpr>),
    /// `ksym(addr)`: the value is the address; output symbolises it.
    Ksym(Box<TExpr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    Pid,
    Tid,
    Uid,
    Comm,
    Cpu,
    Nsecs,
    Kstack,
}

impl Builtin {
    pub const ALL: &'static [(&'static str, Builtin)] = &[
        ("pid", Builtin::Pid),
        ("tid", Builtin::Tid),
        ("uid", Builtin::Uid),
        ("comm", Builtin::Comm),
        ("cpu", Builtin::Cpu),
        ("nsecs", Builtin::Nsecs),
        ("kstack", Builtin::Kstack),
    ];

    pub fn lookup(name: &str) -> Option<Builtin> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|&(_, b)| b)
    }

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, b)| *b == self)
            .map_or("?", |(n, _)| n)
    }

    pub fn ty(self) -> Type {
        match self {
            Builtin::Pid | Builtin::Tid | Builtin::Uid | Builtin::Cpu => Type::Int {
                signed: false,
                bytes: 4,
            },
            Builtin::Comm => Type::Str { cap: 16 },
            Builtin::Nsecs => Type::U64,
            Builtin::Kstack => Type::Stack,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum TStmt {
    Let {
        local: LocalId,
        value: TExpr,
    },
    Update {
        map: MapId,
        keys: Vec<TExpr>,
        op: AggOp,
        span: Span,
    },
    Delete {
        map: MapId,
        keys: Vec<TExpr>,
    },
    If {
        cond: TExpr,
        then: Vec<TStmt>,
        els: Vec<TStmt>,
    },
    Printf {
        id: PrintfId,
        args: Vec<TExpr>,
    },
    Exit,
}

/// What a map write does; which aggregation is the map's (`MapInfo::value`).
#[derive(Debug, Clone, PartialEq)]
pub enum AggOp {
    /// An aggregation update, with its operand (`count()` has none). `++`, `--`, `+= e` and
    /// `-= e` are `sum` updates.
    Agg(Option<TExpr>),
    Assign(TExpr),
}

impl AggOp {
    /// The expression the write reads, if any (`count()` reads none).
    pub fn operand(&self) -> Option<&TExpr> {
        match self {
            AggOp::Agg(e) => e.as_ref(),
            AggOp::Assign(e) => Some(e),
        }
    }
}
