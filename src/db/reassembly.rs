//! Concatenated MO messages: parts wait in `smpp_rx_parts` until their set is whole, then
//! become one `smpp_rx_queue` row with the whole text.
//!
//! A set is (source, destination, reference kind, reference, total). The text is decoded
//! from the parts' bytes joined in order, so a character split across two parts (a UTF-16
//! surrogate pair, a GSM escape) comes out whole. The reassembled row's `pdu_raw` is the parts'
//! hex joined by `,` and its `pdu_parsed` a JSON array of the parts' JSON, both in part order.
//! Sets older than the timeout are stored as they are, flagged `mo_incomplete`.
//!
//! A set's parts, once stored, leave their bytes in `smpp_rx_parts_done` for the timeout
//! again: a part the SMSC delivers a second time (it missed the deliver_sm_resp) is found
//! there and not stored, where it would start a new set and end as a fragment row. Only a
//! part with the same set, number and bytes counts as delivered again; a new message reusing
//! the reference (an 8-bit one wraps after 256 long messages) differs in its bytes. Such a
//! part arriving while the older set still waits (the older message never completed) ends
//! that set: it is stored as it is, flagged `mo_incomplete`, and the new part starts a set.
//!
//! Addresses are part of the parts tables' indexes, so a set's addresses are index keys
//! ([`index_key`]): one longer than an index takes is cut there (and in the reassembled row),
//! its parts' `pdu_raw` keeping the whole.
//!
//! A set whose row PostgreSQL refuses (an operator's trigger or constraint) is stored without
//! its text, or, if that is refused too, set aside in `smpp_rx_parts_refused` and not tried
//! again (the DB writer's housekeeping, which takes sets one by one only when a batch of them
//! is refused).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::sql::Sql;

use super::servers::get;
use super::{pg, DbError, MoPart, RxRow};
use crate::smpp::text::decode;
use crate::smpp::text::storable::index_key;

/// Which set a part belongs to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct SetKey {
    pub(crate) source: String,
    pub(crate) destination: String,
    pub(crate) ref_kind: String,
    pub(crate) reference: i32,
    pub(crate) total: i16,
}

impl SetKey {
    /// The set of a part, its addresses made index keys.
    pub(crate) fn of(row: &RxRow, part: &MoPart) -> SetKey {
        SetKey {
            source: index_key(row.source_addr.clone()),
            destination: index_key(row.destination_addr.clone()),
            ref_kind: part.ref_kind.to_string(),
            reference: part.reference,
            total: part.total,
        }
    }
}

