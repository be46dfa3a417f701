//! The embedded Locus keyspace the commands run in, and the bridge between it and Redis's.
//!
//! Each command gets a database of its own from a pool for as long as it runs: the keys it
//! names are copied in (reference counts), the command runs, and what it changed is copied
//! back to Redis and the database emptied. A model run that answers later keeps its database
//! until it answers, so its outputs never meet another command's keys, and Redis's lock is
//! never taken from the engine's threads.

use crate::ffi::{self, RString};
use crate::types;
use bytes::Bytes;
use locus::config::Config;
use locus::server::client::Client;
use locus::server::Server;
use locus::store::{Entry, HashValue, Value};
use parking_lot::Mutex;
use redis_module::raw;
use std::collections::BTreeMap;
use std::os::raw::{c_int, c_void};
use std::sync::{Arc, OnceLock};

/// Databases in the pool: the most commands in flight at once (model runs waiting for their
/// batch count; every other command returns its database before the next one starts).
pub const POOL: usize = 4096;

pub struct Host {
    pub server: Arc<Server>,
    pub runtime: tokio::runtime::Runtime,
    free: Mutex<Vec<usize>>,
    /// The embedded client each database's calls run as, kept between calls (a client is
    /// dozens of allocations, which through Redis's allocator cost more than the call).
    clients: Vec<Mutex<Option<Client>>>,
}

static HOST: OnceLock<Host> = OnceLock::new();

pub fn host() -> &'static Host {
    HOST.get().expect("the module is loaded")
}

impl Host {
    /// Builds the embedded server from the module's arguments (AI config names or any engine
    /// setting of locus-server).
    pub fn start(overrides: &[(String, String)]) -> Result<(), String> {
        locus::util::init_clock();
        let mut settings: Vec<(String, String)> = overrides.to_vec();
        settings.push(("databases".into(), POOL.to_string()));
        // The embedded keyspace is never saved: Redis persists the module's values itself.
        settings.push(("save".into(), String::new()));
        settings.push(("appendonly".into(), "no".into()));
        // No audit stream: Redis replays a replicated store as a command, so each node would
        // audit it again; the module's stores are in Redis's own AOF and replication stream.
        settings.push(("audit-stream".into(), String::new()));
        let config = Config::load(None, &settings)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("locus-module")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the module's runtime: {e}"))?;
        let server = {
            let _in_runtime = runtime.enter();
            Server::new(config)
        };
        let host = Host {
            server,
            runtime,
            free: Mutex::new((0..POOL).rev().collect()),
            clients: (0..POOL).map(|_| Mutex::new(None)).collect(),
        };
        HOST.set(host)
            .map_err(|_| "the module is already loaded".to_string())
    }

    pub fn take_db(&self) -> Option<usize> {
        self.free.lock().pop()
    }

    pub fn give_db(&self, db: usize) {
        self.free.lock().push(db);
    }

    /// The client of database `db` (held by the caller until [`Host::put_client`]).
    pub fn client(&self, db: usize) -> Client {
        let mut client = self.clients[db]
            .lock()
            .take()
            .unwrap_or_else(|| self.server.clients.detached(db));
        client.begin_batch();
        client
    }

    pub fn put_client(&self, db: usize, client: Client) {
        *self.clients[db].lock() = Some(client);
    }
}

/// What a key held in Redis when a command started.
#[derive(Clone)]
pub enum Before {
    Absent,
    /// One of the module's values (its pointer tells whether the command replaced it).
    Ai(usize),
    /// Another type: the command sees a placeholder and answers WRONGTYPE, as on locus-server.
    Other,
}

/// Identity of an AI value: commands replace values, they never change one in place (router
/// statistics aside, which stay with the same router).
pub fn identity(v: &Value) -> Option<usize> {
    match v {
        Value::Tensor(t) => Some(Arc::as_ptr(t) as *const () as usize),
        Value::Model(m) => Some(Arc::as_ptr(m) as *const () as usize),
        Value::Router(r) => Some(Arc::as_ptr(r) as *const () as usize),
        _ => None,
    }
}

/// A shallow copy of an AI value (a reference count).
pub fn share(v: &Value) -> Option<Value> {
    match v {
        Value::Tensor(t) => Some(Value::Tensor(Arc::clone(t))),
        Value::Model(m) => Some(Value::Model(Arc::clone(m))),
        Value::Router(r) => Some(Value::Router(Arc::clone(r))),
        _ => None,
    }
}

/// The keys a command works on, copied into database `db`.
pub struct Imported {
    pub db: usize,
    pub keys: Vec<(Bytes, Before)>,
    /// Whether one of the keys holds a router.
    routed: bool,
}

