//! Every input under `fuzz/regressions/TARGET/` (inputs that once crashed a
//! fuzz target) and `fuzz/seeds/TARGET/` (the committed seed corpus) run
//! through the target's own code, `flowhound_flow::fuzz::TARGET`: a crash
//! fixed stays fixed without a fuzzer.

use std::path::Path;

fn replay(kind: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz").join(kind);
    let mut n = 0;
    let Ok(targets) = std::fs::read_dir(&root) else { return 0 };
    for t in targets.flatten() {
        let name = t.file_name().to_string_lossy().into_owned();
        // explain_config's inputs belong to flowhound-explain (its own test).
        let Some(run) = flowhound_flow::fuzz::target(&name) else { continue };
        for f in std::fs::read_dir(t.path()).expect("target folder").flatten() {
            let data = std::fs::read(f.path()).expect("input");
            let r = std::panic::catch_unwind(|| run(&data));
            assert!(r.is_ok(), "{name}: {} panics", f.path().display());
            n += 1;
        }
    }
    n
}

#[test]
fn inputs_that_once_crashed_a_fuzz_target_no_longer_do() {
    let n = replay("regressions");
    assert!(n >= 2, "the pcap regressions are committed: {n}");
}

#[test]
fn the_seed_corpus_runs_clean() {
    let n = replay("seeds");
    assert!(n >= 20, "{n} seeds");
}

/// Parquet files whose column chunks lie at a negative offset: refused by
/// flowhound's own check with the reason, not left to a panic inside the
/// parquet crate (which `ParquetText` would catch, but which says nothing).
#[test]
fn parquet_chunks_outside_the_file_are_named() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions/parquet");
    // And one whose page header declares a list longer than the bytes
    // there are: parquet 60.1 spun 5.6 s on its 4.8 KB; refused up front.
    for (name, said) in [
        ("negative-column-offset-1", "lies outside"),
        ("negative-column-offset-2", "lies outside"),
        ("thrift-list-length-spin-timeout", "elements in"),
    ] {
        let mut file = flowhound_flow::parquet::MAGIC.to_vec();
        file.extend(std::fs::read(dir.join(name)).expect("input"));
        file.extend_from_slice(flowhound_flow::parquet::MAGIC);
        let e = flowhound_flow::parquet::ParquetText::new(file).map(|_| ()).expect_err(name).to_string();
        assert!(e.contains(said), "{name}: {e}");
    }
}
