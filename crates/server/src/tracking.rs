//! Client-side caching (CLIENT TRACKING): clients that keep what they read in a local cache are
//! told when it goes stale, with Redis 7.0's protocol (its tracking.c):
//!
//! - default mode: the keys a tracking client reads are remembered (key → client ids); the
//!   first change of such a key sends that client `invalidate [key]` and forgets it;
//! - BCAST: a client subscribes to key prefixes and is sent every key changed under each of
//!   them, one message per prefix after each command (Redis: per event loop turn);
//! - OPTIN / OPTOUT with CLIENT CACHING, NOLOOP, REDIRECT (a RESP2 client gets the messages
//!   as `__redis__:invalidate` pub/sub messages on a subscribed connection), `invalidate nil`
//!   on FLUSHALL and FLUSHDB, and `tracking-table-max-keys`.
//!
//! Key names are shared by every database, as in Redis. While no client tracks, a change costs
//! the store one atomic load.
//!
//! Connections run on many threads here, so a read and another client's change of the same
//! key may overlap: a read registers its keys provisionally before it runs and for good after,
//! so a change in between always reaches the reader, whose reply may hold the old value.
//! (Redis, single-threaded, has no such window.) The reader's own lazy expiry of a key it did
//! not track before is no change to it, as in Redis, where expiry comes before the read.

use crate::server::client::{ClientInfo, Control};
use crate::server::reply::Reply;
use crate::server::Server;
use ahash::RandomState;
use bytes::Bytes;
use parking_lot::Mutex;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, OnceLock, Weak};

/// Client flags (`ClientInfo::tracking`), Redis's CLIENT_TRACKING_*.
pub const ON: u32 = 1;
pub const BCAST: u32 = 1 << 1;
pub const OPTIN: u32 = 1 << 2;
pub const OPTOUT: u32 = 1 << 3;
/// CLIENT CACHING yes (OPTIN) or no (OPTOUT) was given for the next command.
pub const CACHING: u32 = 1 << 4;
pub const NOLOOP: u32 = 1 << 5;
/// The client redirected to is gone.
pub const BROKEN_REDIRECT: u32 = 1 << 6;

/// Some client tracks: the store reports its changes.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Keys changed under a BCAST prefix wait to be sent.
static BCAST_PENDING: AtomicBool = AtomicBool::new(false);

static STATE: LazyLock<Mutex<State>> = LazyLock::new(Default::default);
static SERVER: OnceLock<Weak<Server>> = OnceLock::new();

thread_local! {
    /// The client whose command runs on this thread (0: none): NOLOOP skips its own changes.
    static CURRENT: Cell<u64> = const { Cell::new(0) };
    /// The command has not started yet (evictions before it): invalidations for its client
    /// go before its reply, not after.
    static EARLY: Cell<bool> = const { Cell::new(false) };
    static EARLY_PUSHES: RefCell<Vec<Reply>> = const { RefCell::new(Vec::new()) };
    /// A script called a read-only command: its caller tracks the script's keys.
    static SCRIPT_READ: Cell<bool> = const { Cell::new(false) };
}

#[derive(Default)]
struct State {
    clients: HashMap<u64, Tracked, RandomState>,
    /// Key → the clients that read it, each with whether its read is still running.
    table: HashMap<Bytes, HashMap<u64, bool, RandomState>, RandomState>,
    /// Client entries in `table` (INFO's tracking_total_items).
    items: usize,
    prefixes: BTreeMap<Bytes, Prefix>,
    /// Rounds of `limit_table` that ended still over the limit (each tries harder).
    over_limit_rounds: u32,
}

struct Tracked {
    info: Arc<ClientInfo>,
    prefixes: BTreeSet<Bytes>,
}

#[derive(Default)]
struct Prefix {
    clients: BTreeSet<u64>,
    /// Keys changed since the last broadcast, each with the client that changed it last (0:
    /// expiry or eviction), for NOLOOP.
    keys: BTreeMap<Bytes, u64>,
}

/// What an invalidation names.
enum Payload {
    Keys(Vec<Bytes>),
    /// Every key (a flush).
    All,
}

