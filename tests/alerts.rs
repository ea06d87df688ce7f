//! The shipped alert rules and Grafana dashboard (deploy/): the rules pass `promtool check
//! rules` and their unit tests (`promtool test rules`, Debian package `prometheus`); every
//! alert has a unit test; the dashboard parses, its panels are well formed, and each of its
//! queries is valid PromQL (checked by promtool as a recording rule); and every metric the
//! rules and the dashboard name is one a real node exports — read from the `/metrics` of a busy
//! node (an ACME order failing, a CA problem, probed names, a fleet over etcd).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::operator::busy_node;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

const RULES: &str = "deploy/prometheus/dcv-proxy.rules.yml";
const RULE_TESTS: &str = "deploy/prometheus/dcv-proxy.rules.test.yml";
const DASHBOARD: &str = "deploy/grafana/dcv-proxy.json";

/// `promtool <args>`: its output, failing the test with it unless it succeeds.
fn promtool(args: &[&str], dir: &Path) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect(
            "run promtool (Debian package `prometheus`; scripts/install-deps test installs it)",
        );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn alert_rules_pass_promtool_and_their_unit_tests() {
    let dir = repo("deploy/prometheus");
    let check = promtool(&["check", "rules", "dcv-proxy.rules.yml"], &dir);
    assert!(check.contains("SUCCESS: 8 rules found"), "{check}");
    let tests = promtool(&["test", "rules", "dcv-proxy.rules.test.yml"], &dir);
    assert!(tests.contains("SUCCESS"), "{tests}");

    // Every alert has a test case (a rule nobody tested is one nobody knows fires).
    let rules = std::fs::read_to_string(repo(RULES)).unwrap();
    let cases = std::fs::read_to_string(repo(RULE_TESTS)).unwrap();
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert_eq!(alerts.len(), 8, "{alerts:?}");
    for alert in &alerts {
        let tested = cases
            .lines()
            .filter(|l| l.trim() == format!("alertname: {alert}"))
            .count();
        assert!(
            tested >= 2,
            "{alert}: test it firing and not firing ({tested} case(s))"
        );
    }
}

#[test]
fn dashboard_parses_and_every_query_is_valid_promql() {
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "dcv-proxy");
    assert!(dashboard["schemaVersion"].as_u64().unwrap() >= 36);
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(variables, ["datasource", "instance"]);

    let mut ids = BTreeSet::new();
    let mut queries = Vec::new();
    for panel in panels(&dashboard) {
        let id = panel["id"].as_u64().unwrap();
        assert!(ids.insert(id), "panel id {id} twice");
        let title = panel["title"].as_str().unwrap();
        assert!(!title.is_empty());
        let grid = &panel["gridPos"];
        let (x, w) = (grid["x"].as_u64().unwrap(), grid["w"].as_u64().unwrap());
        assert!(
            x + w <= 24 && grid["h"].as_u64().unwrap() > 0,
            "{title}: {grid}"
        );
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        assert!(
            !panel["description"].as_str().unwrap().is_empty() || title.contains("memory"),
            "{title}: say what it shows"
        );
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}: no query");
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            assert!(
                expr.contains("instance=~\"$instance\""),
                "{title}: not filtered by node: {expr}"
            );
            queries.push((format!("panel {id} {title}"), expr.to_owned()));
        }
    }
    assert!(queries.len() >= 30, "{}", queries.len());

    // promtool parses PromQL: each query as a recording rule of a throw-away rule file.
    let dir = tempfile::tempdir().unwrap();
    let mut file = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, expr)) in queries.iter().enumerate() {
        file.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {}\n",
            serde_json::to_string(&grafana_to_promql(expr)).unwrap()
        ));
    }
    std::fs::write(dir.path().join("dashboard.rules.yml"), file).unwrap();
    let out = promtool(&["check", "rules", "dashboard.rules.yml"], dir.path());
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", queries.len())),
        "{out}"
    );
}

#[tokio::test]
async fn rules_and_dashboard_name_only_metrics_a_node_exports() {
    let busy = busy_node().await;
    let exported: BTreeSet<String> = busy
        .node
        .metrics()
        .await
        .text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
        .collect();
    // What the busy node must have for this to mean anything.
    for family in [
        "dcv_acme_order_failures_total",
        "dcv_acme_problems_total",
        "dcv_acme_consecutive_failures",
        "dcv_probe_cause",
        "dcv_fleet_connected",
        "dcv_tls_handshake_failures_total",
    ] {
        assert!(
            exported.contains(family),
            "{family} not exported: {exported:?}"
        );
    }

    let mut named: Vec<(String, String)> = Vec::new();
    let rules = std::fs::read_to_string(repo(RULES)).unwrap();
    for expr in rule_expressions(&rules) {
        for metric in metric_names(&expr) {
            named.push((format!("rule {expr}"), metric));
        }
    }
    let dashboard = dashboard();
    for panel in panels(&dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = grafana_to_promql(target["expr"].as_str().unwrap());
            for metric in metric_names(&expr) {
                named.push((format!("panel {}", panel["title"]), metric));
            }
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(q) = variable["query"]["query"].as_str() {
            // label_values(<metric>, <label>)
            let metric = q
                .strip_prefix("label_values(")
                .and_then(|r| r.split(',').next())
                .unwrap();
            named.push((
                format!("variable {}", variable["name"]),
                metric.trim().to_owned(),
            ));
        }
    }
    let missing: Vec<&(String, String)> = named
        .iter()
        .filter(|(_, m)| !exported.contains(m))
        .collect();
    assert!(missing.is_empty(), "not exported by the node: {missing:#?}");
    assert!(named.len() > 40, "{}", named.len());
}

