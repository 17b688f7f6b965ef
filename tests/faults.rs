//! The fault suite: a real PostgreSQL, the test SMSC (or a raw fake one) and the
//! esmed binary, each case bounded in time. Every case checks row-level outcomes against what
//! the SMSC itself received: every row ends done, a row reaches the SMSC more than once only
//! when a response was lost (and then it is counted in submission_resends and logged with its
//! id), and nothing the SMSC sends makes esmed panic, hang or grow.

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use esmed::smpp::{Body, CommandId, CommandStatus, Pdu};
use esmed_smsc::{Faults, MoMessage, Smsc, SmscConfig};
use support::fake_smsc::{submit_sm_resp, FakeSmsc, Request};
use support::pg_proxy::{Cut, PgProxy, Tx};
use support::tls::TestPki;
use support::{deliveries, wait_until, Env, Esmed};

const T: Duration = Duration::from_secs(30);

/// How many submit_sm the SMSC received for each row id.
fn sends_per_row(env: &Env) -> HashMap<i64, usize> {
    let ids: HashMap<String, i64> = env
        .db()
        .query("SELECT smpp_destination_addr, id FROM smpp_tx_queue", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut sends = HashMap::new();
    for received in env.smsc.submits() {
        if let Body::SubmitSm(sm) = &received.pdu.body {
            let id = ids[&sm.destination.addr.to_string()];
            *sends.entry(id).or_insert(0) += 1;
        }
    }
    sends
}

/// Rows the SMSC got more than once.
fn duplicated(sends: &HashMap<i64, usize>) -> Vec<i64> {
    let mut rows: Vec<i64> = sends
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| *id)
        .collect();
    rows.sort_unstable();
    rows
}

fn resends_of(env: &Env, id: i64) -> i32 {
    env.db()
        .query_one(
            "SELECT submission_resends FROM smpp_tx_queue WHERE id = $1",
            &[&id],
        )
        .unwrap()
        .get(0)
}

/// Every row reached the SMSC at least once; the duplicated ones are at most `max`, each is
/// counted in submission_resends and named in one of the logs. Returns them.
fn check_duplicates(env: &Env, rows: i32, max: usize, logs: &[&Esmed]) -> Vec<i64> {
    let sends = sends_per_row(env);
    assert_eq!(sends.len(), rows as usize, "every row reached the SMSC");
    let dups = duplicated(&sends);
    let text: String = logs.iter().map(|e| e.log()).collect();
    assert!(
        dups.len() <= max,
        "{} duplicates > {max}: {dups:?}\n{text}",
        dups.len()
    );
    for id in &dups {
        assert!(
            resends_of(env, *id) >= 1,
            "row {id} sent twice, not counted"
        );
        assert!(
            text.contains(&format!("row {id}: ")) || text.contains(&format!("row {id} part")),
            "row {id} sent twice, not logged\n{text}"
        );
    }
    dups
}

