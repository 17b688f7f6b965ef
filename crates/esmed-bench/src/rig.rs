//! The test rig: the durable PostgreSQL cluster with the schema, and per scenario a fresh test
//! SMSC process, server row and esmed process; plus the CPU snapshots and the bounded waits
//! every scenario uses.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use esmed_testkit::{PgCluster, PgClusterOptions};
use postgres::Client;

use crate::journal::JournalTail;
use crate::procs::{self, Proc};
use crate::waits::WaitSampler;
use crate::{BenchError, Options};

pub const DB: &str = "esmed";
pub const ESMED_PASSWORD: &str = "bench-db-pw";
const INSTANCE: &str = "bench";

/// The cluster and what every scenario shares.
pub struct Rig {
    pub options: Options,
    pub cluster: PgCluster,
    pub db: Client,
    pub dir: TempDir,
    /// The postmaster's pid, for the PostgreSQL CPU figure.
    pub postmaster: u32,
    /// The backend serving `db`: its CPU (the bench's inserts and progress counts) is the
    /// bench's, not part of what PostgreSQL spent on esmed.
    pub monitor_backend: u32,
    pub ticks_per_second: f64,
    /// With --pg-waits: sampling since the scenario's reset.
    waits: Option<WaitSampler>,
    /// When set, [`Rig::launch`] starts this esmed binary instead of the one beside the
    /// bench (the results feed scenario's "before").
    pub esmed_binary: Option<PathBuf>,
}

/// One scenario's SMSC and (once launched) esmed.
pub struct Run {
    pub smsc: Proc,
    pub esmed: Option<Proc>,
    pub journal: PathBuf,
    pub tail: JournalTail,
}

impl Run {
    pub fn esmed(&self) -> Option<&Proc> {
        self.esmed.as_ref()
    }
}

/// Which SMSC account settings the scenario uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Receipts {
    Off,
    /// Transceiver bind, registered delivery, SMSC receipts after this many ms.
    On {
        delay_ms: u64,
    },
}

/// Which schema the rig's database is made with (see sql/db.sql and sql/db-partitioned.sql).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    Plain,
    /// The queues range-partitioned by day of insert_timestamp.
    Partitioned,
}

impl Layout {
    pub const ALL: [Layout; 2] = [Layout::Plain, Layout::Partitioned];

    pub fn name(self) -> &'static str {
        match self {
            Layout::Plain => "plain",
            Layout::Partitioned => "partitioned",
        }
    }

    fn schema_file(self) -> &'static str {
        match self {
            Layout::Plain => "db.sql",
            Layout::Partitioned => "db-partitioned.sql",
        }
    }
}

impl Rig {
    pub fn new(options: Options) -> Result<Rig, BenchError> {
        Rig::with_layout(options, Layout::Plain)
    }

    /// A rig of its own cluster whose database has `layout`'s schema.
    pub fn with_layout(options: Options, layout: Layout) -> Result<Rig, BenchError> {
        let cluster = PgCluster::start_with(PgClusterOptions {
            durable: true,
            stat_statements: options.pg_stats,
            extra: options.pg_settings.clone(),
            tls: None,
        })?;
        cluster.create_database(DB)?;
        // The daemon's schema, at the root of the workspace this crate lives in.
        let schema = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../sql")
            .join(layout.schema_file());
        cluster.load_schema(DB, &schema)?;
        drop(cluster.esmed_client(DB, ESMED_PASSWORD)?);
        let mut db = cluster.superuser_client(DB)?;
        let backend: i32 = db
            .query_one("SELECT pg_backend_pid()", &[])
            .map_err(BenchError::pg("ask the backend pid"))?
            .get(0);
        let postmaster = procs::read_stat(backend as u32).map_or(0, |s| s.ppid);
        let segments = options.wal_segments_to_warm();
        eprintln!(
            "esmed-bench: making {segments} WAL segments ready, as a server in service has them"
        );
        warm_wal(&mut db, segments)?;
        if options.pg_stats {
            db.batch_execute("CREATE EXTENSION pg_stat_statements")
                .map_err(BenchError::pg("create pg_stat_statements"))?;
        }
        Ok(Rig {
            options,
            cluster,
            db,
            dir: TempDir::new()?,
            postmaster,
            monitor_backend: backend as u32,
            ticks_per_second: procs::ticks_per_second(),
            waits: None,
            esmed_binary: None,
        })
    }

