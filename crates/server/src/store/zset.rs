//! Sorted sets: a score per member (hash map) and the (score, member) order (B-tree), so that
//! score lookups are O(1) and ranges by score or lexicographic order are O(log n + m).

use ahash::RandomState;
use bytes::Bytes;
use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};

/// A score with a total order (scores are never NaN).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Score(pub f64);

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    /// Numeric order with -0 equal to 0, as Redis's skiplist compares scores (members with
    /// either come in member order).
    fn cmp(&self, other: &Self) -> Ordering {
        if self.0 == other.0 {
            Ordering::Equal
        } else {
            self.0.total_cmp(&other.0)
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct ZSet {
    scores: HashMap<Bytes, f64, RandomState>,
    order: BTreeSet<(Score, Bytes)>,
}

impl ZSet {
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.scores.get(member).copied()
    }

    /// Sets a member's score; returns the previous one.
    pub fn insert(&mut self, member: Bytes, score: f64) -> Option<f64> {
        // -0.0 and 0.0 are one score, as in Redis.
        let score = if score == 0.0 { 0.0 } else { score };
        let old = self.scores.insert(member.clone(), score);
        if let Some(o) = old {
            self.order.remove(&(Score(o), member.clone()));
        }
        self.order.insert((Score(score), member));
        old
    }

    /// Sets a member's score as computed, keeping a -0 (ZUNIONSTORE and the other stores keep
    /// the sign their arithmetic gave, as Redis's do; ZADD and ZINCRBY use [`Self::insert`]).
    pub fn insert_exact(&mut self, member: Bytes, score: f64) -> Option<f64> {
        let old = self.scores.insert(member.clone(), score);
        if let Some(o) = old {
            self.order.remove(&(Score(o), member.clone()));
        }
        self.order.insert((Score(score), member));
        old
    }

    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let (m, s) = self.scores.remove_entry(member)?;
        self.order.remove(&(Score(s), m));
        Some(s)
    }

    /// Members in (score, member) order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&Bytes, f64)> {
        self.order.iter().map(|(s, m)| (m, s.0))
    }

    /// Members with a score from `min` upward, in order.
    pub fn from_score(&self, min: f64) -> impl DoubleEndedIterator<Item = (&Bytes, f64)> {
        self.order
            .range((Score(min), Bytes::new())..)
            .map(|(s, m)| (m, s.0))
    }

    /// Members with a score up to `max` (inclusive), highest first.
    pub fn to_score_rev(&self, max: f64) -> Box<dyn Iterator<Item = (&Bytes, f64)> + '_> {
        if max == f64::INFINITY {
            return Box::new(self.order.iter().rev().map(|(s, m)| (m, s.0)));
        }
        Box::new(
            self.order
                .range(..(Score(max.next_up()), Bytes::new()))
                .rev()
                .map(|(s, m)| (m, s.0)),
        )
    }

    /// The 0-based rank of a member in ascending order.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let s = self.score(member)?;
        Some(
            self.order
                .range(..(Score(s), Bytes::copy_from_slice(member)))
                .count(),
        )
    }

    pub fn memory_usage(&self) -> usize {
        self.scores.keys().map(|m| m.len() * 2 + 80).sum::<usize>() + 64
    }
}