/// Lets the tracker find redirect targets among the server's clients.
pub fn install(server: &Arc<Server>) {
    let _ = SERVER.set(Arc::downgrade(server));
}

/// Whether any client tracks now.
#[inline]
pub fn active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

/// Marks this thread as running a command of client `id` until the guard drops.
pub fn enter(id: u64) -> CurrentGuard {
    CurrentGuard(CURRENT.replace(id))
}

pub struct CurrentGuard(u64);

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        CURRENT.set(self.0);
    }
}

/// Runs what comes before a command (evictions, trimming the table): invalidations it sends
/// the command's own client are answered before the command's reply.
pub fn early<R>(f: impl FnOnce() -> R) -> R {
    let before = EARLY.replace(true);
    let r = f();
    EARLY.set(before);
    r
}

/// The invalidations to send the current client before its reply.
pub fn take_early() -> Vec<Reply> {
    EARLY_PUSHES.with(|p| std::mem::take(&mut *p.borrow_mut()))
}

/// A script is about to run.
pub fn script_started() {
    SCRIPT_READ.set(false);
}

/// A script called a read-only command.
pub fn script_read() {
    SCRIPT_READ.set(true);
}

/// `key` changed; `expired` when no client changed it (expiry, eviction). Called by the store
/// while it holds the key's shard.
pub fn key_changed(key: &[u8], expired: bool) {
    let mut st = STATE.lock();
    if !st.prefixes.is_empty() {
        let by = if expired { 0 } else { CURRENT.get() };
        let mut any = false;
        for (p, bs) in st.prefixes.iter_mut() {
            if key.starts_with(p) {
                bs.keys.insert(Bytes::copy_from_slice(key), by);
                any = true;
            }
        }
        if any {
            BCAST_PENDING.store(true, Ordering::Relaxed);
        }
    }
    invalidate_tracked(&mut st, key);
}

/// Tells the clients that read `key` that it changed, and forgets them.
fn invalidate_tracked(st: &mut State, key: &[u8]) {
    let Some(ids) = st.table.remove(key) else {
        return;
    };
    st.items -= ids.len();
    let current = CURRENT.get();
    for (id, reading) in ids {
        let Some(t) = st.clients.get(&id) else {
            continue;
        };
        let flags = t.info.tracking.load(Ordering::Relaxed);
        // A client that switched to BCAST no longer hears of keys it read before.
        if flags & BCAST != 0 {
            continue;
        }
        if id == current && (flags & NOLOOP != 0 || reading) {
            continue;
        }
        deliver(&t.info, Payload::Keys(vec![Bytes::copy_from_slice(key)]));
    }
}

/// Sends one invalidation for client `c`: to it (RESP3), to the client it redirects to, or
/// nowhere (RESP2 without a redirect, as in Redis).
fn deliver(c: &Arc<ClientInfo>, payload: Payload) {
    let redirect = c.tracking_redirect.load(Ordering::Relaxed);
    let mut target = c.clone();
    let mut redirected = false;
    if redirect != 0 {
        let found = SERVER
            .get()
            .and_then(Weak::upgrade)
            .and_then(|s| s.clients.get(redirect))
            .filter(|r| !r.is_killed());
        match found {
            Some(r) => {
                target = r;
                redirected = true;
            }
            None => {
                c.tracking.fetch_or(BROKEN_REDIRECT, Ordering::Relaxed);
                if c.resp.load(Ordering::Relaxed) > 2 {
                    push(
                        c,
                        Reply::Push(vec![
                            Reply::bulk_str("tracking-redir-broken"),
                            Reply::Int(redirect as i64),
                        ]),
                    );
                }
                return;
            }
        }
    }
    let value = match payload {
        Payload::Keys(keys) => Reply::Array(keys.into_iter().map(Reply::Bulk).collect()),
        Payload::All => Reply::Null,
    };
    let msg = if target.resp.load(Ordering::Relaxed) > 2 {
        Reply::Push(vec![Reply::bulk_str("invalidate"), value])
    } else if redirected && target.client_type() == "pubsub" {
        Reply::Push(vec![
            Reply::bulk_str("message"),
            Reply::bulk_str("__redis__:invalidate"),
            value,
        ])
    } else {
        return;
    };
    push(&target, msg);
}

