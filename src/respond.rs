//! Responses: the one place where errors become status, headers and body.

use crate::http::body::BodyError;
use crate::http::head;
use crate::http::parse::HeadError;
use crate::image::{Code, ImageError};
use bytes::Bytes;

/// A response before framing: the connection decides keep-alive and HEAD.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
    /// The connection must close after this response (framing can no longer be trusted).
    pub close: bool,
    /// The binding error code it carries (0 = none), for logs and metrics.
    pub code: u16,
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response {
        Response {
            status,
            headers: vec![("content-type", content_type.to_string())],
            body: body.into(),
            close: false,
            code: 0,
        }
    }

    /// A short plain-text response (`message` plus a newline).
    pub fn text(status: u16, message: &str) -> Response {
        Response::new(status, "text/plain; charset=utf-8", format!("{message}\n"))
    }

    /// A binding error: `cf-images-binding: err=NNNN` and `ERROR NNNN: message`.
    pub fn binding_error(e: &ImageError) -> Response {
        let mut r = Response::new(e.code.status(), "text/plain; charset=utf-8", e.to_string());
        r.headers
            .push(("cf-images-binding", format!("err={}", e.code.number())));
        if e.code == Code::Busy {
            r.headers.push(("retry-after", "1".to_string()));
        }
        r.code = e.code.number();
        r
    }

    pub fn closing(mut self) -> Response {
        self.close = true;
        self
    }

    pub fn with_header(mut self, name: &'static str, value: String) -> Response {
        self.headers.push((name, value));
        self
    }

    /// Head bytes for this response; `close` adds `connection: close`.
    pub fn head(&self, close: bool) -> Vec<u8> {
        let headers: Vec<(&str, &str)> =
            self.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        head::write(self.status, &headers, self.body.len() as u64, close)
    }
}

/// Whether errors on this path speak the binding's error protocol.
pub fn is_binding_path(path: &str) -> bool {
    path == "/transform" || path == "/info"
}

/// On `/transform` and `/info` every error speaks the binding's protocol: a framing or
/// protocol response without an image code of its own (400, 405, 408, 414, 417, 431, 501, 505)
/// keeps its status and gains `cf-images-binding: err=9401` (`err=9402` for 413) and the
/// `ERROR NNNN: message` body.
pub fn as_binding(r: Response) -> Response {
    if r.code != 0 || r.status < 400 {
        return r;
    }
    let code = if r.status == 413 {
        Code::InputTooLarge
    } else {
        Code::InvalidOption
    };
    let message = String::from_utf8_lossy(&r.body).trim_end().to_string();
    let mut b = Response::binding_error(&ImageError::new(code, message));
    b.status = r.status;
    b.close = r.close;
    b.headers
        .extend(r.headers.into_iter().filter(|(k, _)| *k != "content-type"));
    b
}

/// A framing error in the request head. These always close the connection.
pub fn head_error(e: &HeadError) -> Response {
    let status = match e {
        HeadError::HeadTooLarge | HeadError::TooManyHeaders => 431,
        HeadError::RequestLineTooLong => 414,
        HeadError::ExpectationFailed => 417,
        HeadError::Malformed(_) => 400,
        HeadError::Version => 505,
        HeadError::UnsupportedTransferEncoding => 501,
    };
    Response::text(status, e.message()).closing()
}

/// A request-body error on `path`. These always close the connection.
pub fn body_error(path: &str, e: BodyError) -> Response {
    let r = if is_binding_path(path) {
        let code = match e {
            BodyError::TooLarge => Code::InputTooLarge,
            _ => Code::InvalidOption,
        };
        Response::binding_error(&ImageError::new(code, e.message()))
    } else {
        let status = if e == BodyError::TooLarge { 413 } else { 400 };
        Response::text(status, e.message())
    };
    r.closing()
}
