//! Scenario 7, optional: esmed and Kannel side by side. The same queue of rows is drained
//! into the same test SMSC at the same window, once by esmed and once by Kannel 1.4's
//! bearerbox with its file store (`store-type = file`), at windows 10, 100 and 1000, and
//! esmed's rate is reported against Kannel's. It runs when Debian's `kannel` package is
//! installed (`make bench-kannel` installs it when root); Kannel's configuration is written
//! to the bench's temporary directory.
//!
//! Kannel's queue is filled the way an outage fills it: the SMSC is stopped, the messages are
//! handed to smsbox over HTTP and wait in bearerbox's store, then the SMSC starts again on
//! the same port. esmed's is a burst inserted at once with esmed bound. Both rates are read
//! from the SMSC's journal, first arrival to last, so that neither includes how its queue
//! was filled or how soon it reconnected.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::journal::{read_arrivals, JournalTail};
use crate::procs::{self, Proc};
use crate::report::Outcome;
use crate::rig::{Receipts, Rig};
use crate::BenchError;

/// The windows compared.
pub const KANNEL_WINDOWS: [u32; 3] = [10, 100, 1000];

/// Where Debian's package installs Kannel's boxes.
const BEARERBOX: &str = "/usr/sbin/bearerbox";
const SMSBOX: &str = "/usr/sbin/smsbox";

/// Threads handing messages to smsbox.
const SENDERS: u64 = 4;

/// Destination prefix of the compared rows, as in the other scenarios.
const PREFIX: &str = "4477";

/// Whether Kannel is installed.
pub fn installed() -> bool {
    Path::new(BEARERBOX).is_file() && Path::new(SMSBOX).is_file()
}

/// 7: esmed ÷ Kannel at each of [`KANNEL_WINDOWS`], `kannel_rows` messages each.
pub fn side_by_side(rig: &mut Rig) -> Result<Outcome, BenchError> {
    let mut outcome = Outcome::new("kannel", "7 esmed and Kannel side by side");
    let rows = rig.options.kannel_rows;
    outcome.set("rows", rows as f64);
    for window in KANNEL_WINDOWS {
        let kannel = kannel_drain(rig, window, rows)?;
        let esmed = esmed_drain(rig, window, rows)?;
        outcome.set(&format!("kannel_msgs_per_s_w{window}"), kannel);
        outcome.set(&format!("esmed_msgs_per_s_w{window}"), esmed);
        outcome.set(&format!("esmed_over_kannel_w{window}"), esmed / kannel);
    }
    Ok(outcome)
}

/// esmed's rate at `window`: a burst of `rows` inserted at once with esmed bound.
fn esmed_drain(rig: &mut Rig, window: u32, rows: u64) -> Result<f64, BenchError> {
    let name = format!("kannel-esmed-{window}");
    let mut run = rig.prepare_with(&name, Receipts::Off, &[], window)?;
    rig.launch_warm(&mut run, &name)?;
    let (lines, offset) = (run.tail.lines(), run.tail.offset());
    rig.insert_rows(rows, PREFIX)?;
    let deadline = rig.deadline();
    rig.wait_drained(&mut run, lines + rows, deadline)?;
    drain_rate(&run.journal, offset)
}

