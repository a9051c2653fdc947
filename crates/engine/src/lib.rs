//! The product, for every front end (`detect`, `watch`, the dashboard's
//! analyses and live view, `report`, `evaluate`, `train`, `review`, `tune`,
//! the Lambda): checked settings in ([`config`]), results out to outputs.
//!
//! ```text
//! inputs ─ scan::run_files ─┐                      ┌─▶ write::FlowWriter (files, stdout)
//!                            ├─▶ run::Pipeline ─────┼─▶ write::Alerts (sinks)
//! sources ─ watch::Watch ───┘   Step → Show →      └─▶ any run::Output (the dashboard's)
//!                               Tally → incidents
//! ```
//!
//! Front ends own their flags and their printing; what a flow *is* (scored,
//! raised, explained, shown, counted, grouped) and how a run goes (batches,
//! event time, checkpoints) is decided here once. Beside the run:
//! [`evaluate`], [`train`], [`inspect`], [`features`] (the export),
//! [`records`] (`convert`, `generate`), and the feedback loop — [`review`]
//! picks the flows worth judging, [`feedback`] is what a verdict says,
//! [`retrain`] turns verdicts into a new model version.

pub mod config;
pub mod evaluate;
pub mod features;
pub mod feedback;
pub mod inspect;
pub mod live;
pub mod outfile;
pub mod records;
pub mod retrain;
pub mod review;
pub mod run;
pub mod scan;
pub mod step;
pub mod tally;
pub mod train;
pub mod watch;
pub mod write;

pub use run::{Ending, Flow, IncidentNews, Output, OutputError, Outputs, Pipeline, RunError};
pub use scan::{run_files, score_inputs, Detect};
pub use step::{finish_incidents, Explained, Show, Shown, Step};
pub use tally::{Counts, Tally, NOT_FLAGGED, SORT_HINT};
