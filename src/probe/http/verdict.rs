//! What the CA concludes from a fetch: the body compared with the expected answer
//! (`validateHTTP01`: trailing Unicode white space trimmed, byte for byte), the catalogue cause of
//! a miss, and the detail in Boulder's words with the redirects that led there.

use super::{Attempt, FetchError, Fetched, Hop, MAX_FILE_BODY, MAX_RESPONSE_SIZE};
use crate::probe::causes::Cause;
use crate::probe::report::{Check, CheckKind};

/// Judges a fetch of something whose body must be `expected`; a missing answer is `miss`
/// (H2, or H5/H8 when it is missing on one side only). The detail starts with what Boulder
/// would say (`processHTTPValidation`, `validateHTTP01`, `detailedError`), then the redirects.
pub(in crate::probe) fn judge(
    kind: CheckKind,
    target: &str,
    fetched: &Fetched,
    expected: Expected<'_>,
    miss: Cause,
) -> Check {
    let redirects = redirect_text(&fetched.hops);
    let ip = fetched.address;
    let fail =
        |cause: Cause, said: String| Check::fail(kind, target, cause, format!("{said}{redirects}"));
    let response = match &fetched.outcome {
        Ok(r) => r,
        Err(e) => {
            let cause = match e {
                FetchError::Connect { .. } | FetchError::Exchange { .. } => Cause::H1,
                FetchError::Tls { .. } => Cause::C5,
                FetchError::Body { .. } => Cause::H3,
                FetchError::Redirect { .. } | FetchError::Resolve { .. } => Cause::H4,
            };
            return fail(cause, format!("{ip}: {e}"));
        }
    };
    let url = &fetched.url;
    let status = response.status;
    if status != 200 {
        // Boulder: "Invalid response from <url>: <status>", the status before the body.
        let cause = match status {
            404 | 410 => miss,
            // A redirect not followed: no `Location`, or a 3xx Go's client does not follow.
            300..=399 => Cause::H4,
            _ => Cause::H3,
        };
        return fail(
            cause,
            format!("{ip}: Invalid response from {url}: {status}"),
        );
    }
    match expected {
        Expected::Body(key_authorization) => {
            let body = &response.body;
            if body.len() >= MAX_RESPONSE_SIZE {
                return fail(
                    Cause::H7,
                    format!(
                        "{ip}: Invalid response from {url}: {} (the CA reads at most {} bytes and refuses a body of {MAX_RESPONSE_SIZE} or more)",
                        go_quote(body),
                        MAX_RESPONSE_SIZE - 1
                    ),
                );
            }
            let payload = trim_right_space(body);
            if payload != key_authorization {
                return fail(
                    Cause::H7,
                    format!(
                        "The key authorization file from the server did not match this challenge. Expected {} (got {})",
                        go_quote(key_authorization),
                        go_quote(payload)
                    ),
                );
            }
        }
        Expected::Sha256(_) => {
            if !expected.matches(&response.body) {
                return fail(
                    Cause::H7,
                    format!(
                        "200 with {} ({} bytes), expected {}",
                        preview(&response.body),
                        response.body.len(),
                        expected.describe()
                    ),
                );
            }
        }
    }
    match fetched.hops.first() {
        None => Check::pass(kind, target, "200, content matches"),
        Some(first) => Check::warn(
            kind,
            target,
            Cause::H4,
            format!(
                "200 with the right content, but redirected from {}{redirects}",
                first.url
            ),
        ),
    }
}

/// Whether `fetched` is a miss that a change still on its way would explain: a 404 (410), or
/// a 200 with other content. Redirect trouble, refusals and unreachable addresses are not.
pub(in crate::probe) fn missing(fetched: &Fetched, expected: Expected<'_>) -> bool {
    match &fetched.outcome {
        Ok(r) => matches!(r.status, 404 | 410) || (r.status == 200 && !expected.matches(&r.body)),
        Err(_) => false,
    }
}

/// The attempt an address's fetch stands for, for [`ca_tolerates`]: validated (passed or only
/// warned), fell back (a dial error), or failed otherwise.
pub(in crate::probe) fn attempt_of(fetched: &Fetched, judged: &Check) -> Attempt {
    use crate::probe::report::Status;
    if matches!(judged.status, Status::Pass | Status::Warn) {
        Attempt::Validates
    } else if fetched.dial_error().is_some() {
        Attempt::FallsBack
    } else {
        Attempt::Fails
    }
}

