//! Fit one detector on a numeric matrix and score another, bypassing flow
//! parsing and feature extraction: lets `bench/` scripts compare a detector
//! with scikit-learn's on exactly the same (already prepared) rows.
//!
//!     cargo run --release -p flowhound-detect --example score_matrix -- \
//!         lof train.csv test.csv scores.txt [SEED] [PARAMS_JSON]
//!
//! CSV files without a header, one row per line, comma-separated numbers.
//! PARAMS_JSON overrides the detector's defaults, e.g. '{"reference": 10000}'.
//! Prints the scoring time (one thread) on stderr.

use std::error::Error;

use flowhound_detect::{Kind, Params};
use ndarray::Array2;

fn read(path: &str) -> Result<Array2<f32>, Box<dyn Error>> {
    let text = std::fs::read_to_string(path)?;
    let mut rows = 0;
    let mut v = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        for cell in line.split(',') {
            v.push(cell.trim().parse::<f32>()?);
        }
        rows += 1;
    }
    let cols = v.len() / rows.max(1);
    Ok(Array2::from_shape_vec((rows, cols), v)?)
}

fn main() -> Result<(), Box<dyn Error>> {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 5 {
        return Err("usage: score_matrix KIND TRAIN.csv TEST.csv OUT.txt [SEED] [PARAMS_JSON]".into());
    }
    let kind = Kind::parse(&a[1]).ok_or("unknown detector")?;
    let seed = a.get(5).map(|s| s.parse()).transpose()?.unwrap_or(42);
    let mut params = serde_json::to_value(Params::default_for(kind))?;
    if let Some(over) = a.get(6) {
        let over: serde_json::Value = serde_json::from_str(over)?;
        for (k, v) in over.as_object().ok_or("PARAMS_JSON must be an object")? {
            params[k] = v.clone();
        }
    }
    let params: Params = serde_json::from_value(params)?;
    let (train, test) = (read(&a[2])?, read(&a[3])?);
    let model = params.fit(train.view(), seed)?;
    let mut out = vec![0f32; test.nrows()];
    let t = std::time::Instant::now();
    model.score(test.view(), &mut out);
    // Scoring alone, on this thread: what bench/ann_check.py compares with.
    let secs = t.elapsed().as_secs_f64();
    eprintln!("scored {} rows in {secs:.3} s: {:.0} rows/s", test.nrows(), test.nrows() as f64 / secs);
    let text: String = out.iter().map(|s| format!("{s}\n")).collect();
    std::fs::write(&a[4], text)?;
    Ok(())
}