/// Copies `keys` (and the models the routers among them send to) from Redis into `db`.
///
/// # Safety
/// `ctx` is a live module context holding Redis's lock.
/// Keys come with the call's own module string for them where it has one (no copy to make).
pub unsafe fn import(
    ctx: *mut raw::RedisModuleCtx,
    db: usize,
    keys: Vec<(Bytes, *mut raw::RedisModuleString)>,
) -> Imported {
    let server = &host().server;
    let now = locus::util::now_ms();
    let mut out = Imported {
        db,
        keys: Vec::with_capacity(keys.len()),
        routed: false,
    };
    let mut pending = keys;
    while let Some((key, given)) = pending.pop() {
        if out.keys.iter().any(|(k, _)| *k == key) {
            continue;
        }
        let made = given.is_null().then(|| RString::new(ctx, &key));
        let name = made.as_ref().map_or(given, |m| m.ptr);
        let before = match types::read(ctx, name) {
            types::Read::Absent => Before::Absent,
            types::Read::Other => {
                let mut shard = server.store.db(db).write(&key);
                shard.insert(key.clone(), Entry::new(Value::Str(Bytes::new())), now);
                Before::Other
            }
            // An empty stand-in: the command sees the type (AI.LOG SET's stream), never the
            // entries, and nothing of it is written back.
            types::Read::Stream => {
                let mut shard = server.store.db(db).write(&key);
                shard.insert(key.clone(), Entry::new(Value::Stream(Box::default())), now);
                Before::Other
            }
            types::Read::Ai(value) => {
                if let Value::Router(r) = &value {
                    out.routed = true;
                    // A router's targets are read when the request is routed.
                    pending.extend(
                        r.def
                            .targets
                            .iter()
                            .map(|t| (t.key.clone(), std::ptr::null_mut())),
                    );
                }
                let id = identity(&value).expect("an AI value");
                let mut shard = server.store.db(db).write(&key);
                shard.insert(key.clone(), Entry::new(value), now);
                Before::Ai(id)
            }
        };
        out.keys.push((key, before));
    }
    out
}

/// Copies the named fields of the Redis hash at `key` into the call's database, where the
/// call sees a hash (AI.TENSORFROMHASH reads one; other Redis types stay placeholders that
/// answer WRONGTYPE). Fields the hash lacks are left out, so the handler names the first
/// missing one as on locus-server. Only the named fields are read: O(fields), not O(hash).
///
/// # Safety
/// `ctx` holds Redis's lock; `name` is the call's string for `key`.
pub unsafe fn import_hash_fields(
    ctx: *mut raw::RedisModuleCtx,
    imported: &Imported,
    key: &Bytes,
    name: *mut raw::RedisModuleString,
    fields: &[Bytes],
) {
    let other = |(k, b): &(Bytes, Before)| k == key && matches!(b, Before::Other);
    if !imported.keys.iter().any(other) {
        return;
    }
    let handle = raw::RedisModule_OpenKey.unwrap()(ctx, name, raw::REDISMODULE_READ as c_int)
        .cast::<raw::RedisModuleKey>();
    if handle.is_null() {
        return;
    }
    if raw::RedisModule_KeyType.unwrap()(handle) != raw::REDISMODULE_KEYTYPE_HASH as c_int {
        raw::RedisModule_CloseKey.unwrap()(handle);
        return;
    }
    let mut hash = HashValue::default();
    for field in fields {
        if hash.contains_key(field) {
            continue;
        }
        let f = RString::new(ctx, field);
        let value = ffi::hash_get(handle, f.ptr);
        if !value.is_null() {
            hash.insert(field.clone(), Bytes::copy_from_slice(ffi::bytes_of(value)));
            raw::RedisModule_FreeString.unwrap()(ctx, value);
        }
    }
    raw::RedisModule_CloseKey.unwrap()(handle);
    let now = locus::util::now_ms();
    let mut shard = host().server.store.db(imported.db).write(key);
    shard.insert(key.clone(), Entry::new(Value::Hash(Box::new(hash))), now);
}

/// The models of the selected Redis database, by key. A scan of the whole keyspace on Redis's
/// main thread, as KEYS is: for the catalog commands, which read every model.
///
/// # Safety
/// `ctx` is a live command context holding Redis's lock.
pub unsafe fn models_in_db(ctx: *mut raw::RedisModuleCtx) -> BTreeMap<Bytes, Value> {
    let mut found: BTreeMap<Bytes, Value> = BTreeMap::new();
    let cursor = raw::RedisModule_ScanCursorCreate.unwrap()();
    let data = (&mut found as *mut BTreeMap<Bytes, Value>).cast::<c_void>();
    while raw::RedisModule_Scan.unwrap()(ctx, cursor, Some(collect_model), data) != 0 {}
    raw::RedisModule_ScanCursorDestroy.unwrap()(cursor);
    found
}

