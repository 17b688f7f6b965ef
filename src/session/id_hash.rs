//! The hasher of the session's maps, which are keyed by sequence numbers, row ids and timers
//! and touched several times per submit_sm: SipHash, the default, guards against keys
//! chosen to collide, but these keys are numbers esmed hands out itself (sequence numbers,
//! timers) or reads from its own queue (row ids), and a peer can only look one up. A
//! multiply-rotate hash of the key's words (FxHash's) costs a few instructions instead.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` keyed by numbers esmed chose.
pub(crate) type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// FxHash: each word rotates the state, is mixed in and multiplied by an odd constant.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl IdHasher {
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.mix(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.mix(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::timers::Timer;

    #[test]
    fn keys_that_differ_hash_apart_and_maps_find_them() {
        let hash = |n: u32| {
            let mut h = IdHasher::default();
            h.write_u32(n);
            h.finish()
        };
        assert_ne!(hash(1), hash(2));
        assert_eq!(hash(7), hash(7));
        let mut map: IdMap<Timer, u32> = IdMap::default();
        map.insert(Timer::Response(1), 1);
        map.insert(Timer::Response(2), 2);
        map.insert(Timer::EnquireLink, 3);
        assert_eq!(map.get(&Timer::Response(2)), Some(&2));
        assert_eq!(map.remove(&Timer::EnquireLink), Some(3));
        assert_eq!(map.len(), 2);
    }

    #[test]
    fn byte_keys_use_every_byte() {
        let hash = |bytes: &[u8]| {
            let mut h = IdHasher::default();
            h.write(bytes);
            h.finish()
        };
        assert_ne!(hash(b"abcdefgh1"), hash(b"abcdefgh2"));
    }
}
