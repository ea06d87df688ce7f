//! The command line: `run` (the default), `config check`, `certs`, `check`, `health`. Arguments are parsed by clap
//! into raw structs, then each command loads what it needs.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{Config, DEFAULT_CONFIG_PATH};

/// Exit status for a bad command line or configuration (BSD `EX_USAGE`).
pub const EXIT_USAGE: i32 = 64;
/// Exit status for a failure while running; for `check`: a check failed.
pub const EXIT_FAILURE: i32 = 1;
/// Exit status of `check` when the probe itself could not run (admin API unreachable…).
pub const EXIT_PROBE_ERROR: i32 = 2;
/// Exit status of `certs put` when the certificate was stored but another certificate is
/// presented for some of its names (a deploy hook should say so, not pass silently).
pub const EXIT_NOT_SERVED: i32 = 3;

/// dcv-proxy: answers domain-control validation at the edge, proxies the rest.
#[derive(Debug, Parser)]
#[command(name = "dcv-proxy", version, about)]
pub struct Cli {
    /// Configuration file.
    #[arg(long, short = 'c', global = true, default_value = DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start serving (the default command).
    Run {
        /// Take over the listening sockets of a running instance (zero-downtime upgrade).
        #[arg(long)]
        upgrade: bool,
    },
    /// Work with the configuration file.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Certificates of the running node (a client of its admin API).
    Certs {
        #[command(subcommand)]
        action: CertsAction,
    },
    /// Probe names the way the CA will (DNS, CAA, ports, the token over HTTP and HTTPS, the
    /// certificate) and name the cause of every failure. Needs the node running: the probe
    /// token is published through its admin API. Exit status: 0 every check passes (warnings
    /// allowed), 1 a check fails, 2 the probe could not run, 64 bad configuration.
    Check {
        /// Names to probe (default: every exact name of every [[site]]).
        names: Vec<String>,
        /// Print the stable JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Ask the running node's admin API for `/healthz`: exit 0 when it answers `ok`, 1 otherwise
    /// (a container HEALTHCHECK needs no curl for this).
    Health,
}

#[derive(Debug, Subcommand)]
pub enum CertsAction {
    /// List served certificates with expiry and renewal state.
    List {
        /// Print the admin API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Renew an ACME certificate now (ignoring its plan and any backoff).
    Renew {
        /// Certificate id (the first name unless `id` is set in its [[certificate]]).
        id: String,
    },
    /// Upload a certificate and its key (e.g. from certbot, lego or acme.sh) to the running
    /// node, which checks it and serves it from the next handshake. Exit status: 0 stored and
    /// presented for every name, 3 stored but another certificate wins some names (see the
    /// warning), 1 refused or the node unreachable, 64 bad usage.
    Put {
        /// Certificate id (1-64 of a-z 0-9 . - _), e.g. the first name.
        id: String,
        /// PEM file with the certificate, optionally followed by its chain (certbot's
        /// fullchain.pem, lego's <name>.crt).
        #[arg(long)]
        cert: PathBuf,
        /// PEM file with the private key.
        #[arg(long)]
        key: PathBuf,
        /// PEM file with the intermediates, when `--cert` has the leaf only (certbot's
        /// chain.pem, lego's <name>.issuer.crt).
        #[arg(long)]
        chain: Option<PathBuf>,
        /// A name the certificate must cover (repeatable): the node refuses it otherwise.
        #[arg(long = "name")]
        names: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Validate the configuration file and exit: 0 when valid, 64 with the reason when not.
    Check,
}

/// Runs the parsed command line; returns the process exit status.
pub fn main(cli: Cli) -> i32 {
    match cli.command.unwrap_or(Command::Run { upgrade: false }) {
        Command::Config {
            action: ConfigAction::Check,
        } => match Config::load(&cli.config) {
            Ok(config) => {
                println!(
                    "{}: ok ({} site(s), http {:?}, https {:?}, admin {})",
                    cli.config.display(),
                    config.sites.sites.len(),
                    config.http.listen,
                    config.https.listen,
                    config.admin.listen
                );
                0
            }
            Err(e) => {
                eprintln!("{e}");
                EXIT_USAGE
            }
        },
        Command::Certs { action } => match Config::load(&cli.config) {
            Ok(config) => certs(&config, action),
            Err(e) => {
                eprintln!("{e}");
                EXIT_USAGE
            }
        },
        Command::Check { names, json } => match Config::load(&cli.config) {
            Ok(config) => check(config, names, json),
            Err(e) => {
                eprintln!("{e}");
                EXIT_USAGE
            }
        },
        Command::Health => match Config::load(&cli.config) {
            Ok(config) => health(&config),
            Err(e) => {
                eprintln!("{e}");
                EXIT_USAGE
            }
        },
        Command::Run { upgrade } => {
            let config = match Config::load(&cli.config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return EXIT_USAGE;
                }
            };
            let log = crate::app::init_logging(&config.server.log_level);
            match crate::app::run(config, crate::app::RunOptions { upgrade, log }) {
                Ok(()) => 0,
                Err(e) => {
                    tracing::error!("{e}");
                    eprintln!("dcv-proxy: {e}");
                    EXIT_FAILURE
                }
            }
        }
    }
}

/// `dcv-proxy check`: probes each name through the node's admin API and prints the reports.
fn check(config: Config, names: Vec<String>, json: bool) -> i32 {
    use crate::probe::{json_document, Status};
    use crate::probe::{AdminNode, Prober};

    // Quiet by default: the report is the output; RUST_LOG shows the resolver's workings.
    init_logging("error");
    let names: Vec<String> = if names.is_empty() {
        config.sites.exact_names().map(|n| n.to_string()).collect()
    } else {
        names
    };
    if names.is_empty() {
        eprintln!(
            "dcv-proxy check: no name to probe: give names, or configure [[site]] names in {}",
            config.source.display()
        );
        return EXIT_USAGE;
    }
    let token = match std::fs::read_to_string(&config.admin.token_file) {
        Ok(t) => t.trim().to_owned(),
        Err(e) => {
            eprintln!(
                "dcv-proxy check: cannot read the admin token {}: {e} (the probe publishes its token through the admin API; run as the user dcv-proxy runs as)",
                config.admin.token_file.display()
            );
            return EXIT_PROBE_ERROR;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dcv-proxy check: cannot start the async runtime: {e}");
            return EXIT_PROBE_ERROR;
        }
    };
    runtime.block_on(async {
        let node = std::sync::Arc::new(AdminNode::new(
            config.admin.listen,
            token,
            config.probe.timeout,
        ));
        if let Err(e) = node.health().await {
            eprintln!("dcv-proxy check: {e}");
            return EXIT_PROBE_ERROR;
        }
        // In a fleet the node's /v1/status lists the members: the probe asks each (H6).
        let prober = match Prober::new(config.probe.clone(), node.clone()) {
            Ok(p) => p.with_members(node),
            Err(e) => {
                eprintln!("dcv-proxy check: {e}");
                return EXIT_PROBE_ERROR;
            }
        };
        let mut reports = Vec::with_capacity(names.len());
        for name in &names {
            let report = prober.probe(name).await;
            if !json {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{}", report.render_text());
                let _ = out.flush();
            }
            reports.push(report);
        }
        if json {
            let doc = json_document(&reports);
            println!(
                "{}",
                serde_json::to_string_pretty(&doc).unwrap_or_else(|_| doc.to_string())
            );
        }
        match reports.iter().map(|r| r.verdict()).max() {
            Some(Status::Error) => EXIT_PROBE_ERROR,
            Some(Status::Fail) => EXIT_FAILURE,
            _ => 0,
        }
    })
}

/// tracing to stderr, for the commands other than `run`.
fn init_logging(default_filter: &str) {
    let _ = crate::app::init_logging(default_filter);
}

/// `health`: `GET /healthz` through the admin API.
fn health(config: &Config) -> i32 {
    let client = crate::admin::AdminClient::from_config(config);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dcv-proxy health: {e}");
            return EXIT_FAILURE;
        }
    };
    match runtime.block_on(client.request(http::Method::GET, "/healthz", None)) {
        Ok((200, body)) => {
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            if json["status"] == "ok" {
                println!("ok");
                0
            } else {
                eprintln!(
                    "dcv-proxy health: unexpected answer: {}",
                    String::from_utf8_lossy(&body)
                );
                EXIT_FAILURE
            }
        }
        Ok((status, body)) => {
            eprintln!(
                "dcv-proxy health: admin API answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
            EXIT_FAILURE
        }
        Err(e) => {
            eprintln!("dcv-proxy health: {e}");
            EXIT_FAILURE
        }
    }
}

/// `certs list|renew`, through the admin API of the running node.
fn certs(config: &Config, action: CertsAction) -> i32 {
    let client = crate::admin::AdminClient::from_config(config);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dcv-proxy: {e}");
            return EXIT_FAILURE;
        }
    };
    let (method, path, upload) = match &action {
        CertsAction::List { .. } => (http::Method::GET, "/v1/status".to_owned(), None),
        CertsAction::Renew { id } => (
            http::Method::POST,
            format!("/v1/certificates/{id}/renew"),
            None,
        ),
        CertsAction::Put {
            id,
            cert,
            key,
            chain,
            names,
        } => match upload_body(cert, key, chain.as_deref(), names) {
            Ok(body) => (
                http::Method::PUT,
                format!("/v1/certificates/{id}"),
                Some(body),
            ),
            Err(message) => {
                eprintln!("dcv-proxy certs put: {message}");
                return EXIT_USAGE;
            }
        },
    };
    if upload.is_some() && !client.has_token() {
        eprintln!(
            "dcv-proxy certs put: cannot read the admin token {}: run as root or as the user dcv-proxy runs as",
            config.admin.token_file.display()
        );
        return EXIT_FAILURE;
    }
    let (status, body) = match runtime.block_on(client.request(method, &path, upload)) {
        Ok(answer) => answer,
        Err(e) => {
            eprintln!("dcv-proxy: {e}");
            return EXIT_FAILURE;
        }
    };
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if !(200..300).contains(&status) {
        let reason = json["error"].as_str().unwrap_or("no reason given");
        eprintln!("dcv-proxy: admin API answered {status}: {reason}");
        return EXIT_FAILURE;
    }
    if let CertsAction::Put { id, .. } = &action {
        let names: Vec<&str> = json["names"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n.as_str())
            .collect();
        println!(
            "{id}: stored and checked ({}), expires {}; served from the next handshake",
            names.join(", "),
            json["not_after"].as_str().unwrap_or("?")
        );
        let warnings: Vec<&str> = json["warnings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|w| w.as_str())
            .collect();
        for warning in &warnings {
            eprintln!("dcv-proxy certs put: warning: {warning}");
        }
        return if warnings.is_empty() {
            0
        } else {
            EXIT_NOT_SERVED
        };
    }
    match action {
        CertsAction::List { json: true } => {
            println!(
                "{}",
                serde_json::to_string_pretty(&json).unwrap_or_default()
            );
        }
        CertsAction::List { json: false } => print!("{}", certs_table(&json)),
        CertsAction::Renew { id } => println!("renewal of {id} requested"),
        CertsAction::Put { .. } => {}
    }
    0
}

