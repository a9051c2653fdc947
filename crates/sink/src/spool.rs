//! A sink's spool file, shared by every process that uses the same spool
//! directory (the default one is shared by every `detect` and `watch` of a
//! user): appends and rewrites happen under an exclusive lock on
//! `NAME.spool.lock`, so a line appended by one run while another replays is
//! never lost.
//!
//! Replaying takes the waiting lines out as a *claim*: under the lock the
//! spool file is renamed to `NAME.spool.claim.PID.N`, which its owner keeps
//! locked while it sends (network time is spent outside the spool lock, so
//! other runs keep appending). What was not sent goes back in front of
//! whatever was appended meanwhile. A claim whose owner died (its lock is
//! free: the kernel drops a dead process's locks) is taken back by the next
//! replay; lines of it that had gone out before the crash are sent again
//! (at least once, as documented).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Claims this process has made, for unique claim names.
static CLAIMS: AtomicU64 = AtomicU64::new(0);

/// Runs `f` holding an exclusive lock on `lock` (created when missing).
/// The lock is released when the file is closed, also when `f` fails.
pub(crate) fn locked<T>(lock: &Path, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    let l = OpenOptions::new().create(true).truncate(false).write(true).open(lock)?;
    l.lock()?;
    f()
}

/// Writes `bytes` to `path` through a file only this process uses, then
/// renames it over `path` (readers see the old or the new file, whole).
pub(crate) fn replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp.{}", std::process::id()));
    let tmp = path.with_file_name(name);
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_data()?;
    fs::rename(&tmp, path)
}

/// Why a line was not appended.
#[derive(Debug)]
pub(crate) enum AppendError {
    Full,
    Io(io::Error),
}

#[derive(Debug, Clone)]
pub(crate) struct Spool {
    /// `NAME.spool.jsonl`
    pub path: PathBuf,
    lock: PathBuf,
    dir: PathBuf,
    /// `NAME.spool.claim.`: the prefix of claim files.
    claim_prefix: String,
}

/// Lines taken out of the spool to be sent; locked while this value lives.
#[derive(Debug)]
pub(crate) struct Claim {
    _file: File,
    path: PathBuf,
    text: String,
}

impl Claim {
    /// The claimed lines, blank ones left out.
    pub fn lines(&self) -> Vec<&str> {
        self.text.lines().filter(|l| !l.trim().is_empty()).collect()
    }
}

