//! The composition root: builds state from the configuration, wires serving, lifecycle and
//! observability together on one pingora server, and runs it until a signal ends it
//! ([`signals`]: graceful stop, binary upgrade, configuration reload).

mod drain;
mod logging;
mod notify;
mod ready;
mod reload;
mod signals;
mod upgrade;

pub use logging::init as init_logging;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora_core::server::configuration::{Opt, ServerConf};
use pingora_core::server::{RunArgs, Server, ShutdownWatch};
use pingora_core::services::background::{background_service, BackgroundService};
use pingora_core::services::listening::Service;

use crate::acme::Renewer;
use crate::acme::{LocalSelfCheck, SelfCheck};
use crate::admin::AdminApi;
use crate::admin::AdminToken;
use crate::config::{CertName, ChallengeType, Config, SelfCheckKind};
use crate::inflight::InFlight;
use crate::metrics::Metrics;
use crate::probe::{LocalNode, Prober, TxtRegistry};
use crate::probe::{ProbeRunner, ProbeService};
use crate::serve::{self, CertResolver, Decider, Routing, ServeCounters};
use crate::state::certs::CertStore;
use crate::state::fleet::{self, FleetFollower, NodeInfo};
use crate::state::LocalBackend;
use crate::state::WebrootSync;
use crate::state::{ChallengeStore, State, StateDir};

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The state directory cannot be created or written.
    #[error("state directory {path}: {source}")]
    StateDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The certificate store could not be opened.
    #[error("certificates: {0}")]
    Certificates(#[from] crate::state::certs::InstallError),
    /// The admin token file cannot be read or created.
    #[error("admin token file {path}: {source}")]
    AdminToken {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A listen address cannot be bound; the message says why and what to do.
    #[error("{0}")]
    Bind(String),
    /// pingora refused a listener setting.
    #[error("listener setup: {0}")]
    Listener(String),
    /// Fleet mode cannot start (the fleet key above all: without it nothing sealed opens).
    #[error("fleet: {0}")]
    Fleet(#[from] crate::state::fleet::FleetError),
}

/// Options of `dcv-proxy run` that are not in the configuration file.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Take the listening sockets over from a running instance (zero-downtime upgrade).
    pub upgrade: bool,
    /// The log filter a reload may change (`None`: logging was set up elsewhere).
    pub log: Option<logging::LogControl>,
}

/// How long pingora lets its runtimes finish after the grace period; the grace period is the
/// drain, this is only the last tidy-up, so `TimeoutStopSec` = grace period + this + margin.
const RUNTIME_EXIT: u64 = 5;

/// Starts the node and serves until a signal stops it; returns when it stopped (or did not
/// start).
pub fn run(config: Config, options: RunOptions) -> Result<(), StartError> {
    // Before anything builds a rustls config: pingora takes the process default.
    crate::crypto::install();
    // A fleet node without its key could serve nothing sealed: refuse before touching anything.
    if let Some(fleet) = &config.fleet {
        fleet::FleetKey::load(&fleet.key_file).map_err(fleet::FleetError::from)?;
    }
    let dir = StateDir::new(&config.state_dir);
    dir.create().map_err(|source| StartError::StateDir {
        path: config.state_dir.display().to_string(),
        source,
    })?;

    let (certs, failures) = CertStore::open(&dir.certs())?;
    for failure in &failures {
        tracing::error!(file = %failure.path.display(), error = %failure.error, "certificate refused at start; the others are served");
    }
    let certs = Arc::new(certs);
    let challenges = Arc::new(ChallengeStore::new(dir.acme_webroot(), dir.pki_webroot()));
    if let Err(e) = challenges.watch_webroot() {
        tracing::warn!(error = %e, "no inotify watch on the webroot; each unknown token opens a file");
    }
    let local = LocalBackend::new(dir.clone());
    // The local state directory is what a node serves before (or without) the fleet store.
    let (tokens, files, problems) = local.load_into(&challenges);
    for (path, error) in &problems {
        tracing::error!(file = %path.display(), %error, "challenge file skipped at start");
    }
    tracing::info!(
        certificates = certs.snapshot().len(),
        tokens,
        files,
        state_dir = %config.state_dir.display(),
        "state loaded"
    );
    let writes = Arc::new(tokio::sync::Mutex::new(()));
    let (state, follower) = match &config.fleet {
        None => {
            let state = State::new(
                dir.clone(),
                challenges.clone(),
                certs.clone(),
                Arc::new(local),
            );
            (state, None)
        }
        Some(fleet) => {
            let node = NodeInfo {
                http_port: config.http.listen.first().map(SocketAddr::port),
                https_port: config.https.listen.first().map(SocketAddr::port),
                dns: dns_published(&config),
            };
            let (backend, follower, handle) = fleet::start(
                fleet,
                node,
                challenges.clone(),
                certs.clone(),
                local,
                writes.clone(),
            )?;
            tracing::info!(node_id = %fleet.node_id, endpoints = ?fleet.endpoints, prefix = %fleet.prefix, "fleet mode: state shared through etcd");
            let state = State::with_fleet(
                dir.clone(),
                challenges.clone(),
                certs.clone(),
                Arc::new(backend),
                writes,
                Some(handle),
            );
            (state, Some(follower))
        }
    };

    let (token, created) =
        AdminToken::load_or_create(&config.admin.token_file).map_err(|source| {
            StartError::AdminToken {
                path: config.admin.token_file.display().to_string(),
                source,
            }
        })?;
    if created {
        tracing::info!(file = %config.admin.token_file.display(), "admin token created");
    }
    warn_risky_config(&config, created);

    if !options.upgrade {
        let all = config
            .http
            .listen
            .iter()
            .chain(&config.https.listen)
            .chain(std::iter::once(&config.admin.listen));
        for addr in all {
            check_bind(addr)?;
        }
    }
    // The DNS listener binds now, upgrade or not (its sockets are SO_REUSEPORT, pingora does
    // not hand them over): a port 53 it cannot have stops the start with the reason.
    let dns_sockets = match &config.dns {
        Some(dns) => Some(serve::dns::DnsSockets::bind(&dns.listen).map_err(dns_bind_error)?),
        None => None,
    };

    let pid_file = dir.root().join("dcv-proxy.pid");
    let upgrade_sock = dir.root().join("upgrade.sock");
    let server_conf = ServerConf {
        threads: config.server.threads,
        pid_file: pid_file.display().to_string(),
        upgrade_sock: upgrade_sock.display().to_string(),
        grace_period_seconds: Some(config.server.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(RUNTIME_EXIT),
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade: options.upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, server_conf);
    server.bootstrap();

    let counters = ServeCounters::new();
    let inflight = InFlight::new();
    let metrics = Arc::new(Metrics::new());
    metrics.register(inflight.collector());
    for collector in counters.collectors() {
        metrics.register(collector);
    }
    metrics.register_state(certs.clone(), challenges.clone());
    if let (Some(dns), Some(sockets)) = (&config.dns, dns_sockets) {
        let zones = serve::dns::Zones::new(dns).map_err(|e| StartError::Listener(e.to_string()))?;
        let responder = Arc::new(serve::dns::Responder::new(
            zones,
            challenges.clone(),
            dns.rate_limit,
        ));
        for collector in responder.counters().collectors() {
            metrics.register(collector);
        }
        let zones: Vec<&str> = dns.zones.iter().map(|z| z.name.as_str()).collect();
        tracing::info!(listen = ?dns.listen, ?zones, "DNS listener for the validation zones");
        server.add_service(background_service(
            "dns listener",
            DnsService {
                listener: serve::dns::DnsListener::new(sockets, responder, dns.tcp_connections),
            },
        ));
    }
    if let Some(fleet) = state.fleet() {
        for collector in fleet.collectors() {
            metrics.register(collector);
        }
    }
    if let Some(follower) = follower {
        server.add_service(background_service(
            "fleet follower",
            FleetService { follower },
        ));
        server.add_service(background_service(
            "webroot sync",
            WebrootService {
                sync: WebrootSync::new(state.clone()),
            },
        ));
    }

    let routing = Arc::new(ArcSwap::from_pointee(Routing::from_config(&config)));
    let decider = Arc::new(Decider::new(challenges.clone(), routing.clone(), counters));
    let addresses = Arc::new(serve::HandshakeAddresses::default());
    let resolver = Arc::new(CertResolver::new(certs.clone(), addresses.clone()));
    let alpn = Arc::new(
        serve::AlpnChallengeAcceptor::new(challenges.clone())
            .with_addresses(certs.clone(), addresses),
    );
    let edge = serve::edge_service(
        &server.configuration,
        decider,
        &config.http.listen,
        &config.https,
        resolver,
        alpn,
        inflight.clone(),
    )
    .map_err(|e| StartError::Listener(e.to_string()))?;
    server.add_service(edge);

    let probe = start_probe(&config, &state, &metrics);
    let local_check = LocalSelfCheck::new(
        &config.http.listen,
        &config.https.listen,
        config.acme.self_check_timeout,
    )
    .with_fleet(state.fleet().cloned())
    .with_dns(config.dns.as_ref());
    let selfcheck: Arc<dyn SelfCheck> = match (config.acme.self_check, &probe) {
        (SelfCheckKind::Probe, Some(runner)) => Arc::new(ProbeGate {
            runner: runner.clone(),
            local: local_check,
            limit: config.acme.self_check_timeout,
        }),
        _ => Arc::new(local_check),
    };
    let (renewer, renewer_handle) = Renewer::new(
        config.acme.clone(),
        config.certificates.clone(),
        state.clone(),
        selfcheck,
    );
    for collector in renewer_handle.collectors() {
        metrics.register(collector);
    }
    metrics.register_acme(renewer_handle.clone());
    server.add_service(background_service("acme renewer", renewer));

    let reloader = Arc::new(reload::Reloader::new(
        config.clone(),
        routing,
        renewer_handle.clone(),
        probe.clone(),
        options.log.clone(),
    ));
    metrics.register(Box::new(reloader.counter()));
    let mut admin_api = AdminApi::new(state.clone(), metrics, token, config.admin.max_body_bytes)
        .with_acme(renewer_handle)
        .with_inflight(inflight.clone())
        .with_hosts(config.admin.hosts.iter().map(|h| h.as_str()));
    if let Some(runner) = &probe {
        admin_api = admin_api.with_probe(runner.clone());
    }
    let mut admin = Service::new("dcv-proxy admin".to_owned(), admin_api);
    admin.add_tcp(&config.admin.listen.to_string());
    server.add_service(admin);

    server.add_service(background_service("token sweeper", TokenSweeper { state }));
    if let Some(runner) = probe {
        server.add_service(background_service("self-probe", ProbeService::new(runner)));
    }
    server.add_service(background_service(
        "drain",
        drain::Drain {
            inflight,
            grace: config.server.grace_period,
            pid_file: pid_file.clone(),
        },
    ));

    let signals = signals::Signals {
        reloader,
        upgrade: upgrade::Upgrade {
            config: config.source.clone(),
            sock: upgrade_sock,
        },
        ready: std::sync::Mutex::new(Some(ready::Readiness {
            wait_for: std::iter::once(config.admin.listen)
                .chain(config.http.listen.iter().copied())
                .collect(),
            pid_file: pid_file.clone(),
        })),
    };
    tracing::info!(
        http = ?config.http.listen,
        https = ?config.https.listen,
        admin = %config.admin.listen,
        upgrade = options.upgrade,
        "dcv-proxy starting"
    );
    server.run(RunArgs {
        shutdown_signal: Box::new(signals),
    });
    ready::remove_pid_file(&pid_file);
    tracing::info!("stopped");
    Ok(())
}

/// The self-probe over the node's own state. A probe that cannot be set up (no resolver) is
/// logged and left out: it must never keep the node from serving.
fn start_probe(config: &Config, state: &State, metrics: &Metrics) -> Option<Arc<ProbeRunner>> {
    let txt = match TxtRegistry::open(state.dir.root().join("probe-txt.json")) {
        Ok(registry) => registry,
        Err(e) => {
            tracing::error!(error = %e, "registered TXT records not loaded; new ones are kept in memory only");
            TxtRegistry::in_memory()
        }
    };
    let txt = Arc::new(txt);
    let node = Arc::new(LocalNode::new(state.clone(), txt.clone()));
    // The same node lists the fleet's members (none when it runs alone): the probe asks each.
    match Prober::new(config.probe.clone(), node.clone()) {
        Ok(prober) => {
            let prober = prober.with_members(node);
            let names = config.sites.exact_names().cloned().collect();
            let runner = Arc::new(ProbeRunner::new(prober, names, txt));
            for collector in runner.metrics().collectors() {
                metrics.register(collector);
            }
            metrics.register_probe(runner.clone());
            Some(runner)
        }
        Err(e) => {
            tracing::error!(error = %e, "self-probe disabled");
            None
        }
    }
}

/// What ACME runs before telling the CA a challenge is ready: the self-probe's gate — for
/// HTTP-01 DNS and CAA as the CA resolves them, port 80, the token fetched as the CA fetches it,
/// and in a fleet from every live member (H6); for TLS-ALPN-01 DNS and CAA, then port 443 of
/// every address with Boulder's TLS-ALPN-01 rules; for DNS-01 the delegation CNAME, the
/// validation zone's delegation, every member's DNS listener and the value as the CA's resolver
/// sees it (`probe::gate_dns01`, D13–D15). ACME and the probe never import each other; they
/// meet here.
///
/// In a fleet, the gate's member checks replace [`LocalSelfCheck::fleet_barrier`] for HTTP-01:
/// they wait for the token to reach every member and, unlike the barrier, keep the CA waiting
/// while a reachable member answers without it (a member that cannot be reached from here is
/// only a warning, as with the barrier). TLS-ALPN-01 keeps the barrier (members publish no
/// HTTPS port to be asked at), and every challenge with `acme.self_check = "local"` goes
/// through [`LocalSelfCheck::ready`].
struct ProbeGate {
    runner: Arc<ProbeRunner>,
    local: LocalSelfCheck,
    limit: Duration,
}

#[async_trait]
impl SelfCheck for ProbeGate {
    async fn ready(
        &self,
        name: &CertName,
        challenge: ChallengeType,
        token: &str,
        key_authorization: &str,
    ) -> Result<(), String> {
        let name = match name {
            // RFC 8738: no DNS, no CAA; the answer at the address, on the CA's port.
            CertName::Ip(ip) => {
                let prober = self.runner.prober();
                let port = match challenge {
                    ChallengeType::TlsAlpn01 => prober.config().https_port,
                    _ => prober.config().http_port,
                };
                return crate::acme::gate_address(
                    *ip,
                    port,
                    challenge,
                    token,
                    key_authorization,
                    self.limit,
                )
                .await;
            }
            CertName::Dns(name) => name,
        };
        match challenge {
            ChallengeType::Http01 => crate::probe::gate(
                &self.runner.prober(),
                name,
                token,
                key_authorization,
                self.limit,
            )
            .await
            .map(|_| ())
            .map_err(|failure| failure.to_string()),
            ChallengeType::TlsAlpn01 => {
                crate::probe::gate_tls_alpn(
                    &self.runner.prober(),
                    name,
                    key_authorization,
                    self.limit,
                )
                .await
                .map_err(|failure| failure.to_string())?;
                self.local
                    .fleet_barrier(
                        &CertName::Dns(name.clone()),
                        challenge,
                        token,
                        key_authorization,
                    )
                    .await;
                Ok(())
            }
            // The gate asks every member's DNS listener itself (D15, D11): no barrier.
            ChallengeType::Dns01 => {
                crate::probe::gate_dns01(&self.runner.prober(), name, key_authorization, self.limit)
                    .await
                    .map(|_| ())
                    .map_err(|failure| failure.to_string())
            }
        }
    }
}

/// Where this node's DNS listener answers, as published with its fleet membership: each listen
/// address, a wildcard one as each public address of its family (`fleet.public_addresses`).
fn dns_published(config: &Config) -> Vec<SocketAddr> {
    let Some(dns) = &config.dns else {
        return Vec::new();
    };
    let public = config
        .fleet
        .as_ref()
        .map(|f| f.public_addresses.as_slice())
        .unwrap_or_default();
    let mut out = Vec::new();
    for addr in &dns.listen {
        if addr.ip().is_unspecified() {
            out.extend(
                public
                    .iter()
                    .filter(|ip| ip.is_ipv4() == addr.is_ipv4())
                    .map(|ip| SocketAddr::new(*ip, addr.port())),
            );
        } else {
            out.push(*addr);
        }
    }
    out
}

/// A DNS listen address that cannot be bound, with what to do about it.
fn dns_bind_error(e: serve::dns::BindError) -> StartError {
    let addr = e.addr;
    StartError::Bind(match e.source.kind() {
        std::io::ErrorKind::PermissionDenied if addr.port() < 1024 => format!(
            "cannot listen on {addr} ({}) for dns.listen: permission denied. Port {} needs the \
             CAP_NET_BIND_SERVICE capability (the systemd unit grants it), or listen on a port \
             of 1024 or above and forward 53 to it",
            e.proto,
            addr.port()
        ),
        std::io::ErrorKind::AddrInUse => format!(
            "cannot listen on {addr} ({}) for dns.listen: the address is already in use (a \
             local resolver such as systemd-resolved or dnsmasq? `ss -lunp 'sport = :{}'` shows \
             which process); listen on the node's public address instead of 0.0.0.0",
            e.proto,
            addr.port()
        ),
        _ => e.to_string(),
    })
}

/// Warnings at start for settings that work but that an operator most likely did not mean.
fn warn_risky_config(config: &Config, token_created: bool) {
    let admin = config.admin.listen;
    if !admin.ip().is_loopback() {
        tracing::warn!(
            admin = %admin,
            "the admin API listens beyond loopback: its reads (the status page, /metrics, /v1/status with names, certificates and probe results) are open to whoever reaches it, only changes need the token; keep admin.listen on loopback or a private network behind a firewall"
        );
        if token_created {
            tracing::warn!(
                file = %config.admin.token_file.display(),
                "the admin listener is reachable from the network and its token was only just made: give it to the clients that change state (dcv-proxy certs put, deploy hooks), and set admin.token_file to a file you manage"
            );
        }
    }
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(&config.admin.token_file) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    file = %config.admin.token_file.display(),
                    mode = format!("{mode:o}"),
                    "the admin token file is readable by other users: chmod 600 it (anyone who can read it can change certificates and tokens)"
                );
            }
        }
    }
    if config.http.listen.is_empty() {
        tracing::warn!(
            "http.listen is empty: no plain-HTTP listener, so HTTP-01 validation and pki-validation files cannot reach this node (the CA fetches from port 80: H1); add \"0.0.0.0:80\""
        );
    }
    if config.https.listen.is_empty() {
        tracing::warn!(
            "https.listen is empty: no HTTPS listener, so no HTTPS traffic is served and TLS-ALPN-01 validation cannot reach this node (C5); add \"0.0.0.0:443\""
        );
    }
}

