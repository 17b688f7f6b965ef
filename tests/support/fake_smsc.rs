//! A scripted SMSC for the session fault tests, over plain TCP or TLS on 127.0.0.1. It binds
//! every ESME, answers enquire_link, unbind and submit_sm the usual way unless the test's
//! script answers otherwise (stray responses, generic_nacks, silence), and can stop reading
//! its open connections while keeping them open. Its sockets have a small receive buffer, so
//! an ESME writing to a connection it no longer reads soon finds its own writes blocked.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use esmed::session::transport::{ReadHalf, Transport, WriteHalf};
use esmed::smpp::pdu::{BindResp, MessageIdResp};
use esmed::smpp::{decode, encode_to_vec, Body, FrameBuffer, Pdu};
use rustls::ServerConfig;

/// A request the SMSC received, as the script sees it.
pub struct Request<'a> {
    /// Which connection it came on: 1 for the first accepted, 2 for the next...
    pub connection: usize,
    pub pdu: &'a Pdu,
    /// For a submit_sm, how many submit_sm to the same destination came before it.
    pub seen_before: usize,
}

/// What the SMSC sends for a request: `Some(pdus)` (maybe none at all), or `None` for the
/// usual answer.
pub type Script = dyn Fn(&Request) -> Option<Vec<Pdu>> + Send + Sync;

/// One submit_sm received.
#[derive(Clone, Debug)]
pub struct Submit {
    pub connection: usize,
    pub sequence_number: u32,
    pub destination: String,
}

#[derive(Default)]
struct State {
    connections: usize,
    binds: usize,
    submits: Vec<Submit>,
    seen: HashMap<String, usize>,
    /// Connections that read nothing more.
    stalled: HashSet<usize>,
}

pub struct FakeSmsc {
    port: u16,
    state: Arc<Mutex<State>>,
}

/// The receive buffer the fake asks for (the kernel doubles it and keeps a floor of its own).
const RECEIVE_BUFFER: usize = 4096;

impl FakeSmsc {
    /// Starts listening; `tls` serves TLS with that configuration.
    pub fn start(tls: Option<Arc<ServerConfig>>, script: Box<Script>) -> FakeSmsc {
        let listener = small_buffer_listener().expect("listen on 127.0.0.1");
        let port = listener.local_addr().expect("local address").port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        let script: Arc<Script> = Arc::from(script);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let connection = {
                    let mut state = lock(&shared);
                    state.connections += 1;
                    state.connections
                };
                let (state, script, tls) = (Arc::clone(&shared), Arc::clone(&script), tls.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, tls, connection, &state, &*script);
                });
            }
        });
        FakeSmsc { port, state }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Successful binds so far.
    pub fn binds(&self) -> usize {
        lock(&self.state).binds
    }

    pub fn submits(&self) -> Vec<Submit> {
        lock(&self.state).submits.clone()
    }

    /// Bytes the ESME has written to this SMSC that it has not read (the send queues of the
    /// connections to its port, from /proc/net/tcp).
    pub fn unread_bytes(&self) -> u64 {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        let port = format!(":{:04X}", self.port);
        table
            .lines()
            .skip(1)
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let (remote, queues) = (fields.get(2)?, fields.get(4)?);
                let tx_queue = queues.split(':').next()?;
                remote
                    .ends_with(&port)
                    .then(|| u64::from_str_radix(tx_queue, 16).ok())?
            })
            .sum()
    }

    /// Every connection open now reads nothing more (and stays open); later ones read.
    pub fn stall_open_connections(&self) {
        let mut state = lock(&self.state);
        let open = state.connections;
        state.stalled.extend(1..=open);
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

fn small_buffer_listener() -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    // Set before listen(): accepted sockets inherit it, and the window is scaled for it.
    socket.set_recv_buffer_size(RECEIVE_BUFFER)?;
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    socket.listen(16)?;
    Ok(socket.into())
}

