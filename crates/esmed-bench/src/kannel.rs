//! Side by side with Kannel: the same queue drained by esmed and by Kannel 1.4's bearerbox
//! (`store-type = file`) into the same test SMSC at the same window — 10, 100 and 1000 — in
//! one run. It runs when Kannel's `bearerbox` and `mtbatch` are installed (Debian's `kannel`
//! package; `make bench-kannel` installs it when run as root).
//!
//! Both are measured the same way, from the SMSC's journal: the queue's submit_sm arrivals
//! per second from its first message to its last. esmed's queue is the burst's rows, inserted
//! in one statement while esmed is bound. Kannel's is loaded into its store by `mtbatch` while
//! the SMSC is not listening yet, so that bearerbox finds a full store when the SMSC comes up
//! (it reconnects every second). What the two do per message differs: esmed writes each
//! result back to its row with a durable commit; Kannel's file store is written without
//! waiting for the disk. Both parties' CPU is reported per message: bearerbox's, and esmed's
//! with and without what PostgreSQL spent for it.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::journal::{first_arrival_by_destination, read_arrivals, JournalTail};
use crate::procs::{self, Proc};
use crate::report::Outcome;
use crate::rig::{Receipts, Rig};
use crate::BenchError;

/// The windows both are compared at.
pub const WINDOWS: [u32; 3] = [10, 100, 1000];

/// Destination prefix of the measured messages, as in the other scenarios.
const PREFIX: &str = "4477";
const ADMIN_PASSWORD: &str = "bench";

/// Kannel's programs, when installed.
pub struct KannelPrograms {
    bearerbox: PathBuf,
    mtbatch: PathBuf,
}

