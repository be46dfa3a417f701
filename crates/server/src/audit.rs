//! The audit stream: every model management action (store, delete, promote, rollback) appends
//! one entry to an ordinary Redis stream (`audit-stream`, default `locus:audit`, in the database
//! of the key acted on), so XRANGE, XREAD and consumer groups work on it, and it persists as any
//! stream does. The entry is written by the server itself and the caller logs the XADD that
//! reproduces it in the same AOF record as the change it describes; clients cannot append to,
//! trim or edit the stream through the stream commands.

use crate::cmd::{own, CmdError};
use crate::server::Server;
use crate::store::stream::{Stream, StreamId, Trim};
use crate::store::{Entry, Value};
use bytes::Bytes;
use std::sync::atomic::Ordering;

/// What one audit entry records besides who and when.
pub struct Action<'a> {
    /// The command, upper-case (`AI.MODELSTORE`).
    pub command: &'a str,
    pub key: &'a [u8],
    pub version: Option<u64>,
    pub sha256: &'a str,
    /// `ok`, or the error the client got.
    pub outcome: &'a str,
    /// What else the entry needs (a router's target and weight), empty for most.
    pub detail: &'a str,
}

impl<'a> Action<'a> {
    /// A refused action: audited with the error the client got.
    pub fn refused(
        command: &'a str,
        key: &'a [u8],
        version: Option<u64>,
        error: &'a str,
    ) -> Action<'a> {
        Action {
            command,
            key,
            version,
            sha256: "",
            outcome: error,
            detail: "",
        }
    }
}

/// Who acted: the user, the client's address and its name.
pub struct Actor {
    pub user: String,
    pub addr: String,
    pub name: String,
}

impl Actor {
    /// The server acting by itself (a router's guard or ramp).
    pub fn server() -> Actor {
        Actor {
            user: "default".into(),
            addr: String::new(),
            name: "locus:router".into(),
        }
    }

    pub fn of(client: &crate::server::client::Client) -> Actor {
        Actor {
            user: client.user.name_str(),
            addr: client.info.addr.clone(),
            name: String::from_utf8_lossy(&client.info.name.lock()).into_owned(),
        }
    }
}

/// The audit stream's key, or `None` when auditing is off (`audit-stream ""`).
pub fn stream_key(server: &Server) -> Option<Bytes> {
    let name = server.config.live.audit_stream.read();
    (!name.is_empty()).then(|| name.clone())
}

/// Refuses a client's write to the audit or the alert stream (XADD, XDEL, XTRIM). Replaying
/// the AOF rewrites them as they were logged, so loading is exempt.
pub fn refuse_client_write(server: &Server, key: &[u8]) -> Result<(), CmdError> {
    let is = |name: &parking_lot::RwLock<Bytes>| {
        let name = name.read();
        !name.is_empty() && name.as_ref() == key
    };
    let live = &server.config.live;
    let which = if is(&live.audit_stream) {
        "audit"
    } else if is(&live.alert_stream) {
        "alert"
    } else {
        return Ok(());
    };
    if server.loading.load(Ordering::Relaxed) {
        return Ok(());
    }
    Err(CmdError::new(format!(
        "ERR '{}' is the {which} stream: only the server appends to it",
        String::from_utf8_lossy(key)
    )))
}

/// Appends one entry at time `now` to the audit stream of database `db` and returns the XADD
/// (with its explicit id and bound) for the caller's AOF record. Nothing is appended while the
/// dataset loads: the logged XADD replays the original entry instead.
pub fn append(
    server: &Server,
    db: usize,
    now: u64,
    actor: &Actor,
    action: &Action,
) -> Option<Vec<Bytes>> {
    if server.loading.load(Ordering::Relaxed) {
        return None;
    }
    let key = stream_key(server)?;
    let maxlen = server.config.get_i64("audit-maxlen").max(0) as u64;
    let version = action.version.map(|v| v.to_string()).unwrap_or_default();
    let mut fields: Vec<(&str, Vec<u8>)> = vec![
        ("time", now.to_string().into_bytes()),
        ("user", actor.user.clone().into_bytes()),
        ("addr", actor.addr.clone().into_bytes()),
        ("client", actor.name.clone().into_bytes()),
        ("command", action.command.as_bytes().to_vec()),
        ("key", action.key.to_vec()),
        ("version", version.into_bytes()),
        ("sha256", action.sha256.as_bytes().to_vec()),
        ("outcome", action.outcome.as_bytes().to_vec()),
    ];
    if !action.detail.is_empty() {
        fields.push(("detail", action.detail.as_bytes().to_vec()));
    }
    append_entry(server, db, now, key, maxlen, fields)
}

/// Appends one entry to the server-owned stream `key` (audit, alerts) and returns the XADD
/// that reproduces it, with its explicit id and bound, for the caller's AOF record.
pub fn append_entry(
    server: &Server,
    db: usize,
    now: u64,
    key: Bytes,
    maxlen: u64,
    fields: impl IntoIterator<Item = (impl AsRef<str>, Vec<u8>)>,
) -> Option<Vec<Bytes>> {
    let fields: Vec<Bytes> = fields
        .into_iter()
        .flat_map(|(f, v)| {
            [
                Bytes::copy_from_slice(f.as_ref().as_bytes()),
                Bytes::from(v),
            ]
        })
        .collect();
    // A host with stand-in databases writes the entry into its own keyspace.
    let db = server.outbox.home(db);
    if server.outbox.is_on() {
        server.outbox.push(crate::outbox::Forward::Entry {
            db,
            key,
            maxlen,
            fields,
        });
        return None;
    }
    let id = {
        let mut shard = server.store.db(db).write(&key);
        let fresh = match shard.get(&key, now) {
            None => true,
            Some(e) => !matches!(e.value, Value::Stream(_)),
        };
        if fresh {
            // A key of another type under the audit name is replaced: the audit wins.
            shard.insert(
                own(key.clone()),
                Entry::new(Value::Stream(Box::<Stream>::default())),
                now,
            );
        }
        let Some(Entry {
            value: Value::Stream(s),
            ..
        }) = shard.get_mut(&key, now)
        else {
            return None;
        };
        let id = s
            .next_auto_id(now)
            .unwrap_or(StreamId::new(s.last_id.ms, s.last_id.seq.saturating_add(1)));
        s.append(id, fields.clone().into_boxed_slice());
        if maxlen > 0 {
            s.trim(Trim::MaxLen(maxlen), false, 0);
        }
        id
    };
    server.store.add_dirty(1);
    server.blocking.key_ready(db, &key);
    let mut xadd = vec![Bytes::from_static(b"XADD"), key];
    if maxlen > 0 {
        xadd.extend([
            Bytes::from_static(b"MAXLEN"),
            Bytes::from(maxlen.to_string()),
        ]);
    }
    xadd.push(id.to_bytes());
    xadd.extend(fields);
    Some(xadd)
}
