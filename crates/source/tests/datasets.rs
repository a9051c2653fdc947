//! Exact counts on the real datasets in `../shared/datasets` (or
//! `$FLOWHOUND_DATASETS`). Skipped with a note when the folder is absent, so a
//! fresh clone still passes; CI has the folder.

use std::collections::BTreeMap;
use std::path::PathBuf;

use flowhound_flow::FlowRecord;
use flowhound_source::{resolve, scan, ScanOptions, ScanReport};

fn datasets() -> Option<PathBuf> {
    flowhound_source::datasets_dir(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

#[derive(Debug, Default, PartialEq)]
struct Counts {
    records: u64,
    rejected: u64,
    no_data: u64,
    benign: u64,
    malicious: u64,
    categories: BTreeMap<String, u64>,
}

fn count(paths: &[&str]) -> Option<(Counts, ScanReport)> {
    let dir = datasets()?;
    let args: Vec<String> = paths.iter().map(|p| dir.join(p).display().to_string()).collect();
    let inputs = resolve(&args).expect("dataset files exist");
    let mut c = Counts::default();
    let tally = |recs: &[FlowRecord]| {
        let mut t = Counts::default();
        for r in recs {
            if let Some(g) = &r.truth {
                if g.malicious {
                    t.malicious += 1;
                } else {
                    t.benign += 1;
                }
                if let Some(cat) = &g.category {
                    *t.categories.entry(cat.to_string()).or_default() += 1;
                }
            }
        }
        t
    };
    let report = scan(&inputs, &ScanOptions::default(), &mut (), tally, |t| {
        c.benign += t.benign;
        c.malicious += t.malicious;
        for (k, v) in t.categories {
            *c.categories.entry(k).or_default() += v;
        }
    });
    c.records = report.records;
    c.rejected = report.rejected;
    c.no_data = report.no_data + report.skip_data;
    assert!(report.failed_files().next().is_none(), "{:?}", report.files);
    Some((c, report))
}

fn cats(v: &[(&str, u64)]) -> BTreeMap<String, u64> {
    v.iter().map(|(k, n)| (k.to_string(), *n)).collect()
}

#[test]
fn vpc_documentation_examples() {
    let Some((c, report)) = count(&["vpc-flow-logs"]) else {
        return;
    };
    assert_eq!((c.records, c.no_data, c.rejected), (7, 2, 0));
    assert!(report.files.iter().all(|f| f.format == Some("vpc")));
}

#[test]
fn unsw_nb15_part_a() {
    let Some((c, _)) = count(&["unsw-nb15/UNSW_NB15_part-a.csv"]) else {
        return;
    };
    assert_eq!((c.records, c.rejected), (61_749, 0));
    assert_eq!((c.benign, c.malicious), (27_840, 33_909));
    let want = cats(&[
        ("Analysis", 506),
        ("Backdoor", 455),
        ("DoS", 3060),
        ("Exploits", 8299),
        ("Fuzzers", 4574),
        ("Generic", 14_073),
        ("Reconnaissance", 2640),
        ("Shellcode", 268),
        ("Worms", 34),
    ]);
    assert_eq!(c.categories, want);
}

#[test]
fn cic_ids2017_improved_sample() {
    let files = [
        ("BENIGN_part-a.csv", "BENIGN", 4000),
        ("DDoS_5000.csv", "DDoS", 5000),
        ("DoS_GoldenEye_5000.csv", "DoS GoldenEye", 5000),
        ("DoS_Hulk_5000.csv", "DoS Hulk", 5000),
        ("DoS_Slowloris_3859.csv", "DoS Slowloris", 3859),
        ("FTP-Patator_3972.csv", "FTP-Patator", 3972),
        ("Heartbleed_11.csv", "Heartbleed", 11),
        ("Infiltration_36.csv", "Infiltration", 36),
        ("Portscan_5000.csv", "Portscan", 5000),
        ("SSH-Patator_2961.csv", "SSH-Patator", 2961),
    ];
    for (file, label, n) in files {
        let Some((c, _)) = count(&[&format!("cic-ids2017-improved-sample/{file}")]) else {
            return;
        };
        assert_eq!((c.records, c.rejected), (n, 0), "{file}");
        if label == "BENIGN" {
            assert_eq!((c.benign, c.malicious), (n, 0), "{file}");
        } else {
            assert_eq!((c.benign, c.malicious), (0, n), "{file}");
            assert_eq!(c.categories, cats(&[(label, n)]), "{file}");
        }
    }
}

#[test]
fn iot23_labeled_captures() {
    /// (file, benign, malicious, categories)
    type Expect<'a> = (&'a str, u64, u64, &'a [(&'a str, u64)]);
    let files: [Expect; 8] = [
        ("CTU-Honeypot-Capture-4-1-labeled.csv", 452, 0, &[]),
        ("CTU-Honeypot-Capture-5-1-labeled.csv", 1374, 0, &[]),
        ("CTU-Honeypot-Capture-7-1-labeled.csv", 130, 0, &[]),
        ("CTU-Malware-Capture-20-1-labeled.csv", 3193, 16, &[("C&C-Torii", 16)]),
        ("CTU-Malware-Capture-21-1-labeled.csv", 3272, 14, &[("C&C-Torii", 14)]),
        ("CTU-Malware-Capture-42-1-labeled.csv", 4420, 6, &[("C&C-FileDownload", 3), ("FileDownload", 3)]),
        ("CTU-Malware-Capture-44-1-labeled.csv", 211, 26, &[("C&C", 14), ("C&C-FileDownload", 11), ("DDoS", 1)]),
        ("CTU-Malware-Capture-8-1-labeled.csv", 2181, 8222, &[("C&C", 8222)]),
    ];
    for (file, benign, malicious, categories) in files {
        let Some((c, _)) = count(&[&format!("iot-23/{file}")]) else {
            return;
        };
        assert_eq!((c.records, c.rejected), (benign + malicious, 0), "{file}");
        assert_eq!((c.benign, c.malicious), (benign, malicious), "{file}");
        assert_eq!(c.categories, cats(categories), "{file}");
    }
}

#[test]
fn zeek_conn_logs() {
    let files = [
        ("conn.2024-04-19_00-01.log", 1765),
        ("conn.2024-04-19_01-02.log", 2102),
        ("conn.2024-04-19_02-03.log", 1168),
        ("conn.2024-04-19_03-04.log", 1274),
        ("conn.2024-04-19_04-05.log", 1817),
        ("conn.2024-04-19_05-06.log", 1029),
        ("conn.2024-04-19_06-07.log", 1502),
        ("conn.2024-04-19_07-08.log", 877),
        ("conn.2024-04-19_08-09.log", 1258),
        ("conn.2024-04-19_09-10.log", 1542),
        ("conn.2024-04-19_10-11.log", 1344),
        ("conn.2024-04-19_11-12.log", 1071),
        ("proxy-conn.log", 463),
    ];
    for (file, n) in files {
        let Some((c, report)) = count(&[&format!("zeek-conn/{file}")]) else {
            return;
        };
        assert_eq!((c.records, c.rejected), (n, 0), "{file}");
        assert_eq!(report.files[0].format, Some("zeek"));
    }
    // The whole folder at once: 17,212 records, in file order.
    let Some((c, _)) = count(&["zeek-conn"]) else {
        return;
    };
    assert_eq!(c.records, files.iter().map(|(_, n)| n).sum::<u64>());
}