impl KannelPrograms {
    /// `bearerbox` and `mtbatch` on the PATH or in Debian's sbin/bin directories.
    pub fn find() -> Option<KannelPrograms> {
        Some(KannelPrograms {
            bearerbox: find_program("bearerbox")?,
            mtbatch: find_program("mtbatch")?,
        })
    }
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// One drain: submit_sm a second at the SMSC, and CPU per message.
struct Drain {
    msgs_per_s: f64,
    /// The gateway's own process.
    cpu_us_per_msg: f64,
    /// With what PostgreSQL spent for it (esmed only).
    with_db_cpu_us_per_msg: Option<f64>,
}

/// 6: esmed and Kannel draining the same queue at each of [`WINDOWS`].
pub fn side_by_side(rig: &mut Rig) -> Result<Outcome, BenchError> {
    let programs = KannelPrograms::find().ok_or_else(|| {
        BenchError::Process(
            "Kannel's bearerbox and mtbatch are not installed (Debian's kannel package; \
             make bench-kannel installs it)"
                .into(),
        )
    })?;
    let mut outcome = Outcome::new("kannel", "6 esmed and Kannel, same SMSC");
    for window in WINDOWS {
        let esmed = esmed_drain(rig, window)?;
        let kannel = kannel_drain(rig, &programs, window)?;
        outcome.set(&format!("w{window}_esmed_msgs_per_s"), esmed.msgs_per_s);
        outcome.set(&format!("w{window}_kannel_msgs_per_s"), kannel.msgs_per_s);
        outcome.set(
            &format!("w{window}_esmed_over_kannel"),
            esmed.msgs_per_s / kannel.msgs_per_s,
        );
        outcome.set(
            &format!("w{window}_esmed_cpu_us_per_msg"),
            esmed.cpu_us_per_msg,
        );
        if let Some(with_db) = esmed.with_db_cpu_us_per_msg {
            outcome.set(&format!("w{window}_esmed_with_pg_cpu_us_per_msg"), with_db);
        }
        outcome.set(
            &format!("w{window}_kannel_cpu_us_per_msg"),
            kannel.cpu_us_per_msg,
        );
    }
    outcome.note(
        "rates from the SMSC's journal, first to last submit_sm of the queue; \
         Kannel 1.4 bearerbox, store-type = file, max-pending-submits = the window",
    );
    Ok(outcome)
}

/// esmed drains the burst at `window`; the rig's window is restored afterwards.
fn esmed_drain(rig: &mut Rig, window: u32) -> Result<Drain, BenchError> {
    let configured = rig.options.window;
    rig.options.window = window;
    let drain = esmed_drain_at_rig_window(rig, window);
    rig.options.window = configured;
    drain
}

fn esmed_drain_at_rig_window(rig: &mut Rig, window: u32) -> Result<Drain, BenchError> {
    let n = rig.options.rows;
    let name = format!("kannel-esmed-{window}");
    let mut run = rig.prepare(&name, Receipts::Off)?;
    rig.launch_warm(&mut run, &name)?;
    let offset = run.tail.offset();
    let base = run.tail.lines();
    let before = rig.party_cpu_ns(&run);
    rig.insert_rows(n, PREFIX)?;
    let deadline = rig.deadline();
    rig.wait_drained(&mut run, base + n, deadline)?;
    let after = rig.party_cpu_ns(&run);
    let esmed_ns = after.esmed.saturating_sub(before.esmed) as f64;
    let postgres_ns = after.postgres.saturating_sub(before.postgres) as f64;
    Ok(Drain {
        msgs_per_s: journal_rate(&run.journal, offset, n)?,
        cpu_us_per_msg: esmed_ns / 1e3 / n as f64,
        with_db_cpu_us_per_msg: Some((esmed_ns + postgres_ns) / 1e3 / n as f64),
    })
}

/// Kannel drains the same number of messages at `window`, from a store loaded beforehand.
fn kannel_drain(rig: &Rig, programs: &KannelPrograms, window: u32) -> Result<Drain, BenchError> {
    let n = rig.options.rows;
    let dir = rig.dir.0.join(format!("kannel-{window}"));
    fs::create_dir_all(&dir).map_err(|e| BenchError::io("create Kannel's directory", e))?;
    let ports = KannelPorts {
        smsc: free_port()?,
        admin: free_port()?,
        smsbox: free_port()?,
    };
    let config = dir.join("kannel.conf");
    fs::write(&config, kannel_conf(&dir, &ports, window))
        .map_err(|e| BenchError::io("write kannel.conf", e))?;
    let log = fs::File::create(dir.join("bearerbox.out"))
        .map_err(|e| BenchError::io("create bearerbox's output file", e))?;
    let mut bearerbox = procs::spawn(
        "bearerbox",
        Command::new(&programs.bearerbox)
            .args(["-v", "3"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log),
    )?;
    let deadline = rig.deadline();
    wait_for_port(ports.smsbox, deadline, &mut bearerbox)?;
    load_store(programs, &dir, &ports, n)?;
    wait_for_store(&ports, n, deadline, &mut bearerbox)?;
    let journal = dir.join("smsc.journal");
    let listen = format!("127.0.0.1:{}", ports.smsc);
    let before = bearerbox.cpu_ns(rig.ticks_per_second);
    let (mut smsc, _) = procs::start_smsc_on(&listen, &journal, None)?;
    let mut tail = JournalTail::new(&journal);
    while tail.poll()? < n {
        bearerbox.check_running()?;
        smsc.check_running()?;
        if Instant::now() >= deadline {
            return Err(BenchError::Timeout(format!(
                "Kannel to send {n} messages at window {window}"
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let kannel_ns = bearerbox
        .cpu_ns(rig.ticks_per_second)
        .saturating_sub(before) as f64;
    bearerbox.stop(Duration::from_secs(10));
    smsc.stop(Duration::from_secs(5));
    Ok(Drain {
        msgs_per_s: journal_rate(&journal, 0, n)?,
        cpu_us_per_msg: kannel_ns / 1e3 / n as f64,
        with_db_cpu_us_per_msg: None,
    })
}

struct KannelPorts {
    smsc: u16,
    admin: u16,
    smsbox: u16,
}

/// A bearerbox with one SMPP transmitter to the SMSC's port, `window` submits outstanding at
/// most, reconnecting every second, its queue in a file store, logging errors only.
fn kannel_conf(dir: &Path, ports: &KannelPorts, window: u32) -> String {
    format!(
        "group = core\n\
         admin-port = {admin}\n\
         admin-password = {ADMIN_PASSWORD}\n\
         admin-allow-ip = 127.0.0.1\n\
         smsbox-port = {smsbox}\n\
         box-allow-ip = 127.0.0.1\n\
         log-level = 3\n\
         log-file = {log}\n\
         store-type = file\n\
         store-location = {store}\n\
         dlr-storage = internal\n\
         \n\
         group = smsbox\n\
         bearerbox-host = 127.0.0.1\n\
         bearerbox-port = {smsbox}\n\
         \n\
         group = smsc\n\
         smsc = smpp\n\
         smsc-id = bench\n\
         host = 127.0.0.1\n\
         port = {smsc}\n\
         receive-port = 0\n\
         smsc-username = esmed\n\
         smsc-password = secret\n\
         system-type = \"\"\n\
         max-pending-submits = {window}\n\
         reconnect-delay = 1\n",
        admin = ports.admin,
        smsbox = ports.smsbox,
        smsc = ports.smsc,
        log = dir.join("bearerbox.log").display(),
        store = dir.join("kannel.store").display(),
    )
}

/// `n` messages into bearerbox's store through its box port, as an smsbox would send them.
fn load_store(
    programs: &KannelPrograms,
    dir: &Path,
    ports: &KannelPorts,
    n: u64,
) -> Result<(), BenchError> {
    let receivers = dir.join("receivers");
    let content = dir.join("content");
    let list: String = (0..n).map(|i| format!("{PREFIX}{i:08}\n")).collect();
    fs::write(&receivers, list).map_err(|e| BenchError::io("write mtbatch's receivers", e))?;
    fs::write(&content, "Hello from the bench\n")
        .map_err(|e| BenchError::io("write mtbatch's content", e))?;
    let status = Command::new(&programs.mtbatch)
        .args([
            "-v",
            "3",
            "-b",
            "127.0.0.1",
            "-p",
            &ports.smsbox.to_string(),
        ])
        .args(["-f", "ESMED"])
        .arg(&content)
        .arg(&receivers)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| BenchError::io("run mtbatch", e))?;
    if status.success() {
        Ok(())
    } else {
        Err(BenchError::Process(format!("mtbatch failed: {status}")))
    }
}

/// Waits until bearerbox's status says its store holds `n` messages.
fn wait_for_store(
    ports: &KannelPorts,
    n: u64,
    deadline: Instant,
    bearerbox: &mut Proc,
) -> Result<(), BenchError> {
    loop {
        if store_size(ports.admin)? == Some(n) {
            return Ok(());
        }
        bearerbox.check_running()?;
        if Instant::now() >= deadline {
            return Err(BenchError::Timeout(format!(
                "bearerbox's store to hold {n} messages"
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The `store size` of bearerbox's plain-text status page (one HTTP/1.0 GET).
fn store_size(admin_port: u16) -> Result<Option<u64>, BenchError> {
    let mut stream = TcpStream::connect(("127.0.0.1", admin_port))
        .map_err(|e| BenchError::io("connect to bearerbox's admin port", e))?;
    let request = format!("GET /status.txt?password={ADMIN_PASSWORD} HTTP/1.0\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| BenchError::io("ask bearerbox's status", e))?;
    let mut page = String::new();
    stream
        .read_to_string(&mut page)
        .map_err(|e| BenchError::io("read bearerbox's status", e))?;
    Ok(parse_store_size(&page))
}

/// `... store size 20000` in `SMS: received 0 (0 queued), sent 0 (20000 queued), store size 20000`.
fn parse_store_size(status: &str) -> Option<u64> {
    let rest = &status[status.find("store size ")? + "store size ".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn wait_for_port(port: u16, deadline: Instant, process: &mut Proc) -> Result<(), BenchError> {
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        process.check_running()?;
        if Instant::now() >= deadline {
            return Err(BenchError::Timeout(format!("a listener on port {port}")));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// A loopback port nothing listens on right now.
fn free_port() -> Result<u16, BenchError> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| BenchError::io("find a free port", e))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| BenchError::io("find a free port", e))
}

/// submit_sm a second over the queue's `n` messages in the journal from byte `offset`: from
/// the first arrival of its first message to the first arrival of its last (a resend is not
/// a message).
fn journal_rate(journal: &Path, offset: u64, n: u64) -> Result<f64, BenchError> {
    let arrivals = read_arrivals(journal, offset)?;
    let measured: Vec<_> = arrivals
        .into_iter()
        .filter(|a| a.destination.starts_with(PREFIX))
        .collect();
    let first = first_arrival_by_destination(&measured);
    rate_of(first.values().copied(), n).ok_or_else(|| {
        BenchError::Process(format!(
            "the SMSC's journal holds {} of the {n} messages",
            first.len()
        ))
    })
}

/// Messages a second between the earliest and the latest stamp (µs), when all `n` came.
fn rate_of(stamps: impl Iterator<Item = i64>, n: u64) -> Option<f64> {
    let (count, min, max) = stamps.fold((0u64, i64::MAX, i64::MIN), |(c, lo, hi), t| {
        (c + 1, lo.min(t), hi.max(t))
    });
    if count < n || count < 2 || max <= min {
        return None;
    }
    Some((count - 1) as f64 / ((max - min) as f64 / 1e6))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_size_is_read_from_the_status_page() {
        let page = "Status: running, uptime 0d 0h 0m 4s\n\n\
                    SMS: received 0 (0 queued), sent 0 (20000 queued), store size 20000\n";
        assert_eq!(parse_store_size(page), Some(20000));
        assert_eq!(parse_store_size("Status: running"), None);
    }

    #[test]
    fn the_rate_spans_the_first_to_the_last_arrival_of_a_complete_queue() {
        // 5 messages over 2 seconds: 4 intervals.
        let stamps = [0, 500_000, 1_000_000, 1_500_000, 2_000_000];
        assert_eq!(rate_of(stamps.into_iter(), 5), Some(2.0));
        assert_eq!(rate_of(stamps.into_iter(), 6), None, "one message missing");
        assert_eq!(rate_of([7].into_iter(), 1), None, "no interval");
    }

    #[test]
    fn the_config_gives_the_window_the_ports_and_a_file_store() {
        let ports = KannelPorts {
            smsc: 2775,
            admin: 13000,
            smsbox: 13001,
        };
        let conf = kannel_conf(Path::new("/tmp/k"), &ports, 10);
        for line in [
            "max-pending-submits = 10",
            "port = 2775",
            "admin-port = 13000",
            "smsbox-port = 13001",
            "store-type = file",
            "store-location = /tmp/k/kannel.store",
        ] {
            assert!(conf.lines().any(|l| l == line), "{line} missing:\n{conf}");
        }
    }
}
