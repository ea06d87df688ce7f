//! The status page in a real browser: Debian's headless Chromium, driven over WebDriver by
//! Debian's chromedriver, against a busy node (tests/common/operator.rs: certificates from
//! Pebble, an order failing with H1, a CA problem, uploads expiring soon or shadowed, probed
//! names, a fleet of two over etcd). What it checks is what an operator relies on: every
//! certificate with its names, CA, lifetime bar, renewal and basis, the failing order's cause
//! and remedy; every probed name with verdict and causes; the fleet members; values from CAs
//! shown as text, never run; nothing loaded from anywhere; readable on a phone; and the
//! accessibility basics (one h1 and no skipped heading level, landmarks, named regions and
//! meters, table captions and header scopes, text contrast of at least 4.5:1).
//!
//! `DCV_UPDATE_SCREENSHOT=1 cargo test --test status_page` writes docs/status-page.png and
//! docs/status-page-phone.png (the README's pictures); otherwise the screenshots go to a
//! temporary directory.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};

use common::operator::{self, busy_node, FAILING, HOSTILE_ISSUER, ISSUED, REFUSED};
use dcv_proxy::catalogue::Cause;

#[tokio::test]
async fn status_page_in_chromium_shows_everything_an_operator_needs() {
    let busy = busy_node().await;
    let node = &busy.node;
    let url = format!("{}/", node.admin_url());

    // The page itself: HTML, the policy that forbids loading anything, reloading itself.
    let admin = operator::admin_addr(node);
    let rsp = operator::admin_as(admin, "GET", "/", "localhost", &[], b"").await;
    assert_eq!(rsp.status, 200);
    assert_eq!(rsp.header("content-type"), Some("text/html; charset=utf-8"));
    let csp = rsp.header("content-security-policy").unwrap();
    assert!(
        csp.starts_with("default-src 'none'; style-src 'sha256-"),
        "{csp}"
    );
    assert!(rsp
        .text()
        .contains("<meta http-equiv=\"refresh\" content=\"30\">"));
    let bad = operator::admin_as(admin, "GET", "/?refresh=1", "localhost", &[], b"").await;
    assert_eq!(bad.status, 400, "{}", bad.text());

    let shots = tempfile::tempdir().unwrap();
    let mut browser = Browser::start(1280, 900).await;
    browser.goto(&url).await;
    let dom = browser.script(DOM_FACTS).await;

    assert!(
        dom["title"]
            .as_str()
            .unwrap()
            .ends_with("edge-fra-1 · dcv-proxy status"),
        "{dom}"
    );
    assert_eq!(dom["h1"], "dcv-proxy on edge-fra-1");
    assert_eq!(dom["scripts"], 0, "nothing runs on the page");
    assert_eq!(
        dom["resources"],
        json!([]),
        "nothing is loaded from anywhere"
    );
    assert_eq!(dom["refresh"], "30");

    let card = |id: &str| -> String {
        dom["cards"][format!("cert-{id}")]
            .as_str()
            .unwrap_or_else(|| panic!("no card for {id}: {dom}"))
            .to_owned()
    };
    // Issued by Pebble: names, CA, the bar of remaining lifetime, the next renewal and basis.
    let issued = card(ISSUED);
    for needle in [
        "www.shop.example.test",
        "Pebble Intermediate",
        "next renewal",
        "basis: two thirds of the lifetime",
        "Last order",
        "valid",
    ] {
        assert!(issued.contains(needle), "{needle:?} missing from {issued}");
    }
    let meter = &dom["meters"][format!("Remaining lifetime of {ISSUED}")];
    assert!(
        meter["text"]
            .as_str()
            .unwrap()
            .starts_with("90 days of 90 days left"),
        "{meter}"
    );
    assert!(meter["value"].as_f64().unwrap() > meter["high"].as_f64().unwrap());
    // The failing order: cause id, summary, remedy, what was seen, when it is tried again.
    let failing = card(FAILING);
    let h1 = Cause::H1;
    for needle in [
        "ORDER FAILING",
        "H1",
        h1.summary(),
        &format!("Remedy: {}", h1.remedy()),
        "127.0.0.66",
        "Next attempt",
    ] {
        assert!(
            failing.contains(needle),
            "{needle:?} missing from {failing}"
        );
    }
    let refused = card(REFUSED);
    assert!(
        refused.contains("rejectedIdentifier") && refused.contains("Remedy:"),
        "{refused}"
    );
    // The upload the ACME certificate shadows says so, and which one is presented.
    let legacy = card("legacy-shop");
    assert!(
        legacy.contains("NOT SERVED") && legacy.contains(&format!("{ISSUED} is presented for it")),
        "{legacy}"
    );
    // A CA's name with markup is text on the page.
    let wildcard = card("static-wildcard");
    assert!(wildcard.contains(HOSTILE_ISSUER), "{wildcard}");
    assert!(
        wildcard.contains("RENEWAL DUE"),
        "20 of 90 days left: {wildcard}"
    );
    assert_eq!(
        dom["meters"]["Remaining lifetime of static-wildcard"]["text"]
            .as_str()
            .unwrap()
            .split(" left")
            .next(),
        Some("20 days of 90 days")
    );
    // The attention list at the top links to each problem.
    let attention = dom["attention"].as_array().unwrap();
    for anchor in [
        format!("#cert-{FAILING}"),
        format!("#cert-{REFUSED}"),
        "#cert-static-wildcard".into(),
    ] {
        assert!(
            attention.iter().any(|a| a["href"] == anchor.as_str()),
            "{anchor}: {dom}"
        );
    }

    // Every probed name with its verdict and causes, each cause with its remedy.
    for name in [ISSUED, FAILING] {
        let probe = dom["cards"][format!("probe-{name}")]
            .as_str()
            .unwrap()
            .to_owned();
        let status = node.admin_get(&format!("/v1/probe/{name}")).await.json();
        let verdict = status["verdict"].as_str().unwrap().to_ascii_uppercase();
        assert!(probe.contains(&verdict), "{verdict} missing from {probe}");
        for cause in status["causes"].as_array().unwrap() {
            let cause: Cause = cause.as_str().unwrap().parse().unwrap();
            assert!(
                probe.contains(cause.remedy()),
                "{cause} remedy missing from {probe}"
            );
        }
    }
    // The fleet: both members, this node marked, etcd connected.
    let fleet = dom["fleet"].as_str().unwrap();
    for needle in [
        "CONNECTED",
        "edge-fra-1 (this node)",
        "edge-fra-2",
        "Live members (2)",
    ] {
        assert!(fleet.contains(needle), "{needle:?} missing from {fleet}");
    }

    // Accessibility basics.
    let a11y = browser.script(A11Y).await;
    assert_eq!(a11y["problems"], json!([]), "{a11y}");
    assert!(a11y["checked"].as_u64().unwrap() > 100, "{a11y}");

    // The screenshot: the whole page at desk width.
    let height = browser
        .script("return document.documentElement.scrollHeight;")
        .await;
    browser
        .resize(1280, height.as_u64().unwrap().min(8000) as u32)
        .await;
    let png = browser.screenshot().await;
    assert_png(&png, 1280);
    let target = if std::env::var_os("DCV_UPDATE_SCREENSHOT").is_some() {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/status-page.png")
    } else {
        shots.path().join("status-page.png")
    };
    std::fs::write(&target, &png).unwrap();

    // A phone: nothing wider than the screen, text at 16 px, the viewport set.
    browser.resize(390, 844).await;
    let phone = browser.script(PHONE).await;
    assert_eq!(
        phone["viewport"], "width=device-width, initial-scale=1",
        "{phone}"
    );
    assert!(
        phone["overflow"].as_f64().unwrap() <= 0.0,
        "the page scrolls sideways: {phone}"
    );
    assert_eq!(phone["font"], "16px", "{phone}");
    assert_eq!(phone["wide"], json!([]), "{phone}");
    let height = browser
        .script("return document.documentElement.scrollHeight;")
        .await;
    browser
        .resize(390, height.as_u64().unwrap().min(12000) as u32)
        .await;
    let png = browser.screenshot().await;
    assert_png(&png, 390);
    std::fs::write(target.with_file_name("status-page-phone.png"), &png).unwrap();
    browser.close().await;
}

