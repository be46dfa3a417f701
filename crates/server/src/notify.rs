//! Keyspace notifications (`notify-keyspace-events`): commands that change a key announce it on
//! `__keyspace@<db>__:<key>` (the event as message) and `__keyevent@<db>__:<event>` (the key
//! as message), with Redis's classes, flags and event names. The AI types announce theirs too
//! (`ai.tensorset`, `ai.modelstore`, `ai.modeldel`, `ai.modelexecute`…) in their own class,
//! so a pipeline can score a record the moment its tensor lands.
//!
//! Off by default; while off, a command's only cost is one atomic load.

use crate::server::Server;
use bytes::Bytes;
use std::sync::atomic::{AtomicU32, Ordering};

pub const KEYSPACE: u32 = 1 << 0;
pub const KEYEVENT: u32 = 1 << 1;
pub const GENERIC: u32 = 1 << 2;
pub const STRING: u32 = 1 << 3;
pub const LIST: u32 = 1 << 4;
pub const SET: u32 = 1 << 5;
pub const HASH: u32 = 1 << 6;
pub const ZSET: u32 = 1 << 7;
pub const EXPIRED: u32 = 1 << 8;
pub const EVICTED: u32 = 1 << 9;
pub const STREAM: u32 = 1 << 10;
pub const KEY_MISS: u32 = 1 << 11;
/// Module types' events in Redis; here the AI types' (`d`, part of `A`).
pub const MODULE: u32 = 1 << 13;
pub const NEW: u32 = 1 << 14;
/// `A`: every class but key misses and new keys, as in Redis.
pub const ALL: u32 =
    GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// The classes selected now (0: off).
pub static FLAGS: AtomicU32 = AtomicU32::new(0);

/// Redis's keyspaceEventsStringToFlags: `None` for a character it does not know.
pub fn parse(s: &str) -> Option<u32> {
    let mut flags = 0;
    for c in s.chars() {
        flags |= match c {
            'A' => ALL,
            'g' => GENERIC,
            '$' => STRING,
            'l' => LIST,
            's' => SET,
            'h' => HASH,
            'z' => ZSET,
            'x' => EXPIRED,
            'e' => EVICTED,
            'K' => KEYSPACE,
            'E' => KEYEVENT,
            't' => STREAM,
            'm' => KEY_MISS,
            'd' => MODULE,
            'n' => NEW,
            _ => return None,
        };
    }
    Some(flags)
}

/// Redis's keyspaceEventsFlagsToString: what CONFIG GET shows.
pub fn to_string(flags: u32) -> String {
    let mut s = String::new();
    if flags & ALL == ALL {
        s.push('A');
    } else {
        for (bit, c) in [
            (GENERIC, 'g'),
            (STRING, '$'),
            (LIST, 'l'),
            (SET, 's'),
            (HASH, 'h'),
            (ZSET, 'z'),
            (EXPIRED, 'x'),
            (EVICTED, 'e'),
            (STREAM, 't'),
            (MODULE, 'd'),
        ] {
            if flags & bit != 0 {
                s.push(c);
            }
        }
    }
    for (bit, c) in [
        (KEYSPACE, 'K'),
        (KEYEVENT, 'E'),
        (KEY_MISS, 'm'),
        (NEW, 'n'),
    ] {
        if flags & bit != 0 {
            s.push(c);
        }
    }
    s
}

/// Whether events of `class` are published now.
#[inline]
pub fn wanted(class: u32) -> bool {
    let f = FLAGS.load(Ordering::Relaxed);
    f & class != 0 && f & (KEYSPACE | KEYEVENT) != 0
}

/// Where events noticed below the commands go (keys expiring, keys created): the store has no
/// server to publish through, so the server installs itself here at start.
type Sink = Box<dyn Fn(u32, &str, &[u8], usize) + Send + Sync>;
static SINK: std::sync::OnceLock<Sink> = std::sync::OnceLock::new();

/// Installs the server that publishes events the store notices (the first server of the
/// process; a server is one per process).
pub fn install(server: &std::sync::Arc<Server>) {
    let weak = std::sync::Arc::downgrade(server);
    let _ = SINK.set(Box::new(move |class, event, key, db| {
        if let Some(server) = weak.upgrade() {
            notify(&server, class, event, key, db);
        }
    }));
}

/// An event the store noticed on `key` of database `db` (a key expired or created).
#[inline]
pub fn emit(class: u32, event: &str, key: &[u8], db: usize) {
    if wanted(class) {
        if let Some(sink) = SINK.get() {
            sink(class, event, key, db);
        }
    }
}

/// Publishes `event` on `key` of database `db` if its class is selected.
pub fn notify(server: &Server, class: u32, event: &str, key: &[u8], db: usize) {
    if !wanted(class) {
        return;
    }
    let flags = FLAGS.load(Ordering::Relaxed);
    let (hard, soft, soft_secs) = server.config.pubsub_output_limit();
    let limit = || crate::server::pubsub::OutputLimit {
        hard,
        soft,
        soft_secs,
    };
    if flags & KEYSPACE != 0 {
        let mut channel = format!("__keyspace@{db}__:").into_bytes();
        channel.extend_from_slice(key);
        server.pubsub.publish(
            &Bytes::from(channel),
            &Bytes::copy_from_slice(event.as_bytes()),
            limit(),
        );
    }
    if flags & KEYEVENT != 0 {
        server.pubsub.publish(
            &Bytes::from(format!("__keyevent@{db}__:{event}")),
            &Bytes::copy_from_slice(key),
            limit(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_read_and_print_as_redis_does() {
        assert_eq!(parse("KEA").map(to_string).as_deref(), Some("AKE"));
        assert_eq!(parse("Kgl$").map(to_string).as_deref(), Some("g$lK"));
        assert_eq!(parse("").map(to_string).as_deref(), Some(""));
        assert_eq!(parse("Em n"), None);
        assert_eq!(parse("Emn").map(to_string).as_deref(), Some("Emn"));
        assert_eq!(parse("Ax"), parse("A"));
    }
}
