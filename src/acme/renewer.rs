//! The renewer: a background service that keeps every configured certificate issued.
//!
//! It orders what is missing, plans each renewal (inside the CA's ARI window when the CA offers
//! RFC 9773, otherwise at two thirds of the lifetime, with jitter), retries failures with
//! exponential backoff or the CA's `Retry-After`, and records the last order and its problem
//! document for `/v1/status`. Orders run one at a time.
//!
//! While an order runs, its current step is in the certificate's `progress`; when it fails,
//! `last_error` says what the catalogue makes of it (cause, summary, remedy, the CA's type and
//! detail, per subproblem), the log line carries the cause and remedy, and
//! `dcv_acme_order_failures_total{certificate,cause,type}` counts it.
//!
//! The list of certificates can change while it runs (a configuration reload,
//! [`RenewerHandle::set_certificates`]): it is read afresh at every round, so a certificate added
//! is ordered at once and one removed is no longer renewed (its served certificate stays until it
//! is deleted through the admin API).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use instant_acme::{Account, CertificateIdentifier};
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{GaugeVec, IntCounterVec, Opts};
use serde::Serialize;
use tokio::sync::{mpsc, Notify};

use super::client::AcmeHttp;
use super::order::{self, OrderContext};
use super::progress::{Progress, ProgressSink};
use super::schedule::{self, Basis};
use super::selfcheck::SelfCheck;
use super::{account, AcmeError, Diagnosis, ProblemDoc};
use crate::config::{AcmeConfig, CertId, CertificateConfig};
use crate::state::certs::{name_covers, CertEntry};
use crate::state::local::unix;
use crate::state::State;

/// Keeps the configured certificates issued.
pub struct Renewer {
    acme: AcmeConfig,
    state: State,
    selfcheck: Arc<dyn SelfCheck>,
    shared: Arc<Shared>,
    triggers: Mutex<Option<mpsc::UnboundedReceiver<CertId>>>,
}

/// The renewer's view shared with the admin API and metrics.
#[derive(Clone)]
pub struct RenewerHandle {
    shared: Arc<Shared>,
    trigger: mpsc::UnboundedSender<CertId>,
}

struct Shared {
    directory: String,
    /// The configured certificates; replaced by a reload.
    certificates: ArcSwap<Vec<CertificateConfig>>,
    /// Wakes the renewer when the list changed.
    wake: Notify,
    status: Mutex<Status>,
    /// New orders placed on the account in the last `acme.new_orders_window`.
    budget: Mutex<schedule::OrderBudget>,
    orders: IntCounterVec,
    problems: IntCounterVec,
    failures: IntCounterVec,
}

#[derive(Default, Clone, Serialize)]
struct Status {
    account: AccountStatus,
    certificates: BTreeMap<String, CertStatus>,
}

/// The account's state (serialised as `unknown`, `ready`, `error`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountState {
    /// No attempt yet.
    #[default]
    Unknown,
    /// Loaded or created.
    Ready,
    /// The last attempt failed; retried with backoff.
    Error,
}

/// A certificate's renewal state (serialised as `waiting`, `due`, `ordering`, `failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CertState {
    /// Served; the renewal is planned.
    Waiting,
    /// To be ordered now (missing, planned time reached, or renewal requested).
    Due,
    /// An order is in flight (see `progress`).
    Ordering,
    /// The last order failed; backing off until `next_attempt`.
    Failed,
}

/// How an order ended (serialised as `valid`, `failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderResult {
    Valid,
    Failed,
}

impl OrderResult {
    /// The `result` label of `dcv_acme_orders_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderResult::Valid => "valid",
            OrderResult::Failed => "failed",
        }
    }
}

/// The ACME account as seen by the renewer.
#[derive(Default, Clone, Serialize)]
pub struct AccountStatus {
    pub state: AccountState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<ProblemDoc>,
    /// The last failure read through the catalogue (while `state` is `error`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<Diagnosis>,
    /// When the account is tried again (while `state` is `error`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumbprint: Option<String>,
}