/// Binds `addr` once to turn the OS error into advice before pingora (which would panic) does.
fn check_bind(addr: &SocketAddr) -> Result<(), StartError> {
    match TcpListener::bind(addr) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied && addr.port() < 1024 => {
            Err(StartError::Bind(format!(
                "cannot listen on {addr}: permission denied. Ports below 1024 need the \
                 CAP_NET_BIND_SERVICE capability: run under the systemd unit (it grants \
                 AmbientCapabilities=CAP_NET_BIND_SERVICE), or grant it to the binary with \
                 `setcap cap_net_bind_service=+ep $(command -v dcv-proxy)`, or listen on a port \
                 of 1024 or above"
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(StartError::Bind(format!(
            "cannot listen on {addr}: the address is already in use (another web server on \
             this port? `ss -ltnp 'sport = :{}'` shows which process)",
            addr.port()
        ))),
        Err(e) => Err(StartError::Bind(format!("cannot listen on {addr}: {e}"))),
    }
}

/// Runs the authoritative DNS listener of the validation zones until the server stops.
struct DnsService {
    listener: serve::dns::DnsListener,
}

#[async_trait]
impl BackgroundService for DnsService {
    async fn start(&self, shutdown: ShutdownWatch) {
        self.listener.run(shutdown).await;
    }
}

/// Runs the fleet follower for the life of the server.
struct FleetService {
    follower: FleetFollower,
}

#[async_trait]
impl BackgroundService for FleetService {
    async fn start(&self, shutdown: ShutdownWatch) {
        self.follower.run(shutdown).await;
    }
}

/// Shares the tokens ACME clients write into this node's webroot with the fleet.
struct WebrootService {
    sync: WebrootSync,
}

#[async_trait]
impl BackgroundService for WebrootService {
    async fn start(&self, shutdown: ShutdownWatch) {
        self.sync.run(shutdown).await;
    }
}

/// Drops expired ACME tokens once a minute.
struct TokenSweeper {
    state: State,
}

#[async_trait]
impl BackgroundService for TokenSweeper {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = tick.tick() => self.state.sweep_expired().await,
                _ = shutdown.changed() => return,
            }
        }
    }
}