fn read_lossy(p: &Path) -> io::Result<String> {
    match fs::read(p) {
        // A torn write can leave a partial UTF-8 sequence: that line is then
        // unreadable JSON and set aside, the others still go out.
        Ok(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(e),
    }
}

fn count(text: &str) -> u64 {
    text.lines().filter(|l| !l.trim().is_empty()).count() as u64
}

/// Appends `b` to `a` as lines (`a` ends with a newline unless empty).
fn join_lines(a: &mut String, b: &str) {
    if !a.is_empty() && !a.ends_with('\n') {
        a.push('\n');
    }
    a.push_str(b);
}

impl Spool {
    pub fn new(dir: &Path, name: &str) -> Spool {
        Spool {
            path: dir.join(format!("{name}.spool.jsonl")),
            lock: dir.join(format!("{name}.spool.lock")),
            dir: dir.to_path_buf(),
            claim_prefix: format!("{name}.spool.claim."),
        }
    }

    /// Lines waiting: in the spool file and in claims whose owner died
    /// (claims being sent by a live run are not counted).
    pub fn waiting(&self) -> u64 {
        locked(&self.lock, || Ok(count(&read_lossy(&self.path)?) + count(&self.orphans()?.0))).unwrap_or(0)
    }

    /// Appends one line (ending in `\n`) unless the file would pass `max` bytes.
    pub fn append(&self, line: &str, max: u64) -> Result<(), AppendError> {
        let r = locked(&self.lock, || {
            let size = fs::metadata(&self.path).map_or(0, |m| m.len());
            if size + line.len() as u64 > max {
                return Ok(false);
            }
            let mut f = OpenOptions::new().create(true).append(true).open(&self.path)?;
            f.write_all(line.as_bytes())?;
            f.sync_data()?;
            Ok(true)
        });
        match r {
            Ok(true) => Ok(()),
            Ok(false) => Err(AppendError::Full),
            Err(e) => Err(AppendError::Io(e)),
        }
    }

    /// Claims of processes that died, oldest name first: their text, and
    /// their paths (to remove once taken over).
    fn orphans(&self) -> io::Result<(String, Vec<PathBuf>)> {
        let mut paths: Vec<PathBuf> = fs::read_dir(&self.dir)?
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(&self.claim_prefix))
            .map(|e| e.path())
            .collect();
        paths.sort();
        let mut text = String::new();
        let mut taken = Vec::new();
        for p in paths {
            let Ok(f) = OpenOptions::new().read(true).write(true).open(&p) else { continue };
            // Held by a live process (this one included: each open is its own lock).
            if f.try_lock().is_err() {
                continue;
            }
            join_lines(&mut text, &read_lossy(&p)?);
            taken.push(p);
        }
        Ok((text, taken))
    }

    /// Takes every waiting line (and those of dead processes' claims) out of
    /// the spool; `None` when nothing waits.
    pub fn claim(&self) -> io::Result<Option<Claim>> {
        locked(&self.lock, || {
            let (mut text, orphans) = self.orphans()?;
            let waiting = read_lossy(&self.path)?;
            if count(&text) + count(&waiting) == 0 {
                // Blank lines only: nothing to claim, and nothing to keep.
                for p in &orphans {
                    fs::remove_file(p)?;
                }
                return Ok(None);
            }
            let n = CLAIMS.fetch_add(1, Ordering::Relaxed);
            let path = self.dir.join(format!("{}{}.{n}", self.claim_prefix, std::process::id()));
            if orphans.is_empty() {
                // The spool becomes the claim as it is, no copy. (Claims are
                // only looked at under the spool lock, held here, so it is
                // locked before anyone can take it for an orphan.)
                fs::rename(&self.path, &path)?;
                let file = OpenOptions::new().read(true).write(true).open(&path)?;
                file.lock()?;
                return Ok(Some(Claim { _file: file, path, text: waiting }));
            }
            let file = OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path)?;
            file.lock()?;
            join_lines(&mut text, &waiting);
            (&file).write_all(text.as_bytes())?;
            file.sync_data()?;
            // The claim holds every line now: only then may the sources go.
            for p in &orphans {
                fs::remove_file(p)?;
            }
            match fs::remove_file(&self.path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            Ok(Some(Claim { _file: file, path, text }))
        })
    }

    /// Returns a claim's lines after its first `done` to the front of the
    /// spool, before anything appended meanwhile, and ends the claim. Gives
    /// the number of lines now waiting.
    pub fn give_back(&self, claim: Claim, done: usize) -> io::Result<u64> {
        let lines = claim.lines();
        let rest = lines.get(done..).unwrap_or_default();
        locked(&self.lock, || {
            let appended = read_lossy(&self.path)?;
            if !rest.is_empty() {
                let mut text = rest.join("\n");
                text.push('\n');
                join_lines(&mut text, &appended);
                replace(&self.path, text.as_bytes())?;
            }
            fs::remove_file(&claim.path)?;
            Ok(rest.len() as u64 + count(&appended))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_appended_during_a_replay_are_kept_behind_the_unsent_ones() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = Spool::new(dir.path(), "hook");
        for l in ["a", "b", "c"] {
            s.append(&format!("{l}\n"), 1 << 20).expect("append");
        }
        let c = s.claim().expect("claim").expect("lines wait");
        assert_eq!(c.lines(), ["a", "b", "c"]);
        // Another run appends while this one sends "a" and fails on "b";
        // it claims only "d" (the first claim is held) and cannot send it either.
        let other = Spool::new(dir.path(), "hook");
        other.append("d\n", 1 << 20).expect("append");
        let d = other.claim().expect("claim").expect("d waits");
        assert_eq!(d.lines(), ["d"]);
        assert!(other.claim().expect("claim").is_none(), "both claims are held: nothing else waits");
        assert_eq!(other.give_back(d, 0).expect("give back"), 1);
        assert_eq!(s.give_back(c, 1).expect("give back"), 3);
        assert_eq!(fs::read_to_string(&s.path).expect("spool"), "b\nc\nd\n");
    }

    #[test]
    fn a_dead_processes_claim_is_taken_back_and_a_full_spool_refuses() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = Spool::new(dir.path(), "hook");
        s.append("x\n", 1 << 20).expect("append");
        // A claim file nobody holds: its owner died mid-replay.
        fs::write(dir.path().join("hook.spool.claim.99999.0"), "old1\nold2\n").expect("orphan");
        assert_eq!(s.waiting(), 3, "the dead run's lines count as waiting");
        let c = s.claim().expect("claim").expect("lines");
        assert_eq!(c.lines(), ["old1", "old2", "x"]);
        assert!(!dir.path().join("hook.spool.claim.99999.0").exists());
        assert_eq!(s.give_back(c, 3).expect("give back"), 0);
        assert!(!s.path.exists());
        let names: Vec<String> = fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into())
            .collect();
        assert!(!names.iter().any(|n| n.contains(".claim.")), "{names:?}");
        assert!(matches!(s.append("0123456789\n", 10), Err(AppendError::Full)));
        s.append("012345678\n", 10).expect("fits exactly");
        assert_eq!(s.waiting(), 1);
    }
}