fn serve(
    stream: TcpStream,
    tls: Option<Arc<ServerConfig>>,
    connection: usize,
    state: &Mutex<State>,
    script: &Script,
) -> io::Result<()> {
    let transport = match tls {
        Some(config) => {
            let deadline = Instant::now() + Duration::from_secs(10);
            Transport::server(stream, config, deadline).map_err(io::Error::other)?
        }
        None => Transport::plain(stream)?,
    };
    // Short reads, so that a stall asked for while waiting takes effect soon.
    transport.set_read_timeout(Some(Duration::from_millis(50)))?;
    let (mut read, mut write) = transport.split();
    let mut buffer = FrameBuffer::new(64 * 1024);
    loop {
        if lock(state).stalled.contains(&connection) {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        while let Some(frame) = buffer.next_frame().map_err(io::Error::other)? {
            let pdu = decode(frame).map_err(io::Error::other)?;
            if !answer(&pdu, connection, state, script, &mut write)? {
                let _ = write.shutdown(Shutdown::Both);
                return Ok(());
            }
        }
        if !read_some(&mut buffer, &mut read)? {
            return Ok(());
        }
    }
}

/// Reads what has arrived; false at the end of the stream.
fn read_some(buffer: &mut FrameBuffer, read: &mut ReadHalf) -> io::Result<bool> {
    match buffer.read_from(read) {
        Ok(0) => Ok(false),
        Ok(_) => Ok(true),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
            ) =>
        {
            Ok(true)
        }
        Err(e) => Err(e),
    }
}

/// Answers one request; false when the connection should close (after an unbind).
fn answer(
    pdu: &Pdu,
    connection: usize,
    state: &Mutex<State>,
    script: &Script,
    write: &mut WriteHalf,
) -> io::Result<bool> {
    let seen_before = note(pdu, connection, state);
    let request = Request {
        connection,
        pdu,
        seen_before,
    };
    let answers = script(&request).unwrap_or_else(|| usual_answer(pdu).into_iter().collect());
    for answer in &answers {
        if matches!(
            answer.body,
            Body::BindTransmitterResp(_) | Body::BindReceiverResp(_) | Body::BindTransceiverResp(_)
        ) && answer.command_status.0 == 0
        {
            lock(state).binds += 1;
        }
        let bytes = encode_to_vec(answer).map_err(io::Error::other)?;
        io::Write::write_all(write, &bytes)?;
    }
    Ok(!matches!(pdu.body, Body::Unbind))
}

/// Records a submit_sm; returns how many to its destination came before it.
fn note(pdu: &Pdu, connection: usize, state: &Mutex<State>) -> usize {
    let Body::SubmitSm(sm) = &pdu.body else {
        return 0;
    };
    let destination = sm.destination.addr.to_string();
    let mut state = lock(state);
    state.submits.push(Submit {
        connection,
        sequence_number: pdu.sequence_number,
        destination: destination.clone(),
    });
    let seen = state.seen.entry(destination).or_insert(0);
    *seen += 1;
    *seen - 1
}

/// What a well-behaved SMSC answers.
pub fn usual_answer(pdu: &Pdu) -> Option<Pdu> {
    let seq = pdu.sequence_number;
    let bind_resp = || BindResp {
        system_id: "fake".try_into().unwrap(),
        ..BindResp::default()
    };
    let body = match &pdu.body {
        Body::BindTransmitter(_) => Body::BindTransmitterResp(bind_resp()),
        Body::BindReceiver(_) => Body::BindReceiverResp(bind_resp()),
        Body::BindTransceiver(_) => Body::BindTransceiverResp(bind_resp()),
        Body::EnquireLink => Body::EnquireLinkResp,
        Body::Unbind => Body::UnbindResp,
        Body::SubmitSm(_) => return Some(submit_sm_resp(seq, 0, &format!("m{seq}"))),
        _ => return None,
    };
    Some(Pdu::new(seq, body))
}

/// A submit_sm_resp with this status and message id.
pub fn submit_sm_resp(seq: u32, status: u32, message_id: &str) -> Pdu {
    let mut pdu = Pdu::new(
        seq,
        Body::SubmitSmResp(MessageIdResp {
            message_id: message_id.try_into().unwrap(),
            ..MessageIdResp::default()
        }),
    );
    pdu.command_status = esmed::smpp::CommandStatus(status);
    pdu
}
