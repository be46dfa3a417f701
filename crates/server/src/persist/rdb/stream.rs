//! Streams: the radix tree of listpack nodes with its metadata and consumer groups
//! (rdb.c, RDB_TYPE_STREAM_LISTPACKS and _2; t_stream.c for the node layout).
//!
//! A node is keyed by its master ID (16 bytes, big-endian ms then seq) and holds a listpack:
//!
//! ```text
//! master entry: count | deleted | num-fields | field-1 .. field-N | 0
//! each entry:   flags | ms-delta | seq-delta | [num-fields | field-1 | value-1 ..] | lp-count
//!               (with the SAMEFIELDS flag only the values, the master entry's fields apply)
//! ```
//!
//! IDs are stored as deltas from the master ID; `lp-count` lets the node be walked backwards.

use std::collections::{BTreeMap, HashSet};

use super::codec::{put_len, put_string, Reader};
use super::listpack::{self, Element};
use super::{PendingEntry, RdbConsumer, RdbError, RdbGroup, RdbStream, StreamFields, StreamId};

const FLAG_DELETED: i64 = 1;
const FLAG_SAMEFIELDS: i64 = 2;

/// Redis 7.0's default `stream-node-max-bytes` and `stream-node-max-entries`: where XADD
/// starts a new node, so nodes written here are the nodes Redis would have.
const NODE_MAX_BYTES: usize = 4096;
const NODE_MAX_ENTRIES: usize = 100;

const BAD_NODE: RdbError = RdbError::Corrupt("stream listpack integrity check failed");

/// Reads a stream; `v2` (RDB_TYPE_STREAM_LISTPACKS_2) adds the first ID, the greatest
/// deleted ID, the all-time entry count and the groups' read counters. For version 1 they
/// are derived as Redis 7.0 derives them.
pub(super) fn read_stream(r: &mut Reader<'_>, v2: bool) -> Result<RdbStream, RdbError> {
    let entries = read_nodes(r)?;
    let length = r.read_len()?;
    if length != entries.len() as u64 {
        return Err(RdbError::Corrupt(
            "stream length inconsistent with its entries",
        ));
    }
    let last_id = read_id(r)?;
    let mut stream = RdbStream {
        entries,
        last_id,
        ..RdbStream::default()
    };
    if v2 {
        stream.first_id = read_id(r)?;
        stream.max_deleted_id = read_id(r)?;
        stream.entries_added = r.read_len()?;
    } else {
        // As streamGetEdgeID: the first live entry, or the greatest ID when there is none.
        stream.first_id = stream
            .entries
            .first()
            .map_or(StreamId::new(u64::MAX, u64::MAX), |(id, _)| *id);
        stream.entries_added = length;
    }
    stream.groups = read_groups(r, &stream, v2)?;
    Ok(stream)
}

/// An ID written as two lengths (ms, then seq).
fn read_id(r: &mut Reader<'_>) -> Result<StreamId, RdbError> {
    Ok(StreamId::new(r.read_len()?, r.read_len()?))
}

/// An ID written raw, 16 bytes big-endian (PEL entries).
fn read_raw_id(r: &mut Reader<'_>) -> Result<StreamId, RdbError> {
    Ok(StreamId::from_be_bytes(r.array()?))
}

/// Reads every node and returns the live entries in ID order. Nodes are ordered by their
/// keys, as the radix tree orders them whatever order they were written in.
fn read_nodes(r: &mut Reader<'_>) -> Result<Vec<(StreamId, StreamFields)>, RdbError> {
    let node_count = r.count(2)?;
    let mut nodes = BTreeMap::new();
    for _ in 0..node_count {
        let key = r.string()?;
        let key: [u8; 16] = key
            .try_into()
            .map_err(|_| RdbError::Corrupt("stream node key is not the size of a stream ID"))?;
        let lp = r.string()?;
        if nodes.insert(StreamId::from_be_bytes(key), lp).is_some() {
            return Err(RdbError::Corrupt(
                "stream listpack re-added with existing key",
            ));
        }
    }
    let mut entries: Vec<(StreamId, StreamFields)> = Vec::new();
    for (master_id, lp) in &nodes {
        for entry in read_node(*master_id, lp)? {
            if entries.last().is_some_and(|(last, _)| *last >= entry.0) {
                return Err(RdbError::Corrupt("stream entries out of order"));
            }
            entries.push(entry);
        }
    }
    Ok(entries)
}

