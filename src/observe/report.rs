//! `esmed status`: reads `esmed_status` and the operator views with the config's database
//! settings and prints a short table for humans (`to_text`) or the same as JSON (`to_json`).
//!
//! An instance whose row is older than three of its own heartbeats is not `fresh` (the
//! process died, or cannot reach the database). `healthy` — at least one fresh instance that
//! is bound — is what the exit status reports.

use std::fmt::Write;

use postgres::Client;

use crate::db::{pg, DbError};
use crate::logging::one_line;
use crate::observe::status_table::StatusColumns;
use crate::smpp::json::push_json_string;

/// One `esmed_status` row as `esmed status` shows it: the columns the heartbeat wrote, and
/// the times as PostgreSQL formats them.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceStatus {
    pub columns: StatusColumns,
    pub last_error_at: Option<String>,
    pub started_at: String,
    pub(crate) updated_at: String,
    pub(crate) seconds_since_update: f64,
    /// Updated within the last three heartbeats.
    pub fresh: bool,
}

/// Everything `esmed status` prints.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub instances: Vec<InstanceStatus>,
    /// `esmed_queue_depth`: (state, messages) in the view's order.
    pub(crate) queue: Vec<(String, i64)>,
    pub(crate) oldest_pending_seconds: f64,
    pub(crate) unfinished: i64,
    /// Messages inserted in the last hour that are done / failed by now.
    pub(crate) last_hour_done: i64,
    pub(crate) last_hour_failed: i64,
    /// The PostgreSQL server the report was read from (of several in `[database] host`, the
    /// one that took the connection: with `target_session_attrs = read-write`, the primary
    /// esmed writes to); None when not known.
    pub(crate) database: Option<String>,
}

const INSTANCES: &str = "
    SELECT instance, host, pid, server_id, server_name, session_state, window_in_use,
        window_size, out_per_second, in_per_second, submitted_total, done_total, failed_total,
        received_total, last_error, tls_unverified, to_json(last_error_at) #>> '{}',
        to_json(started_at) #>> '{}',
        to_json(updated_at) #>> '{}', extract(epoch FROM now() - updated_at)::float8,
        updated_at >= now() - 3 * heartbeat_seconds::float8 * interval '1 second'
    FROM esmed_status ORDER BY instance";

const LAST_HOUR: &str = "
    SELECT count(*) FILTER (WHERE submission_done),
           count(*) FILTER (WHERE submission_failed AND NOT submission_done)
    FROM smpp_tx_queue WHERE insert_timestamp >= now() - interval '1 hour'";

/// Connects as the config says and reads the report.
pub fn connect_and_gather(database: &crate::config::DatabaseConfig) -> Result<Report, DbError> {
    let connector = crate::db::PgConnector::new(database);
    let (mut client, host) = connector.connect_to()?;
    let host = host.to_string();
    let mut report = gather(&mut client)?;
    report.database = Some(host);
    Ok(report)
}

/// Reads the report in one snapshot (a repeatable-read transaction, so counts agree).
pub fn gather(client: &mut Client) -> Result<Report, DbError> {
    let mut tx = client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(pg("begin"))?;
    let instances = tx
        .query(INSTANCES, &[])
        .map_err(pg("read esmed_status"))?
        .iter()
        .map(instance_from_row)
        .collect();
    let queue = tx
        .query("SELECT state, messages FROM esmed_queue_depth", &[])
        .map_err(pg("read esmed_queue_depth"))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let oldest = tx
        .query_one(
            "SELECT age_seconds, unfinished FROM esmed_oldest_pending",
            &[],
        )
        .map_err(pg("read esmed_oldest_pending"))?;
    let last_hour = tx
        .query_one(LAST_HOUR, &[])
        .map_err(pg("count the last hour"))?;
    tx.commit().map_err(pg("commit"))?;
    Ok(Report {
        instances,
        queue,
        oldest_pending_seconds: oldest.get(0),
        unfinished: oldest.get(1),
        last_hour_done: last_hour.get(0),
        last_hour_failed: last_hour.get(1),
        database: None,
    })
}

