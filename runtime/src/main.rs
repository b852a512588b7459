//! mmql's entry point: parse the command line, dispatch to a command, map the outcome to an
//! exit code (0 success, 1 script or runtime error, 2 usage error).

mod cli;
mod commands;
mod formats;
mod lab;
mod output;
mod run;
mod serve;
mod sys;
mod userfn;
mod verifier;
mod zones;

use std::process::ExitCode;

use cli::Command;

fn main() -> ExitCode {
    // `mmql lab` runs its workloads from this binary, so an installed mmql needs no other file.
    if let Some(code) = lab::internal_entry() {
        return code;
    }
    // clap exits here on a usage error (status 2), honouring --color and NO_COLOR.
    let cli = commands::shell::parse();
    let ctx = commands::Context::new(&cli.common);
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
                commands::read_script(&script).and_then(|src| run::run(&ctx, &src, &cli.run))
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
        ) => commands::recipes::run(&ctx, recipe, recipe_opts, run),
        (Some(Command::Recipes), _) => commands::recipes::list(),
        (Some(Command::Lab(args)), _) => lab::run(&ctx, args),
        (
            Some(Command::Replay {
                recording,
                script,
                format,
                output,
            }),
            _,
        ) => commands::recipes::read_source(&ctx, script)
            .and_then(|src| run::replay::replay(&ctx, recording, &src, *format, output.as_deref())),
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
