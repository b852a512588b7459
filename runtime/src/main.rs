//! mmql's entry point: parse the command line, dispatch to a command, map the outcome to an
//! exit code (0 success, 1 script or runtime error, 2 usage error).

mod cli;
mod commands;
mod formats;
mod lab;
mod output;
mod run;
mod serve;
mod trace;
mod userfn;
mod zones;

use std::process::ExitCode;

use cli::Command;
use mmql::{sys, verifier};

fn main() -> ExitCode {
    // `mmql lab` runs its workloads from this binary, so an installed mmql needs no other file.
    if let Some(code) = lab::internal_entry() {
        return code;
    }
    // clap exits here on a usage error (status 2), honouring --color and NO_COLOR.
    let cli = commands::shell::parse();
    let mut ctx = commands::Context::new(&cli.common);
    let mut recording = None;
    if let Some(arg) = &cli.common.trace {
        if matches!(
            cli.command,
            Some(
                Command::Record(_)
                    | Command::Replay { .. }
                    | Command::Serve(_)
                    | Command::Build { .. }
            )
        ) {
            commands::shell::usage_error(
                "--trace runs scripts on a recording; it does not apply to this command",
            );
        }
        match trace::open(arg, cli.common.partial) {
            Ok(t) => {
                ctx.formats = trace::formats(arg, t.as_ref());
                recording = Some(t);
            }
            Err(f) => return f.report(),
        }
    }
    let result = match (&cli.command, &cli.list) {
        (Some(Command::Check(s)), _) => commands::check::run(&ctx, s),
        (Some(Command::Explain(s)), _) => commands::explain::run(&ctx, s),
        (Some(Command::List { pattern, verbose }), _) => {
            commands::list::run(&ctx, pattern.as_deref(), *verbose)
        }
        (None, Some(pattern)) => commands::list::run(&ctx, Some(pattern), false),
        (Some(Command::Build { script, output }), _) => commands::build::run(&ctx, script, output),
        (None, None) => match (&cli.program, &cli.file) {
            (None, None) => commands::shell::usage_error(
                "give a script file, -e PROGRAM, or a subcommand (`mmql --help`)",
            ),
            (program, file) => {
                let script = cli::ScriptArg {
                    file: file.clone(),
                    program: program.clone(),
                };
                commands::read_script(&script)
                    .and_then(|src| trace::run(&ctx, &src, &cli.run, recording))
            }
        },
        (Some(Command::Serve(args)), _) => serve::run(&ctx, args),
        (Some(Command::Completions { shell }), _) => commands::shell::completions(*shell),
        (Some(Command::Man { dir }), _) => commands::shell::man(dir.as_deref()),
        (
            Some(Command::Run {
                recipe,
                recipe_opts,
                run,
            }),
            _,
        ) => commands::recipes::load(&ctx, recipe, recipe_opts)
            .and_then(|src| trace::run(&ctx, &src, run, recording)),
        (Some(Command::Record(args)), _) => trace::record::record(&ctx, args),
        (Some(Command::Samples), _) => trace::list_samples(),
        (Some(Command::Recipes), _) => commands::recipes::list(),
        (Some(Command::Lab(args)), _) => lab::run(&ctx, args),
        (
            Some(Command::Replay {
                recording,
                script,
                format,
                output,
                html,
            }),
            _,
        ) => commands::recipes::read_source(&ctx, script).and_then(|src| {
            let out = run::replay::Outputs {
                format: *format,
                output: output.as_deref(),
                html: html.as_ref(),
            };
            run::replay::replay(&ctx, recording, &src, &out)
        }),
        (
            Some(Command::Show {
                recipe,
                recipe_opts,
            }),
            _,
        ) => commands::recipes::show(&ctx, recipe, recipe_opts),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.report(),
    }
}
