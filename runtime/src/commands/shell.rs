//! Shell integration: the command line parsed with the colour the user asked for, shell
//! completions (`mmql completions SHELL`) and man pages (`mmql man`), all generated from the
//! clap definition in `cli.rs` (input: argv and environment; output: `Cli`, or text on stdout
//! or files in a directory).
//!
//! Exit codes (docs/exit-codes.md): clap's own errors exit with 2 (usage), `--help` and
//! `--version` with 0; everything after parsing is decided in `main.rs`.

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::Path;

use clap::{ColorChoice, CommandFactory, FromArgMatches};

use super::Failure;
use crate::cli::Cli;

/// How clap should colour its own help and errors: `--color` (last one wins, as clap reads
/// it) beats the environment; without it, `NO_COLOR` set to anything non-empty means never
/// (no-color.org), and otherwise clap decides by the terminal.
pub fn color_choice(args: &[OsString], no_color: Option<&OsString>) -> ColorChoice {
    let mut choice = None;
    let mut it = args.iter().skip(1).map(|a| a.to_string_lossy());
    while let Some(a) = it.next() {
        if a == "--" {
            break;
        }
        let value = match a.strip_prefix("--color") {
            Some("") => it.next().map(|v| v.into_owned()),
            Some(rest) => rest.strip_prefix('=').map(str::to_string),
            None => None,
        };
        match value.as_deref() {
            Some("always") => choice = Some(ColorChoice::Always),
            Some("never") => choice = Some(ColorChoice::Never),
            Some("auto") => choice = Some(ColorChoice::Auto),
            _ => {}
        }
    }
    choice.unwrap_or(match no_color {
        Some(v) if !v.is_empty() => ColorChoice::Never,
        _ => ColorChoice::Auto,
    })
}

/// `Cli::parse()` with [`color_choice`] applied to clap's own output. A usage error prints
/// clap's message and exits with status 2.
pub fn parse() -> Cli {
    let args: Vec<OsString> = std::env::args_os().collect();
    let choice = color_choice(&args, std::env::var_os("NO_COLOR").as_ref());
    let cmd = Cli::command().color(choice);
    let matches = cmd.clone().get_matches_from(args);
    if let Some((sub, _)) = matches.subcommand() {
        refuse_run_args_with(&cmd, &matches, sub);
    }
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// `mmql -p 1 check x.mmql`: options of a top-level run given with a subcommand would be
/// silently ignored, so they are a usage error naming the option. Global options (`--formats`,
/// `--color`) belong to every subcommand and may stand before it. (clap's own
/// `args_conflicts_with_subcommands` also stops subcommands after a global option, which made
/// `mmql --formats DIR check -e …` run the script instead of checking it.)
fn refuse_run_args_with(cmd: &clap::Command, matches: &clap::ArgMatches, sub: &str) {
    use clap::parser::ValueSource;
    for arg in cmd.get_arguments().filter(|a| !a.is_global_set()) {
        let id = arg.get_id().as_str();
        if matches.value_source(id) != Some(ValueSource::CommandLine) {
            continue;
        }
        let name = match (arg.get_long(), arg.get_short()) {
            (Some(l), _) => format!("--{l}"),
            (None, Some(s)) => format!("-{s}"),
            (None, None) => format!("<{}>", id.to_uppercase()),
        };
        let mut cmd = cmd.clone();
        cmd.error(
            clap::error::ErrorKind::ArgumentConflict,
            format!("`{name}` cannot be used before the subcommand `{sub}`; give it after the subcommand if `{sub}` takes it"),
        )
        .exit()
    }
}

/// A usage error raised after parsing (e.g. nothing to run): clap's format, status 2.
pub fn usage_error(message: &str) -> ! {
    Cli::command()
        .error(clap::error::ErrorKind::MissingRequiredArgument, message)
        .exit()
}

/// `mmql completions SHELL`: the completion script on stdout.
pub fn completions(shell: clap_complete::Shell) -> Result<(), Failure> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "mmql", &mut out);
    write_stdout(&out)
}

/// `mmql man`: mmql.1 on stdout; `mmql man --dir DIR`: mmql.1 and one page per subcommand
/// (`mmql-serve.1`, …) written into DIR, which is created if needed.
pub fn man(dir: Option<&Path>) -> Result<(), Failure> {
    match dir {
        Some(dir) => std::fs::create_dir_all(dir)
            .and_then(|()| clap_mangen::generate_to(Cli::command(), dir))
            .map_err(|e| {
                Failure::Message(format!(
                    "cannot write man pages to `{}`: {e}",
                    dir.display()
                ))
            }),
        None => {
            let mut out = Vec::new();
            // As generate_to does: no `help` subcommand, which has no page of its own.
            clap_mangen::Man::new(Cli::command().disable_help_subcommand(true))
                .render(&mut out)
                .map_err(|e| Failure::Message(format!("cannot render the man page: {e}")))?;
            write_stdout(&out)
        }
    }
}

fn write_stdout(bytes: &[u8]) -> Result<(), Failure> {
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(|e| Failure::Message(format!("cannot write to standard output: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        std::iter::once("mmql")
            .chain(a.iter().copied())
            .map(OsString::from)
            .collect()
    }

    #[test]
    fn flag_beats_environment() {
        let set = OsString::from("1");
        assert_eq!(
            color_choice(&args(&["--color", "always", "x"]), Some(&set)),
            ColorChoice::Always
        );
        assert_eq!(
            color_choice(&args(&["--color=never"]), None),
            ColorChoice::Never
        );
        assert_eq!(
            color_choice(&args(&["--color=never", "--color=auto"]), None),
            ColorChoice::Auto
        );
        assert_eq!(
            color_choice(&args(&["check", "f"]), Some(&set)),
            ColorChoice::Never
        );
        // An empty NO_COLOR does not count, per no-color.org.
        assert_eq!(
            color_choice(&args(&[]), Some(&OsString::new())),
            ColorChoice::Auto
        );
        // After `--` everything is an operand.
        assert_eq!(
            color_choice(&args(&["--", "--color=always"]), None),
            ColorChoice::Auto
        );
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        // clap's own checks: conflicting short flags, bad defaults, missing value names.
        Cli::command().debug_assert();
    }

    #[test]
    fn every_subcommand_has_examples_in_its_help() {
        let cmd = Cli::command();
        assert!(cmd.get_after_help().is_some());
        for sub in cmd.get_subcommands() {
            let help = sub
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            assert!(
                help.starts_with("Example"),
                "`mmql {}` has no examples",
                sub.get_name()
            );
            assert!(
                help.contains(&format!("mmql {}", sub.get_name())),
                "`mmql {}` examples do not use it",
                sub.get_name()
            );
        }
    }

    #[test]
    fn man_page_and_completions_name_every_subcommand() {
        let mut page = Vec::new();
        clap_mangen::Man::new(Cli::command())
            .render(&mut page)
            .unwrap();
        let page = String::from_utf8(page).unwrap();
        assert!(
            page.starts_with(".ie \\n(.g .ds Aq") || page.contains(".TH mmql 1"),
            "{}",
            &page[..200]
        );
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "mmql", &mut out);
            let text = String::from_utf8(out).unwrap();
            // Hidden subcommands (`replay`, the golden rig) are in neither, by design.
            for sub in Cli::command()
                .get_subcommands()
                .filter(|s| !s.is_hide_set())
            {
                assert!(
                    text.contains(sub.get_name()),
                    "{shell:?} completion lacks {}",
                    sub.get_name()
                );
                assert!(
                    page.contains(sub.get_name()),
                    "man page lacks {}",
                    sub.get_name()
                );
            }
        }
    }
}