/// The query's first columns are [`StatusColumns`]' in their order; the times follow.
fn instance_from_row(r: &postgres::Row) -> InstanceStatus {
    let next = StatusColumns::COUNT;
    InstanceStatus {
        columns: StatusColumns::from_row(r),
        last_error_at: r.get(next),
        started_at: r.get(next + 1),
        updated_at: r.get(next + 2),
        seconds_since_update: r.get(next + 3),
        fresh: r.get::<_, Option<bool>>(next + 4).unwrap_or(false),
    }
}

impl InstanceStatus {
    pub(crate) fn is_bound(&self) -> bool {
        self.columns.session_state.starts_with("bound")
    }

    /// The state column: the row's state, or "not running?" when the row is stale.
    pub(crate) fn shown_state(&self) -> String {
        if self.fresh {
            self.columns.session_state.clone()
        } else {
            format!("not running? (was: {})", self.columns.session_state)
        }
    }

    fn server(&self) -> String {
        match (self.columns.server_id, self.columns.server_name.as_deref()) {
            (None, _) => "-".into(),
            (Some(id), Some(name)) if !name.is_empty() => format!("{id} '{name}'"),
            (Some(id), _) => id.to_string(),
        }
    }

    fn window(&self) -> String {
        match self.columns.window_size {
            Some(size) => format!("{}/{size}", self.columns.window_in_use),
            None => self.columns.window_in_use.to_string(),
        }
    }
}

impl Report {
    /// At least one instance is fresh and bound: the exit status 0 case.
    pub fn healthy(&self) -> bool {
        self.instances.iter().any(|i| i.fresh && i.is_bound())
    }

    fn queue_count(&self, state: &str) -> i64 {
        self.queue
            .iter()
            .find(|(s, _)| s == state)
            .map_or(0, |(_, n)| *n)
    }

    pub fn to_text(&self) -> String {
        let mut rows = vec![[
            "INSTANCE", "HOST", "PID", "STATE", "SERVER", "WINDOW", "OUT/S", "IN/S", "DONE",
            "FAILED", "UPDATED",
        ]
        .map(String::from)
        .to_vec()];
        for i in &self.instances {
            rows.push(vec![
                i.columns.instance.clone(),
                i.columns.host.clone(),
                i.columns.pid.to_string(),
                i.shown_state(),
                i.server(),
                i.window(),
                format!("{:.1}", i.columns.out_per_second),
                format!("{:.1}", i.columns.in_per_second),
                i.columns.done_total.to_string(),
                i.columns.failed_total.to_string(),
                format!("{:.0}s ago", i.seconds_since_update.max(0.0)),
            ]);
        }
        let mut out = if self.instances.is_empty() {
            "no esmed instance has written esmed_status (none running?)\n".to_string()
        } else {
            table(&rows)
        };
        for i in self.instances.iter().filter(|i| i.columns.tls_unverified) {
            let _ = writeln!(
                out,
                "{}: TLS WITHOUT CERTIFICATE CHECK (smpp_tls_verify = false): anyone on the \
                 path can pose as the SMSC and read the bind password and every message",
                i.columns.instance
            );
        }
        for i in &self.instances {
            if let Some(error) = &i.columns.last_error {
                // The error may quote what the SMSC sent: one line, like the log.
                let at = i.last_error_at.as_deref().unwrap_or("?");
                let _ = writeln!(
                    out,
                    "{}: last error at {at}: {}",
                    one_line(&i.columns.instance),
                    one_line(error)
                );
            }
        }
        let _ = writeln!(
            out,
            "queue: {} pending, {} in flight, {} waiting to retry, {} done, {} failed",
            self.queue_count("pending"),
            self.queue_count("in_flight"),
            self.queue_count("retry_waiting"),
            self.queue_count("done"),
            self.queue_count("failed"),
        );
        let _ = writeln!(
            out,
            "oldest unfinished message: {:.0} s old ({} unfinished)",
            self.oldest_pending_seconds, self.unfinished
        );
        let _ = writeln!(
            out,
            "inserted in the last hour: {} done, {} failed",
            self.last_hour_done, self.last_hour_failed
        );
        if let Some(database) = &self.database {
            let _ = writeln!(out, "database: {database}");
        }
        out
    }

