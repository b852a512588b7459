//! Verifier log reading. Input: the log aya returns in `ProgramError::LoadError`. Output: a
//! short report — the slot index the verifier stopped at and the error line — so the CLI can
//! map the slot back to a script span through the lowering's slot-to-span table.
//!
//! The log walks instructions as `N: (op) text ; register state`; the walk stops at the
//! rejected slot, and the lines after that last `N:` line are the complaint, followed by a
//! `processed N insns ...` summary. Checks done before the walk (CFG: back-edges, unreachable
//! code, jumps out of range) print no walk, only a message that names `insn N`.

/// What the verifier rejected, boiled down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierReport {
    /// Slot index (as in `--emit listing`) of the rejected instruction, when the log names one.
    pub insn: Option<usize>,
    /// The verifier's own words, e.g. `R0 invalid mem access 'map_value_or_null'`; several
    /// lines are joined with "; ".
    pub message: String,
    /// The last few instruction lines the verifier walked, ending at the rejected one.
    pub context: Vec<String>,
}

/// How many walked instruction lines to keep as context.
const CONTEXT_LINES: usize = 4;

/// Lines that summarise the run rather than say what went wrong.
fn is_summary(line: &str) -> bool {
    const PREFIXES: [&str; 6] = [
        "processed ",
        "verification time",
        "stack depth",
        "-- END PROG LOAD LOG --",
        "max_states_per_insn",
        "func#",
    ];
    PREFIXES.iter().any(|p| line.starts_with(p))
}

/// `N: (op) ...` → N. Register-state lines (`N: R1=ctx() ...`) do not count: they restate
/// the state at a slot rather than execute it.
fn walked_slot(line: &str) -> Option<usize> {
    let (num, rest) = line.split_once(": ")?;
    let slot = num.parse().ok()?;
    rest.starts_with('(').then_some(slot)
}

/// The first number after `insn ` in a pre-walk message (`back-edge from insn 3 to 1`).
fn named_slot(line: &str) -> Option<usize> {
    let at = line.find("insn ")? + "insn ".len();
    let digits: String = line[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// Read a verifier log; `None` when it is empty.
pub fn parse(log: &str) -> Option<VerifierReport> {
    let lines: Vec<&str> = log
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        return None;
    }
    let last_walked = lines.iter().rposition(|l| walked_slot(l).is_some());
    let (insn, tail, context) = match last_walked {
        Some(at) => {
            let start = lines[..at]
                .iter()
                .enumerate()
                .filter(|(_, l)| walked_slot(l).is_some())
                .map(|(i, _)| i)
                .rev()
                .take(CONTEXT_LINES - 1)
                .last()
                .unwrap_or(at);
            let context = lines[start..=at]
                .iter()
                .filter(|l| walked_slot(l).is_some())
                .map(|l| l.to_string())
                .collect();
            (walked_slot(lines[at]), &lines[at + 1..], context)
        }
        None => (None, &lines[..], Vec::new()),
    };
    let message: Vec<&str> = tail
        .iter()
        .copied()
        .filter(|l| !is_summary(l) && !l.starts_with("from ") && !l.starts_with(';'))
        .collect();
    let message = if message.is_empty() {
        // Nothing after the walk: the last non-summary line is the best we have.
        lines
            .iter()
            .rev()
            .find(|l| !is_summary(l))
            .copied()
            .unwrap_or_default()
            .to_string()
    } else {
        message.join("; ")
    };
    let insn = insn.or_else(|| named_slot(&message));
    Some(VerifierReport {
        insn,
        message,
        context,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_null_dereference() {
        let log = include_str!("../tests/fixtures/verifier_null_deref.log");
        let report = parse(log).expect("report");
        assert_eq!(report.insn, Some(7));
        assert_eq!(report.message, "R0 invalid mem access 'map_value_or_null'");
        assert_eq!(report.context.len(), CONTEXT_LINES);
        assert!(report.context[CONTEXT_LINES - 1].starts_with("7: (db)"));
    }

    #[test]
    fn reads_pre_walk_errors() {
        let report = parse("back-edge from insn 3 to 1\nprocessed 0 insns\n").expect("report");
        assert_eq!(report.insn, Some(3));
        assert_eq!(report.message, "back-edge from insn 3 to 1");
        assert!(report.context.is_empty());
        assert_eq!(parse("\n\n"), None);
    }
}
