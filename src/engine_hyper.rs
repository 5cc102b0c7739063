//! The comparison front end (`--engine hyper`): the same routes, handlers, CPU pool, limits
//! and error mapping as the io_uring engine, served by hyper's HTTP/1 server on tokio.
//!
//! It is a benchmark baseline, not the product, and a fair one: hyper's default settings plus
//! `half_close(true)`; `--workers` tokio worker threads (one ring per worker in the other
//! engine) and the same `--cpu-threads` pool; the same `Response` values and body buffers
//! (`/bytes` slices the shared pattern, no copy); and response heads that are the same bytes
//! as the io_uring engine's — lowercase names in the same order, `content-length`, then
//! `connection: close` when closing, then the `date` hyper adds itself. A reason phrase hyper
//! would spell differently is passed as hyper's `ReasonPhrase`.
//!
//! What it does not share is exactly what is being compared: the framer, the write path and the
//! close. Framing errors hyper detects itself are answered by hyper, with hyper's own rules
//! and limits (its ~400 KB read buffer instead of `--max-head`, its validation of `Host`,
//! `Expect` and `Transfer-Encoding`); `--header-timeout` is passed as hyper's
//! `header_read_timeout`; the other timers, `--trace-writes` and the write counters
//! (`responses_complete`, `bytes_sent`, `sends`) are the io_uring engine's alone.

use crate::config::Config;
use crate::conn::{self, BodyJob, Shared};
use crate::handlers;
use crate::http::body::BodyError;
use crate::http::head;
use crate::http::parse::Method;
use crate::image::{Code, ImageError};
use crate::io::listener::Listener;
use crate::io::sys;
use crate::metrics::Metrics;
use crate::pool::Pool;
use crate::respond::{self, Response};
use crate::route::{self, Route};
use crate::server::Exit;
use crate::stats::Stats;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Incoming};
use hyper::header::{HeaderName, HeaderValue, CONNECTION};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, StatusCode, Version};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::signal::unix::{signal, SignalKind};

/// Runs the hyper engine until SIGTERM/SIGINT and its drain.
pub fn run(config: Config) -> io::Result<Exit> {
    sys::ignore_sigpipe();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.workers)
        .thread_name("lastbyte-hyper")
        .enable_all()
        .build()?;
    rt.block_on(serve(config))
}

enum Accepting {
    Unix(tokio::net::UnixListener),
    Tcp(tokio::net::TcpListener),
}

impl Accepting {
    fn from_listener(l: &Listener) -> io::Result<Accepting> {
        let fd: OwnedFd = l.try_clone_fd()?;
        let tcp = matches!(
            sys::socket_family(fd.as_raw_fd()),
            Ok(libc::AF_INET | libc::AF_INET6)
        );
        Ok(if tcp {
            let s = std::net::TcpListener::from(fd);
            s.set_nonblocking(true)?;
            Accepting::Tcp(tokio::net::TcpListener::from_std(s)?)
        } else {
            let s = std::os::unix::net::UnixListener::from(fd);
            s.set_nonblocking(true)?;
            Accepting::Unix(tokio::net::UnixListener::from_std(s)?)
        })
    }
}

/// Everything a connection task needs.
#[derive(Clone)]
struct Ctx {
    shared: Arc<Shared>,
    pool: Arc<Pool>,
}

async fn serve(config: Config) -> io::Result<Exit> {
    let mut listeners = crate::server::shared_listeners(&config)?;
    if let Some(a) = config.tcp {
        listeners.push(Listener::bind_tcp(a, false)?);
    }
    if listeners.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "nothing to listen on (LISTEN_FDS passed no sockets)",
        ));
    }
    tracing::info!("engine: hyper");
    for l in &listeners {
        println!("lastbyte listening on {}", l.describe());
    }
    let stats = Arc::new(Stats::default());
    let metrics = Arc::new(Metrics::new(1));
    let pool = Arc::new(Pool::new(
        config.cpu_threads,
        config.queue_depth,
        stats.clone(),
        handlers::internal_error,
    ));
    let deadline = config.shutdown_timeout;
    let shared = Arc::new(Shared::new(config, stats.clone(), metrics));
    let ctx = Ctx {
        shared: shared.clone(),
        pool,
    };
    let graceful = Arc::new(GracefulShutdown::new());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for l in &listeners {
        let acc = Accepting::from_listener(l)?;
        let (ctx, graceful, mut stop) = (ctx.clone(), graceful.clone(), stop_rx.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.changed() => return,
                    r = accept(&acc, &ctx, &graceful) => {
                        if let Err(e) = r {
                            tracing::warn!("accept failed: {e}");
                            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        }
                    }
                }
            }
        }));
    }
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("signal received: draining");
    shared.start_draining();
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    for l in &listeners {
        l.stop_accepting();
    }
    drop(listeners);
    let graceful = Arc::try_unwrap(graceful)
        .unwrap_or_else(|_| unreachable!("the accept tasks have ended and dropped their handles"));
    let exit = tokio::select! {
        _ = graceful.shutdown() => Exit::Drained,
        _ = tokio::time::sleep(deadline) => {
            tracing::warn!("shutdown deadline reached: aborting");
            Exit::Aborted
        }
        _ = term.recv() => Exit::Aborted,
        _ = int.recv() => Exit::Aborted,
    };
    tracing::info!(?exit, "stats: {}", stats.line());
    if exit == Exit::Aborted {
        std::process::exit(3);
    }
    Ok(exit)
}

async fn accept(acc: &Accepting, ctx: &Ctx, graceful: &GracefulShutdown) -> io::Result<()> {
    match acc {
        Accepting::Unix(l) => {
            let (s, _) = l.accept().await?;
            start_conn(s, ctx, graceful);
        }
        Accepting::Tcp(l) => {
            let (s, _) = l.accept().await?;
            start_conn(s, ctx, graceful);
        }
    }
    Ok(())
}