/// One certificate's renewal state.
#[derive(Clone, Serialize)]
pub struct CertStatus {
    pub names: Vec<String>,
    pub challenge: &'static str,
    pub state: CertState,
    /// While `ordering`: the order's current step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_renewal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renewal_basis: Option<Basis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ari_window: Option<[String; 2]>,
    pub consecutive_failures: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_order: Option<OrderRecord>,
    /// The last order's failure read through the catalogue, until an order succeeds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<Diagnosis>,
    /// The CA paused the name (P10): no order until `dcv-proxy certs renew`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// Due, but waiting for the account's budget of new orders (`acme.max_new_orders`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deferred: Option<String>,
    /// The profile asked for on this certificate's orders.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(skip)]
    plan: Option<Plan>,
    #[serde(skip)]
    retry_at: Option<SystemTime>,
    #[serde(skip)]
    forced: bool,
}

/// The last order attempt.
#[derive(Clone, Serialize)]
pub struct OrderRecord {
    pub started: String,
    pub finished: String,
    pub duration_ms: u128,
    pub result: OrderResult,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<ProblemDoc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// The profile the CA applied, as its order object names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_received: Option<String>,
    /// A profile was asked for and the CA's order named another, or none: the CA ignored it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub profile_ignored: bool,
}

/// A planned renewal for one certificate fingerprint.
#[derive(Clone)]
struct Plan {
    fingerprint: String,
    at: SystemTime,
    basis: Basis,
    window: Option<(SystemTime, SystemTime)>,
    /// When to ask the CA for its ARI window again.
    recheck: SystemTime,
}

/// What a new list of certificates changed, by id.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CertificateChanges {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Same id, other names or challenge type: ordered anew when the served one does not fit.
    pub changed: Vec<String>,
}

impl CertificateChanges {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// Why a renewal request was refused.
#[derive(Debug, thiserror::Error)]
pub enum RenewRequestError {
    /// The id is not a configured `[[certificate]]`.
    #[error("{0} is not a certificate this node obtains over ACME")]
    Unknown(String),
}

impl Renewer {
    pub fn new(
        acme: AcmeConfig,
        certificates: Vec<CertificateConfig>,
        state: State,
        selfcheck: Arc<dyn SelfCheck>,
    ) -> (Self, RenewerHandle) {
        let orders = IntCounterVec::new(
            Opts::new(
                "dcv_acme_orders_total",
                "ACME orders by result (valid, failed)",
            ),
            &["result"],
        )
        .expect("metric name and labels are constant and valid");
        orders.with_label_values(&["valid"]);
        orders.with_label_values(&["failed"]);
        let problems = IntCounterVec::new(
            Opts::new(
                "dcv_acme_problems_total",
                "ACME problem documents received, by type (without the urn:ietf:params:acme:error: prefix)",
            ),
            &["type"],
        )
        .expect("metric name and labels are constant and valid");
        let failures = IntCounterVec::new(
            Opts::new(
                "dcv_acme_order_failures_total",
                "Failed ACME orders per certificate, by catalogue cause (none when the catalogue has none) and type (the ACME error type, or self-check, transport, timeout, refused, storage, key, config)",
            ),
            &["certificate", "cause", "type"],
        )
        .expect("metric name and labels are constant and valid");
        let status = Status {
            account: AccountStatus::default(),
            certificates: certificates
                .iter()
                .map(|c| (c.id.to_string(), CertStatus::new(c)))
                .collect(),
        };
        let shared = Arc::new(Shared {
            directory: acme.directory.clone(),
            certificates: ArcSwap::from_pointee(certificates),
            wake: Notify::new(),
            status: Mutex::new(status),
            budget: Mutex::new(schedule::OrderBudget::new(
                acme.max_new_orders,
                acme.new_orders_window,
            )),
            orders,
            problems,
            failures,
        });
        let (trigger, rx) = mpsc::unbounded_channel();
        (
            Self {
                acme,
                state,
                selfcheck,
                shared: shared.clone(),
                triggers: Mutex::new(Some(rx)),
            },
            RenewerHandle { shared, trigger },
        )
    }

