//! Response heads.

use std::fmt::Write as _;

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

/// Writes a complete HTTP/1.1 response head with `Content-Length: content_length`.
///
/// `headers` must not contain `Content-Length` or `Connection`; those are framing, decided
/// here. `close` adds `Connection: close`.
pub fn write(status: u16, headers: &[(&str, &str)], content_length: u64, close: bool) -> Vec<u8> {
    let mut s = String::with_capacity(128);
    let _ = write!(s, "HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in headers {
        debug_assert!(!name.eq_ignore_ascii_case("content-length"));
        let _ = write!(s, "{name}: {value}\r\n");
    }
    let _ = write!(s, "Content-Length: {content_length}\r\n");
    if close {
        s.push_str("Connection: close\r\n");
    }
    s.push_str("\r\n");
    s.into_bytes()
}

#[cfg(test)]
mod tests {
    #[test]
    fn head_bytes() {
        let h = super::write(200, &[("Content-Type", "image/png")], 72, true);
        assert_eq!(
            h,
            b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 72\r\nConnection: close\r\n\r\n"
        );
    }
}
