//! The JSON report (`check --format json`) of the demo data, snapshotted byte for byte: scripts parse it, so it
//! changes only on purpose. The simulated instance serves the demo data set at its reference time, its clock set
//! there too; what still varies between runs (the cycle's duration, the loopback port) is replaced by a
//! placeholder before comparing. `MIDWATCH_BLESS=1 cargo test --test check report_json` rewrites
//! `tests/snapshots/check_report.json`.

use std::path::{Path, PathBuf};

use midwatch::cycle::{CheckOptions, Cycle};
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
    let outcome = Cycle::new(&config, &client, &opts).check(reference_now()).await.expect("a cycle");
    mask(&outcome.view(None).render(Format::Json, Detail::Detailed), &instance.url())
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

/// The lines of `expected` and `actual` that differ, as a unified diff with two lines of context.
fn line_diff(expected: &str, actual: &str) -> String {
    similar::TextDiff::from_lines(expected, actual)
        .unified_diff()
        .context_radius(2)
        .header("snapshot", "now")
        .to_string()
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
        "{} differs from the report (- snapshot, + now); run with MIDWATCH_BLESS=1 to accept:\n{}",
        path.display(),
        line_diff(&expected, actual)
    );
}

#[tokio::test]
async fn json_report_of_the_demo_data_matches_its_snapshot() {
    assert_snapshot("check_report.json", &demo_report().await);
}

#[test]
fn the_diff_shows_the_changed_lines_with_their_context_and_the_mask_hides_what_varies() {
    let expected = "a\nb\nc\nd\ne\nf\ng\nh\n";
    let actual = "a\nb\nc\nd\nE\nf\ng\nh\n";
    assert_eq!(line_diff(expected, actual), "--- snapshot\n+++ now\n@@ -3,5 +3,5 @@\n c\n d\n-e\n+E\n f\n g\n");
    let masked =
        mask("{\n  \"duration_seconds\": 0.042,\n  \"url\": \"http://127.0.0.1:4242/x\"\n}", "http://127.0.0.1:4242");
    assert_eq!(masked, "{\n  \"duration_seconds\": \"<duration>\",\n  \"url\": \"http://127.0.0.1:<port>/x\"\n}\n");
}
