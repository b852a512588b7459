//! The registry of diagnostic codes: every code mmql can report, in one place, with the one-line
//! meaning `mmql explain-error`-style tooling and the docs print.

use std::fmt;

macro_rules! codes {
    ($($name:ident => $text:literal,)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code { $($name,)* }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$name,)*];

            /// What the code means, in a phrase.
            pub fn meaning(self) -> &'static str {
                match self { $(Code::$name => $text,)* }
            }

            pub fn as_str(self) -> &'static str {
                match self { $(Code::$name => stringify!($name),)* }
            }
        }
    };
}

codes! {
    // Lexer and parser.
    E0001 => "unexpected character",
    E0002 => "unterminated string",
    E0003 => "unknown escape in a string",
    E0004 => "number does not fit in 64 bits",
    E0010 => "syntax error",
    E0011 => "unexpected end of script",
    // Names: events, fields, variables, functions, enum and flag names.
    E0101 => "unknown tracepoint category",
    E0102 => "unknown tracepoint",
    E0103 => "event pattern matches no tracepoint",
    E0104 => "unknown field",
    E0105 => "unknown name",
    E0106 => "unknown function",
    E0107 => "unknown enum or flag name",
    E0108 => "`begin.` outside a span probe",
    E0109 => "a span cannot share a probe with other events",
    E0110 => "field missing from some events of the probe",
    E0111 => "name already taken",
    E0112 => "event fields used outside an event probe",
    E0113 => "duplicate probe header",
    // Types.
    E0201 => "mismatched types",
    E0202 => "condition is not a boolean or integer",
    E0203 => "wrong number of arguments",
    E0204 => "wrong argument type",
    E0205 => "map used with different key types",
    E0206 => "map used with different value kinds",
    E0207 => "aggregation used as a value",
    E0208 => "printf format does not match its arguments",
    E0209 => "userspace-only function in an event probe",
    E0210 => "event-only function outside an event probe",
    E0211 => "aggregation read inside an event probe",
    E0212 => "unsupported string operation",
    E0213 => "argument must be a constant",
    E0214 => "division by a constant zero",
    E0215 => "interval must be at least 1ms",
    E0216 => "map is never written",
    E0217 => "too many map keys",
    E0218 => "function only usable as a printf argument",
    // Limits of the BPF target.
    E0301 => "the program exceeds a BPF limit",
    E0302 => "the kernel's verifier rejected the program",
    // Running on recorded events.
    E0401 => "the recording lacks what the script needs",
    // Warnings and notes.
    W0001 => "event name resolved through a known rename",
    W0002 => "map is written but never printed",
    W0003 => "comparison with a number where names exist",
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
