//! `flowhound publish`: records into a NATS JetStream stream for a worker
//! group (`flowhound_stream`; the design is docs/scale-out.md).

use flowhound_stream::{publish, PublishParams, StreamError, Target};

use super::InputArgs;
use crate::exit::{CliError, CliResult};

/// Parse INPUT once and publish every record to a JetStream stream for a
/// worker group, on the partitions of its addresses (`STREAM.rec.<p>`), with a
/// stable id (input and position): publishing the same input again stores
/// nothing twice. The stream is made when it does not exist.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "A record goes to its source's partition and, when that is another, to its destination's;\n`flowhound worker` scores the stream (docs/scale-out.md).\n\nExamples:\n  nats-server -js &\n  flowhound publish flows/ --to nats://127.0.0.1:4222/FLOWS\n  flowhound publish s3://logs/AWSLogs/ --to nats://10.0.0.5:4222 --partitions 32"
)]
pub struct Args {
    #[command(flatten)]
    pub input: InputArgs,

    /// The server and stream: nats://HOST:PORT[/STREAM] (stream FLOWS by default).
    #[arg(long, value_name = "URL")]
    pub to: String,

    /// Partitions of a new stream (sources are spread over them).
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub partitions: u32,

    /// Copies a cluster keeps of a new stream (JetStream replicas: 3 on a 3-node cluster, so
    /// that losing a node loses nothing).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub replicas: usize,

    /// How long the stream remembers record ids (a re-publish within it stores nothing twice).
    #[arg(long, default_value = "24h", value_name = "DURATION")]
    pub duplicate_window: String,
}

pub fn run(a: Args) -> CliResult {
    let target = Target::parse(&a.to).map_err(CliError::usage)?;
    let [window] = flowhound_engine::config::durations([("--duplicate-window", &a.duplicate_window)])?;
    let params = PublishParams {
        partitions: a.partitions,
        duplicate_window: window,
        replicas: a.replicas,
        ..PublishParams::new(target)
    };
    let (inputs, opts) = a.input.prepare()?;
    let mut events = a.input.events(&inputs)?;
    let done = publish(&params, &inputs, &opts, &mut events).map_err(|e| match e {
        StreamError::Settings(_) => CliError::usage(e),
        e => CliError::from(anyhow::Error::from(e)),
    })?;
    if !a.input.quiet {
        eprintln!(
            "published {} records to {} ({} partitions); {} were there already (same input and position)",
            done.records, params.target.stream, params.partitions, done.duplicates
        );
    }
    events.finish(&done.scan)
}
