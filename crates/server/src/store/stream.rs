//! Streams: entries ordered by id, consumer groups with their pending entries lists, and the
//! counters Redis 7 keeps to answer `entries-read` and `lag`.
//!
//! Redis stores a stream as a radix tree of listpack nodes that close at
//! `stream-node-max-entries` (100) entries or `stream-node-max-bytes` (4096). Trimming with `~`
//! removes only whole nodes, so what it leaves is visible to clients. Entries here live in one
//! B-tree, and a second small B-tree records the nodes Redis would have (first id, entries
//! placed, entries alive, the listpack's size in bytes and its master fields), so that
//! approximate trimming removes exactly what Redis removes.

use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Entries per node (`stream-node-max-entries`, 0 = no limit).
pub static NODE_MAX_ENTRIES: AtomicU64 = AtomicU64::new(100);
/// Bytes per node's listpack (`stream-node-max-bytes`; 0 means Redis's 1 GB ceiling).
pub static NODE_MAX_BYTES: AtomicUsize = AtomicUsize::new(4096);
/// The largest listpack Redis builds.
const LISTPACK_MAX_SIZE: usize = 1 << 30;

/// The LIMIT an approximate trim gets when none is given: 100 nodes' worth, at most 10000.
pub fn default_trim_limit() -> u64 {
    match NODE_MAX_ENTRIES.load(Ordering::Relaxed).saturating_mul(100) {
        0 => 10_000,
        n => n.min(10_000),
    }
}

/// A stream entry id: milliseconds and a sequence number, ordered as a pair.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    pub fn new(ms: u64, seq: u64) -> Self {
        StreamId { ms, seq }
    }

    /// The id right after this one, `None` past the last possible id.
    pub fn next(self) -> Option<StreamId> {
        if self.seq < u64::MAX {
            Some(StreamId::new(self.ms, self.seq + 1))
        } else if self.ms < u64::MAX {
            Some(StreamId::new(self.ms + 1, 0))
        } else {
            None
        }
    }

    /// The id right before this one, `None` before 0-0.
    pub fn prev(self) -> Option<StreamId> {
        if self.seq > 0 {
            Some(StreamId::new(self.ms, self.seq - 1))
        } else if self.ms > 0 {
            Some(StreamId::new(self.ms - 1, u64::MAX))
        } else {
            None
        }
    }

    pub fn is_zero(self) -> bool {
        self == StreamId::MIN
    }

    pub fn to_bytes(self) -> Bytes {
        Bytes::from(self.to_string())
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// An entry's field/value pairs, flattened: field, value, field, value …
pub type Fields = Box<[Bytes]>;

/// One of Redis's listpack nodes, as far as trimming can see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Entries ever placed in the node (deleted ones included: Redis only marks them).
    pub total: u32,
    /// Entries still alive; a node whose last entry goes is freed.
    pub live: u32,
    /// The last id placed in the node, deleted or not (MINID trimming reads it).
    pub last: StreamId,
    /// The size Redis's listpack for this node has (deleted entries stay in it).
    pub bytes: u32,
    /// The field names of the node's first entry: entries with the same fields are stored
    /// without their names.
    pub master: Box<[Bytes]>,
}

/// Bytes a listpack element takes: its encoding plus the back-length that follows it.
fn lp_element(enclen: usize) -> usize {
    let back = match enclen {
        0..=127 => 1,
        128..16383 => 2,
        16383..2097151 => 3,
        2097151..268435455 => 4,
        _ => 5,
    };
    enclen + back
}

fn lp_int(v: i64) -> usize {
    lp_element(match v {
        0..=127 => 1,
        -4096..=4095 => 2,
        -32768..=32767 => 3,
        -8388608..=8388607 => 4,
        -2147483648..=2147483647 => 5,
        _ => 9,
    })
}

/// Strings that read as canonical 64-bit integers are stored as integers.
fn lp_str(s: &[u8]) -> usize {
    if s.len() <= 20 {
        if let Some(v) = std::str::from_utf8(s)
            .ok()
            .and_then(|t| t.parse::<i64>().ok())
        {
            if v.to_string().as_bytes() == s {
                return lp_int(v);
            }
        }
    }
    lp_element(match s.len() {
        0..64 => 1 + s.len(),
        64..4096 => 2 + s.len(),
        _ => 5 + s.len(),
    })
}

