//! The run loop every flowhound front end drives (`detect`, `watch`, the
//! dashboard's analyses and live view, `review`, `tune`, `report`, the
//! Lambda):
//!
//! ```text
//! inputs ─▶ scan::score_inputs ─▶ scored batches ─▶ Step (rule alerts, explanations)
//!        ─▶ Show::decide (allowlist, --min-severity, what is written) ─▶ Tally (counts)
//!        ─▶ incidents (flowhound_explain::Incidents) ─▶ finish_incidents ─▶ sinks / files / store
//! ```
//!
//! Front ends own their flags, their output format and where results go;
//! what a flow *is* (scored, raised, explained, shown, counted) is decided
//! here once. Analyst feedback closes the loop: [`review`] picks the flows
//! worth judging, [`feedback`] is what a verdict says, [`retrain`] turns
//! verdicts into a new model version.

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
pub use tally::{Tally, NOT_FLAGGED, SORT_HINT};
