//! A live run's saved progress: the sources' offsets (a followed file's
//! identity and position, the files and objects already read) and, beside
//! them, the window state after exactly the records those offsets cover —
//! so a restart, even after `kill -9`, neither loses nor repeats records and
//! continues with the windows `detect` would have.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use flowhound_source::live::{Mark, Resume, Spec};

/// Saved progress of the sources, one JSON file per set of sources, and the
/// generation of the window checkpoint that goes with it.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct State {
    pub sources: BTreeMap<String, Resume>,
    /// The checkpoint `<state>.windows.<generation>` holding the window state
    /// after exactly the records the offsets above cover.
    #[serde(default)]
    pub windows: Option<u64>,
}

/// The detector's side of a checkpoint: window state, the next flow
/// number, the event-time watermark, and what the explainer remembers (the
/// pairs' histories beacons and brute force are measured on; CBOR, empty
/// in a checkpoint of an older flowhound).
#[derive(Debug, PartialEq, Eq)]
pub struct Windows {
    pub flow: u64,
    pub watermark: i64,
    pub state: Vec<u8>,
    pub memory: Vec<u8>,
}

/// Windows only (flowhound before issue 29), and windows with the memory.
const WINDOWS_MAGIC_1: &[u8; 8] = b"FHWATCH1";
const WINDOWS_MAGIC: &[u8; 8] = b"FHWATCH2";

/// Why a checkpoint could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error("not a watch checkpoint")]
    NotOne,
    #[error("cut short")]
    Short,
}

/// Writes `path` whole or not at all: into a temporary file beside it,
/// then renamed over it.
fn replace_file(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> Result<(), CheckpointError>,
) -> Result<(), CheckpointError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    write(tmp.as_file_mut())?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Where generation `generation` of the windows beside `state_file` lives.
pub fn windows_path(state_file: &Path, generation: u64) -> PathBuf {
    let mut name = state_file.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".windows.{generation}"));
    state_file.with_file_name(name)
}

impl Windows {
    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        replace_file(path, |f| {
            f.write_all(WINDOWS_MAGIC)?;
            f.write_all(&self.flow.to_le_bytes())?;
            f.write_all(&self.watermark.to_le_bytes())?;
            f.write_all(&(self.state.len() as u64).to_le_bytes())?;
            f.write_all(&self.state)?;
            f.write_all(&self.memory)?;
            Ok(f.sync_data()?)
        })
    }

    pub fn load(path: &Path) -> Result<Windows, CheckpointError> {
        let b = std::fs::read(path)?;
        let (rest, two) = match b.strip_prefix(WINDOWS_MAGIC.as_slice()) {
            Some(rest) => (rest, true),
            None => (b.strip_prefix(WINDOWS_MAGIC_1.as_slice()).ok_or(CheckpointError::NotOne)?, false),
        };
        let (flow, rest) = rest.split_first_chunk::<8>().ok_or(CheckpointError::Short)?;
        let (mark, rest) = rest.split_first_chunk::<8>().ok_or(CheckpointError::Short)?;
        let (state, memory) = if two {
            let (len, rest) = rest.split_first_chunk::<8>().ok_or(CheckpointError::Short)?;
            let len = usize::try_from(u64::from_le_bytes(*len)).map_err(|_| CheckpointError::Short)?;
            if rest.len() < len {
                return Err(CheckpointError::Short);
            }
            (rest[..len].to_vec(), rest[len..].to_vec())
        } else {
            (rest.to_vec(), Vec::new())
        };
        Ok(Windows { flow: u64::from_le_bytes(*flow), watermark: i64::from_le_bytes(*mark), state, memory })
    }
}