    /// A connection as the esmed role (the daemon's privileges).
    pub fn esmed_client(&self) -> Result<Client, BenchError> {
        Ok(self.cluster.esmed_client(DB, ESMED_PASSWORD)?)
    }

    /// Empties every table and checkpoints, so each scenario starts alike.
    pub fn reset(&mut self) -> Result<(), BenchError> {
        self.db
            .batch_execute(
                "TRUNCATE smpp_tx_parts, smpp_tx_queue, smpp_rx_unmatched, smpp_rx_parts, smpp_rx_parts_done, \
                 smpp_rx_queue, smpp_servers \
                 RESTART IDENTITY; CHECKPOINT;",
            )
            .map_err(BenchError::pg("reset the tables"))?;
        if self.options.pg_stats {
            self.db
                .batch_execute("SELECT pg_stat_statements_reset()")
                .map_err(BenchError::pg("reset pg_stat_statements"))?;
        }
        if self.options.pg_waits {
            // A scenario that resets again (the ceiling's runs) reports its last run only.
            drop(self.finish_waits());
            self.waits = Some(WaitSampler::start(self.cluster.superuser_client(DB)?));
        }
        Ok(())
    }

    /// With --pg-waits: stops sampling and returns what was seen since the last reset.
    pub fn finish_waits(&mut self) -> Option<Result<String, BenchError>> {
        self.waits.take().map(WaitSampler::finish)
    }

    /// The statements PostgreSQL spent most time on since the last reset, one line each:
    /// total ms, calls, rows, mean and max µs, then the statement (its first 150 characters).
    pub fn statement_costs(&mut self) -> Result<String, BenchError> {
        let rows = self
            .db
            .query(
                "SELECT total_exec_time, calls, rows, max_exec_time, plans, total_plan_time,
                        regexp_replace(left(query, 150), '\\s+', ' ', 'g')
                 FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 15",
                &[],
            )
            .map_err(BenchError::pg("read pg_stat_statements"))?;
        let mut text = String::from(
            "    PostgreSQL statements: total_ms calls rows mean_us max_us plans plan_us query",
        );
        for row in rows {
            let (total, calls, n, max) = (row.get(0), row.get(1), row.get(2), row.get(3));
            let (plans, plan_ms, query): (i64, f64, String) = (row.get(4), row.get(5), row.get(6));
            let (total, calls, n, max): (f64, i64, i64, f64) = (total, calls, n, max);
            let mean_us = 1000.0 * total / calls.max(1) as f64;
            let max_us = 1000.0 * max;
            // Planning is counted with pg_stat_statements.track_planning = on only.
            let plan_us = 1000.0 * plan_ms / plans.max(1) as f64;
            text.push_str(&format!(
                "\n    {total:9.0} {calls:8} {n:9} {mean_us:9.1} {max_us:9.0} {plans:8} \
                 {plan_us:7.1}  {query}"
            ));
        }
        Ok(text)
    }

    /// Resets the tables, starts an SMSC and points the (only) server row at it.
    pub fn prepare(&mut self, name: &str, receipts: Receipts) -> Result<Run, BenchError> {
        let window = self.options.window;
        self.prepare_with(name, receipts, &[], window)
    }