/// Serves one connection with hyper's defaults plus `half_close(true)`.
fn start_conn<S>(s: S, ctx: &Ctx, graceful: &GracefulShutdown)
where
    S: AsyncRead + AsyncWrite + AsRawFd + Unpin + Send + 'static,
{
    let sh = &ctx.shared;
    Stats::inc(&sh.stats.connections);
    if sh.config.send_buffer > 0 {
        if let Err(e) = sys::set_send_buffer(s.as_raw_fd(), sh.config.send_buffer) {
            tracing::warn!("SO_SNDBUF: {e}");
        }
    }
    let open = sh.open_connections.fetch_add(1, Ordering::Relaxed);
    let refused = open >= sh.config.max_connections;
    if refused {
        Stats::inc(&sh.stats.connections_refused);
    }
    let c = ctx.clone();
    let svc = service_fn(move |req| handle(req, c.clone(), refused));
    // The one setting beyond half_close is the same head deadline as the io_uring engine's
    // (hyper has none without a timer); everything else is hyper's default.
    let conn = http1::Builder::new()
        .half_close(true)
        .timer(TokioTimer::new())
        .header_read_timeout(sh.config.header_timeout)
        .serve_connection(TokioIo::new(s), svc);
    let fut = graceful.watch(conn);
    let shared = ctx.shared.clone();
    tokio::spawn(async move {
        if let Err(e) = fut.await {
            tracing::debug!("connection ended: {e}");
        }
        shared.open_connections.fetch_sub(1, Ordering::Relaxed);
    });
}

/// Whether the request asks to close after its response (HTTP/1.1 `Connection: close`, or
/// HTTP/1.0 without `keep-alive`), as the io_uring engine decides it.
fn wants_close(req: &Request<Incoming>) -> bool {
    let tokens = req
        .headers()
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .collect::<Vec<_>>();
    if req.version() == Version::HTTP_10 {
        !tokens.iter().any(|t| t == "keep-alive")
    } else {
        tokens.iter().any(|t| t == "close")
    }
}

async fn handle(
    req: Request<Incoming>,
    ctx: Ctx,
    refused: bool,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let sh = &ctx.shared;
    let started = Instant::now();
    Stats::inc(&sh.stats.requests);
    Stats::inc(&sh.stats.requests_in_flight);
    let method = Method::from_token(req.method().as_str());
    let path = req.uri().path().to_string();
    let route = route::route(method, &path);
    let close_req = wants_close(&req);
    let label = route.label();
    let r = if refused {
        Response::text(503, "too many connections")
            .with_header("retry-after", "1".into())
            .closing()
    } else if route.needs_body() {
        body_route(req, route, &path, &ctx).await
    } else {
        conn::immediate(&route, sh)
    };
    let r = sh.finish_response(r, respond::is_binding_path(&path), label);
    Stats::dec(&sh.stats.requests_in_flight);
    tracing::info!(
        target: "lastbyte::request",
        route = label,
        status = r.status,
        code = r.code,
        us = started.elapsed().as_micros() as u64,
        engine = "hyper",
    );
    let close = r.close || close_req || sh.draining();
    // For HEAD hyper sends no body itself and keeps the content-length given.
    Ok(to_hyper(r, close))
}

/// Reads the body (bounded by `--max-body`), then answers as the io_uring engine does.
async fn body_route(req: Request<Incoming>, route: Route, path: &str, ctx: &Ctx) -> Response {
    let sh = &ctx.shared;
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (ct, accept) = (header("content-type"), header("accept"));
    let limit = usize::try_from(sh.config.max_body).unwrap_or(usize::MAX);
    // A declared length over the limit is refused before reading, as the framer does.
    if req.body().size_hint().lower() > sh.config.max_body {
        return respond::body_error(path, BodyError::TooLarge);
    }
    let body = match Limited::new(req.into_body(), limit).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return respond::body_error(path, BodyError::TooLarge);
        }
        Err(e) => return Response::text(400, &format!("invalid request body: {e}")).closing(),
    };
    Stats::add(&sh.stats.bytes_received, body.len() as u64);
    match conn::body_job(route, ct, accept, body, sh) {
        BodyJob::Now(r) => r,
        BodyJob::Pool(work) => {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let reply = Box::new(move |r: Response| {
                let _ = tx.send(r);
            });
            if ctx.pool.try_submit_with(work, None, reply).is_err() {
                Stats::inc(&sh.stats.jobs_busy);
                let e = ImageError::new(Code::Busy, "the server is busy; retry later");
                return Response::binding_error(&e);
            }
            rx.await.unwrap_or_else(|_| handlers::internal_error())
        }
    }
}

/// The hyper response for `r`: the same header names, values and order as
/// `respond::Response::head`, so hyper writes the same bytes (it appends `date` itself).
fn to_hyper(r: Response, close: bool) -> hyper::Response<Full<Bytes>> {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let len = r.body.len();
    let mut resp = hyper::Response::new(Full::new(r.body));
    *resp.status_mut() = status;
    let reason = head::reason(r.status);
    if status.canonical_reason() != Some(reason) && !reason.is_empty() {
        if let Ok(p) = hyper::ext::ReasonPhrase::try_from(reason.as_bytes()) {
            resp.extensions_mut().insert(p);
        }
    }
    let h = resp.headers_mut();
    for (name, value) in r.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::try_from(value),
        ) {
            h.append(n, v);
        }
    }
    h.insert(hyper::header::CONTENT_LENGTH, HeaderValue::from(len));
    if close {
        h.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}
