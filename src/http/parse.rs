//! Request-head parsing.
//!
//! [`parse_head`] takes the bytes received so far and the length already scanned on a previous
//! call; it only looks for the end of the head in the new tail, so a client that drips one byte at
//! a time costs one short scan per byte, not a re-parse of the whole head.

use memchr::memchr_iter;

/// Most header fields accepted in one request head (more → 431).
pub const MAX_HEADERS: usize = 100;
/// Longest request line (method, target, version) accepted (longer → 414). Room for a
/// 4,000-character query many times over; a 64 KiB target is refused.
pub const MAX_REQUEST_LINE: usize = 16 * 1024;

/// How a request's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body (no `Content-Length`, no `Transfer-Encoding`).
    None,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Patch,
    Other,
}

impl Method {
    pub fn from_token(m: &str) -> Method {
        match m {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            "PATCH" => Method::Patch,
            _ => Method::Other,
        }
    }
}

/// A parsed request head: only what routing and framing need, owned.
#[derive(Debug, Clone)]
pub struct RequestHead {
    pub method: Method,
    /// Path without the query, from origin-form or absolute-form targets.
    pub path: String,
    pub query: Option<String>,
    /// 0 = HTTP/1.0, 1 = HTTP/1.1.
    pub minor_version: u8,
    /// Whether the client allows the connection to stay open after this response.
    pub keep_alive: bool,
    pub body: BodyFraming,
    pub expect_continue: bool,
    pub content_type: Option<String>,
    /// The `Accept` header (for `format=auto` on the URL interface).
    pub accept: Option<String>,
    /// Bytes of the head, including the final empty line.
    pub head_len: usize,
}

/// What the peer did wrong, each mapped to exactly one status by `respond`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadError {
    /// The head is longer than the configured limit (431).
    HeadTooLarge,
    /// The request line is longer than [`MAX_REQUEST_LINE`] (414).
    RequestLineTooLong,
    /// An `Expect` other than `100-continue` (417).
    ExpectationFailed,
    /// More than [`MAX_HEADERS`] fields (431).
    TooManyHeaders,
    /// Syntax error in the request line or a header (400).
    Malformed(&'static str),
    /// An HTTP version other than 1.0 / 1.1 (505).
    Version,
    /// `Transfer-Encoding` other than a final `chunked` (501).
    UnsupportedTransferEncoding,
}

impl HeadError {
    pub fn message(&self) -> &'static str {
        match self {
            HeadError::HeadTooLarge => "request head too large",
            HeadError::RequestLineTooLong => "request line too long",
            HeadError::ExpectationFailed => "unsupported expectation",
            HeadError::TooManyHeaders => "too many header fields",
            HeadError::Malformed(m) => m,
            HeadError::Version => "HTTP version not supported",
            HeadError::UnsupportedTransferEncoding => "transfer-encoding not supported",
        }
    }
}

/// Outcome of one call to [`parse_head`].
#[derive(Debug)]
pub enum HeadStatus {
    /// The head is not complete yet; pass `scanned` as `prev_len` next time.
    Partial {
        scanned: usize,
    },
    Complete(RequestHead),
}

/// Finds the end of a head (`\r\n\r\n`, tolerating bare `\n` line ends as RFC 9112 §2.2
/// allows) starting the search near `from`. Returns the index just past the empty line.
pub fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let start = from.saturating_sub(3);
    for i in memchr_iter(b'\n', &buf[start..]).map(|i| i + start) {
        match buf.get(i + 1) {
            Some(b'\n') => return Some(i + 2),
            Some(b'\r') if buf.get(i + 2) == Some(&b'\n') => return Some(i + 3),
            _ => {}
        }
    }
    None
}

