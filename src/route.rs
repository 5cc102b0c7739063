//! Routing on the path and method only (the Host header is ignored).

use crate::http::parse::Method;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `POST /transform`: the Images binding protocol.
    Transform,
    /// `POST /info`.
    Info,
    /// `POST /echo`: answers the decoded request body.
    Echo,
    /// `POST /cdn-cgi/image/<options>[/<anything>]`: the URL interface; the body is the
    /// image and the value is the raw `<options>` segment.
    ImageUrl(String),
    /// `GET|HEAD|POST /bytes/<n>`: n pattern bytes; the request body is not used.
    Bytes(u64),
    /// `/bytes/<junk>`.
    BadBytes,
    Healthz,
    /// `GET /metrics`: Prometheus text.
    Metrics,
    Root,
    /// A known path with the wrong method; the value is the `Allow` header.
    MethodNotAllowed(&'static str),
    /// A method this server does not know at all.
    NotImplemented,
    NotFound,
}

impl Route {
    /// The `route` label in logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Route::Transform => "transform",
            Route::Info => "info",
            Route::Echo => "echo",
            Route::ImageUrl(_) => "cdn_cgi_image",
            Route::Bytes(_) | Route::BadBytes => "bytes",
            Route::Healthz => "healthz",
            Route::Metrics => "metrics",
            Route::Root => "root",
            Route::MethodNotAllowed(_) | Route::NotImplemented | Route::NotFound => "other",
        }
    }

    /// Routes that read the request body before answering.
    pub fn needs_body(&self) -> bool {
        matches!(
            self,
            Route::Transform | Route::Info | Route::Echo | Route::ImageUrl(_)
        )
    }
}

/// Parses `<n>` of `/bytes/<n>`: decimal digits with an optional `K` (1024) or `M` (1048576).
pub fn parse_size(s: &str) -> Option<u64> {
    let (digits, mult) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 1024),
        b'M' | b'm' => (&s[..s.len() - 1], 1024 * 1024),
        _ => (s, 1),
    };
    if digits.is_empty() || digits.len() > 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

pub fn route(method: Method, path: &str) -> Route {
    use Method::*;
    if method == Other {
        return Route::NotImplemented;
    }
    let get = matches!(method, Get | Head);
    match path {
        "/transform" | "/info" | "/echo" => match (method, path) {
            (Post, "/transform") => Route::Transform,
            (Post, "/info") => Route::Info,
            (Post, _) => Route::Echo,
            _ => Route::MethodNotAllowed("POST"),
        },
        "/healthz" if get => Route::Healthz,
        "/metrics" if get => Route::Metrics,
        "/metrics" => Route::MethodNotAllowed("GET, HEAD"),
        "/" if get => Route::Root,
        "/healthz" | "/" => Route::MethodNotAllowed("GET, HEAD"),
        _ if path.starts_with("/cdn-cgi/image/") => match method {
            Post => {
                let rest = &path["/cdn-cgi/image/".len()..];
                Route::ImageUrl(rest.split('/').next().unwrap_or("").to_string())
            }
            _ => Route::MethodNotAllowed("POST"),
        },
        _ => match path.strip_prefix("/bytes/") {
            Some(n) if get || method == Post => parse_size(n).map_or(Route::BadBytes, Route::Bytes),
            Some(_) => Route::MethodNotAllowed("GET, HEAD, POST"),
            None => Route::NotFound,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("2M"), Some(2 << 20));
        assert_eq!(parse_size("1K"), Some(1024));
        assert_eq!(parse_size("17"), Some(17));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size("M"), None);
        assert_eq!(parse_size("-1"), None);
    }

    #[test]
    fn routes() {
        assert_eq!(route(Method::Post, "/transform"), Route::Transform);
        assert_eq!(
            route(Method::Get, "/transform"),
            Route::MethodNotAllowed("POST")
        );
        assert_eq!(route(Method::Post, "/bytes/2M"), Route::Bytes(2 << 20));
        assert_eq!(route(Method::Get, "/nope"), Route::NotFound);
        assert_eq!(route(Method::Other, "/"), Route::NotImplemented);
        assert_eq!(
            route(Method::Post, "/cdn-cgi/image/w=8,f=auto/photo.jpg"),
            Route::ImageUrl("w=8,f=auto".into())
        );
        assert_eq!(
            route(Method::Get, "/cdn-cgi/image/w=8"),
            Route::MethodNotAllowed("POST")
        );
    }
}