impl State {
    /// The saved state, or a fresh one (`warn` hears why when the file is unreadable).
    pub fn load(path: &Path, warn: &mut dyn FnMut(String)) -> State {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                warn(format!("{}: unreadable watch state ({e}); starting afresh", path.display()));
                State::default()
            }),
            Err(_) => State::default(),
        }
    }

    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        replace_file(path, |f| Ok(serde_json::to_writer(f, self)?))
    }

    /// Applies the marks of fully scored chunks, per source (`names` in
    /// source order); true when anything moved.
    pub fn apply(&mut self, names: &[String], marks: &mut [Vec<Mark>]) -> bool {
        let mut changed = false;
        for (i, ms) in marks.iter_mut().enumerate() {
            for m in ms.drain(..) {
                let e = self.sources.entry(names[i].clone()).or_default();
                match m {
                    Mark::None => continue,
                    Mark::Offset { dev, ino, offset } => e.offset = Some((dev, ino, offset)),
                    Mark::Done(k) => {
                        e.done.insert(k);
                    }
                }
                changed = true;
            }
        }
        changed
    }
}

/// The state file of a set of sources in `dir`: two watches over different
/// sources keep apart. FNV-1a of the specs names it — a hash that must not
/// change between releases, or a restart would start afresh.
pub fn state_path(dir: &Path, specs: &[Spec]) -> PathBuf {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in specs.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n").bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    dir.join(format!("watch-{h:016x}.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_round_trip_and_a_foreign_or_short_file_is_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = dir.path().join("w");
        let w = Windows { flow: 42, watermark: -7, state: vec![1, 2, 3], memory: vec![9, 8] };
        w.save(&p).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(Windows::load(&p).unwrap_or_else(|e| panic!("{e}")), w);
        // An older flowhound's windows, without the memory, still load.
        let mut old = b"FHWATCH1".to_vec();
        old.extend(42u64.to_le_bytes());
        old.extend((-7i64).to_le_bytes());
        old.extend([1, 2, 3]);
        std::fs::write(&p, &old).unwrap_or_else(|e| panic!("{e}"));
        let back = Windows::load(&p).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((back.state, back.memory), (vec![1, 2, 3], vec![]));
        // A state longer than the file: cut short.
        let mut cut = b"FHWATCH2".to_vec();
        cut.extend([0u8; 16]);
        cut.extend(1000u64.to_le_bytes());
        cut.extend([1, 2]);
        std::fs::write(&p, &cut).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(Windows::load(&p), Err(CheckpointError::Short)));
        std::fs::write(&p, b"FHWATCH1\x01\x02").unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(Windows::load(&p), Err(CheckpointError::Short)));
        std::fs::write(&p, b"{\"sources\":{}}").unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(Windows::load(&p), Err(CheckpointError::NotOne)));
    }

    #[test]
    fn marks_move_offsets_and_the_state_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let specs = [Spec::parse("file:/var/log/a.log").unwrap_or_else(|e| panic!("{e}"))];
        let path = state_path(dir.path(), &specs);
        assert_eq!(path, state_path(dir.path(), &specs), "the same sources, the same file");
        let names = vec![specs[0].to_string()];
        let mut s = State::default();
        let mut marks = vec![vec![Mark::None]];
        assert!(!s.apply(&names, &mut marks), "nothing to record");
        marks[0].push(Mark::Offset { dev: 1, ino: 2, offset: 300 });
        marks[0].push(Mark::Offset { dev: 1, ino: 2, offset: 450 });
        assert!(s.apply(&names, &mut marks));
        assert!(marks[0].is_empty());
        s.windows = Some(3);
        s.save(&path).unwrap_or_else(|e| panic!("{e}"));
        let mut warned = Vec::new();
        let back = State::load(&path, &mut |w| warned.push(w));
        assert_eq!(back.sources[&names[0]].offset, Some((1, 2, 450)), "the last mark wins");
        assert_eq!(back.windows, Some(3));
        std::fs::write(&path, b"{not json").unwrap_or_else(|e| panic!("{e}"));
        let fresh = State::load(&path, &mut |w| warned.push(w));
        assert!(fresh.sources.is_empty() && warned.len() == 1, "{warned:?}");
    }
}
