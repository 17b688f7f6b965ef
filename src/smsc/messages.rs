//! The accepted messages the SMSC remembers, for query_sm and `SmscHandle::send_receipt`:
//! a bounded map from message id to what was submitted and when it becomes final. The oldest
//! entries are forgotten first, so a soak run does not grow without bound.

use std::collections::{HashMap, VecDeque};
use std::time::SystemTime;

use super::receipt_text::SubmittedMessage;
use crate::smpp::receipt::MessageState;

#[derive(Debug, Clone)]
struct Remembered {
    message: SubmittedMessage,
    final_state: MessageState,
    final_at: SystemTime,
}

/// Message id → message, at most `capacity` of them.
#[derive(Debug)]
pub struct MessageStore {
    by_id: HashMap<String, Remembered>,
    order: VecDeque<String>,
    capacity: usize,
}

impl MessageStore {
    pub fn new(capacity: usize) -> Self {
        MessageStore {
            by_id: HashMap::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    /// Remembers `message`, which reaches `final_state` at `final_at`.
    pub fn remember(
        &mut self,
        message: SubmittedMessage,
        final_state: MessageState,
        final_at: SystemTime,
    ) {
        if self.capacity == 0 {
            return;
        }
        while self.order.len() >= self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old);
            }
        }
        self.order.push_back(message.message_id.clone());
        let id = message.message_id.clone();
        self.by_id.insert(
            id,
            Remembered {
                message,
                final_state,
                final_at,
            },
        );
    }

    pub fn get(&self, id: &str) -> Option<&SubmittedMessage> {
        self.by_id.get(id).map(|r| &r.message)
    }

    /// The state at `now`: ENROUTE until the final time, then the final state and its time.
    pub fn state_of(
        &self,
        id: &str,
        now: SystemTime,
    ) -> Option<(MessageState, Option<SystemTime>)> {
        let r = self.by_id.get(id)?;
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
    use crate::smpp::Address;
    use std::time::Duration;

    fn message(id: &str) -> SubmittedMessage {
        SubmittedMessage {
            message_id: id.into(),
            text_id: id.into(),
            source: Address::default(),
            destination: Address::default(),
            submitted_at: SystemTime::UNIX_EPOCH,
            text_start: String::new(),
        }
    }

    #[test]
    fn forgets_the_oldest_and_reports_state_by_time() {
        let mut store = MessageStore::new(2);
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(10);
        for id in ["1", "2", "3"] {
            store.remember(message(id), MessageState::Delivered, t);
        }
        assert!(store.get("1").is_none());
        assert!(store.get("3").is_some());
        assert_eq!(
            store.state_of("2", SystemTime::UNIX_EPOCH),
            Some((MessageState::Enroute, None))
        );
        assert_eq!(
            store.state_of("2", t),
            Some((MessageState::Delivered, Some(t)))
        );
    }
}