/// Walks the elements of one node's listpack.
struct NodeCursor<'a> {
    elements: std::vec::IntoIter<Element<'a>>,
}

impl<'a> NodeCursor<'a> {
    fn element(&mut self) -> Result<Element<'a>, RdbError> {
        self.elements.next().ok_or(BAD_NODE)
    }

    fn int(&mut self) -> Result<i64, RdbError> {
        self.element()?.as_i64().ok_or(BAD_NODE)
    }

    /// A count of elements still to come, refused when fewer remain.
    fn count(&mut self) -> Result<usize, RdbError> {
        let n = usize::try_from(self.int()?).map_err(|_| BAD_NODE)?;
        if n > self.elements.len() {
            return Err(BAD_NODE);
        }
        Ok(n)
    }

    fn bytes(&mut self) -> Result<Vec<u8>, RdbError> {
        Ok(self.element()?.to_vec())
    }
}

/// Decodes one node, returning its live entries.
fn read_node(master_id: StreamId, lp: &[u8]) -> Result<Vec<(StreamId, StreamFields)>, RdbError> {
    let elements = listpack::parse(lp)?;
    if elements.is_empty() {
        return Err(RdbError::Corrupt("empty listpack inside stream"));
    }
    let mut node = NodeCursor {
        elements: elements.into_iter(),
    };
    let live = node.count()?;
    let deleted = node.count()?;
    let master_field_count = node.count()?;
    let master_fields = (0..master_field_count)
        .map(|_| node.bytes())
        .collect::<Result<Vec<_>, _>>()?;
    if node.int()? != 0 {
        return Err(BAD_NODE);
    }
    let mut entries = Vec::with_capacity(live);
    let mut deleted_seen = 0usize;
    for _ in 0..live + deleted {
        let (id, fields, flags) = read_node_entry(&mut node, master_id, &master_fields)?;
        if flags & FLAG_DELETED != 0 {
            deleted_seen += 1;
        } else {
            entries.push((id, fields));
        }
    }
    if node.elements.len() != 0 || entries.len() != live || deleted_seen != deleted {
        return Err(BAD_NODE);
    }
    Ok(entries)
}

fn read_node_entry(
    node: &mut NodeCursor<'_>,
    master_id: StreamId,
    master_fields: &[Vec<u8>],
) -> Result<(StreamId, StreamFields, i64), RdbError> {
    let flags = node.int()?;
    let ms = master_id.ms.wrapping_add(node.int()? as u64);
    let seq = master_id.seq.wrapping_add(node.int()? as u64);
    let same_fields = flags & FLAG_SAMEFIELDS != 0;
    let mut fields = Vec::new();
    let lp_count = if same_fields {
        for name in master_fields {
            fields.push((name.clone(), node.bytes()?));
        }
        master_fields.len() + 3
    } else {
        let n = node.count()?;
        for _ in 0..n {
            let name = node.bytes()?;
            fields.push((name, node.bytes()?));
        }
        2 * n + 4
    };
    if node.int()? != lp_count as i64 {
        return Err(BAD_NODE);
    }
    Ok((StreamId::new(ms, seq), fields, flags))
}

/// Reads the consumer groups: each with its PEL, then its consumers and the IDs each owns,
/// every one of which must be in the group PEL, and every PEL entry owned once.
fn read_groups(r: &mut Reader<'_>, s: &RdbStream, v2: bool) -> Result<Vec<RdbGroup>, RdbError> {
    let count = r.count(4)?;
    let mut groups = Vec::with_capacity(count);
    let mut names = HashSet::new();
    for _ in 0..count {
        let name = r.string()?;
        let last_id = read_id(r)?;
        let entries_read = if v2 {
            r.read_len()? as i64
        } else {
            estimate_entries_read(s, last_id)
        };
        if !names.insert(name.clone()) {
            return Err(RdbError::Corrupt("duplicated consumer group name"));
        }
        let pel = read_group_pel(r)?;
        let consumers = read_consumers(r, &pel)?;
        groups.push(RdbGroup {
            name,
            last_id,
            entries_read,
            pel,
            consumers,
        });
    }
    Ok(groups)
}

