//! The `flowhound` command line as a library: the subcommands, their exit
//! codes and outputs, so the Lambda handler (`flowhound-lambda`) runs the same
//! `detect` as the binary.

pub mod cmd;
pub mod exit;
