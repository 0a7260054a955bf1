//! The state of many keys under one algorithm, shared between threads.
//!
//! Keys are spread over [`SHARDS`] shards, each a hash table behind its own mutex, so threads
//! hitting different keys rarely wait for each other (free-threaded Python runs them in parallel).
//! A key is hashed once: the hash picks the shard and probes its table.
//!
//! Memory: a key is stored only once a hit is counted on it (tests, refusals and free hits on an
//! unknown key store nothing), and a key whose state has expired (it decides as a fresh key would)
//! is dropped by a sweep of its shard. A shard sweeps when it has grown to twice its size after the
//! last sweep (so inserting stays amortised O(1)), and, once a lifetime of the algorithm has passed
//! since its last sweep, after as many calls as a quarter of its keys (so keys that went idle are
//! dropped even when no new key comes, at an amortised cost of a few checks per call).

use std::fmt;
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard, PoisonError};

use foldhash::fast::RandomState;
use hashbrown::HashTable;

use super::{Algorithm, Decision, Nanos};

/// How many shards a limiter has: enough for the cores of a large machine.
pub const SHARDS: usize = 16;

/// A shard sweeps on growth only once it holds this many keys.
const MIN_SWEEP_LEN: usize = 64;

/// An algorithm and the state of each key it has counted hits for.
pub struct Keyed<A: Algorithm> {
    algorithm: A,
    hasher: RandomState,
    shards: [Mutex<Shard<A::State>>; SHARDS],
}

struct Entry<S> {
    hash: u64,
    key: Box<str>,
    state: S,
}

struct Shard<S> {
    table: HashTable<Entry<S>>,
    /// Sweep on growth when the table reaches this many keys.
    sweep_at_len: usize,
    /// Calls since the last sweep.
    calls: usize,
    /// No sweep by calls before this time.
    next_sweep_at: Nanos,
}

impl<S> Default for Shard<S> {
    fn default() -> Self {
        Self {
            table: HashTable::new(),
            sweep_at_len: MIN_SWEEP_LEN,
            calls: 0,
            next_sweep_at: 0,
        }
    }
}

impl<A: Algorithm> Keyed<A> {
    /// No keys yet, under `algorithm`.
    pub fn new(algorithm: A) -> Self {
        Self {
            algorithm,
            hasher: RandomState::default(),
            shards: std::array::from_fn(|_| Mutex::default()),
        }
    }

    /// The algorithm deciding for every key.
    pub fn algorithm(&self) -> &A {
        &self.algorithm
    }

    /// Decides a hit of `cost` on `key` at `now` (see [`Algorithm::decide`]).
    #[inline]
    pub fn decide(&self, key: &str, cost: u64, now: Nanos, consume: bool) -> Decision {
        self.decide_in_shard(key, cost, now, consume, true)
    }

    /// As [`decide`](Self::decide), but keeping every key counted: what sweeping must not change.
    #[cfg(test)]
    pub(crate) fn decide_without_sweeping(
        &self,
        key: &str,
        cost: u64,
        now: Nanos,
        consume: bool,
    ) -> Decision {
        self.decide_in_shard(key, cost, now, consume, false)
    }

    #[inline]
    fn decide_in_shard(
        &self,
        key: &str,
        cost: u64,
        now: Nanos,
        consume: bool,
        sweeping: bool,
    ) -> Decision {
        let hash = self.hasher.hash_one(key);
        // The middle bits: hashbrown probes with the low bits and tags entries with the top 7,
        // which would repeat within a shard picked by them.
        #[allow(clippy::cast_possible_truncation)]
        let shard = (hash >> 32) as usize % SHARDS;
        let mut shard = lock(&self.shards[shard]);
        shard.calls += 1;
        if sweeping && shard.calls >= shard.table.len() / 4 && now >= shard.next_sweep_at {
            self.sweep(&mut shard, now);
        }
        if let Some(entry) = shard.table.find_mut(hash, |entry| &*entry.key == key) {
            return self.algorithm.decide(&mut entry.state, cost, now, consume);
        }
        let mut state = A::State::default();
        let decision = self.algorithm.decide(&mut state, cost, now, consume);
        if consume && (self.algorithm.expires_at(&state) > now || !sweeping) {
            if sweeping && shard.table.len() >= shard.sweep_at_len {
                self.sweep(&mut shard, now);
            }
            shard.table.insert_unique(
                hash,
                Entry {
                    hash,
                    key: key.into(),
                    state,
                },
                |entry| entry.hash,
            );
        }
        decision
    }