    /// [`Rig::prepare`] with these `esmed-smsc` flags (`--delay-ms N` holds every
    /// submit_sm_resp back N ms) and this `smpp_window`.
    pub fn prepare_with(
        &mut self,
        name: &str,
        receipts: Receipts,
        smsc_flags: &[String],
        window: u32,
    ) -> Result<Run, BenchError> {
        self.reset()?;
        let journal = self.dir.0.join(format!("{name}.journal"));
        let delay = match receipts {
            Receipts::Off => None,
            Receipts::On { delay_ms } => Some(delay_ms),
        };
        let (smsc, smsc_port) = procs::start_smsc(&journal, delay, smsc_flags)?;
        let receipts_on = receipts != Receipts::Off;
        self.db
            .execute(
                "INSERT INTO smpp_servers (enabled, host, port, esme_system_id, esme_password,
                     esme_source_addr, esme_bind_transceiver, esme_registered_delivery,
                     smpp_window)
                 VALUES (true, '127.0.0.1', $1, 'esmed', 'secret', 'ESMED', $2, $2, $3)",
                &[&i32::from(smsc_port), &receipts_on, &(window as i32)],
            )
            .map_err(BenchError::pg("insert the server row"))?;
        Ok(Run {
            smsc,
            esmed: None,
            tail: JournalTail::new(&journal),
            journal,
        })
    }

    /// Starts esmed for `run` (info-level log in the rig's directory).
    pub fn launch(&self, run: &mut Run, name: &str) -> Result<(), BenchError> {
        let config = self.write_config(name)?;
        run.esmed = Some(match &self.esmed_binary {
            Some(binary) => procs::start_esmed_at(binary, &config)?,
            None => procs::start_esmed(&config)?,
        });
        Ok(())
    }

    /// Launches esmed and waits until one row went through, so connections and binds are
    /// up before the measured part starts.
    pub fn launch_warm(&mut self, run: &mut Run, name: &str) -> Result<(), BenchError> {
        self.launch(run, name)?;
        insert_warm_up(&mut self.db)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        self.wait_until(run, deadline, "the warm-up row to be sent", |rig, _| {
            Ok(rig.pending()? == 0)
        })?;
        run.tail.poll()?;
        Ok(())
    }

    fn write_config(&self, name: &str) -> Result<PathBuf, BenchError> {
        let ports = [self.cluster.port()];
        write_config(&self.dir.0, name, &ports, INSTANCE, &self.options.daemon)
    }

    /// Rows neither done nor failed (uses the partial index on pending rows).
    pub fn pending(&mut self) -> Result<i64, BenchError> {
        self.count("smpp_tx_queue WHERE NOT submission_done AND NOT submission_failed")
    }

    /// Checkpoints PostgreSQL has made so far (timed and requested).
    pub fn checkpoints(&mut self) -> Result<u64, BenchError> {
        let [n] = self.counters(
            "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter",
            "count checkpoints",
        )?;
        Ok(n)
    }

    /// Autovacuum and autoanalyze runs on the send queue so far.
    pub fn queue_autovacuums(&mut self) -> Result<u64, BenchError> {
        let [n] = self.counters(
            "SELECT autovacuum_count + autoanalyze_count FROM pg_stat_user_tables \
             WHERE relname = 'smpp_tx_queue'",
            "count autovacuums",
        )?;
        Ok(n)
    }

    /// The send queue's table and indexes, in MB.
    pub fn queue_size_mb(&mut self) -> Result<f64, BenchError> {
        let [bytes] = self.counters(
            "SELECT pg_total_relation_size('smpp_tx_queue')",
            "measure the queue",
        )?;
        Ok(bytes as f64 / (1024.0 * 1024.0))
    }

    /// Updates of the send queue so far, and how many of them were HOT (touched no index).
    /// Backends report their counts up to a second late: a drain of a few seconds shows a
    /// partial share (`--backlog 50000` showed 100 %; million-row drains 49-52 %).
    pub fn queue_updates(&mut self) -> Result<(u64, u64), BenchError> {
        let [updates, hot] = self.counters(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables \
             WHERE relname = 'smpp_tx_queue'",
            "count updates",
        )?;
        Ok((updates, hot))
    }

    /// PostgreSQL's I/O so far: WAL written (exact), and the blocks its backends found in
    /// shared_buffers, read from outside it and wrote out of it themselves (counted by the
    /// backends and published up to a second late).
    pub fn pg_io(&mut self) -> Result<PgIo, BenchError> {
        let [wal_bytes, blocks_read, blocks_hit, backend_writes] = self.counters(
            "SELECT (pg_current_wal_insert_lsn() - '0/0')::int8, blks_read, blks_hit, \
             (SELECT buffers_backend FROM pg_stat_bgwriter) \
             FROM pg_stat_database WHERE datname = current_database()",
            "read PostgreSQL's I/O counters",
        )?;
        let statements = if self.options.pg_stats {
            Some(self.statement_work()?)
        } else {
            None
        };
        Ok(PgIo {
            wal_bytes,
            blocks_read,
            blocks_hit,
            backend_writes,
            statements,
        })
    }

    /// What the claims and the results UPDATEs have cost so far (pg_stat_statements, which
    /// counts each execution as it ends).
    fn statement_work(&mut self) -> Result<StatementWork, BenchError> {
        let row = self
            .db
            .query_one(
                "SELECT COALESCE(sum(total_exec_time) FILTER (WHERE claim), 0)::float8, \
                        COALESCE(sum(shared_blks_hit) FILTER (WHERE claim), 0)::int8, \
                        COALESCE(sum(total_exec_time) FILTER (WHERE results), 0)::float8, \
                        COALESCE(sum(shared_blks_hit) FILTER (WHERE results), 0)::int8 \
                 FROM (SELECT *, query LIKE '%SKIP LOCKED%' AS claim, \
                              query LIKE '%smpp_message_id_key = u.message_id_key%' AS results \
                       FROM pg_stat_statements) s",
                &[],
            )
            .map_err(BenchError::pg("read pg_stat_statements"))?;
        let hits = |i: usize| row.get::<_, i64>(i).max(0) as u64;
        Ok(StatementWork {
            claim_ms: row.get(0),
            claim_hits: hits(1),
            results_ms: row.get(2),
            results_hits: hits(3),
        })
    }

    /// The `N` bigint columns of the one row `sql` returns, negatives read as 0.
    fn counters<const N: usize>(
        &mut self,
        sql: &str,
        what: &'static str,
    ) -> Result<[u64; N], BenchError> {
        let row = self.db.query_one(sql, &[]).map_err(BenchError::pg(what))?;
        let mut values = [0; N];
        for (i, value) in values.iter_mut().enumerate() {
            *value = row.get::<_, i64>(i).max(0) as u64;
        }
        Ok(values)
    }

    /// `SELECT count(*) FROM <from_where>`.
    pub fn count(&mut self, from_where: &str) -> Result<i64, BenchError> {
        let sql = format!("SELECT count(*) FROM {from_where}");
        Ok(self
            .db
            .query_one(&sql, &[])
            .map_err(BenchError::pg("count rows"))?
            .get(0))
    }

    /// Inserts `n` rows in one INSERT ... SELECT; destinations are `prefix` + 8 digits.
    /// Returns how long the statement took.
    /// The backlog's starting point, for scenario 4 and its PostgreSQL-only ceiling: `history`
    /// done rows, then `pending` rows, vacuumed, analysed and checkpointed.
    pub fn load_backlog(
        &mut self,
        pending: u64,
        history: u64,
        prefix: &str,
    ) -> Result<(), BenchError> {
        self.db
            .execute(
                "INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message,
                     submission_done, submission_timestamp, submission_attempts, smpp_message_id)
                 SELECT '4466' || lpad(i::text, 8, '0'), 'esmed benchmark history ' || i,
                        true, now(), 1, to_hex(i)
                 FROM generate_series(1, $1::int8) i",
                &[&(history as i64)],
            )
            .map_err(BenchError::pg("insert the history"))?;
        self.insert_rows(pending, prefix)?;
        // Separate statements: VACUUM cannot run in the implicit transaction of a batch.
        for sql in ["VACUUM ANALYZE smpp_tx_queue", "CHECKPOINT"] {
            self.db
                .batch_execute(sql)
                .map_err(BenchError::pg("vacuum the loaded queue"))?;
        }
        Ok(())
    }

    pub fn insert_rows(&mut self, n: u64, prefix: &str) -> Result<Duration, BenchError> {
        let started = Instant::now();
        insert_rows(&mut self.db, n, prefix)?;
        Ok(started.elapsed())
    }

    /// Calls `done` every 20 ms until it holds or `deadline` passes (then `Timeout`); fails
    /// at once when esmed or the SMSC exited.
    pub fn wait_until(
        &mut self,
        run: &mut Run,
        deadline: Instant,
        what: &str,
        done: impl FnMut(&mut Rig, &mut Run) -> Result<bool, BenchError>,
    ) -> Result<(), BenchError> {
        self.wait_every(Duration::from_millis(20), run, deadline, what, done)
    }

    /// [`Rig::wait_until`] looking every `period`.
    pub fn wait_every(
        &mut self,
        period: Duration,
        run: &mut Run,
        deadline: Instant,
        what: &str,
        mut done: impl FnMut(&mut Rig, &mut Run) -> Result<bool, BenchError>,
    ) -> Result<(), BenchError> {
        loop {
            if done(self, run)? {
                return Ok(());
            }
            run.smsc.check_running()?;
            if let Some(esmed) = run.esmed.as_mut() {
                esmed.check_running()?;
            }
            if Instant::now() >= deadline {
                return Err(BenchError::Timeout(what.to_string()));
            }
            std::thread::sleep(period);
        }
    }

    /// Waits until the SMSC journal has `lines` lines (cheap progress, no query), then until
    /// no row is pending. Returns when the last row was written back.
    pub fn wait_drained(
        &mut self,
        run: &mut Run,
        lines: u64,
        deadline: Instant,
    ) -> Result<Instant, BenchError> {
        let (done, _) = self.wait_drained_sampled(run, lines, deadline, None)?;
        Ok(done)
    }

    /// [`Rig::wait_drained`], also noting every `sample_every` how many submit_sm have
    /// reached the SMSC with a CPU snapshot (the last when all have): what each party spent
    /// on any stretch of the drain.
    pub fn wait_drained_sampled(
        &mut self,
        run: &mut Run,
        lines: u64,
        deadline: Instant,
        sample_every: Option<Duration>,
    ) -> Result<(Instant, Vec<Progress>), BenchError> {
        let mut samples = Vec::new();
        let mut next_sample = Instant::now();
        self.wait_until(run, deadline, "every submit_sm at the SMSC", |rig, run| {
            let arrived = run.tail.poll()?;
            let all = arrived >= lines;
            if let Some(every) = sample_every.filter(|_| all || Instant::now() >= next_sample) {
                samples.push(Progress {
                    arrived,
                    cpu: rig.snapshot(Some(run)),
                    pace: crate::pace::now(),
                    cpu_ns: rig.party_cpu_ns(run),
                    pg_io: rig.pg_io()?,
                });
                next_sample += every;
            }
            Ok(all)
        })?;
        // Counting pending rows costs PostgreSQL CPU while many are left: look less often.
        let period = Duration::from_millis(50);
        self.wait_every(
            period,
            run,
            deadline,
            "every row submission_done",
            |rig, _| Ok(rig.pending()? == 0),
        )?;
        // When the last row was done, not when a look every `period` noticed: that was up to
        // 50 ms late, 5 % of a 100,000-row burst at window 1000. The results UPDATE stamps
        // submission_timestamp with its transaction's start, a batch's few milliseconds
        // before its commit.
        let done = self.latest(
            "submission_timestamp",
            "smpp_tx_queue WHERE submission_done",
        )?;
        Ok((done, samples))
    }

    /// The moment of the latest `column` (a timestamptz) of `from`, as an `Instant`: measured
    /// back from PostgreSQL's clock in the same query, so the two clocks never meet.
    pub fn latest(&mut self, column: &str, from: &str) -> Result<Instant, BenchError> {
        let sql = format!(
            "SELECT COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - max({column})), 0)::float8 \
             FROM {from}"
        );
        let ago: f64 = self
            .db
            .query_one(&sql, &[])
            .map_err(BenchError::pg("read when the last row changed"))?
            .get(0);
        let now = Instant::now();
        Ok(now
            .checked_sub(Duration::from_secs_f64(ago.max(0.0)))
            .unwrap_or(now))
    }

    /// A scenario's deadline from now.
    pub fn deadline(&self) -> Instant {
        Instant::now() + self.options.timeout
    }

    /// Exact CPU time of each party so far (see `procs::cpu_ns`), PostgreSQL's without the
    /// bench's own monitoring backend: for stretches of a drain, where every thread lives
    /// throughout. [`Rig::snapshot`] stays in ticks because it also counts backends that have
    /// ended (a ceiling's connections close before its last snapshot), which no scheduler
    /// statistic outlives.
    pub fn party_cpu_ns(&self, run: &Run) -> PartyCpuNs {
        let tps = self.ticks_per_second;
        let monitor = procs::cpu_ns(self.monitor_backend).unwrap_or(0);
        let postgres = procs::process_tree_ns(self.postmaster).unwrap_or_else(|| {
            (procs::process_tree_ticks(self.postmaster) as f64 * 1e9 / tps) as u64
        });
        PartyCpuNs {
            esmed: run.esmed().map_or(0, |e| e.cpu_ns(tps)),
            smsc: run.smsc.cpu_ns(tps),
            postgres: postgres.saturating_sub(monitor),
        }
    }

    pub fn snapshot(&self, run: Option<&Run>) -> CpuSnapshot {
        let (busy, total) = procs::machine_ticks();
        let monitor = procs::read_stat(self.monitor_backend).map_or(0, |s| s.ticks);
        CpuSnapshot {
            at: Instant::now(),
            esmed: run.and_then(Run::esmed).map_or(0, Proc::cpu_ticks),
            smsc: run.map_or(0, |r| r.smsc.cpu_ticks()),
            postgres: procs::process_tree_ticks(self.postmaster).saturating_sub(monitor),
            bench: procs::own_ticks() + monitor,
            machine_busy: busy,
            machine_total: total,
        }
    }
}