impl Node {
    /// A node opened by entry `fields`: header and end byte, then the master entry (count,
    /// deleted, number of fields, field names, a zero terminator).
    fn open(id: StreamId, fields: &[Bytes]) -> Node {
        let master: Box<[Bytes]> = fields.iter().step_by(2).cloned().collect();
        let bytes = 7
            + lp_int(1)
            + lp_int(0)
            + lp_int(master.len() as i64)
            + master.iter().map(|f| lp_str(f)).sum::<usize>()
            + lp_int(0);
        Node {
            total: 0,
            live: 0,
            last: id,
            bytes: bytes as u32,
            master,
        }
    }

    /// Adds an entry as Redis lays it out: flags, id deltas from the node's first id, the
    /// fields (only when they differ from the master's), the values, and the element count.
    fn add(&mut self, first: StreamId, id: StreamId, fields: &[Bytes]) {
        let n = fields.len() / 2;
        let same = n == self.master.len()
            && fields
                .iter()
                .step_by(2)
                .zip(self.master.iter())
                .all(|(a, b)| a == b);
        let mut size = lp_int(if same { 2 } else { 0 })
            + lp_int(id.ms.wrapping_sub(first.ms) as i64)
            + lp_int(id.seq.wrapping_sub(first.seq) as i64);
        let mut count = n + 3;
        if !same {
            size += lp_int(n as i64) + fields.iter().step_by(2).map(|f| lp_str(f)).sum::<usize>();
            count += n + 1;
        }
        size += fields
            .iter()
            .skip(1)
            .step_by(2)
            .map(|v| lp_str(v))
            .sum::<usize>();
        size += lp_int(count as i64);
        self.bytes += size as u32;
        self.total += 1;
        self.live += 1;
        self.last = id;
    }
}

/// An entry delivered to a consumer and not yet acknowledged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    pub consumer: Bytes,
    /// Unix ms of the last delivery.
    pub delivery_time: u64,
    pub delivery_count: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Consumer {
    /// Unix ms of the consumer's last read or claim.
    pub seen_time: u64,
    pub pending: BTreeSet<StreamId>,
}

/// `entries_read` value meaning "unknown" (Redis's SCG_INVALID_ENTRIES_READ).
pub const ENTRIES_READ_UNKNOWN: i64 = -1;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Group {
    pub last_id: StreamId,
    /// Logical count of entries the group has read, or [`ENTRIES_READ_UNKNOWN`].
    pub entries_read: i64,
    pub pel: BTreeMap<StreamId, Pending>,
    pub consumers: BTreeMap<Bytes, Consumer>,
}

impl Group {
    pub fn new(last_id: StreamId, entries_read: i64) -> Self {
        Group {
            last_id,
            entries_read,
            ..Default::default()
        }
    }

    /// The consumer `name`, created if missing; its seen time is set to `now`. Returns whether
    /// it was created.
    pub fn touch_consumer(&mut self, name: &Bytes, now: u64) -> bool {
        match self.consumers.get_mut(name) {
            Some(c) => {
                c.seen_time = now;
                false
            }
            None => {
                self.consumers.insert(
                    name.clone(),
                    Consumer {
                        seen_time: now,
                        pending: BTreeSet::new(),
                    },
                );
                true
            }
        }
    }

    /// Gives pending entry `id` to `consumer` (which must exist), taking it from its previous
    /// owner, or creates it.
    pub fn assign(&mut self, id: StreamId, consumer: &Bytes, delivery_time: u64, count: u64) {
        if let Some(p) = self.pel.get(&id) {
            if p.consumer != *consumer {
                if let Some(old) = self.consumers.get_mut(&p.consumer) {
                    old.pending.remove(&id);
                }
            }
        }
        self.pel.insert(
            id,
            Pending {
                consumer: consumer.clone(),
                delivery_time,
                delivery_count: count,
            },
        );
        if let Some(c) = self.consumers.get_mut(consumer) {
            c.pending.insert(id);
        }
    }

    /// Removes pending entry `id` from the group and its consumer.
    pub fn ack(&mut self, id: StreamId) -> bool {
        match self.pel.remove(&id) {
            Some(p) => {
                if let Some(c) = self.consumers.get_mut(&p.consumer) {
                    c.pending.remove(&id);
                }
                true
            }
            None => false,
        }
    }

