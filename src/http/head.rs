//! Response heads.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// Reason phrase for the statuses this server sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// The `date` header's value (IMF-fixdate) for the current second, formatted at most once a
/// second per thread.
pub fn date() -> String {
    thread_local! {
        static CACHE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let sec = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != sec {
            *c = (sec, httpdate::fmt_http_date(now));
        }
        c.1.clone()
    })
}

/// Writes a complete HTTP/1.1 response head with `content-length: content_length`.
///
/// Header names are written as given (this server's are lowercase, as hyper writes them, so
/// both engines' heads are the same bytes); `headers` must not contain `content-length`,
/// `connection` or `date`: those are decided here, in this order, after the others. `close`
/// adds `connection: close`.
pub fn write(status: u16, headers: &[(&str, &str)], content_length: u64, close: bool) -> Vec<u8> {
    let mut s = String::with_capacity(160);
    let _ = write!(s, "HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in headers {
        debug_assert!(!name.eq_ignore_ascii_case("content-length"));
        let _ = write!(s, "{name}: {value}\r\n");
    }
    let _ = write!(s, "content-length: {content_length}\r\n");
    if close {
        s.push_str("connection: close\r\n");
    }
    let _ = write!(s, "date: {}\r\n\r\n", date());
    s.into_bytes()
}

#[cfg(test)]
mod tests {
    #[test]
    fn head_bytes() {
        let h = super::write(200, &[("content-type", "image/png")], 72, true);
        let date = super::date();
        assert_eq!(date.len(), 29, "{date}");
        assert!(date.ends_with(" GMT"));
        let want = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: image/png\r\ncontent-length: 72\r\nconnection: close\r\ndate: {date}\r\n\r\n"
        );
        // The second may have turned between the two calls.
        if h != want.as_bytes() {
            let again = super::write(200, &[("content-type", "image/png")], 72, true);
            assert!(String::from_utf8_lossy(&again)
                .contains("content-length: 72\r\nconnection: close\r\ndate: "));
        }
    }
}
