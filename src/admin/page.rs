//! The status page (`GET /`, `GET /status`): what `GET /v1/status` says, as one server-rendered
//! HTML page an operator opens in a browser, on a desk or a phone.
//!
//! - Read-only and self-contained: no script, no external asset, no form; the one style sheet is
//!   inline and pinned by its hash in the `Content-Security-Policy`, which also forbids loading
//!   anything else, so the page cannot be made to fetch from elsewhere even by a name that
//!   slipped through.
//! - Rendered from the very document `/v1/status` returns ([`super::routes::status_document`]), so
//!   the page and the API cannot disagree; only the catalogue's summaries and remedies for the
//!   probe's causes are looked up here.
//! - Every value that comes from outside the binary (names from the configuration, issuer names
//!   and problem details from CAs, node ids from etcd) goes through [`Html::text`], which escapes
//!   it; markup is only ever a `&'static str` ([`Html::raw`]), so an unescaped value cannot be
//!   written by mistake.
//! - Reloads itself with `<meta http-equiv="refresh">` (every 30 s; `?refresh=N`, `0` for never).

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use super::input::{self, PageOptions};
use super::{AdminApi, Reply};
use crate::acme::schedule::Basis;
use crate::acme::{AccountState, AcmeStatus, CertState, CertStatus, Diagnosis, Progress};
use crate::api::{wire_name, CertView, ProbeSummary, Status};
use crate::catalogue::Cause;
use base64::Engine;
use http::StatusCode;

/// `GET /` and `GET /status`.
pub(super) fn page(api: &AdminApi, query: Option<&str>) -> Reply {
    let options = match input::page_query(query) {
        Ok(o) => o,
        Err(refused) => return refused.into(),
    };
    let status = super::routes::status_document(api);
    let interval = api
        .probe
        .as_ref()
        .and_then(|p| p.prober().config().interval);
    let view = View {
        status: &status,
        now: SystemTime::now(),
        host_name: &api.host_name,
        probe_interval: interval,
        options,
    };
    Reply::text(
        StatusCode::OK,
        "text/html; charset=utf-8",
        view.render().into_bytes(),
    )
    .with_header(http::header::CONTENT_SECURITY_POLICY, csp())
    .with_header(http::header::REFERRER_POLICY, "no-referrer")
    .with_header(http::header::X_FRAME_OPTIONS, "DENY")
}

/// Nothing but the inline style sheet (by hash); no script, image, font, frame or form target.
fn csp() -> &'static str {
    static CSP: OnceLock<String> = OnceLock::new();
    CSP.get_or_init(|| {
        let digest = ring::digest::digest(&ring::digest::SHA256, STYLE.as_bytes());
        let hash = base64::engine::general_purpose::STANDARD.encode(digest.as_ref());
        format!(
            "default-src 'none'; style-src 'sha256-{hash}'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        )
    })
}

