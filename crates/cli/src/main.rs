//! The `flowhound` command line.

use flowhound::cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use flowhound::exit::CliError;

const EXIT_CODES: &str = "\
Exit codes:
  0  success (rejected lines alone do not fail a run; they are counted)
  1  runtime error (an output could not be written, an internal failure, an alert
     neither delivered nor spooled)
  2  usage error (bad flags or arguments, invalid mapping or parameters)
  3  input error (an input missing, unreadable, of unknown format, truncated,
     or without a single parsable line); every readable input was still processed";

#[derive(Debug, Parser)]
#[command(name = "flowhound", version, about = "Find, explain and alert on anomalies in network flow records", after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Inspect(cmd::inspect::Args),
    Convert(cmd::convert::Args),
    Features(cmd::features::Args),
    Train(cmd::train::Args),
    Detect(cmd::detect::Args),
    Evaluate(cmd::evaluate::Args),
    /// The flows whose verdict would teach the model most, to judge.
    Review(cmd::review::ReviewArgs),
    /// A new model version that learned from verdicts (`review`'s, or any flows').
    Tune(cmd::review::TuneArgs),
    Generate(cmd::generate::Args),
    Demo(cmd::demo::Args),
    Serve(cmd::serve::Args),
    Report(cmd::report::Args),
    Watch(cmd::watch::Args),
    Publish(cmd::publish::Args),
    Worker(cmd::worker::Args),
    /// Check a sink configuration (`config check`).
    Config(cmd::sinks::ConfigArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(a) => cmd::inspect::run(a),
        Command::Convert(a) => cmd::convert::run(a),
        Command::Features(a) => cmd::features::run(a),
        Command::Train(a) => cmd::train::run(a),
        Command::Detect(a) => cmd::detect::run(a),
        Command::Evaluate(a) => cmd::evaluate::run(a),
        Command::Review(a) => cmd::review::review(a),
        Command::Tune(a) => cmd::review::tune(a),
        Command::Generate(a) => cmd::generate::run(a),
        Command::Demo(a) => cmd::demo::run(a),
        Command::Serve(a) => cmd::serve::run(a),
        Command::Report(a) => cmd::report::run(a),
        Command::Watch(a) => cmd::watch::run(a),
        Command::Publish(a) => cmd::publish::run(a),
        Command::Worker(a) => cmd::worker::run(a),
        Command::Config(a) => cmd::sinks::run_config(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError { code, error }) => {
            if let Some(e) = error {
                eprintln!("error: {e:#}");
            }
            ExitCode::from(code)
        }
    }
}