/// Rows `instance` holds without a committed result (read right after killing it: nobody
/// else can take them before their lease runs out): its window in flight, rows waiting for
/// room, and answers not committed yet. Only these may be sent twice.
fn held_by(env: &Env, instance: &str) -> Vec<i64> {
    env.db()
        .query(
            "SELECT id FROM smpp_tx_queue WHERE claimed_by = $1",
            &[&instance],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn alive(esmed: &Esmed) -> bool {
    std::fs::read_to_string(format!("/proc/{}/status", esmed.pid()))
        .is_ok_and(|s| !s.contains("State:\tZ"))
}

fn assert_no_panic(esmed: &Esmed) {
    let log = esmed.log();
    assert!(!log.contains("panicked"), "{log}");
    assert!(alive(esmed), "esmed died\n{log}");
}

/// Case 1: The SMSC drops the connection while a full window waits for delayed responses.
#[test]
fn a_dropped_connection_with_a_full_window_resends_at_most_a_window() {
    let env = Env::new("drop");
    env.smsc.set_faults(Faults {
        drop_after: Some(25),
        response_delay: Some(Duration::from_millis(200)),
        ..Faults::default()
    });
    env.add_server(&[("smpp_window", "10")]);
    env.insert_many(100, "fault case ");
    let esmed = env.esmed("drop", "");
    env.wait_all("submission_done", T, &esmed);
    let dups = check_duplicates(&env, 100, 10, &[&esmed]);
    assert!(!dups.is_empty(), "the drop lost some responses");
    assert!(env.smsc.binds().len() >= 2, "reconnected");
    assert_no_panic(&esmed);
}

/// Case 4b: with `target_session_attrs = any`, a failover can leave esmed on a standby,
/// where every write is refused as read-only (25006). The answers the SMSC gave meanwhile
/// are kept and committed once writes work again: given up on, their rows would be sent a
/// second time when the lease ran out.
#[test]
fn results_refused_by_a_read_only_database_are_kept_until_it_takes_writes() {
    let env = Env::new("readonly");
    env.smsc.set_faults(Faults {
        response_delay: Some(Duration::from_millis(1500)),
        ..Faults::default()
    });
    env.add_server(&[("smpp_window", "10")]);
    env.insert_many(10, "fault case ");
    let database = "sslmode = disable\ntarget_session_attrs = any\n";
    let esmed = env.esmed_with_tls("readonly", database, "lease = 10s");
    assert!(env.smsc.wait_for_submits(10, T));
    // From now on every connection of esmed's is read-only, and its current ones are cut.
    let mut admin = env.db();
    admin
        .batch_execute(
            "ALTER ROLE esmed SET default_transaction_read_only = on; \
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'esmed'",
        )
        .unwrap();
    wait_until(T, "a refused commit", &esmed, || {
        esmed.log().contains("PostgreSQL cannot take now")
    });
    std::thread::sleep(Duration::from_secs(2));
    admin
        .batch_execute("ALTER ROLE esmed RESET default_transaction_read_only")
        .unwrap();
    // The poller could connect but not claim: it waited longer each time, it did not hammer
    // the server with a connection every few milliseconds.
    let refused_claims = esmed.log().matches("poller: claiming rows failed").count();
    assert!(refused_claims <= 10, "{refused_claims} claims in 2 s");
    env.wait_all("submission_done", T, &esmed);
    check_duplicates(&env, 10, 0, &[&esmed]);
    assert!(esmed.log().contains("25006"), "the reason is logged");
    assert_no_panic(&esmed);
}

/// esmed started while PostgreSQL is down says so, waits for it with backoff, and then
/// sends the queue as usual.
#[test]
fn esmed_started_before_postgresql_waits_for_it_and_then_sends() {
    let mut env = Env::new("pgfirst");
    env.add_server(&[]);
    env.insert_many(5, "sent once PostgreSQL is up ");
    env.cluster.stop_fast().expect("stop PostgreSQL");
    let esmed = env.esmed("pgfirst", "");
    wait_until(T, "a failed first connection", &esmed, || {
        esmed.log().contains("cannot connect to PostgreSQL")
    });
    env.cluster.start_again().expect("start PostgreSQL again");
    env.wait_all("submission_done", T, &esmed);
    check_duplicates(&env, 5, 0, &[&esmed]);
    assert_no_panic(&esmed);
}

/// A database thread refused for a reason retrying will not fix (here the role's password
/// changed under a running esmed and its connections cut) gives up, and esmed stops in order
/// and exits 1 naming the thread and the reason, for the init system to start it again: it
/// neither retries the refusal for ever nor exits 0.
#[test]
fn a_database_thread_refused_for_good_stops_esmed_with_exit_code_1() {
    let env = Env::new("refused");
    env.add_server(&[]);
    env.insert_many(3, "refused case ");
    let mut esmed = env.esmed("refused", "");
    env.wait_all("submission_done", T, &esmed);
    env.db()
        .batch_execute(
            "ALTER ROLE esmed PASSWORD 'not-the-configured-one'; \
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'esmed'",
        )
        .unwrap();
    let status = esmed.wait(T);
    let log = esmed.log();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("thread has ended; stopping esmed"), "{log}");
    assert!(
        log.contains("stopped: the ")
            && log.contains(" thread gave up: ")
            && log.contains("password authentication failed"),
        "{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
}

/// Case 6b: SIGTERM while PostgreSQL is down and the SMSC's answers are on their way. The stop
/// gives nothing up while PostgreSQL may come back: it waits, says for which rows and what a
/// second SIGTERM would cost, and once PostgreSQL is back commits every result and exits 0,
/// with nothing sent twice.
#[test]
fn a_stop_while_postgresql_is_down_waits_for_it_and_says_for_what() {
    let mut env = Env::new("stopwait");
    env.smsc.set_faults(Faults {
        response_delay: Some(Duration::from_millis(1500)),
        ..Faults::default()
    });
    env.add_server(&[("smpp_window", "10")]);
    env.insert_many(10, "stop case ");
    let mut esmed = env.esmed("stopwait", "");
    assert!(env.smsc.wait_for_submits(10, T));
    env.cluster.stop_fast().expect("stop PostgreSQL");
    esmed.signal("TERM");
    // The answers may reach the writer in one batch or several: the notice names the rows of
    // the one it holds and counts those queued behind it.
    wait_until(T, "the stop's notice", &esmed, || {
        esmed
            .log()
            .contains("DB writer: stopping waits for PostgreSQL to commit the results of row")
    });
    let log = esmed.log();
    assert!(
        log.contains("possible duplicates, if esmed exits first")
            && log.contains("; a second SIGTERM exits at once"),
        "{log}"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        alive(&esmed),
        "still waiting for PostgreSQL\n{}",
        esmed.log()
    );
    env.cluster.start_again().expect("start PostgreSQL again");
    assert!(esmed.wait(T).success(), "{}", esmed.log());
    let done: i64 = env
        .db()
        .query_one(
            "SELECT count(*) FROM smpp_tx_queue WHERE submission_done",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(done, 10, "{}", esmed.log());
    check_duplicates(&env, 10, 0, &[&esmed]);
    assert!(!esmed.log().contains("panicked"));
}

/// Case 2: Some submits are never answered: the response timer fires and the row is sent again.
#[test]
fn unanswered_submits_time_out_and_are_retried() {
    let env = Env::new("noanswer");
    env.smsc.set_faults(Faults {
        never_answer_every: Some(7),
        ..Faults::default()
    });
    env.add_server(&[("smpp_window", "5"), ("smpp_response_timer", "1")]);
    env.insert_many(30, "fault case ");
    let esmed = env.esmed("noanswer", "");
    env.wait_all("submission_done", T, &esmed);
    let dups = check_duplicates(&env, 30, 30, &[&esmed]);
    assert!(
        dups.len() >= 4,
        "every 7th of 30+ submits was swallowed: {dups:?}"
    );
    assert!(esmed.log().contains("no submit_sm_resp for seq"));
    assert_no_panic(&esmed);
}

/// Case 3: 30 % refusals plus a rate cap: everything goes through, on the first attempt.
#[test]
fn throttling_and_a_rate_cap_deliver_everything_without_using_attempts() {
    let env = Env::new("throttle30");
    env.smsc.set_faults(Faults {
        throttle_ratio: Some(0.3),
        max_rate: Some(50),
        ..Faults::default()
    });
    env.add_server(&[("smpp_window", "20"), ("esme_max_submission_attempts", "1")]);
    env.insert_many(150, "fault case ");
    let esmed = env.esmed("throttle30", "");
    env.wait_all(
        "submission_done AND submission_attempts = 1 AND submission_resends = 0",
        T,
        &esmed,
    );
    let submits = env.smsc.submits().len();
    assert!(submits > 150, "some were refused and sent again: {submits}");
    // Adaptive: esmed backs off instead of hammering; the refusals stay a minority beyond
    // the SMSC's own 30 %.
    assert!(submits < 150 * 3, "{submits} submits for 150 rows");
    assert_eq!(sends_per_row(&env).len(), 150);
    assert_no_panic(&esmed);
}

/// Case 5: SIGKILL mid-run, then a new process: in-flight rows go again once their lease runs
/// out (counted, logged); every other row exactly once.
#[test]
fn sigkill_then_restart_resends_only_the_in_flight_window() {
    let env = Env::new("sigkill");
    env.smsc.set_faults(Faults {
        response_delay: Some(Duration::from_millis(300)),
        ..Faults::default()
    });
    env.add_server(&[("smpp_window", "5")]);
    env.insert_many(40, "fault case ");
    let mut first = env.esmed(
        "kill1",
        "lease = 2s\nclaim_batch = 5\nstrict_resend_bound = true",
    );
    assert!(env.smsc.wait_for_submits(10, T));
    first.kill();
    let held = held_by(&env, "kill1");
    let second = env.esmed("kill2", "lease = 2s\nclaim_batch = 5");
    env.wait_all("submission_done", T, &second);
    let dups = check_duplicates(&env, 40, held.len(), &[&second, &first]);
    for id in &dups {
        assert!(
            held.contains(id),
            "row {id} sent twice, not held by kill1: {held:?}"
        );
    }
    assert!(!dups.is_empty(), "the killed window was resent");
    assert!(
        dups.len() <= 5,
        "more than one window (5) sent twice: {dups:?}"
    );
    assert!(second
        .log()
        .contains("the lease of instance 'kill1' ran out"));
    assert_eq!(env.count("claimed_by IS NOT NULL"), 0);
}

/// For each row, how many of its segments the SMSC received more than once (a part sent three
/// times counts twice). Parts are told apart by their UDH's part number.
fn resent_segments(env: &Env) -> HashMap<i64, usize> {
    let ids: HashMap<String, i64> = env
        .db()
        .query("SELECT smpp_destination_addr, id FROM smpp_tx_queue", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut sends: HashMap<(i64, u8), usize> = HashMap::new();
    for received in env.smsc.submits() {
        if let Body::SubmitSm(sm) = &received.pdu.body {
            let id = ids[&sm.destination.addr.to_string()];
            // UDH 05 00 03 ref total part
            let part = if sm.esm_class & 0x40 != 0 {
                sm.short_message[5]
            } else {
                1
            };
            *sends.entry((id, part)).or_insert(0) += 1;
        }
    }
    let mut resent = HashMap::new();
    for ((id, _), n) in sends {
        if n > 1 {
            *resent.entry(id).or_insert(0) += n - 1;
        }
    }
    resent
}

/// Case 5b: SIGKILL while long messages go out: the parts the SMSC accepted count against the
/// window until their row's result is committed, so what a kill sends again is at most one
/// window of segments, as for single-part messages.
#[test]
fn sigkill_with_long_messages_resends_at_most_a_window_of_segments() {
    let env = Env::new("sigkill-long");
    env.smsc.set_faults(Faults {
        response_delay: Some(Duration::from_millis(300)),
        ..Faults::default()
    });
    env.add_server(&[("smpp_window", "5")]);
    // 400-odd GSM characters: three parts each.
    env.insert_many(30, &"long case ".repeat(40));
    let mut first = env.esmed(
        "klong1",
        "lease = 2s\nclaim_batch = 5\nstrict_resend_bound = true",
    );
    assert!(env.smsc.wait_for_submits(10, T));
    first.kill();
    let held = held_by(&env, "klong1");
    let second = env.esmed("klong2", "lease = 2s\nclaim_batch = 5");
    env.wait_all("submission_done", T, &second);
    let resent = resent_segments(&env);
    let logs = format!("{}{}", first.log(), second.log());
    for id in resent.keys() {
        assert!(
            held.contains(id),
            "row {id} resent, not held by klong1: {held:?}"
        );
        assert!(resends_of(&env, *id) >= 1, "row {id} resent, not counted");
        assert!(
            logs.contains(&format!("row {id}: ")),
            "row {id} not logged\n{logs}"
        );
    }
    let total: usize = resent.values().sum();
    assert!(total > 0, "the killed window was resent");
    assert!(
        total <= 5,
        "{total} segments sent twice, more than one window (5): {resent:?}"
    );
    assert_eq!(env.count("claimed_by IS NOT NULL"), 0);
}

/// Case 7: Three processes on one queue, one killed: with `strict_resend_bound = true` only
/// its in-flight window goes twice.
#[test]
fn three_processes_one_killed_resend_only_its_window() {
    three_processes_one_killed("three", "strict_resend_bound = true\n", 10);
}

/// Case 7 with its own bound on answered-but-uncommitted results: at most the window (10)
/// plus that bound (10) go twice.
#[test]
fn without_the_strict_bound_a_kill_resends_at_most_the_window_and_the_bound() {
    three_processes_one_killed("threeloose", "max_uncommitted_results = 10\n", 20);
}

/// Makes every commit of results (an UPDATE that marks a row done) take a second, so that
/// answered results pile up waiting for their commit while the SMSC answers at once.
fn slow_result_commits(env: &Env) {
    env.db()
        .batch_execute(
            "CREATE FUNCTION slow_results() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF EXISTS (SELECT 1 FROM done_now WHERE submission_done) THEN
                     PERFORM pg_sleep(1);
                 END IF;
                 RETURN NULL;
             END $$;
             CREATE TRIGGER slow_results AFTER UPDATE ON smpp_tx_queue
                 REFERENCING NEW TABLE AS done_now
                 FOR EACH STATEMENT EXECUTE FUNCTION slow_results();",
        )
        .expect("create the slow-commit trigger");
}

/// Waits until the SMSC has received at least `least` submits and then none for half a
/// second: esmed stopped submitting (its bound is reached).
fn wait_for_submits_to_stop(env: &Env, least: usize, esmed: &Esmed) -> usize {
    let mut last = (0, Instant::now());
    wait_until(T, &format!("{least} submits, then a pause"), esmed, || {
        let n = env.smsc.submits().len();
        if n != last.0 {
            last = (n, Instant::now());
        }
        n >= least && last.1.elapsed() >= Duration::from_millis(500)
    });
    last.0
}

/// Case 7c: SIGKILL while every results commit is slow, at windows 10 and 1000: submits go on
/// while answered results wait for their commit, until `max_uncommitted_results` of them
/// wait; a kill then resends at most `smpp_window` plus that bound, each resent row counted
/// in submission_resends and logged. With `strict_resend_bound = true`, at most one window.
fn sigkill_while_commits_lag(name: &str, window: usize, bound: usize, strict: bool) {
    let env = Env::new(name);
    slow_result_commits(&env);
    env.add_server(&[("smpp_window", &window.to_string())]);
    // More rows than can be at risk, so that the bound, not the queue, stops the submits.
    let rows = 2 * window + bound;
    env.insert_many(i32::try_from(rows).unwrap(), "lagging commit ");
    // Batches of a fifth of the bound (of one with the strict bound, whose answers come a
    // window at a time): the batch committing when esmed is killed still commits (its backend
    // finishes the statement), the others are what the kill puts at risk.
    let batch = if strict { 1 } else { bound / 5 };
    let mut extra =
        format!("lease = 2s\nmax_uncommitted_results = {bound}\nresult_batch = {batch}\n");
    if strict {
        extra.push_str("strict_resend_bound = true\n");
    }
    let mut first = env.esmed(&format!("{name}1"), &extra);
    let at_risk = if strict { window } else { window + bound };
    // The first result's commit takes a second; everything answered after it waits.
    let submitted = wait_for_submits_to_stop(&env, at_risk / 2, &first);
    first.kill();
    let held = held_by(&env, &format!("{name}1"));
    env.db()
        .batch_execute("DROP TRIGGER slow_results ON smpp_tx_queue")
        .unwrap();
    let second = env.esmed(&format!("{name}2"), "lease = 2s");
    env.wait_all("submission_done", T, &second);
    let dups = check_duplicates(
        &env,
        i32::try_from(rows).unwrap(),
        at_risk,
        &[&second, &first],
    );
    for id in &dups {
        assert!(
            held.contains(id),
            "row {id} resent, not held by the killed esmed"
        );
    }
    // The bound was used, not just kept by chance: more than a window of results waited
    // for their commit, and were sent again (with the strict bound, some were).
    let least = if strict { 1 } else { window + 1 };
    assert!(
        dups.len() >= least,
        "{} resent of {submitted} submitted; at least {least} expected",
        dups.len()
    );
    assert_eq!(env.count("claimed_by IS NOT NULL"), 0);
    assert_no_panic(&second);
}

#[test]
fn sigkill_at_window_10_resends_at_most_the_window_and_the_uncommitted_bound() {
    sigkill_while_commits_lag("lag10-", 10, 50, false);
}

#[test]
fn sigkill_at_window_1000_resends_at_most_the_window_and_the_uncommitted_bound() {
    sigkill_while_commits_lag("lag1000-", 1000, 2000, false);
}

#[test]
fn sigkill_with_the_strict_bound_resends_at_most_one_window_while_commits_lag() {
    sigkill_while_commits_lag("lagstrict-", 10, 50, true);
}

fn three_processes_one_killed(name: &str, config: &str, max_duplicates: usize) {
    let env = Env::new(name);
    env.smsc.set_faults(Faults {
        response_delay: Some(Duration::from_millis(20)),
        ..Faults::default()
    });
    env.add_server(&[("smpp_window", "10")]);
    env.insert_many(600, "fault case ");
    let extra = format!("{config}lease = 2s\nclaim_batch = 10");
    let a = env.esmed("p1", &extra);
    let mut b = env.esmed("p2", &extra);
    let c = env.esmed("p3", &extra);
    wait_until(T, "150 rows done", &a, || {
        env.count("submission_done") >= 150
    });
    b.kill();
    let held = held_by(&env, "p2");
    env.wait_all("submission_done", T, &a);
    let dups = check_duplicates(&env, 600, held.len(), &[&a, &c, &b]);
    for id in &dups {
        assert!(
            held.contains(id),
            "row {id} sent twice, not held by p2: {held:?}"
        );
    }
    assert!(
        dups.len() <= max_duplicates,
        "more than {max_duplicates} rows sent twice: {dups:?}"
    );
    assert_no_panic(&a);
    assert_no_panic(&c);
}

fn pdu(command_id: u32, status: u32, seq: u32, body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(16 + body.len()).unwrap();
    let mut out = Vec::new();
    for word in [len, command_id, status, seq] {
        out.extend_from_slice(&word.to_be_bytes());
    }
    out.extend_from_slice(body);
    out
}

/// A deliver_sm body from 447700900123 to ESMED with this data_coding, text and TLV bytes.
fn deliver_body(data_coding: u8, text: &[u8], tlvs: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 1, 1];
    b.extend_from_slice(b"447700900123\0");
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(b"ESMED\0");
    b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, data_coding, 0]);
    b.push(u8::try_from(text.len()).unwrap());
    b.extend_from_slice(text);
    b.extend_from_slice(tlvs);
    b
}

/// What esmed answered to our sequence number `seq`.
fn answer_to(env: &Env, seq: u32) -> Option<(CommandId, CommandStatus)> {
    env.smsc
        .received()
        .iter()
        .find(|r| r.pdu.sequence_number == seq && r.pdu.command_id().is_response())
        .map(|r| (r.pdu.command_id(), r.pdu.command_status))
}

fn wait_answer(env: &Env, esmed: &Esmed, seq: u32) -> (CommandId, CommandStatus) {
    wait_until(T, &format!("an answer to seq {seq}"), esmed, || {
        answer_to(env, seq).is_some()
    });
    answer_to(env, seq).unwrap()
}

/// Sends `bytes` and waits for esmed to bind again (the bytes broke the session).
fn send_and_expect_rebind(env: &Env, esmed: &Esmed, bytes: &[u8]) {
    let binds = env.smsc.binds().len();
    env.smsc.deliver_raw(bytes).unwrap();
    wait_until(T, "a rebind", esmed, || {
        env.smsc.binds().len() > binds && !env.smsc.bound_sessions().is_empty()
    });
}

/// A fake SMSC that refuses every bind with ESME_RINVPASWD; returns its port and a counter.
fn refusing_smsc() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 512];
            if stream.read(&mut buf).unwrap_or(0) >= 16 {
                let resp = pdu(0x8000_0009, 0x0E, 1, b"fake\0");
                let _ = stream.write_all(&resp);
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
    });
    (port, count)
}

