//! The endpoints. Every handler parses its input fully before touching state, so a refused
//! request changes nothing.

use std::time::SystemTime;

use super::input::{self, Refused};
use super::{AdminApi, AdminRequest, Reply};
use crate::acme::AcmeStatus;
use crate::api::{
    CertDetail, CertInstalled, CertList, CertNotIssued, CertView, ChallengeCounts, ErrorBody,
    EtcdFleet, FleetError, FleetStatus, Health, NameOwnerView, NotServed, PassedOver, PkiFileView,
    PkiFiles, Removed, RenewRequested, Status, TokenEntry, TokenList,
};
use crate::state::certs::{
    CertEntry, CertId, CertSnapshot, CertSource, InstallError, NameOwner, DEFAULT_ID,
};
use crate::state::unix;
use crate::state::{apex_of, AcmeAnswer, PkiFile};
use bytes::Bytes;
use http::{Method, StatusCode};

impl From<Refused> for Reply {
    fn from(r: Refused) -> Reply {
        Reply::error(r.status, r.message)
    }
}

pub(super) async fn route(api: &AdminApi, req: AdminRequest) -> Reply {
    let segments: Vec<&str> = req.path.trim_end_matches('/').split('/').skip(1).collect();
    let get = matches!(req.method, Method::GET | Method::HEAD);
    match (segments.as_slice(), &req.method) {
        ([] | ["status"], _) if get => super::page::page(api, req.query.as_deref()),
        (["healthz"], _) if get => Reply::json(
            StatusCode::OK,
            &Health {
                status: "ok".into(),
            },
        ),
        (["metrics"], _) if get => Reply::text(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            api.metrics.render(),
        ),
        (["v1", "status"], _) if get => status(api),
        (["v1", "acme", "tokens"], _) if get => list_tokens(api, req.authorized),
        (["v1", "acme", "tokens", token], &Method::PUT) => put_token(api, token, &req.body).await,
        (["v1", "acme", "tokens", token], &Method::DELETE) => delete_token(api, token).await,
        (["v1", "pki"], _) if get => list_pki(api, None),
        (["v1", "pki", host], _) if get => list_pki(api, Some(host)),
        (["v1", "pki", host, file], &Method::PUT) => put_pki(api, host, file, &req.body).await,
        (["v1", "pki", host, file], &Method::DELETE) => delete_pki(api, host, file).await,
        (["v1", "certificates"], _) if get => list_certs(api),
        (["v1", "certificates", id], _) if get => get_cert(api, id),
        (["v1", "certificates", id], &Method::PUT) => put_cert(api, id, &req.body).await,
        (["v1", "certificates", id], &Method::DELETE) => delete_cert(api, id).await,
        (["v1", "certificates", id, "renew"], &Method::POST) => renew_cert(api, id),
        (["v1", "probe"], _) if get => super::probe::list(api),
        (["v1", "probe", "txt"], _) if get => super::probe::list_txt(api),
        (["v1", "probe", "txt", name], &Method::PUT) => super::probe::put_txt(api, name, &req.body),
        (["v1", "probe", "txt", name], &Method::DELETE) => super::probe::delete_txt(api, name),
        (["v1", "probe", name], _) if get => super::probe::last(api, name),
        (["v1", "probe", name], &Method::POST) => super::probe::run(api, name).await,
        (
            []
            | ["status" | "healthz" | "metrics"]
            | ["v1", "status" | "acme" | "pki" | "certificates" | "probe", ..],
            _,
        ) => Reply::error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} is not allowed on {}", req.method, req.path),
        ),
        _ => Reply::error(StatusCode::NOT_FOUND, format!("no endpoint {}", req.path)),
    }
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

// ---- status

fn status(api: &AdminApi) -> Reply {
    Reply::json(StatusCode::OK, &status_document(api))
}

/// The document of `GET /v1/status`, which the status page renders too.
pub(super) fn status_document(api: &AdminApi) -> Status<AcmeStatus> {
    let certs = api.state.certs.snapshot();
    let challenges = api.state.challenges.snapshot();
    Status {
        version: env!("CARGO_PKG_VERSION").into(),
        started: rfc3339(api.started),
        now: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        certificates: certs.entries().map(|e| cert_view(&certs, e)).collect(),
        names: certs.precedence().iter().map(name_view).collect(),
        challenges: ChallengeCounts {
            acme_tokens: challenges.acme_count(),
            pki_files: challenges.pki_count(),
            tls_alpn: challenges.alpn_names().count(),
        },
        acme: api.acme.as_ref().map(|a| a.status()),
        probe: api.probe.as_deref().map(super::probe::summaries),
        fleet: fleet_status(api),
    }
}

