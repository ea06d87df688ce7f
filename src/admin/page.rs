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

use base64::Engine;
use http::StatusCode;
use serde_json::Value;

use super::input::{self, PageOptions};
use super::{AdminApi, Reply};
use crate::catalogue::Cause;

/// `GET /` and `GET /status`.
pub(super) fn page(api: &AdminApi, query: Option<&str>) -> Reply {
    let options = match input::page_query(query) {
        Ok(o) => o,
        Err(refused) => return refused.into(),
    };
    let status = serde_json::to_value(super::routes::status_document(api)).unwrap_or_default();
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
    status: &'a Value,
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
        let node = s["fleet"]["node_id"].as_str().unwrap_or(self.host_name);
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
            .text(s["version"].as_str().unwrap_or("?"))
            .raw(" · started ");
        self.time(&mut h, &s["started"]);
        h.raw(" · this page ");
        self.time(&mut h, &s["now"]);
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
            .text(s["version"].as_str().unwrap_or("?"))
            .raw(" on ")
            .text(node)
            .raw(". Read-only: nothing on this page changes the node. The same data: ")
            .raw("<a href=\"/v1/status\">/v1/status</a> (JSON), <a href=\"/metrics\">/metrics</a>.</footer>\n</body>\n</html>\n");
        h.out
    }

    // ---- what needs attention

    fn attention(&self) -> Vec<Attention> {
        let s = self.status;
        let mut out = Vec::new();
        for cert in s["certificates"].as_array().into_iter().flatten() {
            let id = cert["id"].as_str().unwrap_or("?");
            if let Some((class, text)) = self.lifetime_problem(cert) {
                out.push(Attention {
                    anchor: format!("cert-{id}"),
                    text: format!("{id}: {text}"),
                    class,
                });
            }
            let shadowed = cert["not_served"].as_array().map_or(0, Vec::len);
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
        for (id, acme) in s["acme"]["certificates"].as_object().into_iter().flatten() {
            let error = &acme["last_error"];
            if error.is_object() {
                out.push(Attention {
                    anchor: format!("cert-{id}"),
                    text: format!("{id}: last order failed: {}", failure_headline(error)),
                    class: "fail",
                });
            }
        }
        let account = &s["acme"]["account"];
        if account["state"] == "error" {
            out.push(Attention {
                anchor: "acme-account".into(),
                text: format!(
                    "ACME account: {}",
                    if account["last_error"].is_object() {
                        failure_headline(&account["last_error"])
                    } else {
                        account["error"].as_str().unwrap_or("error").to_owned()
                    }
                ),
                class: "fail",
            });
        }
        for (name, report) in s["probe"].as_object().into_iter().flatten() {
            let verdict = report["verdict"].as_str().unwrap_or("");
            let causes: Vec<&str> = strings(&report["causes"]);
            let class = match verdict {
                "fail" | "error" => "fail",
                "warn" => "warn",
                _ => "",
            };
            if !class.is_empty() {
                let causes = if causes.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", causes.join(", "))
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
        let fleet = &s["fleet"];
        if fleet["backend"] == "etcd" && fleet["connected"] != true {
            out.push(Attention {
                anchor: "fleet".into(),
                text: "fleet: not connected to etcd, serving the local snapshot".into(),
                class: "fail",
            });
        }
        out
    }

    /// `(class, text)` when a certificate is expired or past two thirds of its life.
    fn lifetime_problem(&self, cert: &Value) -> Option<(&'static str, String)> {
        let (left, lifetime) = self.lifetime(cert)?;
        if cert["default"] == true && cert["self_signed"] == true {
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
    fn lifetime(&self, cert: &Value) -> Option<(f64, f64)> {
        let not_before = time_of(&cert["not_before"])?;
        let not_after = time_of(&cert["not_after"])?;
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

    fn probe_stale(&self, report: &Value) -> bool {
        let (Some(every), Some(finished)) = (self.probe_interval, time_of(&report["finished"]))
        else {
            return false;
        };
        self.now
            .duration_since(finished)
            .is_ok_and(|age| age > every * 3 + Duration::from_secs(60))
    }

    // ---- certificates

    fn certificates(&self, h: &mut Html) {
        let s = self.status;
        let acme = &s["acme"]["certificates"];
        h.raw("<section id=\"certificates\" aria-labelledby=\"certificates-h\">\n<h2 id=\"certificates-h\">Certificates</h2>\n");
        let certs = s["certificates"].as_array().cloned().unwrap_or_default();
        h.raw("<p class=\"note\">Among certificates carrying the same name, the one with the exact name is presented before a wildcard, and of those the one that expires last. ");
        h.raw("The <span class=\"cause\">default</span> certificate is presented when none covers the name.</p>\n");
        for cert in &certs {
            let id = cert["id"].as_str().unwrap_or("?");
            self.certificate(h, id, cert, &acme[id]);
        }
        // Configured for ACME, not issued yet.
        for (id, renewal) in acme.as_object().into_iter().flatten() {
            if certs.iter().any(|c| c["id"] == id.as_str()) {
                continue;
            }
            self.certificate(h, id, &Value::Null, renewal);
        }
        let account = &s["acme"]["account"];
        if account.is_object() {
            h.raw("<article class=\"card\" id=\"acme-account\" aria-labelledby=\"acme-account-h\">\n<h3 id=\"acme-account-h\">ACME account ");
            match account["state"].as_str() {
                Some("ready") => h.raw("<span class=\"badge ok\">READY</span>"),
                Some("error") => h.raw("<span class=\"badge fail\">ERROR</span>"),
                _ => h.raw("<span class=\"badge info\">NOT YET USED</span>"),
            };
            h.raw("</h3>\n<dl><dt>CA directory</dt><dd>")
                .text(s["acme"]["directory"].as_str().unwrap_or("-"))
                .raw("</dd></dl>\n");
            if account["state"] == "error" {
                if account["last_error"].is_object() {
                    self.failure(h, &account["last_error"], &account["next_attempt"], None);
                } else {
                    h.raw("<div class=\"problem\"><p>")
                        .text(account["error"].as_str().unwrap_or("error"))
                        .raw("</p></div>\n");
                }
            }
            h.raw("</article>\n");
        }
        h.raw("</section>\n");
    }

    /// Certificate `id`: `cert` (null when not issued yet) and its renewer state `acme` (null
    /// when it is not a `[[certificate]]`).
    fn certificate(&self, h: &mut Html, id: &str, cert: &Value, acme: &Value) {
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
        let names = if cert.is_object() {
            &cert["names"]
        } else {
            &acme["names"]
        };
        for name in names.as_array().into_iter().flatten() {
            let name = name.as_str().unwrap_or("?");
            h.raw("<li>").text(name);
            let shadow = cert["not_served"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|n| n["name"] == name);
            if let Some(n) = shadow {
                h.raw(" <span class=\"badge warn\">NOT SERVED</span> <span class=\"note\">")
                    .text(n["served_by"].as_str().unwrap_or("?"))
                    .raw(" is presented for it (")
                    .text(reason_text(n["reason"].as_str().unwrap_or("")))
                    .raw(")</span>");
            }
            h.raw("</li>");
        }
        // Names under a wildcard that another certificate has exactly.
        for n in cert["not_served"].as_array().into_iter().flatten() {
            let name = n["name"].as_str().unwrap_or("?");
            if names
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == name))
            {
                continue;
            }
            h.raw("<li><span class=\"note\">not for ")
                .text(name)
                .raw(": ")
                .text(n["served_by"].as_str().unwrap_or("?"))
                .raw(" has the exact name</span></li>");
        }
        h.raw("</ul></dd>\n");

        if cert.is_object() {
            h.raw("<dt>CA</dt><dd>");
            if cert["self_signed"] == true {
                h.raw("self-signed (")
                    .text(cert["issuer"].as_str().unwrap_or("?"))
                    .raw(")");
            } else {
                h.text(cert["issuer"].as_str().unwrap_or("?"));
            }
            if acme.is_object() {
                h.raw(" <span class=\"note\">via ACME ")
                    .text(self.status["acme"]["directory"].as_str().unwrap_or(""))
                    .raw("</span>");
            }
            h.raw("</dd>\n<dt>Source</dt><dd>")
                .text(cert["source"].as_str().unwrap_or("?"));
            if cert["default"] == true {
                h.raw(" · the default certificate (presented when no other covers the name)");
            }
            h.raw("</dd>\n<dt>Expires</dt><dd>");
            self.time(h, &cert["not_after"]);
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
                .text(cert["serial"].as_str().unwrap_or("?"))
                .raw("</dd>\n");
        } else {
            h.raw("<dt>Certificate</dt><dd>not issued yet</dd>\n");
        }

        if acme.is_object() {
            self.renewal(h, acme);
        }
        h.raw("</dl>\n");
        if acme.is_object() {
            if acme["state"] == "ordering" {
                self.in_flight(h, &acme["progress"]);
            }
            let error = &acme["last_error"];
            if error.is_object() {
                let next = if acme["state"] == "failed" {
                    &acme["next_attempt"]
                } else {
                    &Value::Null
                };
                let failures = acme["consecutive_failures"].as_u64();
                self.failure(h, error, next, failures);
            }
        }
        h.raw("</article>\n");
    }

    fn cert_badge(&self, cert: &Value, acme: &Value) -> (&'static str, &'static str) {
        if acme["last_error"].is_object() {
            return ("fail", "ORDER FAILING");
        }
        if !cert.is_object() {
            return match acme["state"].as_str() {
                Some("ordering") => ("info", "ORDERING"),
                _ => ("warn", "NOT ISSUED"),
            };
        }
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
        if acme["state"] == "ordering" {
            return ("info", "RENEWING");
        }
        if cert["not_served"].as_array().is_some_and(|a| !a.is_empty()) {
            return ("warn", "PARTLY SHADOWED");
        }
        if cert["default"] == true {
            return ("info", "DEFAULT");
        }
        ("ok", "OK")
    }

    fn renewal(&self, h: &mut Html, acme: &Value) {
        h.raw("<dt>Renewal</dt><dd>");
        let state = acme["state"].as_str().unwrap_or("?");
        h.text(match state {
            "waiting" => "planned",
            "due" => "due now",
            "ordering" => "ordering now",
            "failed" => "last order failed, retrying",
            other => other,
        });
        if let Some(next) = acme["next_renewal"].as_str() {
            h.raw(" · next renewal ");
            self.time(h, &Value::from(next));
        }
        match acme["renewal_basis"].as_str() {
            Some("ari") => {
                h.raw(" · basis: the CA's renewal window (ARI)");
                if let Some(w) = acme["ari_window"].as_array().filter(|w| w.len() == 2) {
                    h.raw(" ");
                    self.time(h, &w[0]);
                    h.raw(" to ");
                    self.time(h, &w[1]);
                }
            }
            Some("third-left" | "two-thirds") => {
                h.raw(" · basis: two thirds of the lifetime (the CA offers no ARI)");
            }
            Some("half-left") => {
                h.raw(" · basis: half of the lifetime (short-lived certificate)");
            }
            Some("missing") => {
                h.raw(" · basis: no certificate yet");
            }
            Some(other) => {
                h.raw(" · basis: ").text(other);
            }
            None => {}
        }
        h.raw("</dd>\n");
        if let Some(ca) = acme["ca"].as_str() {
            h.raw("<dt>Issued by</dt><dd>CA ").text(ca).raw("</dd>\n");
        }
        let backup = &acme["backup"];
        if backup.is_object() {
            h.raw("<dt>Backup</dt><dd>")
                .text(backup["state"].as_str().unwrap_or("?"));
            if let Some(ca) = backup["ca"].as_str() {
                h.raw(" · CA ").text(ca);
            }
            if let Some(until) = backup["not_after"].as_str() {
                h.raw(" · until ");
                self.time(h, &Value::from(until));
            }
            if let Some(at) = backup["swapped_in"]["at"].as_str() {
                h.raw(" · swapped in ");
                self.time(h, &Value::from(at));
                h.raw(" (")
                    .text(backup["swapped_in"]["reason"].as_str().unwrap_or("?"))
                    .raw(")");
            }
            h.raw("</dd>\n");
        }
        for skip in acme["skipped"].as_array().into_iter().flatten() {
            h.raw("<dt>CA passed over</dt><dd>")
                .text(skip["ca"].as_str().unwrap_or("?"))
                .raw(" · ")
                .text(skip["reason"].as_str().unwrap_or("?"));
            if let Some(cause) = skip["cause"].as_str() {
                h.raw(" · <span class=\"cause\">")
                    .text(cause)
                    .raw("</span> ");
            }
            if let Some(remedy) = skip["remedy"].as_str() {
                h.text(remedy);
            }
            h.raw(" · the CA said: ")
                .text(skip["detail"].as_str().unwrap_or("-"))
                .raw("</dd>\n");
        }
        let order = &acme["last_order"];
        if order.is_object() {
            h.raw("<dt>Last order</dt><dd>")
                .text(order["result"].as_str().unwrap_or("?"))
                .raw(" · ");
            self.time(h, &order["finished"]);
            if let Some(ms) = order["duration_ms"].as_u64() {
                h.raw(" · took ").text(&span(Duration::from_millis(ms)));
            }
            if let Some(serial) = order["serial"].as_str() {
                h.raw(" · serial <span class=\"cause\">")
                    .text(serial)
                    .raw("</span>");
            }
            h.raw("</dd>\n");
        }
    }

    fn in_flight(&self, h: &mut Html, progress: &Value) {
        h.raw("<div class=\"progress\" role=\"group\" aria-label=\"Order in flight\"><p><strong>Order in flight</strong>, step <span class=\"cause\">")
            .text(progress["step"].as_str().unwrap_or("starting"))
            .raw("</span>: ")
            .text(progress["text"].as_str().unwrap_or(""))
            .raw("</p>");
        if progress["next_poll"].is_string() {
            h.raw("<p>Next poll ");
            self.time(h, &progress["next_poll"]);
            h.raw("</p>");
        } else if progress["until"].is_string() {
            h.raw("<p>Gives up ");
            self.time(h, &progress["until"]);
            h.raw("</p>");
        }
        h.raw("</div>\n");
    }

    /// A failure read through the catalogue: cause id, summary, remedy, what the CA said, each
    /// subproblem, and when the next attempt is.
    fn failure(&self, h: &mut Html, error: &Value, next: &Value, failures: Option<u64>) {
        h.raw("<div class=\"problem\" role=\"group\" aria-label=\"Last failure\">");
        self.diagnosis(h, error);
        for sub in error["subproblems"].as_array().into_iter().flatten() {
            h.raw("<p><strong>Subproblem ")
                .text(sub["identifier"].as_str().unwrap_or("-"))
                .raw(":</strong></p>");
            self.diagnosis(h, sub);
        }
        if next.is_string() || failures.is_some_and(|n| n > 0) {
            h.raw("<p>");
            if let Some(n) = failures.filter(|n| *n > 0) {
                h.text(&format!(
                    "{n} failed order{} in a row. ",
                    if n == 1 { "" } else { "s" }
                ));
            }
            if next.is_string() {
                h.raw("Next attempt ");
                self.time(h, next);
                h.raw(".");
            }
            h.raw("</p>");
        }
        h.raw("</div>\n");
    }

    fn diagnosis(&self, h: &mut Html, e: &Value) {
        h.raw("<p>");
        match e["cause"].as_str() {
            Some(cause) => {
                h.raw("<strong class=\"cause\">")
                    .text(cause)
                    .raw("</strong> ")
                    .text(e["summary"].as_str().unwrap_or(""));
            }
            None => {
                h.raw("<strong>")
                    .text(
                        e["ca_type"]
                            .as_str()
                            .or(e["kind"].as_str())
                            .unwrap_or("error"),
                    )
                    .raw("</strong> (no catalogue cause)");
            }
        }
        h.raw("</p>");
        let remedy = e["remedy"].as_str().unwrap_or_else(|| {
            crate::catalogue::remedy_without_cause(
                e["ca_type"].as_str(),
                e["kind"].as_str().unwrap_or(""),
            )
        });
        h.raw("<p><strong>Remedy:</strong> ")
            .text(remedy)
            .raw("</p>");
        h.raw("<p class=\"note\">");
        h.text(
            e["ca_type"]
                .as_str()
                .or(e["kind"].as_str())
                .unwrap_or("error"),
        );
        if let Some(identifier) = e["identifier"].as_str() {
            h.raw(" · ").text(identifier);
        }
        h.raw(": ")
            .text(e["detail"].as_str().unwrap_or(""))
            .raw("</p>");
    }

    // ---- the self-probe

    fn probe(&self, h: &mut Html) {
        let probe = &self.status["probe"];
        h.raw("<section id=\"probe\" aria-labelledby=\"probe-h\">\n<h2 id=\"probe-h\">Probed names</h2>\n");
        let Some(names) = probe.as_object() else {
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
            let verdict = report["verdict"].as_str();
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
            self.time(h, &report["finished"]);
            if let Some(ms) = report["duration_ms"].as_u64() {
                h.raw(", took ").text(&span(Duration::from_millis(ms)));
            }
            h.raw(".</p>\n");
            let causes: Vec<&str> = strings(&report["causes"]);
            if !causes.is_empty() {
                h.raw("<ul class=\"plain\">");
                for id in causes {
                    h.raw("<li class=\"problem\"><p><strong class=\"cause\">")
                        .text(id)
                        .raw("</strong> ");
                    if let Ok(cause) = id.parse::<Cause>() {
                        h.text(cause.summary())
                            .raw("</p><p><strong>Remedy:</strong> ")
                            .text(cause.remedy());
                    }
                    h.raw("</p></li>");
                }
                h.raw("</ul>\n");
            }
            let findings = report["findings"].as_array().cloned().unwrap_or_default();
            if !findings.is_empty() {
                h.raw("<div class=\"scroll\"><table><caption>Failing and warning checks of ")
                    .text(name)
                    .raw("</caption><thead><tr><th scope=\"col\">Status</th><th scope=\"col\">Check</th><th scope=\"col\">Target</th><th scope=\"col\">Cause</th><th scope=\"col\">What was seen</th></tr></thead><tbody>\n");
                for f in &findings {
                    let status = f["status"].as_str().unwrap_or("?");
                    h.raw("<tr><td class=\"nw\"><span class=\"badge ")
                        .raw(match status {
                            "fail" | "error" => "fail",
                            "warn" => "warn",
                            _ => "info",
                        })
                        .raw("\">")
                        .text(&status.to_ascii_uppercase())
                        .raw("</span></td><td class=\"cause nw\">")
                        .text(f["check"].as_str().unwrap_or("?"))
                        .raw("</td><td class=\"nw\">")
                        .text(f["target"].as_str().unwrap_or(""))
                        .raw("</td><td class=\"cause nw\">")
                        .text(f["cause"].as_str().unwrap_or("-"))
                        .raw("</td><td class=\"wide\">")
                        .text(f["detail"].as_str().unwrap_or(""))
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
        let fleet = &self.status["fleet"];
        h.raw(
            "<section id=\"fleet\" aria-labelledby=\"fleet-h\">\n<h2 id=\"fleet-h\">Fleet</h2>\n",
        );
        if fleet["backend"] != "etcd" {
            h.raw("<p>This node runs alone (<span class=\"cause\">fleet.backend = \"local\"</span>): its state is in its own state directory only.</p>\n</section>\n");
            return;
        }
        let me = fleet["node_id"].as_str().unwrap_or("?");
        h.raw("<div class=\"card\"><dl>\n<dt>This node</dt><dd>")
            .text(me)
            .raw("</dd>\n<dt>etcd</dt><dd>");
        if fleet["connected"] == true {
            h.raw("<span class=\"badge ok\">CONNECTED</span>");
        } else {
            h.raw("<span class=\"badge fail\">DISCONNECTED</span> serving the local snapshot; orders wait");
        }
        h.raw(" · ");
        let endpoints: Vec<&str> = strings(&fleet["endpoints"]);
        h.text(&endpoints.join(", "))
            .raw(" · prefix <span class=\"cause\">")
            .text(fleet["prefix"].as_str().unwrap_or(""))
            .raw("</span> · revision ")
            .text(&fleet["revision"].to_string())
            .raw("</dd>\n");
        if fleet["last_error"].is_object() {
            h.raw("<dt>Last error</dt><dd>");
            self.time(h, &fleet["last_error"]["at"]);
            h.raw(": ")
                .text(fleet["last_error"]["error"].as_str().unwrap_or(""))
                .raw("</dd>\n");
        }
        h.raw("</dl></div>\n");
        let members = fleet["members"].as_array().cloned().unwrap_or_default();
        let version = self.status["version"].as_str().unwrap_or("");
        h.raw("<div class=\"scroll\"><table><caption>Live members (")
            .text(&members.len().to_string())
            .raw(")</caption><thead><tr><th scope=\"col\">Node</th><th scope=\"col\">State</th><th scope=\"col\">Public addresses</th><th scope=\"col\">HTTP / HTTPS port</th><th scope=\"col\">Version</th><th scope=\"col\">Started</th></tr></thead><tbody>\n");
        for m in &members {
            let id = m["node_id"].as_str().unwrap_or("?");
            let addresses: Vec<&str> = strings(&m["public_addresses"]);
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
                .text(&port(&m["http_port"]))
                .raw(" / ")
                .text(&port(&m["https_port"]))
                .raw("</td><td class=\"nw\">")
                .text(m["version"].as_str().unwrap_or("?"));
            if m["version"].as_str().is_some_and(|v| v != version) {
                h.raw(" <span class=\"badge warn\">DIFFERS</span>");
            }
            h.raw("</td><td class=\"nw\">");
            if let Some(t) = m["started_unix"].as_u64() {
                let at = SystemTime::UNIX_EPOCH + Duration::from_secs(t);
                self.time(
                    h,
                    &Value::from(humantime::format_rfc3339_seconds(at).to_string()),
                );
            }
            h.raw("</td></tr>\n");
        }
        h.raw("</tbody></table></div>\n<p class=\"note\">A member is listed while it keeps its lease in etcd; one that lost etcd for longer than <span class=\"cause\">fleet.lease_ttl</span> drops out of this list.</p>\n</section>\n");
    }

    fn answers(&self, h: &mut Html) {
        let c = &self.status["challenges"];
        h.raw("<section id=\"answers\" aria-labelledby=\"answers-h\">\n<h2 id=\"answers-h\">Validation answers</h2>\n<div class=\"card\"><dl>\n<dt>ACME tokens</dt><dd>")
            .text(&c["acme_tokens"].to_string())
            .raw("</dd>\n<dt>pki-validation files</dt><dd>")
            .text(&c["pki_files"].to_string())
            .raw("</dd>\n<dt>TLS-ALPN-01</dt><dd>")
            .text(&c["tls_alpn"].to_string())
            .raw("</dd>\n</dl></div>\n</section>\n");
    }

    /// `<time datetime="…">2027-01-15 08:00 UTC</time> (in 3 days)`.
    fn time(&self, h: &mut Html, value: &Value) {
        let Some(text) = value.as_str() else {
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
fn failure_headline(error: &Value) -> String {
    match (error["cause"].as_str(), error["summary"].as_str()) {
        (Some(cause), Some(summary)) => format!("{cause}: {summary}"),
        (Some(cause), None) => cause.to_owned(),
        _ => format!(
            "{} (not in the catalogue)",
            error["ca_type"]
                .as_str()
                .or(error["kind"].as_str())
                .unwrap_or("error")
        ),
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

fn time_of(value: &Value) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(value.as_str()?).ok()
}

fn port(value: &Value) -> String {
    value
        .as_u64()
        .map_or_else(|| "-".to_owned(), |p| p.to_string())
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

/// The strings of a JSON array (none when it is no array; other elements skipped).
fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn view(status: &Value) -> String {
        View {
            status,
            now: humantime::parse_rfc3339("2027-01-15T08:00:00Z").unwrap(),
            host_name: "edge-1",
            probe_interval: Some(Duration::from_secs(300)),
            options: PageOptions { refresh: 30 },
        }
        .render()
    }

    fn sample() -> Value {
        serde_json::json!({
            "version": "0.1.0",
            "started": "2027-01-15T07:00:00Z",
            "now": "2027-01-15T08:00:00.000Z",
            "certificates": [{
                "id": "shop",
                "names": ["shop.test", "<b>x</b>.test"],
                "issuer": "CN=<script>alert(1)</script> & \"CA\"",
                "serial": "01",
                "not_before": "2026-12-16T08:00:00Z",
                "not_after": "2027-01-25T08:00:00Z",
                "self_signed": false,
                "default": false,
                "source": "upload",
                "not_served": [{"name": "shop.test", "served_by": "other", "reason": "expires_earlier"}],
            }],
            "challenges": {"acme_tokens": 1, "pki_files": 0, "tls_alpn": 0},
            "acme": {
                "directory": "https://ca.test/dir",
                "account": {"state": "ready"},
                "certificates": {
                    "h1.test": {
                        "names": ["h1.test"],
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
