//! Shared plumbing for the commands: reading the script, loading the format catalog,
//! colour choice, and how failures are reported.

pub mod build;
pub mod check;
pub mod explain;
pub mod list;

use std::io::IsTerminal;
use std::process::ExitCode;

use mmql_compiler::check::Checked;
use mmql_compiler::pipeline;
use mmql_lang::diag::{render, Diagnostic};
use mmql_lang::Source;

use crate::cli::{Color, Common, ScriptArg};
use crate::formats::{load_catalog, FormatSource, LoadedCatalog};

pub struct Context {
    pub formats: FormatSource,
    pub color: bool,
}

pub enum Failure {
    /// Already printed (diagnostics); just exit 1.
    Reported,
    /// One sentence for stderr.
    Message(String),
}

impl Failure {
    pub fn report(self) -> ExitCode {
        if let Failure::Message(m) = self {
            eprintln!("mmql: error: {m}");
        }
        ExitCode::from(1)
    }
}

impl Context {
    pub fn new(c: &Common) -> Context {
        let formats = match &c.formats {
            Some(dir) => FormatSource::Dir(dir.clone()),
            None => FormatSource::Live,
        };
        let color = match c.color {
            Color::Always => true,
            Color::Never => false,
            Color::Auto => {
                std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal()
            }
        };
        Context { formats, color }
    }

    pub fn catalog(&self) -> Result<LoadedCatalog, Failure> {
        let loaded = load_catalog(&self.formats).map_err(Failure::Message)?;
        for w in &loaded.warnings {
            eprintln!("mmql: warning: {w}");
        }
        Ok(loaded)
    }

    pub fn render(&self, diags: &[Diagnostic], src: &Source) {
        if !diags.is_empty() {
            eprint!("{}", render(diags, src, self.color));
        }
    }

    /// Compiles to an object; prints diagnostics (warnings too).
    pub fn compile(&self, src: &Source, opts: &mmql_compiler::lower::LowerOptions) -> Result<(mmql_compiler::lower::Compiled, LoadedCatalog), Failure> {
        let loaded = self.catalog()?;
        match pipeline::compile(src, &loaded.catalog, opts) {
            Ok((compiled, warnings)) => {
                self.render(&warnings, src);
                Ok((compiled, loaded))
            }
            Err(diags) => {
                self.render(&diags, src);
                let n = diags.iter().filter(|d| d.is_error()).count();
                eprintln!("mmql: {} error{} in {}", n, if n == 1 { "" } else { "s" }, src.name);
                Err(Failure::Reported)
            }
        }
    }

    /// Reads, parses and checks; prints diagnostics; the program only when it has no errors.
    pub fn front_end(&self, src: &Source) -> Result<(Checked, LoadedCatalog), Failure> {
        let loaded = self.catalog()?;
        match pipeline::front_end(src, &loaded.catalog) {
            Ok(checked) => {
                self.render(&checked.warnings, src);
                Ok((checked, loaded))
            }
            Err(diags) => {
                self.render(&diags, src);
                let n = diags.iter().filter(|d| d.is_error()).count();
                eprintln!(
                    "mmql: {} error{} in {}",
                    n,
                    if n == 1 { "" } else { "s" },
                    src.name
                );
                Err(Failure::Reported)
            }
        }
    }
}

pub fn read_script(s: &ScriptArg) -> Result<Source, Failure> {
    match (&s.program, &s.file) {
        (Some(p), _) => Ok(Source::new("-e", p.clone())),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map(|t| Source::new(path.display().to_string(), t))
            .map_err(|e| Failure::Message(format!("cannot read `{}`: {e}", path.display()))),
        (None, None) => Err(Failure::Message("give a script file or -e PROGRAM".into())),
    }
}
