//! The hash type, in Redis's two encodings: small hashes packed into one buffer (Redis's
//! listpack), larger ones in a hash table.
//!
//! Why two: the usual hash holds a few dozen short fields (a row of features). As a hash table
//! each name and value is an allocation of its own, about 5 KB for 30 small fields, and reading a
//! row is a chain of cache misses. Packed, the same row is one allocation of a few hundred bytes
//! read front to back, which is what batch scoring and `HGETALL` do. Lookups in a packed hash are
//! a linear walk, so a hash moves to the table once it has more than `hash-max-listpack-entries`
//! fields or a name or value longer than `hash-max-listpack-value` bytes, and, as in Redis, never
//! moves back.

use super::value::{limit, HASH_MAX_LISTPACK_ENTRIES, HASH_MAX_LISTPACK_VALUE};
use ahash::RandomState;
use bytes::Bytes;
use std::collections::HashMap;
use std::ops::Range;

/// A hash's fields and values.
#[derive(Clone, Debug)]
pub struct HashValue(Repr);

#[derive(Clone, Debug)]
enum Repr {
    Packed(Packed),
    Table(HashMap<Bytes, Bytes, RandomState>),
}

impl Default for HashValue {
    fn default() -> Self {
        HashValue(Repr::Packed(Packed::default()))
    }
}

impl HashValue {
    /// The number of fields.
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Packed(p) => p.len,
            Repr::Table(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the hash is in its packed (listpack) encoding.
    pub fn is_packed(&self) -> bool {
        matches!(self.0, Repr::Packed(_))
    }

    /// The name `OBJECT ENCODING` answers.
    pub fn encoding(&self) -> &'static str {
        match self.0 {
            Repr::Packed(_) => "listpack",
            Repr::Table(_) => "hashtable",
        }
    }

    /// The value of `field`.
    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match &self.0 {
            Repr::Packed(p) => p.find(field).map(|at| &p.buf[at.value]),
            Repr::Table(t) => t.get(field).map(|v| &v[..]),
        }
    }

    /// The value of `field` as owned bytes (shared, not copied, when the table holds it).
    pub fn get_bytes(&self, field: &[u8]) -> Option<Bytes> {
        match &self.0 {
            Repr::Packed(p) => p
                .find(field)
                .map(|at| Bytes::copy_from_slice(&p.buf[at.value])),
            Repr::Table(t) => t.get(field).cloned(),
        }
    }

    pub fn contains_key(&self, field: &[u8]) -> bool {
        match &self.0 {
            Repr::Packed(p) => p.find(field).is_some(),
            Repr::Table(t) => t.contains_key(field),
        }
    }

    /// Sets `field` to `value`; true when the field is new.
    pub fn insert(&mut self, field: Bytes, value: Bytes) -> bool {
        if let Repr::Packed(p) = &mut self.0 {
            let longest = limit(&HASH_MAX_LISTPACK_VALUE);
            if field.len() <= longest && value.len() <= longest {
                let added = p.set(&field, &value);
                if p.len <= limit(&HASH_MAX_LISTPACK_ENTRIES) {
                    return added;
                }
                self.become_table();
                return added;
            }
            self.become_table();
        }
        match &mut self.0 {
            Repr::Table(t) => t.insert(field, value).is_none(),
            Repr::Packed(_) => unreachable!("converted above"),
        }
    }

    /// Removes `field`; true when it was there.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match &mut self.0 {
            Repr::Packed(p) => p.remove(field),
            Repr::Table(t) => t.remove(field).is_some(),
        }
    }

    /// The fields and values: a packed hash in insertion order, as Redis's listpack.
    pub fn iter(&self) -> Iter<'_> {
        match &self.0 {
            Repr::Packed(p) => Iter::Packed { buf: &p.buf, at: 0 },
            Repr::Table(t) => Iter::Table(t.iter()),
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.iter().map(|(f, _)| f)
    }

    pub fn values(&self) -> impl Iterator<Item = &[u8]> {
        self.iter().map(|(_, v)| v)
    }

    /// Asks the CPU to start loading a packed hash's buffer (a hint: nothing is read), so that
    /// a reader that gets to it a little later finds it in the cache.
    #[inline]
    pub fn prefetch(&self) {
        if let Repr::Packed(p) = &self.0 {
            for line in p.buf.chunks(64) {
                prefetch(line.as_ptr());
            }
        }
    }

    /// Approximate heap bytes held (for `MEMORY USAGE` and accounting).
    pub fn memory_usage(&self) -> usize {
        match &self.0 {
            Repr::Packed(p) => p.buf.capacity() + 48,
            Repr::Table(t) => t.iter().map(|(k, v)| k.len() + v.len() + 80).sum::<usize>() + 48,
        }
    }

    fn become_table(&mut self) {
        if let Repr::Packed(p) = &self.0 {
            let mut t = HashMap::with_capacity_and_hasher(p.len + 1, RandomState::new());
            for (f, v) in self.iter() {
                t.insert(Bytes::copy_from_slice(f), Bytes::copy_from_slice(v));
            }
            self.0 = Repr::Table(t);
        }
    }
}

