//! `flowhound inspect`: what is in this traffic? (`flowhound_engine::inspect`)

use flowhound_engine::inspect::{summarize, table, to_json};
use flowhound_flow::net::Networks;
use ipnet::IpNet;

use super::InputArgs;
use crate::exit::CliResult;

/// Summarize flow records: counts, rejects, time span, protocols, top talkers,
/// top ports, accept/reject, internal vs external, labels.
///
/// Example: flowhound inspect flows/ --json
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  flowhound inspect vpc-logs/ 'archive/*.log.gz'\n  flowhound inspect conn.log --json | jq .top_dst_ports\n  zcat flows.gz | flowhound inspect - --internal 203.0.113.0/24"
)]
pub struct Args {
    #[command(flatten)]
    pub input: InputArgs,

    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,

    /// Address ranges to count as internal, besides RFC 1918, RFC 6598 and ULA.
    #[arg(long, value_name = "CIDR", num_args = 1..)]
    pub internal: Vec<IpNet>,

    /// Rows in the top-N tables.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
}

pub fn run(a: Args) -> CliResult {
    let (inputs, opts) = a.input.prepare()?;
    let mut events = a.input.events(&inputs)?;
    let nets = Networks::new(&a.internal);
    let (total, report, order) = summarize(&inputs, &opts, &mut events, &nets);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&to_json(&total, &report, &order, a.top)).unwrap_or_default());
    } else {
        print!("{}", table(&total, &report, &order, a.top));
    }
    events.finish(&report)
}
