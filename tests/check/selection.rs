//! `check --user` and `--mid-server` against the stateful simulated instance: only the selected users are
//! read, judged and written; another user's open record is left as it is.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use midwatch::cycle::{CheckOptions, Cycle, CycleError, Outcome};
use midwatch::domain::{Scope, Selection};
use midwatch::writeback::WriteBack;
use midwatch_sim::query::field_string as text;
use midwatch_sim::{Dataset, FakeInstance};
use serde_json::Value;

use crate::support::*;

struct Site {
    instance: FakeInstance,
    config: midwatch::config::Config,
    client: midwatch::snow::Client,
}

async fn site() -> Site {
    let instance = FakeInstance::start(Dataset::demo(reference_now()), USER, PASSWORD).await.expect("start");
    instance.set_clock(reference_now());
    let config = config_for(&instance.url());
    let client = client(&config);
    Site { instance, config, client }
}

pub(crate) fn users(names: &[&str]) -> Scope {
    Scope::of(Selection { users: names.iter().map(|n| n.to_string()).collect(), mid_servers: BTreeSet::new() })
}

fn mid_servers(names: &[&str]) -> Scope {
    Scope::of(Selection { users: BTreeSet::new(), mid_servers: names.iter().map(|n| n.to_string()).collect() })
}

impl Site {
    async fn check(&self, scope: Scope, now: DateTime<Utc>) -> Result<Outcome, CycleError> {
        self.instance.set_clock(now);
        let mut opts = CheckOptions::from_config(&self.config);
        opts.scope = scope;
        Cycle::new(&self.config, &self.client, &opts).check(now).await
    }

    /// (message, state, count) of midwatch's records, sorted.
    fn records(&self) -> Vec<(String, String, String)> {
        let mut out: Vec<_> = self
            .instance
            .rows("ecc_agent_issue")
            .iter()
            .filter(|r| text(r, "source") == "midwatch")
            .map(|r| (text(r, "message"), text(r, "state"), text(r, "count")))
            .collect();
        out.sort();
        out
    }

    fn queries_of(&self, table: &str) -> Vec<String> {
        table_queries(&self.instance, table)
    }
}

/// The `sysparm_query` of every read of `table` since the last `reset_counters`.
pub(crate) fn table_queries(instance: &FakeInstance, table: &str) -> Vec<String> {
    queries_at(instance, &format!("/api/now/table/{table}"))
}

/// The `sysparm_query` of every GET of `path` (a table's or the Aggregate API's), direct or inside a Batch
/// API call.
pub(crate) fn queries_at(instance: &FakeInstance, path: &str) -> Vec<String> {
    let mut out = Vec::new();
    for r in instance.requests() {
        if r.method == "GET" && r.path == path {
            out.extend(r.query.iter().filter(|(k, _)| k == "sysparm_query").map(|(_, v)| v.clone()));
        }
        if r.path == "/api/now/v1/batch" {
            let body: Value = serde_json::from_str(&r.body).unwrap_or_default();
            for item in body["rest_requests"].as_array().cloned().unwrap_or_default() {
                let url = item["url"].as_str().unwrap_or_default();
                if url.starts_with(&format!("{path}?")) {
                    let parsed = reqwest::Url::parse(&format!("http://x{url}")).expect("sub-request url");
                    out.extend(parsed.query_pairs().filter(|(k, _)| k == "sysparm_query").map(|(_, v)| v.into_owned()));
                }
            }
        }
    }
    out
}

/// The demo's data dated now, and a config file for it (the directory that holds it, its path): what the
/// binary is run against.
pub(crate) async fn live_demo() -> (FakeInstance, tempfile::TempDir, String) {
    let instance = FakeInstance::start(Dataset::demo(Utc::now()), USER, PASSWORD).await.expect("start");
    let (dir, config) = config_file(&instance.url());
    let config = config.to_str().expect("utf-8 path").to_string();
    (instance, dir, config)
}

/// Runs the binary off the runtime, which keeps serving the simulated instance meanwhile.
pub(crate) async fn binary(args: &[&str]) -> (i32, String, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || run_binary(&args.iter().map(String::as_str).collect::<Vec<_>>()))
        .await
        .expect("join")
}

fn minutes(m: i64) -> chrono::Duration {
    chrono::Duration::minutes(m)
}