    /// Drops the keys of `shard` whose state has expired at `now`.
    fn sweep(&self, shard: &mut Shard<A::State>, now: Nanos) {
        shard
            .table
            .retain(|entry| self.algorithm.expires_at(&entry.state) > now);
        let len = shard.table.len();
        if shard.table.capacity() > 4 * len.max(MIN_SWEEP_LEN) {
            shard.table.shrink_to(2 * len, |entry| entry.hash);
        }
        shard.sweep_at_len = (2 * len).max(MIN_SWEEP_LEN);
        shard.calls = 0;
        shard.next_sweep_at = now.saturating_add(self.algorithm.lifetime());
    }

    /// How many keys are held.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| lock(shard).table.len())
            .sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every key.
    pub fn clear(&self) {
        for shard in &self.shards {
            *lock(shard) = Shard::default();
        }
    }
}

impl<A: Algorithm + fmt::Debug> fmt::Debug for Keyed<A> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Keyed")
            .field("algorithm", &self.algorithm)
            .field("keys", &self.len())
            .finish_non_exhaustive()
    }
}

/// Locks `shard`. A panic while it was locked cannot have left it inconsistent for the next
/// caller (every update of a key's state is a single assignment or push), so poisoning is ignored.
fn lock<S>(shard: &Mutex<S>) -> MutexGuard<'_, S> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::{fixed_window::FixedWindow, gcra::Gcra, Quota, Strategy};

    fn fixed_window(limit: u64, period: Nanos) -> Keyed<FixedWindow> {
        let quota = Quota::new(Strategy::FixedWindow, limit, period, None).unwrap();
        Keyed::new(FixedWindow::new(&quota))
    }

    #[test]
    fn keys_are_limited_apart() {
        let limiter = fixed_window(1, 100);
        assert!(limiter.decide("a", 1, 0, true).allowed);
        assert!(limiter.decide("b", 1, 0, true).allowed);
        assert!(!limiter.decide("a", 1, 0, true).allowed);
        assert_eq!(limiter.len(), 2);
    }

    #[test]
    fn only_counted_hits_store_a_key() {
        let limiter = fixed_window(1, 100);
        assert!(limiter.decide("tested", 1, 0, false).allowed);
        assert!(!limiter.decide("too costly", 2, 0, true).allowed);
        assert!(limiter.decide("free", 0, 0, true).allowed);
        assert!(limiter.is_empty());
    }

    #[test]
    fn expired_keys_are_dropped_as_new_keys_come() {
        let limiter = fixed_window(1, 100);
        for round in 0..100_u64 {
            for key in 0..1_000 {
                let key = format!("{round}:{key}");
                assert!(limiter.decide(&key, 1, round * 100, true).allowed);
            }
            // The keys of the previous rounds expired; a shard sweeps by twice its size.
            assert!(
                limiter.len() <= 3_000 + SHARDS * MIN_SWEEP_LEN,
                "{}",
                limiter.len()
            );
        }
    }

    #[test]
    fn idle_keys_are_dropped_as_calls_come() {
        let limiter = fixed_window(1, 100);
        for key in 0..10_000 {
            limiter.decide(&key.to_string(), 1, 0, true);
        }
        assert_eq!(limiter.len(), 10_000);
        // Free hits on some of the keys, long after they all expired: they count nothing, but
        // every shard sees calls, and sweeps once it has seen a quarter of its keys' worth.
        for call in 0..20_000_u64 {
            limiter.decide(&(call % 1_024).to_string(), 0, 1_000 + call, true);
        }
        assert_eq!(limiter.len(), 0);
    }

    #[test]
    fn clear_forgets_every_key() {
        let limiter = fixed_window(1, 100);
        limiter.decide("a", 1, 0, true);
        limiter.clear();
        assert!(limiter.is_empty());
        assert!(limiter.decide("a", 1, 0, true).allowed);
    }

    #[test]
    fn threads_share_a_limiter_without_losing_hits() {
        let quota = Quota::new(Strategy::Gcra, 1_000, 1_000_000_000, Some(999)).unwrap();
        let limiter = Keyed::new(Gcra::new(&quota));
        let allowed: usize = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        (0..10_000)
                            .filter(|hit| {
                                limiter.decide(&(hit % 7).to_string(), 1, 0, true).allowed
                            })
                            .count()
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|worker| worker.join().unwrap())
                .sum()
        });
        // Each of the 7 keys admits its capacity (burst + 1) at once, and no more.
        assert_eq!(allowed, 7 * 1_000);
        assert_eq!(limiter.len(), 7);
        assert_eq!(limiter.algorithm().lifetime(), 1_000_000_000);
    }
}