/// A batch's parts split into rounds to be stored one after the other, in arrival order. A
/// part with other bytes than an earlier part of the batch at the same place (set and number)
/// is a new message reusing the reference: it and the rest of its set's parts go in a later
/// round, so that the older set is ended before they are stored, as if they had come in a
/// later batch. The same bytes again (a part delivered twice) stay in the first one's round.
/// Nearly always there is one round.
pub(crate) fn in_rounds<'a>(
    parts: &[(&'a RxRow, &'a MoPart)],
) -> Vec<Vec<(&'a RxRow, &'a MoPart)>> {
    let mut set_round: HashMap<SetKey, usize> = HashMap::new();
    let mut at_place: HashMap<(SetKey, i16), (usize, &'a [u8])> = HashMap::new();
    let mut rounds: Vec<Vec<(&'a RxRow, &'a MoPart)>> = Vec::new();
    for &(row, part) in parts {
        let key = SetKey::of(row, part);
        let current = set_round.get(&key).copied().unwrap_or(0);
        let place = (key.clone(), part.seq);
        let round = match at_place.get(&place) {
            Some(&(r, bytes)) if r == current && bytes != part.text_bytes.as_slice() => current + 1,
            _ => current,
        };
        set_round.insert(key, round);
        at_place.insert(place, (round, part.text_bytes.as_slice()));
        if rounds.len() <= round {
            rounds.resize_with(round + 1, Vec::new);
        }
        rounds[round].push((row, part));
    }
    rounds
}

/// A part delivered again while its set waits (same set and number) is stored once; one
/// whose set was stored already (the same bytes in smpp_rx_parts_done) not at all: the
/// statement answers with those parts' 1-based positions.
const STORE_PARTS: &str = "
    WITH u AS (
        SELECT * FROM unnest($1::varchar[], $2::varchar[], $3::varchar[], $4::int4[],
            $5::int2[], $6::int2[], $7::varchar[], $8::varchar[], $9::int4[], $10::int4[],
            $11::bytea[]) WITH ORDINALITY
        AS u(source_addr, destination_addr, ref_kind, reference, total, seq, pdu_raw,
             pdu_parsed, esm_class, data_coding, text_bytes, n)
    ), again AS (
        SELECT u.n FROM u WHERE EXISTS (
            SELECT 1 FROM smpp_rx_parts_done d
            WHERE (d.source_addr, d.destination_addr, d.ref_kind, d.reference, d.total, d.seq)
                = (u.source_addr, u.destination_addr, u.ref_kind, u.reference, u.total, u.seq)
              AND d.text_bytes = u.text_bytes)
    ), stored AS (
        INSERT INTO smpp_rx_parts (source_addr, destination_addr, ref_kind, reference, total,
            seq, pdu_raw, pdu_parsed, esm_class, data_coding, text_bytes)
        SELECT source_addr, destination_addr, ref_kind, reference, total, seq, pdu_raw,
            pdu_parsed, esm_class, data_coding, text_bytes
        FROM u WHERE u.n NOT IN (SELECT n FROM again)
        ON CONFLICT DO NOTHING
    )
    SELECT coalesce(array_agg(n::int4 ORDER BY n), '{}') FROM again";

/// Stores MO parts (each with its row's addresses and PDU). Returns the positions in `parts`
/// of those not stored because their set was stored already (delivered again).
pub(crate) fn store_parts(
    c: &mut impl Sql,
    parts: &[(&RxRow, &MoPart)],
) -> Result<Vec<usize>, DbError> {
    if parts.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<SetKey> = parts.iter().map(|(r, p)| SetKey::of(r, p)).collect();
    let sources: Vec<&str> = keys.iter().map(|k| k.source.as_str()).collect();
    let destinations: Vec<&str> = keys.iter().map(|k| k.destination.as_str()).collect();
    let kinds: Vec<&str> = parts.iter().map(|(_, p)| p.ref_kind).collect();
    let references: Vec<i32> = parts.iter().map(|(_, p)| p.reference).collect();
    let totals: Vec<i16> = parts.iter().map(|(_, p)| p.total).collect();
    let seqs: Vec<i16> = parts.iter().map(|(_, p)| p.seq).collect();
    let raws: Vec<&str> = parts.iter().map(|(r, _)| r.pdu_raw.as_str()).collect();
    let parsed: Vec<&str> = parts.iter().map(|(r, _)| r.pdu_parsed.as_str()).collect();
    let esm_classes: Vec<i32> = parts.iter().map(|(r, _)| r.esm_class).collect();
    let codings: Vec<i32> = parts.iter().map(|(r, _)| r.data_coding).collect();
    let bytes: Vec<&[u8]> = parts.iter().map(|(_, p)| p.text_bytes.as_slice()).collect();
    let rows = c
        .query(
            STORE_PARTS,
            &[
                &sources,
                &destinations,
                &kinds,
                &references,
                &totals,
                &seqs,
                &raws,
                &parsed,
                &esm_classes,
                &codings,
                &bytes,
            ],
        )
        .map_err(pg("store MO parts"))?;
    let again: Vec<i32> = match rows.first() {
        Some(row) => get(row, 0)?,
        None => Vec::new(),
    };
    Ok(again
        .into_iter()
        .filter_map(|n| usize::try_from(n).ok()?.checked_sub(1))
        .collect())
}

/// A DELETE of whole sets' parts (`p`) that returns them and leaves their bytes in
/// smpp_rx_parts_done, where parts delivered again are recognised.
macro_rules! take_sets {
    ($delete:literal) => {
        concat!(
            "WITH taken AS (",
            $delete,
            " RETURNING p.source_addr, p.destination_addr, p.ref_kind, p.reference, p.total,
                 p.seq, p.pdu_raw, p.pdu_parsed, p.esm_class, p.data_coding, p.text_bytes
             ), done AS (
                 INSERT INTO smpp_rx_parts_done (source_addr, destination_addr, ref_kind,
                     reference, total, seq, text_bytes)
                 SELECT source_addr, destination_addr, ref_kind, reference, total, seq,
                     text_bytes
                 FROM taken
             )
             SELECT * FROM taken"
        )
    };
}

