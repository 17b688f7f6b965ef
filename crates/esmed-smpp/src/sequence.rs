//! Sequence numbers for the requests esmed originates (SMPP 3.4 §3.2): 1 to
//! 0x7FFFFFFF, then back to 1; never 0, which is reserved for generic_nacks answering an
//! unreadable header. Received sequence numbers are echoed verbatim and never checked here.

/// The largest sequence number a request may carry.
pub const MAX_SEQUENCE_NUMBER: u32 = 0x7FFF_FFFF;

/// Hands out request sequence numbers for one session.
#[derive(Debug, Clone)]
pub struct SequenceNumbers {
    /// The number the next call to [`SequenceNumbers::next`] returns.
    next: u32,
}

impl SequenceNumbers {
    /// Starts at 1.
    pub fn new() -> Self {
        SequenceNumbers { next: 1 }
    }

    /// Starts at `first`; values outside 1..=0x7FFFFFFF start at 1 instead.
    pub fn starting_at(first: u32) -> Self {
        let next = if (1..=MAX_SEQUENCE_NUMBER).contains(&first) {
            first
        } else {
            1
        };
        SequenceNumbers { next }
    }

    /// The next number: 1, 2, … 0x7FFFFFFF, 1, …
    #[allow(clippy::should_implement_trait)] // an endless counter, not an iterator
    pub fn next(&mut self) -> u32 {
        let current = self.next;
        self.next = if current >= MAX_SEQUENCE_NUMBER {
            1
        } else {
            current + 1
        };
        current
    }
}

impl Default for SequenceNumbers {
    fn default() -> Self {
        SequenceNumbers::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_one() {
        let mut numbers = SequenceNumbers::new();
        assert_eq!([numbers.next(), numbers.next(), numbers.next()], [1, 2, 3]);
    }

    #[test]
    fn wraps_to_one_never_zero() {
        let mut numbers = SequenceNumbers::starting_at(MAX_SEQUENCE_NUMBER - 1);
        assert_eq!(numbers.next(), MAX_SEQUENCE_NUMBER - 1);
        assert_eq!(numbers.next(), MAX_SEQUENCE_NUMBER);
        assert_eq!(numbers.next(), 1);
    }

    #[test]
    fn out_of_range_start_becomes_one() {
        assert_eq!(SequenceNumbers::starting_at(0).next(), 1);
        assert_eq!(SequenceNumbers::starting_at(0x8000_0000).next(), 1);
    }
}