fn fleet_status(api: &AdminApi) -> FleetStatus {
    let Some(fleet) = api.state.fleet() else {
        return FleetStatus::local();
    };
    let mut members = fleet.members();
    members.sort_by(|a, b| a.node_id.cmp(&b.node_id));
    FleetStatus {
        backend: "etcd".into(),
        etcd: Some(EtcdFleet {
            node_id: fleet.node_id().to_owned(),
            endpoints: fleet.endpoints().to_vec(),
            prefix: fleet.prefix().to_owned(),
            connected: fleet.connected(),
            revision: fleet.revision(),
            members,
            last_error: fleet.last_error().map(|(at, error)| FleetError {
                at: rfc3339(at),
                error,
            }),
        }),
    }
}

fn name_view(owner: &NameOwner) -> NameOwnerView {
    NameOwnerView {
        name: owner.name.clone(),
        served_by: owner.served_by.as_str().to_owned(),
        not_served_by: owner
            .passed_over
            .iter()
            .map(|(id, why)| PassedOver {
                certificate: id.as_str().to_owned(),
                reason: why.as_str().to_owned(),
            })
            .collect(),
    }
}

// ---- ACME tokens

fn token_entry(token: &str, a: &AcmeAnswer) -> TokenEntry {
    TokenEntry {
        token: Some(token.to_owned()),
        key_authorization: Some(String::from_utf8_lossy(&a.key_authorization).into_owned()),
        identifier: a.identifier.as_deref().map(str::to_owned),
        created: rfc3339(a.created),
        expires: a.expires.map(rfc3339),
    }
}

/// Every token with its key authorization — with the bearer token only: a token is all it
/// takes to fetch the key authorization from port 80, and the list tells which validations are
/// pending. Without it, the same list without `token` and `key_authorization`.
fn list_tokens(api: &AdminApi, authorized: bool) -> Reply {
    let snapshot = api.state.challenges.snapshot();
    let mut tokens: Vec<TokenEntry> = snapshot.acme().map(|(t, a)| token_entry(t, a)).collect();
    tokens.sort_by(|a, b| a.token.cmp(&b.token));
    if authorized {
        return Reply::json(
            StatusCode::OK,
            &TokenList {
                tokens,
                redacted: None,
            },
        );
    }
    for t in &mut tokens {
        t.token = None;
        t.key_authorization = None;
    }
    Reply::json(
        StatusCode::OK,
        &TokenList {
            tokens,
            redacted: Some("token and key_authorization are shown with Authorization: Bearer <token from the admin token file>".into()),
        },
    )
}