fn read_group_pel(r: &mut Reader<'_>) -> Result<Vec<PendingEntry>, RdbError> {
    let count = r.count(16 + 8 + 1)?;
    let mut pel = Vec::with_capacity(count);
    let mut seen = HashSet::with_capacity(count);
    for _ in 0..count {
        let id = read_raw_id(r)?;
        let delivery_time_ms = r.i64_le()?;
        let delivery_count = r.read_len()?;
        if !seen.insert(id) {
            return Err(RdbError::Corrupt("duplicated global PEL entry"));
        }
        pel.push(PendingEntry {
            id,
            delivery_time_ms,
            delivery_count,
        });
    }
    pel.sort_by_key(|p| p.id);
    Ok(pel)
}

fn read_consumers(r: &mut Reader<'_>, pel: &[PendingEntry]) -> Result<Vec<RdbConsumer>, RdbError> {
    let count = r.count(1 + 8 + 1)?;
    let mut consumers = Vec::with_capacity(count);
    let mut names = HashSet::new();
    let mut unowned: HashSet<StreamId> = pel.iter().map(|p| p.id).collect();
    for _ in 0..count {
        let name = r.string()?;
        if !names.insert(name.clone()) {
            return Err(RdbError::Corrupt("duplicate stream consumer"));
        }
        let seen_time_ms = r.i64_le()?;
        let owned = r.count(16)?;
        let mut pending = Vec::with_capacity(owned);
        for _ in 0..owned {
            let id = read_raw_id(r)?;
            if !unowned.remove(&id) {
                return Err(RdbError::Corrupt(
                    "consumer PEL entry not in the group PEL, or owned twice",
                ));
            }
            pending.push(id);
        }
        pending.sort_unstable();
        consumers.push(RdbConsumer {
            name,
            seen_time_ms,
            pending,
        });
    }
    if !unowned.is_empty() {
        return Err(RdbError::Corrupt("stream group PEL entry without consumer"));
    }
    Ok(consumers)
}

/// A version 1 group's read counter, as Redis 7.0 estimates it when loading one
/// (`streamEstimateDistanceFromFirstEverEntry`, with no entries ever deleted).
fn estimate_entries_read(s: &RdbStream, id: StreamId) -> i64 {
    const UNKNOWN: i64 = -1;
    if s.entries_added == 0 {
        return 0;
    }
    let added = s.entries_added as i64;
    let length = s.entries.len() as i64;
    if s.entries.is_empty() && id <= s.last_id {
        return added;
    }
    if id == s.last_id {
        added
    } else if id > s.last_id {
        UNKNOWN
    } else if id < s.first_id {
        added - length
    } else if id == s.first_id {
        added - length + 1
    } else {
        UNKNOWN
    }
}

/// Writes a stream as RDB_TYPE_STREAM_LISTPACKS_2 (the caller writes the type byte). Groups,
/// consumers and PELs are written in radix-tree order whatever order they are given in.
pub(super) fn write_stream(s: &RdbStream, out: &mut Vec<u8>) {
    let nodes = build_nodes(&s.entries);
    put_len(out, nodes.len() as u64);
    for (master_id, lp) in &nodes {
        put_string(out, &master_id.to_be_bytes());
        put_string(out, lp);
    }
    put_len(out, s.entries.len() as u64);
    for id in [s.last_id, s.first_id, s.max_deleted_id] {
        put_len(out, id.ms);
        put_len(out, id.seq);
    }
    put_len(out, s.entries_added);
    let mut groups: Vec<&RdbGroup> = s.groups.iter().collect();
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    put_len(out, groups.len() as u64);
    for group in groups {
        write_group(group, out);
    }
}