/// What a body must be.
#[derive(Debug, Clone, Copy)]
pub(in crate::probe) enum Expected<'a> {
    /// A key authorization: the body, trailing white space trimmed, must be exactly these
    /// bytes (Boulder `validateHTTP01`), and shorter than [`MAX_RESPONSE_SIZE`].
    Body(&'a [u8]),
    /// Content with this SHA-256 (lowercase hex): a registered validation file, served as is.
    Sha256(&'a str),
}

impl Expected<'_> {
    fn matches(&self, body: &[u8]) -> bool {
        match self {
            Expected::Body(expected) => {
                body.len() < MAX_RESPONSE_SIZE && trim_right_space(body) == *expected
            }
            Expected::Sha256(hex) => {
                crate::state::certs::hex(ring::digest::digest(&ring::digest::SHA256, body).as_ref())
                    == *hex
            }
        }
    }

    /// How many bytes of body to read: Boulder's 128 for a key authorization, 64 KiB for a file.
    pub(in crate::probe) fn body_limit(&self) -> usize {
        match self {
            Expected::Body(_) => MAX_RESPONSE_SIZE,
            Expected::Sha256(_) => MAX_FILE_BODY,
        }
    }

    fn describe(&self) -> String {
        match self {
            Expected::Body(expected) => format!("{} ({} bytes)", preview(expected), expected.len()),
            Expected::Sha256(hex) => format!("the registered file (SHA-256 {hex})"),
        }
    }
}

/// The redirects a fetch answered, after Boulder's words; a long chain shows its first two
/// and its last hops.
fn redirect_text(hops: &[Hop]) -> String {
    if hops.is_empty() {
        return String::new();
    }
    let show = |hop: &Hop| {
        format!(
            "{} at {} -{}-> {}",
            hop.url, hop.address, hop.status, hop.location
        )
    };
    let shown: Vec<String> = if hops.len() > 4 {
        let mut shown: Vec<String> = hops[..2].iter().map(show).collect();
        shown.push(format!("… {} more …", hops.len() - 3));
        shown.extend(hops[hops.len() - 1..].iter().map(show));
        shown
    } else {
        hops.iter().map(show).collect()
    };
    format!(" (redirects: {})", shown.join(", "))
}

/// Go's `strings.TrimRightFunc(string(body), unicode.IsSpace)`: trailing Unicode white space
/// (`\t \n \v \f \r`, space, U+0085, U+00A0 and the other White_Space characters) removed, one
/// decoded character at a time from the end; a byte that is not UTF-8 stops it, as Go's
/// `RuneError` is no space.
pub(super) fn trim_right_space(body: &[u8]) -> &[u8] {
    let mut end = body.len();
    while let Some((c, width)) = last_char(&body[..end]) {
        if !c.is_whitespace() {
            break;
        }
        end -= width;
    }
    &body[..end]
}

/// The last UTF-8 character of `bytes` and its width; `None` when empty or not UTF-8 there.
fn last_char(bytes: &[u8]) -> Option<(char, usize)> {
    (1..=bytes.len().min(4)).find_map(|width| {
        let tail = std::str::from_utf8(&bytes[bytes.len() - width..]).ok()?;
        let mut chars = tail.chars();
        let c = chars.next()?;
        chars.next().is_none().then_some((c, width))
    })
}

/// Go's `%q` (`strconv.Quote`) of bytes, as Boulder formats bodies in its problem details:
/// double quotes, `\a \b \f \n \r \t \v \\ \"`, `\xNN` for a byte that is not UTF-8 or a
/// control character, `\uNNNN`/`\UNNNNNNNN` for other unprintable characters.
pub(in crate::probe) fn go_quote(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    let mut rest = bytes;
    while let Some(&first) = rest.first() {
        let width = match first {
            0x00..=0x7f => 1,
            0xc2..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf4 => 4,
            _ => 0,
        };
        let decoded = (width > 0 && rest.len() >= width)
            .then(|| std::str::from_utf8(&rest[..width]).ok())
            .flatten()
            .and_then(|s| s.chars().next());
        let Some(c) = decoded else {
            out.push_str(&format!("\\x{first:02x}"));
            rest = &rest[1..];
            continue;
        };
        rest = &rest[width..];
        match c {
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if c == ' ' || !(c.is_control() || c.is_whitespace()) => out.push(c),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// A body for a report line: quoted, cut at 60 characters.
fn preview(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let cut: String = text.chars().take(60).collect();
    if cut.len() < text.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}