    /// Deletes a consumer and its pending entries; returns how many it had.
    pub fn remove_consumer(&mut self, name: &[u8]) -> usize {
        match self.consumers.remove(name) {
            Some(c) => {
                for id in &c.pending {
                    self.pel.remove(id);
                }
                c.pending.len()
            }
            None => 0,
        }
    }
}

/// How to trim a stream: by length or by lowest id kept.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Trim {
    MaxLen(u64),
    MinId(StreamId),
}

#[derive(Clone, Debug, Default)]
pub struct Stream {
    entries: BTreeMap<StreamId, Fields>,
    /// Node boundaries: first id of each node → its counters.
    nodes: BTreeMap<StreamId, Node>,
    pub last_id: StreamId,
    /// Redis's `recorded-first-entry-id`.
    pub first_id: StreamId,
    pub max_deleted_id: StreamId,
    pub entries_added: u64,
    pub groups: BTreeMap<Bytes, Group>,
}

impl Stream {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, id: StreamId) -> Option<&Fields> {
        self.entries.get(&id)
    }

    pub fn contains(&self, id: StreamId) -> bool {
        self.entries.contains_key(&id)
    }

    pub fn first(&self) -> Option<(StreamId, &Fields)> {
        self.entries.iter().next().map(|(k, v)| (*k, v))
    }

    pub fn last(&self) -> Option<(StreamId, &Fields)> {
        self.entries.iter().next_back().map(|(k, v)| (*k, v))
    }

    /// Entries with `start <= id <= end`, in order, or in reverse order when `rev`.
    pub fn range(
        &self,
        start: StreamId,
        end: StreamId,
        rev: bool,
    ) -> Box<dyn Iterator<Item = (StreamId, &Fields)> + '_> {
        if start > end {
            return Box::new(std::iter::empty());
        }
        let it = self.entries.range(start..=end).map(|(k, v)| (*k, v));
        if rev {
            Box::new(it.rev())
        } else {
            Box::new(it)
        }
    }

    /// Up to `limit` entries with ids above `after`, in order.
    pub fn after(
        &self,
        after: StreamId,
        limit: usize,
    ) -> impl Iterator<Item = (StreamId, &Fields)> + '_ {
        use std::ops::Bound::{Excluded, Unbounded};
        self.entries
            .range((Excluded(after), Unbounded))
            .take(limit)
            .map(|(k, v)| (*k, v))
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (StreamId, &Fields)> + '_ {
        self.entries.iter().map(|(k, v)| (*k, v))
    }

    pub fn nodes(&self) -> impl Iterator<Item = (StreamId, &Node)> + '_ {
        self.nodes.iter().map(|(k, v)| (*k, v))
    }

    /// The id `*` gives at time `now_ms`.
    pub fn next_auto_id(&self, now_ms: u64) -> Option<StreamId> {
        if now_ms > self.last_id.ms {
            Some(StreamId::new(now_ms, 0))
        } else {
            self.last_id.next()
        }
    }

    /// Appends an entry whose id the caller checked to be above `last_id`, in the last node
    /// unless that one is full by Redis's rules (entries placed, or listpack bytes).
    pub fn append(&mut self, id: StreamId, fields: Fields) {
        let added_bytes: usize = fields.iter().map(|f| f.len()).sum();
        let max_bytes = match NODE_MAX_BYTES.load(Ordering::Relaxed) {
            0 => LISTPACK_MAX_SIZE,
            n => n.min(LISTPACK_MAX_SIZE),
        };
        let max_entries = NODE_MAX_ENTRIES.load(Ordering::Relaxed);
        let fits = self.nodes.iter().next_back().is_some_and(|(_, node)| {
            node.bytes as usize + added_bytes < max_bytes
                && (max_entries == 0 || (node.total as u64) < max_entries)
        });
        if !fits {
            self.nodes.insert(id, Node::open(id, &fields));
        }
        let (&first, node) = self.nodes.iter_mut().next_back().expect("a node");
        node.add(first, id, &fields);
        self.entries.insert(id, fields);
        self.last_id = id;
        self.entries_added += 1;
        if self.entries.len() == 1 {
            self.first_id = id;
        }
    }

    /// The node holding `id`, by its first id.
    fn node_of(&self, id: StreamId) -> Option<StreamId> {
        self.nodes.range(..=id).next_back().map(|(k, _)| *k)
    }

    /// Removes one entry, keeping node counters right; does not touch `first_id` or
    /// `max_deleted_id`.
    fn remove_entry(&mut self, id: StreamId) -> bool {
        if self.entries.remove(&id).is_none() {
            return false;
        }
        if let Some(n) = self.node_of(id) {
            let node = self.nodes.get_mut(&n).expect("node");
            node.live -= 1;
            if node.live == 0 {
                self.nodes.remove(&n);
            }
        }
        true
    }

    /// XDEL: deletes the entries given; returns how many existed.
    pub fn delete(&mut self, ids: &[StreamId]) -> usize {
        let mut deleted = 0;
        for &id in ids {
            if self.remove_entry(id) {
                deleted += 1;
                if id > self.max_deleted_id {
                    self.max_deleted_id = id;
                }
            }
        }
        if deleted > 0 {
            self.first_id = self.first().map_or(StreamId::MIN, |(id, _)| id);
        }
        deleted
    }

    /// Trims as Redis's streamTrim does: whole nodes first; with `approx` it stops at the first
    /// node it cannot drop whole, otherwise it deletes single entries from there. `limit`
    /// (approximate trims only; 0 = none) caps the entries removed. Returns how many went.
    pub fn trim(&mut self, how: Trim, approx: bool, limit: u64) -> u64 {
        let mut deleted = 0u64;
        loop {
            match how {
                Trim::MaxLen(n) if self.len() as u64 <= n => break,
                Trim::MinId(_) if self.entries.is_empty() => break,
                _ => {}
            }
            let Some((&first, node)) = self.nodes.iter().next() else {
                break;
            };
            let (live, last) = (node.live, node.last);
            let next_node = self
                .nodes
                .range((std::ops::Bound::Excluded(first), std::ops::Bound::Unbounded))
                .next()
                .map(|(k, _)| *k);
            let node_ids: Vec<StreamId> = match next_node {
                Some(n) => self.entries.range(first..n).map(|(k, _)| *k).collect(),
                None => self.entries.range(first..).map(|(k, _)| *k).collect(),
            };
            if limit > 0 && deleted + live as u64 > limit {
                break;
            }
            let whole = match how {
                Trim::MaxLen(n) => self.len() as u64 - live as u64 >= n,
                Trim::MinId(min) => last < min,
            };
            if whole {
                for id in &node_ids {
                    self.entries.remove(id);
                }
                self.nodes.remove(&first);
                deleted += live as u64;
                continue;
            }
            if approx {
                break;
            }
            // Exact: delete single entries from the front of this node.
            for id in node_ids {
                let done = match how {
                    Trim::MaxLen(n) => self.len() as u64 <= n,
                    Trim::MinId(min) => id >= min,
                };
                if done {
                    break;
                }
                self.remove_entry(id);
                deleted += 1;
            }
            break;
        }
        if deleted > 0 {
            self.first_id = self.first().map_or(StreamId::MIN, |(id, _)| id);
        }
        deleted
    }

    /// Whether a deleted entry may lie between `start` and `end` (Redis's
    /// streamRangeHasTombstones).
    pub fn range_has_tombstones(&self, start: Option<StreamId>, end: Option<StreamId>) -> bool {
        if self.entries.is_empty() || self.max_deleted_id.is_zero() {
            return false;
        }
        if self.first_id > self.max_deleted_id {
            return false;
        }
        let start = start.unwrap_or(StreamId::MIN);
        let end = end.unwrap_or(StreamId::MAX);
        start <= self.max_deleted_id && self.max_deleted_id <= end
    }

    /// How many entries were ever added up to `id`, when that can be known (Redis's
    /// streamEstimateDistanceFromFirstEverEntry).
    pub fn entries_before(&self, id: StreamId) -> i64 {
        if self.entries_added == 0 {
            return 0;
        }
        if self.entries.is_empty() && id <= self.last_id {
            return self.entries_added as i64;
        }
        if id == self.last_id {
            return self.entries_added as i64;
        } else if id > self.last_id {
            return ENTRIES_READ_UNKNOWN;
        }
        if self.max_deleted_id.is_zero() || self.max_deleted_id < self.first_id {
            if id < self.first_id {
                return (self.entries_added - self.len() as u64) as i64;
            } else if id == self.first_id {
                return (self.entries_added - self.len() as u64 + 1) as i64;
            }
        }
        ENTRIES_READ_UNKNOWN
    }

    /// A group's lag (`None` when it cannot be known), as XINFO GROUPS reports it.
    pub fn lag(&self, g: &Group) -> Option<i64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if g.entries_read != ENTRIES_READ_UNKNOWN
            && !self.range_has_tombstones(Some(g.last_id), None)
        {
            return Some(self.entries_added as i64 - g.entries_read);
        }
        match self.entries_before(g.last_id) {
            ENTRIES_READ_UNKNOWN => None,
            read => Some(self.entries_added as i64 - read),
        }
    }

    /// Records that `group` was served entry `id` past its last delivered id.
    pub fn advance_group(&mut self, group: &[u8], id: StreamId) {
        let tombstones = self.range_has_tombstones(Some(id), None);
        let estimate = self.entries_before(id);
        let added = self.entries_added;
        let g = self.groups.get_mut(group).expect("group");
        if id > g.last_id {
            if g.entries_read != ENTRIES_READ_UNKNOWN && !tombstones {
                g.entries_read += 1;
            } else if added > 0 {
                g.entries_read = estimate;
            }
            g.last_id = id;
        }
    }

    /// Rebuilds a stream read back from a snapshot: nodes as they were, entries in order.
    pub fn restore(
        nodes: Vec<(StreamId, Node)>,
        entries: Vec<(StreamId, Fields)>,
        meta: (StreamId, StreamId, StreamId, u64),
        groups: BTreeMap<Bytes, Group>,
    ) -> Self {
        let (last_id, first_id, max_deleted_id, entries_added) = meta;
        Stream {
            entries: entries.into_iter().collect(),
            nodes: nodes.into_iter().collect(),
            last_id,
            first_id,
            max_deleted_id,
            entries_added,
            groups,
        }
    }

    /// Approximate heap bytes, for MEMORY USAGE.
    pub fn memory_usage(&self) -> usize {
        let entries: usize = self
            .entries
            .values()
            .map(|f| f.iter().map(|b| b.len() + 8).sum::<usize>() + 40)
            .sum();
        let groups: usize = self
            .groups
            .iter()
            .map(|(n, g)| {
                n.len()
                    + 64
                    + g.pel.len() * 64
                    + g.consumers.keys().map(|c| c.len() + 64).sum::<usize>()
            })
            .sum();
        entries + groups + self.nodes.len() * 32 + 96
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f() -> Fields {
        vec![Bytes::from_static(b"f"), Bytes::from_static(b"v")].into_boxed_slice()
    }

    fn filled(n: u64) -> Stream {
        let mut s = Stream::default();
        for i in 1..=n {
            s.append(StreamId::new(i, 0), f());
        }
        s
    }

    #[test]
    fn approximate_trim_removes_whole_nodes_only() {
        let mut s = filled(250);
        assert_eq!(s.nodes().count(), 3);
        assert_eq!(s.trim(Trim::MaxLen(120), true, 0), 100);
        assert_eq!(s.len(), 150);
        assert_eq!(s.trim(Trim::MaxLen(120), false, 0), 30);
        assert_eq!(s.len(), 120);
        assert_eq!(s.first_id, StreamId::new(131, 0));
    }

    #[test]
    fn minid_trim_and_limits() {
        let mut s = filled(300);
        assert_eq!(s.trim(Trim::MinId(StreamId::new(250, 0)), true, 100), 100);
        assert_eq!(s.len(), 200);
        assert_eq!(s.trim(Trim::MinId(StreamId::new(250, 0)), false, 0), 149);
        assert_eq!(s.first().unwrap().0, StreamId::new(250, 0));
    }

    #[test]
    fn deleting_a_node_empties_it() {
        let mut s = filled(150);
        let ids: Vec<_> = (1..=100).map(|i| StreamId::new(i, 0)).collect();
        assert_eq!(s.delete(&ids), 100);
        assert_eq!(s.nodes().count(), 1);
        assert_eq!(s.first_id, StreamId::new(101, 0));
        assert_eq!(s.max_deleted_id, StreamId::new(100, 0));
    }

    #[test]
    fn id_arithmetic() {
        assert_eq!(StreamId::new(1, u64::MAX).next(), Some(StreamId::new(2, 0)));
        assert_eq!(StreamId::MAX.next(), None);
        assert_eq!(StreamId::new(2, 0).prev(), Some(StreamId::new(1, u64::MAX)));
        assert_eq!(StreamId::MIN.prev(), None);
    }
}
