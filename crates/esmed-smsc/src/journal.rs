//! The SMSC's record of what it received and what deliver_sm it sent, with arrival stamps,
//! so tests can assert on exactly what went over the wire and in which order, and can wait
//! for something to happen. Also the optional JSON-lines file of received submit_sm that the
//! benchmark reads for its latency figures.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use esmed_smpp::json::push_json_string;
use esmed_smpp::{push_hex, Body, Pdu};

/// One PDU as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// When its last octet was read.
    pub at: SystemTime,
    pub pdu: Pdu,
    /// The frame as it came, header included.
    pub raw: Vec<u8>,
    /// Which connection (numbered from 1 in accept order).
    pub connection: u64,
}

/// One deliver_sm the SMSC sent (receipts, MO, resends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub at: SystemTime,
    pub pdu: Pdu,
    pub connection: u64,
}

#[derive(Debug, Default)]
pub struct Records {
    pub received: Vec<Received>,
    pub sent: Vec<Sent>,
}

/// The in-memory journal (when enabled) and the file journal (when configured).
#[derive(Debug)]
pub struct Journal {
    in_memory: bool,
    records: Mutex<Records>,
    changed: Condvar,
    file: Option<Mutex<BufWriter<File>>>,
}

impl Journal {
    pub fn new(in_memory: bool, file: Option<&Path>) -> io::Result<Self> {
        let file = match file {
            Some(path) => Some(Mutex::new(BufWriter::new(File::create(path)?))),
            None => None,
        };
        Ok(Journal {
            in_memory,
            records: Mutex::new(Records::default()),
            changed: Condvar::new(),
            file,
        })
    }

    pub fn in_memory(&self) -> bool {
        self.in_memory
    }

    fn lock(&self) -> MutexGuard<'_, Records> {
        // A panicking test thread must not take the journal down with it.
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a batch of received PDUs and wakes waiters.
    pub fn record_received(&self, batch: Vec<Received>) {
        if batch.is_empty() {
            return;
        }
        self.write_file_lines(&batch);
        if self.in_memory {
            self.lock().received.extend(batch);
        }
        self.changed.notify_all();
    }

    pub fn record_sent(&self, sent: Sent) {
        if self.in_memory {
            self.lock().sent.push(sent);
            self.changed.notify_all();
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.lock().sent.clone()
    }

    /// Waits until `done` holds for the records or `timeout` passes; returns whether it held.
    pub fn wait_for(&self, timeout: Duration, mut done: impl FnMut(&Records) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut records = self.lock();
        loop {
            if done(&records) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            // Short slices so a change recorded by `sent` without notify is also seen.
            let slice = (deadline - now).min(Duration::from_millis(50));
            records = match self.changed.wait_timeout(records, slice) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// One JSON line per submit_sm: arrival µs since the epoch, connection, sequence number,
    /// destination and the short_message in hex. Built in one buffer per batch: at 100k
    /// submits a second, a few allocations per line are a visible share of the SMSC's CPU.
    fn write_file_lines(&self, batch: &[Received]) {
        use std::fmt::Write as _;
        let Some(file) = &self.file else { return };
        let mut lines = String::with_capacity(batch.len() * 160);
        for received in batch {
            let Body::SubmitSm(sm) = &received.pdu.body else {
                continue;
            };
            let micros = received
                .at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_micros());
            let _ = write!(
                lines,
                "{{\"at_us\":{micros},\"connection\":{},\"seq\":{},\"destination\":",
                received.connection, received.pdu.sequence_number,
            );
            push_json_string(&mut lines, &sm.destination.addr.to_string_lossy());
            lines.push_str(",\"text_hex\":\"");
            push_hex(&mut lines, &sm.short_message);
            lines.push_str("\"}\n");
        }
        let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = file.write_all(lines.as_bytes()).and_then(|()| file.flush()) {
            log::warn!("journal file: {e}");
        }
    }
}
