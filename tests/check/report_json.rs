//! The JSON report (`check --format json`) of the demo data, snapshotted byte for byte: scripts parse it, so it
//! changes only on purpose. The simulated instance serves the demo data set at its reference time, its clock set
//! there too; what still varies between runs (the cycle's duration, the loopback port) is replaced by a
//! placeholder before comparing. `MIDWATCH_BLESS=1 cargo test --test check report_json` rewrites
//! `tests/snapshots/check_report.json`.

use std::path::{Path, PathBuf};

use midwatch::cycle::{self, CheckOptions};
use midwatch::present::{Detail, Format};
use midwatch_sim::{Dataset, FakeInstance};

use crate::support::*;

/// `check --format json` on the demo data at its reference time, with what varies between runs masked.
async fn demo_report() -> String {
    let instance = FakeInstance::start(Dataset::demo(reference_now()), USER, PASSWORD).await.expect("start");
    instance.set_clock(reference_now());
    let config = config_for(&instance.url());
    let client = client(&config);
    let opts = CheckOptions::from_config(&config);
    let outcome = cycle::check(&config, &client, &opts, reference_now()).await.expect("a cycle");
    mask(&outcome.render(Format::Json, Detail::Detailed), &instance.url())
}

/// The report with the duration and the instance's loopback address replaced by placeholders.
fn mask(json: &str, url: &str) -> String {
    let mut out: String = json
        .lines()
        .map(|line| match line.split_once("\"duration_seconds\": ") {
            Some((indent, value)) => {
                let comma = if value.ends_with(',') { "," } else { "" };
                format!("{indent}\"duration_seconds\": \"<duration>\"{comma}")
            }
            None => line.replace(url, "http://127.0.0.1:<port>"),
        })
        .collect::<Vec<_>>()
        .join("\n");
    out.push('\n');
    out
}

fn snapshot_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("snapshots").join(name)
}

/// The lines of `expected` and `actual` that differ, `-` and `+`, with two lines of context around each change.
fn line_diff(expected: &str, actual: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    // lcs[i][j]: the longest common subsequence of a[i..] and b[j..].
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    // (change, the snapshot's line number, text); an added line has no number in the snapshot.
    let mut ops: Vec<(char, String, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push((' ', (i + 1).to_string(), a[i]));
            (i, j) = (i + 1, j + 1);
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', (i + 1).to_string(), a[i]));
            i += 1;
        } else {
            ops.push(('+', String::new(), b[j]));
            j += 1;
        }
    }
    let near_change = |k: usize| ops[k.saturating_sub(2)..(k + 3).min(ops.len())].iter().any(|(op, ..)| *op != ' ');
    let mut out = String::new();
    let mut skipped = false;
    for (k, (op, line, text)) in ops.iter().enumerate() {
        if near_change(k) {
            out.push_str(&format!("{op} {line:>4} {text}\n"));
            skipped = false;
        } else if !skipped {
            out.push_str("  ...\n");
            skipped = true;
        }
    }
    out
}

fn assert_snapshot(name: &str, actual: &str) {
    let path = snapshot_path(name);
    if std::env::var_os("MIDWATCH_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, actual).expect("write snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with MIDWATCH_BLESS=1 to create it", path.display()));
    assert!(
        expected == actual,
        "{} differs from the report (- snapshot, + now, numbered as in the snapshot); run with MIDWATCH_BLESS=1 \
         to accept:\n{}",
        path.display(),
        line_diff(&expected, actual)
    );
}

#[tokio::test]
async fn json_report_of_the_demo_data_matches_its_snapshot() {
    assert_snapshot("check_report.json", &demo_report().await);
}

#[test]
fn the_diff_shows_the_changed_lines_with_their_context() {
    let expected = "a\nb\nc\nd\ne\nf\ng\nh\n";
    let actual = "a\nb\nc\nd\nE\nf\ng\nh\n";
    assert_eq!(
        line_diff(expected, actual),
        "  ...\n     3 c\n     4 d\n-    5 e\n+      E\n     6 f\n     7 g\n  ...\n"
    );
    let masked =
        mask("{\n  \"duration_seconds\": 0.042,\n  \"url\": \"http://127.0.0.1:4242/x\"\n}", "http://127.0.0.1:4242");
    assert_eq!(masked, "{\n  \"duration_seconds\": \"<duration>\",\n  \"url\": \"http://127.0.0.1:<port>/x\"\n}\n");
}