const TAKE_COMPLETE: &str = take_sets!(
    "DELETE FROM smpp_rx_parts p USING (
         SELECT source_addr, destination_addr, ref_kind, reference, total FROM smpp_rx_parts
         WHERE (source_addr, destination_addr, ref_kind, reference, total) IN
               (SELECT * FROM unnest($1::varchar[], $2::varchar[], $3::varchar[],
                                     $4::int4[], $5::int2[]))
         GROUP BY 1, 2, 3, 4, 5 HAVING count(*) >= total) c
     WHERE (p.source_addr, p.destination_addr, p.ref_kind, p.reference, p.total)
         = (c.source_addr, c.destination_addr, c.ref_kind, c.reference, c.total)"
);

const TAKE_DUE: &str = take_sets!(
    "DELETE FROM smpp_rx_parts p USING (
         SELECT source_addr, destination_addr, ref_kind, reference, total FROM smpp_rx_parts
         GROUP BY 1, 2, 3, 4, 5
         HAVING count(*) >= total
             OR min(received_at) < now() - $1::float8 * interval '1 second') c
     WHERE (p.source_addr, p.destination_addr, p.ref_kind, p.reference, p.total)
         = (c.source_addr, c.destination_addr, c.ref_kind, c.reference, c.total)"
);

/// Sets with a part waiting at the same place (set and number) as a part given here, but
/// with other bytes: an older message whose reference a new one reuses.
const TAKE_CLASHING: &str = take_sets!(
    "DELETE FROM smpp_rx_parts p USING (
         SELECT DISTINCT w.source_addr, w.destination_addr, w.ref_kind, w.reference, w.total
         FROM smpp_rx_parts w
         JOIN unnest($1::varchar[], $2::varchar[], $3::varchar[], $4::int4[], $5::int2[],
                     $6::int2[], $7::bytea[])
              AS u(source_addr, destination_addr, ref_kind, reference, total, seq, text_bytes)
           ON (w.source_addr, w.destination_addr, w.ref_kind, w.reference, w.total, w.seq)
            = (u.source_addr, u.destination_addr, u.ref_kind, u.reference, u.total, u.seq)
         WHERE w.text_bytes <> u.text_bytes) c
     WHERE (p.source_addr, p.destination_addr, p.ref_kind, p.reference, p.total)
         = (c.source_addr, c.destination_addr, c.ref_kind, c.reference, c.total)"
);

/// These sets, whole or not.
const TAKE_SETS: &str = take_sets!(
    "DELETE FROM smpp_rx_parts p
     USING unnest($1::varchar[], $2::varchar[], $3::varchar[], $4::int4[], $5::int2[])
         AS c(source_addr, destination_addr, ref_kind, reference, total)
     WHERE (p.source_addr, p.destination_addr, p.ref_kind, p.reference, p.total)
         = (c.source_addr, c.destination_addr, c.ref_kind, c.reference, c.total)"
);