/// How many submit_sm had reached the SMSC, the CPU ticks then, and the machine's pace (see
/// `pace::now`).
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    pub arrived: u64,
    pub cpu: CpuSnapshot,
    pub pace: Duration,
    pub pg_io: PgIo,
    pub cpu_ns: PartyCpuNs,
}

/// CPU nanoseconds of each party at one moment (see [`Rig::party_cpu_ns`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct PartyCpuNs {
    pub esmed: u64,
    pub smsc: u64,
    pub postgres: u64,
}

/// PostgreSQL's I/O counters at one moment (see [`Rig::pg_io`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct PgIo {
    pub wal_bytes: u64,
    pub blocks_read: u64,
    /// Blocks found in shared_buffers: a gauge of the work of index and heap scans that
    /// touch no disk.
    pub blocks_hit: u64,
    pub backend_writes: u64,
    /// With --pg-stats.
    pub statements: Option<StatementWork>,
}

/// Execution time (ms) and blocks found in shared_buffers of esmed's claims and of its
/// results UPDATEs (those of rows done), so far.
#[derive(Clone, Copy, Debug, Default)]
pub struct StatementWork {
    pub claim_ms: f64,
    pub claim_hits: u64,
    pub results_ms: f64,
    pub results_hits: u64,
}

