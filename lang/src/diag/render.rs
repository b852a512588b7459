//! Renders diagnostics against their source with ariadne: file, line, column, the span
//! underlined, notes and help. Output is plain text unless colour is asked for.

use ariadne::{Config, IndexType, Label, Report, ReportKind};

use super::{Diagnostic, Severity};
use crate::span::Source;

/// Renders every diagnostic, in order, into one string.
pub fn render(diags: &[Diagnostic], src: &Source, color: bool) -> String {
    diags.iter().map(|d| render_one(d, src, color)).collect()
}

pub fn render_one(d: &Diagnostic, src: &Source, color: bool) -> String {
    let kind = match d.severity {
        Severity::Error => ReportKind::Error,
        Severity::Warning => ReportKind::Warning,
        Severity::Note => ReportKind::Advice,
    };
    let Some((span, label)) = &d.primary else {
        return render_plain(d);
    };
    let name = src.name.as_str();
    let config = Config::default()
        .with_color(color)
        .with_index_type(IndexType::Byte);
    let mut report = Report::build(kind, (name, span.range()))
        .with_config(config)
        .with_code(d.code)
        .with_message(&d.message)
        .with_label(
            Label::new((name, span.range()))
                .with_message(label)
                .with_order(0),
        );
    for (i, (s, l)) in d.secondary.iter().enumerate() {
        report = report.with_label(
            Label::new((name, s.range()))
                .with_message(l)
                .with_order(i as i32 + 1),
        );
    }
    for n in &d.notes {
        report = report.with_note(n);
    }
    if let Some(h) = &d.help {
        report = report.with_help(h);
    }
    let mut out = Vec::new();
    let written = report
        .finish()
        .write((name, ariadne::Source::from(src.text.as_str())), &mut out);
    match written {
        Ok(()) => String::from_utf8_lossy(&out).into_owned(),
        // Rendering into memory cannot fail in practice; never lose the message if it does.
        Err(_) => render_plain(d),
    }
}

/// A diagnostic with no place in the script (a missing file, a privilege problem).
fn render_plain(d: &Diagnostic) -> String {
    let word = match d.severity {
        Severity::Error => "Error",
        Severity::Warning => "Warning",
        Severity::Note => "Advice",
    };
    let mut s = format!("[{}] {}: {}\n", d.code, word, d.message);
    for n in &d.notes {
        s.push_str(&format!("  Note: {n}\n"));
    }
    if let Some(h) = &d.help {
        s.push_str(&format!("  Help: {h}\n"));
    }
    s
}