/// The sets [`TAKE_DUE`] takes.
const DUE_SETS: &str = "
    SELECT source_addr, destination_addr, ref_kind, reference, total FROM smpp_rx_parts
    GROUP BY 1, 2, 3, 4, 5
    HAVING count(*) >= total OR min(received_at) < now() - $1::float8 * interval '1 second'
    ORDER BY min(received_at)";

/// Moves a set's parts to smpp_rx_parts_refused with the reason.
const SET_ASIDE: &str = "
    WITH taken AS (
        DELETE FROM smpp_rx_parts
        WHERE (source_addr, destination_addr, ref_kind, reference, total) = ($1, $2, $3, $4, $5)
        RETURNING *)
    INSERT INTO smpp_rx_parts_refused (source_addr, destination_addr, ref_kind, reference,
        total, seq, pdu_raw, pdu_parsed, esm_class, data_coding, text_bytes, received_at,
        reason)
    SELECT source_addr, destination_addr, ref_kind, reference, total, seq, pdu_raw,
        pdu_parsed, esm_class, data_coding, text_bytes, received_at, $6
    FROM taken";

/// Stored sets' parts are recognised for as long as parts wait for their set.
const FORGET_DONE: &str =
    "DELETE FROM smpp_rx_parts_done WHERE done_at < now() - $1::float8 * interval '1 second'";

/// Takes the sets among `keys` that are complete: deletes their parts (their bytes stay in
/// smpp_rx_parts_done) and returns one row per set. One statement.
pub(crate) fn take_complete(c: &mut impl Sql, keys: &[SetKey]) -> Result<Vec<RxRow>, DbError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let column = |f: fn(&SetKey) -> &str| keys.iter().map(f).collect::<Vec<&str>>();
    let rows = c
        .query(
            TAKE_COMPLETE,
            &[
                &column(|k| &k.source),
                &column(|k| &k.destination),
                &column(|k| &k.ref_kind),
                &keys.iter().map(|k| k.reference).collect::<Vec<i32>>(),
                &keys.iter().map(|k| k.total).collect::<Vec<i16>>(),
            ],
        )
        .map_err(pg("reassemble MO parts"))?;
    combine_rows(&rows)
}

/// Takes the waiting sets that `parts` clash with (a part at the same place with other
/// bytes: the reference was reused by a new message), as they are: incomplete rows, which
/// leave the place to the new set. One statement.
pub(crate) fn take_clashing(
    c: &mut impl Sql,
    parts: &[(&RxRow, &MoPart)],
) -> Result<Vec<RxRow>, DbError> {
    if parts.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<SetKey> = parts.iter().map(|(r, p)| SetKey::of(r, p)).collect();
    let column = |f: fn(&SetKey) -> &str| keys.iter().map(f).collect::<Vec<&str>>();
    let rows = c
        .query(
            TAKE_CLASHING,
            &[
                &column(|k| &k.source),
                &column(|k| &k.destination),
                &column(|k| &k.ref_kind),
                &keys.iter().map(|k| k.reference).collect::<Vec<i32>>(),
                &keys.iter().map(|k| k.total).collect::<Vec<i16>>(),
                &parts.iter().map(|(_, p)| p.seq).collect::<Vec<i16>>(),
                &parts
                    .iter()
                    .map(|(_, p)| p.text_bytes.as_slice())
                    .collect::<Vec<&[u8]>>(),
            ],
        )
        .map_err(pg("end sets whose reference a new message reuses"))?;
    combine_rows(&rows)
}

/// The sets [`take_due`] would take, oldest first, for taking them one by one.
pub(crate) fn due_sets(c: &mut impl Sql, timeout: Duration) -> Result<Vec<SetKey>, DbError> {
    c.query(DUE_SETS, &[&timeout.as_secs_f64()])
        .map_err(pg("list due MO sets"))?
        .iter()
        .map(|row| {
            Ok(SetKey {
                source: get(row, 0)?,
                destination: get(row, 1)?,
                ref_kind: get(row, 2)?,
                reference: get(row, 3)?,
                total: get(row, 4)?,
            })
        })
        .collect()
}

