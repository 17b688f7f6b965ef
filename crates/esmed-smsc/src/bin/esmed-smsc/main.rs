//! `esmed-smsc`: the project's test SMSC as a process, for the benchmark, the demo and users
//! trying esmed. Prints `listening on ADDR` as its first stdout line, reads MO commands from
//! stdin (and optionally a file it follows), and exits on SIGTERM/SIGINT after closing
//! every session. Run `esmed-smsc --help` for the options.

mod flags;

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use esmed_smpp::receipt::MessageState;
use esmed_smpp::CommandStatus;
use esmed_smsc::{
    Faults, MoMessage, ReceiptConfig, ReceiptMode, Smsc, SmscConfig, SmscHandle, SmscTls,
};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use flags::{options_or_exit, FlagError, Flags};

const HELP: &str = "\
esmed-smsc: a test SMSC (SMPP 3.4 server) for esmed

USAGE: esmed-smsc [OPTIONS]
  --listen ADDR              where to listen (default 127.0.0.1:2775; port 0 picks one)
  --allow-remote             allow a non-loopback --listen address
  --system-id ID             accepted system_id (default esmed)
  --password PW              accepted password (default secret)
  --receipts DELAY_MS        send delivery receipts DELAY_MS after each submit that asks
  --throttle-every N         answer every Nth submit with ESME_RTHROTTLED
  --throttle-ratio R         throttle this fraction (0..1) of submits
  --max-rate N               throttle submits above N per second
  --drop-after N             cut the connection at the Nth submit (once)
  --never-answer-every N     never answer every Nth submit
  --delay-ms N               hold every submit_sm_resp back N ms
  --deliver-window N         at most N deliver_sm wait for their deliver_sm_resp at once
  --permanent-prefix PREFIX  destinations starting with PREFIX get ESME_RINVDSTADR
  --stats-interval S         print counters to stderr every S seconds
  --journal FILE             one JSON line per received submit_sm
  --mo-file FILE             follow FILE for commands (as on stdin)
  --tls-cert FILE            serve SMPP over TLS with this PEM certificate chain
                             (own certificate first); needs --tls-key
  --tls-key FILE             the PEM private key of --tls-cert
  --tls-client-ca FILE       require a client certificate signed by a CA in this PEM file
                             (with --tls-cert)
  --verbose                  log connections and binds to stderr

Commands (stdin or --mo-file), one per line:
  mo FROM TO TEXT...         send an MO message to the bound receiver
  receipt ID STATE           send a receipt for message ID (DELIVERED, UNDELIVERABLE, ...)
  stats                      print counters
";

#[derive(Debug)]
struct UsageError(String);