#[tokio::test]
async fn a_selected_check_writes_only_its_users_records_and_leaves_another_users_open() {
    let site = site().await;
    // A full check first: five open records, one per finding.
    let all = site.check(Scope::All, reference_now()).await.expect("full check");
    assert_eq!(all.report.findings.len(), 5);
    assert_eq!(site.records().len(), 5);

    // midserver2 alone, still failing: its record is counted, no other record is touched.
    let later = reference_now() + minutes(5);
    let one = site.check(users(&["midserver2"]), later).await.expect("selected check");
    assert_eq!(one.report.findings.iter().map(|f| f.user.as_str()).collect::<Vec<_>>(), ["midserver2"]);
    assert_eq!(one.report.selected_users.as_deref(), Some(&["midserver2".to_string()][..]));
    assert!(one.report.status_line().contains("1 finding (1 authentication) for midserver2 on acme"));
    let line = one.report.status_line();
    let perfdata = line.split_once(" | ").map(|(_, perf)| perf).unwrap_or_default();
    assert!(perfdata.starts_with("findings=1 down_mid_servers=1 "), "{perfdata}");
    let WriteBack::Applied { applied, .. } = &one.write_back else { panic!("{:?}", one.write_back) };
    assert_eq!((applied.created.len(), applied.counted.len(), applied.resolved.len()), (0, 1, 0));
    let counts: Vec<(bool, String)> =
        site.records().into_iter().map(|(m, _, c)| (m.contains("User midserver2 "), c)).collect();
    assert!(counts.iter().all(|(mine, c)| c == if *mine { "2" } else { "1" }), "{counts:?}");
    assert!(one.email().is_none(), "a selected check sends no email");

    // mid.paris alone after its MID Server came back: its record is resolved; midserver2's and the others stay.
    site.instance.edit(|t| {
        for m in t.get_mut("ecc_agent").into_iter().flatten() {
            if text(m, "name") == "mid-paris-01" {
                m.insert("status".into(), Value::String("Up".into()));
            }
        }
    });
    let paris = site.check(users(&["mid.paris"]), later + minutes(5)).await.expect("selected check");
    assert!(paris.report.findings.is_empty());
    assert_eq!(paris.report.status, midwatch::domain::Status::Ok);
    let WriteBack::Applied { applied, .. } = &paris.write_back else { panic!("{:?}", paris.write_back) };
    assert_eq!((applied.created.len(), applied.counted.len(), applied.resolved.len()), (0, 0, 1));
    let resolved: Vec<String> =
        site.records().into_iter().filter(|(_, s, _)| s == "resolved").map(|(m, ..)| m).collect();
    assert_eq!(resolved.len(), 1);
    assert!(resolved[0].contains("User mid.paris "), "{resolved:?}");
    let open = site.records().into_iter().filter(|(_, s, _)| s != "resolved").count();
    assert_eq!(open, 4, "midserver2's, local-midserver's, mid.tokyo's and ardis.maison's stay open");
}

#[tokio::test]
async fn a_selected_check_creates_only_its_users_record_and_reads_only_their_rows() {
    let site = site().await;
    site.instance.reset_counters();
    let one = site.check(mid_servers(&["mid-sydney-01"]), reference_now()).await.expect("selected check");
    // mid-sydney-01's user is local-midserver, who is also on mid-sydney-02: both count, as the built-in job counts.
    assert_eq!(one.report.findings.len(), 1);
    assert!(one.report.findings[0].message.contains("User local-midserver associated with 2 down MID Servers"));
    assert_eq!(site.records().len(), 1, "one record created, for local-midserver");

    // No whole-table read: every read of the users, roles, MID Servers and their configuration is narrowed.
    assert!(!site.queries_of("sys_user_has_role").is_empty(), "sys_user_has_role is read");
    for q in site.queries_of("sys_user_has_role") {
        assert!(q.contains("userIN"), "{q}");
    }
    assert!(!site.queries_of("ecc_agent_config").is_empty(), "ecc_agent_config is read");
    for q in site.queries_of("ecc_agent_config") {
        assert!(q.contains("valueIN") || q.contains("ecc_agentIN"), "{q}");
    }
    assert!(!site.queries_of("ecc_agent").is_empty(), "ecc_agent is read");
    for q in site.queries_of("ecc_agent") {
        assert!(q.contains("nameIN") || q.contains("sys_idIN"), "{q}");
    }
    assert!(!site.queries_of("sys_user").is_empty(), "sys_user is read");
    for q in site.queries_of("sys_user") {
        assert!(q.contains("user_nameIN"), "{q}");
    }
    let events = site.queries_of("sysevent").join("\n");
    assert!(!events.contains("midserver2") && !events.contains("mid.paris"), "{events}");
}

