//! In-process counters and gauges, updated by the rings and the pool, logged at shutdown and
//! exported by `/metrics` (see [`crate::metrics`]).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        #[derive(Debug, Default)]
        pub struct Stats {
            $($(#[$doc])* pub $name: AtomicU64,)*
        }

        impl Stats {
            /// `name=value` pairs of every counter, in declaration order.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.load(Relaxed)),)*]
            }
        }
    };
}

counters! {
    /// Connections accepted.
    connections,
    /// Requests whose head was parsed.
    requests,
    /// Responses whose every byte the kernel confirmed.
    responses_complete,
    /// Responses that failed before every byte was confirmed (peer gone, WriteZero, …).
    responses_failed,
    /// Response bytes confirmed by send completions.
    bytes_sent,
    /// Request body bytes read (decoded).
    bytes_received,
    /// Send operations completed.
    sends,
    /// Sends that took fewer bytes than submitted (the tail was resubmitted).
    short_sends,
    /// Send completions of 0 with bytes left.
    write_zero,
    /// EPIPE on send.
    epipe,
    /// ECONNRESET on send or recv.
    econnreset,
    /// Other send errors.
    send_errors,
    /// shutdown(SHUT_WR) issued (always after a drained ledger).
    half_closes,
    /// Request bytes read and discarded after a half-close.
    linger_bytes,
    /// Lingering closes ended by the deadline or the byte bound instead of EOF.
    linger_cut,
    /// Unread request-body bytes discarded to keep a connection alive.
    discarded_bytes,
    /// Image jobs run, refused for a full queue, and that panicked.
    jobs,
    jobs_busy,
    jobs_panicked,
    /// Image jobs not run because their client had gone while they waited in the queue.
    jobs_cancelled,
    /// Connections closed by the idle (keep-alive) timeout.
    idle_timeouts,
    /// Requests whose head did not complete within --header-timeout (408).
    header_timeouts,
    /// Requests whose body made no progress within --body-timeout (408).
    body_timeouts,
    /// Responses aborted because the peer read nothing for --write-stall-timeout.
    write_stall_aborts,
    /// Connections refused (503) because --max-connections were open.
    connections_refused,
    /// Connections aborted by the shutdown deadline.
    shutdown_aborts,
    /// Responses with status >= 400.
    error_responses,
    /// Request bytes read from sockets (heads and bodies, before decoding).
    bytes_read,
    /// Gauge: requests parsed and not yet answered (or failed).
    requests_in_flight,
    /// Gauge: image jobs waiting for a CPU thread.
    jobs_queued,
    /// `--confirm delivered`: send queues seen empty before the half-close.
    confirm_delivered,
    /// `--confirm delivered`: still not empty at --confirm-timeout (half-closed anyway).
    confirm_timeouts,
    /// `--confirm delivered`: the queue emptied because the peer reset or left unread.
    confirm_failed,
}

impl Stats {
    /// Counters that go up and down (exported as gauges).
    pub fn is_gauge(name: &str) -> bool {
        matches!(name, "requests_in_flight" | "jobs_queued")
    }

    pub fn dec(counter: &AtomicU64) {
        counter.fetch_sub(1, Relaxed);
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    /// One line: `connections=3 requests=5 …`.
    pub fn line(&self) -> String {
        self.snapshot()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}