/// Parses a request head from `buf` (bytes received so far on this request).
///
/// `prev_len` is the `scanned` value of the previous `Partial`; `max_head` bounds the head.
pub fn parse_head(buf: &[u8], prev_len: usize, max_head: usize) -> Result<HeadStatus, HeadError> {
    // Leading empty lines before a request line are ignored (RFC 9112 §2.2).
    let skip = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    // Each limit is crossed at a definite input length: the request line when
    // `MAX_REQUEST_LINE + 1` bytes after the leading empty lines hold no LF, the head when
    // `max_head + 1` bytes hold no head end. The limit crossed first wins, so a head gives the
    // same answer whole or however it is split across reads.
    let line_trigger = skip + MAX_REQUEST_LINE + 1;
    let line_over = prev_len < line_trigger
        && buf.len() >= line_trigger
        && memchr::memchr(b'\n', &buf[skip..line_trigger]).is_none();
    // Searching from `skip` keeps the leading empty lines from looking like a head end.
    let end = find_head_end(&buf[skip..], prev_len.saturating_sub(skip)).map(|e| e + skip);
    let head_over = end.map_or(buf.len() > max_head, |e| e > max_head);
    match (line_over, head_over) {
        (true, true) if max_head < line_trigger => return Err(HeadError::HeadTooLarge),
        (true, _) => return Err(HeadError::RequestLineTooLong),
        (false, true) => return Err(HeadError::HeadTooLarge),
        (false, false) => {}
    }
    let Some(end) = end else {
        return Ok(HeadStatus::Partial { scanned: buf.len() });
    };
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let n = match req.parse(&buf[..end]) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return Err(HeadError::Malformed("malformed request head"))
        }
        Err(httparse::Error::Version) => return Err(version_error(&buf[skip..end])),
        Err(e) => return Err(map_httparse(e)),
    };
    head_from(&req, n).map(HeadStatus::Complete)
}

/// httparse reports any oddity at the end of the request line as a version error: only a
/// well-formed `HTTP/d.d` with an unsupported version is 505; the rest is 400.
fn version_error(head: &[u8]) -> HeadError {
    let line = head.split(|&b| b == b'\n').next().unwrap_or(b"");
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let parts: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    match parts.as_slice() {
        [_, _, v]
            if v.len() == 8
                && v.starts_with(b"HTTP/")
                && v[5].is_ascii_digit()
                && v[6] == b'.'
                && v[7].is_ascii_digit() =>
        {
            HeadError::Version
        }
        _ => HeadError::Malformed("invalid request line"),
    }
}

fn map_httparse(e: httparse::Error) -> HeadError {
    match e {
        httparse::Error::TooManyHeaders => HeadError::TooManyHeaders,
        httparse::Error::Version => HeadError::Version,
        httparse::Error::HeaderName => HeadError::Malformed("invalid header name"),
        httparse::Error::HeaderValue => HeadError::Malformed("invalid header value"),
        httparse::Error::NewLine => HeadError::Malformed("invalid line ending"),
        httparse::Error::Status | httparse::Error::Token => {
            HeadError::Malformed("invalid request line")
        }
    }
}

/// The path of a request line as far as it has arrived, for error responses on a head that is
/// incomplete or invalid (so `/transform` errors can speak the binding's protocol).
pub fn peek_path(buf: &[u8]) -> Option<&str> {
    let start = buf.iter().position(|b| !matches!(b, b'\r' | b'\n'))?;
    let buf = &buf[start..];
    let line = &buf[..memchr::memchr(b'\n', buf).unwrap_or(buf.len())];
    let target = line.split(|b| *b == b' ').nth(1)?;
    // Only a target that has ended (a space after it) is known whole.
    line.split(|b| *b == b' ').nth(2)?;
    let target = std::str::from_utf8(target).ok()?;
    let path = match target.find("://") {
        Some(i) => {
            let rest = &target[i + 3..];
            &rest[rest.find('/')?..]
        }
        None => target,
    };
    path.split('?').next()
}