fn push(target: &ClientInfo, msg: Reply) {
    if EARLY.get() && target.id == CURRENT.get() {
        EARLY_PUSHES.with(|p| p.borrow_mut().push(msg));
    } else {
        target.send(Control::Invalidate(msg));
    }
}

/// Whether a client with `flags` has the keys of a read remembered (OPTIN needs CLIENT
/// CACHING yes first, OPTOUT skips reads after CLIENT CACHING no).
#[inline]
pub fn remembers_reads(flags: u32) -> bool {
    flags & ON != 0
        && flags & BCAST == 0
        && !(flags & OPTIN != 0 && flags & CACHING == 0)
        && !(flags & OPTOUT != 0 && flags & CACHING != 0)
}

/// The keys a command names, as its key specs find them.
pub fn read_keys(cmd: &crate::cmd::Command, req: &crate::server::protocol::Request) -> Vec<Bytes> {
    cmd.keys_with_access(req)
        .iter()
        .map(|&(i, _)| Bytes::copy_from_slice(req.arg(i)))
        .collect()
}

/// Registers client `id` as reading `keys` before the read runs (see the module's note).
pub fn reading(id: u64, keys: &[Bytes]) {
    let mut st = STATE.lock();
    let st = &mut *st;
    for k in keys {
        let ids = st.table.entry(k.clone()).or_default();
        if let std::collections::hash_map::Entry::Vacant(v) = ids.entry(id) {
            v.insert(true);
            st.items += 1;
        }
    }
}

/// Remembers that client `id` read `keys` (Redis's trackingRememberKeys).
pub fn remember(id: u64, keys: &[Bytes]) {
    let mut st = STATE.lock();
    let st = &mut *st;
    for k in keys {
        if st
            .table
            .entry(k.clone())
            .or_default()
            .insert(id, false)
            .is_none()
        {
            st.items += 1;
        }
    }
}

/// After a tracking client's command: remembers what it read and ends a CLIENT CACHING that
/// applied to it.
pub fn after_command(
    info: &ClientInfo,
    cmd: &crate::cmd::Command,
    keys: impl FnOnce() -> Vec<Bytes>,
    ends_caching: bool,
) {
    let flags = info.tracking.load(Ordering::Relaxed);
    // A script's reads are remembered when it ends (`after_script`).
    if cmd.tracks_reads && remembers_reads(flags) {
        let keys = keys();
        if !keys.is_empty() {
            remember(info.id, &keys);
        }
    }
    // CLIENT CACHING applies to the next command, or to the whole next transaction.
    if flags & CACHING != 0 && ends_caching && !cmd.full_name().starts_with("client|") {
        info.tracking.fetch_and(!CACHING, Ordering::Relaxed);
    }
}

/// After a script a tracking client called (`flags`: its tracking flags then): if the script
/// read anything, the client remembers the keys the script declared.
pub fn after_script(id: u64, flags: u32, keys: &[Bytes]) {
    if SCRIPT_READ.replace(false) && remembers_reads(flags) && !keys.is_empty() {
        remember(id, keys);
    }
}

/// CLIENT TRACKING ON's prefix check: no two prefixes of one client may cover the same key.
pub fn check_prefixes(id: u64, new: &[Bytes]) -> Result<(), String> {
    let st = STATE.lock();
    let overlaps = |a: &[u8], b: &[u8]| {
        let n = a.len().min(b.len());
        a[..n] == b[..n]
    };
    for (i, p) in new.iter().enumerate() {
        if let Some(t) = st.clients.get(&id) {
            if let Some(old) = t.prefixes.iter().find(|old| overlaps(old, p)) {
                return Err(format!(
                    "ERR Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client must not overlap.",
                    String::from_utf8_lossy(p),
                    String::from_utf8_lossy(old)
                ));
            }
        }
        if let Some(other) = new[i + 1..].iter().find(|q| overlaps(p, q)) {
            return Err(format!(
                "ERR Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single client must not overlap.",
                String::from_utf8_lossy(p),
                String::from_utf8_lossy(other)
            ));
        }
    }
    Ok(())
}