impl From<FlagError> for UsageError {
    fn from(e: FlagError) -> Self {
        UsageError(e.0)
    }
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

struct Options {
    config: SmscConfig,
    allow_remote: bool,
    stats_interval: Option<Duration>,
    mo_file: Option<PathBuf>,
    verbose: bool,
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Option<Options>, UsageError> {
    let mut config = SmscConfig {
        bind_addr: SocketAddr::from(([127, 0, 0, 1], 2775)),
        journal_in_memory: false,
        ..SmscConfig::default()
    };
    let mut faults = Faults::default();
    let mut options = Options {
        config: SmscConfig::default(),
        allow_remote: false,
        stats_interval: None,
        mo_file: None,
        verbose: false,
    };
    let (mut tls_cert, mut tls_key, mut client_ca) = (None, None, None);
    let mut flags = Flags::new(args);
    while let Some(flag) = flags.next() {
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--allow-remote" => options.allow_remote = true,
            "--verbose" => options.verbose = true,
            "--listen" => config.bind_addr = flags.number(&flag)?,
            "--system-id" => config.system_id = flags.value(&flag)?,
            "--password" => config.password = flags.value(&flag)?,
            "--receipts" => {
                let ms: u64 = flags.number(&flag)?;
                config.receipts =
                    ReceiptMode::After(ReceiptConfig::after(Duration::from_millis(ms)));
            }
            "--throttle-every" => faults.throttle_every = Some(flags.number(&flag)?),
            "--throttle-ratio" => faults.throttle_ratio = Some(flags.number(&flag)?),
            "--max-rate" => faults.max_rate = Some(flags.number(&flag)?),
            "--drop-after" => faults.drop_after = Some(flags.number(&flag)?),
            "--never-answer-every" => faults.never_answer_every = Some(flags.number(&flag)?),
            "--delay-ms" => {
                let ms: u64 = flags.number(&flag)?;
                faults.response_delay = Some(Duration::from_millis(ms));
            }
            "--deliver-window" => {
                let n: usize = flags.number(&flag)?;
                config.deliver_window = Some(n.max(1));
            }
            "--permanent-prefix" => {
                faults.permanent_error_prefix =
                    Some((flags.value(&flag)?, CommandStatus::ESME_RINVDSTADR))
            }
            "--stats-interval" => {
                let s: u64 = flags.number(&flag)?;
                options.stats_interval = Some(Duration::from_secs(s.max(1)));
            }
            "--journal" => config.journal_file = Some(PathBuf::from(flags.value(&flag)?)),
            "--mo-file" => options.mo_file = Some(PathBuf::from(flags.value(&flag)?)),
            "--tls-cert" => tls_cert = Some(PathBuf::from(flags.value(&flag)?)),
            "--tls-key" => tls_key = Some(PathBuf::from(flags.value(&flag)?)),
            "--tls-client-ca" => client_ca = Some(PathBuf::from(flags.value(&flag)?)),
            other => return Err(UsageError(format!("unknown option {other} (see --help)"))),
        }
    }
    config.faults = faults;
    config.tls = tls_identity(tls_cert, tls_key, client_ca)?;
    options.config = config;
    Ok(Some(options))
}

/// Reads --tls-cert and --tls-key (both or neither) and --tls-client-ca (only with them).
fn tls_identity(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
) -> Result<Option<SmscTls>, UsageError> {
    let read = |flag: &str, path: &PathBuf| {
        std::fs::read(path)
            .map_err(|e| UsageError(format!("{flag}: cannot read {}: {e}", path.display())))
    };
    match (cert, key) {
        (None, None) if client_ca.is_some() => Err(UsageError(
            "--tls-client-ca needs --tls-cert and --tls-key".into(),
        )),
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => Ok(Some(SmscTls {
            cert_chain_pem: read("--tls-cert", &cert)?,
            key_pem: read("--tls-key", &key)?,
            client_ca_pem: client_ca
                .map(|ca| read("--tls-client-ca", &ca))
                .transpose()?,
        })),
        _ => Err(UsageError("--tls-cert and --tls-key go together".into())),
    }
}

fn main() -> ExitCode {
    let parsed = parse_args(std::env::args().skip(1));
    let options = match options_or_exit(parsed, "esmed-smsc", HELP) {
        Ok(options) => options,
        Err(code) => return code,
    };
    if !options.config.bind_addr.ip().is_loopback() && !options.allow_remote {
        eprintln!(
            "esmed-smsc: refusing to listen on {} (not loopback) without --allow-remote",
            options.config.bind_addr
        );
        return ExitCode::from(2);
    }
    let level = if options.verbose {
        log::LevelFilter::Info
    } else {
        log::LevelFilter::Warn
    };
    let _ = simplelog::TermLogger::init(
        level,
        simplelog::Config::default(),
        simplelog::TerminalMode::Stderr,
        simplelog::ColorChoice::Never,
    );
    match run(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("esmed-smsc: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(options: Options) -> io::Result<()> {
    let mut signals = Signals::new([SIGTERM, SIGINT])?;
    let smsc = std::sync::Arc::new(std::sync::Mutex::new(Smsc::start(options.config)?));
    let addr = lock(&smsc).addr();
    println!("listening on {addr}");
    io::stdout().flush()?;
    let for_stdin = std::sync::Arc::clone(&smsc);
    thread::spawn(move || follow_commands(BufReader::new(io::stdin()), &for_stdin, false));
    if let Some(path) = options.mo_file {
        let file = File::open(&path)?;
        let for_file = std::sync::Arc::clone(&smsc);
        thread::spawn(move || follow_commands(BufReader::new(file), &for_file, true));
    }
    if let Some(every) = options.stats_interval {
        let for_stats = std::sync::Arc::clone(&smsc);
        thread::spawn(move || print_stats_every(every, &for_stats));
    }
    if let Some(signal) = signals.forever().next() {
        eprintln!("esmed-smsc: signal {signal}, closing sessions");
    }
    lock(&smsc).stop();
    Ok(())
}

fn lock(smsc: &std::sync::Mutex<SmscHandle>) -> std::sync::MutexGuard<'_, SmscHandle> {
    smsc.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs commands line by line; when `follow` is set, keeps reading as the file grows.
fn follow_commands(mut input: impl BufRead, smsc: &std::sync::Mutex<SmscHandle>, follow: bool) {
    let mut line = String::new();
    loop {
        line.clear();
        match input.read_line(&mut line) {
            Ok(0) if follow => thread::sleep(Duration::from_millis(100)),
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if let Err(e) = command(line.trim(), &lock(smsc)) {
                    eprintln!("esmed-smsc: {e}");
                }
            }
        }
    }
}

fn command(line: &str, smsc: &SmscHandle) -> Result<(), String> {
    let mut words = line.splitn(4, ' ');
    match words.next().unwrap_or("") {
        "" => Ok(()),
        "mo" => {
            let (Some(from), Some(to)) = (words.next(), words.next()) else {
                return Err("usage: mo FROM TO TEXT".into());
            };
            smsc.send_mo(MoMessage::text(from, to, words.next().unwrap_or("")));
            Ok(())
        }
        "receipt" => {
            let (Some(id), Some(state)) = (words.next(), words.next()) else {
                return Err("usage: receipt ID STATE".into());
            };
            let state = MessageState::from_stat_word(state)
                .ok_or_else(|| format!("unknown state {state}"))?;
            smsc.send_receipt(id, state).map_err(|e| e.to_string())
        }
        "stats" => {
            eprintln!("{}", stats_line(smsc, None));
            Ok(())
        }
        other => Err(format!("unknown command {other:?} (mo, receipt, stats)")),
    }
}

fn stats_line(smsc: &SmscHandle, rate: Option<f64>) -> String {
    let s = smsc.stats();
    let rate = rate.map_or(String::new(), |r| format!(" rate={r:.0}/s"));
    format!(
        "stats: connections={} bound={} submits={} outstanding_delivers={}{rate}",
        s.connections, s.bound, s.submits, s.outstanding_delivers
    )
}

fn print_stats_every(every: Duration, smsc: &std::sync::Mutex<SmscHandle>) {
    let mut last = (Instant::now(), 0u64);
    loop {
        thread::sleep(every);
        let handle = lock(smsc);
        let submits = handle.submit_count();
        let rate = (submits - last.1) as f64 / last.0.elapsed().as_secs_f64();
        eprintln!("{}", stats_line(&handle, Some(rate)));
        last = (Instant::now(), submits);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Options>, UsageError> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn options_become_config() {
        let o = parse(&[
            "--listen",
            "127.0.0.1:0",
            "--throttle-every",
            "3",
            "--receipts",
            "10",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(o.config.bind_addr.port(), 0);
        assert_eq!(o.config.faults.throttle_every, Some(3));
        assert!(matches!(o.config.receipts, ReceiptMode::After(_)));
        assert!(!o.config.journal_in_memory);
        assert!(parse(&["--drop-after", "x"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
        assert!(parse(&["--help"]).unwrap().is_none());
    }

    #[test]
    fn tls_needs_both_files_and_reads_them() {
        assert!(parse(&["--tls-cert", "/dev/null"]).is_err());
        assert!(parse(&["--tls-key", "/dev/null"]).is_err());
        let missing = parse(&["--tls-cert", "/nonexistent.pem", "--tls-key", "/dev/null"]);
        assert!(missing
            .err()
            .is_some_and(|e| e.0.contains("/nonexistent.pem")));
        let o = parse(&["--tls-cert", "/dev/null", "--tls-key", "/dev/null"])
            .unwrap()
            .unwrap();
        assert!(o.config.tls.is_some_and(|tls| tls.client_ca_pem.is_none()));
        assert!(parse(&[]).unwrap().unwrap().config.tls.is_none());
        assert!(parse(&["--tls-client-ca", "/dev/null"]).is_err());
        let o = parse(&[
            "--tls-cert",
            "/dev/null",
            "--tls-key",
            "/dev/null",
            "--tls-client-ca",
            "/dev/null",
        ])
        .unwrap()
        .unwrap();
        assert!(o.config.tls.is_some_and(|tls| tls.client_ca_pem.is_some()));
    }
}