/// CPU ticks of each party at one moment.
#[derive(Clone, Copy, Debug)]
pub struct CpuSnapshot {
    pub at: Instant,
    pub esmed: u64,
    pub smsc: u64,
    pub postgres: u64,
    pub bench: u64,
    pub machine_busy: u64,
    pub machine_total: u64,
}

/// CPU seconds each party used between two snapshots.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CpuSplit {
    pub wall: f64,
    pub esmed: f64,
    pub smsc: f64,
    pub postgres: f64,
    pub bench: f64,
    /// Share of the whole machine busy (all processes, not only ours), 0..100.
    pub machine_busy_pct: f64,
}

impl CpuSplit {
    pub fn between(a: &CpuSnapshot, b: &CpuSnapshot, ticks_per_second: f64) -> CpuSplit {
        let secs = |x: u64, y: u64| y.saturating_sub(x) as f64 / ticks_per_second;
        let total = b.machine_total.saturating_sub(a.machine_total).max(1) as f64;
        CpuSplit {
            wall: b.at.duration_since(a.at).as_secs_f64(),
            esmed: secs(a.esmed, b.esmed),
            smsc: secs(a.smsc, b.smsc),
            postgres: secs(a.postgres, b.postgres),
            bench: secs(a.bench, b.bench),
            machine_busy_pct: 100.0 * b.machine_busy.saturating_sub(a.machine_busy) as f64 / total,
        }
    }
}

