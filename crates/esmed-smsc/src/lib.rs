//! A test SMSC: a real SMPP 3.4 server over TCP built on the project's own codec, used by the
//! end-to-end tests (in process, through [`SmscHandle`]), by the benchmark and by users (the
//! `esmed-smsc` binary). It binds with configured credentials, answers submit_sm with unique
//! ids, sends delivery receipts and MO messages, injects faults, and journals every PDU it
//! receives with its arrival time. Not a real SMSC: nothing is routed anywhere.
//!
//! Optionally serves TLS (`SmscConfig::tls`): see `tls` for the pump that terminates it.
//!
//! Threads: one accept loop; per connection a reader (`session`) and a writer (`outbox`,
//! which coalesces everything queued into one write); one deliverer that sends receipts and
//! MO and resends unanswered ones. `SmscHandle::stop` (or dropping the handle) closes every
//! socket and joins every thread.
//!
//! ```no_run
//! use esmed_smsc::{Smsc, SmscConfig};
//! let smsc = Smsc::start(SmscConfig::default()).unwrap();
//! println!("listening on {}", smsc.addr());
//! ```

pub mod config;
mod deliverer;
pub mod faults;
pub mod journal;
mod messages;
mod outbox;
pub mod receipt_text;
mod session;
mod tls;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

pub use config::{
    Faults, IdFormat, MoMessage, ReceiptConfig, ReceiptIdFormat, ReceiptMode, SmscConfig, SmscTls,
};
pub use journal::{Received, Sent};

use deliverer::{Deliverer, JobKind};
use esmed_smpp::receipt::MessageState;
use esmed_smpp::{Body, CommandId};
use faults::FaultState;
use journal::Journal;
use messages::MessageStore;
use outbox::Outbox;
use session::Session;

/// How a session is bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BindKind {
    Transmitter,
    Receiver,
    Transceiver,
}

impl BindKind {
    /// May get deliver_sm.
    pub fn receives(self) -> bool {
        matches!(self, BindKind::Receiver | BindKind::Transceiver)
    }

    /// May submit.
    pub fn submits(self) -> bool {
        matches!(self, BindKind::Transmitter | BindKind::Transceiver)
    }
}

/// Why a handle operation could not be done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmscError {
    /// No connection (or, for receipts and MO, no receiver) to send to.
    NoConnection,
    /// `send_receipt` for an id the SMSC never gave or has forgotten.
    UnknownMessage(String),
}

impl fmt::Display for SmscError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SmscError::NoConnection => f.write_str("no connection to send to"),
            SmscError::UnknownMessage(id) => write!(f, "unknown message id {id:?}"),
        }
    }
}

impl std::error::Error for SmscError {}

/// Counters for logs and the binary's stats line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SmscStats {
    pub connections: u64,
    pub bound: usize,
    pub submits: u64,
    /// deliver_sm sent and not yet acknowledged (or waiting for a receiver).
    pub outstanding_delivers: usize,
}

struct SessionEntry {
    bind: Option<BindKind>,
    bind_order: u64,
    outbox: Arc<Outbox>,
    stream: TcpStream,
}

/// What the readers change, under one lock (taken once per submit).
struct State {
    faults: FaultState,
    next_id: u64,
    submits: u64,
    sessions: HashMap<u64, SessionEntry>,
    bind_order: u64,
    messages: MessageStore,
}