    pub fn to_json(&self) -> String {
        let mut out = String::from("{\"instances\":[");
        for (n, i) in self.instances.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            instance_json(&mut out, i);
        }
        out.push_str("],\"queue\":{");
        for (n, (state, count)) in self.queue.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            push_json_string(&mut out, state);
            let _ = write!(out, ":{count}");
        }
        let _ = write!(
            out,
            "}},\"oldest_pending_seconds\":{},\"unfinished\":{},\
             \"last_hour\":{{\"done\":{},\"failed\":{}}},\"healthy\":{}}}",
            json_number(self.oldest_pending_seconds),
            self.unfinished,
            self.last_hour_done,
            self.last_hour_failed,
            self.healthy()
        );
        if let Some(database) = &self.database {
            out.pop();
            out.push_str(",\"database\":");
            push_json_string(&mut out, database);
            out.push('}');
        }
        out
    }
}

fn instance_json(out: &mut String, i: &InstanceStatus) {
    let text = |out: &mut String, key: &str, value: Option<&str>| {
        let _ = write!(out, "\"{key}\":");
        match value {
            Some(value) => push_json_string(out, value),
            None => out.push_str("null"),
        }
        out.push(',');
    };
    out.push('{');
    text(out, "instance", Some(&i.columns.instance));
    text(out, "host", Some(&i.columns.host));
    text(out, "session_state", Some(&i.columns.session_state));
    text(out, "server_name", i.columns.server_name.as_deref());
    text(out, "last_error", i.columns.last_error.as_deref());
    text(out, "last_error_at", i.last_error_at.as_deref());
    text(out, "started_at", Some(&i.started_at));
    text(out, "updated_at", Some(&i.updated_at));
    let number = |n: Option<i32>| n.map_or("null".to_string(), |n| n.to_string());
    let _ = write!(
        out,
        "\"pid\":{},\"server_id\":{},\"window_in_use\":{},\"window_size\":{},\
         \"out_per_second\":{},\"in_per_second\":{},\"submitted_total\":{},\"done_total\":{},\
         \"failed_total\":{},\"received_total\":{},\"tls_unverified\":{},\
         \"seconds_since_update\":{},\"fresh\":{}}}",
        i.columns.pid,
        number(i.columns.server_id),
        i.columns.window_in_use,
        number(i.columns.window_size),
        json_number(f64::from(i.columns.out_per_second)),
        json_number(f64::from(i.columns.in_per_second)),
        i.columns.submitted_total,
        i.columns.done_total,
        i.columns.failed_total,
        i.columns.received_total,
        i.columns.tls_unverified,
        json_number(i.seconds_since_update),
        i.fresh
    );
}

/// JSON has no NaN or infinity; rounds to milliseconds, which is all a status needs.
fn json_number(value: f64) -> String {
    if value.is_finite() {
        format!("{:.3}", value)
    } else {
        "null".into()
    }
}