/// Has PostgreSQL make `segments` WAL segment files and recycle them at a checkpoint, as a
/// server that has been in service has them (`min_wal_size` keeps them). A new cluster
/// makes each segment when the WAL first reaches it, writing 16 MB of zeros and syncing
/// them inside whichever commit needs it: in a million-row burst that was a tenth of
/// PostgreSQL's CPU (perf: XLogFileInit under XLogFlush) and a stall of every commit behind
/// it, paid by whichever scenario ran first on new WAL, not by the ceilings that followed.
pub(crate) fn warm_wal(db: &mut Client, segments: u32) -> Result<(), BenchError> {
    db.batch_execute("CREATE TABLE bench_wal_warmup (x int)")
        .map_err(BenchError::pg("warm WAL"))?;
    for _ in 0..segments {
        db.batch_execute("INSERT INTO bench_wal_warmup VALUES (1); SELECT pg_switch_wal()")
            .map_err(BenchError::pg("warm WAL"))?;
    }
    db.batch_execute("DROP TABLE bench_wal_warmup; CHECKPOINT")
        .map_err(BenchError::pg("warm WAL"))
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    fn new() -> Result<TempDir, BenchError> {
        // A rig made beside the first (the history scenario's) has a directory of its own.
        static MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = match n {
            0 => format!("esmed-bench-{}", std::process::id()),
            n => format!("esmed-bench-{}-{n}", std::process::id()),
        };
        let path = std::env::temp_dir().join(name);
        fs::create_dir_all(&path).map_err(|e| BenchError::io("create the bench directory", e))?;
        Ok(TempDir(path))
    }
}