/// Case 8: Hostile input: each kind is logged and nacked, or ends the session and esmed binds
/// again; it never panics, keeps working, and a flood does not grow its memory.
#[test]
fn a_hostile_smsc_gets_nacks_or_a_reconnect_never_a_panic() {
    let env = Env::new("hostile");
    let server = env.add_server(&[
        ("esme_bind_transceiver", "TRUE"),
        ("smpp_pdu_read_timer", "1"),
    ]);
    let esmed = env.esmed("hostile", "");
    assert!(env.smsc.wait_for_bound(1, T), "{}", esmed.log());

    // Unknown command id: generic_nack ESME_RINVCMDID.
    env.smsc
        .deliver_raw(&pdu(0x0000_0077, 0, 1001, b""))
        .unwrap();
    let answer = wait_answer(&env, &esmed, 1001);
    assert_eq!(
        answer,
        (CommandId::GenericNack, CommandStatus::ESME_RINVCMDID)
    );
    // A response to nothing we sent: logged and dropped.
    env.smsc
        .deliver_raw(&pdu(0x8000_0004, 0, 5555, b"abc\0"))
        .unwrap();
    // Invalid UCS2 (a lone surrogate and an odd byte): stored with text_invalid, answered OK.
    let bad_text = deliver_body(8, &[0xD8, 0x3D, 0x41], b"");
    env.smsc
        .deliver_raw(&pdu(0x0000_0005, 0, 1002, &bad_text))
        .unwrap();
    let answer = wait_answer(&env, &esmed, 1002);
    assert_eq!(answer, (CommandId::DeliverSmResp, CommandStatus::ESME_ROK));
    let invalid: bool = env
        .db()
        .query_one("SELECT text_invalid FROM smpp_rx_queue", &[])
        .unwrap()
        .get(0);
    assert!(invalid);
    // A TLV whose length runs past the PDU: deliver_sm_resp with an error status.
    let overrun = deliver_body(0, b"hi", &[0x04, 0x24, 0x00, 0xFF, 0x41, 0x42]);
    env.smsc
        .deliver_raw(&pdu(0x0000_0005, 0, 1003, &overrun))
        .unwrap();
    let (command, status) = wait_answer(&env, &esmed, 1003);
    assert_eq!(command, CommandId::DeliverSmResp);
    assert_ne!(status, CommandStatus::ESME_ROK);
    assert!(esmed.log().contains("unknown seq 5555"), "{}", esmed.log());

    // Broken framing: command_length 0, 15 and 2^31 are nacked and the session reopened; a
    // truncated PDU runs into smpp_pdu_read_timer; random bytes break the framing.
    for length in [0u32, 15, 1 << 31] {
        let mut bytes = length.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0x04, 0x00]);
        send_and_expect_rebind(&env, &esmed, &bytes);
    }
    let nacks = env
        .smsc
        .received()
        .iter()
        .filter(|r| {
            r.pdu.command_id() == CommandId::GenericNack
                && r.pdu.command_status == CommandStatus::ESME_RINVCMDLEN
        })
        .count();
    assert!(nacks >= 1, "bad command_length answered ESME_RINVCMDLEN");
    send_and_expect_rebind(&env, &esmed, &pdu(0x0000_0005, 0, 7, b"short")[..12]);
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let noise: Vec<u8> = (0..256)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect();
    let mut garbage = vec![0xFF, 0xFF, 0xFF, 0xFF];
    garbage.extend_from_slice(&noise);
    send_and_expect_rebind(&env, &esmed, &garbage);

    // A bind refused with an error: logged, retried, and esmed comes back when the server
    // row points to a working SMSC again.
    let (fake_port, refused) = refusing_smsc();
    let set_port = |port: u16| {
        env.db()
            .execute(
                "UPDATE smpp_servers SET port = $1 WHERE id = $2",
                &[&i32::from(port), &server],
            )
            .unwrap();
    };
    set_port(fake_port);
    wait_until(T, "two refused binds", &esmed, || {
        refused.load(std::sync::atomic::Ordering::SeqCst) >= 2
    });
    assert!(esmed.log().contains("bind refused: ESME_RINVPASWD"));
    let binds = env.smsc.binds().len();
    set_port(env.smsc.port());
    wait_until(T, "bound again", &esmed, || env.smsc.binds().len() > binds);
    assert!(env.smsc.wait_for_bound(1, T));

    // A flood of nonsense: answered, memory stays flat.
    let before = rss_kb(esmed.pid());
    let flood: Vec<u8> = (0..2000u32)
        .flat_map(|n| pdu(0x0000_0077, 0, 100_000 + n, b"xxxx"))
        .collect();
    for _ in 0..10 {
        env.smsc.deliver_raw(&flood).unwrap();
    }
    wait_until(T, "20000 nacks", &esmed, || {
        env.smsc
            .received()
            .iter()
            .filter(|r| r.pdu.sequence_number >= 100_000 && r.pdu.sequence_number < 102_000)
            .count()
            >= 20_000
    });
    let after = rss_kb(esmed.pid());
    assert!(after < before + 8 * 1024, "RSS {before} kB -> {after} kB");

    // Still working, both ways.
    env.insert("447700900999", "after the abuse");
    env.smsc
        .send_mo(MoMessage::text("447700900123", "ESMED", "still there?"));
    env.wait_all("submission_done", T, &esmed);
    wait_until(T, "the MO row", &esmed, || {
        env.db()
            .query(
                "SELECT 1 FROM smpp_rx_queue WHERE smpp_short_message = 'still there?'",
                &[],
            )
            .unwrap()
            .len()
            == 1
    });
    assert_no_panic(&esmed);
}

