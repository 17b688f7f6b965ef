//! A gauge of the machine's pace: how long a fixed piece of work takes right now. On a shared
//! VM the same code runs faster or slower from minute to minute (the host's other guests use
//! the same cores and caches, and the guest sees no steal time), which moves every figure of
//! a long drain. Timing the same work beside the drain tells a slower stretch of the drain
//! that the machine caused from one that esmed or PostgreSQL did.

use std::hint::black_box;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Entries of the pointer-chasing table: 4 MiB, beyond a core's own caches, as PostgreSQL's
/// buffer and index walks are.
const CHASE_ENTRIES: usize = 1 << 19;
const CHASE_STEPS: usize = 4_000;
const HASH_ROUNDS: u64 = 20_000;
/// The gauge keeps the fastest of these runs: one the scheduler did not interrupt.
const RUNS: usize = 3;

/// How long the fixed work takes now (the fastest of a few runs, about 0.1 ms each).
pub fn now() -> Duration {
    let table = chase_table();
    (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            black_box(chase(table) ^ hash(black_box(7)));
            started.elapsed()
        })
        .min()
        .unwrap_or_default()
}

/// A random cycle through the table, so that each step waits for memory, as a pointer does.
fn chase_table() -> &'static [u32] {
    static TABLE: OnceLock<Vec<u32>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut order: Vec<u32> = (0..CHASE_ENTRIES as u32).collect();
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for i in (1..order.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            order.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let mut table = vec![0u32; CHASE_ENTRIES];
        for pair in order.windows(2) {
            table[pair[0] as usize] = pair[1];
        }
        table[order[CHASE_ENTRIES - 1] as usize] = order[0];
        table
    })
}

fn chase(table: &[u32]) -> u64 {
    let mut at = 0usize;
    for _ in 0..CHASE_STEPS {
        at = table[at] as usize;
    }
    at as u64
}

fn hash(seed: u64) -> u64 {
    let mut x = seed;
    for i in 0..HASH_ROUNDS {
        x = (x ^ i).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(23);
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chase_is_one_cycle_through_the_whole_table() {
        let table = chase_table();
        let mut at = 0usize;
        for step in 1..=CHASE_ENTRIES {
            at = table[at] as usize;
            assert_eq!(
                at == 0,
                step == CHASE_ENTRIES,
                "back at the start after {step}"
            );
        }
        assert!(now() > Duration::ZERO);
    }
}
