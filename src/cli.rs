//! The command line: `run` (the default), `config check`, `certs`, `check`, `health`. Arguments are parsed by clap
//! into raw structs, then each command loads what it needs.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use std::time::SystemTime;

use crate::acme::{AccountState, AcmeStatus, BackupState, CertState, Diagnosis, Progress};
use crate::api::{
    wire_name, AdminClient, CertInstalled, CertPut, ClientError, Health, RenewRequested, Status,
};
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
    let client = AdminClient::from_config(&config).with_timeout(config.probe.timeout);
    if !client.has_token() {
        let why = match std::fs::read_to_string(&config.admin.token_file) {
            Ok(_) => "the file is empty".to_owned(),
            Err(e) => e.to_string(),
        };
        eprintln!(
            "dcv-proxy check: cannot read the admin token {}: {why} (the probe publishes its token through the admin API; run as the user dcv-proxy runs as)",
            config.admin.token_file.display()
        );
        return EXIT_PROBE_ERROR;
    }
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
        let node = std::sync::Arc::new(AdminNode::new(client));
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

/// A runtime for one request to the admin API.
fn runtime(command: &str) -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("{command}: {e}");
            None
        }
    }
}

/// `health`: `GET /healthz` through the admin API.
fn health(config: &Config) -> i32 {
    let client = AdminClient::from_config(config);
    let Some(runtime) = runtime("dcv-proxy health") else {
        return EXIT_FAILURE;
    };
    match runtime.block_on(client.get::<Health>("/healthz")) {
        Ok(health) if health.status == "ok" => {
            println!("ok");
            0
        }
        Ok(health) => {
            eprintln!(
                "dcv-proxy health: unexpected answer: status {:?}",
                health.status
            );
            EXIT_FAILURE
        }
        Err(e) => {
            eprintln!("dcv-proxy health: {e}");
            EXIT_FAILURE
        }
    }
}

/// `certs list|renew|put`, through the admin API of the running node.
fn certs(config: &Config, action: CertsAction) -> i32 {
    let client = AdminClient::from_config(config);
    let Some(runtime) = runtime("dcv-proxy") else {
        return EXIT_FAILURE;
    };
    let answer = match action {
        CertsAction::List { json: true } => runtime
            .block_on(client.get::<serde_json::Value>("/v1/status"))
            .map(|doc| {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&doc).unwrap_or_else(|_| doc.to_string())
                );
                0
            }),
        CertsAction::List { json: false } => {
            match runtime.block_on(client.get::<Status<AcmeStatus>>("/v1/status")) {
                Ok(status) => {
                    print!("{}", certs_table(&status));
                    Ok(0)
                }
                // A node of another version may write what this one cannot read.
                Err(e @ ClientError::Unexpected { .. }) => {
                    eprintln!(
                        "dcv-proxy: {e}; is the node another version? `dcv-proxy certs list --json` shows its document as it is"
                    );
                    return EXIT_FAILURE;
                }
                Err(e) => Err(e),
            }
        }
        CertsAction::Renew { id } => runtime
            .block_on(client.call::<RenewRequested>(
                http::Method::POST,
                &format!("/v1/certificates/{id}/renew"),
                None::<&()>,
            ))
            .map(|_| {
                println!("renewal of {id} requested");
                0
            }),
        CertsAction::Put {
            id,
            cert,
            key,
            chain,
            names,
        } => {
            let body = match upload_body(&cert, &key, chain.as_deref(), &names) {
                Ok(body) => body,
                Err(message) => {
                    eprintln!("dcv-proxy certs put: {message}");
                    return EXIT_USAGE;
                }
            };
            if !client.has_token() {
                eprintln!(
                    "dcv-proxy certs put: cannot read the admin token {}: run as root or as the user dcv-proxy runs as",
                    config.admin.token_file.display()
                );
                return EXIT_FAILURE;
            }
            runtime
                .block_on(client.call::<CertInstalled>(
                    http::Method::PUT,
                    &format!("/v1/certificates/{id}"),
                    Some(&body),
                ))
                .map(|installed| stored(&id, &installed))
        }
    };
    answer.unwrap_or_else(|e| {
        eprintln!("dcv-proxy: {e}");
        EXIT_FAILURE
    })
}

/// What `certs put` says of a stored certificate; exit status 3 when another certificate keeps
/// being presented for some of its names.
fn stored(id: &str, installed: &CertInstalled) -> i32 {
    println!(
        "{id}: stored and checked ({}), expires {}; served from the next handshake",
        installed.certificate.names.join(", "),
        installed.certificate.not_after
    );
    for warning in &installed.warnings {
        eprintln!("dcv-proxy certs put: warning: {warning}");
    }
    if installed.warnings.is_empty() {
        0
    } else {
        EXIT_NOT_SERVED
    }
}