impl FromIterator<(Bytes, Bytes)> for HashValue {
    fn from_iter<I: IntoIterator<Item = (Bytes, Bytes)>>(pairs: I) -> Self {
        let mut h = HashValue::default();
        for (f, v) in pairs {
            h.insert(f, v);
        }
        h
    }
}

/// The entries of a packed hash back to back: each name, then its value, each as its length (a
/// LEB128 varint, one byte below 128) followed by its bytes.
#[derive(Clone, Debug, Default)]
struct Packed {
    buf: Vec<u8>,
    len: usize,
}

/// Where an entry lies in a packed buffer.
struct Found {
    /// The whole entry, name and value.
    entry: Range<usize>,
    /// The name's bytes.
    name: Range<usize>,
    /// The value's length prefix and bytes.
    value_with_len: Range<usize>,
    /// The value's bytes.
    value: Range<usize>,
}

/// The entry that starts at `at` (the one walk both lookups and iteration use).
#[inline(always)]
fn entry_at(buf: &[u8], at: usize) -> Found {
    let (name_len, name_at) = read_len(buf, at);
    let name_end = name_at + name_len;
    let (value_len, value_at) = read_len(buf, name_end);
    let value_end = value_at + value_len;
    Found {
        entry: at..value_end,
        name: name_at..name_end,
        value_with_len: name_end..value_end,
        value: value_at..value_end,
    }
}

impl Packed {
    fn find(&self, field: &[u8]) -> Option<Found> {
        let buf = &self.buf[..];
        let mut at = 0;
        while at < buf.len() {
            let found = entry_at(buf, at);
            if found.name.len() == field.len() && buf[found.name.clone()] == *field {
                return Some(found);
            }
            at = found.entry.end;
        }
        None
    }

    /// Sets a field; true when it is new.
    fn set(&mut self, field: &[u8], value: &[u8]) -> bool {
        match self.find(field) {
            Some(found) => {
                if found.value.len() == value.len() {
                    self.buf[found.value].copy_from_slice(value);
                } else {
                    let mut encoded = Vec::with_capacity(value.len() + 5);
                    push_item(&mut encoded, value);
                    self.buf.splice(found.value_with_len, encoded);
                }
                false
            }
            None => {
                self.buf.reserve(field.len() + value.len() + 2);
                push_item(&mut self.buf, field);
                push_item(&mut self.buf, value);
                self.len += 1;
                true
            }
        }
    }

    fn remove(&mut self, field: &[u8]) -> bool {
        match self.find(field) {
            Some(found) => {
                self.buf.drain(found.entry);
                self.len -= 1;
                if self.len == 0 {
                    self.buf = Vec::new();
                }
                true
            }
            None => false,
        }
    }
}

/// Asks the CPU to start loading the cache line at `p`.
#[inline(always)]
pub fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it reads nothing and cannot fault, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p as *const i8, std::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

