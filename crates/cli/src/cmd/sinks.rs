//! Alert sinks on the command line: `--config FILE` (`[[sink]]` tables),
//! repeatable `--sink KIND[:TARGET]`, and `flowhound config check`.

use std::path::{Path, PathBuf};

use flowhound_sink::{Config, ConfigSpec, Dispatcher, Meta, SinkSpec};

use crate::exit::{Classify, CliError, CliResult};

/// Where `detect` sends its incidents, besides its own output.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SinkArgs {
    /// TOML file with `[[sink]]` tables and a `[delivery]` table (docs/sinks.md).
    #[arg(long, value_name = "FILE", env = "FLOWHOUND_CONFIG")]
    pub config: Option<PathBuf>,

    /// Send incidents to a sink, repeatable: jsonl:PATH (`-` stdout), ocsf:PATH, ecs:PATH,
    /// sns:TOPIC_ARN, cloudwatch[:NAMESPACE], webhook:URL, slack:URL.
    #[arg(long, value_name = "KIND[:TARGET]")]
    pub sink: Vec<String>,

    /// Where undeliverable alerts wait for the next run, and the dedup memory
    /// [default: the config's, else <data dir>/flowhound/spool].
    #[arg(long, value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,

    /// Do not re-send an incident of the same threat class and actor within this much event time
    /// (`0s` turns dedup off) [default: the config's, else 1h].
    #[arg(long, value_name = "DURATION")]
    pub dedup_window: Option<String>,
}

/// The default spool: beside the dashboard's database.
pub fn default_spool() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("flowhound").join("spool"))
}

fn read_spec(path: &Path) -> CliResult<ConfigSpec> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::usage(anyhow::Error::from(e).context(format!("cannot read {}", path.display()))))?;
    ConfigSpec::parse(&text).map_err(|e| anyhow::Error::from(e).context(format!("in {}", path.display()))).usage()
}

impl SinkArgs {
    /// The checked configuration, or `None` when no sink is configured.
    /// Every problem of the file and the flags is listed (exit 2).
    pub fn load(&self) -> CliResult<Option<Config>> {
        let mut spec = match &self.config {
            Some(p) => read_spec(p)?,
            None => ConfigSpec::default(),
        };
        spec.sink.extend(self.sink.iter().map(|s| SinkSpec::from_flag(s)));
        if let Some(w) = &self.dedup_window {
            spec.delivery.dedup_window = Some(w.clone());
        }
        if let Some(d) = &self.spool_dir {
            spec.delivery.spool_dir = Some(d.clone());
        }
        if spec.sink.is_empty() {
            return Ok(None);
        }
        let mut config = spec.check().map_err(|e| match e {
            flowhound_sink::SinkError::Config(p) => {
                CliError::usage(anyhow::anyhow!("sink configuration:\n  {}", p.join("\n  ")))
            }
            e => CliError::usage(e),
        })?;
        if config.delivery.spool_dir.is_none() {
            config.delivery.spool_dir = default_spool();
        }
        Ok(Some(config))
    }
}

impl SinkArgs {
    /// The configured sinks, opened before any work is done so a bad path or
    /// client fails the run at once; `None` without sinks. `command`'s own
    /// output (`output`, stdout when absent or `-`) and a sink cannot both
    /// take stdout. Alerts name the model folder and the `source`.
    pub fn open(
        &self,
        command: &str,
        output: Option<&Path>,
        model: &Path,
        source: impl FnOnce() -> String,
    ) -> CliResult<Option<Dispatcher>> {
        let Some(config) = self.load()? else { return Ok(None) };
        let to_stdout = output.is_none_or(|p| p.as_os_str() == "-");
        if to_stdout && config.sinks.iter().any(|s| s.target.is_stdout()) {
            return Err(CliError::usage(anyhow::anyhow!(
                "a sink writes to stdout and so would {command}'s own output: give {command} -o FILE, or the sink a file"
            )));
        }
        let meta = Meta { model: flowhound_server::analysis::file_name(&model.to_string_lossy()), source: source() };
        let d = Dispatcher::new(&config, meta)
            .map_err(|e| CliError::usage(anyhow::anyhow!("cannot open the sinks: {e}")))?;
        Ok(Some(d))
    }
}

/// `flowhound config`: check a sink configuration.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Validate a configuration file (and --sink flags): list every problem, or the sinks it sets up.
    Check(SinkArgs),
}

pub fn run_config(a: ConfigArgs) -> CliResult {
    let ConfigCommand::Check(s) = a.command;
    if s.config.is_none() && s.sink.is_empty() {
        return Err(CliError::usage(anyhow::anyhow!("give --config FILE or --sink KIND[:TARGET] to check")));
    }
    let Some(c) = s.load()? else {
        println!("no sinks configured");
        return Ok(());
    };
    println!("{} sink(s):", c.sinks.len());
    for k in &c.sinks {
        let classes = if k.classes.is_empty() { "all classes".to_string() } else { k.classes.join(", ") };
        println!(
            "  {:<16} {:<10} {}  (min severity {}, {classes}, {}/s burst {}, {} retries)",
            k.name,
            k.target.kind(),
            k.target.address(),
            k.min_severity.name(),
            k.rate,
            k.burst,
            k.retries
        );
    }
    println!(
        "delivery: dedup window {:?}, spool {} (max {} bytes)",
        c.delivery.dedup_window,
        c.delivery.spool_dir.as_ref().map_or("none".into(), |d| d.display().to_string()),
        c.delivery.spool_max_bytes
    );
    Ok(())
}
