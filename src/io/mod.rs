//! I/O: the io_uring loop, the write ledger, listeners and raw syscalls.
//!
//! - [`ledger`]: pure bookkeeping of a response's bytes and the [`ledger::Drained`] proof.
//! - [`ring`]: the only code that builds SQEs and reads CQEs.
//! - [`listener`]: Unix and TCP listening sockets.
//! - [`sys`]: the only place with raw `libc` calls.

pub mod ledger;
pub mod listener;
pub mod ring;
pub mod sys;
