//! Alert sinks on the command line: `--config FILE` (`[[sink]]` tables),
//! repeatable `--sink KIND[:TARGET]`, and `flowhound config check`.

use std::path::PathBuf;

use flowhound_engine::config::SinkParams;

use crate::exit::{CliError, CliResult};

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

impl SinkArgs {
    pub fn params(&self) -> SinkParams {
        SinkParams {
            config: self.config.clone(),
            sinks: self.sink.clone(),
            spool_dir: self.spool_dir.clone(),
            dedup_window: self.dedup_window.clone(),
            default_spool: default_spool(),
        }
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
    let Some(c) = s.params().load()? else {
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
