//! The renewer: a background service that keeps every configured certificate issued.
//!
//! Several CAs (`[[acme.ca]]`, RFC 8555 each, one account at each): every order goes to the
//! first CA that is not passed over for the certificate; a policy refusal, a rate limit beyond
//! the margin or an outage past `acme.fallback_after` passes a CA over
//! ([`schedule::classify_failure`]) and the next one is asked in the same round; the CA passed
//! over, why (catalogue cause and remedy) and who issued are in the status, the log and the
//! metrics. A certificate with `backup = true` also has a backup from another CA, kept in the
//! secret store and swapped in when the served one must be replaced early (`backup`).
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

use std::borrow::Cow;
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
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Notify};

use super::client::AcmeHttp;
use super::order::{self, OrderContext};
use super::progress::{Progress, ProgressSink};
use super::schedule::{self, Basis};
use super::selfcheck::SelfCheck;
use super::{account, backup, AcmeError, Diagnosis, ProblemDoc, SwapReason};
use crate::catalogue::FLEET_UNAVAILABLE;
use crate::config::{AcmeConfig, CertId, CertificateConfig};
use crate::state::certs::{name_covers, CertEntry, CertSource};
use crate::state::unix;
use crate::state::{OrderSlot, State};

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
    /// The first CA's directory (`directory` in `/v1/status`).
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
    /// `dcv_acme_ca_fallbacks_total{certificate,ca,reason,cause}`.
    fallbacks: IntCounterVec,
    /// `dcv_acme_backup_swaps_total{certificate,reason}`.
    swaps: IntCounterVec,
}

/// The renewer's document in `/v1/status` (`acme`): what the CLI's `certs list` and the status
/// page show of every CA and certificate.
#[derive(Clone, Serialize, Deserialize)]
pub struct AcmeStatus {
    /// The first CA's directory URL.
    pub directory: String,
    /// The first CA's account (as before there were several), then every CA's in `cas`.
    pub account: AccountStatus,
    pub cas: Vec<CaState>,
    /// By certificate id.
    pub certificates: BTreeMap<String, CertStatus>,
}

#[derive(Default, Clone)]
struct Status {
    /// One per configured CA, in order of preference.
    cas: Vec<CaState>,
    certificates: BTreeMap<String, CertStatus>,
}

/// One CA as the renewer sees it: its account and whether it is out.
#[derive(Default, Clone, Serialize, Deserialize)]
pub struct CaState {
    pub name: String,
    pub directory: String,
    pub account: AccountStatus,
    /// Since when the CA has not answered, or answered 5xx (an outage, P11); cleared by its
    /// next answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_since: Option<String>,
    #[serde(skip)]
    down_since: Option<SystemTime>,
    #[serde(skip)]
    account_retry_at: Option<SystemTime>,
    #[serde(skip)]
    account_failures: u32,
}

/// Why a CA was passed over for a certificate (serialised as `policy`, `rate-limited`,
/// `outage`).
pub use super::schedule::FailureClass as SkipReason;

/// A CA passed over for a certificate's orders, and why: shown until an order succeeds.
#[derive(Clone, Serialize, Deserialize)]
pub struct CaSkip {
    pub ca: String,
    pub reason: SkipReason,
    /// The catalogue cause (P2 for a policy refusal, P4 for a rate limit, P11 for an outage,
    /// or what the CA's answer maps to).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<crate::catalogue::Cause>,
    pub remedy: Cow<'static, str>,
    /// What the CA said (or that it did not answer).
    pub detail: String,
    pub since: String,
    /// When the CA is asked first again; none: at the next renewal (after an order succeeds
    /// elsewhere), or when every CA has refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    #[serde(skip)]
    index: usize,
    #[serde(skip)]
    until_at: Option<SystemTime>,
    /// The served certificate came from a later CA: shown until the next renewal starts, no
    /// longer a reason to pass the CA over.
    #[serde(skip)]
    settled: bool,
}

/// The account's state (serialised as `unknown`, `ready`, `error`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Default, Clone, Serialize, Deserialize)]
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
#[derive(Clone, Serialize, Deserialize)]
pub struct CertStatus {
    pub names: Vec<String>,
    pub challenge: Cow<'static, str>,
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
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// Due, but not ordered yet, and why: waiting for the account's budget of new orders
    /// (`acme.max_new_orders`), or for the fleet store (its lock, its count of orders).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deferred: Option<String>,
    /// The profile asked for on this certificate's orders.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The CA that issued the served certificate (as this node saw it issued).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    /// CAs passed over for this certificate, and why (`[[acme.ca]]` fallback).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<CaSkip>,
    /// The backup certificate (`backup = true`): kept from another CA, never served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupStatus>,
    /// Index of the CA that issued the served certificate (ARI and `replaces` go to it); read
    /// back after a restart from the issuer record when there are several CAs; unknown: the
    /// first.
    #[serde(skip)]
    issued_by: Option<usize>,
    /// The issuer record was read (once per start).
    #[serde(skip)]
    issuer_read: bool,
    #[serde(skip)]
    plan: Option<Plan>,
    #[serde(skip)]
    retry_at: Option<SystemTime>,
    #[serde(skip)]
    forced: bool,
    /// Counts renewal requests (`forced` set), so that an order that succeeds clears only the
    /// requests made before it started: one made while it ran (say, just after the swap, before
    /// this record was updated) orders again.
    #[serde(skip)]
    requests: u64,
}

/// Where a certificate's backup stands (serialised as `missing`, `ready`, `ordering`, `failed`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupState {
    /// None kept (yet, or any more).
    #[default]
    Missing,
    /// Kept valid and unserved, ready to be swapped in.
    Ready,
    /// A backup order is in flight.
    Ordering,
    /// The last backup order failed; backing off until `next_attempt`.
    Failed,
}

/// A certificate's backup (`backup = true`).
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct BackupStatus {
    pub state: BackupState,
    /// The CA that issued the backup kept now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256_fingerprint: Option<String>,
    pub consecutive_failures: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt: Option<String>,
    /// The last backup order's failure, until one succeeds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<Diagnosis>,
    /// The last time a backup was swapped in, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swapped_in: Option<SwapRecord>,
    #[serde(skip)]
    retry_at: Option<SystemTime>,
}

/// A backup swapped in for the served certificate.
#[derive(Clone, Serialize, Deserialize)]
pub struct SwapRecord {
    pub at: String,
    pub reason: SwapReason,
    /// The backup's serial, now served.
    pub serial: String,
    pub ca: String,
}