/// What esmed logs when the SMSC stops taking what it sends.
const STALLED: &str = "the SMSC has stopped reading";

/// Case 1b: an SMSC that stops reading. esmed's writes block once the socket buffers are
/// full; within smpp_response_timer the session ends as a lost connection would, esmed binds
/// again and the rows go out there, their resends counted. A SIGTERM while the writes are
/// blocked still ends esmed, with no row left claimed.
#[test]
fn an_smsc_that_stops_reading_ends_the_session_and_esmed_binds_again() {
    stalled_smsc("stall", None);
}

/// Case 1b over TLS.
#[test]
fn an_smsc_that_stops_reading_over_tls_ends_the_session_too() {
    stalled_smsc("stall-tls", Some(&TestPki::new("esmed stall CA")));
}

fn stalled_smsc(name: &str, pki: Option<&TestPki>) {
    let env = Env::new(name);
    let tls = pki.map(|pki| {
        esmed::tls::server_config(pki.chain_pem.as_bytes(), pki.key_pem.as_bytes(), None).unwrap()
    });
    let fake = FakeSmsc::start(tls, Box::new(|_: &Request| None));
    let ca_file = pki.map(|pki| format!("'{}'", pki.write_ca(&env.dir.0, "ca.pem").display()));
    // Each row one submit_sm of 30 kB (message_payload): a window of them is more than the
    // kernel buffers a socket's writes, however far it grows them.
    let mut columns = vec![
        ("smpp_window", "200"),
        ("smpp_long_message_mode", "'payload'"),
        ("smpp_response_timer", "4"),
    ];
    if let Some(ca_file) = &ca_file {
        columns.extend([("smpp_tls", "TRUE"), ("smpp_tls_ca_file", ca_file.as_str())]);
    }
    env.add_server_at(fake.port(), &columns);
    let mut esmed = env.esmed(name, "");
    wait_until(T, "the first bind", &esmed, || fake.binds() == 1);
    fake.stall_open_connections();
    let long = "stalled SMSC ".repeat(2300);
    env.insert_many(200, &long);
    wait_until(T, "a second bind", &esmed, || fake.binds() >= 2);
    assert!(esmed.log().contains(STALLED), "{}", esmed.log());
    env.wait_all("submission_done", T, &esmed);
    let resent: Vec<i64> = env
        .db()
        .query(
            "SELECT id FROM smpp_tx_queue WHERE submission_resends > 0",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        !resent.is_empty(),
        "rows written to the stalled connection went again"
    );
    let log = esmed.log();
    for id in &resent {
        assert!(
            log.contains(&format!("row {id}: ")),
            "row {id} not logged\n{log}"
        );
    }

    // Stalled again, and asked to stop while its writes are blocked.
    fake.stall_open_connections();
    env.insert_many(200, &long);
    // Blocked: a megabyte or more waits in esmed's send queue, and it no longer grows.
    wait_until(T, "esmed's writes blocked", &esmed, || {
        let unread = fake.unread_bytes();
        std::thread::sleep(Duration::from_millis(200));
        unread > 1 << 20 && fake.unread_bytes() == unread
    });
    assert!(esmed.terminate(T).success(), "{}", esmed.log());
    assert_eq!(
        fake.binds(),
        2,
        "stopped while blocked, not after binding again"
    );
    assert_eq!(esmed.log().matches(STALLED).count(), 2, "{}", esmed.log());
    assert_eq!(env.count("claimed_by IS NOT NULL"), 0, "{}", esmed.log());
    assert!(!esmed.log().contains("panicked"));
}