/// The page's whole style. Colours are chosen for a contrast of at least 7:1 for text (WCAG AAA)
/// on their backgrounds; the state of a thing is always in words too, never in colour alone.
const STYLE: &str = "
:root{color-scheme:light;--fg:#1b1b1b;--muted:#4a4a4a;--line:#b8bcc4;--bg:#f3f4f6;--card:#fff;--link:#0b4fa8}
*{box-sizing:border-box}
body{margin:0;font:16px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;color:var(--fg);background:var(--bg);overflow-wrap:anywhere}
header,main,footer{max-width:72rem;margin:0 auto;padding:0 1rem}
header{padding-top:1rem}
h1{font-size:1.6rem;margin:.2rem 0}
h2{font-size:1.3rem;margin:1.6rem 0 .6rem}
h3{font-size:1.1rem;margin:0 0 .5rem;display:flex;flex-wrap:wrap;gap:.5rem;align-items:center}
a{color:var(--link)}
.meta{color:var(--muted);margin:.2rem 0}
nav ul{list-style:none;display:flex;flex-wrap:wrap;gap:.4rem 1.2rem;padding:0;margin:.6rem 0}
.card{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:.9rem 1rem;margin:0 0 .9rem}
dl{display:grid;grid-template-columns:minmax(7rem,max-content) 1fr;gap:.3rem 1rem;margin:0}
dt{font-weight:600}
dd{margin:0}
ul.plain{list-style:none;padding:0;margin:0}
.badge{display:inline-block;font-size:.8rem;font-weight:700;letter-spacing:.03em;padding:.05rem .45rem;border-radius:3px;border:1px solid}
.ok{color:#0a5323;background:#dff3e4;border-color:#0a5323}
.warn{color:#5c3900;background:#fff0cc;border-color:#5c3900}
.fail{color:#8a0f0f;background:#fde2e2;border-color:#8a0f0f}
.info{color:#1d3f7a;background:#e1eaf8;border-color:#1d3f7a}
.note{color:var(--muted)}
.problem{border-left:4px solid #8a0f0f;background:#fff6f6;padding:.5rem .8rem;margin:.6rem 0 0}
.problem p{margin:.2rem 0}
.progress{border-left:4px solid #1d3f7a;background:#f2f6fc;padding:.5rem .8rem;margin:.6rem 0 0}
.cause{font-family:ui-monospace,'DejaVu Sans Mono',monospace}
meter{width:min(20rem,100%);height:1rem;vertical-align:middle}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.95rem;overflow-wrap:normal}
td.nw,th{white-space:nowrap}
td.wide{overflow-wrap:anywhere;min-width:14rem}
caption{text-align:left;font-weight:600;padding:.3rem 0}
th,td{border:1px solid var(--line);padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#eceef2}
.attention li{margin:.3rem 0}
footer{color:var(--muted);padding:1rem 1rem 2rem;border-top:1px solid var(--line);margin-top:1.5rem}
@media (max-width:40rem){dl{grid-template-columns:1fr}dt{margin-top:.4rem}h1{font-size:1.35rem}}
";

/// Everything the page is made of.
struct View<'a> {
    status: &'a Status<AcmeStatus>,
    now: SystemTime,
    host_name: &'a str,
    probe_interval: Option<Duration>,
    options: PageOptions,
}

/// What needs the operator, listed at the top with a link to the thing.
struct Attention {
    anchor: String,
    text: String,
    class: &'static str,
}

impl View<'_> {
    fn render(&self) -> String {
        let s = self.status;
        let node = s
            .fleet
            .etcd
            .as_ref()
            .map_or(self.host_name, |f| f.node_id.as_str());
        let attention = self.attention();
        let mut h = Html::default();
        h.raw("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
            .raw("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
        if self.options.refresh > 0 {
            h.raw("<meta http-equiv=\"refresh\" content=\"")
                .text(&self.options.refresh.to_string())
                .raw("\">\n");
        }
        h.raw("<title>");
        match attention.len() {
            0 => h.raw("OK"),
            1 => h.raw("1 problem"),
            n => h.text(&format!("{n} problems")),
        };
        h.raw(" · ")
            .text(node)
            .raw(" · dcv-proxy status</title>\n<style>")
            .raw(STYLE)
            .raw("</style>\n</head>\n<body>\n<header>\n<h1>dcv-proxy on ")
            .text(node)
            .raw("</h1>\n<p class=\"meta\">Version ")
            .text(&s.version)
            .raw(" · started ");
        self.time(&mut h, Some(&s.started));
        h.raw(" · this page ");
        self.time(&mut h, Some(&s.now));
        if self.options.refresh > 0 {
            h.raw(" · reloads every ")
                .text(&self.options.refresh.to_string())
                .raw(" s (<a href=\"?refresh=0\">stop</a>)");
        } else {
            h.raw(" · does not reload (<a href=\"?\">reload every 30 s</a>)");
        }
        h.raw("</p>\n<nav aria-label=\"Sections\"><ul>")
            .raw("<li><a href=\"#certificates\">Certificates</a></li>")
            .raw("<li><a href=\"#probe\">Probed names</a></li>")
            .raw("<li><a href=\"#fleet\">Fleet</a></li>")
            .raw("<li><a href=\"#answers\">Validation answers</a></li>")
            .raw("<li><a href=\"/v1/status\">JSON</a></li>")
            .raw("<li><a href=\"/metrics\">Metrics</a></li>")
            .raw("</ul></nav>\n</header>\n<main>\n");

        h.raw("<section class=\"attention\" aria-labelledby=\"attention-h\">\n<h2 id=\"attention-h\">Needs attention</h2>\n");
        if attention.is_empty() {
            h.raw("<p><span class=\"badge ok\">OK</span> Nothing needs attention.</p>\n");
        } else {
            h.raw("<ul>\n");
            for a in &attention {
                h.raw("<li><span class=\"badge ")
                    .raw(a.class)
                    .raw("\">")
                    .raw(if a.class == "fail" { "FAIL" } else { "WARN" })
                    .raw("</span> <a href=\"#")
                    .text(&a.anchor)
                    .raw("\">")
                    .text(&a.text)
                    .raw("</a></li>\n");
            }
            h.raw("</ul>\n");
        }
        h.raw("</section>\n");

        self.certificates(&mut h);
        self.probe(&mut h);
        self.fleet(&mut h);
        self.answers(&mut h);

        h.raw("</main>\n<footer>dcv-proxy ")
            .text(&s.version)
            .raw(" on ")
            .text(node)
            .raw(". Read-only: nothing on this page changes the node. The same data: ")
            .raw("<a href=\"/v1/status\">/v1/status</a> (JSON), <a href=\"/metrics\">/metrics</a>.</footer>\n</body>\n</html>\n");
        h.out
    }

    /// The renewer's state of every certificate (empty without ACME).
    fn renewals(&self) -> impl Iterator<Item = (&String, &CertStatus)> {
        self.status
            .acme
            .iter()
            .flat_map(|acme| acme.certificates.iter())
    }

    // ---- what needs attention

    fn attention(&self) -> Vec<Attention> {
        let s = self.status;
        let mut out = Vec::new();
        for cert in &s.certificates {
            let id = &cert.id;
            if let Some((class, text)) = self.lifetime_problem(cert) {
                out.push(Attention {
                    anchor: format!("cert-{id}"),
                    text: format!("{id}: {text}"),
                    class,
                });
            }
            let shadowed = cert.not_served.len();
            if shadowed > 0 {
                out.push(Attention {
                    anchor: format!("cert-{id}"),
                    text: format!(
                        "{id}: not presented for {shadowed} of its names (another certificate wins them)"
                    ),
                    class: "warn",
                });
            }
        }
        for (id, renewal) in self.renewals() {
            if let Some(error) = &renewal.last_error {
                out.push(Attention {
                    anchor: format!("cert-{id}"),
                    text: format!("{id}: last order failed: {}", failure_headline(error)),
                    class: "fail",
                });
            }
        }
        if let Some(account) = s.acme.as_ref().map(|a| &a.account) {
            if account.state == AccountState::Error {
                out.push(Attention {
                    anchor: "acme-account".into(),
                    text: format!(
                        "ACME account: {}",
                        match &account.last_error {
                            Some(error) => failure_headline(error),
                            None => account.error.clone().unwrap_or_else(|| "error".into()),
                        }
                    ),
                    class: "fail",
                });
            }
        }
        for (name, report) in s.probe.iter().flatten() {
            let verdict = report.verdict.as_deref().unwrap_or("");
            let class = match verdict {
                "fail" | "error" => "fail",
                "warn" => "warn",
                _ => "",
            };
            if !class.is_empty() {
                let causes = match report.causes.as_deref() {
                    Some(causes) if !causes.is_empty() => {
                        let ids: Vec<&str> = causes.iter().map(|c| c.id()).collect();
                        format!(" ({})", ids.join(", "))
                    }
                    _ => String::new(),
                };
                out.push(Attention {
                    anchor: format!("probe-{name}"),
                    text: format!("{name}: probe {verdict}{causes}"),
                    class,
                });
            } else if self.probe_stale(report) {
                out.push(Attention {
                    anchor: format!("probe-{name}"),
                    text: format!("{name}: last probe is stale"),
                    class: "warn",
                });
            }
        }
        if s.fleet.etcd.as_ref().is_some_and(|f| !f.connected) {
            out.push(Attention {
                anchor: "fleet".into(),
                text: "fleet: not connected to etcd, serving the local snapshot".into(),
                class: "fail",
            });
        }
        out
    }

    /// `(class, text)` when a certificate is expired or past two thirds of its life.
    fn lifetime_problem(&self, cert: &CertView) -> Option<(&'static str, String)> {
        let (left, lifetime) = self.lifetime(cert)?;
        if cert.default && cert.self_signed {
            return None;
        }
        if left <= 0.0 {
            return Some(("fail", "expired".into()));
        }
        if left < lifetime / 3.0 {
            return Some((
                if left < lifetime / 10.0 {
                    "fail"
                } else {
                    "warn"
                },
                format!(
                    "expires in {}, less than a third of its lifetime left",
                    span(Duration::from_secs_f64(left))
                ),
            ));
        }
        None
    }

    /// Seconds left and the whole lifetime of a certificate.
    fn lifetime(&self, cert: &CertView) -> Option<(f64, f64)> {
        let not_before = time_of(&cert.not_before)?;
        let not_after = time_of(&cert.not_after)?;
        let lifetime = not_after
            .duration_since(not_before)
            .ok()?
            .as_secs_f64()
            .max(1.0);
        let left = match not_after.duration_since(self.now) {
            Ok(d) => d.as_secs_f64(),
            Err(e) => -e.duration().as_secs_f64(),
        };
        Some((left, lifetime))
    }

    fn probe_stale(&self, report: &ProbeSummary) -> bool {
        let finished = report.finished.as_deref().and_then(time_of);
        let (Some(every), Some(finished)) = (self.probe_interval, finished) else {
            return false;
        };
        self.now
            .duration_since(finished)
            .is_ok_and(|age| age > every * 3 + Duration::from_secs(60))
    }

    // ---- certificates

    fn certificates(&self, h: &mut Html) {
        let s = self.status;
        let acme = s.acme.as_ref();
        h.raw("<section id=\"certificates\" aria-labelledby=\"certificates-h\">\n<h2 id=\"certificates-h\">Certificates</h2>\n");
        h.raw("<p class=\"note\">Among certificates carrying the same name, the one with the exact name is presented before a wildcard, and of those the one that expires last. ");
        h.raw("The <span class=\"cause\">default</span> certificate is presented when none covers the name.</p>\n");
        for cert in &s.certificates {
            let renewal = acme.and_then(|a| a.certificates.get(&cert.id));
            self.certificate(h, &cert.id, Some(cert), renewal);
        }
        // Configured for ACME, not issued yet.
        for (id, renewal) in self.renewals() {
            if s.certificates.iter().any(|c| &c.id == id) {
                continue;
            }
            self.certificate(h, id, None, Some(renewal));
        }
        if let Some(acme) = acme {
            let account = &acme.account;
            h.raw("<article class=\"card\" id=\"acme-account\" aria-labelledby=\"acme-account-h\">\n<h3 id=\"acme-account-h\">ACME account ");
            match account.state {
                AccountState::Ready => h.raw("<span class=\"badge ok\">READY</span>"),
                AccountState::Error => h.raw("<span class=\"badge fail\">ERROR</span>"),
                AccountState::Unknown => h.raw("<span class=\"badge info\">NOT YET USED</span>"),
            };
            h.raw("</h3>\n<dl><dt>CA directory</dt><dd>")
                .text(&acme.directory)
                .raw("</dd></dl>\n");
            if account.state == AccountState::Error {
                match &account.last_error {
                    Some(error) => self.failure(h, error, account.next_attempt.as_deref(), None),
                    None => {
                        h.raw("<div class=\"problem\"><p>")
                            .text(account.error.as_deref().unwrap_or("error"))
                            .raw("</p></div>\n");
                    }
                }
            }
            h.raw("</article>\n");
        }
        h.raw("</section>\n");
    }

    /// Certificate `id`: `cert` (none when not issued yet) and its renewer state `acme` (none
    /// when it is not a `[[certificate]]`).
    fn certificate(
        &self,
        h: &mut Html,
        id: &str,
        cert: Option<&CertView>,
        acme: Option<&CertStatus>,
    ) {
        let anchor = format!("cert-{id}");
        h.raw("<article class=\"card\" id=\"")
            .text(&anchor)
            .raw("\" aria-labelledby=\"")
            .text(&anchor)
            .raw("-h\">\n<h3 id=\"")
            .text(&anchor)
            .raw("-h\">")
            .text(id)
            .raw(" ");
        let (class, word) = self.cert_badge(cert, acme);
        h.raw("<span class=\"badge ")
            .raw(class)
            .raw("\">")
            .raw(word)
            .raw("</span></h3>\n<dl>\n");

        // Names, and which of them another certificate wins.
        h.raw("<dt>Names</dt><dd><ul class=\"plain\">");
        let empty = Vec::new();
        let names = match (cert, acme) {
            (Some(cert), _) => &cert.names,
            (None, Some(acme)) => &acme.names,
            (None, None) => &empty,
        };
        let not_served = cert.map_or(&[][..], |c| c.not_served.as_slice());
        for name in names {
            h.raw("<li>").text(name);
            if let Some(n) = not_served.iter().find(|n| &n.name == name) {
                h.raw(" <span class=\"badge warn\">NOT SERVED</span> <span class=\"note\">")
                    .text(&n.served_by)
                    .raw(" is presented for it (")
                    .text(reason_text(&n.reason))
                    .raw(")</span>");
            }
            h.raw("</li>");
        }
        // Names under a wildcard that another certificate has exactly.
        for n in not_served {
            if names.contains(&n.name) {
                continue;
            }
            h.raw("<li><span class=\"note\">not for ")
                .text(&n.name)
                .raw(": ")
                .text(&n.served_by)
                .raw(" has the exact name</span></li>");
        }
        h.raw("</ul></dd>\n");

        if let Some(cert) = cert {
            h.raw("<dt>CA</dt><dd>");
            if cert.self_signed {
                h.raw("self-signed (").text(&cert.issuer).raw(")");
            } else {
                h.text(&cert.issuer);
            }
            if acme.is_some() {
                h.raw(" <span class=\"note\">via ACME ")
                    .text(
                        self.status
                            .acme
                            .as_ref()
                            .map_or("", |a| a.directory.as_str()),
                    )
                    .raw("</span>");
            }
            h.raw("</dd>\n<dt>Source</dt><dd>").text(&cert.source);
            if cert.default {
                h.raw(" · the default certificate (presented when no other covers the name)");
            }
            h.raw("</dd>\n<dt>Expires</dt><dd>");
            self.time(h, Some(&cert.not_after));
            if let Some((left, lifetime)) = self.lifetime(cert) {
                let days_left = (left / 86_400.0).max(0.0);
                let days = lifetime / 86_400.0;
                let percent = (left.max(0.0) / lifetime * 100.0).round();
                let text = format!(
                    "{} of {} left ({percent:.0}% of its lifetime)",
                    days_text(days_left),
                    days_text(days)
                );
                // low and high at a tenth and a third of the lifetime: red below a tenth, amber
                // below a third (the renewal should have happened by then), green above.
                h.raw("<br><meter min=\"0\" max=\"")
                    .text(&format!("{lifetime:.0}"))
                    .raw("\" low=\"")
                    .text(&format!("{:.0}", lifetime / 10.0))
                    .raw("\" high=\"")
                    .text(&format!("{:.0}", lifetime / 3.0))
                    .raw("\" optimum=\"")
                    .text(&format!("{lifetime:.0}"))
                    .raw("\" value=\"")
                    .text(&format!("{:.0}", left.max(0.0)))
                    .raw("\" aria-label=\"Remaining lifetime of ")
                    .text(id)
                    .raw("\" aria-valuetext=\"")
                    .text(&text)
                    .raw("\"></meter> ")
                    .text(&text);
            }
            h.raw("</dd>\n");
            h.raw("<dt>Serial</dt><dd class=\"cause\">")
                .text(&cert.serial)
                .raw("</dd>\n");
        } else {
            h.raw("<dt>Certificate</dt><dd>not issued yet</dd>\n");
        }

        if let Some(acme) = acme {
            self.renewal(h, acme);
        }
        h.raw("</dl>\n");
        if let Some(acme) = acme {
            if acme.state == CertState::Ordering {
                if let Some(progress) = &acme.progress {
                    self.in_flight(h, progress);
                }
            }
            if let Some(error) = &acme.last_error {
                let next = if acme.state == CertState::Failed {
                    acme.next_attempt.as_deref()
                } else {
                    None
                };
                self.failure(h, error, next, Some(acme.consecutive_failures));
            }
        }
        h.raw("</article>\n");
    }

    fn cert_badge(
        &self,
        cert: Option<&CertView>,
        acme: Option<&CertStatus>,
    ) -> (&'static str, &'static str) {
        if acme.is_some_and(|a| a.last_error.is_some()) {
            return ("fail", "ORDER FAILING");
        }
        let ordering = acme.is_some_and(|a| a.state == CertState::Ordering);
        let Some(cert) = cert else {
            return if ordering {
                ("info", "ORDERING")
            } else {
                ("warn", "NOT ISSUED")
            };
        };
        if let Some((class, _)) = self.lifetime_problem(cert) {
            return (
                class,
                if class == "fail" {
                    "EXPIRES SOON"
                } else {
                    "RENEWAL DUE"
                },
            );
        }
        if ordering {
            return ("info", "RENEWING");
        }
        if !cert.not_served.is_empty() {
            return ("warn", "PARTLY SHADOWED");
        }
        if cert.default {
            return ("info", "DEFAULT");
        }
        ("ok", "OK")
    }

    fn renewal(&self, h: &mut Html, acme: &CertStatus) {
        h.raw("<dt>Renewal</dt><dd>");
        h.raw(match acme.state {
            CertState::Waiting => "planned",
            CertState::Due => "due now",
            CertState::Ordering => "ordering now",
            CertState::Failed => "last order failed, retrying",
        });
        if let Some(next) = &acme.next_renewal {
            h.raw(" · next renewal ");
            self.time(h, Some(next));
        }
        match acme.renewal_basis {
            Some(Basis::Ari) => {
                h.raw(" · basis: the CA's renewal window (ARI)");
                if let Some([start, end]) = &acme.ari_window {
                    h.raw(" ");
                    self.time(h, Some(start));
                    h.raw(" to ");
                    self.time(h, Some(end));
                }
            }
            Some(Basis::ThirdLeft) => {
                h.raw(" · basis: two thirds of the lifetime (the CA offers no ARI)");
            }
            Some(Basis::HalfLeft) => {
                h.raw(" · basis: half of the lifetime (short-lived certificate)");
            }
            Some(Basis::Missing) => {
                h.raw(" · basis: no certificate yet");
            }
            None => {}
        }
        h.raw("</dd>\n");
        if let Some(why) = &acme.deferred {
            h.raw("<dt>Not ordered yet</dt><dd>")
                .text(why)
                .raw("</dd>\n");
        }
        if let Some(ca) = &acme.ca {
            h.raw("<dt>Issued by</dt><dd>CA ").text(ca).raw("</dd>\n");
        }
        if let Some(backup) = &acme.backup {
            h.raw("<dt>Backup</dt><dd>").text(&wire_name(&backup.state));
            if let Some(ca) = &backup.ca {
                h.raw(" · CA ").text(ca);
            }
            if let Some(until) = &backup.not_after {
                h.raw(" · until ");
                self.time(h, Some(until));
            }
            if let Some(swap) = &backup.swapped_in {
                h.raw(" · swapped in ");
                self.time(h, Some(&swap.at));
                h.raw(" (").text(swap.reason.as_str()).raw(")");
            }
            h.raw("</dd>\n");
        }
        for skip in &acme.skipped {
            h.raw("<dt>CA passed over</dt><dd>")
                .text(&skip.ca)
                .raw(" · ")
                .text(&wire_name(&skip.reason));
            if let Some(cause) = skip.cause {
                h.raw(" · <span class=\"cause\">")
                    .text(cause.id())
                    .raw("</span> ");
            }
            h.text(&skip.remedy)
                .raw(" · the CA said: ")
                .text(&skip.detail)
                .raw("</dd>\n");
        }
        if let Some(order) = &acme.last_order {
            h.raw("<dt>Last order</dt><dd>")
                .text(order.result.as_str())
                .raw(" · ");
            self.time(h, Some(&order.finished));
            let ms = u64::try_from(order.duration_ms).unwrap_or(u64::MAX);
            h.raw(" · took ").text(&span(Duration::from_millis(ms)));
            if let Some(serial) = &order.serial {
                h.raw(" · serial <span class=\"cause\">")
                    .text(serial)
                    .raw("</span>");
            }
            h.raw("</dd>\n");
        }
    }

    fn in_flight(&self, h: &mut Html, progress: &Progress) {
        h.raw("<div class=\"progress\" role=\"group\" aria-label=\"Order in flight\"><p><strong>Order in flight</strong>, step <span class=\"cause\">")
            .text(progress.step.as_str())
            .raw("</span>: ")
            .text(&progress.text)
            .raw("</p>");
        if let Some(next) = &progress.next_poll {
            h.raw("<p>Next poll ");
            self.time(h, Some(next));
            h.raw("</p>");
        } else if let Some(until) = &progress.until {
            h.raw("<p>Gives up ");
            self.time(h, Some(until));
            h.raw("</p>");
        }
        h.raw("</div>\n");
    }

    /// A failure read through the catalogue: cause id, summary, remedy, what the CA said, each
    /// subproblem, and when the next attempt is.
    fn failure(&self, h: &mut Html, error: &Diagnosis, next: Option<&str>, failures: Option<u32>) {
        h.raw("<div class=\"problem\" role=\"group\" aria-label=\"Last failure\">");
        self.diagnosis(h, error);
        for sub in &error.subproblems {
            h.raw("<p><strong>Subproblem ")
                .text(sub.identifier.as_deref().unwrap_or("-"))
                .raw(":</strong></p>");
            self.diagnosis(h, sub);
        }
        let failures = failures.filter(|n| *n > 0);
        if next.is_some() || failures.is_some() {
            h.raw("<p>");
            if let Some(n) = failures {
                h.text(&format!(
                    "{n} failed order{} in a row. ",
                    if n == 1 { "" } else { "s" }
                ));
            }
            if next.is_some() {
                h.raw("Next attempt ");
                self.time(h, next);
                h.raw(".");
            }
            h.raw("</p>");
        }
        h.raw("</div>\n");
    }

    fn diagnosis(&self, h: &mut Html, e: &Diagnosis) {
        h.raw("<p>");
        match e.cause {
            Some(cause) => {
                h.raw("<strong class=\"cause\">")
                    .text(cause.id())
                    .raw("</strong> ")
                    .text(e.summary.as_deref().unwrap_or(""));
            }
            None => {
                h.raw("<strong>")
                    .text(e.type_label())
                    .raw("</strong> (no catalogue cause)");
            }
        }
        h.raw("</p>");
        let remedy = e.remedy.as_deref().unwrap_or_else(|| {
            crate::catalogue::remedy_without_cause(e.ca_type.as_deref(), e.kind.as_str())
        });
        h.raw("<p><strong>Remedy:</strong> ")
            .text(remedy)
            .raw("</p>");
        h.raw("<p class=\"note\">");
        h.text(e.type_label());
        if let Some(identifier) = &e.identifier {
            h.raw(" · ").text(identifier);
        }
        h.raw(": ").text(&e.detail).raw("</p>");
    }

    // ---- the self-probe

    fn probe(&self, h: &mut Html) {
        h.raw("<section id=\"probe\" aria-labelledby=\"probe-h\">\n<h2 id=\"probe-h\">Probed names</h2>\n");
        let Some(names) = &self.status.probe else {
            h.raw("<p>The self-probe does not run on this node (see the log at start for why).</p>\n</section>\n");
            return;
        };
        match self.probe_interval {
            Some(every) => {
                h.raw("<p class=\"note\">Every exact site name is probed the way the CA will see it, every ")
                    .text(&span(every))
                    .raw(". <span class=\"cause\">dcv-proxy check NAME</span> probes one now.</p>\n");
            }
            None => {
                h.raw("<p class=\"note\">The periodic probe is off (<span class=\"cause\">probe.interval = \"0s\"</span>); these are the last results of probes run by hand.</p>\n");
            }
        }
        if names.is_empty() {
            h.raw("<p>No name is probed: configure exact names in <span class=\"cause\">[[site]]</span>.</p>\n");
        }
        for (name, report) in names {
            let anchor = format!("probe-{name}");
            h.raw("<article class=\"card\" id=\"")
                .text(&anchor)
                .raw("\" aria-labelledby=\"")
                .text(&anchor)
                .raw("-h\">\n<h3 id=\"")
                .text(&anchor)
                .raw("-h\">")
                .text(name)
                .raw(" ");
            let verdict = report.verdict.as_deref();
            match verdict {
                Some("pass") => h.raw("<span class=\"badge ok\">PASS</span>"),
                Some("warn") => h.raw("<span class=\"badge warn\">WARN</span>"),
                Some("fail") => h.raw("<span class=\"badge fail\">FAIL</span>"),
                Some("error") => h.raw("<span class=\"badge fail\">ERROR</span>"),
                Some(other) => h
                    .raw("<span class=\"badge info\">")
                    .text(other)
                    .raw("</span>"),
                None => h.raw("<span class=\"badge info\">NOT PROBED YET</span>"),
            };
            if verdict.is_some() && self.probe_stale(report) {
                h.raw(" <span class=\"badge warn\">STALE</span>");
            }
            h.raw("</h3>\n");
            if verdict.is_none() {
                h.raw("<p>Not probed yet.</p>\n</article>\n");
                continue;
            }
            h.raw("<p>Last probe ");
            self.time(h, report.finished.as_deref());
            if let Some(ms) = report.duration_ms {
                h.raw(", took ").text(&span(Duration::from_millis(ms)));
            }
            h.raw(".</p>\n");
            let causes = report.causes.as_deref().unwrap_or_default();
            if !causes.is_empty() {
                h.raw("<ul class=\"plain\">");
                for cause in causes {
                    h.raw("<li class=\"problem\"><p><strong class=\"cause\">")
                        .text(cause.id())
                        .raw("</strong> ")
                        .text(cause.summary())
                        .raw("</p><p><strong>Remedy:</strong> ")
                        .text(cause.remedy())
                        .raw("</p></li>");
                }
                h.raw("</ul>\n");
            }
            let findings = report.findings.as_deref().unwrap_or_default();
            if !findings.is_empty() {
                h.raw("<div class=\"scroll\"><table><caption>Failing and warning checks of ")
                    .text(name)
                    .raw("</caption><thead><tr><th scope=\"col\">Status</th><th scope=\"col\">Check</th><th scope=\"col\">Target</th><th scope=\"col\">Cause</th><th scope=\"col\">What was seen</th></tr></thead><tbody>\n");
                for f in findings {
                    h.raw("<tr><td class=\"nw\"><span class=\"badge ")
                        .raw(match f.status.as_str() {
                            "fail" | "error" => "fail",
                            "warn" => "warn",
                            _ => "info",
                        })
                        .raw("\">")
                        .text(&f.status.to_ascii_uppercase())
                        .raw("</span></td><td class=\"cause nw\">")
                        .text(&f.check)
                        .raw("</td><td class=\"nw\">")
                        .text(&f.target)
                        .raw("</td><td class=\"cause nw\">")
                        .text(f.cause.map_or("-", Cause::id))
                        .raw("</td><td class=\"wide\">")
                        .text(&f.detail)
                        .raw("</td></tr>\n");
                }
                h.raw("</tbody></table></div>\n");
            }
            h.raw("</article>\n");
        }
        h.raw("</section>\n");
    }

    // ---- the fleet

    fn fleet(&self, h: &mut Html) {
        h.raw(
            "<section id=\"fleet\" aria-labelledby=\"fleet-h\">\n<h2 id=\"fleet-h\">Fleet</h2>\n",
        );
        let Some(fleet) = &self.status.fleet.etcd else {
            h.raw("<p>This node runs alone (<span class=\"cause\">fleet.backend = \"local\"</span>): its state is in its own state directory only.</p>\n</section>\n");
            return;
        };
        let me = fleet.node_id.as_str();
        h.raw("<div class=\"card\"><dl>\n<dt>This node</dt><dd>")
            .text(me)
            .raw("</dd>\n<dt>etcd</dt><dd>");
        if fleet.connected {
            h.raw("<span class=\"badge ok\">CONNECTED</span>");
        } else {
            h.raw("<span class=\"badge fail\">DISCONNECTED</span> serving the local snapshot; orders wait");
        }
        h.raw(" · ");
        h.text(&fleet.endpoints.join(", "))
            .raw(" · prefix <span class=\"cause\">")
            .text(&fleet.prefix)
            .raw("</span> · revision ")
            .text(&fleet.revision.to_string())
            .raw("</dd>\n");
        if let Some(error) = &fleet.last_error {
            h.raw("<dt>Last error</dt><dd>");
            self.time(h, Some(&error.at));
            h.raw(": ").text(&error.error).raw("</dd>\n");
        }
        h.raw("</dl></div>\n");
        let members = &fleet.members;
        let version = &self.status.version;
        h.raw("<div class=\"scroll\"><table><caption>Live members (")
            .text(&members.len().to_string())
            .raw(")</caption><thead><tr><th scope=\"col\">Node</th><th scope=\"col\">State</th><th scope=\"col\">Public addresses</th><th scope=\"col\">HTTP / HTTPS port</th><th scope=\"col\">Version</th><th scope=\"col\">Started</th></tr></thead><tbody>\n");
        for m in members {
            let id = &m.node_id;
            let addresses: Vec<String> = m.public_addresses.iter().map(|a| a.to_string()).collect();
            h.raw("<tr><td>").text(id);
            if id == me {
                h.raw(" (this node)");
            }
            h.raw("</td><td class=\"nw\"><span class=\"badge ok\">LIVE</span></td><td>");
            if addresses.is_empty() {
                h.raw("none published: the probe cannot ask it (H6 unchecked)");
            } else {
                h.text(&addresses.join(", "));
            }
            h.raw("</td><td class=\"nw\">")
                .text(&port(m.http_port))
                .raw(" / ")
                .text(&port(m.https_port))
                .raw("</td><td class=\"nw\">")
                .text(&m.version);
            if &m.version != version {
                h.raw(" <span class=\"badge warn\">DIFFERS</span>");
            }
            h.raw("</td><td class=\"nw\">");
            let at = SystemTime::UNIX_EPOCH + Duration::from_secs(m.started_unix);
            self.time(h, Some(&humantime::format_rfc3339_seconds(at).to_string()));
            h.raw("</td></tr>\n");
        }
        h.raw("</tbody></table></div>\n<p class=\"note\">A member is listed while it keeps its lease in etcd; one that lost etcd for longer than <span class=\"cause\">fleet.lease_ttl</span> drops out of this list.</p>\n</section>\n");
    }

    fn answers(&self, h: &mut Html) {
        let c = &self.status.challenges;
        h.raw("<section id=\"answers\" aria-labelledby=\"answers-h\">\n<h2 id=\"answers-h\">Validation answers</h2>\n<div class=\"card\"><dl>\n<dt>ACME tokens</dt><dd>")
            .text(&c.acme_tokens.to_string())
            .raw("</dd>\n<dt>pki-validation files</dt><dd>")
            .text(&c.pki_files.to_string())
            .raw("</dd>\n<dt>TLS-ALPN-01</dt><dd>")
            .text(&c.tls_alpn.to_string())
            .raw("</dd>\n</dl></div>\n</section>\n");
    }

    /// `<time datetime="…">2027-01-15 08:00 UTC</time> (in 3 days)`; `-` for none.
    fn time(&self, h: &mut Html, value: Option<&str>) {
        let Some(text) = value else {
            h.raw("-");
            return;
        };
        match humantime::parse_rfc3339_weak(text) {
            Ok(t) => {
                let shown = humantime::format_rfc3339_seconds(t).to_string();
                let shown = shown.replacen('T', " ", 1).replace('Z', " UTC");
                h.raw("<time datetime=\"")
                    .text(text)
                    .raw("\">")
                    .text(&shown)
                    .raw("</time> (")
                    .text(&relative(self.now, t))
                    .raw(")");
            }
            Err(_) => {
                h.text(text);
            }
        }
    }
}

/// The page being written: markup only from `&'static str`, every other value escaped.
#[derive(Default)]
struct Html {
    out: String,
}

impl Html {
    /// Markup written by this module.
    fn raw(&mut self, markup: &'static str) -> &mut Self {
        self.out.push_str(markup);
        self
    }

    /// A value, escaped for element content and quoted attribute values alike.
    fn text(&mut self, value: &str) -> &mut Self {
        for c in value.chars() {
            match c {
                '&' => self.out.push_str("&amp;"),
                '<' => self.out.push_str("&lt;"),
                '>' => self.out.push_str("&gt;"),
                '"' => self.out.push_str("&quot;"),
                '\'' => self.out.push_str("&#39;"),
                c => self.out.push(c),
            }
        }
        self
    }
}

/// `H1 (port 80 or 443 cannot be reached)` or the ACME type.
fn failure_headline(error: &Diagnosis) -> String {
    match (error.cause, &error.summary) {
        (Some(cause), Some(summary)) => format!("{cause}: {summary}"),
        (Some(cause), None) => cause.to_string(),
        (None, _) => format!("{} (not in the catalogue)", error.type_label()),
    }
}

fn reason_text(reason: &str) -> &'static str {
    use crate::state::certs::PassedOver;
    [
        PassedOver::ExpiresEarlier,
        PassedOver::PublishedEarlier,
        PassedOver::SmallerId,
        PassedOver::ExactNameWins,
    ]
    .into_iter()
    .find(|p| p.as_str() == reason)
    .map_or("another certificate wins it", PassedOver::text)
}

fn time_of(text: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(text).ok()
}

fn port(port: Option<u16>) -> String {
    port.map_or_else(|| "-".to_owned(), |p| p.to_string())
}

/// `in 3 days`, `5 min ago`, `now`.
fn relative(now: SystemTime, t: SystemTime) -> String {
    match t.duration_since(now) {
        Ok(ahead) if ahead >= Duration::from_secs(1) => format!("in {}", span(ahead)),
        Ok(_) => "now".to_owned(),
        Err(e) if e.duration() < Duration::from_secs(1) => "now".to_owned(),
        Err(e) => format!("{} ago", span(e.duration())),
    }
}

/// A duration in its largest sensible unit: `45 s`, `12 min`, `5 h`, `59 days`.
fn span(d: Duration) -> String {
    let s = d.as_secs();
    let mut out = String::new();
    let _ = match s {
        0 => write!(out, "{} ms", d.as_millis()),
        1..=119 => write!(out, "{s} s"),
        120..=7_199 => write!(out, "{} min", s / 60),
        7_200..=172_799 => write!(out, "{} h", s / 3_600),
        _ => write!(out, "{} days", s / 86_400),
    };
    out
}

fn days_text(days: f64) -> String {
    if days >= 2.0 {
        format!("{days:.0} days")
    } else {
        format!("{:.0} h", days * 24.0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn view(status: &serde_json::Value) -> String {
        let status: Status<AcmeStatus> = serde_json::from_value(status.clone()).unwrap();
        View {
            status: &status,
            now: humantime::parse_rfc3339("2027-01-15T08:00:00Z").unwrap(),
            host_name: "edge-1",
            probe_interval: Some(Duration::from_secs(300)),
            options: PageOptions { refresh: 30 },
        }
        .render()
    }

    fn sample() -> serde_json::Value {
        serde_json::json!({
            "version": "0.1.0",
            "started": "2027-01-15T07:00:00Z",
            "now": "2027-01-15T08:00:00.000Z",
            "certificates": [{
                "id": "shop",
                "names": ["shop.test", "<b>x</b>.test"],
                "subject": "CN=shop.test",
                "issuer": "CN=<script>alert(1)</script> & \"CA\"",
                "serial": "01",
                "sha256_fingerprint": "00",
                "not_before": "2026-12-16T08:00:00Z",
                "not_after": "2027-01-25T08:00:00Z",
                "not_after_unix": 1_800_000_000u64,
                "expires_in_seconds": 864_000,
                "chain_length": 1,
                "published": "2026-12-16T08:00:00Z",
                "self_signed": false,
                "default": false,
                "source": "upload",
                "not_served": [{"name": "shop.test", "served_by": "other", "reason": "expires_earlier"}],
            }],
            "names": [],
            "challenges": {"acme_tokens": 1, "pki_files": 0, "tls_alpn": 0},
            "acme": {
                "directory": "https://ca.test/dir",
                "account": {"state": "ready"},
                "cas": [],
                "certificates": {
                    "d.test": {
                        "names": ["d.test"],
                        "challenge": "http-01",
                        "state": "due",
                        "consecutive_failures": 0,
                        "deferred": "the fleet lock cannot be taken (etcd away)"
                    },
                    "h1.test": {
                        "names": ["h1.test"],
                        "challenge": "http-01",
                        "state": "failed",
                        "consecutive_failures": 3,
                        "next_attempt": "2027-01-15T08:02:00Z",
                        "last_error": {
                            "kind": "self-check",
                            "cause": "H1",
                            "summary": "port 80 or 443 cannot be reached",
                            "remedy": "open port 80",
                            "detail": "H1 (…) at 127.0.0.66:28080",
                            "ca_type": null,
                            "identifier": "h1.test"
                        }
                    }
                }
            },
            "probe": {
                "shop.test": {
                    "verdict": "fail",
                    "causes": ["D4"],
                    "finished": "2027-01-15T07:58:00Z",
                    "duration_ms": 40,
                    "findings": [{"check": "dns.resolve", "target": "r", "status": "fail", "cause": "D4", "detail": "timeout"}]
                },
                "new.test": {"verdict": null}
            },
            "fleet": {"backend": "local"}
        })
    }

    #[test]
    fn values_are_escaped_and_markup_is_ours() {
        let page = view(&sample());
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("CN=&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;CA&quot;"));
        assert!(page.contains("&lt;b&gt;x&lt;/b&gt;.test"));
        assert!(!page.contains("<b>x</b>"));
    }

    #[test]
    fn failures_carry_cause_remedy_and_next_attempt() {
        let page = view(&sample());
        assert!(
            page.contains("<strong class=\"cause\">H1</strong> port 80 or 443 cannot be reached")
        );
        assert!(page.contains("<strong>Remedy:</strong> open port 80"));
        assert!(page.contains("3 failed orders in a row."));
        assert!(page.contains("(in 2 min)"), "{page}");
        // The probe's cause, with the catalogue's words.
        let d4 = Cause::D4;
        assert!(page.contains(d4.remedy()));
        assert!(page.contains("NOT PROBED YET"));
        // The attention list links to each problem.
        assert!(
            page.contains("<title>4 problems · edge-1 · dcv-proxy status</title>"),
            "{page}"
        );
        assert!(page.contains("href=\"#cert-h1.test\""));
        assert!(page.contains("href=\"#probe-shop.test\""));
        // 10 of 40 days left: less than a third of the lifetime.
        assert!(
            page.contains("10 days of 40 days left (25% of its lifetime)"),
            "{page}"
        );
        assert!(page.contains("NOT SERVED"));
        // Due but held back, and why.
        assert!(
            page.contains(
                "<dt>Not ordered yet</dt><dd>the fleet lock cannot be taken (etcd away)</dd>"
            ),
            "{page}"
        );
    }

    #[test]
    fn style_matches_the_policy_hash() {
        let digest = ring::digest::digest(&ring::digest::SHA256, STYLE.as_bytes());
        let hash = base64::engine::general_purpose::STANDARD.encode(digest.as_ref());
        assert!(csp().contains(&hash));
        assert!(view(&sample()).contains(&format!("<style>{STYLE}</style>")));
    }

    #[test]
    fn relative_times_read_naturally() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(relative(now, now + Duration::from_secs(5)), "in 5 s");
        assert_eq!(relative(now, now - Duration::from_secs(600)), "10 min ago");
        assert_eq!(
            relative(now, now + Duration::from_secs(3 * 86_400)),
            "in 3 days"
        );
        assert_eq!(relative(now, now), "now");
    }
}
