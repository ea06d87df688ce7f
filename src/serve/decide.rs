//! What a request gets — decided in one place for both front ends: the HTTP/1.1 fast path
//! ([`super::fastpath`]) and pingora's proxy ([`super::proxy`]).
//!
//! The order is the product: a validation request is answered before any redirect rule can touch
//! it (catalogue H4) and never reaches the origin (H2, H3), on both schemes from the same store
//! (H5); then the HTTP→HTTPS redirect; then the site's origin.

use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;

use super::classify::{self, ChallengeKind, Route};
use super::counters::{Answer, Scheme, ServeCounters};
use super::routing::Routing;
use crate::config::{OriginAddr, UnknownToken};
use crate::state::ChallengeStore;
use crate::state::{AnswerSource, Reply};

/// What a request gets.
pub enum Decision {
    /// A validation answer, `200 text/plain`, rendered when it was stored.
    Answer(Reply),
    /// A fixed short answer (404, 405, 400).
    Fixed(&'static Fixed),
    /// `Location` and status of the HTTP→HTTPS redirect.
    Redirect { status: u16, location: String },
    /// On to this origin.
    Proxy(Arc<OriginAddr>),
}

/// A fixed `text/plain` answer with its whole HTTP/1.1 response.
pub struct Fixed {
    pub status: u16,
    pub body: &'static [u8],
    /// Status line, headers and body.
    pub response: &'static [u8],
}

// `concat!` needs the length as a literal; `fixed_responses_are_consistent` checks it.
macro_rules! fixed {
    ($name:ident, $status:literal, $reason:literal, $len:literal, $body:literal) => {
        pub(crate) static $name: Fixed = Fixed {
            status: $status,
            body: $body.as_bytes(),
            response: concat!(
                "HTTP/1.1 ",
                $status,
                " ",
                $reason,
                "\r\nContent-Type: text/plain\r\nContent-Length: ",
                $len,
                "\r\n\r\n",
                $body
            )
            .as_bytes(),
        };
    };
}

fixed!(NOT_FOUND, 404, "Not Found", 10, "not found\n");
fixed!(
    METHOD_NOT_ALLOWED,
    405,
    "Method Not Allowed",
    19,
    "method not allowed\n"
);
fixed!(
    BAD_HOST,
    400,
    "Bad Request",
    24,
    "missing or invalid Host\n"
);
fixed!(
    NO_SITE,
    404,
    "Not Found",
    36,
    "no site is configured for this host\n"
);
fixed!(BAD_REQUEST, 400, "Bad Request", 16, "400 bad request\n");
fixed!(
    BAD_GATEWAY,
    502,
    "Bad Gateway",
    49,
    "502 bad gateway: the origin could not be reached\n"
);

/// What to count once the decision is carried out (the fast path may hand a request over to
/// pingora, which then decides and counts it itself).
#[derive(Clone, Copy)]
pub enum Tally {
    Nothing,
    Challenge(Answer, bool),
    Redirect,
}

/// The request as both front ends see it.
pub struct RequestView<'a> {
    pub scheme: Scheme,
    /// `GET` and `HEAD` are the only methods a validation request uses.
    pub get_or_head: bool,
    pub path: &'a str,
    /// Normalised host (lowercase, no port), `None` when missing or invalid.
    pub host: Option<&'a str>,
    /// The request target for the redirect (`path?query`).
    pub target: &'a str,
}

/// Decides, from the challenge store and the current routing.
pub struct Decider {
    challenges: Arc<ChallengeStore>,
    routing: Arc<ArcSwap<Routing>>,
    counters: ServeCounters,
}

impl Decider {
    pub fn new(
        challenges: Arc<ChallengeStore>,
        routing: Arc<ArcSwap<Routing>>,
        counters: ServeCounters,
    ) -> Self {
        Self {
            challenges,
            routing,
            counters,
        }
    }

