//! A TCP proxy between esmed and the test's PostgreSQL that cuts one connection at a chosen
//! point of the protocol, for the commits whose outcome esmed cannot know: the server has
//! committed and the answer is lost, or the COMMIT itself is lost. It reads the protocol's
//! framing only (a type octet and a length), forwarding every message as it came.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Where the next cut happens (once; [`PgProxy::arm`] again for another).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// The answer to the COMMIT of such a transaction: the server commits, the client's
    /// connection closes without hearing it.
    AnswerToCommit(Tx),
    /// The COMMIT of such a transaction: never forwarded; the client's connection closes,
    /// and the server's stays open (idle in the transaction) for the given time, or until
    /// the server ends it.
    Commit(Tx, Duration),
    /// The answer to a statement that updated at least this many rows outside a transaction
    /// block (a claim): the server commits it, the client never hears of it.
    AnswerToUpdateOf(u64),
    /// The answer to a statement outside a transaction block, on such a connection, whose
    /// CommandComplete tag is this: the server commits it, the client never hears of it.
    AnswerToStatement(Tx, &'static str),
}

/// Which transactions a cut at a COMMIT is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tx {
    /// One in which the server answered an INSERT.
    Inserting,
    /// Any on a connection that has sent SQL containing this text (prepared statements are
    /// sent once per connection).
    OnConnectionThatSent(&'static str),
}

pub struct PgProxy {
    port: u16,
    armed: Arc<Mutex<Option<Cut>>>,
    cuts: Arc<AtomicUsize>,
    pause: Arc<Mutex<Pause>>,
}

/// New connections wait `length` after each cut, as while a server restarts.
#[derive(Default)]
struct Pause {
    length: Duration,
    until: Option<Instant>,
}

/// What both directions of one proxied connection share.
struct Link {
    client: TcpStream,
    server: TcpStream,
    armed: Arc<Mutex<Option<Cut>>>,
    cuts: Arc<AtomicUsize>,
    pause: Arc<Mutex<Pause>>,
    /// The server answered an INSERT since the last COMMIT or ROLLBACK.
    inserted: AtomicBool,
    /// A transaction block is open (BEGIN answered, and no ReadyForQuery since said idle).
    in_block: AtomicBool,
    /// The SQL the client sent so far (Query and Parse messages).
    sent: Mutex<String>,
}

impl PgProxy {
    /// Listens on 127.0.0.1 and forwards every connection to PostgreSQL on `upstream`.
    pub fn start(upstream: u16) -> PgProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let armed = Arc::new(Mutex::new(None));
        let cuts = Arc::new(AtomicUsize::new(0));
        let pause = Arc::new(Mutex::new(Pause::default()));
        let (armed_, cuts_, pause_) = (armed.clone(), cuts.clone(), pause.clone());
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let until = pause_.lock().unwrap().until;
                if let Some(wait) = until.and_then(|t| t.checked_duration_since(Instant::now())) {
                    thread::sleep(wait);
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let link = Arc::new(Link {
                    client,
                    server,
                    armed: armed_.clone(),
                    cuts: cuts_.clone(),
                    pause: pause_.clone(),
                    inserted: AtomicBool::new(false),
                    in_block: AtomicBool::new(false),
                    sent: Mutex::new(String::new()),
                });
                let other = link.clone();
                thread::spawn(move || {
                    let _ = other.client_to_server();
                });
                thread::spawn(move || {
                    let _ = link.server_to_client();
                });
            }
        });
        PgProxy {
            port,
            armed,
            cuts,
            pause,
        }
    }

    /// After each cut, new connections wait this long before they reach the server.
    pub fn pause_after_cuts(&self, length: Duration) {
        self.pause.lock().unwrap().length = length;
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The next connection to reach `cut` is cut there.
    pub fn arm(&self, cut: Cut) {
        *self.armed.lock().unwrap() = Some(cut);
    }

    /// How many cuts were made.
    pub fn cuts(&self) -> usize {
        self.cuts.load(Ordering::SeqCst)
    }

    /// Waits until `n` cuts were made.
    pub fn wait_for_cuts(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.cuts() < n {
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(10));
        }
        true
    }
}

/// One message: its type octet (0 for the untyped startup message) and all its bytes.
fn read_message(from: &mut impl Read, typed: bool) -> io::Result<(u8, Vec<u8>)> {
    let mut frame = Vec::new();
    let mut kind = [0u8; 1];
    if typed {
        from.read_exact(&mut kind)?;
        frame.push(kind[0]);
    }
    let mut len = [0u8; 4];
    from.read_exact(&mut len)?;
    frame.extend_from_slice(&len);
    let body_len = (u32::from_be_bytes(len) as usize).saturating_sub(4);
    let start = frame.len();
    frame.resize(start + body_len, 0);
    from.read_exact(&mut frame[start..])?;
    Ok((kind[0], frame))
}