/// PNG signature and the IHDR width.
fn assert_png(png: &[u8], width: u32) {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let w = u32::from_be_bytes(png[16..20].try_into().unwrap());
    assert_eq!(w, width);
    assert!(
        png.len() > 50_000,
        "a nearly empty picture: {} bytes",
        png.len()
    );
}

/// What the page shows, read from the DOM the browser built.
const DOM_FACTS: &str = r#"
const text = e => e ? e.innerText : null;
const cards = {};
for (const a of document.querySelectorAll('article[id]')) cards[a.id] = a.innerText;
const meters = {};
for (const m of document.querySelectorAll('meter')) meters[m.getAttribute('aria-label')] = {
  text: m.getAttribute('aria-valuetext'), value: m.value, low: m.low, high: m.high, max: m.max };
const refresh = document.querySelector('meta[http-equiv="refresh"]');
return {
  title: document.title,
  h1: text(document.querySelector('h1')),
  scripts: document.querySelectorAll('script').length,
  resources: performance.getEntriesByType('resource').map(r => r.name),
  refresh: refresh ? refresh.getAttribute('content') : null,
  cards, meters,
  attention: [...document.querySelectorAll('.attention a')].map(a => ({href: a.getAttribute('href'), text: a.innerText})),
  fleet: text(document.getElementById('fleet')),
};
"#;

