//! The accepted messages the SMSC remembers, for query_sm and `SmscHandle::send_receipt`:
//! the last `capacity` of them, oldest forgotten first, so a soak run does not grow without
//! bound. Ids come from one counter, so the store is a ring indexed by the counter and a
//! lookup parses the id back: no hashing and no second copy of every id (a map plus an
//! order queue cost the test SMSC as much CPU as all the rest of a submit at 100k msg/s).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::SystemTime;

use super::config::IdFormat;
use super::receipt_text::SubmittedMessage;
use esmed_smpp::receipt::MessageState;

#[derive(Debug, Clone)]
struct Remembered {
    message: Arc<SubmittedMessage>,
    final_state: MessageState,
    final_at: SystemTime,
}

/// The last `capacity` messages by their counter.
#[derive(Debug)]
pub struct MessageStore {
    kept: VecDeque<Remembered>,
    /// The counter of `kept[0]`.
    first: u64,
    capacity: usize,
    format: IdFormat,
}

impl MessageStore {
    /// Ids are written in `format`.
    pub fn new(capacity: usize, format: IdFormat) -> Self {
        MessageStore {
            kept: VecDeque::new(),
            first: 0,
            capacity,
            format,
        }
    }

    /// Remembers `message`, whose id is counter `n`, and which reaches `final_state` at
    /// `final_at`. Counters come in order; should one not follow the last, the store starts
    /// over from it rather than misplace it.
    pub fn remember(
        &mut self,
        n: u64,
        message: Arc<SubmittedMessage>,
        final_state: MessageState,
        final_at: SystemTime,
    ) {
        if self.capacity == 0 {
            return;
        }
        if self.kept.is_empty() || Some(n) != self.next_counter() {
            self.kept.clear();
            self.first = n;
        }
        if self.kept.len() == self.capacity {
            self.kept.pop_front();
            self.first += 1;
        }
        self.kept.push_back(Remembered {
            message,
            final_state,
            final_at,
        });
    }

    fn next_counter(&self) -> Option<u64> {
        self.first.checked_add(self.kept.len() as u64)
    }

    fn find(&self, id: &str) -> Option<&Remembered> {
        let n = self.format.parse(id)?;
        let index = usize::try_from(n.checked_sub(self.first)?).ok()?;
        let found = self.kept.get(index)?;
        (found.message.message_id == id).then_some(found)
    }

    pub fn get(&self, id: &str) -> Option<&Arc<SubmittedMessage>> {
        self.find(id).map(|r| &r.message)
    }

    /// The state at `now`: ENROUTE until the final time, then the final state and its time.
    pub fn state_of(
        &self,
        id: &str,
        now: SystemTime,
    ) -> Option<(MessageState, Option<SystemTime>)> {
        let r = self.find(id)?;
        if now >= r.final_at {
            Some((r.final_state, Some(r.final_at)))
        } else {
            Some((MessageState::Enroute, None))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use esmed_smpp::Address;
    use std::time::Duration;

    fn message(n: u64, format: IdFormat) -> Arc<SubmittedMessage> {
        let id = format.render(n);
        Arc::new(SubmittedMessage {
            message_id: id.clone(),
            text_id: id,
            source: Address::default(),
            destination: Address::default(),
            submitted_at: SystemTime::UNIX_EPOCH,
            text_start: String::new(),
        })
    }

    #[test]
    fn forgets_the_oldest_and_reports_state_by_time() {
        let mut store = MessageStore::new(2, IdFormat::Decimal);
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(10);
        for n in [1, 2, 3] {
            store.remember(n, message(n, IdFormat::Decimal), MessageState::Delivered, t);
        }
        assert!(store.get("1").is_none());
        assert_eq!(store.get("3").map(|m| m.message_id.as_str()), Some("3"));
        assert!(store.get("4").is_none());
        assert_eq!(
            store.state_of("2", SystemTime::UNIX_EPOCH),
            Some((MessageState::Enroute, None))
        );
        assert_eq!(
            store.state_of("2", t),
            Some((MessageState::Delivered, Some(t)))
        );
    }

    #[test]
    fn finds_ids_in_every_format_and_only_as_written() {
        for format in [IdFormat::HexUpper, IdFormat::Uuid] {
            let mut store = MessageStore::new(10, format);
            for n in 26..30 {
                store.remember(
                    n,
                    message(n, format),
                    MessageState::Delivered,
                    SystemTime::now(),
                );
            }
            let id = format.render(27);
            assert_eq!(store.get(&id).map(|m| m.message_id.clone()), Some(id));
        }
        let mut store = MessageStore::new(10, IdFormat::HexUpper);
        store.remember(
            26,
            message(26, IdFormat::HexUpper),
            MessageState::Delivered,
            SystemTime::now(),
        );
        // The same counter written otherwise is not the id the SMSC gave out.
        assert!(store.get("1a").is_none());
        assert!(store.get("001A").is_none());
    }

    #[test]
    fn a_counter_out_of_order_starts_over_and_nothing_is_kept_at_capacity_zero() {
        let mut store = MessageStore::new(10, IdFormat::Decimal);
        let now = SystemTime::now();
        store.remember(
            5,
            message(5, IdFormat::Decimal),
            MessageState::Delivered,
            now,
        );
        store.remember(
            9,
            message(9, IdFormat::Decimal),
            MessageState::Delivered,
            now,
        );
        assert!(store.get("5").is_none());
        assert!(store.get("9").is_some());
        let mut none = MessageStore::new(0, IdFormat::Decimal);
        none.remember(
            1,
            message(1, IdFormat::Decimal),
            MessageState::Delivered,
            now,
        );
        assert!(none.get("1").is_none());
    }
}