    /// Loads the account, with backoff, until it works or the server stops.
    async fn account(&self, http: &AcmeHttp, shutdown: &mut ShutdownWatch) -> Option<Account> {
        let mut failures = 0;
        loop {
            // A fleet creates one account: whoever holds the lock creates it, the others load it.
            let lock = tokio::select! {
                lock = self.state.lock("account") => lock,
                _ = shutdown.changed() => return None,
            };
            let result = match lock {
                Ok(lock) => {
                    let result = account::load_or_create(&self.acme, http, &self.state).await;
                    if let Some(lock) = lock {
                        lock.release().await;
                    }
                    result
                }
                Err(e) => Err(AcmeError::Storage(e.to_string())),
            };
            match result {
                Ok((account, created)) => {
                    if created {
                        tracing::info!(directory = %self.acme.directory, "ACME account created");
                    }
                    let thumbprint = account.key_thumbprint().to_owned();
                    self.shared.with(|s| {
                        s.account = AccountStatus {
                            state: AccountState::Ready,
                            thumbprint: Some(thumbprint),
                            ..AccountStatus::default()
                        }
                    });
                    return Some(account);
                }
                Err(e) => {
                    failures += 1;
                    let wait = schedule::retry_wait(
                        failures,
                        &self.acme.retry_schedule,
                        None,
                        &mut rand::rng(),
                    );
                    let diagnosis = e.diagnose();
                    tracing::warn!(
                        error = %e,
                        cause = diagnosis.cause_label(),
                        remedy = diagnosis.what_to_do(),
                        retry_in = ?wait,
                        "ACME account not available"
                    );
                    self.count_problem(&e);
                    self.shared.with(|s| {
                        s.account = AccountStatus {
                            state: AccountState::Error,
                            error: Some(e.to_string()),
                            problem: e.problem().cloned(),
                            last_error: Some(diagnosis),
                            next_attempt: Some(rfc3339(SystemTime::now() + wait)),
                            thumbprint: None,
                        }
                    });
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.changed() => return None,
                    }
                }
            }
        }
    }

    /// Plans renewals and reports whether `cert` should be ordered now.
    async fn due(&self, account: &Account, cert: &CertificateConfig, now: SystemTime) -> bool {
        let current = self.current(cert);
        let (forced, retry_at, plan, paused) = self.shared.with(|s| {
            let st = s.cert_mut(cert);
            (st.forced, st.retry_at, st.plan.clone(), st.paused)
        });
        // Paused by the CA: only an operator's request orders it again.
        if paused && !forced {
            return false;
        }
        let Some(current) = current else {
            self.shared.with(|s| {
                let st = s.cert_mut(cert);
                st.plan = None;
                st.next_renewal = None;
                st.renewal_basis = Some(Basis::Missing);
                st.ari_window = None;
            });
            return forced || retry_at.is_none_or(|t| now >= t);
        };
        let stale = plan
            .as_ref()
            .is_none_or(|p| p.fingerprint != current.cert.fingerprint || now >= p.recheck);
        let plan = if stale {
            let plan = self.plan(account, &current, plan, now).await;
            self.shared.with(|s| {
                let st = s.cert_mut(cert);
                st.next_renewal = Some(rfc3339(plan.at));
                st.renewal_basis = Some(plan.basis);
                st.ari_window = plan.window.map(|(a, b)| [rfc3339(a), rfc3339(b)]);
                st.plan = Some(plan.clone());
                if st.state != CertState::Failed {
                    st.state = CertState::Waiting;
                }
            });
            plan
        } else {
            plan.unwrap_or_else(|| unreachable_plan(&current))
        };
        // Backing off after a failure (a renewal request clears this).
        if retry_at.is_some_and(|t| now < t) {
            return false;
        }
        // A requested renewal stays requested until an order succeeds.
        forced || now >= plan.at
    }

    /// The served certificate for `cert`, if it covers every configured name.
    fn current(&self, cert: &CertificateConfig) -> Option<Arc<CertEntry>> {
        let snapshot = self.state.certs.snapshot();
        let entry = snapshot.entry(&cert.id)?.clone();
        let covers = cert.names.iter().all(|n| {
            entry
                .cert
                .names
                .iter()
                .any(|san| name_covers(san, n.as_str()))
        });
        (covers && entry.cert.not_after > SystemTime::now()).then_some(entry)
    }

