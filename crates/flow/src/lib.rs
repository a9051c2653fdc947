//! flowhound-flow: the normalized [`FlowRecord`] and pure parsers for every
//! input format (bytes in, records out, no I/O), plus writers and the traffic
//! summary `inspect` prints.
//!
//! | format | reader | detected by |
//! |---|---|---|
//! | AWS VPC Flow Logs v2–v8, custom layouts, CloudWatch exports | [`vpc::VpcReader`] | header field names or a leading version number |
//! | Zeek conn.log TSV | [`tabular::TabularReader`] | a `#` directive line |
//! | Zeek JSON | [`json::JsonReader`] | `{` with `"id.orig_h"` |
//! | IoT-23 / Zeek-named CSV | tabular | `id.orig_h` column |
//! | UNSW-NB15 | tabular | `attack_cat` or `sbytes`+`dbytes` columns |
//! | CIC-IDS2017 (2017 and improved) | tabular | `Flow Duration` column |
//! | flowhound CSV / JSONL | tabular / json | `src`,`dst`,`start` columns / `{` |
//! | any CSV | tabular with a [`tabular::Mapping`] | the user's mapping |

pub mod error;
#[doc(hidden)]
pub mod fuzz;
pub mod json;
pub mod labels;
pub mod net;
pub mod netflow;
pub mod parquet;
mod parquet_pages;
pub mod parse;
pub mod pcap;
mod proto;
pub mod reader;
pub mod record;
pub mod row;
pub mod summary;
pub mod tabular;
pub mod time;
pub mod vpc;
pub mod write;

pub use error::{FlowError, Reject, RejectReason};
pub use reader::{detect, AnyReader, FlowReader, Format, LineKind};
pub use record::{Action, CloudContext, Counts, Direction, Extra, FlowRecord, GroundTruth, Timestamp};
