//! Objects: reading every type `rdbLoadObject` accepts, and writing each value in the type
//! and encoding Redis 7.0 would save it in (rdb.c `rdbSaveObjectType`, `rdbSaveObject`).

use std::cmp::Ordering;
use std::collections::HashSet;

use super::codec::{decimal, parse_canonical_i64, parse_double, put_len, put_string, Reader};
use super::listpack::{self, Element};
use super::{legacy, stream, ModuleValue, RdbError, RdbValue};

pub(super) const TYPE_STRING: u8 = 0;
pub(super) const TYPE_LIST: u8 = 1;
pub(super) const TYPE_SET: u8 = 2;
pub(super) const TYPE_ZSET: u8 = 3;
pub(super) const TYPE_HASH: u8 = 4;
pub(super) const TYPE_ZSET_2: u8 = 5;
pub(super) const TYPE_MODULE: u8 = 6;
pub(super) const TYPE_MODULE_2: u8 = 7;
pub(super) const TYPE_HASH_ZIPMAP: u8 = 9;
pub(super) const TYPE_LIST_ZIPLIST: u8 = 10;
pub(super) const TYPE_SET_INTSET: u8 = 11;
pub(super) const TYPE_ZSET_ZIPLIST: u8 = 12;
pub(super) const TYPE_HASH_ZIPLIST: u8 = 13;
pub(super) const TYPE_LIST_QUICKLIST: u8 = 14;
pub(super) const TYPE_STREAM_LISTPACKS: u8 = 15;
pub(super) const TYPE_HASH_LISTPACK: u8 = 16;
pub(super) const TYPE_ZSET_LISTPACK: u8 = 17;
pub(super) const TYPE_LIST_QUICKLIST_2: u8 = 18;
pub(super) const TYPE_STREAM_LISTPACKS_2: u8 = 19;

/// A hash's field-value pairs.
type HashFields = Vec<(Vec<u8>, Vec<u8>)>;

/// Module value opcodes: every item of a module's serialization is tagged with one.
const MODULE_OPCODE_EOF: u64 = 0;
const MODULE_OPCODE_SINT: u64 = 1;
const MODULE_OPCODE_UINT: u64 = 2;
const MODULE_OPCODE_FLOAT: u64 = 3;
const MODULE_OPCODE_DOUBLE: u64 = 4;
const MODULE_OPCODE_STRING: u64 = 5;

/// Quicklist node containers (RDB_TYPE_LIST_QUICKLIST_2): an element stored alone, or a
/// listpack of elements.
const CONTAINER_PLAIN: u64 = 1;
const CONTAINER_PACKED: u64 = 2;

/// Redis 7.0's default encoding limits, which decide the encodings written here so that they
/// are the ones Redis would have used (and keeps using after RESTORE).
const HASH_MAX_LISTPACK_ENTRIES: usize = 512;
const HASH_MAX_LISTPACK_VALUE: usize = 64;
const ZSET_MAX_LISTPACK_ENTRIES: usize = 128;
const ZSET_MAX_LISTPACK_VALUE: usize = 64;
const SET_MAX_INTSET_ENTRIES: usize = 512;
/// `list-max-listpack-size -2`: list nodes of at most 8 KB.
const LIST_NODE_MAX_BYTES: usize = 8192;
/// Quicklist's estimate of an element's overhead when deciding whether it fits a node.
const LIST_NODE_ELEMENT_OVERHEAD: usize = 8;
/// Elements this large get a node of their own, stored plain (quicklist `packed_threshold`).
const LIST_PLAIN_THRESHOLD: usize = 1 << 30;

/// Whether a type byte names an object type (`rdbIsObjectType`).
pub(super) fn is_object_type(t: u8) -> bool {
    t <= TYPE_MODULE_2 || (TYPE_HASH_ZIPMAP..=TYPE_STREAM_LISTPACKS_2).contains(&t)
}