/// The text of a Query or CommandComplete message (its body up to the terminating NUL).
fn text_of(frame: &[u8]) -> String {
    let body = &frame[5..];
    let end = body.iter().position(|&b| b == 0).unwrap_or(body.len());
    String::from_utf8_lossy(&body[..end]).into_owned()
}

impl Link {
    /// Takes the armed cut if `matches` says this is its place.
    fn take_cut(&self, matches: impl Fn(Cut) -> bool) -> Option<Cut> {
        let mut armed = self.armed.lock().unwrap();
        let cut = (*armed).filter(|&cut| matches(cut))?;
        *armed = None;
        self.cuts.fetch_add(1, Ordering::SeqCst);
        let mut pause = self.pause.lock().unwrap();
        pause.until = Some(Instant::now() + pause.length);
        Some(cut)
    }

    /// Whether a COMMIT now would end a transaction `tx` is about.
    fn is_for(&self, tx: Tx) -> bool {
        match tx {
            Tx::Inserting => self.inserted.load(Ordering::SeqCst),
            Tx::OnConnectionThatSent(sql) => self.sent.lock().unwrap().contains(sql),
        }
    }

    fn client_to_server(&self) -> io::Result<()> {
        let (mut from, mut to) = (&self.client, &self.server);
        let (_, startup) = read_message(&mut from, false)?;
        to.write_all(&startup)?;
        loop {
            let (kind, frame) = read_message(&mut from, true)?;
            if kind == b'Q' || kind == b'P' {
                let text = String::from_utf8_lossy(&frame[5..]).into_owned();
                self.sent.lock().unwrap().push_str(&text);
            }
            let commit = kind == b'Q' && text_of(&frame).eq_ignore_ascii_case("COMMIT");
            let cut =
                self.take_cut(|c| matches!(c, Cut::Commit(tx, _) if commit && self.is_for(tx)));
            if let Some(Cut::Commit(_, hold)) = cut {
                let _ = self.client.shutdown(Shutdown::Both);
                // The server's backend stays in its transaction until it is ended (the
                // other direction then reads its end) or the hold is over.
                thread::sleep(hold);
                let _ = self.server.shutdown(Shutdown::Both);
                return Ok(());
            }
            to.write_all(&frame)?;
        }
    }

    fn server_to_client(&self) -> io::Result<()> {
        let (mut from, mut to) = (&self.server, &self.client);
        loop {
            let (kind, frame) = read_message(&mut from, true)?;
            if kind == b'Z' {
                // Its status: 'I' idle, 'T' in a transaction block, 'E' in a failed one.
                let status = frame.get(5).copied().unwrap_or(b'I');
                self.in_block.store(status != b'I', Ordering::SeqCst);
            }
            if kind == b'C' && self.cut_at_answer(&text_of(&frame)) {
                let _ = self.client.shutdown(Shutdown::Both);
                // Let the server finish (the commit of a statement outside a transaction
                // block comes with its Sync), then close.
                while read_message(&mut from, true)?.0 != b'Z' {}
                let _ = self.server.shutdown(Shutdown::Both);
                return Ok(());
            }
            let _ = to.write_all(&frame);
        }
    }

    /// Notes what the server answered (`tag`, a CommandComplete); true to cut here.
    fn cut_at_answer(&self, tag: &str) -> bool {
        if tag.starts_with("INSERT") {
            self.inserted.store(true, Ordering::SeqCst);
        }
        if tag == "BEGIN" {
            self.in_block.store(true, Ordering::SeqCst);
        }
        let alone = !self.in_block.load(Ordering::SeqCst);
        let statement = self.take_cut(
            |c| matches!(c, Cut::AnswerToStatement(tx, t) if alone && t == tag && self.is_for(tx)),
        );
        if statement.is_some() {
            return true;
        }
        if tag == "COMMIT" || tag == "ROLLBACK" {
            let commit = tag == "COMMIT";
            let cut = self
                .take_cut(|c| matches!(c, Cut::AnswerToCommit(tx) if commit && self.is_for(tx)))
                .is_some();
            self.inserted.store(false, Ordering::SeqCst);
            return cut;
        }
        let updated = tag
            .strip_prefix("UPDATE ")
            .and_then(|n| n.parse::<u64>().ok());
        let Some(updated) = updated else {
            return false;
        };
        self.take_cut(|c| matches!(c, Cut::AnswerToUpdateOf(min) if updated >= min))
            .is_some()
    }
}