/// CLIENT TRACKING ON: `options` among BCAST, OPTIN, OPTOUT, NOLOOP; BCAST prefixes add to
/// the client's earlier ones.
pub fn enable(info: &Arc<ClientInfo>, redirect: u64, options: u32, prefixes: &[Bytes]) {
    let mut st = STATE.lock();
    let st = &mut *st;
    let caching = info.tracking.load(Ordering::Relaxed) & CACHING;
    info.tracking
        .store(ON | caching | options, Ordering::Relaxed);
    info.tracking_redirect.store(redirect, Ordering::Relaxed);
    let t = st.clients.entry(info.id).or_insert_with(|| Tracked {
        info: info.clone(),
        prefixes: BTreeSet::new(),
    });
    if options & BCAST != 0 {
        let empty = [Bytes::new()];
        let list = if prefixes.is_empty() {
            &empty[..]
        } else {
            prefixes
        };
        for p in list {
            st.prefixes
                .entry(p.clone())
                .or_default()
                .clients
                .insert(info.id);
            t.prefixes.insert(p.clone());
        }
    }
    ACTIVE.store(true, Ordering::Relaxed);
}

/// CLIENT TRACKING OFF, RESET, and a client's disconnection.
pub fn disable(info: &ClientInfo) {
    if info.tracking.load(Ordering::Relaxed) == 0 {
        return;
    }
    let mut st = STATE.lock();
    info.tracking.store(0, Ordering::Relaxed);
    info.tracking_redirect.store(0, Ordering::Relaxed);
    if let Some(t) = st.clients.remove(&info.id) {
        for p in t.prefixes {
            if let Some(bs) = st.prefixes.get_mut(&p) {
                bs.clients.remove(&info.id);
                if bs.clients.is_empty() {
                    st.prefixes.remove(&p);
                }
            }
        }
    }
    if st.clients.is_empty() {
        // Nobody is left to tell: what was remembered for clients gone goes too.
        st.table = Default::default();
        st.items = 0;
        ACTIVE.store(false, Ordering::Relaxed);
    }
}

/// A client's BCAST prefixes (CLIENT TRACKINGINFO).
pub fn prefixes_of(id: u64) -> Vec<Bytes> {
    STATE
        .lock()
        .clients
        .get(&id)
        .map(|t| t.prefixes.iter().cloned().collect())
        .unwrap_or_default()
}

/// FLUSHALL / FLUSHDB: every tracking client hears that every key changed, and the table is
/// emptied.
pub fn flushed() {
    if !active() {
        return;
    }
    let mut st = STATE.lock();
    for t in st.clients.values() {
        deliver(&t.info, Payload::All);
    }
    st.table = Default::default();
    st.items = 0;
}

/// Sends each BCAST client the keys changed under its prefixes since the last call.
pub fn broadcast() {
    if !BCAST_PENDING.swap(false, Ordering::Relaxed) {
        return;
    }
    let mut st = STATE.lock();
    let st = &mut *st;
    for bs in st.prefixes.values_mut() {
        if bs.keys.is_empty() {
            continue;
        }
        let keys = std::mem::take(&mut bs.keys);
        for id in &bs.clients {
            let Some(t) = st.clients.get(id) else {
                continue;
            };
            let noloop = t.info.tracking.load(Ordering::Relaxed) & NOLOOP != 0;
            let list: Vec<Bytes> = keys
                .iter()
                .filter(|(_, by)| !noloop || **by != *id)
                .map(|(k, _)| k.clone())
                .collect();
            if !list.is_empty() {
                deliver(&t.info, Payload::Keys(list));
            }
        }
    }
}

/// Keeps the table within `max` keys (0: no limit) by invalidating keys as if they changed,
/// trying harder each round that ends still over (Redis's trackingLimitUsedSlots).
pub fn limit_table(max: usize) {
    if max == 0 || !active() {
        return;
    }
    let mut st = STATE.lock();
    if st.table.len() <= max {
        st.over_limit_rounds = 0;
        return;
    }
    let mut effort = 100 * (st.over_limit_rounds as usize + 1);
    while effort > 0 {
        effort -= 1;
        // The map's order is its random seed's: the first key is as good as a random one.
        let Some(key) = st.table.keys().next().cloned() else {
            break;
        };
        invalidate_tracked(&mut st, &key);
        if st.table.len() <= max {
            st.over_limit_rounds = 0;
            return;
        }
    }
    st.over_limit_rounds += 1;
}