/// Reads an object of type `rdb_type` (`rdbLoadObject`). A collection with no elements is
/// [`RdbError::EmptyValue`], except in the encodings where Redis calls it corruption.
pub(super) fn read_object(rdb_type: u8, r: &mut Reader<'_>) -> Result<RdbValue, RdbError> {
    let value = match rdb_type {
        TYPE_STRING => RdbValue::String(r.string()?),
        TYPE_LIST => RdbValue::List(read_strings(r)?),
        TYPE_SET => RdbValue::Set(unique(read_strings(r)?, "duplicate set members")?),
        TYPE_ZSET | TYPE_ZSET_2 => RdbValue::ZSet(read_zset(r, rdb_type == TYPE_ZSET_2)?),
        TYPE_HASH => RdbValue::Hash(read_hash(r)?),
        TYPE_LIST_QUICKLIST | TYPE_LIST_QUICKLIST_2 => {
            RdbValue::List(read_quicklist(r, rdb_type == TYPE_LIST_QUICKLIST_2)?)
        }
        TYPE_HASH_ZIPMAP => RdbValue::Hash(hash_from_zipmap(&r.string()?)?),
        TYPE_LIST_ZIPLIST => RdbValue::List(to_vecs(legacy::parse_ziplist(&r.string()?)?)),
        TYPE_SET_INTSET => RdbValue::Set(set_from_intset(&r.string()?)?),
        TYPE_ZSET_ZIPLIST => RdbValue::ZSet(zset_from_pairs(legacy::parse_ziplist(&r.string()?)?)?),
        TYPE_ZSET_LISTPACK => RdbValue::ZSet(zset_from_pairs(listpack::parse(&r.string()?)?)?),
        TYPE_HASH_ZIPLIST => RdbValue::Hash(hash_from_pairs(legacy::parse_ziplist(&r.string()?)?)?),
        TYPE_HASH_LISTPACK => RdbValue::Hash(hash_from_pairs(listpack::parse(&r.string()?)?)?),
        TYPE_STREAM_LISTPACKS | TYPE_STREAM_LISTPACKS_2 => {
            RdbValue::Stream(stream::read_stream(r, rdb_type == TYPE_STREAM_LISTPACKS_2)?)
        }
        TYPE_MODULE | TYPE_MODULE_2 => RdbValue::Module(read_module(r, rdb_type)?),
        _ => return Err(RdbError::Corrupt("unknown object type")),
    };
    if is_empty_collection(&value) {
        return Err(RdbError::EmptyValue);
    }
    Ok(value)
}

fn is_empty_collection(value: &RdbValue) -> bool {
    match value {
        RdbValue::List(items) | RdbValue::Set(items) => items.is_empty(),
        RdbValue::ZSet(members) => members.is_empty(),
        RdbValue::Hash(fields) => fields.is_empty(),
        RdbValue::String(_) | RdbValue::Stream(_) | RdbValue::Module(_) => false,
    }
}

/// A count, then that many strings.
fn read_strings(r: &mut Reader<'_>) -> Result<Vec<Vec<u8>>, RdbError> {
    let n = r.count(1)?;
    let mut items = Vec::with_capacity(n);
    for _ in 0..n {
        items.push(r.string()?);
    }
    Ok(items)
}

/// Refuses `items` when two are equal (Redis refuses duplicate members and fields).
fn unique<T: AsRef<[u8]>>(items: Vec<T>, what: &'static str) -> Result<Vec<T>, RdbError> {
    check_unique(items.iter().map(AsRef::as_ref), what)?;
    Ok(items)
}

fn check_unique<'a>(
    keys: impl ExactSizeIterator<Item = &'a [u8]>,
    what: &'static str,
) -> Result<(), RdbError> {
    let mut seen = HashSet::with_capacity(keys.len());
    for key in keys {
        if !seen.insert(key) {
            return Err(RdbError::Corrupt(what));
        }
    }
    Ok(())
}

/// RDB_TYPE_ZSET (scores as text) or RDB_TYPE_ZSET_2 (scores as binary doubles).
fn read_zset(r: &mut Reader<'_>, binary_scores: bool) -> Result<Vec<(Vec<u8>, f64)>, RdbError> {
    let n = r.count(if binary_scores { 9 } else { 2 })?;
    let mut members = Vec::with_capacity(n);
    for _ in 0..n {
        let member = r.string()?;
        let score = if binary_scores {
            r.f64_le()?
        } else {
            r.text_double()?
        };
        if score.is_nan() {
            return Err(RdbError::Corrupt("zset with NaN score"));
        }
        members.push((member, score));
    }
    check_unique(
        members.iter().map(|(m, _)| m.as_slice()),
        "duplicate zset members",
    )?;
    Ok(members)
}