/// The extraction itself catches a misspelt name (the test above can fail).
#[test]
fn metric_names_are_read_out_of_promql() {
    let names = metric_names(
        r#"(dcv_acme_consecutive_failures{type="rateLimited"} > 0) * on(instance, job, cause) group_left(summary, remedy) dcv_catalogue_cause_info or sum by (le) (rate(dcv_probe_duration_seconds_bucket{instance=~"x"}[5m])) - ignoring(source) dcv_nonexistent_total offset 1h"#,
    );
    assert_eq!(
        names,
        [
            "dcv_acme_consecutive_failures",
            "dcv_catalogue_cause_info",
            "dcv_probe_duration_seconds_bucket",
            "dcv_nonexistent_total"
        ]
    );
    let rules = "      - alert: A\n        expr: |\n          up == 0\n            and x\n        for: 1m\n      - alert: B\n        expr: dcv_fleet_connected == 0\n";
    assert_eq!(
        rule_expressions(rules),
        ["up == 0\nand x", "dcv_fleet_connected == 0"]
    );
}

fn dashboard() -> serde_json::Value {
    let text = std::fs::read_to_string(repo(DASHBOARD)).unwrap();
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

/// Every panel, those inside rows included.
fn panels(dashboard: &serde_json::Value) -> Vec<&serde_json::Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        out.push(panel);
        for inner in panel["panels"].as_array().into_iter().flatten() {
            out.push(inner);
        }
    }
    out
}

/// Grafana's variables replaced by what Grafana puts there.
fn grafana_to_promql(expr: &str) -> String {
    expr.replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
        .replace("$instance", ".*")
}

/// The `expr:` of each rule of a rule file: inline, or a `|` block of deeper-indented lines.
fn rule_expressions(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if let Some(rest) = line.trim_start().strip_prefix("expr:") {
            let indent = line.len() - line.trim_start().len();
            let rest = rest.trim();
            if rest == "|" {
                let mut block = Vec::new();
                while i + 1 < lines.len() {
                    let next = lines[i + 1];
                    if !next.trim().is_empty() && next.len() - next.trim_start().len() <= indent {
                        break;
                    }
                    block.push(next.trim());
                    i += 1;
                }
                out.push(block.join("\n").trim().to_owned());
            } else {
                out.push(rest.to_owned());
            }
        }
        i += 1;
    }
    out
}

/// The metric names a PromQL expression reads: identifiers that are not functions,
/// keywords, label names (inside `{…}` or the lists of `by`, `without`, `on`, `ignoring`,
/// `group_left`, `group_right`), strings or durations.
fn metric_names(expr: &str) -> Vec<String> {
    // Operators, and the aggregations (`sum by (le) (…)` puts the list before the call).
    const KEYWORDS: [&str; 20] = [
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "inf",
        "nan",
        "atan2",
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
    ];
    const LISTS: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    let skip_to = |i: &mut usize, close: char| {
        while *i < chars.len() && chars[*i] != close {
            if chars[*i] == '"' || chars[*i] == '\'' {
                let q = chars[*i];
                *i += 1;
                while *i < chars.len() && chars[*i] != q {
                    *i += if chars[*i] == '\\' { 2 } else { 1 };
                }
            }
            *i += 1;
        }
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' => {
                i += 1;
                skip_to(&mut i, c);
                i += 1;
            }
            '{' => skip_to(&mut i, '}'),
            '[' => skip_to(&mut i, ']'),
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '_' | ':'))
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut j = i;
                while j < chars.len() && chars[j] == ' ' {
                    j += 1;
                }
                let call = j < chars.len() && chars[j] == '(';
                if LISTS.contains(&word.as_str()) {
                    if call {
                        i = j;
                        skip_to(&mut i, ')');
                    }
                } else if !call
                    && !KEYWORDS.contains(&word.to_ascii_lowercase().as_str())
                    && !names.contains(&word)
                {
                    names.push(word);
                }
            }
            c if c.is_ascii_digit() => {
                // A number or a duration (5m, 1h): letters after digits are its unit.
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    names
}
