//! The write ledger: the bookkeeping that proves a response was queued whole.
//!
//! A [`Ledger`] owns the buffers of a response (head, body — the body is a `Bytes`, never
//! copied). [`Ledger::prepare`] hands out the unsent tail as iovecs for one send operation;
//! [`Ledger::complete`] accounts the kernel's result. When every byte is confirmed it returns a
//! [`Drained`] token, the only way to get one, and the half-close takes that token: shutting down
//! a connection with bytes still owed cannot be written.

use bytes::{Buf, Bytes};
use std::collections::VecDeque;

/// Most iovecs one send carries.
pub const MAX_IOVECS: usize = 4;

/// Proof that a ledger was drained: every byte confirmed, nothing in flight.
/// Only [`Ledger::complete`] makes one.
#[derive(Debug)]
pub struct Drained {
    _private: (),
}

/// What a send completion left.
#[derive(Debug)]
pub enum Sent {
    /// Bytes remain; prepare and submit the next send (the unsent tail).
    More,
    /// Every byte is confirmed.
    Drained(Drained),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerError {
    /// A completion of 0 with bytes left: the peer takes nothing more.
    WriteZero,
    /// A completion larger than what was submitted: a bug; fail the connection.
    Overrun { submitted: usize, got: usize },
    /// A completion with no send in flight: a bug.
    NotInFlight,
}

#[derive(Debug, Default)]
pub struct Ledger {
    /// Unconfirmed buffers, front first; the front is advanced as bytes are confirmed.
    bufs: VecDeque<Bytes>,
    /// All bytes ever pushed.
    total: u64,
    /// Bytes the kernel confirmed. Invariant: `confirmed <= total`.
    confirmed: u64,
    /// Bytes of the send in flight (0 = none). At most one send is in flight.
    in_flight: usize,
    /// Sends completed, and those that took less than submitted.
    sends: u64,
    short_sends: u64,
}

impl Ledger {
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// Appends a buffer to the response.
    pub fn push(&mut self, buf: impl Into<Bytes>) {
        debug_assert_eq!(self.in_flight, 0, "push while a send is in flight");
        let buf = buf.into();
        if buf.is_empty() {
            return;
        }
        self.total += buf.len() as u64;
        self.bufs.push_back(buf);
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn confirmed(&self) -> u64 {
        self.confirmed
    }

    pub fn sends(&self) -> u64 {
        self.sends
    }

    pub fn short_sends(&self) -> u64 {
        self.short_sends
    }

    pub fn in_flight(&self) -> bool {
        self.in_flight > 0
    }

    /// Bytes not yet confirmed.
    pub fn owed(&self) -> u64 {
        self.total - self.confirmed
    }

    /// Fills `iov` with the unsent tail (up to [`MAX_IOVECS`] buffers) and marks it in flight.
    /// Returns the number of iovecs filled (0 when nothing is owed).
    ///
    /// The iovecs point into buffers this ledger owns; they stay valid until the matching
    /// [`Ledger::complete`], because buffers are only released there.
    pub fn prepare(&mut self, iov: &mut [libc::iovec; MAX_IOVECS]) -> usize {
        assert_eq!(self.in_flight, 0, "at most one send in flight");
        let mut n = 0;
        for (slot, buf) in iov.iter_mut().zip(self.bufs.iter()) {
            *slot = libc::iovec {
                iov_base: buf.as_ptr() as *mut libc::c_void,
                iov_len: buf.len(),
            };
            self.in_flight += buf.len();
            n += 1;
        }
        n
    }

    /// Accounts a send completion of `n` bytes (the kernel's non-negative result).
    pub fn complete(&mut self, n: usize) -> Result<Sent, LedgerError> {
        let submitted = self.in_flight;
        if submitted == 0 {
            return Err(LedgerError::NotInFlight);
        }
        self.in_flight = 0;
        if n > submitted {
            return Err(LedgerError::Overrun { submitted, got: n });
        }
        self.sends += 1;
        if n == 0 {
            return Err(LedgerError::WriteZero);
        }
        if n < submitted {
            self.short_sends += 1;
        }
        self.confirmed += n as u64;
        debug_assert!(self.confirmed <= self.total);
        let mut left = n;
        while left > 0 {
            let front = self
                .bufs
                .front_mut()
                .expect("confirmed bytes beyond buffers");
            let take = left.min(front.len());
            front.advance(take);
            left -= take;
            if front.is_empty() {
                self.bufs.pop_front();
            }
        }
        if self.confirmed == self.total {
            debug_assert!(self.bufs.is_empty());
            Ok(Sent::Drained(Drained { _private: () }))
        } else {
            Ok(Sent::More)
        }
    }

    /// An empty ledger (nothing to send) is trivially drained.
    pub fn drained_if_empty(&self) -> Option<Drained> {
        (self.total == self.confirmed && self.in_flight == 0).then_some(Drained { _private: () })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn iov() -> [libc::iovec; MAX_IOVECS] {
        [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; MAX_IOVECS]
    }

    /// Simulates a peer that accepts a random number of bytes per send.
    #[test]
    fn random_short_completions_sum_to_total_and_drain_once() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..500 {
            let mut l = Ledger::new();
            let mut expect = Vec::new();
            for _ in 0..rng.random_range(1..6) {
                let len = rng.random_range(1..5000);
                let b: Vec<u8> = (0..len).map(|_| rng.random()).collect();
                expect.extend_from_slice(&b);
                l.push(b);
            }
            let mut got = Vec::new();
            let mut drained = 0;
            loop {
                let mut v = iov();
                let n = l.prepare(&mut v);
                assert!(n > 0);
                let offered: usize = v[..n].iter().map(|v| v.iov_len).sum();
                let take = rng.random_range(1..=offered);
                // What the kernel would have copied: the first `take` bytes of the iovecs.
                let mut left = take;
                for v in &v[..n] {
                    let k = left.min(v.iov_len);
                    // SAFETY: the iovec points into a buffer the ledger owns until `complete`.
                    got.extend_from_slice(unsafe {
                        std::slice::from_raw_parts(v.iov_base as *const u8, k)
                    });
                    left -= k;
                }
                match l.complete(take).unwrap() {
                    Sent::Drained(_) => {
                        drained += 1;
                        break;
                    }
                    Sent::More => assert!(l.confirmed() < l.total()),
                }
            }
            assert_eq!(drained, 1);
            assert_eq!(got, expect);
            assert_eq!(l.confirmed(), l.total());
            assert_eq!(l.prepare(&mut iov()), 0);
        }
    }

    #[test]
    fn write_zero_and_overrun_fail() {
        let mut l = Ledger::new();
        l.push(vec![1u8; 10]);
        l.prepare(&mut iov());
        assert_eq!(l.complete(0).unwrap_err(), LedgerError::WriteZero);
        l.prepare(&mut iov());
        assert_eq!(
            l.complete(11).unwrap_err(),
            LedgerError::Overrun {
                submitted: 10,
                got: 11
            }
        );
        assert_eq!(l.complete(1).unwrap_err(), LedgerError::NotInFlight);
    }

    /// A socket that accepts N bytes and then stalls never gets a `Drained`, so no shutdown;
    /// when it resumes, exactly one `Drained` arrives, after the last byte.
    #[test]
    fn stalled_socket_never_drains_early() {
        let mut l = Ledger::new();
        l.push(vec![0u8; 100]);
        l.push(Bytes::from(vec![1u8; 1 << 20]));
        let mut accepted = 0u64;
        // The socket takes 4096 bytes, then stalls (in-flight send pending): no token exists.
        l.prepare(&mut iov());
        assert!(matches!(l.complete(4096), Ok(Sent::More)));
        accepted += 4096;
        assert!(l.drained_if_empty().is_none());
        // It resumes and takes the rest in uneven pieces.
        let mut tokens = 0;
        while l.owed() > 0 {
            l.prepare(&mut iov());
            let n = (l.owed() as usize).min(65_000);
            accepted += n as u64;
            if let Sent::Drained(_) = l.complete(n).unwrap() {
                tokens += 1;
                assert_eq!(accepted, l.total());
            }
        }
        assert_eq!(tokens, 1);
    }
}