fn read_hash(r: &mut Reader<'_>) -> Result<HashFields, RdbError> {
    let n = r.count(2)?;
    let mut fields = Vec::with_capacity(n);
    for _ in 0..n {
        let field = r.string()?;
        let value = r.string()?;
        fields.push((field, value));
    }
    check_unique(
        fields.iter().map(|(f, _)| f.as_slice()),
        "duplicate hash fields",
    )?;
    Ok(fields)
}

/// RDB_TYPE_LIST_QUICKLIST (nodes are ziplists) or _2 (each node a listpack, or one plain
/// element). Empty nodes are skipped, as Redis skips them.
fn read_quicklist(r: &mut Reader<'_>, v2: bool) -> Result<Vec<Vec<u8>>, RdbError> {
    let nodes = r.count(1)?;
    let mut items = Vec::new();
    for _ in 0..nodes {
        let container = if v2 { r.read_len()? } else { CONTAINER_PACKED };
        if container != CONTAINER_PLAIN && container != CONTAINER_PACKED {
            return Err(RdbError::Corrupt("quicklist integrity check failed"));
        }
        let data = r.string()?;
        if data.is_empty() {
            return Err(RdbError::Corrupt("empty quicklist node"));
        }
        if container == CONTAINER_PLAIN {
            items.push(data);
        } else if v2 {
            items.extend(to_vecs(listpack::parse(&data)?));
        } else {
            items.extend(to_vecs(legacy::parse_ziplist(&data)?));
        }
    }
    Ok(items)
}

fn to_vecs(elements: Vec<Element<'_>>) -> Vec<Vec<u8>> {
    elements.into_iter().map(Element::to_vec).collect()
}

/// Pairs up a flat sequence of elements, refusing an odd count.
fn pairs<'a>(elements: Vec<Element<'a>>) -> Result<Vec<(Element<'a>, Element<'a>)>, RdbError> {
    if !elements.len().is_multiple_of(2) {
        return Err(RdbError::Corrupt(
            "odd number of elements in pairs encoding",
        ));
    }
    Ok(elements.chunks_exact(2).map(|c| (c[0], c[1])).collect())
}

fn hash_from_pairs(elements: Vec<Element<'_>>) -> Result<HashFields, RdbError> {
    let fields: HashFields = pairs(elements)?
        .into_iter()
        .map(|(f, v)| (f.to_vec(), v.to_vec()))
        .collect();
    check_unique(
        fields.iter().map(|(f, _)| f.as_slice()),
        "duplicate hash fields",
    )?;
    Ok(fields)
}

fn hash_from_zipmap(blob: &[u8]) -> Result<HashFields, RdbError> {
    let fields: HashFields = legacy::parse_zipmap(blob)?
        .into_iter()
        .map(|(f, v)| (f.to_vec(), v.to_vec()))
        .collect();
    check_unique(
        fields.iter().map(|(f, _)| f.as_slice()),
        "duplicate hash fields",
    )?;
    Ok(fields)
}

/// Member-score pairs of a ziplist or listpack sorted set; a score is an integer element or
/// a double's text.
fn zset_from_pairs(elements: Vec<Element<'_>>) -> Result<Vec<(Vec<u8>, f64)>, RdbError> {
    let mut members = Vec::with_capacity(elements.len() / 2);
    for (member, score) in pairs(elements)? {
        let score = match score {
            Element::Int(v) => v as f64,
            Element::Bytes(text) => parse_double(text).ok_or(RdbError::Corrupt("invalid score"))?,
        };
        if score.is_nan() {
            return Err(RdbError::Corrupt("zset with NaN score"));
        }
        members.push((member.to_vec(), score));
    }
    check_unique(
        members.iter().map(|(m, _)| m.as_slice()),
        "duplicate zset members",
    )?;
    Ok(members)
}

fn set_from_intset(blob: &[u8]) -> Result<Vec<Vec<u8>>, RdbError> {
    Ok(legacy::parse_intset(blob)?
        .into_iter()
        .map(decimal)
        .collect())
}

/// A module value: the type ID, then the opcode-tagged body through its EOF opcode, kept raw
/// after checking it parses (`rdbLoadCheckModuleValue`). Version 1 values have no tags and
/// cannot be delimited without the module.
fn read_module(r: &mut Reader<'_>, rdb_type: u8) -> Result<ModuleValue, RdbError> {
    let type_id = r.read_len()?;
    if rdb_type == TYPE_MODULE {
        return Err(RdbError::UnparsableModule {
            name: super::module_type_name(type_id),
        });
    }
    let body = read_module_body(r)?.to_vec();
    Ok(ModuleValue { type_id, body })
}