    /// ARI window when the CA offers it (keeping an earlier pick inside an unchanged window),
    /// else two thirds of the lifetime.
    async fn plan(
        &self,
        account: &Account,
        current: &CertEntry,
        previous: Option<Plan>,
        now: SystemTime,
    ) -> Plan {
        let recheck_default = now + self.acme.check_interval;
        if let Some(id) = certificate_identifier(current) {
            match account.renewal_info(&id).await {
                Ok((info, retry)) => {
                    let window = (
                        SystemTime::from(info.suggested_window.start),
                        SystemTime::from(info.suggested_window.end),
                    );
                    let same = previous.as_ref().filter(|p| {
                        p.fingerprint == current.cert.fingerprint && p.window == Some(window)
                    });
                    let at = match same {
                        Some(p) => p.at,
                        None => schedule::in_window(window.0, window.1, now, &mut rand::rng()),
                    };
                    let recheck = (now + retry.max(Duration::from_secs(60))).min(recheck_default);
                    return Plan {
                        fingerprint: current.cert.fingerprint.clone(),
                        at,
                        basis: Basis::Ari,
                        window: Some(window),
                        recheck,
                    };
                }
                Err(instant_acme::Error::Unsupported(_)) => {}
                Err(e) => {
                    tracing::warn!(certificate = %current.id, error = %e, "ARI unavailable; using two thirds of the lifetime")
                }
            }
        }
        let (at, basis) = match previous {
            Some(p) if p.fingerprint == current.cert.fingerprint && p.basis != Basis::Ari => {
                (p.at, p.basis)
            }
            _ => schedule::renewal_point(
                current.cert.not_before,
                current.cert.not_after,
                &mut rand::rng(),
            ),
        };
        Plan {
            fingerprint: current.cert.fingerprint.clone(),
            at,
            basis,
            window: None,
            recheck: recheck_default,
        }
    }

    /// Runs one order and records its outcome; returns whether the CA said the account is gone.
    async fn order(&self, account: &Account, http: &AcmeHttp, cert: &CertificateConfig) -> bool {
        let started = SystemTime::now();
        let clock = std::time::Instant::now();
        self.shared.with(|s| {
            let st = s.cert_mut(cert);
            st.state = CertState::Ordering;
            st.progress = None;
        });
        let replaces = self.replaces(cert);
        if replaces.is_none() {
            self.shared
                .budget
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .record(started);
        }
        let sink = StatusProgress {
            shared: &self.shared,
            cert,
        };
        let ctx = OrderContext {
            account,
            acme: &self.acme,
            state: &self.state,
            selfcheck: self.selfcheck.as_ref(),
            http,
            progress: &sink,
        };
        let _ = http.take_retry_after();
        let result = order::issue(&ctx, cert, replaces).await;
        let finished = SystemTime::now();
        let mut record = OrderRecord {
            started: rfc3339(started),
            finished: rfc3339(finished),
            duration_ms: clock.elapsed().as_millis(),
            result: OrderResult::Valid,
            error: None,
            problem: None,
            serial: None,
            profile_received: None,
            profile_ignored: false,
        };
        match result {
            Ok(order::Issued { entry, profile }) => {
                tracing::info!(certificate = %cert.id, serial = %entry.cert.serial, not_after = %rfc3339(entry.cert.not_after), "certificate issued and swapped in");
                record.profile_received = profile;
                record.profile_ignored =
                    cert.profile.is_some() && record.profile_received != cert.profile;
                self.shared
                    .orders
                    .with_label_values(&[OrderResult::Valid.as_str()])
                    .inc();
                record.serial = Some(entry.cert.serial.clone());
                self.shared.with(|s| {
                    let st = s.cert_mut(cert);
                    st.state = CertState::Waiting;
                    st.progress = None;
                    st.forced = false;
                    st.consecutive_failures = 0;
                    st.retry_at = None;
                    st.next_attempt = None;
                    st.plan = None;
                    st.last_order = Some(record);
                    st.last_error = None;
                });
                false
            }
            Err(e) => {
                let lost = e
                    .problem()
                    .is_some_and(|p| p.short_type() == "accountDoesNotExist");
                self.shared
                    .orders
                    .with_label_values(&[OrderResult::Failed.as_str()])
                    .inc();
                self.count_problem(&e);
                let diagnosis = e.diagnose();
                self.shared
                    .failures
                    .with_label_values(&[
                        cert.id.as_str(),
                        diagnosis.cause_label(),
                        diagnosis.type_label(),
                    ])
                    .inc();
                let retry_after = http.take_retry_after();
                // What is left of the served certificate's life bounds the wait (a short-lived
                // certificate near its end is tried more often, schedule::retry_wait).
                let remaining = self
                    .current(cert)
                    .and_then(|c| c.cert.not_after.duration_since(finished).ok());
                let paused = diagnosis.cause == Some(crate::catalogue::Cause::P10);
                record.result = OrderResult::Failed;
                record.error = Some(e.to_string());
                record.problem = e.problem().cloned();
                self.shared.with(|s| {
                    let st = s.cert_mut(cert);
                    st.consecutive_failures += 1;
                    let wait = schedule::retry_wait(
                        st.consecutive_failures,
                        &self.acme.retry_schedule,
                        remaining,
                        &mut rand::rng(),
                    );
                    let at = schedule::next_attempt(finished, wait, retry_after);
                    tracing::warn!(
                        certificate = %cert.id,
                        cause = diagnosis.cause_label(),
                        remedy = diagnosis.what_to_do(),
                        ca_type = diagnosis.ca_type.as_deref().unwrap_or("-"),
                        identifier = diagnosis.identifier.as_deref().unwrap_or("-"),
                        error = %e,
                        next_attempt = %rfc3339(at),
                        "order failed; the served certificate is unchanged"
                    );
                    st.state = CertState::Failed;
                    st.progress = None;
                    // Paused by the CA (P10): every order would fail and count towards the
                    // pause; none is placed until the operator asks (`certs renew`).
                    st.paused = paused;
                    st.retry_at = Some(at);
                    st.next_attempt = (!paused).then(|| rfc3339(at));
                    st.last_order = Some(record);
                    st.last_error = Some(diagnosis);
                });
                if paused {
                    tracing::error!(certificate = %cert.id, "the CA has paused the name: no order until `dcv-proxy certs renew` after it is unpaused");
                }
                lost
            }
        }
    }

