//! The CPU pool: image jobs run here, never on a ring thread. A bounded queue refuses work
//! when full (the caller answers 503 busy); finished jobs land in a mailbox and wake the ring
//! through an eventfd.

use crate::io::sys;
use crate::respond::Response;
use crate::stats::Stats;
use crossbeam_channel::{bounded, Sender, TrySendError};
use std::os::fd::RawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Work for the pool; returns the response to send.
pub type Work = Box<dyn FnOnce() -> Response + Send>;

/// Where a finished job's response goes.
pub type Reply = Box<dyn FnOnce(Response) + Send>;

struct Task {
    work: Work,
    reply: Reply,
    /// The client's socket, open until the response is posted (its connection waits for it):
    /// a job whose client has gone is not run.
    peer: Option<RawFd>,
}

/// Where finished jobs wait for their ring.
pub struct Mailbox {
    done: Mutex<Vec<(u64, Response)>>,
    wake_fd: RawFd,
}

impl Mailbox {
    /// `wake_fd` is an eventfd the ring reads; it must outlive the pool's use of the mailbox.
    pub fn new(wake_fd: RawFd) -> Arc<Mailbox> {
        Arc::new(Mailbox {
            done: Mutex::new(Vec::new()),
            wake_fd,
        })
    }

    /// The eventfd this mailbox wakes.
    pub fn wake_fd(&self) -> RawFd {
        self.wake_fd
    }

    fn post(&self, key: u64, r: Response) {
        self.done
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((key, r));
        sys::eventfd_notify(self.wake_fd);
    }

    /// Takes every finished job.
    pub fn take(&self) -> Vec<(u64, Response)> {
        std::mem::take(&mut *self.done.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// The answer for a job skipped because its client had gone (it is never delivered: the
/// connection's send fails and is counted like any other).
fn cancelled() -> Response {
    Response::text(503, "client closed the connection before the job started").closing()
}

pub struct Pool {
    tx: Option<Sender<Task>>,
    stats: Arc<Stats>,
    threads: Vec<JoinHandle<()>>,
}

/// The queue was full; the job was not taken.
#[derive(Debug)]
pub struct Busy;

impl Pool {
    pub fn new(
        threads: usize,
        queue_depth: usize,
        stats: Arc<Stats>,
        on_panic: fn() -> Response,
    ) -> Pool {
        let (tx, rx) = bounded::<Task>(queue_depth);
        let threads = (0..threads.max(1))
            .map(|i| {
                let rx = rx.clone();
                let stats = stats.clone();
                std::thread::Builder::new()
                    .name(format!("lastbyte-cpu-{i}"))
                    .spawn(move || {
                        for task in rx {
                            Stats::dec(&stats.jobs_queued);
                            if task.peer.is_some_and(sys::peer_gone) {
                                Stats::inc(&stats.jobs_cancelled);
                                (task.reply)(cancelled());
                                continue;
                            }
                            Stats::inc(&stats.jobs);
                            let r =
                                catch_unwind(AssertUnwindSafe(task.work)).unwrap_or_else(|_| {
                                    Stats::inc(&stats.jobs_panicked);
                                    on_panic()
                                });
                            (task.reply)(r);
                        }
                    })
                    .expect("spawn CPU pool thread")
            })
            .collect();
        Pool {
            tx: Some(tx),
            stats,
            threads,
        }
    }

    /// Queues `work`; its response is posted to `mailbox` under `key`.
    pub fn try_submit(
        &self,
        key: u64,
        mailbox: &Arc<Mailbox>,
        work: Work,
        peer: Option<RawFd>,
    ) -> Result<(), Busy> {
        let mailbox = mailbox.clone();
        self.try_submit_with(work, peer, Box::new(move |r| mailbox.post(key, r)))
    }

    /// Queues `work`; `reply` gets its response (on a pool thread).
    pub fn try_submit_with(
        &self,
        work: Work,
        peer: Option<RawFd>,
        reply: Reply,
    ) -> Result<(), Busy> {
        let task = Task { work, reply, peer };
        // Counted before the send so a fast worker never decrements below zero.
        Stats::inc(&self.stats.jobs_queued);
        match self.tx.as_ref().map(|tx| tx.try_send(task)) {
            Some(Ok(())) => Ok(()),
            Some(Err(TrySendError::Full(_))) | Some(Err(TrySendError::Disconnected(_))) | None => {
                Stats::dec(&self.stats.jobs_queued);
                Err(Busy)
            }
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.tx.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
