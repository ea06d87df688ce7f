//! The probe's endpoints: run a probe now, read the last results, and register the TXT records
//! an operator expects (D9, D10).
//!
//! | method and path | result |
//! |---|---|
//! | `POST /v1/probe/<name>` | runs the probe now; `200` with the report |
//! | `GET /v1/probe` | the last report's summary of every name probed |
//! | `GET /v1/probe/<name>` | the last report of `name`, `404` if never probed |
//! | `GET /v1/probe/txt` | the registered TXT records |
//! | `PUT /v1/probe/txt/<name>` | `{"values": ["…"]}`: expect these values at `name` |
//! | `DELETE /v1/probe/txt/<name>` | forget them |

use http::StatusCode;

use std::collections::BTreeMap;

use super::{AdminApi, Reply};
use crate::api::{ProbeFinding, ProbeSummary, Removed, TxtRecord, TxtRecords};
use crate::probe::ProbeRunner;
use crate::probe::Report;
use crate::probe::Status;

fn runner(api: &AdminApi) -> Result<&ProbeRunner, Reply> {
    api.probe.as_deref().ok_or_else(|| {
        Reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the probe is not running on this node (see the log at start for why)",
        )
    })
}

pub(super) async fn run(api: &AdminApi, name: &str) -> Reply {
    match runner(api) {
        Ok(runner) => Reply::json(StatusCode::OK, &runner.run(name).await.to_json()),
        Err(reply) => reply,
    }
}

pub(super) fn last(api: &AdminApi, name: &str) -> Reply {
    match runner(api) {
        Ok(runner) => match runner.results().get(name) {
            Some(report) => Reply::json(StatusCode::OK, &report.to_json()),
            None => Reply::error(
                StatusCode::NOT_FOUND,
                format!("{name} has not been probed yet: POST /v1/probe/{name} runs it"),
            ),
        },
        Err(reply) => reply,
    }
}

pub(super) fn list(api: &AdminApi) -> Reply {
    match runner(api) {
        Ok(runner) => Reply::json(StatusCode::OK, &summaries(runner)),
        Err(reply) => reply,
    }
}

/// The last result per name, for `GET /v1/probe` and `GET /v1/status`.
pub(super) fn summaries(runner: &ProbeRunner) -> BTreeMap<String, ProbeSummary> {
    let mut names = BTreeMap::new();
    for report in runner.results().all() {
        names.insert(report.name.clone(), summary(&report));
    }
    for name in runner.names().iter() {
        names.entry(name.to_string()).or_insert(ProbeSummary {
            verdict: None,
            causes: None,
            finished: None,
            duration_ms: None,
            findings: None,
        });
    }
    names
}

fn summary(report: &Report) -> ProbeSummary {
    let findings = report
        .checks
        .iter()
        .filter(|c| matches!(c.status, Status::Fail | Status::Warn | Status::Error))
        .map(|c| ProbeFinding {
            check: c.kind.as_str().to_owned(),
            target: c.target.clone(),
            status: c.status.as_str().to_owned(),
            cause: c.cause,
            detail: c.detail.clone(),
        })
        .collect();
    ProbeSummary {
        verdict: Some(report.verdict().as_str().to_owned()),
        causes: Some(report.causes().into_iter().collect()),
        finished: Some(
            humantime::format_rfc3339_seconds(report.started + report.duration).to_string(),
        ),
        duration_ms: Some(u64::try_from(report.duration.as_millis()).unwrap_or(u64::MAX)),
        findings: Some(findings),
    }
}

pub(super) fn list_txt(api: &AdminApi) -> Reply {
    let runner = match runner(api) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let mut records: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for e in runner.txt().list() {
        records.entry(e.name.to_string()).or_default().push(e.value);
    }
    let records = records
        .into_iter()
        .map(|(name, values)| TxtRecord { name, values })
        .collect();
    Reply::json(StatusCode::OK, &TxtRecords { records })
}

pub(super) fn put_txt(api: &AdminApi, name: &str, body: &[u8]) -> Reply {
    let runner = match runner(api) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let (name, values) = match super::input::txt_put(name, body) {
        Ok(parsed) => parsed,
        Err(refused) => return refused.into(),
    };
    match runner.txt().put(name.clone(), values.clone()) {
        Ok(()) => Reply::json(
            StatusCode::CREATED,
            &TxtRecord {
                name: name.to_string(),
                values,
            },
        ),
        Err(e) => Reply::error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

pub(super) fn delete_txt(api: &AdminApi, name: &str) -> Reply {
    let runner = match runner(api) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let name = match super::input::record_name(name) {
        Ok(n) => n,
        Err(refused) => return refused.into(),
    };
    match runner.txt().remove(&name) {
        Ok(true) => Reply::json(
            StatusCode::OK,
            &Removed {
                removed: name.to_string(),
            },
        ),
        Ok(false) => Reply::error(StatusCode::NOT_FOUND, format!("no TXT record {name}")),
        Err(e) => Reply::error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}