fn generic_nack(seq: u32, status: CommandStatus) -> Pdu {
    let mut pdu = Pdu::new(seq, Body::GenericNack);
    pdu.command_status = status;
    pdu
}

/// (submission_attempts, submission_resends, smpp_message_id) of a row.
fn outcome_of(env: &Env, id: i64) -> (i32, i32, String) {
    let row = env
        .db()
        .query_one(
            "SELECT submission_attempts, submission_resends, smpp_message_id \
             FROM smpp_tx_queue WHERE id = $1",
            &[&id],
        )
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

/// Case 8b: answers that do not answer what was sent under their sequence number. An
/// enquire_link_resp carrying a submit_sm's number leaves the submit waiting: its response
/// timer fires and the row goes again, counted. A generic_nack is never an acceptance, not
/// even with status 0. A submit_sm_resp carrying an enquire_link's number does not answer
/// the enquire_link, which then times out and ends the session.
#[test]
fn stray_responses_and_generic_nacks_never_settle_a_request() {
    let env = Env::new("stray");
    let fake = FakeSmsc::start(
        None,
        Box::new(|request: &Request| {
            let seq = request.pdu.sequence_number;
            match &request.pdu.body {
                Body::SubmitSm(sm) if request.seen_before == 0 => {
                    match sm.destination.addr.to_string().as_str() {
                        "447700900001" => Some(vec![Pdu::new(seq, Body::EnquireLinkResp)]),
                        "447700900002" => Some(vec![generic_nack(seq, CommandStatus::ESME_ROK)]),
                        "447700900003" => {
                            Some(vec![generic_nack(seq, CommandStatus::ESME_RSYSERR)])
                        }
                        _ => None,
                    }
                }
                Body::EnquireLink if request.connection >= 2 => {
                    Some(vec![submit_sm_resp(seq, 0, "not-an-answer")])
                }
                _ => None,
            }
        }),
    );
    env.add_server_at(fake.port(), &[("smpp_response_timer", "1")]);
    let ids: Vec<i64> = (1..=4)
        .map(|n| env.insert(&format!("44770090000{n}"), "stray case"))
        .collect();
    let mut esmed = env.esmed("stray", "");
    env.wait_all("submission_done", T, &esmed);
    let log = esmed.log();
    let outcomes: Vec<(i32, i32, String)> = ids.iter().map(|id| outcome_of(&env, *id)).collect();
    // The stray enquire_link_resp settled nothing: the submit timed out and went again.
    assert_eq!((outcomes[0].0, outcomes[0].1), (2, 1), "{log}");
    // generic_nack status 0: not accepted; its outcome is unknown, so it is counted.
    assert_eq!((outcomes[1].0, outcomes[1].1), (2, 1), "{log}");
    // generic_nack with an error: a failed attempt, not a possible duplicate.
    assert_eq!((outcomes[2].0, outcomes[2].1), (2, 0), "{log}");
    assert_eq!((outcomes[3].0, outcomes[3].1), (1, 0), "{log}");
    for (attempts, _, message_id) in &outcomes {
        assert!(message_id.starts_with('m'), "{attempts}: '{message_id}'");
    }
    assert!(log.contains("no submit_sm_resp for seq"), "{log}");
    assert!(log.contains("enquire_link_resp for seq"), "{log}");

    // From the next connection on, enquire_link gets a submit_sm_resp of its number.
    let binds = fake.binds();
    env.db()
        .execute("UPDATE smpp_servers SET smpp_enquire_link_timer = 1", &[])
        .unwrap();
    wait_until(T, "an unanswered enquire_link", &esmed, || {
        esmed.log().contains("no enquire_link_resp within")
    });
    wait_until(T, "a new bind after it", &esmed, || {
        fake.binds() > binds + 1
    });
    assert!(
        esmed.log().contains("submit_sm_resp for seq"),
        "{}",
        esmed.log()
    );
    assert!(esmed.terminate(T).success());
    assert!(!esmed.log().contains("panicked"));
}

/// Security: strings from the SMSC (a bind_resp's system_id, a stray response's message_id,
/// an alert_notification's address) reach the log with their control characters escaped, so
/// a line break in one cannot forge a log line; and a flood of stray responses is logged a
/// few times, then counted in one line when the session ends.
#[test]
fn smsc_strings_cannot_forge_log_lines_and_a_flood_of_warnings_is_counted() {
    const FORGED: &str = "2026-01-01 00:00:00 [ERROR] forged";
    const STRAYS: u32 = 2000;
    let env = Env::with_smsc(
        "forge",
        SmscConfig {
            // A system_id has 15 octets at most.
            smsc_system_id: "smsc\n[ERROR] x".try_into().unwrap(),
            ..support::smsc_config()
        },
    );
    env.add_server(&[("esme_bind_transceiver", "TRUE")]);
    let mut esmed = env.esmed("forge", "");
    assert!(env.smsc.wait_for_bound(1, T), "{}", esmed.log());

    let message_id = format!(
        "x\n{FORGED} by a message_id\r\n{FORGED} after CR LF\u{2028}{FORGED} after U+2028\
         \u{1b}[2J\0"
    );
    env.smsc
        .deliver_raw(&pdu(0x8000_0004, 0, 5555, message_id.as_bytes()))
        .unwrap();
    let mut alert = vec![1, 1];
    alert.extend_from_slice(format!("4477\n{FORGED} by an address\0").as_bytes());
    alert.extend_from_slice(b"\x00\x00ESMED\0");
    env.smsc
        .deliver_raw(&pdu(0x0000_0102, 0, 5556, &alert))
        .unwrap();
    let flood: Vec<u8> = (0..STRAYS)
        .flat_map(|n| pdu(0x8000_0004, 0, 200_000 + n, b"stray\0"))
        .collect();
    env.smsc.deliver_raw(&flood).unwrap();
    // esmed handles PDUs in order: the answer to this one means the flood is through.
    env.smsc
        .deliver_raw(&pdu(0x0000_0015, 0, 300_000, b""))
        .unwrap();
    wait_answer(&env, &esmed, 300_000);
    assert!(esmed.terminate(T).success());

    let log = esmed.log();
    let forged: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with(FORGED) || l.starts_with("[ERROR] x"))
        .collect();
    assert!(forged.is_empty(), "forged lines: {forged:#?}");
    assert!(!log.contains(['\r', '\u{2028}', '\u{1b}', '\0']), "{log}");
    for escaped in [
        "(SMSC system_id 'smsc\\n[ERROR] x')".to_string(),
        format!("x\\n{FORGED} by a message_id\\r\\n{FORGED} after CR LF\\u{{2028}}"),
        format!("4477\\n{FORGED} by an address"),
    ] {
        assert!(log.contains(&escaped), "{escaped} not in the log\n{log}");
    }
    let logged = log
        .lines()
        .filter(|l| l.contains("for unknown seq"))
        .count();
    let summaries: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("more like it in the last"))
        .collect();
    assert_eq!(summaries.len(), 1, "{log}");
    let counted: usize = summaries[0]
        .split("... and ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {}", summaries[0]));
    assert!(logged <= 20, "{logged} lines for {STRAYS} stray responses");
    assert_eq!(logged + counted, STRAYS as usize + 1, "{}", summaries[0]);
}

