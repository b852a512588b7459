//! Shared plumbing for the commands: reading the script, loading the format catalog,
//! colour choice, and how failures are reported.

pub mod build;
pub mod check;
pub mod explain;
pub mod list;
pub mod measure;
pub mod recipes;
pub mod shell;
pub mod stdout;

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
    /// The run itself completed (and said why it ends this way); exit with this status. Used
    /// for a `-c` command that failed: mmql passes its status on, as `time` and `timeout` do.
    Status(u8),
}

impl Failure {
    pub fn report(self) -> ExitCode {
        match self {
            Failure::Reported => ExitCode::from(1),
            Failure::Message(m) => {
                eprintln!("mmql: error: {m}");
                ExitCode::from(1)
            }
            Failure::Status(code) => ExitCode::from(code),
        }
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

    /// The catalog a script needs: only the categories its probes name (the compiler says
    /// which), because a one-liner should attach in a few milliseconds.
    fn catalog_for(&self, src: &Source) -> Result<LoadedCatalog, Failure> {
        match pipeline::categories(src) {
            Some(cats) => {
                // A category that does not exist leaves nothing to load: the full catalog then
                // gives the diagnostic its "did you mean".
                match crate::formats::load_catalog_filtered(&self.formats, &|c| {
                    cats.iter().any(|w| w == c)
                }) {
                    Ok(loaded) if !loaded.catalog.events.is_empty() => {
                        for w in &loaded.warnings {
                            eprintln!("mmql: warning: {w}");
                        }
                        Ok(loaded)
                    }
                    _ => self.catalog(),
                }
            }
            None => self.catalog(),
        }
    }

    /// Runs a compiler stage against the script's own categories; a script that fails there
    /// is tried again against the whole catalog, so suggestions can name events in any
    /// category. Prints every diagnostic (warnings too); the value only when there is no error.
    fn stage<T>(
        &self,
        src: &Source,
        run: impl Fn(&mmql_compiler::format::Catalog) -> Result<(T, Vec<Diagnostic>), Vec<Diagnostic>>,
    ) -> Result<(T, LoadedCatalog), Failure> {
        let mut loaded = self.catalog_for(src)?;
        let mut result = run(&loaded.catalog);
        if result.is_err() {
            loaded = self.catalog()?;
            result = run(&loaded.catalog);
        }
        match result {
            Ok((value, warnings)) => {
                self.render(&warnings, src);
                Ok((value, loaded))
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

    /// Parses, checks and lowers to an object.
    pub fn compile(
        &self,
        src: &Source,
        opts: &mmql_compiler::lower::LowerOptions,
    ) -> Result<(mmql_compiler::lower::Compiled, LoadedCatalog), Failure> {
        self.stage(src, |catalog| pipeline::compile(src, catalog, opts))
    }

    /// Parses and checks.
    pub fn front_end(&self, src: &Source) -> Result<(Checked, LoadedCatalog), Failure> {
        self.stage(src, |catalog| {
            pipeline::front_end(src, catalog).map(|mut c| {
                let warnings = std::mem::take(&mut c.warnings);
                (c, warnings)
            })
        })
    }
}

/// Why a script file cannot be read; when the "file" is program text (bpftrace habit:
/// `bpftrace 'kprobe:... { }'` needs no `-e`... but mmql does), says to put `-e` before it.
fn unreadable_script(path: &std::path::Path, e: &std::io::Error) -> String {
    let given = path.display().to_string();
    if e.kind() == std::io::ErrorKind::NotFound && given.contains('{') {
        let short: String = given.chars().take(40).collect();
        let more = if short.len() < given.len() { "…" } else { "" };
        return format!(
            "`{short}{more}` is program text, not a file: put -e before it (`mmql -e '...'`)"
        );
    }
    format!("cannot read `{given}`: {e}")
}

pub fn read_script(s: &ScriptArg) -> Result<Source, Failure> {
    match (&s.program, &s.file) {
        (Some(p), _) => Ok(Source::new("-e", p.clone())),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map(|t| Source::new(path.display().to_string(), t))
            .map_err(|e| Failure::Message(unreadable_script(path, &e))),
        (None, None) => Err(Failure::Message("give a script file or -e PROGRAM".into())),
    }
}