/// Kannel's rate at `window`: `rows` messages queued in bearerbox's store while the SMSC is
/// down, drained once it is back.
fn kannel_drain(rig: &mut Rig, window: u32, rows: u64) -> Result<f64, BenchError> {
    rig.reset()?;
    let dir = rig.dir.0.join(format!("kannel-{window}"));
    std::fs::create_dir_all(&dir).map_err(|e| BenchError::io("create Kannel's directory", e))?;
    let journal = dir.join("smsc.journal");
    let (smsc, port) = procs::start_smsc(&journal, None, &[])?;
    let ports = Ports::free()?;
    let config = write_config(&dir, &ports, port, window)?;
    let _bearerbox = start_box("bearerbox", BEARERBOX, &config)?;
    let admin = Admin { port: ports.admin };
    admin.wait_for("Kannel's SMSC connection online", |s| s.contains("(online"))?;
    let _smsbox = start_box("smsbox", SMSBOX, &config)?;
    admin.wait_for("smsbox connected", |s| s.contains("smsbox:(none)"))?;
    drop(smsc);
    admin.wait_for("Kannel to notice the SMSC is gone", |s| {
        s.contains("re-connecting") || s.contains("(connecting")
    })?;
    send_all(ports.sendsms, rows)?;
    admin.wait_for("every message in Kannel's store", |s| queued(s) >= rows)?;
    let (_smsc, _) = procs::start_smsc_on(port, &journal, None, &[])?;
    let mut tail = JournalTail::new(&journal);
    let deadline = rig.deadline();
    while tail.poll()? < rows {
        if Instant::now() >= deadline {
            return Err(BenchError::Timeout(format!(
                "Kannel to drain {rows} messages at window {window}"
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    drain_rate(&journal, 0)
}

/// Messages a second from the first arrival to the last in the journal from `offset` on.
fn drain_rate(journal: &Path, offset: u64) -> Result<f64, BenchError> {
    let arrivals = read_arrivals(journal, offset)?;
    let stamps: Vec<i64> = arrivals
        .iter()
        .filter(|a| a.destination.starts_with(PREFIX))
        .map(|a| a.at_us)
        .collect();
    let (Some(first), Some(last)) = (stamps.iter().min(), stamps.iter().max()) else {
        return Err(BenchError::Process(
            "no arrivals in the SMSC journal".into(),
        ));
    };
    let seconds = (last - first).max(1) as f64 / 1e6;
    Ok((stamps.len() - 1) as f64 / seconds)
}

/// The loopback ports Kannel listens on.
struct Ports {
    admin: u16,
    smsbox: u16,
    sendsms: u16,
}

impl Ports {
    fn free() -> Result<Ports, BenchError> {
        let free = || -> Result<u16, BenchError> {
            let listener = TcpListener::bind("127.0.0.1:0")
                .map_err(|e| BenchError::io("find a free port", e))?;
            listener
                .local_addr()
                .map(|a| a.port())
                .map_err(|e| BenchError::io("find a free port", e))
        };
        let (admin, smsbox, sendsms) = (free()?, free()?, free()?);
        Ok(Ports {
            admin,
            smsbox,
            sendsms,
        })
    }
}

/// bearerbox and smsbox in one file: the file store, the test SMSC's account at `window`.
fn write_config(
    dir: &Path,
    ports: &Ports,
    smsc_port: u16,
    window: u32,
) -> Result<PathBuf, BenchError> {
    let d = dir.display();
    let text = format!(
        "group = core\nadmin-port = {}\nadmin-password = bench\nadmin-allow-ip = \"127.0.0.1\"\n\
         smsbox-port = {}\nbox-allow-ip = \"127.0.0.1\"\nstore-type = file\n\
         store-location = \"{d}/kannel.store\"\nlog-file = \"{d}/bearerbox.log\"\nlog-level = 3\n\n\
         group = smsc\nsmsc = smpp\nsmsc-id = bench\nhost = 127.0.0.1\nport = {smsc_port}\n\
         receive-port = 0\ntransceiver-mode = true\nsmsc-username = esmed\n\
         smsc-password = secret\nsystem-type = \"\"\nmax-pending-submits = {window}\n\
         reconnect-delay = 1\n\n\
         group = smsbox\nbearerbox-host = 127.0.0.1\nsendsms-port = {}\n\
         log-file = \"{d}/smsbox.log\"\nlog-level = 3\n\n\
         group = sendsms-user\nusername = bench\npassword = bench\nmax-messages = 1\n",
        ports.admin, ports.smsbox, ports.sendsms
    );
    let path = dir.join("kannel.conf");
    std::fs::write(&path, text).map_err(|e| BenchError::io("write kannel.conf", e))?;
    Ok(path)
}

fn start_box(name: &'static str, program: &str, config: &Path) -> Result<Proc, BenchError> {
    let mut command = Command::new(program);
    command
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    Proc::spawn(name, &mut command)
}

/// bearerbox's HTTP administration.
struct Admin {
    port: u16,
}

impl Admin {
    fn status(&self) -> Result<String, BenchError> {
        http_get(self.port, "/status.txt?password=bench")
    }

    /// Looks at the status every 50 ms until `done` holds (30 s at most).
    fn wait_for(&self, what: &str, done: impl Fn(&str) -> bool) -> Result<(), BenchError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // bearerbox answers once its HTTP side is up.
            if let Ok(status) = self.status() {
                if done(&status) {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(BenchError::Timeout(what.to_string()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The messages waiting in bearerbox, from its status line `SMS: received .., sent N (Q
/// queued), store size S`.
fn queued(status: &str) -> u64 {
    status
        .lines()
        .find(|l| l.starts_with("SMS: received"))
        .and_then(|l| l.split("store size ").nth(1))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Hands `rows` messages to smsbox's sendsms, from [`SENDERS`] threads.
fn send_all(port: u16, rows: u64) -> Result<(), BenchError> {
    let senders: Vec<_> = (0..SENDERS)
        .map(|k| {
            std::thread::spawn(move || -> Result<(), BenchError> {
                let mut n = k + 1;
                while n <= rows {
                    let path = format!(
                        "/cgi-bin/sendsms?username=bench&password=bench&from=ESMED\
                         &to={PREFIX}{n:08}&text=kannel+benchmark+message+number+{n}"
                    );
                    let answer = http_get(port, &path)?;
                    if !answer.contains("Accepted") {
                        return Err(BenchError::Process(format!("smsbox said: {answer}")));
                    }
                    n += SENDERS;
                }
                Ok(())
            })
        })
        .collect();
    for sender in senders {
        sender
            .join()
            .map_err(|_| BenchError::Process("a sendsms thread panicked".into()))??;
    }
    Ok(())
}

/// One HTTP/1.0 GET on 127.0.0.1:`port`; the whole answer.
fn http_get(port: u16, path: &str) -> Result<String, BenchError> {
    let io = |e| BenchError::io("talk HTTP to Kannel", e);
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(io)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(io)?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").map_err(io)?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).map_err(io)?;
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_size_is_read_from_the_status() {
        let status = "Status: running\n\nSMS: received 0 (0 queued), sent 6 (500 queued), \
                      store size 500\nSMS: inbound (0.00,0.00,0.00) msg/sec";
        assert_eq!(queued(status), 500);
        assert_eq!(queued("Status: running"), 0);
    }
}