/// Writes an esmed.conf for the database on 127.0.0.1 at `ports` (one host each, in that
/// order) under `instance`, with the bench's extra `[daemon]` lines; returns its path.
pub(crate) fn write_config(
    dir: &Path,
    name: &str,
    ports: &[u16],
    instance: &str,
    daemon: &[String],
) -> Result<PathBuf, BenchError> {
    let path = dir.join(format!("{name}.conf"));
    let hosts = vec!["127.0.0.1"; ports.len()].join(",");
    let ports = ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let mut text = format!(
        "[database]\nhost = {hosts}\nport = {ports}\nname = {DB}\nuser = esmed\n\
         pass = {ESMED_PASSWORD}\nsslmode = disable\n\n\
         [daemon]\ninstance = {instance}\nstats_interval = 0\n"
    );
    for line in daemon {
        let _ = writeln!(text, "{line}");
    }
    let log = dir.join(format!("{name}.log"));
    let _ = write!(
        text,
        "\n[log]\nfile = {}\nlevel = info\nstderr = false\n",
        log.display()
    );
    fs::write(&path, text).map_err(|e| BenchError::io("write esmed.conf", e))?;
    let mut perms = fs::metadata(&path)
        .map_err(|e| BenchError::io("stat esmed.conf", e))?
        .permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
    fs::set_permissions(&path, perms).map_err(|e| BenchError::io("chmod esmed.conf", e))?;
    Ok(path)
}

/// The one row a warm-up sends before the measured part (destination 44000..., outside every
/// scenario's prefix).
pub(crate) fn insert_warm_up(db: &mut Client) -> Result<(), BenchError> {
    db.execute(
        "INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message)
         VALUES ('440000000000', 'warm-up')",
        &[],
    )
    .map_err(BenchError::pg("insert the warm-up row"))?;
    Ok(())
}

/// `n` pending rows to destinations `prefix` + 8 digits, in one statement.
pub(crate) fn insert_rows(db: &mut Client, n: u64, prefix: &str) -> Result<(), BenchError> {
    db.execute(
        "INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message)
         SELECT $1 || lpad(i::text, 8, '0'), 'esmed benchmark message number ' || i
         FROM generate_series(1, $2::int8) i",
        &[&prefix, &(n as i64)],
    )
    .map_err(BenchError::pg("insert the rows"))?;
    Ok(())
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_names_every_host_in_order() {
        let dir = std::env::temp_dir().join(format!("bench-failover-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = write_config(&dir, "c", &[5432, 5433], "x", &["a = b".into()]).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("host = 127.0.0.1,127.0.0.1\nport = 5432,5433\n"),
            "{text}"
        );
        assert!(
            text.contains("instance = x\n") && text.contains("a = b\n"),
            "{text}"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn cpu_split_converts_ticks_to_seconds() {
        let at = Instant::now();
        let a = CpuSnapshot {
            at,
            esmed: 100,
            smsc: 0,
            postgres: 50,
            bench: 0,
            machine_busy: 0,
            machine_total: 0,
        };
        let b = CpuSnapshot {
            esmed: 150,
            postgres: 250,
            machine_busy: 100,
            machine_total: 400,
            ..a
        };
        let split = CpuSplit::between(&a, &b, 100.0);
        assert_eq!(split.esmed, 0.5);
        assert_eq!(split.postgres, 2.0);
        assert_eq!(split.machine_busy_pct, 25.0);
    }
}