    /// The served certificate an order for `cert` replaces: only when renewing with ARI (RFC
    /// 9773 §5: only CAs that offer ARI understand `replaces`).
    fn replaces(&self, cert: &CertificateConfig) -> Option<CertificateIdentifier<'static>> {
        let entry = self.current(cert)?;
        let ari = self.shared.with(|s| {
            s.cert_mut(cert)
                .plan
                .as_ref()
                .is_some_and(|p| p.basis == Basis::Ari)
        });
        if ari {
            certificate_identifier(&entry)
        } else {
            None
        }
    }

    /// Whether the account's budget of new orders takes one for `cert` now; when it does not,
    /// the certificate waits for the next free slot (`deferred` in its status). Renewals with
    /// ARI's `replaces` are exempt.
    fn within_budget(&self, cert: &CertificateConfig) -> bool {
        if self.replaces(cert).is_some() {
            return true;
        }
        let now = SystemTime::now();
        let (allowed, next, used) = {
            let mut budget = self.shared.budget.lock().unwrap_or_else(|p| p.into_inner());
            (budget.allows(now), budget.next_free(now), budget.used(now))
        };
        self.shared.with(|s| {
            let st = s.cert_mut(cert);
            if allowed {
                st.deferred = None;
            } else {
                st.deferred = Some(format!(
                    "{used} new orders in the last {} (acme.max_new_orders = {}): next at {}",
                    humantime::format_duration(self.acme.new_orders_window),
                    self.acme.max_new_orders,
                    rfc3339(next)
                ));
                st.retry_at = Some(next);
                st.next_attempt = Some(rfc3339(next));
            }
        });
        if !allowed {
            tracing::info!(certificate = %cert.id, used, next = %rfc3339(next), "due, waiting for the account's budget of new orders");
        }
        allowed
    }

    /// RFC 8555 §7.3.1: the CA no longer knows the key; register anew.
    async fn account_lost(&self, http: &AcmeHttp, shutdown: &mut ShutdownWatch) -> Option<Account> {
        tracing::warn!("the CA does not know the ACME account; creating a new one");
        if let Err(e) = account::forget(&self.state, &self.acme.directory).await {
            tracing::error!(error = %e, "cannot move the old account aside");
        }
        self.account(http, shutdown).await
    }

    /// The fleet lock could not be taken (etcd away): no order without it, since another node
    /// may be ordering the same certificate; try again after the shortest backoff.
    fn lock_unavailable(&self, cert: &CertificateConfig, error: &str) {
        let first = self
            .acme
            .retry_schedule
            .first()
            .copied()
            .unwrap_or(Duration::from_secs(60));
        let at = SystemTime::now() + first;
        tracing::warn!(certificate = %cert.id, %error, next_attempt = %rfc3339(at), "fleet lock unavailable; not ordering now");
        self.shared.with(|s| {
            let st = s.cert_mut(cert);
            st.retry_at = Some(at);
            st.next_attempt = Some(rfc3339(at));
        });
    }

    fn count_problem(&self, e: &AcmeError) {
        if let Some(problem) = e.problem() {
            self.shared
                .problems
                .with_label_values(&[problem.short_type()])
                .inc();
        }
    }

    /// The earliest moment something may become due.
    fn next_wake(&self, now: SystemTime) -> SystemTime {
        let cap = now + self.acme.check_interval;
        self.shared.with(|s| {
            s.certificates
                .values()
                .flat_map(|st| {
                    let planned = st.plan.as_ref().map(|p| p.at.min(p.recheck));
                    [planned, st.retry_at]
                })
                .flatten()
                .fold(cap, SystemTime::min)
        })
    }
}