async fn put_token(api: &AdminApi, token: &str, body: &[u8]) -> Reply {
    let answer = match input::token_put(token, body, SystemTime::now()) {
        Ok(a) => a,
        Err(refused) => return refused.into(),
    };
    let view = token_entry(token, &answer);
    match api.state.put_token(token, answer).await {
        Ok(()) => Reply::json(StatusCode::CREATED, &view),
        Err(e) => Reply::error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn delete_token(api: &AdminApi, token: &str) -> Reply {
    if let Err(refused) = input::token_path(token) {
        return refused.into();
    }
    match api.state.remove_token(token).await {
        Ok(true) => Reply::json(StatusCode::OK, &removed(token)),
        Ok(false) => Reply::error(StatusCode::NOT_FOUND, format!("no token {token}")),
        Err(e) => Reply::error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

// ---- pki-validation files

fn removed(what: &str) -> Removed {
    Removed {
        removed: what.to_owned(),
    }
}

fn pki_view(host: &str, file: &str, entry: &PkiFile) -> PkiFileView {
    let www = format!("www.{host}");
    PkiFileView {
        host: host.to_owned(),
        answers_on: [host.to_owned(), www],
        file: file.to_owned(),
        size: entry.body.len(),
        sha256: crate::state::certs::hex(
            ring::digest::digest(&ring::digest::SHA256, &entry.body).as_ref(),
        ),
        created: rfc3339(entry.created),
    }
}

fn list_pki(api: &AdminApi, host: Option<&str>) -> Reply {
    let filter = match host.map(input::host) {
        None => None,
        Some(Ok(h)) => Some(apex_of(h.as_str()).to_owned()),
        Some(Err(refused)) => return refused.into(),
    };
    let snapshot = api.state.challenges.snapshot();
    let mut files: Vec<PkiFileView> = snapshot
        .pki()
        .filter(|(h, _, _)| filter.as_deref().is_none_or(|f| f == *h))
        .map(|(h, f, e)| pki_view(h, f, e))
        .collect();
    files.sort_by(|a, b| (&a.host, &a.file).cmp(&(&b.host, &b.file)));
    Reply::json(StatusCode::OK, &PkiFiles { files })
}

async fn put_pki(api: &AdminApi, host: &str, file: &str, body: &[u8]) -> Reply {
    let (host, bytes) = match input::pki_put(host, file, body) {
        Ok(parsed) => parsed,
        Err(refused) => return refused.into(),
    };
    let entry = PkiFile {
        body: Bytes::from(bytes),
        created: SystemTime::now(),
    };
    let view = pki_view(apex_of(host.as_str()), file, &entry);
    match api.state.put_pki(host.as_str(), file, entry).await {
        Ok(()) => Reply::json(StatusCode::CREATED, &view),
        Err(e) => Reply::error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn delete_pki(api: &AdminApi, host: &str, file: &str) -> Reply {
    let host = match input::host(host).and_then(|h| input::file_name(file).map(|()| h)) {
        Ok(h) => h,
        Err(refused) => return refused.into(),
    };
    match api.state.remove_pki(host.as_str(), file).await {
        Ok(true) => Reply::json(StatusCode::OK, &removed(file)),
        Ok(false) => Reply::error(StatusCode::NOT_FOUND, format!("no file {file} for {host}")),
        Err(e) => Reply::error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

// ---- certificates

/// One certificate, with the names it is not presented for (another certificate wins them).
fn cert_view(snapshot: &CertSnapshot, e: &CertEntry) -> CertView {
    let now = SystemTime::now();
    let not_served = snapshot
        .not_served(&e.id)
        .into_iter()
        .map(|(name, by, why)| NotServed {
            name,
            served_by: by.as_str().to_owned(),
            reason: why.as_str().to_owned(),
        })
        .collect();
    let expires_in = e
        .cert
        .not_after
        .duration_since(now)
        .map_or(0, |d| d.as_secs());
    CertView {
        id: e.id.as_str().to_owned(),
        names: e.cert.names.clone(),
        subject: e.cert.subject.clone(),
        issuer: e.cert.issuer.clone(),
        serial: e.cert.serial.clone(),
        sha256_fingerprint: e.cert.fingerprint.clone(),
        not_before: rfc3339(e.cert.not_before),
        not_after: rfc3339(e.cert.not_after),
        not_after_unix: unix(e.cert.not_after),
        expires_in_seconds: expires_in,
        chain_length: e.cert.key.cert.len(),
        self_signed: e.cert.self_signed,
        default: e.id.as_str() == DEFAULT_ID,
        source: e.source.as_str().to_owned(),
        published: rfc3339(e.published),
        not_served,
    }
}

fn parse_id(id: &str) -> Result<CertId, Reply> {
    input::cert_id(id).map_err(Reply::from)
}

fn list_certs(api: &AdminApi) -> Reply {
    let snapshot = api.state.certs.snapshot();
    let certificates = snapshot
        .entries()
        .map(|e| cert_view(&snapshot, e))
        .collect();
    Reply::json(StatusCode::OK, &CertList { certificates })
}

fn get_cert(api: &AdminApi, id: &str) -> Reply {
    let id = match parse_id(id) {
        Ok(id) => id,
        Err(reply) => return reply,
    };
    let acme = api.acme.as_ref().and_then(|a| a.certificate(&id));
    let snapshot = api.state.certs.snapshot();
    match snapshot.entry(&id) {
        Some(e) => Reply::json(
            StatusCode::OK,
            &CertDetail {
                certificate: cert_view(&snapshot, e),
                acme,
            },
        ),
        // Configured for ACME but not issued yet: show the renewer's state.
        None => match acme {
            Some(acme) => Reply::json(
                StatusCode::OK,
                &CertNotIssued {
                    id: id.as_str().to_owned(),
                    issued: false,
                    acme,
                },
            ),
            None => Reply::error(StatusCode::NOT_FOUND, format!("no certificate {id}")),
        },
    }
}

fn renew_cert(api: &AdminApi, id: &str) -> Reply {
    let id = match parse_id(id) {
        Ok(id) => id,
        Err(reply) => return reply,
    };
    let Some(acme) = &api.acme else {
        return Reply::error(
            StatusCode::NOT_FOUND,
            "no [[certificate]] is configured for ACME",
        );
    };
    match acme.renew(&id) {
        Ok(()) => Reply::json(
            StatusCode::ACCEPTED,
            &RenewRequested {
                renewal: "requested".into(),
                id: id.as_str().to_owned(),
            },
        ),
        Err(e) => Reply::error(StatusCode::NOT_FOUND, e.to_string()),
    }
}

async fn put_cert(api: &AdminApi, id: &str, body: &[u8]) -> Reply {
    let upload = match input::cert_put(id, body) {
        Ok(u) => u,
        Err(refused) => return refused.into(),
    };
    match api
        .state
        .install_cert(
            &upload.id,
            upload.certificate.as_bytes(),
            upload.private_key.as_bytes(),
            &upload.names,
            CertSource::Upload,
        )
        .await
    {
        Ok(entry) => installed(api, &entry),
        Err(InstallError::Shared(e)) => Reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot share with the fleet: {e}"),
        ),
        Err(InstallError::Refused(refusal)) => Reply::json(
            StatusCode::UNPROCESSABLE_ENTITY,
            &ErrorBody {
                error: format!("certificate refused: {refusal}"),
                reason: Some(refusal.reason().to_owned()),
            },
        ),
        Err(e) => write_failed(e),
    }
}

/// `201` for a stored certificate, with a `warnings` list when another certificate is presented
/// for some of its names (the upload is kept: it takes over when that one is removed, and a
/// replacement is best put before the old one is deleted, so nothing falls back to the default
/// in between).
fn installed(api: &AdminApi, entry: &CertEntry) -> Reply {
    let snapshot = api.state.certs.snapshot();
    let warnings: Vec<String> = snapshot
        .not_served(&entry.id)
        .into_iter()
        .map(|(name, by, why)| {
            format!(
                "{name} is not served by {id}: {by} is presented for it ({reason}); \
                 DELETE /v1/certificates/{by} to serve {id} for it",
                id = entry.id,
                reason = why.text(),
            )
        })
        .collect();
    Reply::json(
        StatusCode::CREATED,
        &CertInstalled {
            certificate: cert_view(&snapshot, entry),
            warnings,
        },
    )
}

/// A certificate that could not be written: nothing changed, and the status says whether the
/// disk is full (`507`), read-only or otherwise failing (`503`: try again once fixed).
fn write_failed(e: InstallError) -> Reply {
    let status = match &e {
        InstallError::Write { source, .. }
            if source.kind() == std::io::ErrorKind::StorageFull
                || source.raw_os_error() == Some(libc::EDQUOT) =>
        {
            StatusCode::INSUFFICIENT_STORAGE
        }
        InstallError::Write { .. } => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    Reply::error(
        status,
        format!("{e}; nothing changed, the served certificate stays"),
    )
}

async fn delete_cert(api: &AdminApi, id: &str) -> Reply {
    let id = match parse_id(id) {
        Ok(id) => id,
        Err(reply) => return reply,
    };
    match api.state.remove_cert(&id).await {
        Ok(true) => Reply::json(StatusCode::OK, &removed(id.as_str())),
        Ok(false) => Reply::error(StatusCode::NOT_FOUND, format!("no certificate {id}")),
        Err(InstallError::RemoveDefault) => Reply::error(
            StatusCode::CONFLICT,
            "the default certificate cannot be removed; upload a replacement with PUT",
        ),
        Err(InstallError::Shared(e)) => Reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot share with the fleet: {e}"),
        ),
        Err(e) => write_failed(e),
    }
}
