//! The write side of one connection: a byte buffer every producer (the session reader, the
//! deliverer, `send_mo`, `deliver_raw`) appends encoded PDUs to, and a writer thread that
//! sends whatever has piled up in one `write_all`. So a burst of 50 pipelined submits costs
//! one syscall for the 50 responses, and the writer is woken only when it is actually asleep.
//! Held-back responses (`response_delay`) wait in a queue until their time.

use std::collections::VecDeque;
use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use esmed_smpp::{encode, Pdu, SequenceNumbers};

#[derive(Debug)]
struct Inner {
    buf: Vec<u8>,
    delayed: VecDeque<(Instant, Vec<u8>)>,
    /// Write what is queued, then shut the socket down (after unbind_resp).
    closing: bool,
    /// Stop at once.
    closed: bool,
    writer_asleep: bool,
    sequence: SequenceNumbers,
}

/// A connection's outgoing queue; shared by `Arc`.
#[derive(Debug)]
pub struct Outbox {
    inner: Mutex<Inner>,
    ready: Condvar,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox {
            inner: Mutex::new(Inner {
                buf: Vec::with_capacity(64 * 1024),
                delayed: VecDeque::new(),
                closing: false,
                closed: false,
                writer_asleep: false,
                sequence: SequenceNumbers::new(),
            }),
            ready: Condvar::new(),
        }
    }
}

impl Outbox {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wake(&self, inner: &Inner) {
        if inner.writer_asleep {
            self.ready.notify_one();
        }
    }

    /// Queues already-encoded PDUs.
    pub fn push(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let mut inner = self.lock();
        inner.buf.extend_from_slice(bytes);
        self.wake(&inner);
    }

    /// Queues encoded PDUs to be written at `due`.
    pub fn push_at(&self, due: Instant, bytes: Vec<u8>) {
        let mut inner = self.lock();
        inner.delayed.push_back((due, bytes));
        self.wake(&inner);
    }

    /// Encodes and queues a request the SMSC originates, numbered from this connection's
    /// sequence. Returns the PDU as sent, or `None` when the connection is closing or the
    /// PDU cannot be encoded (logged).
    pub fn send_request(&self, build: impl FnOnce(u32) -> Pdu) -> Option<Pdu> {
        let mut inner = self.lock();
        if inner.closed || inner.closing {
            return None;
        }
        let pdu = build(inner.sequence.next());
        if let Err(e) = encode(&pdu, &mut inner.buf) {
            log::warn!("cannot encode {:?}: {e}", pdu.command_id());
            return None;
        }
        self.wake(&inner);
        Some(pdu)
    }

    /// Write what is queued, then shut the connection down.
    pub fn close_after_flush(&self) {
        let mut inner = self.lock();
        inner.closing = true;
        self.wake(&inner);
    }

    /// Stop writing now.
    pub fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        self.ready.notify_one();
    }

    /// The writer thread's body: runs until the outbox is closed or a write fails.
    pub fn run_writer(&self, mut stream: TcpStream) {
        let mut batch = Vec::with_capacity(64 * 1024);
        while self.next_batch(&mut batch) {
            if let Err(e) = stream.write_all(&batch) {
                log::debug!("write failed: {e}");
                break;
            }
            batch.clear();
        }
        self.close();
        let _ = stream.shutdown(Shutdown::Both);
    }

    /// Waits for bytes to write and swaps them into `batch`; false when it is time to stop.
    fn next_batch(&self, batch: &mut Vec<u8>) -> bool {
        let mut inner = self.lock();
        loop {
            if inner.closed {
                return false;
            }
            let now = Instant::now();
            while inner.delayed.front().is_some_and(|(due, _)| *due <= now) {
                if let Some((_, bytes)) = inner.delayed.pop_front() {
                    inner.buf.extend_from_slice(&bytes);
                }
            }
            if !inner.buf.is_empty() {
                std::mem::swap(&mut inner.buf, batch);
                return true;
            }
            if inner.closing && inner.delayed.is_empty() {
                return false;
            }
            let wait = inner
                .delayed
                .front()
                .map_or(Duration::from_secs(1), |(due, _)| {
                    due.saturating_duration_since(now)
                });
            inner.writer_asleep = true;
            inner = match self.ready.wait_timeout(inner, wait) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
            inner.writer_asleep = false;
        }
    }
}