#[async_trait]
impl BackgroundService for Renewer {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(mut triggers) = self
            .triggers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        else {
            return;
        };
        let http = match AcmeHttp::new(self.acme.ca_bundle.as_deref(), self.acme.request_timeout) {
            Ok(http) => http,
            Err(e) => {
                tracing::error!(error = %e, "ACME disabled");
                self.shared.with(|s| {
                    s.account.state = AccountState::Error;
                    s.account.error = Some(e.to_string());
                    s.account.last_error = Some(e.diagnose());
                });
                return;
            }
        };
        // Made when the first certificate needs it: a node without [[certificate]] never
        // contacts the CA, and one that gets certificates by a reload registers then.
        let mut account: Option<Account> = None;
        loop {
            let certificates = self.shared.certificates.load_full();
            self.shared.with(|s| {
                s.certificates
                    .retain(|id, _| certificates.iter().any(|c| c.id.as_str() == id))
            });
            if !certificates.is_empty() {
                let mut current = match account.take() {
                    Some(a) => a,
                    None => match self.account(&http, &mut shutdown).await {
                        Some(a) => a,
                        None => return,
                    },
                };
                self.publish_stateless(&current, &certificates);
                // Earliest end of life first: when the budget of new orders cannot take every
                // due certificate, the one that would expire first goes first.
                let mut by_urgency: Vec<&CertificateConfig> = certificates.iter().collect();
                by_urgency
                    .sort_by_key(|c| schedule::urgency(self.current(c).map(|e| e.cert.not_after)));
                for cert in by_urgency {
                    if *shutdown.borrow() {
                        return;
                    }
                    match self.round(cert, &mut current, &http, &mut shutdown).await {
                        Some(()) => {}
                        None => return,
                    }
                }
                account = Some(current);
            }
            let wake = self.next_wake(SystemTime::now());
            let wait = wake
                .duration_since(SystemTime::now())
                .unwrap_or_default()
                .max(Duration::from_millis(200));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                Some(id) = triggers.recv() => {
                    tracing::info!(certificate = %id, "renewal requested");
                }
                _ = self.shared.wake.notified() => {
                    tracing::debug!("certificate list changed");
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}

impl Renewer {
    /// Orders `cert` when it is due; `None` when the server is stopping.
    async fn round(
        &self,
        cert: &CertificateConfig,
        account: &mut Account,
        http: &AcmeHttp,
        shutdown: &mut ShutdownWatch,
    ) -> Option<()> {
        if !self.due(account, cert, SystemTime::now()).await {
            return Some(());
        }
        if !self.within_budget(cert) {
            return Some(());
        }
        // One order at a time across a fleet: wait for this certificate's lock, then look
        // again, since the node that held it may just have renewed it.
        let lock_name = format!("order/{}", cert.id);
        let lock = tokio::select! {
            lock = self.state.lock(&lock_name) => lock,
            _ = shutdown.changed() => return None,
        };
        let lock = match lock {
            Ok(lock) => lock,
            Err(e) => {
                self.lock_unavailable(cert, &e.to_string());
                return Some(());
            }
        };
        let lock = match lock {
            Some(lock) => {
                if let Err(e) = self.state.refresh_cert(&cert.id).await {
                    tracing::warn!(certificate = %cert.id, error = %e, "cannot read the certificate from the fleet store");
                }
                if !self.due(account, cert, SystemTime::now()).await {
                    tracing::info!(certificate = %cert.id, "renewed by another node of the fleet; not ordering");
                    lock.release().await;
                    return Some(());
                }
                Some(lock)
            }
            None => None,
        };
        let lost = self.order(account, http, cert).await;
        if let Some(lock) = lock {
            lock.release().await;
        }
        if lost {
            *account = self.account_lost(http, shutdown).await?;
        }
        // Re-plan from the new certificate right away.
        let _ = self.due(account, cert, SystemTime::now()).await;
        Some(())
    }

    /// RFC 8555 §8.1 stateless answers for the names configured now.
    fn publish_stateless(&self, account: &Account, certificates: &[CertificateConfig]) {
        if !self.acme.stateless_http01 {
            return;
        }
        let names = certificates
            .iter()
            .flat_map(|c| c.names.iter().map(|n| n.to_string()))
            .collect();
        self.state
            .challenges
            .set_stateless(Some((account.key_thumbprint().to_owned(), names)));
    }
}

impl RenewerHandle {
    /// Replaces the list of certificates to keep issued (a configuration reload). New ones are
    /// ordered at once; removed ones are no longer renewed; the served certificates are not
    /// touched.
    pub fn set_certificates(&self, certificates: Vec<CertificateConfig>) -> CertificateChanges {
        let old = self.shared.certificates.load_full();
        let mut changes = CertificateChanges::default();
        for c in &certificates {
            match old.iter().find(|o| o.id == c.id) {
                None => changes.added.push(c.id.to_string()),
                Some(o) if o != c => changes.changed.push(c.id.to_string()),
                Some(_) => {}
            }
        }
        for o in old.iter() {
            if !certificates.iter().any(|c| c.id == o.id) {
                changes.removed.push(o.id.to_string());
            }
        }
        if changes.is_empty() {
            return changes;
        }
        self.shared.with(|s| {
            for c in &certificates {
                let fresh = CertStatus::new(c);
                let st = s
                    .certificates
                    .entry(c.id.to_string())
                    .or_insert_with(|| fresh.clone());
                if st.names != fresh.names || st.challenge != fresh.challenge {
                    // Other names: the old plan was for a certificate that no longer fits.
                    *st = fresh;
                }
            }
            s.certificates
                .retain(|id, _| certificates.iter().any(|c| c.id.as_str() == id));
        });
        self.shared.certificates.store(Arc::new(certificates));
        self.shared.wake.notify_one();
        changes
    }

    /// Asks for `id` to be renewed now (ignoring its plan and any backoff).
    pub fn renew(&self, id: &CertId) -> Result<(), RenewRequestError> {
        let known = self.shared.with(|s| {
            s.certificates.get_mut(id.as_str()).map(|st| {
                st.forced = true;
                st.paused = false;
                st.state = CertState::Due;
                st.retry_at = None;
                st.next_attempt = None;
            })
        });
        if known.is_none() {
            return Err(RenewRequestError::Unknown(id.to_string()));
        }
        let _ = self.trigger.send(id.clone());
        Ok(())
    }

    /// The renewer's state for `/v1/status`.
    pub fn status_json(&self) -> serde_json::Value {
        let status = self.shared.with(|s| s.clone());
        serde_json::json!({
            "directory": self.shared.directory,
            "account": status.account,
            "certificates": status.certificates,
        })
    }

    /// One certificate's renewal state.
    pub fn certificate_json(&self, id: &CertId) -> Option<serde_json::Value> {
        self.shared.with(|s| {
            s.certificates
                .get(id.as_str())
                .and_then(|st| serde_json::to_value(st).ok())
        })
    }

    /// The renewer's collectors, for the metrics registry.
    pub fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.shared.orders.clone()),
            Box::new(self.shared.problems.clone()),
            Box::new(self.shared.failures.clone()),
            Box::new(RenewalGauge::new(self.shared.clone())),
        ]
    }
}