/// The JSON body of `PUT /v1/certificates/<id>` from the files of an ACME client.
fn upload_body(
    cert: &std::path::Path,
    key: &std::path::Path,
    chain: Option<&std::path::Path>,
    names: &[String],
) -> Result<Vec<u8>, String> {
    let read = |path: &std::path::Path, what: &str| {
        std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the {what} {}: {e}", path.display()))
    };
    let mut certificate = read(cert, "certificate (--cert)")?;
    if let Some(chain) = chain {
        if !certificate.ends_with('\n') {
            certificate.push('\n');
        }
        certificate.push_str(&read(chain, "chain (--chain)")?);
    }
    let private_key = read(key, "private key (--key)")?;
    serde_json::to_vec(&serde_json::json!({
        "certificate": certificate,
        "private_key": private_key,
        "names": names,
    }))
    .map_err(|e| e.to_string())
}

/// One line per certificate: id, expiry, source, names, then the renewer's view when there is one.
fn certs_table(status: &serde_json::Value) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let acme = &status["acme"]["certificates"];
    let _ = writeln!(
        out,
        "{:<24} {:<21} {:<11} {:<8} {:<21} NAMES",
        "ID", "NOT AFTER", "SOURCE", "STATE", "NEXT RENEWAL"
    );
    let mut seen = std::collections::HashSet::new();
    for cert in status["certificates"].as_array().into_iter().flatten() {
        let id = cert["id"].as_str().unwrap_or("?");
        seen.insert(id.to_owned());
        let renewal = &acme[id];
        let names: Vec<&str> = cert["names"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n.as_str())
            .collect();
        let _ = writeln!(
            out,
            "{:<24} {:<21} {:<11} {:<8} {:<21} {}",
            id,
            cert["not_after"].as_str().unwrap_or("-"),
            cert["source"].as_str().unwrap_or("-"),
            renewal["state"].as_str().unwrap_or("-"),
            renewal["next_renewal"]
                .as_str()
                .or(renewal["next_attempt"].as_str())
                .unwrap_or("-"),
            names.join(",")
        );
    }
    for (id, renewal) in acme.as_object().into_iter().flatten() {
        if seen.contains(id) {
            continue;
        }
        let names: Vec<&str> = renewal["names"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n.as_str())
            .collect();
        let _ = writeln!(
            out,
            "{:<24} {:<21} {:<11} {:<8} {:<21} {}",
            id,
            "(not issued)",
            "acme",
            renewal["state"].as_str().unwrap_or("-"),
            renewal["next_attempt"].as_str().unwrap_or("-"),
            names.join(",")
        );
    }
    // Which certificate is presented for each name (README "Certificate precedence").
    let owners = status["names"].as_array().cloned().unwrap_or_default();
    if !owners.is_empty() {
        let _ = writeln!(
            out,
            "\n{:<40} {:<24} NOT SERVED BY (WHY)",
            "NAME", "SERVED BY"
        );
        for owner in &owners {
            let others: Vec<String> = owner["not_served_by"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|o| {
                    format!(
                        "{} ({})",
                        o["certificate"].as_str().unwrap_or("?"),
                        o["reason"].as_str().unwrap_or("?").replace('_', " ")
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "{:<40} {:<24} {}",
                owner["name"].as_str().unwrap_or("?"),
                owner["served_by"].as_str().unwrap_or("?"),
                if others.is_empty() {
                    "-".to_owned()
                } else {
                    others.join(", ")
                }
            );
        }
        let _ = writeln!(out);
    }
    // The node's clock, so "next poll in" is right even from another host.
    let now = status["now"]
        .as_str()
        .and_then(|t| humantime::parse_rfc3339(t).ok())
        .unwrap_or_else(std::time::SystemTime::now);
    let account = &status["acme"]["account"];
    if account["state"] == "error" {
        let _ = writeln!(
            out,
            "  ACME account: error: {}",
            account["error"].as_str().unwrap_or("-")
        );
        failure_lines(
            &mut out,
            &account["last_error"],
            &account["next_attempt"],
            now,
        );
    }
    for (id, renewal) in acme.as_object().into_iter().flatten() {
        if renewal["state"] == "ordering" {
            let _ = writeln!(
                out,
                "  {id}: ordering: {}",
                progress_line(&renewal["progress"], now)
            );
        }
        // `[[acme.ca]]`: who issued it, and which CAs were passed over and why.
        if let Some(ca) = renewal["ca"].as_str() {
            let _ = writeln!(out, "  {id}: issued by CA {ca}");
        }
        let backup = &renewal["backup"];
        if backup.is_object() {
            let _ = match backup["state"].as_str() {
                Some("ready") => writeln!(
                    out,
                    "  {id}: backup from CA {} (serial {}, until {}), not served",
                    backup["ca"].as_str().unwrap_or("?"),
                    backup["serial"].as_str().unwrap_or("?"),
                    backup["not_after"].as_str().unwrap_or("?")
                ),
                Some(state) => writeln!(out, "  {id}: backup {state}"),
                None => Ok(()),
            };
            if backup["last_error"].is_object() {
                let _ = writeln!(
                    out,
                    "  {id}: last backup order failed: {}",
                    cause_text(&backup["last_error"])
                );
            }
            let swap = &backup["swapped_in"];
            if swap.is_object() {
                let _ = writeln!(
                    out,
                    "  {id}: backup swapped in at {} ({}), serial {} from CA {}",
                    swap["at"].as_str().unwrap_or("?"),
                    swap["reason"].as_str().unwrap_or("?"),
                    swap["serial"].as_str().unwrap_or("?"),
                    swap["ca"].as_str().unwrap_or("?")
                );
            }
        }
        for skip in renewal["skipped"].as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "  {id}: CA {} passed over ({}): {}",
                skip["ca"].as_str().unwrap_or("?"),
                skip["reason"].as_str().unwrap_or("?"),
                cause_text(skip)
            );
            let _ = writeln!(
                out,
                "      the CA said: {}",
                skip["detail"].as_str().unwrap_or("-")
            );
        }
        let error = &renewal["last_error"];
        if error.is_object() {
            let _ = writeln!(out, "  {id}: last order failed: {}", cause_text(error));
            let next = if renewal["state"] == "failed" {
                &renewal["next_attempt"]
            } else {
                &serde_json::Value::Null
            };
            failure_lines(&mut out, error, next, now);
        } else if let Some(error) = renewal["last_order"]["error"].as_str() {
            let _ = writeln!(out, "  {id}: last order failed: {error}");
        }
    }
    out
}