/// INFO: (tracking clients, keys, items, prefixes).
pub fn stats() -> (usize, usize, usize, usize) {
    if !active() {
        return (0, 0, 0, 0);
    }
    let st = STATE.lock();
    (
        st.clients.len(),
        st.table.len(),
        st.items,
        st.prefixes.len(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::client::ClientRegistry;
    use tokio::sync::mpsc::UnboundedReceiver;

    /// The tracker's state is the process's: these tests take turns.
    static SERIAL: Mutex<()> = Mutex::new(());

    fn tracking_client(reg: &ClientRegistry) -> (Arc<ClientInfo>, UnboundedReceiver<Control>) {
        let (c, rx) = reg.register(
            "test".into(),
            String::new(),
            -1,
            false,
            crate::acl::internal_user(),
            true,
        );
        c.info.resp.store(3, Ordering::Relaxed);
        enable(&c.info, 0, 0, &[]);
        (c.info.clone(), rx)
    }

    fn invalidated(rx: &mut UnboundedReceiver<Control>) -> Option<Reply> {
        match rx.try_recv() {
            Ok(Control::Invalidate(r)) => Some(r),
            _ => None,
        }
    }

    #[test]
    fn a_change_between_a_read_and_its_remembering_reaches_the_reader() {
        let _serial = SERIAL.lock();
        let reg = ClientRegistry::default();
        let (info, mut rx) = tracking_client(&reg);
        let key = Bytes::from_static(b"race:key");
        // The read starts; another client's change lands before the read is remembered.
        reading(info.id, std::slice::from_ref(&key));
        key_changed(&key, false);
        remember(info.id, std::slice::from_ref(&key));
        let msg = invalidated(&mut rx).expect("the reader hears of the change");
        assert_eq!(
            msg,
            Reply::Push(vec![
                Reply::bulk_str("invalidate"),
                Reply::Array(vec![Reply::Bulk(key.clone())])
            ])
        );
        // And it tracks the key again: the next change is told too, once.
        key_changed(&key, false);
        assert!(invalidated(&mut rx).is_some());
        key_changed(&key, false);
        assert!(invalidated(&mut rx).is_none());
        disable(&info);
    }

    #[test]
    fn the_readers_own_lazy_expiry_is_no_change_to_it() {
        let _serial = SERIAL.lock();
        let reg = ClientRegistry::default();
        let (info, mut rx) = tracking_client(&reg);
        let key = Bytes::from_static(b"expiring:key");
        {
            let _current = enter(info.id);
            reading(info.id, std::slice::from_ref(&key));
            key_changed(&key, true);
            remember(info.id, std::slice::from_ref(&key));
        }
        assert!(invalidated(&mut rx).is_none());
        // Tracked all the same.
        key_changed(&key, false);
        assert!(invalidated(&mut rx).is_some());
        disable(&info);
    }

    #[test]
    fn the_table_shrinks_to_its_limit_and_disabling_the_last_client_empties_it() {
        let _serial = SERIAL.lock();
        let reg = ClientRegistry::default();
        let (info, mut rx) = tracking_client(&reg);
        let keys: Vec<Bytes> = (0..300).map(|i| Bytes::from(format!("lim:{i}"))).collect();
        remember(info.id, &keys);
        assert_eq!(stats().1, 300);
        limit_table(50);
        // 100 keys in the first round, 200 in the next: back under the limit.
        assert_eq!(stats().1, 200);
        limit_table(50);
        assert_eq!(stats().1, 50);
        let mut told = 0;
        while invalidated(&mut rx).is_some() {
            told += 1;
        }
        assert_eq!(told, 250);
        disable(&info);
        assert_eq!(stats(), (0, 0, 0, 0));
        assert!(!active());
    }
}