/// Accessibility basics, WCAG 2.2 terms: headings (1.3.1, 2.4.6), names of regions, meters and
/// tables (1.3.1, 4.1.2), link text (2.4.4), text contrast (1.4.3: 4.5:1, 3:1 for large text).
const A11Y: &str = r#"
const problems = [];
if (!document.documentElement.lang) problems.push('no lang on <html>');
if (!document.title.trim()) problems.push('no title');
const hs = [...document.querySelectorAll('h1,h2,h3,h4,h5,h6')];
if (hs.filter(h => h.tagName === 'H1').length !== 1) problems.push('not exactly one h1');
let prev = 0;
for (const h of hs) {
  const level = +h.tagName[1];
  if (level > prev + 1) problems.push(`heading level skips from ${prev} to ${level}: ${h.innerText}`);
  if (!h.innerText.trim()) problems.push('empty heading');
  prev = level;
}
for (const sel of ['header', 'nav', 'main', 'footer']) if (!document.querySelector(sel)) problems.push(`no <${sel}>`);
const named = e => e.getAttribute('aria-label') || e.getAttribute('aria-labelledby') || (e.labels && e.labels.length);
for (const e of document.querySelectorAll('section, article, nav, [role=group]')) if (!named(e)) problems.push(`${e.tagName} ${e.id} has no accessible name`);
for (const e of document.querySelectorAll('[aria-labelledby]')) if (!document.getElementById(e.getAttribute('aria-labelledby'))) problems.push(`aria-labelledby points nowhere: ${e.getAttribute('aria-labelledby')}`);
for (const m of document.querySelectorAll('meter, [role=meter], [role=progressbar]')) {
  if (!named(m)) problems.push('a meter without a name');
  if (!m.getAttribute('aria-valuetext')) problems.push('a meter without a text value');
}
for (const t of document.querySelectorAll('table')) {
  if (!t.querySelector('caption')) problems.push('a table without a caption');
  for (const th of t.querySelectorAll('th')) if (!th.getAttribute('scope')) problems.push('a th without scope');
}
for (const c of document.querySelectorAll('input, select, textarea, button')) if (!named(c)) problems.push('a control without a label');
for (const a of document.querySelectorAll('a')) {
  if (!a.innerText.trim()) problems.push('a link without text');
  const href = a.getAttribute('href') || '';
  if (href.startsWith('#') && href.length > 1 && !document.getElementById(decodeURIComponent(href.slice(1)))) problems.push(`a link to a missing anchor ${href}`);
  if (/^[a-z]+:/i.test(href)) problems.push(`a link off the node: ${href}`);
}
const ids = [...document.querySelectorAll('[id]')].map(e => e.id);
if (new Set(ids).size !== ids.length) problems.push('duplicate ids');
const rgb = s => { const m = s.match(/rgba?\(([^)]+)\)/); if (!m) return null; const p = m[1].split(',').map(Number); return { c: p.slice(0, 3), a: p.length > 3 ? p[3] : 1 }; };
const lum = c => { const [r, g, b] = c.map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
const background = el => { for (let e = el; e; e = e.parentElement) { const c = rgb(getComputedStyle(e).backgroundColor); if (c && c.a > 0) return c.c; } return [255, 255, 255]; };
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
let node, checked = 0, worst = 99;
while ((node = walker.nextNode())) {
  if (!node.textContent.trim()) continue;
  const el = node.parentElement, st = getComputedStyle(el);
  if (st.display === 'none' || st.visibility === 'hidden') continue;
  const fg = lum(rgb(st.color).c), bg = lum(background(el));
  const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
  const size = parseFloat(st.fontSize), bold = parseInt(st.fontWeight, 10) >= 700;
  const need = size >= 24 || (size >= 18.66 && bold) ? 3 : 4.5;
  checked++; worst = Math.min(worst, ratio);
  if (ratio < need) problems.push(`contrast ${ratio.toFixed(2)}:1 < ${need}:1 for "${node.textContent.trim().slice(0, 40)}"`);
}
return { problems, checked, worst };
"#;

/// On a phone-sized window: horizontal overflow, the body's font size, elements wider than the
/// screen outside a scrolling box.
const PHONE: &str = r#"
const vw = document.documentElement.clientWidth;
const wide = [];
for (const e of document.querySelectorAll('body *')) {
  if (e.closest('.scroll')) continue;
  const r = e.getBoundingClientRect();
  if (r.right > vw + 1) wide.push(`${e.tagName}.${e.className} ${Math.round(r.right)}px`);
}
return {
  viewport: document.querySelector('meta[name=viewport]').getAttribute('content'),
  overflow: document.documentElement.scrollWidth - vw,
  font: getComputedStyle(document.body).fontSize,
  wide: wide.slice(0, 10),
};
"#;

/// Chromium through chromedriver (W3C WebDriver over HTTP on loopback). chromedriver runs in
/// its own process group, which is killed whole on drop (the browser included).
struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start(width: u32, height: u32) -> Browser {
        use std::os::unix::process::CommandExt;
        let addr = common::free_addr();
        let profile = tempfile::tempdir().unwrap();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={}", addr.port()))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn chromedriver (Debian packages `chromium` and `chromium-driver`)");
        let mut browser = Browser {
            driver,
            addr,
            session: String::new(),
            _profile: profile,
        };
        let start = Instant::now();
        while browser.call("GET", "/status", None).await.is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The flags keep the browser on loopback and away from any service of its own: no
        // name is resolved (the page is reached by address), and anything not on loopback
        // would go to a closed loopback "proxy" (straced: without these two, Chromium asks the
        // system resolver for names of its own even with background networking off).
        let args = json!([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--proxy-server=http://127.0.0.1:9",
            "--dns-prefetch-disable",
            "--disable-domain-reliability",
            "--no-pings",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            format!("--user-data-dir={}", browser._profile.path().display()),
            format!("--window-size={width},{height}"),
        ]);
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}
        }}});
        let rsp = browser
            .call("POST", "/session", Some(caps))
            .await
            .expect("a WebDriver session");
        browser.session = rsp["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {rsp}"))
            .to_owned();
        browser
    }

    async fn goto(&self, url: &str) {
        self.command("POST", "url", json!({ "url": url })).await;
    }

    async fn script(&self, js: &str) -> Value {
        self.command("POST", "execute/sync", json!({"script": js, "args": []}))
            .await
    }

    async fn resize(&self, width: u32, height: u32) {
        self.command(
            "POST",
            "window/rect",
            json!({"width": width, "height": height}),
        )
        .await;
    }

    async fn screenshot(&self) -> Vec<u8> {
        let b64 = self.command("GET", "screenshot", Value::Null).await;
        base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap()
    }

    async fn close(&mut self) {
        let path = format!("/session/{}", self.session);
        let _ = self.call("DELETE", &path, None).await;
    }

    /// A session command; its `value`, or a panic with the driver's error.
    async fn command(&self, method: &str, what: &str, body: Value) -> Value {
        let path = format!("/session/{}/{what}", self.session);
        let body = (!body.is_null()).then_some(body);
        let rsp = self
            .call(method, &path, body)
            .await
            .expect("chromedriver answers");
        if rsp["value"]["error"].is_string() {
            panic!("WebDriver {what}: {rsp}");
        }
        rsp["value"].clone()
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Option<Value> {
        let stream = tokio::net::TcpStream::connect(self.addr).await.ok()?;
        let mut sender = common::h1_client(stream).await;
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string())
            .header("content-type", "application/json")
            .body(Full::new(bytes::Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))
            .ok()?;
        let rsp = tokio::time::timeout(Duration::from_secs(60), sender.send_request(req))
            .await
            .ok()?
            .ok()?;
        let bytes = rsp.into_body().collect().await.ok()?.to_bytes();
        serde_json::from_slice(&bytes).ok()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The group chromedriver leads: chromedriver, Chromium and its helpers. `--` before
        // the negative id: without it, procps kill reads `-<pgid>` as options and signals
        // every process (kill(-1)).
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &group])
            .status();
        let _ = self.driver.wait();
    }
}