/// The JSON body of `PUT /v1/certificates/<id>` from the files of an ACME client.
fn upload_body(
    cert: &std::path::Path,
    key: &std::path::Path,
    chain: Option<&std::path::Path>,
    names: &[String],
) -> Result<CertPut, String> {
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
    Ok(CertPut {
        certificate,
        private_key,
        names: names.to_vec(),
    })
}

/// One line per certificate: id, expiry, source, names, then the renewer's view when there is one.
fn certs_table(status: &Status<AcmeStatus>) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let empty = std::collections::BTreeMap::new();
    let renewals = status.acme.as_ref().map_or(&empty, |a| &a.certificates);
    let _ = writeln!(
        out,
        "{:<24} {:<21} {:<11} {:<8} {:<21} NAMES",
        "ID", "NOT AFTER", "SOURCE", "STATE", "NEXT RENEWAL"
    );
    for cert in &status.certificates {
        let renewal = renewals.get(&cert.id);
        let _ = writeln!(
            out,
            "{:<24} {:<21} {:<11} {:<8} {:<21} {}",
            cert.id,
            cert.not_after,
            cert.source,
            renewal.map_or_else(|| "-".to_owned(), |r| wire_name(&r.state)),
            renewal
                .and_then(|r| r.next_renewal.as_deref().or(r.next_attempt.as_deref()))
                .unwrap_or("-"),
            cert.names.join(",")
        );
    }
    for (id, renewal) in renewals {
        if status.certificates.iter().any(|c| &c.id == id) {
            continue;
        }
        let _ = writeln!(
            out,
            "{:<24} {:<21} {:<11} {:<8} {:<21} {}",
            id,
            "(not issued)",
            "acme",
            wire_name(&renewal.state),
            renewal.next_attempt.as_deref().unwrap_or("-"),
            renewal.names.join(",")
        );
    }
    // Which certificate is presented for each name (README "Certificate precedence").
    if !status.names.is_empty() {
        let _ = writeln!(
            out,
            "\n{:<40} {:<24} NOT SERVED BY (WHY)",
            "NAME", "SERVED BY"
        );
        for owner in &status.names {
            let others: Vec<String> = owner
                .not_served_by
                .iter()
                .map(|o| format!("{} ({})", o.certificate, o.reason.replace('_', " ")))
                .collect();
            let _ = writeln!(
                out,
                "{:<40} {:<24} {}",
                owner.name,
                owner.served_by,
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
    let now = humantime::parse_rfc3339(&status.now).unwrap_or_else(|_| SystemTime::now());
    if let Some(account) = status.acme.as_ref().map(|a| &a.account) {
        if account.state == AccountState::Error {
            let _ = writeln!(
                out,
                "  ACME account: error: {}",
                account.error.as_deref().unwrap_or("-")
            );
            if let Some(error) = &account.last_error {
                failure_lines(&mut out, error, account.next_attempt.as_deref(), now);
            }
        }
    }
    for (id, renewal) in renewals {
        if renewal.state == CertState::Ordering {
            let _ = writeln!(
                out,
                "  {id}: ordering: {}",
                renewal
                    .progress
                    .as_ref()
                    .map_or_else(|| "starting".to_owned(), |p| progress_line(p, now))
            );
        }
        if let Some(why) = &renewal.deferred {
            let _ = writeln!(out, "  {id}: not ordered yet: {why}");
        }
        // `[[acme.ca]]`: who issued it, and which CAs were passed over and why.
        if let Some(ca) = &renewal.ca {
            let _ = writeln!(out, "  {id}: issued by CA {ca}");
        }
        if let Some(backup) = &renewal.backup {
            let _ = match backup.state {
                BackupState::Ready => writeln!(
                    out,
                    "  {id}: backup from CA {} (serial {}, until {}), not served",
                    backup.ca.as_deref().unwrap_or("?"),
                    backup.serial.as_deref().unwrap_or("?"),
                    backup.not_after.as_deref().unwrap_or("?")
                ),
                state => writeln!(out, "  {id}: backup {}", wire_name(&state)),
            };
            if let Some(error) = &backup.last_error {
                let _ = writeln!(
                    out,
                    "  {id}: last backup order failed: {}",
                    cause_text(error)
                );
            }
            if let Some(swap) = &backup.swapped_in {
                let _ = writeln!(
                    out,
                    "  {id}: backup swapped in at {} ({}), serial {} from CA {}",
                    swap.at,
                    swap.reason.as_str(),
                    swap.serial,
                    swap.ca
                );
            }
        }
        for skip in &renewal.skipped {
            let _ = writeln!(
                out,
                "  {id}: CA {} passed over ({}): {}",
                skip.ca,
                wire_name(&skip.reason),
                match skip.cause {
                    Some(cause) => format!("{cause}: {}", skip.remedy),
                    None => skip.remedy.to_string(),
                }
            );
            let _ = writeln!(out, "      the CA said: {}", skip.detail);
        }
        if let Some(error) = &renewal.last_error {
            let _ = writeln!(out, "  {id}: last order failed: {}", cause_text(error));
            let next = if renewal.state == CertState::Failed {
                renewal.next_attempt.as_deref()
            } else {
                None
            };
            failure_lines(&mut out, error, next, now);
        } else if let Some(error) = renewal.last_order.as_ref().and_then(|o| o.error.as_deref()) {
            let _ = writeln!(out, "  {id}: last order failed: {error}");
        }
    }
    out
}

/// `H1: <remedy>` for a failure the catalogue knows, else its ACME type or kind and what to do.
fn cause_text(error: &Diagnosis) -> String {
    match (error.cause, &error.remedy) {
        (Some(cause), Some(remedy)) => format!("{cause}: {remedy}"),
        (Some(cause), None) => cause.to_string(),
        (None, _) => format!(
            "{} (no catalogue cause): {}",
            error.type_label(),
            crate::catalogue::remedy_without_cause(error.ca_type.as_deref(), error.kind.as_str())
        ),
    }
}

/// Under the cause: what the CA (or the node) said, each subproblem with its own cause, and
/// when the next attempt is.
fn failure_lines(out: &mut String, error: &Diagnosis, next_attempt: Option<&str>, now: SystemTime) {
    use std::fmt::Write;
    let said = |e: &Diagnosis| {
        let mut text = e.type_label().to_owned();
        if let Some(identifier) = &e.identifier {
            text.push_str(": ");
            text.push_str(identifier);
        }
        text.push_str(": ");
        text.push_str(&e.detail);
        text
    };
    let _ = writeln!(out, "      {}", said(error));
    for sub in &error.subproblems {
        let _ = writeln!(
            out,
            "      subproblem {}: {}",
            sub.identifier.as_deref().unwrap_or("-"),
            cause_text(sub)
        );
        let _ = writeln!(out, "        {}", said(sub));
    }
    if let Some(at) = next_attempt {
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
fn progress_line(progress: &Progress, now: SystemTime) -> String {
    let mut line = progress.text.clone();
    let at = |t: &Option<String>| t.as_deref().and_then(|t| humantime::parse_rfc3339(t).ok());
    if let Some(t) = at(&progress.next_poll) {
        line.push_str(", next poll in ");
        line.push_str(&crate::acme::short_duration(
            t.duration_since(now).unwrap_or_default(),
        ));
    } else if let Some(t) = at(&progress.until) {
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

    /// A whole `/v1/status` document around the parts a test sets.
    fn status(parts: serde_json::Value) -> Status<AcmeStatus> {
        let mut doc = serde_json::json!({
            "version": "0.0.0",
            "started": "2027-01-15T07:00:00Z",
            "now": "2027-01-15T08:00:00.000Z",
            "certificates": [],
            "names": [],
            "challenges": {"acme_tokens": 0, "pki_files": 0, "tls_alpn": 0},
            "fleet": {"backend": "local"}
        });
        for (key, value) in parts.as_object().unwrap() {
            doc[key] = value.clone();
        }
        if let Some(acme) = doc["acme"].as_object_mut() {
            acme.entry("directory")
                .or_insert("https://ca.test/dir".into());
            acme.entry("cas").or_insert(serde_json::json!([]));
        }
        serde_json::from_value(doc).unwrap()
    }

    #[test]
    fn certs_table_shows_which_certificate_serves_each_name() {
        let status = status(serde_json::json!({
            "names": [
                {"name": "a.test", "served_by": "long", "not_served_by": [
                    {"certificate": "short", "reason": "expires_earlier"}
                ]},
                {"name": "b.test", "served_by": "long", "not_served_by": []}
            ],
            "acme": {"account": {"state": "ready"}, "certificates": {}}
        }));
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
        let status = status(serde_json::json!({
            "acme": {
                "account": {"state": "ready"},
                "certificates": {
                    "a.test": {
                        "names": ["a.test"],
                        "challenge": "http-01",
                        "state": "ordering",
                        "consecutive_failures": 0,
                        "progress": {
                            "step": "polling-authorization",
                            "name": "a.test",
                            "attempt": 3,
                            "next_poll": "2027-01-15T08:00:04.000Z",
                            "since": "2027-01-15T07:59:58.000Z",
                            "text": "a.test: waiting for the CA to validate (poll 3)"
                        }
                    },
                    "d.test": {
                        "names": ["d.test"],
                        "challenge": "http-01",
                        "state": "due",
                        "consecutive_failures": 0,
                        "deferred": "the fleet lock cannot be taken (etcd away)"
                    },
                    "h1.test": {
                        "names": ["h1.test", "www.h1.test"],
                        "challenge": "http-01",
                        "state": "failed",
                        "consecutive_failures": 1,
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
        }));
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
        assert!(
            text.contains(
                "  d.test: not ordered yet: the fleet lock cannot be taken (etcd away)\n"
            ),
            "{text}"
        );
    }
}