/// `H1: <remedy>` for a failure the catalogue knows, else its ACME type or kind and what to do.
fn cause_text(error: &serde_json::Value) -> String {
    match (error["cause"].as_str(), error["remedy"].as_str()) {
        (Some(cause), Some(remedy)) => format!("{cause}: {remedy}"),
        (Some(cause), None) => cause.to_owned(),
        _ => format!(
            "{} (no catalogue cause): {}",
            failure_type(error),
            crate::catalogue::remedy_without_cause(
                error["ca_type"].as_str(),
                error["kind"].as_str().unwrap_or("")
            )
        ),
    }
}

fn failure_type(error: &serde_json::Value) -> &str {
    error["ca_type"]
        .as_str()
        .or(error["kind"].as_str())
        .unwrap_or("error")
}

/// Under the cause: what the CA (or the node) said, each subproblem with its own cause, and
/// when the next attempt is.
fn failure_lines(
    out: &mut String,
    error: &serde_json::Value,
    next_attempt: &serde_json::Value,
    now: std::time::SystemTime,
) {
    use std::fmt::Write;
    if !error.is_object() {
        return;
    }
    let said = |e: &serde_json::Value| {
        let mut text = failure_type(e).to_owned();
        if let Some(identifier) = e["identifier"].as_str() {
            text.push_str(": ");
            text.push_str(identifier);
        }
        text.push_str(": ");
        text.push_str(e["detail"].as_str().unwrap_or(""));
        text
    };
    let _ = writeln!(out, "      {}", said(error));
    for sub in error["subproblems"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "      subproblem {}: {}",
            sub["identifier"].as_str().unwrap_or("-"),
            cause_text(sub)
        );
        let _ = writeln!(out, "        {}", said(sub));
    }
    if let Some(at) = next_attempt.as_str() {
        match humantime::parse_rfc3339(at) {
            Ok(t) => {
                let _ = writeln!(
                    out,
                    "      next attempt in {} ({at})",
                    crate::acme::short_duration(t.duration_since(now).unwrap_or_default())
                );
            }
            Err(_) => {
                let _ = writeln!(out, "      next attempt {at}");
            }
        }
    }
}

