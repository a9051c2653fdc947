//! Fit the Random Forest on a numeric matrix and print P(malicious) for
//! another: compares the forest with scikit-learn's on the same prepared rows.
//!
//!     cargo run --release -p flowhound-detect --example forest_matrix -- \
//!         train.csv test.csv out.txt [SEED] [PARAMS_JSON]
//!
//! CSV files without a header; the last column of each row is its class id
//! (0 = benign).

use std::error::Error;

use flowhound_detect::forest::ForestParams;
use ndarray::Array2;

fn read(path: &str) -> Result<(Array2<f32>, Vec<u16>), Box<dyn Error>> {
    let text = std::fs::read_to_string(path)?;
    let (mut v, mut y) = (Vec::new(), Vec::new());
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let cells: Vec<&str> = line.split(',').collect();
        let (last, row) = cells.split_last().ok_or("empty line")?;
        for c in row {
            v.push(c.trim().parse::<f32>()?);
        }
        y.push(last.trim().parse::<u16>()?);
    }
    let cols = v.len() / y.len().max(1);
    Ok((Array2::from_shape_vec((y.len(), cols), v)?, y))
}

fn main() -> Result<(), Box<dyn Error>> {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 4 {
        return Err("usage: forest_matrix TRAIN.csv TEST.csv OUT.txt [SEED] [PARAMS_JSON]".into());
    }
    let (xa, ya) = read(&a[1])?;
    let (xb, _) = read(&a[2])?;
    let seed = a.get(4).map(|s| s.parse()).transpose()?.unwrap_or(42);
    let p: ForestParams = match a.get(5) {
        Some(j) => serde_json::from_str(j)?,
        None => ForestParams::default(),
    };
    let classes = usize::from(ya.iter().copied().max().unwrap_or(0)) + 1;
    let f = p.fit(xa.view(), &ya, classes, seed)?;
    let proba = f.predict_proba(xb.view());
    let out: String = proba.chunks(classes).map(|r| format!("{}\n", 1.0 - r[0])).collect();
    std::fs::write(&a[3], out)?;
    Ok(())
}
