//! The DB writer thread: commits submit results and received messages in batches, then tells
//! each session which deliver_sm / data_sm it may now acknowledge.
//!
//! It takes the first operation waiting, everything else already queued (up to the batch
//! size), and commits them together. A lost connection is re-established with backoff and the
//! same batch is committed again: nothing is dropped while PostgreSQL is away, and no
//! deliver_sm is acknowledged before its row is committed. The thread ends when every sender
//! is gone and the queue is empty.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use log::{error, info, warn};
use postgres::Client;

use crate::db::{self, RxRow, TxOutcome, TxResult};
use crate::session::flow::Backoff;
use crate::smpp::{CommandId, CommandStatus};
use crate::stats::Stats;

/// Work for the DB writer.
pub enum DbOp {
    /// A row's outcome.
    Result(TxResult),
    /// A received PDU to store; `ack` says where to report the commit.
    Rx { row: Box<RxRow>, ack: Option<AckTo> },
}

impl DbOp {
    /// The smpp_tx_queue id this op is about, for log lines (0 for received PDUs).
    pub fn row_id(&self) -> i32 {
        match self {
            DbOp::Result(result) => result.id,
            DbOp::Rx { .. } => 0,
        }
    }
}

/// Where and how to acknowledge a received PDU once its row is committed.
pub struct AckTo {
    pub to: Sender<Committed>,
    pub sequence_number: u32,
    pub command: CommandId,
}

/// "Your PDU is stored": answer it with `status` (ESME_ROK, or ESME_RX_T_APPN when it could
/// not be stored and the SMSC should try again later).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    pub sequence_number: u32,
    pub command: CommandId,
    pub status: CommandStatus,
}

pub struct DbWriterConfig {
    pub pg: postgres::Config,
    pub instance: String,
    pub batch: usize,
    pub reconnect_max: Duration,
}

pub fn spawn(
    config: DbWriterConfig,
    ops: Receiver<DbOp>,
    stats: Arc<Stats>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("esmed-db-writer".into())
        .spawn(move || {
            DbWriter {
                config,
                client: None,
                stats,
            }
            .run(&ops)
        })
}

struct DbWriter {
    config: DbWriterConfig,
    client: Option<Client>,
    stats: Arc<Stats>,
}

/// One commit's worth of work, split by table.
#[derive(Default)]
struct Batch {
    results: Vec<TxResult>,
    rx_rows: Vec<RxRow>,
    /// One per `rx_rows` entry.
    acks: Vec<Option<AckTo>>,
}

impl Batch {
    fn push(&mut self, op: DbOp) {
        match op {
            DbOp::Result(result) => self.results.push(result),
            DbOp::Rx { row, ack } => {
                self.rx_rows.push(*row);
                self.acks.push(ack);
            }
        }
    }

    fn len(&self) -> usize {
        self.results.len() + self.rx_rows.len()
    }

    /// Splits the batch into batches of one op each.
    fn into_singles(self) -> Vec<Batch> {
        let results = self.results.into_iter().map(|r| Batch {
            results: vec![r],
            ..Batch::default()
        });
        let rx = self
            .rx_rows
            .into_iter()
            .zip(self.acks)
            .map(|(row, ack)| Batch {
                rx_rows: vec![row],
                acks: vec![ack],
                ..Batch::default()
            });
        results.chain(rx).collect()
    }

    fn describe(&self) -> String {
        match (self.results.first(), self.rx_rows.first()) {
            (Some(result), _) => format!(
                "result for row {}; the row keeps its lease and is submitted again when it expires",
                result.id
            ),
            (None, Some(row)) => format!(
                "received PDU from '{}'; answering ESME_RX_T_APPN so the SMSC delivers it again later",
                row.source_addr
            ),
            (None, None) => "empty batch".into(),
        }
    }
}

impl DbWriter {
    fn run(mut self, ops: &Receiver<DbOp>) {
        while let Ok(first) = ops.recv() {
            let mut batch = Batch::default();
            batch.push(first);
            while batch.len() < self.config.batch {
                match ops.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            self.commit_with_retry(batch);
        }
        info!("DB writer: all results committed, exiting");
    }

    /// Commits the batch, reconnecting as long as it takes; isolates an op that PostgreSQL
    /// rejects so that one bad row cannot hold back the rest.
    fn commit_with_retry(&mut self, batch: Batch) {
        let mut backoff = Backoff::new(Duration::from_millis(200), self.config.reconnect_max);
        loop {
            let instance = self.config.instance.clone();
            let Some(client) = self.connected(&mut backoff) else {
                continue;
            };
            match commit(client, &batch, &instance) {
                Ok(()) => {
                    self.after_commit(batch, CommandStatus::ESME_ROK);
                    return;
                }
                Err(e) if client.is_closed() || e.is_connection_lost() => {
                    let delay = backoff.next_delay();
                    warn!(
                        "DB writer: lost PostgreSQL while committing {} results: {e}; keeping them and retrying in {} ms",
                        batch.len(),
                        delay.as_millis()
                    );
                    self.client = None;
                    std::thread::sleep(delay);
                }
                Err(e) if batch.len() == 1 => {
                    error!("DB writer: {e}: {}", batch.describe());
                    self.after_commit(batch, CommandStatus::ESME_RX_T_APPN);
                    return;
                }
                Err(e) => {
                    warn!(
                        "DB writer: batch of {} rejected: {e}; committing one by one",
                        batch.len()
                    );
                    for single in batch.into_singles() {
                        self.commit_with_retry(single);
                    }
                    return;
                }
            }
        }
    }

    fn connected(&mut self, backoff: &mut Backoff) -> Option<&mut Client> {
        if self.client.as_ref().is_some_and(|c| !c.is_closed()) {
            return self.client.as_mut();
        }
        match self.config.pg.connect(postgres::NoTls) {
            Ok(client) => {
                self.client = Some(client);
                self.client.as_mut()
            }
            Err(e) => {
                let e = db::pg("connect")(e);
                let delay = backoff.next_delay();
                warn!(
                    "DB writer: cannot connect to PostgreSQL: {e}; retrying in {} ms",
                    delay.as_millis()
                );
                std::thread::sleep(delay);
                None
            }
        }
    }

    /// Counts what was committed and answers the received PDUs with `status`.
    fn after_commit(&self, batch: Batch, status: CommandStatus) {
        if status == CommandStatus::ESME_ROK {
            for result in &batch.results {
                let counter = match result.outcome {
                    TxOutcome::Done { .. } => &self.stats.rows_done,
                    TxOutcome::Failed { .. } => &self.stats.rows_failed,
                    TxOutcome::Retry { .. } => &self.stats.rows_retried,
                    TxOutcome::Release => continue,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
            self.stats
                .stored
                .fetch_add(batch.rx_rows.len() as u64, Ordering::Relaxed);
        }
        for ack in batch.acks.into_iter().flatten() {
            let committed = Committed {
                sequence_number: ack.sequence_number,
                command: ack.command,
                status,
            };
            // The session may have ended since; the SMSC will then redeliver.
            let _ = ack.to.send(committed);
        }
    }
}

/// One transaction for the whole batch: results, then received rows.
fn commit(client: &mut Client, batch: &Batch, instance: &str) -> Result<(), db::DbError> {
    let mut transaction = client.transaction().map_err(db::pg("begin a batch"))?;
    if !batch.results.is_empty() {
        db::write_results(&mut transaction, &batch.results, instance)?;
    }
    if !batch.rx_rows.is_empty() {
        db::insert_rx(&mut transaction, &batch.rx_rows)?;
    }
    transaction.commit().map_err(db::pg("commit a batch"))?;
    Ok(())
}
