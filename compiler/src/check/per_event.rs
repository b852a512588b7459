//! One mistake, one diagnostic: a probe over several events (`on kmem:*`) has its body checked
//! once per event, so the same error at the same place would otherwise be reported once per
//! event. Input: the diagnostics each event's check produced, tagged with the event; output:
//! one diagnostic per mistake, naming the events it applies to.

use mmql_lang::diag::Diagnostic;

/// Events named in full in a merged message; more are counted.
const NAMED: usize = 6;

/// Merges `found` (diagnostic, index of the event whose check reported it) for a probe over
/// `events` (`category:name`), written as `patterns`. Diagnostics with the same code and
/// primary span are one mistake; the first one's text stands for all, with its event replaced
/// by the set of events. Order is kept: a mistake sits where its first report was.
pub(crate) fn merge(
    found: Vec<(Diagnostic, usize)>,
    events: &[String],
    patterns: &str,
) -> Vec<Diagnostic> {
    let mut groups: Vec<(Diagnostic, Vec<usize>, Vec<Option<String>>)> = Vec::new();
    for (d, ev) in found {
        let key = |g: &Diagnostic| {
            g.code == d.code && g.primary.as_ref().map(|p| p.0) == d.primary.as_ref().map(|p| p.0)
        };
        match groups.iter_mut().find(|(g, _, _)| key(g)) {
            Some((_, evs, helps)) => {
                if !evs.contains(&ev) {
                    evs.push(ev);
                }
                helps.push(d.help);
            }
            None => {
                let help = d.help.clone();
                groups.push((d, vec![ev], vec![help]));
            }
        }
    }
    groups
        .into_iter()
        .map(|(mut d, evs, helps)| {
            if evs.len() < 2 {
                return d;
            }
            let first = &events[evs[0]];
            let which = if evs.len() == events.len() {
                format!("all {} events of `{patterns}`", events.len())
            } else {
                format!(
                    "{} of the {} events of `{patterns}`",
                    evs.len(),
                    events.len()
                )
            };
            d.message = replace_event(&d.message, first, &which);
            if let Some((_, label)) = d.primary.as_mut() {
                *label = replace_event(label, first, "these events");
            }
            // The help of one event ("fields of kmem:kfree: ...") does not fit the others: keep
            // a suggestion of a name if any event had one, else a help all of them share.
            d.help = helps
                .iter()
                .flatten()
                .find(|h| h.starts_with("did you mean"))
                .cloned()
                .or_else(|| {
                    let h = helps.first().cloned().flatten()?;
                    helps.iter().all(|o| o.as_ref() == Some(&h)).then_some(h)
                })
                .or_else(|| {
                    // Events helped differently (each its own fields): point at them all. A
                    // mistake no event had help for (a wrong arity) gets none.
                    helps.iter().any(Option::is_some).then(|| {
                        // `list` takes one pattern; several are joined by ", " here.
                        let arg = if patterns.contains(", ") {
                            "PATTERN".to_string()
                        } else {
                            format!("'{patterns}'")
                        };
                        format!("`mmql list {arg} -v` shows each event's fields")
                    })
                });
            let mut names: Vec<&str> = evs
                .iter()
                .take(NAMED)
                .map(|&i| events[i].as_str())
                .collect();
            let more = evs.len().saturating_sub(NAMED);
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            names.sort_unstable();
            d.notes.push(format!("in {}{more}", names.join(", ")));
            d
        })
        .collect()
}

/// `text` with every whole-word `event` (not a prefix of a longer name) replaced by `with`.
fn replace_event(text: &str, event: &str, with: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(event) {
        let after = &rest[i + event.len()..];
        let whole = !after.starts_with(|c: char| c.is_alphanumeric() || c == '_');
        out.push_str(&rest[..i]);
        out.push_str(if whole { with } else { event });
        rest = after;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmql_lang::diag::Code;
    use mmql_lang::Span;

    fn unknown(ev: &str, help: &str) -> Diagnostic {
        Diagnostic::error(Code::E0105, format!("unknown name `x` in {ev}"))
            .at(Span::new(3, 4), "not a local, field or builtin")
            .with_help(help)
    }

    #[test]
    fn one_mistake_over_many_events_is_one_diagnostic() {
        let events: Vec<String> = ["kmem:a", "kmem:a_b", "kmem:c"].map(String::from).to_vec();
        let found = vec![
            (unknown("kmem:a", "fields of kmem:a: `p`"), 0),
            (unknown("kmem:a_b", "did you mean `y`?"), 1),
            (unknown("kmem:c", "fields of kmem:c: `q`"), 2),
        ];
        let out = merge(found, &events, "kmem:*");
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].message,
            "unknown name `x` in all 3 events of `kmem:*`"
        );
        assert_eq!(out[0].help.as_deref(), Some("did you mean `y`?"));
        assert_eq!(out[0].notes, ["in kmem:a, kmem:a_b, kmem:c"]);
    }

    #[test]
    fn different_places_stay_apart_and_prefixes_survive() {
        let events: Vec<String> = ["kmem:a", "kmem:a_b"].map(String::from).to_vec();
        let other = Diagnostic::error(Code::E0105, "unknown name `z` in kmem:a")
            .at(Span::new(9, 10), "here");
        let out = merge(
            vec![(unknown("kmem:a", "h"), 0), (other, 0)],
            &events,
            "kmem:a*",
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].message, "unknown name `x` in kmem:a");
        assert_eq!(
            replace_event("kmem:a_b and kmem:a", "kmem:a", "E"),
            "kmem:a_b and E"
        );
    }
}