fn push_item(buf: &mut Vec<u8>, item: &[u8]) {
    let mut n = item.len();
    while n >= 0x80 {
        buf.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    buf.push(n as u8);
    buf.extend_from_slice(item);
}

/// The length at `at` and where its bytes start.
#[inline(always)]
fn read_len(buf: &[u8], mut at: usize) -> (usize, usize) {
    let first = buf[at];
    if first < 0x80 {
        return (first as usize, at + 1);
    }
    let (mut n, mut shift) = (0usize, 0);
    loop {
        let b = buf[at];
        at += 1;
        n |= ((b & 0x7f) as usize) << shift;
        if b < 0x80 {
            return (n, at);
        }
        shift += 7;
    }
}

/// The entries of a hash as (name, value) byte slices.
pub enum Iter<'a> {
    Packed { buf: &'a [u8], at: usize },
    Table(std::collections::hash_map::Iter<'a, Bytes, Bytes>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Packed { buf, at } => {
                if *at >= buf.len() {
                    return None;
                }
                let buf: &'a [u8] = buf;
                let found = entry_at(buf, *at);
                *at = found.entry.end;
                Some((&buf[found.name], &buf[found.value]))
            }
            Iter::Table(it) => it.next().map(|(f, v)| (&f[..], &v[..])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn sorted(h: &HashValue) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut v: Vec<_> = h.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect();
        v.sort();
        v
    }

    #[test]
    fn a_small_hash_is_packed_in_insertion_order() {
        let mut h = HashValue::default();
        assert!(h.insert(b("b"), b("2")));
        assert!(h.insert(b("a"), b("1")));
        assert!(!h.insert(b("b"), b("22")));
        assert_eq!(h.encoding(), "listpack");
        assert_eq!(h.len(), 2);
        let order: Vec<_> = h.keys().collect();
        assert_eq!(order, [&b"b"[..], b"a"]);
        assert_eq!(h.get(b"b"), Some(&b"22"[..]));
        assert_eq!(h.get(b"c"), None);
        assert!(h.remove(b"b"));
        assert!(!h.remove(b"b"));
        assert_eq!(h.len(), 1);
        assert!(h.remove(b"a"));
        assert!(h.is_empty());
        assert_eq!(h.iter().count(), 0);
    }

    #[test]
    fn long_values_and_many_fields_move_the_hash_to_a_table_for_good() {
        let mut long = HashValue::default();
        long.insert(b("a"), b("1"));
        long.insert(b("big"), Bytes::from(vec![b'x'; 65]));
        assert_eq!(long.encoding(), "hashtable");
        assert_eq!(long.get(b"a"), Some(&b"1"[..]));
        long.remove(b"big");
        assert_eq!(long.encoding(), "hashtable", "Redis never converts back");

        // Read once: other tests apply configurations, which set the limit (to Redis's 512).
        let most = limit(&HASH_MAX_LISTPACK_ENTRIES);
        let mut many = HashValue::default();
        for i in 0..most {
            many.insert(b(&format!("f{i}")), b("v"));
        }
        assert_eq!(many.encoding(), "listpack");
        many.insert(b(&format!("f{most}")), b("v"));
        assert_eq!(many.encoding(), "hashtable");
        assert_eq!(many.len(), most + 1);
        assert!((0..=most).all(|i| many.get(format!("f{i}").as_bytes()) == Some(&b"v"[..])));
    }

    #[test]
    fn packed_entries_with_multi_byte_lengths() {
        let mut p = Packed::default();
        let sizes = [0usize, 1, 127, 128, 129, 16_383, 16_384, 70_000];
        for (i, n) in sizes.iter().enumerate() {
            assert!(p.set(format!("{i}").as_bytes(), &vec![b'v'; *n]));
        }
        for (i, n) in sizes.iter().enumerate() {
            let at = p.find(format!("{i}").as_bytes()).expect("present");
            assert_eq!(at.value.len(), *n);
        }
        // A value that changes its length prefix's width, in the middle of the buffer.
        assert!(!p.set(b"3", &[b'w'; 5]));
        assert!(!p.set(b"1", &[b'w'; 300]));
        let h = HashValue(Repr::Packed(p));
        assert_eq!(h.get(b"3"), Some(&b"wwwww"[..]));
        assert_eq!(h.get(b"1").map(<[u8]>::len), Some(300));
        assert_eq!(h.get(b"7").map(<[u8]>::len), Some(70_000));
        assert_eq!(h.iter().count(), sizes.len());
    }

    #[test]
    fn packed_and_table_agree_with_a_map_under_random_edits() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..200 {
            let mut h = HashValue::default();
            let mut model = BTreeMap::new();
            for _ in 0..rng.gen_range(1..300) {
                let field = format!("f{}", rng.gen_range(0..150));
                // Lengths around the one-byte varint's edge and, rarely, past the packed limit.
                let len = match rng.gen_range(0..20) {
                    0 => 200,
                    1..=3 => rng.gen_range(120..136),
                    _ => rng.gen_range(0..20),
                };
                let value = vec![b'a' + (rng.gen_range(0..26) as u8); len];
                if rng.gen_bool(0.25) {
                    assert_eq!(h.remove(field.as_bytes()), model.remove(&field).is_some());
                } else {
                    let new = h.insert(b(&field), Bytes::from(value.clone()));
                    assert_eq!(new, model.insert(field, value).is_none());
                }
                assert_eq!(h.len(), model.len());
            }
            let expected: Vec<_> = model
                .iter()
                .map(|(f, v)| (f.as_bytes().to_vec(), v.clone()))
                .collect();
            assert_eq!(sorted(&h), expected);
            for (f, v) in &model {
                assert_eq!(h.get(f.as_bytes()), Some(&v[..]));
                assert_eq!(h.get_bytes(f.as_bytes()).as_deref(), Some(&v[..]));
            }
        }
    }
}
