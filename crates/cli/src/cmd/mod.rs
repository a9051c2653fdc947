//! Subcommands, and the input options they share.

pub mod convert;
pub mod demo;
pub mod detect;
pub mod evaluate;
pub mod features;
pub mod findings;
pub mod generate;
pub mod group;
pub mod inspect;
pub mod publish;
pub mod report;
pub mod review;
pub mod serve;
pub mod sinks;
pub mod train;
pub mod watch;
pub mod worker;

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use flowhound_engine::config::{InputError, InputParams};
use flowhound_source::{FileReport, Input, LineReject, ScanEvents, ScanOptions, ScanReport};
use indicatif::{ProgressBar, ProgressStyle};

use crate::exit::{Classify, CliError, CliResult};
use flowhound_engine::outfile::OutFile as Output;

pub use flowhound_engine::tally::SORT_HINT;

/// SIGINT and SIGTERM set `stop`: the long-running commands (watch, serve
/// with a live source, worker) drain, save and exit 0 on it.
pub fn stop_on_signals(stop: &std::sync::Arc<std::sync::atomic::AtomicBool>) -> CliResult {
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, std::sync::Arc::clone(stop)).map_err(anyhow::Error::from)?;
    }
    Ok(())
}

/// `--idle-exit`, when given.
pub fn idle_exit(v: Option<&str>) -> CliResult<Option<std::time::Duration>> {
    Ok(v.map(|v| flowhound_engine::config::durations([("--idle-exit", v)])).transpose()?.map(|[d]| d))
}

/// Options of every command that reads flow records.
#[derive(Debug, clap::Args)]
pub struct InputArgs {
    /// Files, directories, globs, `s3://BUCKET/PREFIX` (objects below it, or a glob over keys), or `-`
    /// for stdin; gzip and VPC Flow Logs' Parquet are read transparently.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<String>,

    /// Read only files and objects whose path holds a date (`…/YYYY/MM/DD/…`, the VPC Flow Logs S3
    /// layout) on or after this day (YYYY-MM-DD); paths without a date are read.
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,

    /// ... and on or before this day (YYYY-MM-DD).
    #[arg(long, value_name = "DATE")]
    pub until: Option<String>,

    /// Skip format detection: vpc, zeek, zeek-json, zeek-csv, unsw, cic, csv, jsonl.
    #[arg(long, value_name = "FORMAT")]
    pub input_format: Option<String>,

    /// Column mapping (TOML) for a CSV flowhound does not know; see docs/formats.md.
    #[arg(long, value_name = "FILE")]
    pub map_file: Option<PathBuf>,

    /// Map one field to a CSV column, e.g. `--map src=source_ip`, or by position, `--map src=#3`
    /// (the third column); repeatable, combined with --map-file.
    #[arg(long, value_name = "FIELD=COLUMN")]
    pub map: Vec<String>,

    /// The mapped CSV has no header line: its first line is data (columns mapped by position,
    /// `--map src=#3`; a mapping of positions alone implies it).
    #[arg(long)]
    pub no_header: bool,

    /// Ground truth for a single input, as `generate` writes it (line,malicious,category).
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,

    /// Write every rejected line (file, line number, reason, text) as JSON lines.
    #[arg(long, value_name = "FILE")]
    pub rejects: Option<PathBuf>,

    /// Read all of the input first and take its flows oldest first: for logs not in time order
    /// (randomly sampled CSVs, captures given in any order), whose time windows would otherwise
    /// mix periods. Holds every record in memory; train and evaluate --holdout must agree on it.
    #[arg(long)]
    pub sort_time: bool,

    /// No progress bar or warnings on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

impl InputArgs {
    /// The options as the engine takes them.
    pub fn params(&self) -> InputParams {
        InputParams {
            inputs: self.inputs.clone(),
            since: self.since.clone(),
            until: self.until.clone(),
            input_format: self.input_format.clone(),
            map_file: self.map_file.clone(),
            map: self.map.clone(),
            no_header: self.no_header,
            labels: self.labels.clone(),
            sort_time: self.sort_time,
        }
    }

    /// Validates the options and resolves the inputs; every problem is listed.
    pub fn prepare(&self) -> CliResult<(Vec<Input>, ScanOptions)> {
        let (opts, inputs) = self.params().check()?;
        let inputs = inputs.resolve().map_err(|e| match e {
            InputError::Labels(_) => CliError::usage(e),
            e => CliError::input(e),
        })?;
        Ok((inputs, opts))
    }

    /// Progress and reject reporting for a scan of `inputs`.
    pub fn events(&self, inputs: &[Input]) -> CliResult<Events> {
        let rejects = self.rejects.as_deref().map(|p| Output::create(Some(p))).transpose().usage()?;
        let total: u64 = inputs.iter().map(Input::size).sum();
        let bar = (!self.quiet && std::io::stderr().is_terminal()).then(|| {
            let pb = ProgressBar::new(total.max(1));
            pb.set_style(
                ProgressStyle::with_template("{spinner} {bytes}/{total_bytes} {bytes_per_sec} {wide_bar} {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            pb
        });
        Ok(Events { bar, rejects, write_error: None, quiet: self.quiet })
    }
}

#[derive(Debug)]
pub struct Events {
    bar: Option<ProgressBar>,
    rejects: Option<Output>,
    write_error: Option<anyhow::Error>,
    quiet: bool,
}

impl ScanEvents for Events {
    fn reject(&mut self, r: &LineReject<'_>) {
        if let (Some(out), None) = (&mut self.rejects, &self.write_error) {
            let v = serde_json::json!({
                "file": r.file,
                "line": r.line,
                "reason": r.reject.reason.as_str(),
                "detail": r.reject.detail,
                "text": String::from_utf8_lossy(r.text),
            });
            let mut line = v.to_string();
            line.push('\n');
            if let Err(e) = out.write_all(line.as_bytes()) {
                self.write_error = Some(e.into());
            }
        }
    }

    fn progress(&mut self, raw: u64) {
        if let Some(b) = &self.bar {
            b.inc(raw);
        }
    }

    fn file_done(&mut self, f: &FileReport) {
        if let (Some(e), false) = (&f.error, self.quiet) {
            let msg = format!("warning: {}: {e}", f.name);
            match &self.bar {
                Some(b) => b.println(msg),
                None => eprintln!("{msg}"),
            }
        }
    }
}

impl Events {
    /// Ends the progress bar, closes the rejects file, and turns failed inputs
    /// into exit code 3 (after the command has written its results).
    pub fn finish(self, report: &ScanReport) -> CliResult {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
        if let Some(e) = self.write_error {
            return Err(e.into());
        }
        if let Some(out) = self.rejects {
            out.finish().context("--rejects")?;
        }
        let failed: Vec<&FileReport> = report.failed_files().collect();
        if !failed.is_empty() {
            if self.quiet {
                let names: Vec<String> =
                    failed.iter().map(|f| format!("{}: {}", f.name, f.error.as_deref().unwrap_or(""))).collect();
                return Err(CliError::input(anyhow::anyhow!(names.join("\n  "))));
            }
            return Err(CliError::input_reported());
        }
        Ok(())
    }
}