/// Takes one set as it is (see [`take_due`]); `None` when no part of it waits any more.
pub(crate) fn take_set(c: &mut impl Sql, key: &SetKey) -> Result<Option<RxRow>, DbError> {
    let rows = c
        .query(
            TAKE_SETS,
            &[
                &vec![key.source.as_str()],
                &vec![key.destination.as_str()],
                &vec![key.ref_kind.as_str()],
                &vec![key.reference],
                &vec![key.total],
            ],
        )
        .map_err(pg("take an MO set"))?;
    Ok(combine_rows(&rows)?.pop())
}

/// Moves a set's parts to smpp_rx_parts_refused with `reason`; returns how many.
pub(crate) fn set_aside(c: &mut impl Sql, key: &SetKey, reason: &str) -> Result<u64, DbError> {
    c.execute(
        SET_ASIDE,
        &[
            &key.source,
            &key.destination,
            &key.ref_kind,
            &key.reference,
            &key.total,
            &reason,
        ],
    )
    .map_err(pg("set aside a refused MO set"))
}

/// Takes every set that is complete (parts stored by another esmed, or in a batch that was
/// split) or whose first part is older than `timeout`.
pub(crate) fn take_due(c: &mut impl Sql, timeout: Duration) -> Result<Vec<RxRow>, DbError> {
    let rows = c
        .query(TAKE_DUE, &[&timeout.as_secs_f64()])
        .map_err(pg("expire MO parts"))?;
    combine_rows(&rows)
}

/// Forgets the parts of sets stored more than `timeout` ago; returns how many.
pub(crate) fn forget_done(c: &mut impl Sql, timeout: Duration) -> Result<u64, DbError> {
    c.execute(FORGET_DONE, &[&timeout.as_secs_f64()])
        .map_err(pg("forget stored MO parts"))
}

/// One stored part as read back.
struct StoredPart {
    seq: i16,
    pdu_raw: String,
    pdu_parsed: String,
    esm_class: i32,
    data_coding: i32,
    text_bytes: Vec<u8>,
}

fn combine_rows(rows: &[postgres::Row]) -> Result<Vec<RxRow>, DbError> {
    let mut sets: BTreeMap<SetKey, Vec<StoredPart>> = BTreeMap::new();
    for row in rows {
        let key = SetKey {
            source: get(row, 0)?,
            destination: get(row, 1)?,
            ref_kind: get(row, 2)?,
            reference: get(row, 3)?,
            total: get(row, 4)?,
        };
        sets.entry(key).or_default().push(StoredPart {
            seq: get(row, 5)?,
            pdu_raw: get(row, 6)?,
            pdu_parsed: get(row, 7)?,
            esm_class: get(row, 8)?,
            data_coding: get(row, 9)?,
            text_bytes: get(row, 10)?,
        });
    }
    Ok(sets
        .into_iter()
        .map(|(key, parts)| combine(&key, parts))
        .collect())
}

