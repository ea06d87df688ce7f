//! Reading a request head: a pure function of the bytes so far ([`read_head`]), fuzzed on its
//! own (`fuzz/fuzz_targets/fastpath_head.rs`), with the limits every HTTP/1.x head of a
//! connection is held to, whichever engine then serves it. `httparse` parses; what is ours is
//! only which heads the fast path takes and which it hands to pingora.

use std::borrow::Cow;

use crate::serve::classify;

/// Largest request head accepted on HTTP/1.x, the same as pingora's HTTP/2 header-list limit:
/// a longer one gets `431` and the connection is closed, before anything reaches pingora or an
/// origin (pingora alone would read up to 1 MiB).
pub(super) const MAX_HEAD: usize = 64 * 1024;

/// The answer to a head longer than [`MAX_HEAD`].
pub(super) const HEAD_TOO_LARGE: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\n\
Content-Type: text/plain\r\nContent-Length: 32\r\nConnection: close\r\n\r\n\
request header fields too large\n";
/// Most header lines the fast path looks at; a head with more is handed to pingora once it is
/// complete (and within [`MAX_HEAD`]).
pub const MAX_HEADERS: usize = 32;
/// A request head as far as the fast path is concerned.
#[derive(Debug)]
pub enum HeadRead<'a> {
    /// More bytes are needed.
    Partial,
    /// Not for the fast path (HTTP/1.0, a body, an upgrade, a malformed or unusual head):
    /// pingora gets the connection with every byte read so far — the whole head, unless the
    /// head is malformed in a way pingora refuses at once.
    HandOver,
    /// Longer than [`MAX_HEAD`], complete or not: answered with `431`, whatever the size of
    /// the reads it arrived in.
    TooLarge,
    /// A complete head the fast path can decide on.
    Head(Head<'a>),
}

/// The parts of a complete HTTP/1.1 head that decide the answer.
#[derive(Debug)]
pub struct Head<'a> {
    /// Bytes of the head, the blank line included.
    pub len: usize,
    /// The request method.
    pub method: &'a str,
    /// Every header line, for the request relayed to an origin.
    pub headers: &'a [httparse::Header<'a>],
    /// `GET` or `HEAD`.
    pub get_or_head: bool,
    /// `HEAD`: answer without a body.
    pub head: bool,
    /// The origin-form request target (path and query).
    pub target: &'a str,
    /// The target's path.
    pub path: &'a str,
    /// The normalised `Host` (see [`classify::request_host`]).
    pub host: Option<Cow<'a, str>>,
    /// The client asked to close after this answer (a `close` token in `Connection`).
    pub close: bool,
}

/// Reads the request head at the start of `buf`, its header lines into `headers` (the fast
/// path looks at no more than [`MAX_HEADERS`]). Never panics, never allocates unless the host
/// needs lowercasing.
pub fn read_head<'a>(buf: &'a [u8], headers: &'a mut [httparse::Header<'a>]) -> HeadRead<'a> {
    let mut req = httparse::Request::new(headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n <= MAX_HEAD => n,
        Ok(httparse::Status::Complete(_)) => return HeadRead::TooLarge,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => return HeadRead::TooLarge,
        Ok(httparse::Status::Partial) => return HeadRead::Partial,
        // More header lines than the fast path looks at, or a request line pingora may still
        // accept after escaping it: pingora's, but only once the whole head is here and within
        // the limit, so that the limits hold for it too.
        Err(
            httparse::Error::TooManyHeaders | httparse::Error::Token | httparse::Error::Version,
        ) => {
            return match head_end(buf) {
                Some(end) if end <= MAX_HEAD => HeadRead::HandOver,
                Some(_) => HeadRead::TooLarge,
                None if buf.len() >= MAX_HEAD => HeadRead::TooLarge,
                None => HeadRead::Partial,
            };
        }
        // Anything else malformed pingora refuses as soon as it reads it (400).
        Err(_) => return HeadRead::HandOver,
    };
    let (Some(method), Some(target), Some(1)) = (req.method, req.path, req.version) else {
        return HeadRead::HandOver;
    };
    if !target.starts_with('/') {
        return HeadRead::HandOver;
    }
    let mut host = None;
    let mut close = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("host") {
            if host.is_some() {
                return HeadRead::HandOver;
            }
            host = Some(h.value);
        } else if h.name.eq_ignore_ascii_case("connection") {
            close |= h
                .value
                .split(|b| *b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
        } else if h.name.eq_ignore_ascii_case("transfer-encoding")
            || (h.name.eq_ignore_ascii_case("content-length") && h.value != b"0")
            || h.name.eq_ignore_ascii_case("expect")
            || h.name.eq_ignore_ascii_case("upgrade")
        {
            // A body, a 100-continue or an upgrade: pingora's.
            return HeadRead::HandOver;
        }
    }
    let head = method == "HEAD";
    HeadRead::Head(Head {
        len,
        method,
        headers: req.headers,
        get_or_head: method == "GET" || head,
        head,
        target,
        path: target.split_once('?').map_or(target, |(p, _)| p),
        host: classify::request_host(None, host),
        close,
    })
}