/// Reads opcode-tagged module data through its EOF opcode, returning the bytes read (the EOF
/// opcode included). Shared with module AUX data in RDB files.
pub(super) fn read_module_body<'a>(r: &mut Reader<'a>) -> Result<&'a [u8], RdbError> {
    let start = r.position();
    loop {
        match r.read_len()? {
            MODULE_OPCODE_EOF => return Ok(r.consumed_since(start)),
            MODULE_OPCODE_SINT | MODULE_OPCODE_UINT => {
                r.read_len()?;
            }
            MODULE_OPCODE_FLOAT => {
                r.take(4)?;
            }
            MODULE_OPCODE_DOUBLE => {
                r.take(8)?;
            }
            MODULE_OPCODE_STRING => {
                r.string()?;
            }
            _ => return Err(RdbError::Corrupt("unknown module value opcode")),
        }
    }
}

/// Writes the type byte and the object, choosing the type and encoding Redis 7.0 would.
pub(super) fn write_object(value: &RdbValue, out: &mut Vec<u8>) {
    match value {
        RdbValue::String(s) => {
            out.push(TYPE_STRING);
            put_string(out, s);
        }
        RdbValue::List(items) => write_list(items, out),
        RdbValue::Set(members) => write_set(members, out),
        RdbValue::ZSet(members) => write_zset(members, out),
        RdbValue::Hash(fields) => write_hash(fields, out),
        RdbValue::Stream(s) => {
            out.push(TYPE_STREAM_LISTPACKS_2);
            stream::write_stream(s, out);
        }
        RdbValue::Module(m) => {
            out.push(TYPE_MODULE_2);
            put_len(out, m.type_id);
            out.extend_from_slice(&m.body);
        }
    }
}

/// A quicklist of listpack nodes, split where RPUSH would split them: a node takes an
/// element while its size plus the element's length plus 8 stays within 8 KB. Elements of
/// 1 GB or more go in plain nodes of their own.
fn write_list(items: &[Vec<u8>], out: &mut Vec<u8>) {
    enum Node {
        Packed(listpack::Builder),
        Plain(usize),
    }
    let mut nodes: Vec<Node> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        if item.len() >= LIST_PLAIN_THRESHOLD {
            nodes.push(Node::Plain(index));
            continue;
        }
        let fits = match nodes.last() {
            Some(Node::Packed(lp)) => {
                lp.total_bytes() + item.len() + LIST_NODE_ELEMENT_OVERHEAD <= LIST_NODE_MAX_BYTES
            }
            _ => false,
        };
        if !fits {
            nodes.push(Node::Packed(listpack::Builder::new()));
        }
        if let Some(Node::Packed(lp)) = nodes.last_mut() {
            lp.push_bytes(item);
        }
    }
    out.push(TYPE_LIST_QUICKLIST_2);
    put_len(out, nodes.len() as u64);
    for node in nodes {
        match node {
            Node::Plain(index) => {
                put_len(out, CONTAINER_PLAIN);
                put_string(out, &items[index]);
            }
            Node::Packed(lp) => {
                put_len(out, CONTAINER_PACKED);
                put_string(out, &lp.finish());
            }
        }
    }
}

/// An intset when every member is an integer's canonical text and there are at most 512,
/// else a plain set.
fn write_set(members: &[Vec<u8>], out: &mut Vec<u8>) {
    let integers: Option<Vec<i64>> = if members.len() <= SET_MAX_INTSET_ENTRIES {
        members.iter().map(|m| parse_canonical_i64(m)).collect()
    } else {
        None
    };
    match integers {
        Some(mut values) if !values.is_empty() => {
            values.sort_unstable();
            values.dedup();
            out.push(TYPE_SET_INTSET);
            put_string(out, &legacy::build_intset(&values));
        }
        _ => {
            out.push(TYPE_SET);
            put_len(out, members.len() as u64);
            for member in members {
                put_string(out, member);
            }
        }
    }
}

/// Redis's sorted-set order: by score, then by member bytes.
fn zset_order(a: &(Vec<u8>, f64), b: &(Vec<u8>, f64)) -> Ordering {
    a.1.partial_cmp(&b.1)
        .unwrap_or(Ordering::Equal)
        .then_with(|| a.0.cmp(&b.0))
}