/// An order's steps, into the certificate's status.
struct StatusProgress<'a> {
    shared: &'a Shared,
    cert: &'a CertificateConfig,
}

impl ProgressSink for StatusProgress<'_> {
    fn report(&self, progress: Progress) {
        self.shared.with(|s| {
            let st = s.cert_mut(self.cert);
            // A reload may have dropped the certificate meanwhile; only an order in flight
            // has a progress.
            if st.state == CertState::Ordering {
                st.progress = Some(progress);
            }
        });
    }
}

impl Shared {
    fn with<T>(&self, f: impl FnOnce(&mut Status) -> T) -> T {
        f(&mut self.status.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Status {
    /// The status of `cert`, made afresh when a reload added it a moment ago.
    fn cert_mut(&mut self, cert: &CertificateConfig) -> &mut CertStatus {
        self.certificates
            .entry(cert.id.to_string())
            .or_insert_with(|| CertStatus::new(cert))
    }
}

impl CertStatus {
    fn new(cert: &CertificateConfig) -> Self {
        CertStatus {
            names: cert.names.iter().map(|n| n.to_string()).collect(),
            challenge: cert.challenge.as_str(),
            paused: false,
            deferred: None,
            profile: cert.profile.clone(),
            state: CertState::Due,
            progress: None,
            next_renewal: None,
            renewal_basis: None,
            ari_window: None,
            consecutive_failures: 0,
            next_attempt: None,
            last_order: None,
            last_error: None,
            plan: None,
            retry_at: None,
            forced: false,
        }
    }
}

/// `dcv_certificate_renewal_timestamp_seconds{certificate}`: the next planned renewal (or
/// retry). The label was `name` before; `certificate` is the certificate id's label in every
/// metric (`dcv_certificate_expiry_timestamp_seconds`, `dcv_acme_order_failures_total`).
struct RenewalGauge {
    shared: Arc<Shared>,
    gauge: GaugeVec,
}

impl RenewalGauge {
    fn new(shared: Arc<Shared>) -> Self {
        let gauge = GaugeVec::new(
            Opts::new(
                "dcv_certificate_renewal_timestamp_seconds",
                "Next planned renewal (or retry after a failure) of each ACME certificate, as a Unix timestamp",
            ),
            &["certificate"],
        )
        .expect("metric name and labels are constant and valid");
        Self { shared, gauge }
    }
}

impl Collector for RenewalGauge {
    fn desc(&self) -> Vec<&Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.gauge.reset();
        let now = SystemTime::now();
        self.shared.with(|s| {
            for (id, st) in &s.certificates {
                let at = match (st.retry_at, st.plan.as_ref()) {
                    (Some(retry), _) => Some(retry),
                    (None, Some(plan)) => Some(plan.at),
                    (None, None) => Some(now),
                };
                if let Some(at) = at {
                    self.gauge.with_label_values(&[id]).set(unix(at) as f64);
                }
            }
        });
        self.gauge.collect()
    }
}

/// The ARI id of a certificate: its authority key identifier and serial (RFC 9773 §4.1).
fn certificate_identifier(entry: &CertEntry) -> Option<CertificateIdentifier<'static>> {
    use x509_parser::prelude::{FromDer, ParsedExtension, X509Certificate};
    let der = entry.cert.key.cert.first()?;
    let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
    let aki = cert
        .iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })?;
    let serial = cert.tbs_certificate.raw_serial().to_vec();
    Some(
        CertificateIdentifier::new(
            rustls_pki_types::Der::from_slice(&aki),
            rustls_pki_types::Der::from_slice(&serial),
        )
        .into_owned(),
    )
}

fn unreachable_plan(current: &CertEntry) -> Plan {
    // `due` computes a plan whenever none exists; this is only a safe fallback.
    Plan {
        fingerprint: current.cert.fingerprint.clone(),
        at: current.cert.not_after,
        basis: Basis::ThirdLeft,
        window: None,
        recheck: SystemTime::now(),
    }
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}