#[tokio::test]
async fn a_selected_dry_run_plans_only_its_users_writes() {
    let site = site().await;
    site.check(Scope::All, reference_now()).await.expect("full check");
    let mut opts = CheckOptions::from_config(&site.config);
    opts.scope = users(&["ardis.maison"]);
    opts.dry_run = true;
    let later = reference_now() + minutes(5);
    site.instance.set_clock(later);
    let dry = Cycle::new(&site.config, &site.client, &opts).check(later).await.expect("dry run");
    let WriteBack::DryRun { plan, .. } = &dry.write_back else { panic!("{:?}", dry.write_back) };
    let json = serde_json::to_value(plan).expect("plan as JSON");
    assert_eq!(json["count"].as_array().map(Vec::len), Some(1), "{json}");
    assert_eq!(json["resolve"].as_array().map(Vec::len), Some(0), "{json}");
    assert!(json["count"][0]["message"].as_str().is_some_and(|m| m.contains("User ardis.maison ")));
}

#[tokio::test]
async fn a_name_that_matches_nothing_is_a_usage_error() {
    let site = site().await;
    let error = site.check(users(&["midserver2", "midserver9"]), reference_now()).await.expect_err("unknown name");
    assert!(matches!(error, CycleError::UnknownName(_)), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("--user 'midserver9': no MID Server user of that name"), "{text}");
    assert!(!text.contains("'midserver2'"), "{text}");
    let error = site.check(mid_servers(&["mid-nowhere-01"]), reference_now()).await.expect_err("unknown MID Server");
    assert!(error.to_string().contains("--mid-server 'mid-nowhere-01': no MID Server of that name"), "{error}");
    assert!(site.records().is_empty(), "nothing written");

    // The binary: exit 3 (UNKNOWN), the reason on the status line, also with --format json.
    let (_dir, config) = config_file(&site.instance.url());
    let config = config.to_str().expect("utf-8 path");
    let (code, out, _) = binary(&["check", "--config", config, "--user", "nobody"]).await;
    assert_eq!(code, 3, "{out}");
    assert!(out.starts_with("MIDWATCH UNKNOWN - --user 'nobody': no MID Server user of that name"), "{out}");
    let (code, out, _) = binary(&["check", "--config", config, "--mid-server", "x", "--format", "json"]).await;
    assert_eq!(code, 3, "{out}");
    let doc: Value = serde_json::from_str(&out).expect("one JSON document");
    assert!(doc.to_string().contains("no MID Server of that name"), "{doc}");
    let (code, _, err) = binary(&["check", "--config", config, "--user", ""]).await;
    assert_eq!(code, 3, "an empty name is refused by the command line: {err}");
}

#[tokio::test]
async fn a_name_in_another_case_is_that_user_and_a_misspelt_one_gets_did_you_mean() {
    let (_instance, _dir, config) = live_demo().await;
    // The instance compares names without regard to case: this is midserver2.
    let (code, out, err) = binary(&["check", "--config", &config, "--user", "MIDSERVER2", "--no-write"]).await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.starts_with("MIDWATCH CRITICAL - 1 finding (1 authentication) for MIDSERVER2 on acme"), "{out}");

    let (code, out, err) =
        binary(&["check", "--config", &config, "--user", "midservr2", "--mid-server", "mid-londn-01"]).await;
    assert_eq!(code, 3, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "MIDWATCH UNKNOWN - --user 'midservr2': no MID Server user of that name; did you mean 'midserver2'? (names \
         are compared without regard to case, as the instance compares them)",
        "the usage error ends with its own sentence, no instance name after it"
    );
    assert_eq!(
        lines[1],
        "--mid-server 'mid-londn-01': no MID Server of that name (ecc_agent.name, compared without regard to case); \
         did you mean 'mid-london-01'?"
    );
}

#[tokio::test]
async fn the_json_report_of_a_selected_check_names_its_users() {
    let (_instance, _dir, config) = live_demo().await;
    let (code, out, err) =
        binary(&["check", "--config", &config, "--user", "mid.tokyo", "--format", "json", "--no-write"]).await;
    assert_eq!(code, 2, "{out}{err}");
    let doc: Value = serde_json::from_str(&out).expect("one JSON document");
    assert_eq!(doc["selected_users"], serde_json::json!(["mid.tokyo"]), "{doc}");
    assert_eq!(doc["findings"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_hostile_name_stays_a_name_it_selects_nothing_and_reaches_no_query() {
    let site = site().await;
    site.instance.reset_counters();
    for hostile in ["midserver2^ORuser_nameISNOTEMPTY", "mid.paris^NQactive=true", "*", "midserver2\u{1b}[2J"] {
        let error = site.check(users(&[hostile]), reference_now()).await.expect_err("no such user");
        let text = error.to_string();
        assert!(text.contains("no MID Server user of that name"), "{text}");
        assert!(!text.contains('\u{1b}'), "the name is shown escaped: {text}");
    }
    for table in ["sys_user", "ecc_agent_config", "sys_user_has_role"] {
        for q in site.queries_of(table) {
            assert!(!q.contains("ISNOTEMPTY") && !q.contains("active=true") && !q.contains('*'), "{table}: {q}");
        }
    }
    assert!(site.records().is_empty());
}