    /// The decision for `req` and what to count when it is carried out.
    pub fn decide(&self, req: &RequestView<'_>) -> (Decision, Tally) {
        let routing = self.routing.load();
        let route = classify::classify(req.path);
        let mut validation = false;
        if route != Route::Other {
            validation = true;
            if !req.get_or_head {
                return (Decision::Fixed(&METHOD_NOT_ALLOWED), Tally::Nothing);
            }
            let found = match (route, req.host) {
                (Route::AcmeChallenge(token), Some(host)) => {
                    self.challenges.acme_answer(token, host)
                }
                (Route::PkiValidation(file), Some(host)) => self.challenges.pki_answer(host, file),
                _ => None,
            };
            let kind = match route {
                Route::PkiValidation(_) | Route::Malformed(ChallengeKind::Pki) => Answer::Pki,
                _ => Answer::Acme,
            };
            match found {
                Some((reply, source)) => {
                    let answer = match source {
                        AnswerSource::Webroot => Answer::Webroot,
                        AnswerSource::Store => kind,
                    };
                    return (Decision::Answer(reply), Tally::Challenge(answer, true));
                }
                None => {
                    // Malformed paths are never forwarded: they are probes, not validations.
                    let to_origin = routing.unknown_token == UnknownToken::Origin
                        && matches!(route, Route::AcmeChallenge(_) | Route::PkiValidation(_));
                    if !to_origin {
                        return (Decision::Fixed(&NOT_FOUND), Tally::Challenge(kind, false));
                    }
                    // Counted as a miss by whoever proxies it.
                }
            }
        }
        let tally = if validation {
            Tally::Challenge(
                if route_is_pki(route) {
                    Answer::Pki
                } else {
                    Answer::Acme
                },
                false,
            )
        } else {
            Tally::Nothing
        };

        let Some(host) = req.host else {
            return (Decision::Fixed(&BAD_HOST), tally);
        };
        // A validation request passed on to the origin is never redirected (H4).
        if req.scheme == Scheme::Http && routing.redirect_to_https && !validation {
            let location = routing.redirect_location(host, req.target);
            return (
                Decision::Redirect {
                    status: routing.redirect_status,
                    location,
                },
                Tally::Redirect,
            );
        }
        match routing.sites.origin_for(host) {
            Some(origin) => (Decision::Proxy(origin.clone()), tally),
            None => (Decision::Fixed(&NO_SITE), tally),
        }
    }

    /// Counts a carried-out decision.
    pub fn count(&self, tally: Tally, scheme: Scheme) {
        match tally {
            Tally::Nothing => {}
            Tally::Challenge(answer, hit) => self.counters.challenge(answer, scheme, hit),
            Tally::Redirect => self.counters.redirect(),
        }
    }

    /// Counts a proxied request's response status.
    pub fn count_proxied(&self, status: u16) {
        self.counters.proxied(status);
    }

    /// The serving path's counters.
    pub fn counters(&self) -> &ServeCounters {
        &self.counters
    }

    /// The current routing (timeouts of origin connections).
    pub fn routing(&self) -> arc_swap::Guard<Arc<Routing>> {
        self.routing.load()
    }
}

fn route_is_pki(route: Route<'_>) -> bool {
    matches!(
        route,
        Route::PkiValidation(_) | Route::Malformed(ChallengeKind::Pki)
    )
}

/// A `text/plain` body as `Bytes` without copying a static one.
pub(super) fn static_body(fixed: &'static Fixed) -> Bytes {
    Bytes::from_static(fixed.body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_responses_are_consistent() {
        for fixed in [
            &NOT_FOUND,
            &METHOD_NOT_ALLOWED,
            &BAD_HOST,
            &NO_SITE,
            &BAD_GATEWAY,
            &BAD_REQUEST,
        ] {
            let text = std::str::from_utf8(fixed.response).unwrap_or_default();
            let (head, body) = text.split_once("\r\n\r\n").unwrap_or_default();
            assert!(
                head.starts_with(&format!("HTTP/1.1 {} ", fixed.status)),
                "{head}"
            );
            assert!(
                head.contains(&format!("Content-Length: {}", body.len())),
                "{head}"
            );
            assert_eq!(body.as_bytes(), fixed.body);
        }
    }
}