/// `a.test: waiting for the CA to validate (poll 3), next poll in 4 s`.
fn progress_line(progress: &serde_json::Value, now: std::time::SystemTime) -> String {
    let mut line = progress["text"].as_str().unwrap_or("starting").to_owned();
    if let Some(t) = progress["next_poll"]
        .as_str()
        .and_then(|t| humantime::parse_rfc3339(t).ok())
    {
        line.push_str(", next poll in ");
        line.push_str(&crate::acme::short_duration(
            t.duration_since(now).unwrap_or_default(),
        ));
    } else if let Some(t) = progress["until"]
        .as_str()
        .and_then(|t| humantime::parse_rfc3339(t).ok())
    {
        line.push_str(", gives up in ");
        line.push_str(&crate::acme::short_duration(
            t.duration_since(now).unwrap_or_default(),
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn certs_table_shows_which_certificate_serves_each_name() {
        let status = serde_json::json!({
            "now": "2027-01-15T08:00:00.000Z",
            "certificates": [],
            "names": [
                {"name": "a.test", "served_by": "long", "not_served_by": [
                    {"certificate": "short", "reason": "expires_earlier"}
                ]},
                {"name": "b.test", "served_by": "long", "not_served_by": []}
            ],
            "acme": {"account": {"state": "ready"}, "certificates": {}}
        });
        let text = certs_table(&status);
        let line = text.lines().find(|l| l.starts_with("a.test")).unwrap();
        assert!(
            line.contains("long") && line.ends_with("short (expires earlier)"),
            "{text}"
        );
        let line = text.lines().find(|l| l.starts_with("b.test")).unwrap();
        assert!(line.ends_with(" -"), "{text}");
    }

    #[test]
    fn certs_table_shows_cause_remedy_progress_and_next_attempt() {
        let status = serde_json::json!({
            "now": "2027-01-15T08:00:00.000Z",
            "certificates": [],
            "acme": {
                "account": {"state": "ready"},
                "certificates": {
                    "a.test": {
                        "names": ["a.test"],
                        "state": "ordering",
                        "progress": {
                            "step": "polling-authorization",
                            "name": "a.test",
                            "attempt": 3,
                            "next_poll": "2027-01-15T08:00:04.000Z",
                            "since": "2027-01-15T07:59:58.000Z",
                            "text": "a.test: waiting for the CA to validate (poll 3)"
                        }
                    },
                    "h1.test": {
                        "names": ["h1.test", "www.h1.test"],
                        "state": "failed",
                        "next_attempt": "2027-01-15T08:00:02Z",
                        "last_error": {
                            "kind": "problem",
                            "cause": "H1",
                            "summary": "port 80 or 443 cannot be reached",
                            "remedy": "open ports 80 and 443",
                            "detail": "Connection refused",
                            "ca_type": "connection",
                            "identifier": "h1.test",
                            "subproblems": [{
                                "kind": "problem",
                                "cause": null,
                                "summary": null,
                                "remedy": null,
                                "detail": "something broke",
                                "ca_type": "serverInternal",
                                "identifier": "www.h1.test"
                            }]
                        }
                    }
                }
            }
        });
        let text = certs_table(&status);
        assert!(
            text.contains("  a.test: ordering: a.test: waiting for the CA to validate (poll 3), next poll in 4 s\n"),
            "{text}"
        );
        assert!(
            text.contains("  h1.test: last order failed: H1: open ports 80 and 443\n"),
            "{text}"
        );
        assert!(
            text.contains("      connection: h1.test: Connection refused\n"),
            "{text}"
        );
        assert!(
            text.contains("      subproblem www.h1.test: serverInternal (no catalogue cause): the CA failed on its side"),
            "{text}"
        );
        assert!(
            text.contains("      next attempt in 2 s (2027-01-15T08:00:02Z)\n"),
            "{text}"
        );
    }
}