/// A listpack in score order when at most 128 members of at most 64 bytes, else
/// RDB_TYPE_ZSET_2 from the greatest member to the smallest (skiplist tail to head).
fn write_zset(members: &[(Vec<u8>, f64)], out: &mut Vec<u8>) {
    let mut sorted: Vec<&(Vec<u8>, f64)> = members.iter().collect();
    sorted.sort_by(|a, b| zset_order(a, b));
    let small = members.len() <= ZSET_MAX_LISTPACK_ENTRIES
        && members
            .iter()
            .all(|(m, _)| m.len() <= ZSET_MAX_LISTPACK_VALUE);
    if small {
        let mut lp = listpack::Builder::new();
        for (member, score) in sorted {
            lp.push_bytes(member);
            push_score(&mut lp, *score);
        }
        out.push(TYPE_ZSET_LISTPACK);
        put_string(out, &lp.finish());
    } else {
        out.push(TYPE_ZSET_2);
        put_len(out, members.len() as u64);
        for (member, score) in sorted.into_iter().rev() {
            put_string(out, member);
            out.extend_from_slice(&score.to_le_bytes());
        }
    }
}

/// A score in a sorted-set listpack (t_zset.c `zzlInsertAt`): an integer when the double is
/// one (within ±2^62), else its `d2string` text.
fn push_score(lp: &mut listpack::Builder, score: f64) {
    match double_as_i64(score) {
        Some(v) => lp.push_int(v),
        None => lp.push_bytes(double_text(score).as_bytes()),
    }
}

/// Redis's `double2ll`: the double as an integer when it is one and lies within
/// ±(LLONG_MAX/2), so the conversion loses nothing.
fn double_as_i64(d: f64) -> Option<i64> {
    let limit = (i64::MAX / 2) as f64;
    if d.is_nan() || !(-limit..=limit).contains(&d) {
        return None;
    }
    let v = d as i64;
    (v as f64 == d).then_some(v)
}

/// Redis's `d2string`: "nan", "inf", "-inf", "-0"/"0", an integer's digits, else "%.17g".
pub(super) fn double_text(d: f64) -> String {
    if d.is_nan() {
        "nan".to_string()
    } else if d.is_infinite() {
        if d < 0.0 { "-inf" } else { "inf" }.to_string()
    } else if d == 0.0 {
        if d.is_sign_negative() { "-0" } else { "0" }.to_string()
    } else if let Some(v) = double_as_i64(d) {
        v.to_string()
    } else {
        format_g17(d)
    }
}

/// C's `printf("%.17g")` for a finite non-zero double: 17 significant digits, trailing zeros
/// dropped, in positional notation when the exponent is in -4..17, else as `d.ddde±XX`.
fn format_g17(d: f64) -> String {
    let scientific = format!("{d:.16e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let sign = if mantissa.starts_with('-') { "-" } else { "" };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    if !(-4..17).contains(&exponent) {
        let (first, rest) = digits.split_at(1);
        let fraction = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        return format!(
            "{sign}{first}{fraction}e{exp_sign}{:02}",
            exponent.unsigned_abs()
        );
    }
    if exponent < 0 {
        let zeros = "0".repeat((-exponent - 1) as usize);
        return format!("{sign}0.{zeros}{digits}");
    }
    let int_len = exponent as usize + 1;
    if digits.len() <= int_len {
        format!("{sign}{digits}{}", "0".repeat(int_len - digits.len()))
    } else {
        let (int_part, fraction) = digits.split_at(int_len);
        format!("{sign}{int_part}.{fraction}")
    }
}

/// A listpack in the given order when at most 512 fields and every field and value is at
/// most 64 bytes, else RDB_TYPE_HASH.
fn write_hash(fields: &[(Vec<u8>, Vec<u8>)], out: &mut Vec<u8>) {
    let small = fields.len() <= HASH_MAX_LISTPACK_ENTRIES
        && fields
            .iter()
            .all(|(f, v)| f.len() <= HASH_MAX_LISTPACK_VALUE && v.len() <= HASH_MAX_LISTPACK_VALUE);
    if small {
        let mut lp = listpack::Builder::new();
        for (field, value) in fields {
            lp.push_bytes(field);
            lp.push_bytes(value);
        }
        out.push(TYPE_HASH_LISTPACK);
        put_string(out, &lp.finish());
    } else {
        out.push(TYPE_HASH);
        put_len(out, fields.len() as u64);
        for (field, value) in fields {
            put_string(out, field);
            put_string(out, value);
        }
    }
}
