//! A worker group's results read where people look: the dashboard's live
//! analysis (`serve --watch nats://…`) and `watch --source nats://…`'s
//! lines. Nothing is scored here: the group's workers did it (and alerted).

use std::io::Write;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use flowhound_engine::{Flow, Shown};
use flowhound_server::live::LiveFeed;
use flowhound_stream::view::{self, Latest, Totals};
use flowhound_stream::wire::{self, Counted, Found, News};
use flowhound_stream::{Subject, Target};

use crate::exit::{CliError, CliResult};

/// Whether a `--source`/`--watch` spec names a worker group.
pub fn is_group(spec: &str) -> bool {
    spec.starts_with("nats://")
}

/// The one group among `specs`, when they name one; a group with anything
/// else beside it is a usage error.
pub fn group_of(specs: &[String], flag: &str) -> CliResult<Option<Target>> {
    let Some(g) = specs.iter().find(|s| is_group(s)) else { return Ok(None) };
    if specs.len() > 1 {
        return Err(CliError::usage(anyhow::anyhow!(
            "{flag} {g}: a worker group's results are read alone, not beside other sources"
        )));
    }
    Target::parse(g).map(Some).map_err(|e| CliError::usage(anyhow::anyhow!("{flag}: {e}")))
}

/// Feeds the dashboard's live analysis from the group until `stop`: its
/// flagged flows (with the rows feedback retrains on), its counts and its
/// incidents. Messages that do not read back, or whose verdict another
/// model made (another number of voters), are counted and skipped.
pub fn dashboard(target: &Target, mut feed: LiveFeed, stop: &AtomicBool, started: impl FnOnce()) -> CliResult {
    let (mut totals, mut latest, mut bad) = (Totals::default(), Latest::default(), 0u64);
    let voters = feed.voters();
    let kinds = [Subject::Findings, Subject::Counts, Subject::News];
    let r = view::follow(target, &kinds, (stop, None), started, |batch| {
        let (mut touched, mut ended, mut counted) = (Vec::new(), Vec::new(), false);
        for (kind, b) in batch {
            match kind {
                Subject::Findings => {
                    let f = wire::decode::<Found>(&b).ok();
                    let f = f.and_then(|f| Some((flowhound_stream::decode(f.record.as_bytes()).ok()?, f)));
                    let Some((r, f)) = f.filter(|(_, f)| f.verdict.models.len() == voters) else {
                        bad += 1;
                        continue;
                    };
                    let shown = Shown { entry: f.entry.as_ref(), flagged: true, shown: f.grows, written: false };
                    let x = Flow {
                        id: f.n,
                        record: &r,
                        verdict: &f.verdict,
                        finding: Some(&f.finding),
                        shown,
                        raw: &f.raw,
                        input: &[],
                    };
                    feed.flagged(&x, &f.finding);
                }
                Subject::Counts => match wire::decode::<Counted>(&b) {
                    Ok(c) => counted |= totals.update(c),
                    Err(_) => bad += 1,
                },
                Subject::News => match wire::decode::<News>(&b) {
                    Ok(n) if latest.admit(&n) => {
                        if n.ended { &mut ended } else { &mut touched }.push(n.incident);
                    }
                    Ok(_) => {}
                    Err(_) => bad += 1,
                },
                _ => {}
            }
        }
        if counted {
            feed.set_counts(totals.total());
        }
        feed.publish(&touched, &ended)
    });
    if bad > 0 {
        eprintln!("warning: {bad} message(s) of the group did not read back, or came from another model: skipped");
    }
    match r {
        Ok(Ok(())) => {
            feed.finish(None);
            Ok(())
        }
        Ok(Err(e)) => {
            let why = format!("the dashboard's store: {e}");
            feed.finish(Some(&why));
            Err(CliError::from(anyhow::anyhow!(why)))
        }
        Err(e) => {
            feed.finish(Some(&e.to_string()));
            Err(CliError::usage(anyhow::Error::from(e)))
        }
    }
}

/// Writes the group's output lines (scored flows; with `incidents`, the
/// incidents as they open and end) to `out` as they come, until `stop` or
/// `idle_exit`.
pub fn lines(
    target: &Target,
    incidents: bool,
    out: &mut dyn Write,
    (stop, idle_exit): (&AtomicBool, Option<Duration>),
    started: impl FnOnce(),
) -> CliResult {
    let kind = if incidents { Subject::Incidents } else { Subject::Scored };
    let r = view::follow(target, &[kind], (stop, idle_exit), started, |batch| {
        for (_, line) in batch {
            out.write_all(&line)?;
            out.write_all(b"\n")?;
        }
        out.flush()
    });
    match r {
        Ok(r) => r.map_err(|e| CliError::from(anyhow::anyhow!("cannot write the group's lines: {e}"))),
        Err(e) => Err(CliError::usage(anyhow::Error::from(e))),
    }
}
