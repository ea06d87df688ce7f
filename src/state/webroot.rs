//! Fleet mode: an ACME client on one node (certbot `--webroot`, acme.sh `-w`, lego
//! `--http.webroot`) writes its token into that node's webroot only, and the CA may ask any
//! node (catalogue H6). [`WebrootSync`] shares such files: it looks at the node's
//! `webroot/.well-known/acme-challenge/` twice a second, puts new or changed tokens into the
//! shared store (answering on every host, like the webroot does), and withdraws them when the
//! client removes its file.
//!
//! pki-validation files dropped in the webroot stay local (they answer on any host, which the
//! per-host shared store does not express); put them through the admin API in a fleet.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use super::challenge::AcmeAnswer;
use super::names::is_token;
use super::State;

/// How often the webroot is looked at.
const SCAN_EVERY: Duration = Duration::from_millis(500);
/// Lifetime of a shared webroot token; refreshed while the file is there.
const TOKEN_TTL: Duration = Duration::from_secs(3600);
/// A token still present is put again after this long, before its lease runs out.
const REFRESH_AFTER: Duration = Duration::from_secs(1800);
/// Same cap as the webroot reader: anything bigger is not a token.
const MAX_FILE: u64 = 64 * 1024;

/// Shares this node's webroot tokens with the fleet.
pub struct WebrootSync {
    state: State,
    /// Tokens this syncer put, with their content and when.
    known: tokio::sync::Mutex<HashMap<String, (Bytes, Instant)>>,
}

impl WebrootSync {
    pub fn new(state: State) -> Self {
        Self {
            state,
            known: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Scans until `shutdown` says stop.
    pub async fn run(&self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(SCAN_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.scan().await,
                _ = shutdown.changed() => return,
            }
        }
    }

    /// One pass: share what appeared or changed, withdraw what disappeared.
    pub async fn scan(&self) {
        let present = read_tokens(&self.state.dir.acme_webroot());
        let mut known = self.known.lock().await;
        for (token, body) in &present {
            let fresh = known
                .get(token)
                .is_some_and(|(b, at)| b == body && at.elapsed() < REFRESH_AFTER);
            if fresh {
                continue;
            }
            let now = SystemTime::now();
            let answer = AcmeAnswer {
                key_authorization: body.clone(),
                identifier: None,
                expires: Some(now + TOKEN_TTL),
                created: now,
            };
            match self.state.put_token(token, answer).await {
                Ok(()) => {
                    tracing::info!(%token, "webroot token shared with the fleet");
                    known.insert(token.clone(), (body.clone(), Instant::now()));
                }
                Err(e) => tracing::warn!(%token, error = %e, "cannot share a webroot token"),
            }
        }
        let gone: Vec<String> = known
            .keys()
            .filter(|t| !present.contains_key(*t))
            .cloned()
            .collect();
        for token in gone {
            match self.state.remove_token(&token).await {
                Ok(_) => {
                    known.remove(&token);
                }
                Err(e) => tracing::warn!(%token, error = %e, "cannot withdraw a webroot token"),
            }
        }
    }
}

/// Regular files named like tokens (symlinks are not followed, as when serving).
fn read_tokens(dir: &std::path::Path) -> HashMap<String, Bytes> {
    let mut out = HashMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.filter_map(Result::ok) {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if !is_token(&name) {
            continue;
        }
        // `DirEntry::metadata` does not follow symlinks.
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() || meta.len() > MAX_FILE {
            continue;
        }
        if let Ok(body) = std::fs::read(entry.path()) {
            // What the webroot would serve, byte for byte; an empty file is not an answer yet.
            if !body.is_empty() {
                out.insert(name, Bytes::from(body));
            }
        }
    }
    out
}
