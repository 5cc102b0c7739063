//! The process: listeners, the CPU pool, one worker (ring) thread per core, signals, drain.

use crate::config::Config;
use crate::conn::Shared;
use crate::handlers;
use crate::io::listener::Listener;
use crate::io::sys;
use crate::metrics::Metrics;
use crate::pool::{Mailbox, Pool};
use crate::stats::Stats;
use crate::worker::Worker;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

/// How the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Every connection finished.
    Drained,
    /// The shutdown deadline or a second signal cut connections short (counted).
    Aborted,
}

/// Tells the service manager `state` when `NOTIFY_SOCKET` is set; failures are logged only.
fn notify(state: &str) {
    match sys::sd_notify(state) {
        Ok(true) => tracing::debug!(state, "sd_notify"),
        Ok(false) => {}
        Err(e) => tracing::warn!("sd_notify({state:?}) failed: {e}"),
    }
}

/// Runs the server until SIGTERM/SIGINT and the drain that follows.
pub fn run(config: Config) -> io::Result<Exit> {
    sys::ignore_sigpipe();
    // Block the signals before any thread exists so every thread inherits the mask; only
    // this thread reads them.
    let sig = sys::signalfd_for_shutdown()?;
    let workers = config.workers;
    // Sockets from systemd socket activation are shared by every ring, like the Unix one.
    let listeners = shared_listeners(&config)?;
    if listeners.is_empty() && config.tcp.is_none() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "nothing to listen on (LISTEN_FDS passed no sockets)",
        ));
    }
    // TCP: one SO_REUSEPORT socket per ring, so the kernel spreads connections.
    let mut tcp: Vec<Listener> = Vec::new();
    if let Some(a) = config.tcp {
        let first = Listener::bind_tcp(a, workers > 1)?;
        let addr = first.tcp_addr().unwrap_or(a);
        tcp.push(first);
        for _ in 1..workers {
            tcp.push(Listener::bind_tcp(addr, true)?);
        }
    }
    for l in listeners.iter().chain(tcp.first()) {
        println!("lastbyte listening on {}", l.describe());
    }
    let stats = Arc::new(Stats::default());
    let metrics = Arc::new(Metrics::new(workers));
    let pool = Arc::new(Pool::new(
        config.cpu_threads,
        config.queue_depth,
        stats.clone(),
        handlers::internal_error,
    ));
    let tracer = match &config.trace_writes {
        Some(p) => Some(Arc::new(crate::trace::Tracer::create(p).map_err(|e| {
            io::Error::new(e.kind(), format!("--trace-writes {}: {e}", p.display()))
        })?)),
        None => None,
    };
    let mut shared = Shared::new(config, stats.clone(), metrics);
    shared.tracer = tracer;
    let shared = Arc::new(shared);
    let mut wakes: Vec<OwnedFd> = Vec::new();
    let mut mailboxes = Vec::new();
    let mut threads = Vec::new();
    for id in 0..workers {
        let wake = sys::eventfd()?;
        let mailbox = Mailbox::new(wake.as_raw_fd());
        let mut fds: Vec<_> = listeners.iter().map(|l| l.fd()).collect();
        if let Some(t) = tcp.get(id) {
            fds.push(t.fd());
        }
        let (shared, pool, mb) = (shared.clone(), pool.clone(), mailbox.clone());
        // The worker is built on its own thread: its connections never cross threads.
        threads.push(
            std::thread::Builder::new()
                .name(format!("lastbyte-ring-{id}"))
                .spawn(move || Worker::new(id, fds, shared, pool, mb)?.run())?,
        );
        wakes.push(wake);
        mailboxes.push(mailbox);
    }
    let wake_all = || {
        for m in &mailboxes {
            sys::eventfd_notify(m.wake_fd());
        }
    };
    // Every ring is built and accepting (the listeners were already listening, so nothing
    // connecting now is lost).
    notify(&format!("READY=1\nMAINPID={}", std::process::id()));
    // First signal: drain. Second signal, or the deadline: abort.
    sys::wait_signal(&sig, None)?;
    tracing::info!("signal received: draining");
    notify("STOPPING=1");
    shared.start_draining();
    wake_all();
    for l in listeners.iter().chain(&tcp) {
        l.stop_accepting();
    }
    let deadline = shared.config.shutdown_timeout;
    let waiter = {
        let shared = shared.clone();
        let wakes: Vec<i32> = mailboxes.iter().map(|m| m.wake_fd()).collect();
        let sig_fd = sig.as_raw_fd();
        std::thread::spawn(move || {
            match sys::wait_signal_fd(sig_fd, Some(deadline)) {
                Ok(true) => tracing::warn!("second signal: exiting now"),
                Ok(false) => tracing::warn!("shutdown deadline reached: aborting"),
                Err(_) => return,
            }
            shared.start_aborting();
            for fd in wakes {
                sys::eventfd_notify(fd);
            }
        })
    };
    let mut exit = Exit::Drained;
    for t in threads {
        match t.join() {
            Ok(Ok(Exit::Drained)) => {}
            Ok(Ok(Exit::Aborted)) => exit = Exit::Aborted,
            Ok(Err(e)) => {
                tracing::error!("ring failed: {e}");
                exit = Exit::Aborted;
            }
            Err(_) => exit = Exit::Aborted,
        }
    }
    tracing::info!(?exit, "stats: {}", stats.line());
    if let Some(t) = &shared.tracer {
        t.flush();
    }
    if exit == Exit::Aborted {
        // Jobs may still run on the pool; do not wait for them.
        std::mem::forget(pool);
        std::process::exit(3);
    }
    drop(waiter); // still blocked on the signalfd; the process exits without it
    drop(wakes);
    Ok(exit)
}

/// The listeners every ring (or the hyper engine's accept loops) shares: sockets passed by
/// systemd socket activation, then the `--unix` socket, bound with its access settings.
pub fn shared_listeners(config: &Config) -> io::Result<Vec<Listener>> {
    let mut listeners: Vec<Listener> = sys::listen_fds()?
        .into_iter()
        .map(Listener::inherited)
        .collect();
    if let Some(p) = &config.unix {
        let l = Listener::bind_unix(p)?;
        l.set_unix_access(config.unix_mode, config.unix_owner.as_deref())
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))?;
        listeners.push(l);
    }
    Ok(listeners)
}