fn write_group(group: &RdbGroup, out: &mut Vec<u8>) {
    put_string(out, &group.name);
    put_len(out, group.last_id.ms);
    put_len(out, group.last_id.seq);
    put_len(out, group.entries_read as u64);
    let mut pel: Vec<&PendingEntry> = group.pel.iter().collect();
    pel.sort_by_key(|p| p.id);
    put_len(out, pel.len() as u64);
    for entry in pel {
        out.extend_from_slice(&entry.id.to_be_bytes());
        out.extend_from_slice(&entry.delivery_time_ms.to_le_bytes());
        put_len(out, entry.delivery_count);
    }
    let mut consumers: Vec<&RdbConsumer> = group.consumers.iter().collect();
    consumers.sort_by(|a, b| a.name.cmp(&b.name));
    put_len(out, consumers.len() as u64);
    for consumer in consumers {
        put_string(out, &consumer.name);
        out.extend_from_slice(&consumer.seen_time_ms.to_le_bytes());
        let mut pending = consumer.pending.clone();
        pending.sort_unstable();
        put_len(out, pending.len() as u64);
        for id in pending {
            out.extend_from_slice(&id.to_be_bytes());
        }
    }
}

/// A node being filled: its master entry (ID and field names of its first entry) and the
/// entries after it, encoded.
struct NodeBuilder<'a> {
    master_id: StreamId,
    master_fields: Vec<&'a [u8]>,
    entries: listpack::Builder,
    count: usize,
}

impl<'a> NodeBuilder<'a> {
    fn new(master_id: StreamId, fields: &'a StreamFields) -> Self {
        NodeBuilder {
            master_id,
            master_fields: fields.iter().map(|(f, _)| f.as_slice()).collect(),
            entries: listpack::Builder::new(),
            count: 0,
        }
    }

    /// The master entry's elements, with the live count `count`.
    fn master_entry(&self, count: usize) -> listpack::Builder {
        let mut lp = listpack::Builder::new();
        lp.push_int(count as i64);
        lp.push_int(0);
        lp.push_int(self.master_fields.len() as i64);
        for field in &self.master_fields {
            lp.push_bytes(field);
        }
        lp.push_int(0);
        lp
    }

    /// The node's size as `lpBytes` reports it while XADD fills it.
    fn total_bytes(&self) -> usize {
        self.master_entry(self.count).total_bytes() + self.entries.elements_bytes()
    }

    /// Whether XADD would start a new node rather than add an entry with these fields.
    fn is_full_for(&self, fields: &StreamFields) -> bool {
        let added: usize = fields.iter().map(|(f, v)| f.len() + v.len()).sum();
        self.total_bytes() + added >= NODE_MAX_BYTES || self.count >= NODE_MAX_ENTRIES
    }

    /// Appends an entry as `streamAppendItem` encodes it.
    fn push(&mut self, id: StreamId, fields: &StreamFields) {
        let same_fields = fields.len() == self.master_fields.len()
            && fields
                .iter()
                .zip(&self.master_fields)
                .all(|((f, _), master)| f.as_slice() == *master);
        let lp = &mut self.entries;
        lp.push_int(if same_fields { FLAG_SAMEFIELDS } else { 0 });
        lp.push_int(id.ms.wrapping_sub(self.master_id.ms) as i64);
        lp.push_int(id.seq.wrapping_sub(self.master_id.seq) as i64);
        if same_fields {
            for (_, value) in fields {
                lp.push_bytes(value);
            }
            lp.push_int(fields.len() as i64 + 3);
        } else {
            lp.push_int(fields.len() as i64);
            for (field, value) in fields {
                lp.push_bytes(field);
                lp.push_bytes(value);
            }
            lp.push_int(2 * fields.len() as i64 + 4);
        }
        self.count += 1;
    }

    fn finish(self) -> (StreamId, Vec<u8>) {
        let mut lp = self.master_entry(self.count);
        lp.append(&self.entries);
        (self.master_id, lp.finish())
    }
}

/// Splits the entries into nodes as a run of XADDs would.
pub(super) fn build_nodes(entries: &[(StreamId, StreamFields)]) -> Vec<(StreamId, Vec<u8>)> {
    let mut nodes = Vec::new();
    let mut current: Option<NodeBuilder<'_>> = None;
    for (id, fields) in entries {
        if current
            .as_ref()
            .is_some_and(|node| node.is_full_for(fields))
        {
            nodes.extend(current.take().map(NodeBuilder::finish));
        }
        let node = current.get_or_insert_with(|| NodeBuilder::new(*id, fields));
        node.push(*id, fields);
    }
    nodes.extend(current.map(NodeBuilder::finish));
    nodes
}