/// Shared by all threads and the handle.
struct Shared {
    config: SmscConfig,
    /// Set when the SMSC serves TLS.
    tls: Option<Arc<rustls::ServerConfig>>,
    state: Mutex<State>,
    journal: Journal,
    deliverer: Deliverer,
    stopping: AtomicBool,
    connections: AtomicU64,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Shared {
    fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn journal_wanted(&self) -> bool {
        self.journal.in_memory() || self.config.journal_file.is_some()
    }

    /// The most recently bound receiver or transceiver.
    fn pick_receiver(&self) -> Option<(u64, Arc<Outbox>)> {
        let state = self.lock_state();
        state
            .sessions
            .iter()
            .filter(|(_, s)| s.bind.is_some_and(BindKind::receives))
            .max_by_key(|(_, s)| s.bind_order)
            .map(|(id, s)| (*id, Arc::clone(&s.outbox)))
    }

    fn spawn(&self, name: &str, body: impl FnOnce() + Send + 'static) -> io::Result<()> {
        let handle = thread::Builder::new().name(name.to_string()).spawn(body)?;
        let mut threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        // Finished connections need no join; forgetting them keeps a soak run bounded.
        threads.retain(|t| !t.is_finished());
        threads.push(handle);
        Ok(())
    }
}

/// Starts test SMSCs.
pub struct Smsc;

impl Smsc {
    /// Binds the listener and starts the accept and deliverer threads.
    pub fn start(config: SmscConfig) -> io::Result<SmscHandle> {
        let tls = match &config.tls {
            Some(tls) => Some(
                tls::server_config(
                    &tls.cert_chain_pem,
                    &tls.key_pem,
                    tls.client_ca_pem.as_deref(),
                )
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
            ),
            None => None,
        };
        let listener = TcpListener::bind(config.bind_addr)?;
        let addr = listener.local_addr()?;
        let journal = Journal::new(config.journal_in_memory, config.journal_file.as_deref())?;
        let state = State {
            faults: FaultState::new(config.faults.clone()),
            next_id: config.first_message_id,
            submits: 0,
            sessions: HashMap::new(),
            bind_order: 0,
            messages: MessageStore::new(config.remembered_messages, config.id_format),
        };
        let shared = Arc::new(Shared {
            config,
            tls,
            state: Mutex::new(state),
            journal,
            deliverer: Deliverer::default(),
            stopping: AtomicBool::new(false),
            connections: AtomicU64::new(0),
            threads: Mutex::new(Vec::new()),
        });
        let for_deliverer = Arc::clone(&shared);
        let deliverer = thread::Builder::new()
            .name("smsc-deliverer".into())
            .spawn(move || for_deliverer.deliverer.run(&for_deliverer))?;
        let for_accept = Arc::clone(&shared);
        let accept = thread::Builder::new()
            .name("smsc-accept".into())
            .spawn(move || accept_loop(&for_accept, &listener))?;
        log::info!("test SMSC listening on {addr}");
        Ok(SmscHandle {
            shared,
            addr,
            accept: Some(accept),
            deliverer: Some(deliverer),
        })
    }
}

fn accept_loop(shared: &Arc<Shared>, listener: &TcpListener) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                log::warn!("accept: {e}");
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let started = match &shared.tls {
            Some(config) => tls::start_tls_connection(shared, stream, Arc::clone(config)),
            None => {
                let peer = stream
                    .peer_addr()
                    .map_or_else(|_| "?".into(), |a| a.to_string());
                start_connection(shared, stream, &peer)
            }
        };
        if let Err(e) = started {
            log::warn!("cannot start a connection: {e}");
        }
    }
}

/// Runs the SMPP session of a plain connection (for TLS: the session end of the pump's pair).
fn start_connection(shared: &Arc<Shared>, stream: TcpStream, peer: &str) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let connection = shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
    log::info!("connection {connection} from {peer}");
    let outbox = Arc::new(Outbox::default());
    shared.lock_state().sessions.insert(
        connection,
        SessionEntry {
            bind: None,
            bind_order: 0,
            outbox: Arc::clone(&outbox),
            stream: stream.try_clone()?,
        },
    );
    let writer_stream = stream.try_clone()?;
    let writer_outbox = Arc::clone(&outbox);
    shared.spawn(&format!("smsc-writer-{connection}"), move || {
        writer_outbox.run_writer(writer_stream)
    })?;
    let session = Session::new(Arc::clone(shared), connection, stream, outbox);
    shared.spawn(&format!("smsc-reader-{connection}"), move || session.run())
}

/// A running test SMSC. Dropping it stops it.
pub struct SmscHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
    deliverer: Option<JoinHandle<()>>,
}