/// Where the head at the start of `buf` ends (just past its empty line), with line ends of
/// CRLF or a bare LF, as httparse reads them.
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = buf[from..].iter().position(|b| *b == b'\n') {
        let nl = from + at;
        match (buf.get(nl + 1), buf.get(nl + 2)) {
            (Some(b'\n'), _) => return Some(nl + 2),
            (Some(b'\r'), Some(b'\n')) => return Some(nl + 3),
            _ => {}
        }
        from = nl + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> HeadRead<'static> {
        // A test's few heads may live as long as the test binary.
        let raw: &'static str = Box::leak(raw.to_owned().into_boxed_str());
        let headers = Box::leak(Box::new([httparse::EMPTY_HEADER; MAX_HEADERS]));
        read_head(raw.as_bytes(), headers)
    }

    #[test]
    fn plain_gets_are_read() {
        let HeadRead::Head(h) =
            head("GET /.well-known/acme-challenge/t?x=1 HTTP/1.1\r\nHost: A.test:80\r\n\r\n")
        else {
            panic!("not a head");
        };
        assert_eq!(h.path, "/.well-known/acme-challenge/t");
        assert_eq!(h.target, "/.well-known/acme-challenge/t?x=1");
        assert_eq!(h.host.as_deref(), Some("a.test"));
        assert!(h.get_or_head && !h.head && !h.close);
        assert!(matches!(
            head("HEAD / HTTP/1.1\r\nConnection: close\r\n\r\n"),
            HeadRead::Head(Head {
                head: true,
                close: true,
                host: None,
                ..
            })
        ));
    }

    #[test]
    fn partial_heads_wait() {
        assert!(matches!(
            head("GET / HTTP/1.1\r\nHost: a"),
            HeadRead::Partial
        ));
        assert!(matches!(head(""), HeadRead::Partial));
    }

    #[test]
    fn heads_past_the_limit_are_too_large_complete_or_not() {
        let big = "x".repeat(MAX_HEAD);
        let complete = format!("GET / HTTP/1.1\r\nX-Big: {big}\r\n\r\n");
        assert!(matches!(head(&complete), HeadRead::TooLarge));
        assert!(matches!(head(&complete[..MAX_HEAD]), HeadRead::TooLarge));
        let fits = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", &big[..MAX_HEAD - 64]);
        assert!(matches!(head(&fits), HeadRead::Head(_)));
    }

    #[test]
    fn unusual_heads_go_to_pingora() {
        for raw in [
            "GET / HTTP/1.0\r\n\r\n",
            "GET http://a.test/ HTTP/1.1\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
            "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
            "GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            "G\0T / HTTP/1.1\r\n\r\n",
        ] {
            assert!(matches!(head(raw), HeadRead::HandOver), "{raw:?}");
        }
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("X-{i}: v\r\n"))
            .collect();
        assert!(matches!(
            head(&format!("GET / HTTP/1.1\r\n{many}\r\n")),
            HeadRead::HandOver
        ));
    }

    #[test]
    fn the_431_answer_is_consistent() {
        let text = std::str::from_utf8(HEAD_TOO_LARGE).unwrap_or_default();
        let (headers, body) = text.split_once("\r\n\r\n").unwrap_or_default();
        assert!(headers.starts_with("HTTP/1.1 431 "));
        assert!(headers.contains(&format!("Content-Length: {}", body.len())));
    }
}
