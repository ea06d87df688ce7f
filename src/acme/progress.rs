//! What an order in flight is doing: which name, which step of RFC 8555 §7.4–§7.5 and, while
//! the node waits for the CA, how many polls it made and when the next one is. An order can
//! take minutes (a CA validating from several places, a self-check that retries until the
//! answer is reachable): this is what `/v1/status`, `certs list` and the log show meanwhile,
//! instead of silence until the end.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// A step of an order, in the order they happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// `newOrder` and the order's authorizations (RFC 8555 §7.4, §7.5).
    NewOrder,
    /// The answer is published; the node checks it the way the CA will before telling the CA
    /// (the self-probe's gate or the local check, up to `acme.self_check_timeout`).
    SelfCheck,
    /// Telling the CA the challenge is ready (RFC 8555 §7.5.1).
    ChallengeReady,
    /// Waiting for the CA to validate: polling the authorization (RFC 8555 §7.5.1).
    PollingAuthorization,
    /// Every authorization is valid; waiting for the order to be `ready` (RFC 8555 §7.1.6).
    PollingOrder,
    /// The CSR is sent; waiting while the order is `processing` (RFC 8555 §7.4).
    Finalize,
    /// Fetching the certificate chain (RFC 8555 §7.4.2).
    Download,
    /// Checking the chain like any upload, writing it and swapping it in.
    Install,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::NewOrder => "new-order",
            Step::SelfCheck => "self-check",
            Step::ChallengeReady => "challenge-ready",
            Step::PollingAuthorization => "polling-authorization",
            Step::PollingOrder => "polling-order",
            Step::Finalize => "finalize",
            Step::Download => "download",
            Step::Install => "install",
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An order's current step: `progress` of a certificate in `/v1/status` while it is `ordering`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Progress {
    pub step: Step,
    /// The identifier the step is about (authorization steps only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Polls made so far in this step (polling steps only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// When the next poll is (RFC 3339, milliseconds): our backoff, or the CA's `Retry-After`
    /// when later (catalogue P9).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_poll: Option<String>,
    /// When the step gives up (the self-check's limit, the order's timeout).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// When the step began.
    pub since: String,
    /// What is happening, in words (`a.test: waiting for the CA to validate (poll 3)`).
    pub text: String,
    #[serde(skip)]
    pub next_poll_at: Option<SystemTime>,
}

impl Progress {
    /// `step` (about `name`), begun at `since`.
    pub fn new(step: Step, name: Option<&str>, since: SystemTime) -> Self {
        let mut p = Progress {
            step,
            name: name.map(str::to_owned),
            attempt: None,
            next_poll: None,
            until: None,
            since: rfc3339_millis(since),
            text: String::new(),
            next_poll_at: None,
        };
        p.text = p.describe();
        p
    }

    /// `attempt` polls made, the next at `next`.
    pub fn polling(mut self, attempt: u32, next: SystemTime) -> Self {
        self.attempt = Some(attempt);
        self.next_poll = Some(rfc3339_millis(next));
        self.next_poll_at = Some(next);
        self.text = self.describe();
        self
    }

    /// The step gives up at `at`.
    pub fn until(mut self, at: SystemTime) -> Self {
        self.until = Some(rfc3339_millis(at));
        self
    }

    fn describe(&self) -> String {
        let name = self.name.as_deref().unwrap_or("?");
        let polls = match self.attempt {
            Some(n) if n > 0 => format!(" (poll {n})"),
            _ => String::new(),
        };
        match self.step {
            Step::NewOrder => "asking the CA for a new order".to_owned(),
            Step::SelfCheck => format!(
                "{name}: answer published, checking it the way the CA will before telling the CA"
            ),
            Step::ChallengeReady => format!("{name}: telling the CA the challenge is ready"),
            Step::PollingAuthorization => {
                format!("{name}: waiting for the CA to validate{polls}")
            }
            Step::PollingOrder => format!("waiting for the CA to mark the order ready{polls}"),
            Step::Finalize => format!("CSR sent, waiting for the CA to issue{polls}"),
            Step::Download => "downloading the certificate".to_owned(),
            Step::Install => "checking and installing the certificate".to_owned(),
        }
    }

    /// The text with the time to the next poll as seen at `now` (the log line, `certs list`).
    pub fn line(&self, now: SystemTime) -> String {
        match self.next_poll_at {
            Some(at) => format!(
                "{}, next poll in {}",
                self.text,
                short_duration(at.duration_since(now).unwrap_or_default())
            ),
            None => self.text.clone(),
        }
    }
}

/// Where an order reports its steps (the renewer's status of the certificate).
pub(super) trait ProgressSink: Send + Sync {
    fn report(&self, progress: Progress);
}

/// `250 ms`, `4 s`, `2 min 5 s`: how long until the next poll or attempt, for people.
pub fn short_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{} s", (ms + 500) / 1000)
    } else {
        let s = (ms + 500) / 1000;
        match s % 60 {
            0 => format!("{} min", s / 60),
            rest => format!("{} min {rest} s", s / 60),
        }
    }
}

fn rfc3339_millis(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polling_says_which_name_which_poll_and_when_the_next() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let p = Progress::new(Step::PollingAuthorization, Some("a.test"), t0)
            .polling(3, t0 + Duration::from_secs(4));
        assert_eq!(p.text, "a.test: waiting for the CA to validate (poll 3)");
        assert_eq!(
            p.line(t0),
            "a.test: waiting for the CA to validate (poll 3), next poll in 4 s"
        );
        let json = serde_json::to_value(&p).unwrap_or_default();
        assert_eq!(json["step"], "polling-authorization");
        assert_eq!(json["attempt"], 3);
        assert_eq!(json["next_poll"], "2027-01-15T08:00:04.000Z");
        assert!(json.get("next_poll_at").is_none());
        let first = Progress::new(Step::PollingAuthorization, Some("a.test"), t0)
            .polling(0, t0 + Duration::from_millis(250));
        assert_eq!(
            first.line(t0),
            "a.test: waiting for the CA to validate, next poll in 250 ms"
        );
        let check = Progress::new(Step::SelfCheck, Some("a.test"), t0);
        assert_eq!(check.line(t0), check.text);
        assert!(serde_json::to_value(&check).unwrap_or_default()["attempt"].is_null());
    }

    #[test]
    fn short_durations() {
        assert_eq!(short_duration(Duration::from_millis(0)), "0 ms");
        assert_eq!(short_duration(Duration::from_millis(1499)), "1 s");
        assert_eq!(short_duration(Duration::from_secs(60)), "1 min");
        assert_eq!(short_duration(Duration::from_secs(125)), "2 min 5 s");
    }
}