impl SmscHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every PDU received so far, in arrival order per connection (empty when the in-memory
    /// journal is off).
    pub fn received(&self) -> Vec<Received> {
        self.shared.journal.received()
    }

    fn received_with(&self, id: CommandId) -> Vec<Received> {
        let mut all = self.received();
        all.retain(|r| r.pdu.command_id() == id);
        all
    }

    pub fn submits(&self) -> Vec<Received> {
        self.received_with(CommandId::SubmitSm)
    }

    /// bind_transmitter, bind_receiver and bind_transceiver requests.
    pub fn binds(&self) -> Vec<Received> {
        let mut all = self.received();
        all.retain(|r| {
            matches!(
                r.pdu.body,
                Body::BindTransmitter(_) | Body::BindReceiver(_) | Body::BindTransceiver(_)
            )
        });
        all
    }

    pub fn unbinds(&self) -> Vec<Received> {
        self.received_with(CommandId::Unbind)
    }

    /// deliver_sm_resp received, with their arrival times.
    pub fn deliver_sm_resps(&self) -> Vec<Received> {
        self.received_with(CommandId::DeliverSmResp)
    }

    /// deliver_sm sent (receipts, MO, resends).
    pub fn sent(&self) -> Vec<Sent> {
        self.shared.journal.sent()
    }

    /// submit_sm received, counted even when the journal is off.
    pub fn submit_count(&self) -> u64 {
        self.shared.lock_state().submits
    }

    pub fn stats(&self) -> SmscStats {
        let state = self.shared.lock_state();
        SmscStats {
            connections: self.shared.connections.load(Ordering::SeqCst),
            bound: state.sessions.values().filter(|s| s.bind.is_some()).count(),
            submits: state.submits,
            outstanding_delivers: self.shared.deliverer.outstanding(),
        }
    }

    /// Bound sessions: (connection, how).
    pub fn bound_sessions(&self) -> Vec<(u64, BindKind)> {
        let state = self.shared.lock_state();
        let mut bound: Vec<_> = state
            .sessions
            .iter()
            .filter_map(|(id, s)| s.bind.map(|b| (*id, b)))
            .collect();
        bound.sort_unstable();
        bound
    }

    /// Queues an MO deliver_sm for the current (or next) receiver or transceiver.
    pub fn send_mo(&self, mo: MoMessage) {
        self.shared
            .deliverer
            .schedule(vec![(Instant::now(), JobKind::Mo(mo))]);
    }

    /// Sends a receipt now for a message the SMSC accepted, in any state (for tests of late
    /// or contradicting receipts), besides the ones the receipt mode sends.
    pub fn send_receipt(&self, message_id: &str, state: MessageState) -> Result<(), SmscError> {
        let message = self
            .shared
            .lock_state()
            .messages
            .get(message_id)
            .cloned()
            .ok_or_else(|| SmscError::UnknownMessage(message_id.to_string()))?;
        let job = JobKind::Receipt { message, state };
        self.shared.deliverer.schedule(vec![(Instant::now(), job)]);
        Ok(())
    }

    /// Writes raw bytes to the most recent receiver (or, if none is bound, the most recent
    /// connection): for hostile-SMSC tests. Nothing is resent.
    pub fn deliver_raw(&self, bytes: &[u8]) -> Result<(), SmscError> {
        let outbox = match self.shared.pick_receiver() {
            Some((_, outbox)) => outbox,
            None => {
                let state = self.shared.lock_state();
                let newest = state.sessions.iter().max_by_key(|(id, _)| **id);
                let (_, entry) = newest.ok_or(SmscError::NoConnection)?;
                Arc::clone(&entry.outbox)
            }
        };
        outbox.push(bytes);
        Ok(())
    }

    /// Waits until `done` holds for the received PDUs; false on timeout.
    pub fn wait_for(&self, timeout: Duration, mut done: impl FnMut(&[Received]) -> bool) -> bool {
        self.shared
            .journal
            .wait_for(timeout, |records| done(&records.received))
    }

    /// Waits until `done` holds for the sent deliver_sm; false on timeout.
    pub fn wait_for_sent(&self, timeout: Duration, mut done: impl FnMut(&[Sent]) -> bool) -> bool {
        self.shared
            .journal
            .wait_for(timeout, |records| done(&records.sent))
    }

    /// Waits until `n` submit_sm have arrived.
    pub fn wait_for_submits(&self, n: usize, timeout: Duration) -> bool {
        self.wait_for_count(n, timeout, CommandId::SubmitSm)
    }

    /// Waits until `n` PDUs with this command id have arrived.
    pub fn wait_for_count(&self, n: usize, timeout: Duration, id: CommandId) -> bool {
        self.wait_for(timeout, |all| {
            all.iter().filter(|r| r.pdu.command_id() == id).count() >= n
        })
    }

    /// Waits until at least `n` sessions are bound.
    pub fn wait_for_bound(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.bound_sessions().len() >= n {
                return true;
            }
            thread::sleep(Duration::from_millis(5));
        }
        self.bound_sessions().len() >= n
    }

    /// Replaces the faults; their counters start again from zero.
    pub fn set_faults(&self, faults: Faults) {
        self.shared.lock_state().faults = FaultState::new(faults);
    }

    /// Cuts every connection (no unbind), as a crashing SMSC would.
    pub fn disconnect_all(&self) {
        let state = self.shared.lock_state();
        for entry in state.sessions.values() {
            entry.outbox.close();
            let _ = entry.stream.shutdown(Shutdown::Both);
        }
    }

    /// Closes the listener and every connection and joins every thread. Idempotent.
    pub fn stop(&mut self) {
        if self.shared.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        // Wake the blocked accept() with a connection of our own.
        let mut wake_addr = self.addr;
        if wake_addr.ip().is_unspecified() {
            wake_addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let _ = TcpStream::connect_timeout(&wake_addr, Duration::from_secs(1));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        self.disconnect_all();
        self.shared.deliverer.stop();
        if let Some(deliverer) = self.deliverer.take() {
            let _ = deliverer.join();
        }
        let threads = std::mem::take(
            &mut *self
                .shared
                .threads
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for thread in threads {
            let _ = thread.join();
        }
        log::info!("test SMSC on {} stopped", self.addr);
    }
}

impl Drop for SmscHandle {
    fn drop(&mut self) {
        self.stop();
    }
}