fn head_from(req: &httparse::Request<'_, '_>, head_len: usize) -> Result<RequestHead, HeadError> {
    let method = Method::from_token(req.method.unwrap_or(""));
    let minor_version = req.version.unwrap_or(1);
    let target = req.path.unwrap_or("");
    let (path, query) = split_target(target)?;

    let mut content_length: Option<u64> = None;
    // Transfer codings in order, across all Transfer-Encoding fields.
    let mut codings: Vec<bool> = Vec::new(); // true = chunked
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut expect_continue = false;
    let mut content_type = None;
    let mut accept: Option<String> = None;
    let mut host = 0usize;
    let mut saw_te_field = false;
    for h in req.headers.iter() {
        let name = h.name;
        let value = std::str::from_utf8(h.value)
            .map_err(|_| HeadError::Malformed("non-ASCII header value"))?
            .trim_matches([' ', '\t']);
        if name.eq_ignore_ascii_case("content-length") {
            let n = parse_content_length(value)?;
            if content_length.is_some_and(|prev| prev != n) {
                return Err(HeadError::Malformed("conflicting Content-Length"));
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            saw_te_field = true;
            for coding in value.split(',').map(|c| c.trim_matches([' ', '\t'])) {
                if !coding.is_empty() {
                    codings.push(coding.eq_ignore_ascii_case("chunked"));
                }
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(|t| t.trim_matches([' ', '\t'])) {
                conn_close |= token.eq_ignore_ascii_case("close");
                conn_keep_alive |= token.eq_ignore_ascii_case("keep-alive");
            }
        } else if name.eq_ignore_ascii_case("expect") {
            if !value.eq_ignore_ascii_case("100-continue") {
                return Err(HeadError::ExpectationFailed);
            }
            expect_continue = true;
        } else if name.eq_ignore_ascii_case("content-type") {
            content_type = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("accept") {
            // Several Accept fields combine into one list.
            accept = Some(match accept {
                Some(prev) => format!("{prev}, {value}"),
                None => value.to_string(),
            });
        } else if name.eq_ignore_ascii_case("host") {
            // RFC 9110 §7.2 / RFC 3986 authority: no whitespace, no userinfo or path, and not
            // empty.
            if value.is_empty()
                || value
                    .bytes()
                    .any(|b| matches!(b, b' ' | b'\t' | b'@' | b'/'))
            {
                return Err(HeadError::Malformed("invalid Host"));
            }
            host += 1;
        }
    }
    // RFC 9112 §6.1/§6.3: chunked must be the final coding, applied once (else 400);
    // a coding this server does not know is 501; TE with Content-Length is 400.
    let saw_te = !codings.is_empty();
    if saw_te_field && codings.is_empty() {
        return Err(HeadError::Malformed("empty Transfer-Encoding"));
    }
    if saw_te && content_length.is_some() {
        return Err(HeadError::Malformed(
            "both Transfer-Encoding and Content-Length",
        ));
    }
    if saw_te && codings.last() != Some(&true) && codings.contains(&true) {
        return Err(HeadError::Malformed(
            "chunked is not the final transfer coding",
        ));
    }
    if codings.contains(&false) {
        return Err(HeadError::UnsupportedTransferEncoding);
    }
    if codings.len() > 1 {
        return Err(HeadError::Malformed("chunked applied more than once"));
    }
    let chunked = saw_te;
    if minor_version == 1 && host != 1 {
        return Err(HeadError::Malformed(
            "HTTP/1.1 request needs exactly one Host",
        ));
    }
    let body = match (chunked, content_length) {
        (true, _) => BodyFraming::Chunked,
        (false, Some(0)) | (false, None) => BodyFraming::None,
        (false, Some(n)) => BodyFraming::Length(n),
    };
    // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 request means the framing cannot be
    // trusted, so the connection closes after the response.
    let keep_alive = if minor_version == 0 {
        conn_keep_alive && !conn_close && !chunked
    } else {
        !conn_close
    };
    Ok(RequestHead {
        method,
        path,
        query,
        minor_version,
        keep_alive,
        body,
        expect_continue,
        content_type,
        accept,
        head_len,
    })
}

/// `Content-Length` is 1*DIGIT; no sign, no spaces, no lists, no overflow.
fn parse_content_length(value: &str) -> Result<u64, HeadError> {
    if value.is_empty() || value.len() > 19 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HeadError::Malformed("invalid Content-Length"));
    }
    value
        .parse()
        .map_err(|_| HeadError::Malformed("invalid Content-Length"))
}

/// Splits an origin-form (`/p?q`) or absolute-form (`http://h/p?q`) target.
fn split_target(target: &str) -> Result<(String, Option<String>), HeadError> {
    let rest = if target.starts_with('/') {
        target
    } else if let Some(after) = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        match after.find('/') {
            Some(i) => &after[i..],
            None => "/",
        }
    } else if target == "*" {
        "*"
    } else {
        return Err(HeadError::Malformed("invalid request target"));
    };
    Ok(match rest.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (rest.to_string(), None),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 64 * 1024;

    /// Feeds `input` whole, then one byte at a time, and checks both give the same outcome.
    fn parse_both(input: &[u8]) -> Result<Option<RequestHead>, HeadError> {
        let whole = match parse_head(input, 0, MAX) {
            Ok(HeadStatus::Complete(h)) => Ok(Some(h)),
            Ok(HeadStatus::Partial { .. }) => Ok(None),
            Err(e) => Err(e),
        };
        let mut scanned = 0;
        let mut drip = Ok(None);
        for n in 1..=input.len() {
            match parse_head(&input[..n], scanned, MAX) {
                Ok(HeadStatus::Partial { scanned: s }) => scanned = s,
                Ok(HeadStatus::Complete(h)) => {
                    assert_eq!(n, input.len().min(h.head_len.max(n)));
                    drip = Ok(Some(h));
                    break;
                }
                Err(e) => {
                    drip = Err(e);
                    break;
                }
            }
        }
        same(&whole, &drip);
        // Split in two at every byte, the second parse rescanning from where the first stopped.
        for cut in 0..input.len() {
            let split = match parse_head(&input[..cut], 0, MAX) {
                Ok(HeadStatus::Complete(h)) => Ok(Some(h)),
                Err(e) => Err(e),
                Ok(HeadStatus::Partial { scanned }) => match parse_head(input, scanned, MAX) {
                    Ok(HeadStatus::Complete(h)) => Ok(Some(h)),
                    Ok(HeadStatus::Partial { .. }) => Ok(None),
                    Err(e) => Err(e),
                },
            };
            same(&whole, &split);
        }
        whole
    }

    fn same(
        a: &Result<Option<RequestHead>, HeadError>,
        b: &Result<Option<RequestHead>, HeadError>,
    ) {
        match (a, b) {
            (Ok(Some(a)), Ok(Some(b))) => assert_eq!(a.head_len, b.head_len),
            (Err(a), Err(b)) => assert_eq!(a, b),
            (Ok(None), Ok(None)) => {}
            _ => panic!("whole {a:?} vs split {b:?}"),
        }
    }

    #[test]
    fn binding_capture_head() {
        let raw = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/wire/single.raw"
        ))
        .unwrap();
        let h = parse_both(&raw).unwrap().unwrap();
        assert_eq!(h.method, Method::Post);
        assert_eq!(h.path, "/transform");
        assert_eq!(h.body, BodyFraming::Chunked);
        assert!(h.keep_alive);
        assert!(h.content_type.unwrap().starts_with("multipart/form-data"));
    }

    #[test]
    fn simple_get_and_query() {
        let h = parse_both(b"GET /bytes/1K?x=1 HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.path, "/bytes/1K");
        assert_eq!(h.query.as_deref(), Some("x=1"));
        assert_eq!(h.body, BodyFraming::None);
    }

    #[test]
    fn partial_until_blank_line() {
        assert!(parse_both(b"GET / HTTP/1.1\r\nHost: a\r\n")
            .unwrap()
            .is_none());
    }

    #[test]
    fn bare_lf_accepted() {
        let h = parse_both(b"GET / HTTP/1.1\nHost: a\n\n").unwrap().unwrap();
        assert_eq!(h.head_len, 24);
    }

    #[test]
    fn http10_closes_by_default() {
        let h = parse_both(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!h.keep_alive);
        let h = parse_both(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.keep_alive);
        let h = parse_both(
            b"POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert!(!h.keep_alive, "HTTP/1.0 with Transfer-Encoding closes");
        let h = parse_both(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive);
    }

    #[test]
    fn content_length_rules() {
        let ok = parse_both(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(ok.body, BodyFraming::Length(5));
        for bad in [
            &b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert!(
                matches!(parse_both(bad), Err(HeadError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn transfer_encoding_rules() {
        let h = parse_both(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.body, BodyFraming::Chunked);
        for bad in [
            &b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        ] {
            assert_eq!(
                parse_both(bad).unwrap_err(),
                HeadError::UnsupportedTransferEncoding
            );
        }
        for bad in [
            &b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert!(matches!(parse_both(bad), Err(HeadError::Malformed(_))));
        }
        // Header order does not matter.
        let h = parse_both(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nHost: a\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.body, BodyFraming::Chunked);
    }

    #[test]
    fn limits_and_versions() {
        let mut big = b"GET /".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX));
        assert_eq!(
            parse_head(&big, 0, MAX).unwrap_err(),
            HeadError::RequestLineTooLong
        );
        let mut many = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for i in 0..MAX_HEADERS {
            many.extend(format!("X-{i}: v\r\n").as_bytes());
        }
        many.extend(b"\r\n");
        assert_eq!(parse_both(&many).unwrap_err(), HeadError::TooManyHeaders);
        assert_eq!(
            parse_both(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n").unwrap_err(),
            HeadError::Version
        );
        assert!(matches!(
            parse_both(b"GET / HTTP/1.1\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
    }

    #[test]
    fn request_line_limit_is_414() {
        let q = "q".repeat(4000);
        let ok = format!("GET /?{q} HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(parse_both(ok.as_bytes()).unwrap().is_some());
        let long = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(64 * 1024));
        assert_eq!(
            parse_both(long.as_bytes()).unwrap_err(),
            HeadError::RequestLineTooLong
        );
        let field = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
            "v".repeat(64 * 1024)
        );
        assert_eq!(
            parse_both(field.as_bytes()).unwrap_err(),
            HeadError::HeadTooLarge
        );
    }

    #[test]
    fn field_syntax_rules() {
        for bad in [
            &b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n"[..], // obs-fold
            b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",                   // space before colon
            b"GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n",         // NUL in value
            b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",         // bare CR in value
            b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",                 // space in target
            b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n",                    // bad method char
            b"GET / HTTX/1.1\r\nHost: a\r\n\r\n",                    // bad version chars
            b"GET / HTTP/1.x\r\nHost: a\r\n\r\n",                    // bad version chars
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",         // two Host fields
            b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost:\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\nContent-Length: 3\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,\r\nContent-Length: 3\r\n\r\n",
        ] {
            assert!(
                matches!(parse_both(bad), Err(HeadError::Malformed(_))),
                "{:?} -> {:?}",
                String::from_utf8_lossy(bad),
                parse_both(bad)
            );
        }
        // A bare LF ends a field line (the bare-LF policy), so an LF "inside" a value starts
        // the next field: here `b: c`, a valid one.
        assert!(
            parse_both(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\nb: c\r\n\r\n")
                .unwrap()
                .is_some()
        );
        assert_eq!(
            parse_both(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: fly\r\n\r\n").unwrap_err(),
            HeadError::ExpectationFailed
        );
    }

    #[test]
    fn peek_path_reads_the_request_line_so_far() {
        assert_eq!(
            peek_path(b"POST /transform HTTP/1.1\r\nX"),
            Some("/transform")
        );
        assert_eq!(peek_path(b"\r\nPOST /info?x=1 HT"), Some("/info"));
        assert_eq!(peek_path(b"GET http://h/info HTTP/1.1"), Some("/info"));
        assert_eq!(peek_path(b"GET /transform"), None);
        assert_eq!(peek_path(b"GET"), None);
    }

    #[test]
    fn absolute_form_target() {
        let h = parse_both(b"GET http://x/healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.path, "/healthz");
    }
}