/// Case 10: An unknown config key is a warning, not a stop; an unreachable SMSC is retried with
/// backoff and a clear line each time, and used as soon as it appears.
#[test]
fn unknown_keys_warn_and_an_unreachable_smsc_is_retried_until_it_appears() {
    let env = Env::new("unreachable");
    let port = {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    env.db()
        .execute(
            "INSERT INTO smpp_servers (enabled, host, port, esme_system_id, esme_password) \
             VALUES (TRUE, '127.0.0.1', $1, $2, $3)",
            &[
                &i32::from(port),
                &support::SMPP_SYSTEM_ID,
                &support::SMPP_PASSWORD,
            ],
        )
        .unwrap();
    env.insert("447700900123", "waits for the SMSC");
    let esmed = env.esmed("unreachable", "frobnicate = 1");
    wait_until(T, "three failed connects", &esmed, || {
        esmed.log().matches("cannot connect").count() >= 3
    });
    let log = esmed.log();
    assert!(log.contains("unknown key 'frobnicate' ignored"), "{log}");
    let delays: Vec<f64> = log
        .lines()
        .filter(|l| l.contains("cannot connect"))
        .filter_map(|l| l.split("retrying in ").nth(1))
        .filter_map(|d| d.trim_end_matches(" s").parse().ok())
        .collect();
    assert!(
        delays.len() >= 3 && delays[1] > delays[0],
        "backoff: {delays:?}"
    );
    assert!(alive(&esmed));
    let smsc = Smsc::start(SmscConfig {
        bind_addr: ([127, 0, 0, 1], port).into(),
        ..support::smsc_config()
    })
    .unwrap();
    env.wait_all("submission_done", T, &esmed);
    assert_eq!(smsc.submits().len(), 1);
}

/// Security: no password in the debug log or in pdu_parsed; a world-readable config warns.
#[test]
fn passwords_stay_out_of_logs_and_rows_and_an_open_config_warns() {
    let env = Env::new("pwcheck");
    env.add_server(&[("esme_bind_transceiver", "TRUE")]);
    let (config, log) = env.write_config("pwcheck", "", 0o644);
    let esmed = Esmed::start(&config, log);
    env.insert("447700900123", "hello");
    env.smsc
        .send_mo(MoMessage::text("447700900123", "ESMED", "mo"));
    env.wait_all("submission_done", T, &esmed);
    wait_until(T, "the MO row", &esmed, || {
        env.db()
            .query("SELECT 1 FROM smpp_rx_queue", &[])
            .unwrap()
            .len()
            == 1
    });
    let text = esmed.log();
    assert!(text.contains("DEBUG"), "the log is at debug level");
    assert!(
        text.contains("is readable by every user (mode 0644)"),
        "{text}"
    );
    // The PostgreSQL client's own debug lines carry every statement's parameters (message
    // texts, numbers, and whatever a future statement passes): not in esmed's log.
    assert!(!text.contains("with parameters"), "{text}");
    for secret in [support::ESMED_PASSWORD, support::SMPP_PASSWORD] {
        let leaks: Vec<&str> = text.lines().filter(|l| l.contains(secret)).collect();
        assert!(leaks.is_empty(), "{secret} in the log: {leaks:#?}");
        let leaks: i64 = env
            .db()
            .query_one(
                "SELECT count(*) FROM smpp_rx_queue WHERE pdu_parsed::text LIKE '%' || $1 || '%' \
                 OR pdu_raw LIKE '%' || $2 || '%'",
                &[&secret, &esmed::smpp::hex(secret.as_bytes())],
            )
            .unwrap()
            .get(0);
        assert_eq!(leaks, 0, "{secret} in smpp_rx_queue");
    }
}

/// A crash and an immediate restart with the same config (the default instance name): the
/// restarted esmed knows its predecessor is dead and sends the rows it left claimed at once,
/// long before their lease would run out, each counted and logged as a possible duplicate.
#[test]
fn a_restart_after_sigkill_takes_over_the_dead_claims_at_once() {
    let env = Env::new("restart");
    env.smsc.set_faults(Faults {
        response_delay: Some(Duration::from_millis(100)),
        ..Faults::default()
    });
    env.add_server(&[("smpp_window", "10")]);
    env.insert_many(300, "restart case ");
    // A lease far beyond the test's timeout: only knowing that their owner is dead frees the
    // rows in time.
    let mut first = env.esmed_unnamed("restart", "lease = 10m\nclaim_batch = 50");
    assert!(env.smsc.wait_for_submits(60, T));
    first.kill();
    let held: Vec<i64> = env
        .db()
        .query(
            "SELECT id FROM smpp_tx_queue WHERE claimed_by IS NOT NULL",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(!held.is_empty(), "rows were in flight at the kill");
    let second = Esmed::start(&first.config, first.log_path.clone());
    env.wait_all("submission_done", T, &second);
    let dups = check_duplicates(&env, 300, held.len(), &[&second]);
    for id in &dups {
        assert!(held.contains(id), "row {id} sent twice, not held: {held:?}");
    }
    assert!(!dups.is_empty(), "the killed window was resent");
    let resent = env.count("submission_resends > 0");
    assert_eq!(resent, held.len() as i64, "every row taken over is counted");
    assert_eq!(env.count("claimed_by IS NOT NULL"), 0);
    assert_no_panic(&second);
}

/// Two esmeds with the default instance on one host: the second sees the first's name in use
/// and takes another; they share the queue and no row goes twice.
#[test]
fn two_esmeds_with_the_default_instance_get_distinct_names() {
    let env = Env::new("twonames");
    env.smsc.set_faults(Faults {
        response_delay: Some(Duration::from_millis(20)),
        ..Faults::default()
    });
    env.add_server(&[("smpp_window", "5")]);
    let host = esmed::config::hostname();
    let a = env.esmed_unnamed("name1", "claim_batch = 10");
    wait_until(T, "the first esmed's name", &a, || {
        a.log().contains(&format!("running as instance '{host}'"))
    });
    let b = env.esmed_unnamed("name2", "claim_batch = 10");
    wait_until(T, "the second esmed's name", &b, || {
        b.log().contains(&format!("running as instance '{host}-2'"))
    });
    assert!(
        b.log().contains(&format!("instance '{host}' is in use")),
        "{}",
        b.log()
    );
    assert!(env.smsc.wait_for_bound(2, T));
    env.insert_many(300, "shared case ");
    env.wait_all("submission_done", T, &a);
    check_duplicates(&env, 300, 0, &[&a, &b]);
    assert_no_panic(&a);
    assert_no_panic(&b);
}

/// An instance name given in the config that a running esmed already uses stops the second
/// one at start with one line saying so.
#[test]
fn an_explicit_instance_already_in_use_is_refused_at_start() {
    let env = Env::new("dupname");
    let first = env.esmed("dupname", "");
    wait_until(T, "the first esmed running", &first, || {
        first.log().contains("running as instance 'dupname'")
    });
    let (config, _) = env.write_config("dupname", "", 0o600);
    let log = env.dir.0.join("dupname-2.log");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("dupname.log", "dupname-2.log");
    let config = env.dir.0.join("dupname-2.conf");
    std::fs::write(&config, text).unwrap();
    let mut second = Esmed::start(&config, log);
    let status = second.wait(T);
    assert_eq!(status.code(), Some(1), "{}", second.log());
    let refusal = second.log();
    assert!(
        refusal
            .contains("cannot run: [daemon] instance 'dupname' is in use by another running esmed"),
        "{refusal}"
    );
    assert_no_panic(&first);
}

/// Results PostgreSQL refuses for a reason that retrying will not change (a user's trigger
/// that raises for one row's result, an attempts counter at its maximum): each such row is
/// failed with the reason, every other row is written, and none is left claimed.
#[test]
fn a_result_postgresql_refuses_fails_its_row_with_the_reason() {
    let env = Env::new("refused");
    env.add_server(&[]);
    env.insert_many(20, "refused case ");
    let mut db = env.db();
    let ids: Vec<i64> = db
        .query("SELECT id FROM smpp_tx_queue ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let (raises, at_max) = (ids[4], ids[9]);
    db.execute(
        "UPDATE smpp_tx_queue SET submission_attempts = 2147483647 WHERE id = $1",
        &[&at_max],
    )
    .unwrap();
    db.batch_execute(&format!(
        "CREATE FUNCTION refuse_done() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           IF NEW.id = {raises} AND NEW.submission_done THEN \
             RAISE EXCEPTION 'row % may not be done', NEW.id; \
           END IF; RETURN NEW; END $$; \
         CREATE TRIGGER refuse_done BEFORE UPDATE ON smpp_tx_queue \
           FOR EACH ROW EXECUTE FUNCTION refuse_done();"
    ))
    .unwrap();
    let esmed = env.esmed("refused", "lease = 3s");
    env.wait_all("submission_done OR submission_failed", T, &esmed);
    assert_eq!(env.count("claimed_by IS NOT NULL"), 0);
    assert_eq!(env.count("submission_done"), 18);
    let info = |id: i64| -> String {
        env.db()
            .query_one(
                "SELECT submission_info FROM smpp_tx_queue WHERE id = $1 AND submission_failed",
                &[&id],
            )
            .unwrap()
            .get(0)
    };
    let (raised, overflowed) = (info(raises), info(at_max));
    assert!(
        raised.contains("may not be done") && raised.contains("accepted by the SMSC"),
        "{raised}"
    );
    assert!(overflowed.contains("integer out of range"), "{overflowed}");
    check_duplicates(&env, 20, 0, &[&esmed]);
    assert_no_panic(&esmed);
}

/// A row claimed under this esmed's name that it does not hold (a claim that committed but
/// whose rows never reached it) is not renewed: it is released as a possible duplicate,
/// logged, counted, and sent.
#[test]
fn a_row_claimed_under_our_name_but_not_held_is_released_and_sent() {
    let env = Env::new("losttrack");
    env.add_server(&[]);
    let esmed = env.esmed("losttrack", "lease = 3s");
    // Once esmed is sending, a row appears claimed under its name.
    env.insert("447700900100", "first");
    env.wait_all("submission_done", T, &esmed);
    let id: i64 = env
        .db()
        .query_one(
            "INSERT INTO smpp_tx_queue (smpp_destination_addr, smpp_short_message, claimed_by, \
             claimed_until) VALUES ('447700900123', 'lost track', 'losttrack', \
             now() + interval '1 hour') RETURNING id",
            &[],
        )
        .unwrap()
        .get(0);
    env.wait_all("submission_done", T, &esmed);
    assert_eq!(resends_of(&env, id), 1);
    assert!(
        esmed.log().contains(&format!("row {id}: ")),
        "{}",
        esmed.log()
    );
    assert_no_panic(&esmed);
}

/// An application holds row locks (SELECT ... FOR UPDATE in an open transaction) on rows in
/// flight for longer than a lease: renewals skip those rows and keep every other lease, new
/// rows are still claimed, the locked rows' results give up waiting for the lock and are
/// written once it goes, and nothing is sent twice.
#[test]
fn an_application_holding_row_locks_stalls_neither_claims_nor_renewals() {
    let env = Env::new("rowlocks");
    env.smsc.set_faults(Faults {
        response_delay: Some(Duration::from_secs(5)),
        ..Faults::default()
    });
    env.add_server(&[("smpp_window", "50")]);
    env.insert_many(6, "locked case ");
    let esmed = env.esmed("rowlocks", "lease = 2s");
    assert!(env.smsc.wait_for_submits(6, T));
    let mut app = env.db();
    let mut tx = app.transaction().unwrap();
    tx.batch_execute(
        "SELECT id FROM smpp_tx_queue WHERE id IN \
         (SELECT id FROM smpp_tx_queue ORDER BY id LIMIT 3) FOR UPDATE",
    )
    .unwrap();
    let free = "id > (SELECT min(id) + 2 FROM smpp_tx_queue)";
    // For longer than a lease, the unlocked rows' leases never run out.
    let watch_until = std::time::Instant::now() + Duration::from_secs(4);
    while std::time::Instant::now() < watch_until {
        let lapsed = env.count(&format!(
            "{free} AND claimed_until < now() - interval '500 milliseconds'"
        ));
        assert_eq!(lapsed, 0, "a lease ran out\n{}", esmed.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    for n in 1..=3 {
        env.insert(&format!("4478000000{n:02}"), "while locked");
    }
    assert!(env.smsc.wait_for_submits(9, T), "{}", esmed.log());
    wait_until(
        T,
        "results waiting for the lock to time out",
        &esmed,
        || esmed.log().contains("lock timeout"),
    );
    tx.commit().unwrap();
    env.wait_all("submission_done", T, &esmed);
    check_duplicates(&env, 9, 0, &[&esmed]);
    assert_eq!(env.count("submission_resends > 0"), 0);
    assert_no_panic(&esmed);
}

/// How many smpp_rx_queue rows hold each MO text.
fn stored_mo(env: &Env) -> HashMap<String, i64> {
    env.db()
        .query(
            "SELECT smpp_short_message, count(*) FROM smpp_rx_queue WHERE NOT is_receipt \
             GROUP BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// Every MO the SMSC saw acknowledged is stored, and none more often than the SMSC sent it
/// (a commit applied twice would store it twice).
fn check_mo_stored_once(env: &Env, esmed: &Esmed) -> usize {
    // Read in the order things happen while MO keep arriving: an MO is journaled as sent
    // before esmed can store it, and stored before the SMSC sees it acknowledged.
    let (_, acked) = deliveries(env);
    let stored = stored_mo(env);
    let (sends, _) = deliveries(env);
    for (text, n) in &stored {
        let sent = sends.get(text).copied().unwrap_or(0);
        assert!(
            *n as usize <= sent,
            "MO '{text}' stored {n} times, sent {sent} times\n{}",
            esmed.log()
        );
    }
    for text in &acked {
        assert!(
            stored.contains_key(text),
            "MO '{text}' acknowledged but not stored\n{}",
            esmed.log()
        );
    }
    acked.len()
}

/// An SMSC that delivers MO and does not send them again for a minute: within a test, each
/// MO goes out once, so each acknowledged one must be stored exactly once.
fn mo_smsc_config() -> SmscConfig {
    SmscConfig {
        deliver_resend_after: Duration::from_secs(60),
        ..support::smsc_config()
    }
}

/// Sends the MO `text` and waits for esmed's answer to it; returns the answer's status.
fn mo_answered(env: &Env, esmed: &Esmed, text: &str) -> CommandStatus {
    let before = env.smsc.deliver_sm_resps().len();
    env.smsc
        .send_mo(MoMessage::text("447700900123", "ESMED", text));
    wait_until(T, "the answer to an MO", esmed, || {
        env.smsc.deliver_sm_resps().len() > before
    });
    env.smsc.deliver_sm_resps()[before].pdu.command_status
}

/// The connection dies during the COMMIT of a batch of received PDUs. When PostgreSQL had
/// committed it (the answer was lost), esmed learns so on a new connection and answers the
/// SMSC without storing the PDU again; when the COMMIT never arrived (the old backend still
/// in its transaction, ended by esmed after a while), it stores it again. Either way the MO
/// is answered ESME_ROK and stored once.
#[test]
fn a_commit_cut_off_stores_a_received_pdu_once_and_answers_it() {
    let env = Env::with_smsc("doubt-rx", mo_smsc_config());
    let proxy = PgProxy::start(env.cluster.port());
    env.add_server(&[("esme_bind_transceiver", "TRUE")]);
    let esmed = env.esmed_via("doubt-rx", proxy.port(), "");
    assert!(env.smsc.wait_for_bound(1, T), "{}", esmed.log());
    assert_eq!(mo_answered(&env, &esmed, "before"), CommandStatus::ESME_ROK);

    proxy.arm(Cut::AnswerToCommit(Tx::Inserting));
    assert_eq!(
        mo_answered(&env, &esmed, "committed"),
        CommandStatus::ESME_ROK
    );
    assert_eq!(proxy.cuts(), 1, "the answer to the COMMIT was cut off");
    let stored = stored_mo(&env).get("committed").copied();
    assert_eq!(stored, Some(1), "stored once\n{}", esmed.log());
    assert!(esmed
        .log()
        .contains("PostgreSQL says it did: counting it done"));

    proxy.arm(Cut::Commit(Tx::Inserting, Duration::from_secs(60)));
    assert_eq!(
        mo_answered(&env, &esmed, "rolled back"),
        CommandStatus::ESME_ROK
    );
    assert_eq!(proxy.cuts(), 2, "the COMMIT was cut off");
    let stored = stored_mo(&env).get("rolled back").copied();
    assert_eq!(stored, Some(1), "stored once\n{}", esmed.log());
    let log = esmed.log();
    assert!(
        log.contains("still in progress after 5 s; ended its backend"),
        "{log}"
    );
    assert!(
        log.contains("PostgreSQL says it did not: committing it again"),
        "{log}"
    );

    let stored = stored_mo(&env);
    for text in ["before", "committed", "rolled back"] {
        assert_eq!(stored.get(text), Some(&1), "{text}: {stored:?}\n{log}");
    }
    assert_eq!(check_mo_stored_once(&env, &esmed), 3);
    assert_no_panic(&esmed);
}

/// The connection dies right after PostgreSQL committed a claim: the rows are claimed under
/// esmed's name but never reached it. They are sent at once, not after their lease (five
/// minutes), and once each.
#[test]
fn rows_of_a_claim_whose_answer_was_lost_are_sent_at_once() {
    let env = Env::new("doubt-claim");
    let proxy = PgProxy::start(env.cluster.port());
    env.add_server(&[("smpp_window", "10")]);
    env.insert_many(200, "claim case ");
    proxy.arm(Cut::AnswerToUpdateOf(2));
    let esmed = env.esmed_via("doubt-claim", proxy.port(), "");
    assert!(proxy.wait_for_cuts(1, T), "{}", esmed.log());
    env.wait_all("submission_done", Duration::from_secs(60), &esmed);
    check_duplicates(&env, 200, 0, &[&esmed]);
    assert_no_panic(&esmed);
}

/// The answer to the COMMIT of a batch of results is lost, and new connections take a while:
/// meanwhile the row, whose "try again" was in fact committed, is claimed and sent again. The
/// batch is not applied a second time: that would count the attempt twice and take the new
/// claim away from under the session, whose result would then be dropped and the row sent a
/// third time.
#[test]
fn a_result_whose_commit_was_cut_off_is_not_applied_twice() {
    let env = Env::new("doubt-results");
    let proxy = PgProxy::start(env.cluster.port());
    env.smsc.set_faults(Faults {
        transient_error_every: Some((1, CommandStatus::ESME_RSYSERR)),
        ..Faults::default()
    });
    env.add_server(&[]);
    let id = env.insert("447700900123", "refused once");
    proxy.pause_after_cuts(Duration::from_secs(2));
    proxy.arm(Cut::AnswerToCommit(Tx::OnConnectionThatSent(
        "SET next_attempt_at = now()",
    )));
    let esmed = env.esmed_via("doubt-results", proxy.port(), "");
    assert!(env.smsc.wait_for_submits(1, T), "{}", esmed.log());
    env.smsc.set_faults(Faults::default());
    env.wait_all("submission_done", T, &esmed);
    assert_eq!(proxy.cuts(), 1, "the answer to the COMMIT was cut off");
    assert_eq!(
        sends_per_row(&env).get(&id),
        Some(&2),
        "refused once, accepted once\n{}",
        esmed.log()
    );
    let (attempts, resends): (i32, i32) = {
        let row = env
            .db()
            .query_one(
                "SELECT submission_attempts, submission_resends FROM smpp_tx_queue WHERE id = $1",
                &[&id],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!((attempts, resends), (2, 0), "{}", esmed.log());
    assert!(esmed
        .log()
        .contains("PostgreSQL says it did: counting it done"));
    assert_no_panic(&esmed);
}

/// The answer to a batch of results run as one statement (all done, one part each) is lost
/// after PostgreSQL committed it. Run again, it writes nothing (done rows are never claimed
/// again) and esmed says why: each row sent once, its attempt counted once.
#[test]
fn a_one_statement_result_batch_run_again_after_a_lost_answer_writes_nothing_twice() {
    let env = Env::new("doubt-alone");
    let proxy = PgProxy::start(env.cluster.port());
    env.add_server(&[]);
    let esmed = env.esmed_via("doubt-alone", proxy.port(), "");
    // The first batches may be transactions (receipts may be waiting until the received-PDU
    // writer has looked): one row at a time until one batch was a statement of its own.
    proxy.arm(Cut::AnswerToStatement(
        Tx::OnConnectionThatSent("SET submission_done = true"),
        "SELECT 1",
    ));
    for n in 0..10 {
        env.insert(&format!("44770090{n:04}"), "one statement");
        env.wait_all("submission_done", T, &esmed);
        if proxy.cuts() == 1 {
            break;
        }
    }
    assert_eq!(proxy.cuts(), 1, "{}", esmed.log());
    let rows = env.count("true") as i32;
    // The row was done by the statement whose answer was lost; the batch is run again.
    wait_until(T, "the batch run again", &esmed, || {
        esmed.log().contains(
            "not written now: their rows are no longer claimed by 'doubt-alone' \
             (written by the earlier try whose answer was lost with the connection",
        )
    });
    check_duplicates(&env, rows, 0, &[&esmed]);
    assert_eq!(
        env.count("submission_attempts = 1 AND submission_resends = 0"),
        rows as i64
    );
    let log = esmed.log();
    assert!(!log.contains("lease is no longer held"), "{log}");
    assert_no_panic(&esmed);
}

/// Rows still claimed whose lease dates from before `since` (a lease is 300 s): claims this
/// esmed no longer holds or renews, which would wait out their lease.
fn leases_from_before(env: &Env, since: SystemTime) -> i64 {
    env.db()
        .query_one(
            "SELECT count(*) FROM smpp_tx_queue WHERE claimed_by IS NOT NULL \
             AND claimed_until < $1::timestamptz + interval '300 seconds'",
            &[&since],
        )
        .unwrap()
        .get(0)
}

/// Sets its flag when dropped, a panic included.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// PostgreSQL stopped (fast shutdown) and started again on the same port, ten times in the
/// middle of a drain, at different points, with MO arriving all along. After each restart
/// every row still claimed is one esmed holds and renewed (none waits out its lease), and
/// every MO the SMSC saw acknowledged is stored, none twice; in the end every row is done,
/// long before a lease, none sent twice, and every MO is acknowledged and stored once.
#[test]
fn postgresql_restarts_during_a_drain_lose_no_row_and_store_every_mo_once() {
    const ROWS: i32 = 8000;
    const DOWN_MS: [u64; 10] = [300, 900, 100, 1500, 50, 600, 0, 200, 1000, 400];
    let mut env = Env::with_smsc("restarts", mo_smsc_config());
    env.smsc.set_faults(Faults {
        response_delay: Some(Duration::from_millis(10)),
        ..Faults::default()
    });
    env.add_server(&[("esme_bind_transceiver", "TRUE"), ("smpp_window", "10")]);
    env.insert_many(ROWS, "restart case ");
    let esmed = env.esmed("restarts", "");
    let stop_mo = AtomicBool::new(false);
    let started = Instant::now();
    std::thread::scope(|scope| {
        let smsc = &env.smsc;
        let stop_mo = &stop_mo;
        scope.spawn(move || {
            let mut n = 0;
            while !stop_mo.load(Ordering::SeqCst) {
                n += 1;
                smsc.send_mo(MoMessage::text("447700900123", "ESMED", &format!("mo {n}")));
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        // A failed check must stop the MO too, or the scope would wait for them for ever.
        let _stop = StopOnDrop(stop_mo);
        for (k, down) in DOWN_MS.into_iter().enumerate() {
            let at = ROWS as i64 * (k as i64 + 1) / (DOWN_MS.len() as i64 + 1);
            wait_until(T, "the drain's progress", &esmed, || {
                env.count("submission_done") >= at
            });
            env.cluster.stop_fast().expect("stop PostgreSQL");
            std::thread::sleep(Duration::from_millis(down));
            env.cluster.start_again().expect("start PostgreSQL again");
            let restarted = SystemTime::now();
            wait_until(T, "no claim left from before the restart", &esmed, || {
                leases_from_before(&env, restarted) == 0
            });
            check_mo_stored_once(&env, &esmed);
        }
    });
    env.wait_all("submission_done", Duration::from_secs(60), &esmed);
    let sent = env.smsc.sent().len();
    wait_until(T, "an answer to every MO", &esmed, || {
        env.smsc.deliver_sm_resps().len() >= sent
    });
    let acked = check_mo_stored_once(&env, &esmed);
    let (sends, _) = deliveries(&env);
    assert_eq!(acked, sends.len(), "every MO acknowledged\n{}", esmed.log());
    assert!(sends.values().all(|&n| n == 1), "each MO delivered once");
    let stored = stored_mo(&env);
    assert!(stored.values().all(|&n| n == 1), "each MO stored once");
    check_duplicates(&env, ROWS, 0, &[&esmed]);
    assert_no_panic(&esmed);
    let log = esmed.log();
    eprintln!(
        "{ROWS} rows and {} MO through {} restarts in {:?}; commits resolved: {}, rows \
         released: {}",
        sends.len(),
        DOWN_MS.len(),
        started.elapsed(),
        log.matches("was cut off with the connection").count(),
        log.matches("released to be sent again").count(),
    );
}