/// The last order attempt.
#[derive(Clone, Serialize, Deserialize)]
pub struct OrderRecord {
    /// The CA the order was placed with.
    pub ca: String,
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
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
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
                "ACME orders by CA and result (valid, failed)",
            ),
            &["ca", "result"],
        )
        .expect("metric name and labels are constant and valid");
        for ca in &acme.cas {
            orders.with_label_values(&[ca.name.as_str(), "valid"]);
            orders.with_label_values(&[ca.name.as_str(), "failed"]);
        }
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
                "Failed ACME orders per certificate and CA, by catalogue cause (none when the catalogue has none) and type (the ACME error type, or self-check, transport, timeout, refused, storage, key, config)",
            ),
            &["certificate", "ca", "cause", "type"],
        )
        .expect("metric name and labels are constant and valid");
        let fallbacks = IntCounterVec::new(
            Opts::new(
                "dcv_acme_ca_fallbacks_total",
                "Times a CA was passed over for a certificate and the next CA of acme.ca asked, by reason (policy, rate-limited, outage) and catalogue cause",
            ),
            &["certificate", "ca", "reason", "cause"],
        )
        .expect("metric name and labels are constant and valid");
        let swaps = IntCounterVec::new(
            Opts::new(
                "dcv_acme_backup_swaps_total",
                "Backup certificates swapped in because the served one had to be replaced early, by reason (ari-window-past, failing-near-expiry)",
            ),
            &["certificate", "reason"],
        )
        .expect("metric name and labels are constant and valid");
        let status = Status {
            cas: acme
                .cas
                .iter()
                .map(|ca| CaState {
                    name: ca.name.clone(),
                    directory: ca.directory.clone(),
                    ..CaState::default()
                })
                .collect(),
            certificates: certificates
                .iter()
                .map(|c| (c.id.to_string(), CertStatus::new(c)))
                .collect(),
        };
        let shared = Arc::new(Shared {
            directory: acme.cas[0].directory.clone(),
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
            fallbacks,
            swaps,
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

    /// One attempt at the account of CA `i` when its backoff allows: `Some(account)` when
    /// loaded or created, `None` when it failed (retried later with backoff, shown in the CA's
    /// status) or the server is stopping (`stopping` set).
    async fn load_account(
        &self,
        i: usize,
        http: &AcmeHttp,
        shutdown: &mut ShutdownWatch,
        stopping: &mut bool,
    ) -> Option<Account> {
        let ca = &self.acme.cas[i];
        let now = SystemTime::now();
        let retry_at = self.shared.with(|s| s.cas[i].account_retry_at);
        if retry_at.is_some_and(|t| now < t) {
            return None;
        }
        // A fleet creates one account per CA: whoever holds the lock creates it, the others
        // load it. (The first CA's lock keeps its name from before there were several.)
        let lock_name = if i == 0 {
            "account".to_owned()
        } else {
            format!("account/{}", account::account_name(&ca.directory))
        };
        let lock = tokio::select! {
            lock = self.state.lock(&lock_name) => lock,
            _ = shutdown.changed() => {
                *stopping = true;
                return None;
            }
        };
        let result = match lock {
            Ok(lock) => {
                let result = account::load_or_create(&self.acme, ca, http, &self.state).await;
                if let Some(lock) = lock {
                    lock.release().await;
                }
                result
            }
            Err(e) => Err(AcmeError::Fleet(e.to_string())),
        };
        match result {
            Ok((account, created)) => {
                if created {
                    tracing::info!(ca = %ca.name, directory = %ca.directory, "ACME account created");
                }
                let thumbprint = account.key_thumbprint().to_owned();
                self.shared.with(|s| {
                    let st = &mut s.cas[i];
                    st.account = AccountStatus {
                        state: AccountState::Ready,
                        thumbprint: Some(thumbprint),
                        ..AccountStatus::default()
                    };
                    st.account_failures = 0;
                    st.account_retry_at = None;
                    st.down_since = None;
                    st.out_since = None;
                });
                Some(account)
            }
            Err(e) => {
                let diagnosis = e.diagnose();
                let no_answer = matches!(e, AcmeError::Transport(_) | AcmeError::Timeout(_));
                let wait = self.shared.with(|s| {
                    let st = &mut s.cas[i];
                    st.account_failures += 1;
                    let wait = schedule::retry_wait(
                        st.account_failures,
                        &self.acme.retry_schedule,
                        None,
                        &mut rand::rng(),
                    );
                    let at = SystemTime::now() + wait;
                    st.account_retry_at = Some(at);
                    if no_answer && st.down_since.is_none() {
                        st.down_since = Some(now);
                        st.out_since = Some(rfc3339(now));
                    }
                    st.account = AccountStatus {
                        state: AccountState::Error,
                        error: Some(e.to_string()),
                        problem: e.problem().cloned(),
                        last_error: Some(diagnosis.clone()),
                        next_attempt: Some(rfc3339(at)),
                        thumbprint: None,
                    };
                    wait
                });
                tracing::warn!(
                    ca = %ca.name,
                    error = %e,
                    cause = diagnosis.cause_label(),
                    remedy = diagnosis.what_to_do(),
                    retry_in = ?wait,
                    "ACME account not available"
                );
                self.count_problem(&e);
                None
            }
        }
    }

    /// Plans renewals and reports whether `cert` should be ordered now.
    /// `account` is the one at the CA that issued the served certificate (its ARI window); none
    /// while it is not loaded: planned from the lifetime, and planned again once it is.
    async fn due(
        &self,
        account: Option<&Account>,
        cert: &CertificateConfig,
        now: SystemTime,
    ) -> bool {
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
                .any(|san| name_covers(san, &n.text()))
        });
        (covers && entry.cert.not_after > SystemTime::now()).then_some(entry)
    }

    /// ARI window when the CA offers it (keeping an earlier pick inside an unchanged window),
    /// else two thirds of the lifetime.
    async fn plan(
        &self,
        account: Option<&Account>,
        current: &CertEntry,
        previous: Option<Plan>,
        now: SystemTime,
    ) -> Plan {
        let recheck_default = now + self.acme.check_interval;
        let Some(account) = account else {
            // The issuing CA's account is not loaded yet: plan from the lifetime, and ask again
            // soon (ARI may move the plan).
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
            let first_retry = self
                .acme
                .retry_schedule
                .first()
                .copied()
                .unwrap_or(Duration::from_secs(60));
            return Plan {
                fingerprint: current.cert.fingerprint.clone(),
                at,
                basis,
                window: None,
                recheck: (now + first_retry).min(recheck_default),
            };
        };
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

    /// Runs one order at CA `i` and records its outcome.
    async fn order(
        &self,
        i: usize,
        account: &Account,
        http: &AcmeHttp,
        cert: &CertificateConfig,
    ) -> Outcome {
        let ca = &self.acme.cas[i];
        let replaces = self.replaces(cert, i);
        if replaces.is_none() {
            if let Err(wait) = self.take_order_slot().await {
                self.defer(cert, &wait);
                return Outcome::Failed(None);
            }
        }
        let started = SystemTime::now();
        let clock = std::time::Instant::now();
        let requests = self.shared.with(|s| {
            let st = s.cert_mut(cert);
            st.state = CertState::Ordering;
            st.progress = None;
            st.requests
        });
        let sink = StatusProgress {
            shared: &self.shared,
            cert,
        };
        let ctx = OrderContext {
            account,
            acme: &self.acme,
            ca,
            state: &self.state,
            selfcheck: self.selfcheck.as_ref(),
            http,
            progress: &sink,
            target: order::Target::Serve,
        };
        let _ = http.take_retry_after();
        let result = order::issue(&ctx, cert, replaces).await;
        let finished = SystemTime::now();
        let asked = cert.profile_for(ca);
        let mut record = OrderRecord {
            ca: ca.name.clone(),
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
            Ok(order::Issued {
                cert: issued,
                profile,
            }) => {
                tracing::info!(certificate = %cert.id, ca = %ca.name, serial = %issued.serial, not_after = %rfc3339(issued.not_after), "certificate issued and swapped in");
                record.profile_received = profile;
                record.profile_ignored = asked.is_some() && record.profile_received != asked;
                self.shared
                    .orders
                    .with_label_values(&[ca.name.as_str(), OrderResult::Valid.as_str()])
                    .inc();
                record.serial = Some(issued.serial.clone());
                self.shared.with(|s| {
                    s.cas[i].down_since = None;
                    s.cas[i].out_since = None;
                    let st = s.cert_mut(cert);
                    st.state = CertState::Waiting;
                    st.progress = None;
                    st.forced &= st.requests != requests;
                    st.consecutive_failures = 0;
                    st.retry_at = None;
                    st.next_attempt = None;
                    st.plan = None;
                    st.last_order = Some(record);
                    st.last_error = None;
                    st.ca = Some(ca.name.clone());
                    st.issued_by = Some(i);
                    // Shown with the certificate; the next renewal asks the first CA again.
                    for skip in &mut st.skipped {
                        skip.settled = true;
                    }
                });
                self.remember_issuer(cert, &ca.name).await;
                Outcome::Issued
            }
            Err(e) => {
                let lost = e
                    .problem()
                    .is_some_and(|p| p.short_type() == "accountDoesNotExist");
                self.shared
                    .orders
                    .with_label_values(&[ca.name.as_str(), OrderResult::Failed.as_str()])
                    .inc();
                self.count_problem(&e);
                let diagnosis = e.diagnose();
                self.shared
                    .failures
                    .with_label_values(&[
                        cert.id.as_str(),
                        ca.name.as_str(),
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
                let at_new_order = self.shared.with(|s| {
                    s.cert_mut(cert)
                        .progress
                        .as_ref()
                        .is_none_or(|p| p.step == super::Step::NewOrder)
                });
                let class = schedule::classify_failure(
                    e.problem().map(ProblemDoc::short_type),
                    e.problem().and_then(|p| p.status),
                    matches!(e, AcmeError::Transport(_) | AcmeError::Timeout(_)),
                    paused,
                    at_new_order,
                );
                let skip = self.fallback(i, class, &diagnosis, retry_after, remaining, finished);
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
                        ca = %ca.name,
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
                    // pause; none is placed until the operator asks (`certs renew`) — unless
                    // another CA takes the certificate (`round`).
                    st.paused = paused;
                    st.retry_at = Some(at);
                    st.next_attempt = (!paused).then(|| rfc3339(at));
                    st.last_order = Some(record);
                    st.last_error = Some(diagnosis);
                });
                if lost {
                    Outcome::AccountLost
                } else {
                    Outcome::Failed(skip)
                }
            }
        }
    }

    /// Whether a failure of class `class` at CA `i` is a reason to ask the next CA, and how
    /// long CA `i` is then passed over; updates whether the CA is out (an answer of any kind
    /// ends an outage).
    fn fallback(
        &self,
        i: usize,
        class: SkipReason,
        diagnosis: &Diagnosis,
        retry_after: Option<SystemTime>,
        remaining: Option<Duration>,
        now: SystemTime,
    ) -> Option<CaSkip> {
        use crate::catalogue::Cause;
        let margin = schedule::fallback_margin(self.acme.fallback_after, remaining);
        let (cause, until) = match class {
            SkipReason::Other => {
                self.shared.with(|s| {
                    s.cas[i].down_since = None;
                    s.cas[i].out_since = None;
                });
                return None;
            }
            SkipReason::Policy => (diagnosis.cause.unwrap_or(Cause::P2), None),
            SkipReason::RateLimited => {
                let beyond = retry_after.is_none_or(|t| t > now + margin);
                if !beyond {
                    return None;
                }
                (Cause::P4, retry_after)
            }
            SkipReason::Outage => {
                let since = self.shared.with(|s| {
                    let st = &mut s.cas[i];
                    if st.down_since.is_none() {
                        st.down_since = Some(now);
                        st.out_since = Some(rfc3339(now));
                    }
                    st.down_since.unwrap_or(now)
                });
                if now < since + margin {
                    return None;
                }
                (Cause::P11, Some(now + self.acme.fallback_after))
            }
        };
        Some(CaSkip {
            ca: self.acme.cas[i].name.clone(),
            reason: class,
            cause: Some(cause),
            remedy: cause.remedy().into(),
            detail: diagnosis.detail.clone(),
            since: rfc3339(now),
            until: until.map(rfc3339),
            index: i,
            until_at: until,
            settled: false,
        })
    }

    /// The served certificate an order for `cert` replaces: only when renewing with ARI (RFC
    /// 9773 §5: only CAs that offer ARI understand `replaces`).
    /// Only at the CA that issued it, too (another CA does not know the certificate).
    fn replaces(
        &self,
        cert: &CertificateConfig,
        ca: usize,
    ) -> Option<CertificateIdentifier<'static>> {
        let entry = self.current(cert)?;
        let ari = self.shared.with(|s| {
            let st = s.cert_mut(cert);
            st.issued_by.unwrap_or(0) == ca
                && st.plan.as_ref().is_some_and(|p| p.basis == Basis::Ari)
        });
        if ari {
            certificate_identifier(&entry)
        } else {
            None
        }
    }

    /// Whether the account's budget of new orders (as this node counted it) would take one for
    /// `cert` now; when it would not, the certificate waits for the next free slot (`deferred`
    /// in its status) without taking its lock. Renewals with ARI's `replaces` are exempt. The
    /// order itself takes its slot ([`Self::take_order_slot`]), counted fleet-wide in a fleet.
    fn within_budget(&self, cert: &CertificateConfig) -> bool {
        let issuer = self
            .shared
            .with(|s| s.cert_mut(cert).issued_by.unwrap_or(0));
        if self.replaces(cert, issuer).is_some() {
            return true;
        }
        let now = SystemTime::now();
        let (allowed, next, used) = {
            let mut budget = self.shared.budget.lock().unwrap_or_else(|p| p.into_inner());
            (budget.allows(now), budget.next_free(now), budget.used(now))
        };
        if !allowed {
            self.defer(cert, &self.budget_spent(used, next, ""));
        }
        allowed
    }

    /// Takes a slot of the account's budget of new orders for an order without `replaces`:
    /// across the fleet when the state is shared (a CA counts per account, and a fleet shares
    /// its accounts), else in this node's own count. Why and until when not, otherwise.
    async fn take_order_slot(&self) -> Result<(), BudgetWait> {
        let (max, window) = (self.acme.max_new_orders, self.acme.new_orders_window);
        let shared = self.state.take_order_slot(max, window).await;
        let now = SystemTime::now();
        let mut budget = self.shared.budget.lock().unwrap_or_else(|p| p.into_inner());
        match shared {
            // This node's count goes on too, so that its look before the lock never says
            // "free" for less than the fleet has placed from here.
            Ok(Some(OrderSlot::Taken)) => {
                budget.record(now);
                Ok(())
            }
            Ok(Some(OrderSlot::Full { used, next_free })) => {
                Err(self.budget_spent(used, next_free, " across the fleet"))
            }
            Ok(None) if budget.allows(now) => {
                budget.record(now);
                Ok(())
            }
            Ok(None) => {
                let (used, next) = (budget.used(now), budget.next_free(now));
                Err(self.budget_spent(used, next, ""))
            }
            // Not counted, not placed: an order the fleet cannot count could pass the limit.
            Err(e) => {
                let first = self.acme.retry_schedule.first().copied();
                let at = now + first.unwrap_or(Duration::from_secs(60));
                Err(BudgetWait {
                    why: format!(
                        "the fleet's count of new orders cannot be read ({e}); not ordering until it can, next at {}. fleet (no catalogue cause): {}",
                        rfc3339(at),
                        FLEET_UNAVAILABLE
                    ),
                    until: at,
                })
            }
        }
    }

    fn budget_spent(&self, used: usize, next: SystemTime, scope: &str) -> BudgetWait {
        BudgetWait {
            why: format!(
                "{used} new orders{scope} in the last {} (acme.max_new_orders = {}): next at {}",
                humantime::format_duration(self.acme.new_orders_window),
                self.acme.max_new_orders,
                rfc3339(next)
            ),
            until: next,
        }
    }

    /// `cert` waits for the budget of new orders: said in its status and the log.
    fn defer(&self, cert: &CertificateConfig, wait: &BudgetWait) {
        self.shared.with(|s| {
            let st = s.cert_mut(cert);
            st.deferred = Some(wait.why.clone());
            st.retry_at = Some(wait.until);
            st.next_attempt = Some(rfc3339(wait.until));
            if st.state == CertState::Ordering {
                st.state = CertState::Due;
            }
        });
        tracing::info!(certificate = %cert.id, deferred = %wait.why, "due, waiting for the account's budget of new orders");
    }

    /// RFC 8555 §7.3.1: CA `i` no longer knows the key; the stored account is moved aside so
    /// the next attempt registers anew.
    async fn account_lost(&self, i: usize) {
        let ca = &self.acme.cas[i];
        tracing::warn!(ca = %ca.name, "the CA does not know the ACME account; creating a new one");
        if let Err(e) = account::forget(&self.state, &ca.directory).await {
            tracing::error!(error = %e, "cannot move the old account aside");
        }
        self.shared.with(|s| s.cas[i].account_retry_at = None);
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
        let remedy = FLEET_UNAVAILABLE;
        tracing::warn!(certificate = %cert.id, %error, next_attempt = %rfc3339(at), kind = "fleet", remedy, "fleet lock unavailable; not ordering now");
        self.shared.with(|s| {
            let st = s.cert_mut(cert);
            st.retry_at = Some(at);
            st.next_attempt = Some(rfc3339(at));
            st.deferred = Some(format!(
                "the fleet lock cannot be taken ({error}); not ordering until it can, next at {}. fleet (no catalogue cause): {remedy}",
                rfc3339(at)
            ));
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

    /// The earliest moment something may become due (with `accounts_wanted`, an account to
    /// retry too).
    fn next_wake(&self, now: SystemTime, accounts_wanted: bool) -> SystemTime {
        let cap = now + self.acme.check_interval;
        self.shared.with(|s| {
            let accounts = s
                .cas
                .iter()
                .filter(|_| accounts_wanted)
                .filter(|c| c.account.state != AccountState::Ready)
                .map(|c| c.account_retry_at);
            s.certificates
                .values()
                .flat_map(|st| {
                    let planned = st.plan.as_ref().map(|p| p.at.min(p.recheck));
                    [
                        planned,
                        st.retry_at,
                        st.backup.as_ref().and_then(|b| b.retry_at),
                    ]
                })
                .chain(accounts)
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
        // One client per CA: each may trust its own roots (`ca_bundle`).
        let mut https: Vec<Option<AcmeHttp>> = Vec::with_capacity(self.acme.cas.len());
        for (i, ca) in self.acme.cas.iter().enumerate() {
            match AcmeHttp::new(ca.ca_bundle.as_deref(), self.acme.request_timeout) {
                Ok(http) => https.push(Some(http)),
                Err(e) => {
                    tracing::error!(ca = %ca.name, error = %e, "ACME disabled for this CA");
                    self.shared.with(|s| {
                        let account = &mut s.cas[i].account;
                        account.state = AccountState::Error;
                        account.error = Some(e.to_string());
                        account.last_error = Some(e.diagnose());
                    });
                    https.push(None);
                }
            }
        }
        if https.iter().all(Option::is_none) {
            return;
        }
        // Made when the first certificate needs them: a node without [[certificate]] never
        // contacts a CA, and one that gets certificates by a reload registers then.
        let mut accounts: Vec<Option<Account>> = vec![None; self.acme.cas.len()];
        loop {
            let certificates = self.shared.certificates.load_full();
            self.shared.with(|s| {
                s.certificates
                    .retain(|id, _| certificates.iter().any(|c| c.id.as_str() == id))
            });
            if !certificates.is_empty() {
                let mut stopping = false;
                for i in 0..accounts.len() {
                    if accounts[i].is_none() {
                        if let Some(http) = &https[i] {
                            accounts[i] = self
                                .load_account(i, http, &mut shutdown, &mut stopping)
                                .await;
                        }
                    }
                    if stopping {
                        return;
                    }
                }
                if let Some(primary) = accounts.iter().flatten().next() {
                    self.publish_stateless(primary, &certificates);
                }
                // Earliest end of life first: when the budget of new orders cannot take every
                // due certificate, the one that would expire first goes first.
                let mut by_urgency: Vec<&CertificateConfig> = certificates.iter().collect();
                by_urgency
                    .sort_by_key(|c| schedule::urgency(self.current(c).map(|e| e.cert.not_after)));
                for cert in by_urgency {
                    if *shutdown.borrow() {
                        return;
                    }
                    match self.round(cert, &mut accounts, &https, &mut shutdown).await {
                        Some(()) => {}
                        None => return,
                    }
                }
            }
            let wake = self.next_wake(SystemTime::now(), !certificates.is_empty());
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

/// How one order ended, for the round that placed it.
/// Why an order waits for the account's budget of new orders, and until when.
struct BudgetWait {
    why: String,
    until: SystemTime,
}

enum Outcome {
    Issued,
    /// The CA does not know the account (RFC 8555 §7.3.1).
    AccountLost,
    /// Failed; `Some` when the next CA should be asked, with why this one is passed over.
    Failed(Option<CaSkip>),
}

impl Renewer {
    /// The index of the CA that issued the served certificate of `cert` (the first when not
    /// known).
    fn issuer(&self, cert: &CertificateConfig) -> usize {
        self.shared
            .with(|s| s.cert_mut(cert).issued_by)
            .unwrap_or(0)
            .min(self.acme.cas.len().saturating_sub(1))
    }

    /// The CA to ask next for `cert`: the first that is usable, not passed over for it and not
    /// out for longer than its margin (`tried` this round excluded). When every CA is out, the
    /// first usable one is asked anyway (one of them may be back) — but only as the round's
    /// first order. When every CA has refused (policy), the refusals are forgotten and the
    /// first CA is asked again after the backoff: the operator may have fixed the cause.
    fn pick_ca(
        &self,
        cert: &CertificateConfig,
        tried: &[bool],
        usable: &[bool],
        now: SystemTime,
    ) -> Option<usize> {
        let remaining = self
            .current(cert)
            .and_then(|c| c.cert.not_after.duration_since(now).ok());
        let margin = schedule::fallback_margin(self.acme.fallback_after, remaining);
        self.shared.with(|s| {
            let skipped = |s: &Status, i: usize| {
                s.certificates.get(cert.id.as_str()).is_some_and(|st| {
                    st.skipped
                        .iter()
                        .any(|k| !k.settled && k.index == i && k.until_at.is_none_or(|t| now < t))
                })
            };
            let candidates: Vec<usize> = (0..usable.len())
                .filter(|&i| usable[i] && !tried[i] && !skipped(s, i))
                .collect();
            let out = |i: usize| s.cas[i].down_since.is_some_and(|d| now >= d + margin);
            if let Some(&i) = candidates.iter().find(|&&i| !out(i)) {
                return Some(i);
            }
            let first_of_round = !tried.iter().any(|t| *t);
            if !first_of_round {
                return None;
            }
            if let Some(&i) = candidates.first() {
                return Some(i);
            }
            // Every usable CA is passed over for this certificate: start again from the first.
            let st = s.cert_mut(cert);
            st.skipped.clear();
            (0..usable.len()).find(|&i| usable[i])
        })
    }

    /// With several CAs, which one issued the served certificate is kept beside it (a secret
    /// record `issuer-<id>`, shared with the fleet), so that after a restart ARI and `replaces`
    /// still go to that CA and status and metrics still name it.
    async fn remember_issuer(&self, cert: &CertificateConfig, ca: &str) {
        if self.acme.cas.len() < 2 {
            return;
        }
        let record = IssuerRecord { ca: ca.to_owned() };
        let bytes = serde_json::to_vec(&record).unwrap_or_default();
        if let Err(e) = self
            .state
            .store_secret(&issuer_record(&cert.id), &bytes)
            .await
        {
            tracing::warn!(certificate = %cert.id, error = %e, "cannot record which CA issued the certificate");
        }
    }

    /// Reads the issuer record once per start (see [`Self::remember_issuer`]).
    async fn recall_issuer(&self, cert: &CertificateConfig) {
        if self.acme.cas.len() < 2 || self.shared.with(|s| s.cert_mut(cert).issuer_read) {
            return;
        }
        let name = match self.state.load_secret(&issuer_record(&cert.id)).await {
            Ok(Some(bytes)) => serde_json::from_slice::<IssuerRecord>(&bytes)
                .ok()
                .map(|r| r.ca),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(certificate = %cert.id, error = %e, "cannot read which CA issued the certificate");
                None
            }
        };
        let index = name
            .as_ref()
            .and_then(|n| self.acme.cas.iter().position(|c| &c.name == n));
        self.shared.with(|s| {
            let st = s.cert_mut(cert);
            st.issuer_read = true;
            if st.issued_by.is_none() {
                if let (Some(i), Some(n)) = (index, name) {
                    st.issued_by = Some(i);
                    st.ca = Some(n);
                }
            }
        });
    }

    /// One round for `cert`: the backup swapped in when the served certificate must be
    /// replaced early, the certificate ordered when due, then its backup kept; `None` when the
    /// server is stopping.
    async fn round(
        &self,
        cert: &CertificateConfig,
        accounts: &mut [Option<Account>],
        https: &[Option<AcmeHttp>],
        shutdown: &mut ShutdownWatch,
    ) -> Option<()> {
        if self.current(cert).is_some() {
            self.recall_issuer(cert).await;
        }
        if cert.backup {
            let issuer = self.issuer(cert);
            // Plans (and asks ARI) first: the window decides.
            let _ = self
                .due(accounts[issuer].as_ref(), cert, SystemTime::now())
                .await;
            self.swap_if_needed(cert).await;
        }
        self.primary_round(cert, accounts, https, shutdown).await?;
        if cert.backup {
            self.backup_round(cert, accounts, https, shutdown).await?;
        }
        Some(())
    }

    /// Orders `cert` when it is due, from the first CA that takes it; `None` when the server
    /// is stopping.
    async fn primary_round(
        &self,
        cert: &CertificateConfig,
        accounts: &mut [Option<Account>],
        https: &[Option<AcmeHttp>],
        shutdown: &mut ShutdownWatch,
    ) -> Option<()> {
        let issuer = self.issuer(cert);
        if !self
            .due(accounts[issuer].as_ref(), cert, SystemTime::now())
            .await
        {
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
        // With the lock the order goes ahead: whatever deferred it (the budget, the lock itself)
        // is over, for ARI renewals and new orders alike. The one place that says so; the
        // budget's slot, taken next, defers it again if the fleet's count is spent.
        self.shared.with(|s| s.cert_mut(cert).deferred = None);
        let lock = match lock {
            Some(lock) => {
                if let Err(e) = self.state.refresh_cert(&cert.id).await {
                    tracing::warn!(certificate = %cert.id, error = %e, "cannot read the certificate from the fleet store");
                }
                if !self
                    .due(accounts[issuer].as_ref(), cert, SystemTime::now())
                    .await
                {
                    tracing::info!(certificate = %cert.id, "renewed by another node of the fleet; not ordering");
                    lock.release().await;
                    return Some(());
                }
                Some(lock)
            }
            None => None,
        };
        // A new renewal: what was passed over for the served certificate is history.
        self.shared
            .with(|s| s.cert_mut(cert).skipped.retain(|k| !k.settled));
        let usable: Vec<bool> = https.iter().map(Option::is_some).collect();
        let mut tried = vec![false; usable.len()];
        let mut stopping = false;
        while let Some(i) = self.pick_ca(cert, &tried, &usable, SystemTime::now()) {
            tried[i] = true;
            // CAs before this one that are out past their margin were passed over: say so.
            for j in 0..i {
                if let Some(skip) = self.outage_skip(cert, j, SystemTime::now()) {
                    self.skip(cert, skip);
                }
            }
            let Some(http) = &https[i] else { break };
            if accounts[i].is_none() {
                accounts[i] = self.load_account(i, http, shutdown, &mut stopping).await;
                if stopping {
                    break;
                }
            }
            let outcome = match &accounts[i] {
                Some(account) => self.order(i, account, http, cert).await,
                None => {
                    // No account at this CA (it is out, or refuses the registration): the
                    // next CA once this one is out past its margin, else wait for it.
                    let remaining = self
                        .current(cert)
                        .and_then(|c| c.cert.not_after.duration_since(SystemTime::now()).ok());
                    let (skip, retry) = self.shared.with(|s| {
                        (
                            s.cas[i].account.last_error.clone(),
                            s.cas[i].account_retry_at,
                        )
                    });
                    let diagnosis = skip.unwrap_or_else(|| {
                        AcmeError::Transport("the account is not available".into()).diagnose()
                    });
                    let class = if self.shared.with(|s| s.cas[i].down_since.is_some()) {
                        SkipReason::Outage
                    } else {
                        SkipReason::Policy
                    };
                    let skip =
                        self.fallback(i, class, &diagnosis, None, remaining, SystemTime::now());
                    if skip.is_none() {
                        self.shared.with(|s| {
                            let st = s.cert_mut(cert);
                            st.retry_at = retry;
                            st.next_attempt = retry.map(rfc3339);
                        });
                    }
                    Outcome::Failed(skip)
                }
            };
            match outcome {
                Outcome::Issued => break,
                Outcome::AccountLost => {
                    accounts[i] = None;
                    self.account_lost(i).await;
                    break;
                }
                Outcome::Failed(None) => break,
                Outcome::Failed(Some(skip)) => {
                    // Only worth saying when there is another CA to ask.
                    if !(0..usable.len()).any(|j| usable[j] && !tried[j]) {
                        break;
                    }
                    self.skip(cert, skip);
                }
            }
        }
        if let Some(lock) = lock {
            lock.release().await;
        }
        if stopping {
            return None;
        }
        // Re-plan from the new certificate right away.
        let issuer = self.issuer(cert);
        let _ = self
            .due(accounts[issuer].as_ref(), cert, SystemTime::now())
            .await;
        Some(())
    }

    /// Swaps the backup in when the served certificate must be replaced early
    /// ([`backup::must_replace_early`]), then has a new certificate ordered at once (from the
    /// first CA that takes it). Whether it did.
    async fn swap_if_needed(&self, cert: &CertificateConfig) -> bool {
        let Some(current) = self.current(cert) else {
            return false;
        };
        let now = SystemTime::now();
        let (window_end, failures) = self.shared.with(|s| {
            let st = s.cert_mut(cert);
            let end = st
                .plan
                .as_ref()
                .filter(|p| p.basis == Basis::Ari && p.fingerprint == current.cert.fingerprint)
                .and_then(|p| p.window.map(|w| w.1));
            (end, st.consecutive_failures)
        });
        let Some(reason) = backup::must_replace_early(
            window_end,
            failures,
            current.cert.not_before,
            current.cert.not_after,
            now,
        ) else {
            return false;
        };
        let names: Vec<String> = cert.names.iter().map(|n| n.text()).collect();
        let spare = match backup::load(&self.state, &cert.id, &names).await {
            Ok(Some(spare)) => spare,
            Ok(None) => return false,
            Err(e) => {
                tracing::warn!(certificate = %cert.id, error = %e, "cannot read the backup certificate");
                return false;
            }
        };
        let usable = spare.cert.fingerprint != current.cert.fingerprint
            && spare.cert.not_after > now + backup::MIN_BACKUP_LIFE
            && (reason == SwapReason::AriPast || spare.cert.not_after > current.cert.not_after);
        if !usable {
            return false;
        }
        let (chain, key) = spare.cert.chain_and_key_pem();
        match self
            .state
            .install_cert(&cert.id, chain, key, &names, CertSource::Acme)
            .await
        {
            Ok(entry) => {
                if let Err(e) = backup::discard(&self.state, &cert.id).await {
                    tracing::warn!(certificate = %cert.id, error = %e, "cannot drop the backup record after swapping it in");
                }
                self.shared
                    .swaps
                    .with_label_values(&[cert.id.as_str(), reason.as_str()])
                    .inc();
                tracing::warn!(
                    certificate = %cert.id,
                    reason = reason.as_str(),
                    replaced = %current.cert.serial,
                    serial = %entry.cert.serial,
                    ca = %spare.ca,
                    "backup certificate swapped in; ordering a new certificate now"
                );
                self.remember_issuer(cert, &spare.ca).await;
                let index = self.acme.cas.iter().position(|c| c.name == spare.ca);
                self.shared.with(|s| {
                    let st = s.cert_mut(cert);
                    st.ca = Some(spare.ca.clone());
                    st.issued_by = index;
                    st.plan = None;
                    st.forced = true;
                    st.requests += 1;
                    st.state = CertState::Due;
                    st.retry_at = None;
                    st.next_attempt = None;
                    let b = st.backup.get_or_insert_with(BackupStatus::default);
                    *b = BackupStatus {
                        state: BackupState::Missing,
                        swapped_in: Some(SwapRecord {
                            at: rfc3339(now),
                            reason,
                            serial: entry.cert.serial.clone(),
                            ca: spare.ca.clone(),
                        }),
                        ..BackupStatus::default()
                    };
                });
                true
            }
            Err(e) => {
                tracing::error!(certificate = %cert.id, error = %e, "the backup certificate could not be swapped in");
                false
            }
        }
    }

    /// Keeps `cert`'s backup: shows the one kept, and orders one from the first CA other than
    /// the served certificate's when none is kept or it nears its end. Only once a certificate
    /// is served (the served one comes first), within the account's budget of new orders.
    async fn backup_round(
        &self,
        cert: &CertificateConfig,
        accounts: &mut [Option<Account>],
        https: &[Option<AcmeHttp>],
        shutdown: &mut ShutdownWatch,
    ) -> Option<()> {
        if self.current(cert).is_none() {
            return Some(());
        }
        let now = SystemTime::now();
        let names: Vec<String> = cert.names.iter().map(|n| n.text()).collect();
        let kept = match backup::load(&self.state, &cert.id, &names).await {
            Ok(kept) => kept,
            Err(e) => {
                tracing::warn!(certificate = %cert.id, error = %e, "cannot read the backup certificate");
                None
            }
        };
        let waiting = self.shared.with(|s| {
            let st = s.cert_mut(cert);
            let b = st.backup.get_or_insert_with(BackupStatus::default);
            match &kept {
                Some(k) => {
                    b.state = BackupState::Ready;
                    b.ca = Some(k.ca.clone());
                    b.serial = Some(k.cert.serial.clone());
                    b.not_after = Some(rfc3339(k.cert.not_after));
                    b.sha256_fingerprint = Some(k.cert.fingerprint.clone());
                }
                None if b.state == BackupState::Ready => {
                    b.state = BackupState::Missing;
                    b.ca = None;
                    b.serial = None;
                    b.not_after = None;
                    b.sha256_fingerprint = None;
                }
                None => {}
            }
            b.retry_at.is_some_and(|t| now < t)
        });
        if waiting || !backup::backup_due(kept.as_ref().map(|k| &k.cert), now) {
            return Some(());
        }
        let issuer = self.issuer(cert);
        let Some(j) = (0..https.len()).find(|&j| j != issuer && https[j].is_some()) else {
            return Some(());
        };
        let Some(http) = &https[j] else {
            return Some(());
        };
        if accounts[j].is_none() {
            let mut stopping = false;
            accounts[j] = self.load_account(j, http, shutdown, &mut stopping).await;
            if stopping {
                return None;
            }
        }
        let Some(account) = accounts[j].clone() else {
            let retry = self.shared.with(|s| s.cas[j].account_retry_at);
            self.shared.with(|s| {
                if let Some(b) = s.cert_mut(cert).backup.as_mut() {
                    b.retry_at = retry;
                    b.next_attempt = retry.map(rfc3339);
                }
            });
            return Some(());
        };
        if let Err(wait) = self.take_order_slot().await {
            tracing::info!(certificate = %cert.id, deferred = %wait.why, "backup due, waiting for the account's budget of new orders");
            self.shared.with(|s| {
                if let Some(b) = s.cert_mut(cert).backup.as_mut() {
                    b.retry_at = Some(wait.until);
                    b.next_attempt = Some(rfc3339(wait.until));
                }
            });
            return Some(());
        }
        let lock_name = format!("backup/{}", cert.id);
        let lock = tokio::select! {
            lock = self.state.lock(&lock_name) => lock,
            _ = shutdown.changed() => return None,
        };
        let lock = match lock {
            Ok(lock) => lock,
            Err(e) => {
                tracing::warn!(certificate = %cert.id, error = %e, kind = "fleet", remedy = FLEET_UNAVAILABLE, "fleet lock unavailable; no backup order now");
                return Some(());
            }
        };
        self.order_backup(j, &account, http, cert).await;
        if let Some(lock) = lock {
            lock.release().await;
        }
        Some(())
    }

    /// One backup order at CA `j`; the outcome goes to the certificate's `backup` status.
    async fn order_backup(
        &self,
        j: usize,
        account: &Account,
        http: &AcmeHttp,
        cert: &CertificateConfig,
    ) {
        let ca = &self.acme.cas[j];
        self.shared.with(|s| {
            if let Some(b) = s.cert_mut(cert).backup.as_mut() {
                b.state = BackupState::Ordering;
            }
        });
        let sink = StatusProgress {
            shared: &self.shared,
            cert,
        };
        let ctx = OrderContext {
            account,
            acme: &self.acme,
            ca,
            state: &self.state,
            selfcheck: self.selfcheck.as_ref(),
            http,
            progress: &sink,
            target: order::Target::Backup,
        };
        let _ = http.take_retry_after();
        let result = order::issue(&ctx, cert, None).await;
        match result {
            Ok(order::Issued { cert: issued, .. }) => {
                tracing::info!(certificate = %cert.id, ca = %ca.name, serial = %issued.serial, not_after = %rfc3339(issued.not_after), "backup certificate issued and kept (not served)");
                self.shared
                    .orders
                    .with_label_values(&[ca.name.as_str(), OrderResult::Valid.as_str()])
                    .inc();
                self.shared.with(|s| {
                    if let Some(b) = s.cert_mut(cert).backup.as_mut() {
                        b.state = BackupState::Ready;
                        b.ca = Some(ca.name.clone());
                        b.serial = Some(issued.serial.clone());
                        b.not_after = Some(rfc3339(issued.not_after));
                        b.sha256_fingerprint = Some(issued.fingerprint.clone());
                        b.consecutive_failures = 0;
                        b.retry_at = None;
                        b.next_attempt = None;
                        b.last_error = None;
                    }
                });
            }
            Err(e) => {
                self.shared
                    .orders
                    .with_label_values(&[ca.name.as_str(), OrderResult::Failed.as_str()])
                    .inc();
                self.count_problem(&e);
                let diagnosis = e.diagnose();
                let retry_after = http.take_retry_after();
                let finished = SystemTime::now();
                self.shared.with(|s| {
                    if let Some(b) = s.cert_mut(cert).backup.as_mut() {
                        b.consecutive_failures += 1;
                        let wait = schedule::retry_wait(
                            b.consecutive_failures,
                            &self.acme.retry_schedule,
                            None,
                            &mut rand::rng(),
                        );
                        let at = schedule::next_attempt(finished, wait, retry_after);
                        tracing::warn!(
                            certificate = %cert.id,
                            ca = %ca.name,
                            cause = diagnosis.cause_label(),
                            remedy = diagnosis.what_to_do(),
                            error = %e,
                            next_attempt = %rfc3339(at),
                            "backup order failed; the served certificate is unchanged"
                        );
                        b.state = BackupState::Failed;
                        b.retry_at = Some(at);
                        b.next_attempt = Some(rfc3339(at));
                        b.last_error = Some(diagnosis);
                    }
                });
            }
        }
    }

    /// The outage skip of CA `j` for `cert`, when it is out past the certificate's margin and
    /// not yet recorded as passed over.
    fn outage_skip(&self, cert: &CertificateConfig, j: usize, now: SystemTime) -> Option<CaSkip> {
        let remaining = self
            .current(cert)
            .and_then(|c| c.cert.not_after.duration_since(now).ok());
        let margin = schedule::fallback_margin(self.acme.fallback_after, remaining);
        let (since, detail) = self.shared.with(|s| {
            let recorded = s
                .certificates
                .get(cert.id.as_str())
                .is_some_and(|st| st.skipped.iter().any(|k| !k.settled && k.index == j));
            let ca = &s.cas[j];
            let since = ca.down_since.filter(|d| !recorded && now >= *d + margin)?;
            let detail = ca
                .account
                .error
                .clone()
                .unwrap_or_else(|| "the CA did not answer, or answered 5xx".to_owned());
            Some((since, detail))
        })?;
        let cause = crate::catalogue::Cause::P11;
        let until = now + self.acme.fallback_after;
        Some(CaSkip {
            ca: self.acme.cas[j].name.clone(),
            reason: SkipReason::Outage,
            cause: Some(cause),
            remedy: cause.remedy().into(),
            detail: format!("out since {}: {detail}", rfc3339(since)),
            since: rfc3339(now),
            until: Some(rfc3339(until)),
            index: j,
            until_at: Some(until),
            settled: false,
        })
    }

    /// Records that CA `skip.index` is passed over for `cert`: status, log, metric.
    fn skip(&self, cert: &CertificateConfig, skip: CaSkip) {
        let cause = skip.cause.map_or("none", |c| c.id());
        tracing::warn!(
            certificate = %cert.id,
            ca = %skip.ca,
            reason = ?skip.reason,
            cause,
            remedy = %skip.remedy,
            detail = %skip.detail,
            until = skip.until.as_deref().unwrap_or("the next renewal"),
            "CA passed over; asking the next CA of acme.ca"
        );
        self.shared
            .fallbacks
            .with_label_values(&[
                cert.id.as_str(),
                skip.ca.as_str(),
                skip_reason_label(skip.reason),
                cause,
            ])
            .inc();
        self.shared.with(|s| {
            let st = s.cert_mut(cert);
            st.skipped.retain(|k| k.index != skip.index);
            st.skipped.push(skip);
            // The next CA is asked now, not after the backoff.
            st.retry_at = None;
            st.next_attempt = None;
            st.paused = false;
        });
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
                st.requests += 1;
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
    pub fn status(&self) -> AcmeStatus {
        let status = self.shared.with(|s| s.clone());
        AcmeStatus {
            directory: self.shared.directory.clone(),
            account: status
                .cas
                .first()
                .map(|c| c.account.clone())
                .unwrap_or_default(),
            cas: status.cas,
            certificates: status.certificates,
        }
    }

    /// One certificate's renewal state.
    pub fn certificate(&self, id: &CertId) -> Option<CertStatus> {
        self.shared
            .with(|s| s.certificates.get(id.as_str()).cloned())
    }

    /// The renewer's collectors, for the metrics registry.
    pub fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.shared.orders.clone()),
            Box::new(self.shared.problems.clone()),
            Box::new(self.shared.failures.clone()),
            Box::new(self.shared.fallbacks.clone()),
            Box::new(self.shared.swaps.clone()),
            Box::new(RenewalGauge::new(self.shared.clone())),
        ]
    }
}

/// The record `issuer-<id>`: which CA issued the served certificate (by its `[[acme.ca]]` name).
#[derive(Serialize, Deserialize)]
struct IssuerRecord {
    ca: String,
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
            challenge: cert.challenge.as_str().into(),
            paused: false,
            deferred: None,
            profile: cert.profile.clone(),
            ca: None,
            skipped: Vec::new(),
            backup: cert.backup.then(|| BackupStatus {
                state: BackupState::Missing,
                ..BackupStatus::default()
            }),
            issued_by: None,
            issuer_read: false,
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
            requests: 0,
        }
    }
}

/// `dcv_certificate_renewal_timestamp_seconds{certificate}`: the next planned renewal (or
/// retry). The label was `name` before; `certificate` is the certificate id's label in every
/// metric (`dcv_certificate_expiry_timestamp_seconds`, `dcv_acme_order_failures_total`).
///
/// Also `dcv_certificate_ca_info{certificate,ca}`: 1 for the CA that issued each certificate's
/// served certificate, as far as this node saw it issued (`[[acme.ca]]`).
struct RenewalGauge {
    shared: Arc<Shared>,
    gauge: GaugeVec,
    issuer: GaugeVec,
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
        let issuer = GaugeVec::new(
            Opts::new(
                "dcv_certificate_ca_info",
                "Always 1: the CA (acme.ca name) that issued each ACME certificate being served, as this node saw it issued",
            ),
            &["certificate", "ca"],
        )
        .expect("metric name and labels are constant and valid");
        Self {
            shared,
            gauge,
            issuer,
        }
    }
}

impl Collector for RenewalGauge {
    fn desc(&self) -> Vec<&Desc> {
        let mut desc = self.gauge.desc();
        desc.extend(self.issuer.desc());
        desc
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.gauge.reset();
        self.issuer.reset();
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
                if let Some(ca) = &st.ca {
                    self.issuer.with_label_values(&[id, ca]).set(1.0);
                }
            }
        });
        let mut families = self.gauge.collect();
        families.extend(self.issuer.collect());
        families
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

/// The secret record naming the CA that issued `id`'s served certificate.
fn issuer_record(id: &CertId) -> String {
    format!("issuer-{id}")
}

/// The `reason` label of `dcv_acme_ca_fallbacks_total`.
fn skip_reason_label(reason: SkipReason) -> &'static str {
    match reason {
        SkipReason::Policy => "policy",
        SkipReason::RateLimited => "rate-limited",
        SkipReason::Outage => "outage",
        SkipReason::Other => "other",
    }
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}