/// The smpp_rx_queue row for a set: parts in order, text decoded from all bytes joined.
fn combine(key: &SetKey, mut parts: Vec<StoredPart>) -> RxRow {
    parts.sort_by_key(|p| p.seq);
    let bytes: Vec<u8> = parts
        .iter()
        .flat_map(|p| p.text_bytes.iter().copied())
        .collect();
    let (esm_class, data_coding) = parts
        .first()
        .map_or((0, 0), |p| (p.esm_class, p.data_coding));
    let decoded = decode(u8::try_from(data_coding).unwrap_or(0), &bytes);
    let raw: Vec<&str> = parts.iter().map(|p| p.pdu_raw.as_str()).collect();
    let parsed: Vec<&str> = parts.iter().map(|p| p.pdu_parsed.as_str()).collect();
    RxRow {
        pdu_raw: raw.join(","),
        pdu_parsed: format!("[{}]", parsed.join(",")),
        source_addr: key.source.clone(),
        destination_addr: key.destination.clone(),
        short_message: decoded.text,
        esm_class,
        data_coding,
        text_invalid: decoded.invalid > 0,
        mo_parts: Some(key.total),
        mo_incomplete: parts.len() < usize::try_from(key.total).unwrap_or(0),
        ..RxRow::default()
    }
    .storable()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(seq: i16, bytes: &[u8]) -> StoredPart {
        StoredPart {
            seq,
            pdu_raw: format!("0{seq}"),
            pdu_parsed: format!("{{\"n\":{seq}}}"),
            esm_class: 0x40,
            data_coding: 8,
            text_bytes: bytes.to_vec(),
        }
    }

    fn key(total: i16) -> SetKey {
        SetKey {
            source: "4670".into(),
            destination: "ESMED".into(),
            ref_kind: "udh8".into(),
            reference: 7,
            total,
        }
    }

    #[test]
    fn parts_join_in_order_and_a_split_surrogate_pair_comes_out_whole() {
        // U+1F600 is D83D DE00 in UTF-16; the pair is split between parts 2 and 3.
        let parts = vec![
            part(3, &[0xDE, 0x00]),
            part(1, &[0, b'h']),
            part(2, &[0xD8, 0x3D]),
        ];
        let row = combine(&key(3), parts);
        assert_eq!(row.short_message, "h😀");
        assert_eq!(row.pdu_raw, "01,02,03");
        assert_eq!(row.pdu_parsed, r#"[{"n":1},{"n":2},{"n":3}]"#);
        assert_eq!(
            (row.mo_parts, row.mo_incomplete, row.text_invalid),
            (Some(3), false, false)
        );
    }

    fn mo(reference: i32, seq: i16, bytes: &str) -> (RxRow, MoPart) {
        let row = RxRow {
            source_addr: "4670".into(),
            destination_addr: "ESMED".into(),
            ..RxRow::default()
        };
        let part = MoPart {
            ref_kind: "udh8",
            reference,
            total: 2,
            seq,
            text_bytes: bytes.as_bytes().to_vec(),
        };
        (row, part)
    }

    /// The texts of each round's parts.
    fn rounds_of(parts: &[(RxRow, MoPart)]) -> Vec<Vec<String>> {
        let refs: Vec<(&RxRow, &MoPart)> = parts.iter().map(|(r, p)| (r, p)).collect();
        in_rounds(&refs)
            .iter()
            .map(|round| {
                round
                    .iter()
                    .map(|(_, p)| String::from_utf8_lossy(&p.text_bytes).into_owned())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn parts_without_a_reused_place_are_one_round() {
        let parts = [mo(1, 1, "a"), mo(2, 1, "b"), mo(1, 2, "c"), mo(1, 2, "c")];
        assert_eq!(rounds_of(&parts), [["a", "b", "c", "c"]]);
        assert!(in_rounds(&[]).is_empty());
    }

    #[test]
    fn a_new_message_at_a_taken_place_and_the_rest_of_its_set_go_in_a_later_round() {
        let parts = [
            mo(7, 1, "Old "),
            mo(9, 1, "other"),
            mo(7, 1, "New "),
            mo(7, 2, "one"),
            mo(9, 2, " set"),
        ];
        assert_eq!(
            rounds_of(&parts),
            [vec!["Old ", "other", " set"], vec!["New ", "one"]]
        );
    }

    #[test]
    fn a_reference_reused_twice_makes_three_rounds() {
        let parts = [mo(7, 1, "A"), mo(7, 1, "B"), mo(7, 1, "B"), mo(7, 1, "C")];
        assert_eq!(rounds_of(&parts), [vec!["A"], vec!["B", "B"], vec!["C"]]);
    }

    #[test]
    fn an_incomplete_set_is_flagged() {
        let row = combine(&key(3), vec![part(2, &[0, b'b'])]);
        assert_eq!(row.short_message, "b");
        assert!(row.mo_incomplete);
    }
}