/// Left-aligned columns two spaces apart.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |s| one_line(s).chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(&widths) {
            let _ = write!(line, "{:<width$}  ", one_line(cell));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(name: &str, state: &str, fresh: bool) -> InstanceStatus {
        InstanceStatus {
            columns: StatusColumns {
                instance: name.into(),
                host: "h".into(),
                pid: 42,
                server_id: Some(1),
                server_name: Some("main".into()),
                session_state: state.into(),
                window_in_use: 3,
                window_size: Some(10),
                out_per_second: 12.5,
                in_per_second: 0.0,
                submitted_total: 100,
                done_total: 99,
                failed_total: 1,
                received_total: 0,
                last_error: Some("session lost: \"reset\"".into()),
                tls_unverified: false,
            },
            last_error_at: Some("2025-01-01T00:00:00+00:00".into()),
            started_at: "2025-01-01T00:00:00+00:00".into(),
            updated_at: "2025-01-01T00:01:00+00:00".into(),
            seconds_since_update: 1.25,
            fresh,
        }
    }

    fn report(instances: Vec<InstanceStatus>) -> Report {
        Report {
            instances,
            queue: vec![("pending".into(), 5), ("done".into(), 99)],
            oldest_pending_seconds: 7.5,
            unfinished: 5,
            last_hour_done: 99,
            last_hour_failed: 1,
            database: Some("db2.example:5433".into()),
        }
    }

    #[test]
    fn healthy_needs_a_fresh_bound_instance() {
        assert!(!report(vec![]).healthy());
        assert!(!report(vec![instance("a", "bound transceiver", false)]).healthy());
        assert!(!report(vec![instance("a", "connecting", true)]).healthy());
        assert!(report(vec![
            instance("a", "connecting", true),
            instance("b", "bound transmitter+receiver", true)
        ])
        .healthy());
    }

    #[test]
    fn text_shows_the_table_stale_rows_and_the_queue() {
        let text = report(vec![
            instance("a", "bound transceiver", true),
            instance("b", "bound transceiver", false),
        ])
        .to_text();
        assert!(text.starts_with("INSTANCE  HOST  PID  STATE"), "{text}");
        assert!(
            text.contains("not running? (was: bound transceiver)"),
            "{text}"
        );
        assert!(text.contains("1 'main'  3/10"), "{text}");
        assert!(
            text.contains("queue: 5 pending, 0 in flight, 0 waiting to retry, 99 done, 0 failed")
        );
        assert!(
            text.contains("oldest unfinished message: 8 s old (5 unfinished)"),
            "{text}"
        );
        assert!(text.contains("a: last error at 2025-01-01T00:00:00+00:00: session lost"));
        let mut forged = instance("c", "bound transceiver", true);
        forged.columns.last_error = Some("lost\n2026-01-01 00:00:00 [ERROR] forged".into());
        forged.columns.server_name = Some("main\r\nx".into());
        let text = report(vec![forged]).to_text();
        assert!(
            text.lines()
                .all(|l| !l.starts_with("2026") && !l.starts_with('x')),
            "{text}"
        );
        assert!(text.contains("lost\\n2026-01-01"), "{text}");
        assert!(report(vec![]).to_text().starts_with("no esmed instance"));
        assert!(text.ends_with("\ndatabase: db2.example:5433\n"), "{text}");
    }

    #[test]
    fn json_escapes_and_carries_every_field() {
        let json = report(vec![instance("a", "bound transceiver", true)]).to_json();
        assert!(
            json.starts_with("{\"instances\":[{\"instance\":\"a\""),
            "{json}"
        );
        assert!(
            json.contains("\"last_error\":\"session lost: \\\"reset\\\"\""),
            "{json}"
        );
        assert!(
            json.contains("\"queue\":{\"pending\":5,\"done\":99}"),
            "{json}"
        );
        assert!(
            json.contains("\"window_size\":10,\"out_per_second\":12.500"),
            "{json}"
        );
        assert!(json.ends_with(
            "\"last_hour\":{\"done\":99,\"failed\":1},\"healthy\":true,\
             \"database\":\"db2.example:5433\"}"
        ));
        assert!(json.contains("\"tls_unverified\":false,"), "{json}");
        assert_eq!(json_number(f64::NAN), "null");
    }

    #[test]
    fn unverified_tls_is_flagged_in_text_and_json() {
        let mut unchecked = instance("a", "bound transceiver", true);
        unchecked.columns.tls_unverified = true;
        let report = report(vec![unchecked, instance("b", "bound transceiver", true)]);
        let text = report.to_text();
        let flagged: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("TLS WITHOUT CERTIFICATE CHECK"))
            .collect();
        assert_eq!(flagged.len(), 1, "{text}");
        assert!(flagged[0].starts_with("a: "), "{text}");
        let json = report.to_json();
        assert!(json.contains("\"tls_unverified\":true,"), "{json}");
    }
}