unsafe extern "C" fn collect_model(
    _ctx: *mut raw::RedisModuleCtx,
    name: *mut raw::RedisModuleString,
    key: *mut raw::RedisModuleKey,
    data: *mut c_void,
) {
    if key.is_null() {
        return;
    }
    // A key past its expiry that Redis has not reclaimed yet reads as 0 ms to live.
    if raw::RedisModule_GetExpire.unwrap()(key) == 0 {
        return;
    }
    if let types::Read::Ai(v @ Value::Model(_)) = types::read_open(key) {
        let found = &mut *data.cast::<BTreeMap<Bytes, Value>>();
        found.insert(Bytes::copy_from_slice(ffi::bytes_of(name)), v);
    }
}

/// Copies every model of the selected Redis database into the call's database (AI.MODELLIST).
///
/// # Safety
/// `ctx` is a live command context holding Redis's lock.
pub unsafe fn import_models(ctx: *mut raw::RedisModuleCtx, imported: &mut Imported) {
    let now = locus::util::now_ms();
    let db = host().server.store.db(imported.db);
    for (key, value) in models_in_db(ctx) {
        if imported.keys.iter().any(|(k, _)| *k == key) {
            continue;
        }
        let id = identity(&value).expect("an AI value");
        db.write(&key).insert(key.clone(), Entry::new(value), now);
        imported.keys.push((key, Before::Ai(id)));
    }
}

/// Lets go of the models a queued run named, once its handler has taken what the run needs.
/// A version retires when its last holder drops it, and queued runs of a retired version are
/// dropped with MODEL_GONE; so Redis's own value must be the last holder, for deleting or
/// replacing the model in Redis (DEL, AI.MODELDEL, FLUSHALL, …) to drop the run as on
/// locus-server. Runs through a router keep everything: routing reads its targets' keys as
/// the run goes.
pub fn release_models(imported: &mut Imported) {
    if imported.routed {
        return;
    }
    let now = locus::util::now_ms();
    let db = host().server.store.db(imported.db);
    imported.keys.retain(|(key, before)| {
        let Before::Ai(id) = before else {
            return true;
        };
        let mut shard = db.write(key);
        let model = shard
            .get(key, now)
            .is_some_and(|e| matches!(e.value, Value::Model(_)) && identity(&e.value) == Some(*id));
        if model {
            shard.remove(key, now);
        }
        !model
    });
}

/// What a command changed in Redis's keyspace.
#[derive(Default)]
pub struct Changes {
    /// Keys now holding a new tensor, with it (a run's outputs, replicated as TENSORSET).
    pub tensors: Vec<(Bytes, Arc<locus_engine::tensor::Tensor>)>,
    /// Keys the command deleted.
    pub deleted: Vec<Bytes>,
    pub any: bool,
}

/// Writes back to Redis the keys the command replaced or deleted, then empties `db` and
/// returns it to the pool.
///
/// # Safety
/// `ctx` is a live module context holding Redis's lock.
pub unsafe fn export(ctx: *mut raw::RedisModuleCtx, imported: Imported, event: &str) -> Changes {
    let h = host();
    let now = locus::util::now_ms();
    let db = h.server.store.db(imported.db);
    let mut changes = Changes::default();
    let event = std::ffi::CString::new(event).unwrap_or_default();
    for (key, before) in imported.keys {
        let after = db.write(&key).remove(&key, now).map(|e| e.value);
        let after_id = after.as_ref().and_then(identity);
        match (&before, after_id) {
            (Before::Ai(b), Some(a)) if *b == a => {}
            (_, Some(_)) => {
                let value = after.expect("an AI value");
                if let Value::Tensor(t) = &value {
                    changes.tensors.push((key.clone(), Arc::clone(t)));
                }
                types::write(ctx, &key, value);
                notify(ctx, &event, &key);
                changes.any = true;
            }
            (Before::Ai(_), None) => {
                let k = RString::new(ctx, &key);
                let handle = ffi::open_key(ctx, &k, true);
                raw::RedisModule_DeleteKey.unwrap()(handle);
                raw::RedisModule_CloseKey.unwrap()(handle);
                notify(ctx, &event, &key);
                changes.deleted.push(key);
                changes.any = true;
            }
            _ => {}
        }
    }
    h.give_db(imported.db);
    changes
}

/// A module keyspace event named after the command, as RedisAI sends them.
unsafe fn notify(ctx: *mut raw::RedisModuleCtx, event: &std::ffi::CStr, key: &[u8]) {
    let k = RString::new(ctx, key);
    raw::RedisModule_NotifyKeyspaceEvent.unwrap()(
        ctx,
        raw::NotifyEvent::MODULE.bits(),
        event.as_ptr(),
        k.ptr,
    );
}

/// Empties database `db` of the embedded keyspace without writing anything back (the copies
/// a scoring job kept of its model and CONST tensors), and returns it to the pool.
pub fn discard(db: usize) {
    let h = host();
    drop(h.server.store.db(db).clear());
    h.give_db(db);
}
