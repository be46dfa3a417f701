//! Command execution: the argument cursor, the error texts Redis uses, the per-call context,
//! and dispatch through the table generated from `commands/*.json`.
//!
//! Each command family lives in its own file; a command is a function that reads its
//! arguments from an [`Args`] cursor and applies itself to the store through a [`Ctx`].

pub mod acl;
pub mod bitmaps;
pub mod blocking;
pub mod cluster;
pub mod connection;
pub mod dag;
pub mod dump;
pub mod explain;
pub mod geo;
pub mod hashes;
pub mod hyperloglog;
pub mod keys;
pub mod lists;
pub mod model_versions;
pub mod models;
pub mod monitors;
pub mod pubsub;
pub mod request_logs;
pub mod routers;
pub mod score;
pub mod scripting;
pub mod server;
pub mod sets;
pub mod sort;
pub mod streams;
pub mod strings;
pub mod table;
pub mod tensorops;
pub mod tensors;
pub mod transactions;
pub mod zsets;

use crate::server::client::Client;
use crate::server::protocol::Request;
use crate::server::reply::Reply;
use crate::server::Server;
use crate::store::{Db, Shard, Value};
use bytes::Bytes;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use table::{Command, CommandTable};

/// A command handler.
pub type Handler = fn(&mut Ctx<'_>, &mut Args) -> CmdResult;
pub type CmdResult = Result<Reply, CmdError>;
/// A reply that arrives later (a model run, a blocking pop): the connection awaits it in order.
pub type Deferred = Pin<Box<dyn Future<Output = Reply> + Send>>;

/// An error reply: the full line after `-`, e.g. `ERR syntax error`.
#[derive(Debug, Clone, PartialEq)]
pub struct CmdError(pub String);

impl CmdError {
    pub fn new(msg: impl Into<String>) -> Self {
        CmdError(msg.into())
    }
    pub fn syntax() -> Self {
        CmdError::new(SYNTAX_ERR)
    }
    pub fn not_int() -> Self {
        CmdError::new(NOT_INT_ERR)
    }
    pub fn wrong_type() -> Self {
        CmdError::new(WRONGTYPE_ERR)
    }
}

impl From<CmdError> for Reply {
    fn from(e: CmdError) -> Reply {
        Reply::Error(e.0)
    }
}

pub const SYNTAX_ERR: &str = "ERR syntax error";
pub const NOT_INT_ERR: &str = "ERR value is not an integer or out of range";
pub const NOT_FLOAT_ERR: &str = "ERR value is not a valid float";

/// The most elements a reply built from a client's count may hold (SRANDMEMBER, ZRANDMEMBER
/// and HRANDFIELD with a negative count repeat members, so the count alone sets the size).
/// Replies are built whole before they are sent: past this, one request could take all of
/// the server's memory, so it is refused instead.
pub const MAX_COUNTED_REPLY: u64 = 1 << 24;

/// `n` as a reply length, or an error when it is past [`MAX_COUNTED_REPLY`].
pub fn bounded_reply_len(n: u64) -> Result<usize, CmdError> {
    if n > MAX_COUNTED_REPLY {
        return Err(CmdError::new(format!(
            "ERR count is too large: a reply holds at most {MAX_COUNTED_REPLY} elements"
        )));
    }
    Ok(n as usize)
}
pub const WRONGTYPE_ERR: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
pub const NO_SUCH_KEY_ERR: &str = "ERR no such key";
pub const DB_RANGE_ERR: &str = "ERR DB index is out of range";
pub const NOREPLICAS_ERR: &str = "NOREPLICAS Not enough good replicas to write.";

/// Read access to a request's arguments, whether framed off the socket or built in memory.
pub trait ArgList {
    fn argc(&self) -> usize;
    fn arg(&self, i: usize) -> &[u8];
}

impl ArgList for Request {
    fn argc(&self) -> usize {
        self.len()
    }
    fn arg(&self, i: usize) -> &[u8] {
        Request::arg(self, i)
    }
}

impl ArgList for [Bytes] {
    fn argc(&self) -> usize {
        self.len()
    }
    fn arg(&self, i: usize) -> &[u8] {
        &self[i]
    }
}

/// The argument cursor (mini-redis's `Parse`): argument 0 is the command name (and argument 1
/// the subcommand for containers); the cursor starts after them.
pub struct Args {
    req: Request,
    pos: usize,
}

impl Args {
    pub fn new(req: Request, skip: usize) -> Self {
        Args { req, pos: skip }
    }

    /// The whole request, command name included.
    pub fn request(&self) -> &Request {
        &self.req
    }

    /// Number of words in the request, command name included.
    pub fn argc(&self) -> usize {
        self.req.len()
    }

    pub fn remaining(&self) -> usize {
        self.req.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub fn peek(&self) -> Option<&[u8]> {
        (self.pos < self.req.len()).then(|| self.req.arg(self.pos))
    }

    /// The next argument; a missing one is a syntax error (arity was checked before).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Bytes, CmdError> {
        if self.pos >= self.req.len() {
            return Err(CmdError::syntax());
        }
        self.pos += 1;
        Ok(self.req.bytes(self.pos - 1))
    }

    /// The next argument as a borrowed slice (no handle is taken).
    pub fn next_slice(&mut self) -> Result<&[u8], CmdError> {
        if self.pos >= self.req.len() {
            return Err(CmdError::syntax());
        }
        self.pos += 1;
        Ok(self.req.arg(self.pos - 1))
    }

    /// The next argument as bytes to store: a small one is copied into its own allocation (so it
    /// neither pins the read buffer nor touches its reference count), a large one shared.
    pub fn next_owned(&mut self) -> Result<Bytes, CmdError> {
        let small = self.peek().map(|a| a.len() < OWN_COPY_LIMIT);
        match small {
            Some(true) => Ok(Bytes::copy_from_slice(self.next_slice()?)),
            _ => self.next(),
        }
    }

    pub fn next_i64(&mut self) -> Result<i64, CmdError> {
        crate::util::parse_i64(self.next_slice()?).ok_or_else(CmdError::not_int)
    }

    pub fn next_f64(&mut self) -> Result<f64, CmdError> {
        crate::util::parse_f64(self.next_slice()?).ok_or_else(|| CmdError::new(NOT_FLOAT_ERR))
    }

    /// The next argument uppercased, for keyword matching.
    pub fn next_upper(&mut self) -> Result<String, CmdError> {
        Ok(String::from_utf8_lossy(self.next_slice()?).to_ascii_uppercase())
    }

    /// Consumes the next argument if it equals `kw` (case-insensitively).
    pub fn eat(&mut self, kw: &str) -> bool {
        if self
            .peek()
            .is_some_and(|a| a.eq_ignore_ascii_case(kw.as_bytes()))
        {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Everything not yet consumed.
    pub fn rest(&mut self) -> Vec<Bytes> {
        let v = (self.pos..self.req.len())
            .map(|i| self.req.bytes(i))
            .collect();
        self.pos = self.req.len();
        v
    }

    /// Fails with a syntax error if arguments are left over.
    pub fn finish(&self) -> Result<(), CmdError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(CmdError::syntax())
        }
    }
}

/// What a command sees while it runs.
pub struct Ctx<'a> {
    pub server: &'a Arc<Server>,
    pub client: &'a mut Client,
    pub command: &'a Arc<Command>,
    /// Set by commands that answer later; the connection awaits it in pipeline order.
    pub deferred: Option<Deferred>,
    /// What the AOF logs for this command when it is not the command itself (SPOP logs the
    /// SREM of what it picked).
    pub propagate: Option<Vec<Vec<Bytes>>>,
    /// Set while EXEC runs the command: blocking commands do not block, commands that would
    /// answer later refuse (as in RedisAI), MODELSTORE loads in place.
    pub in_exec: bool,
    /// Whether the command changed the keyspace (it called [`Ctx::dirty`]): blocked clients
    /// are woken only by real changes.
    pub wrote: std::cell::Cell<bool>,
    /// A blocked command: the slow log records it when its wait ends (as Redis logs a blocked
    /// command on unblocking), not when it starts waiting.
    pub logs_when_done: bool,
    now: u64,
}

impl<'a> Ctx<'a> {
    pub fn new(server: &'a Arc<Server>, client: &'a mut Client, command: &'a Arc<Command>) -> Self {
        let now = client.clock.now_ms;
        Self::at(server, client, command, now)
    }

    /// A context whose clock reads `now`: AOF replay runs a command at its original time.
    pub fn at(
        server: &'a Arc<Server>,
        client: &'a mut Client,
        command: &'a Arc<Command>,
        now: u64,
    ) -> Self {
        Ctx {
            server,
            client,
            command,
            deferred: None,
            propagate: None,
            in_exec: false,
            wrote: Default::default(),
            logs_when_done: false,
            now,
        }
    }

    /// The client's selected database.
    pub fn db(&self) -> &'a Db {
        self.server.store.db(self.client.db)
    }

    /// The time this command runs at, in Unix ms: one clock reading per command, as Redis does.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Records `n` writes for persistence triggers.
    pub fn dirty(&self, n: u64) {
        if n > 0 {
            self.wrote.set(true);
        }
        self.server.store.add_dirty(n);
    }

    /// Announces a keyspace event on `key` of the client's database (see [`crate::notify`]).
    #[inline]
    pub fn notify(&self, class: u32, event: &str, key: &[u8]) {
        if crate::notify::wanted(class) {
            crate::notify::notify(self.server, class, event, key, self.client.db);
        }
    }

    /// Answers later with the future's reply.
    pub fn defer(&mut self, fut: impl Future<Output = Reply> + Send + 'static) -> CmdResult {
        self.deferred = Some(Box::pin(fut));
        Ok(Reply::Null)
    }

    /// Reads a string key: `Ok(None)` when missing, WRONGTYPE for other types.
    pub fn get_string(&self, key: &[u8]) -> Result<Option<Bytes>, CmdError> {
        let shard = self.db().read(key);
        let r = match shard.get(key, self.now) {
            None => {
                if shard.holds_expired(key, self.now) {
                    drop(shard);
                    self.db().reclaim(key, self.now);
                }
                Ok(None)
            }
            Some(e) => {
                e.touch(self.now);
                match &e.value {
                    // Copying a small value is cheaper than sharing its reference count with
                    // every other core reading the same key.
                    Value::Str(b) if b.len() <= 1024 => Ok(Some(Bytes::copy_from_slice(b))),
                    Value::Str(b) => Ok(Some(b.clone())),
                    _ => Err(CmdError::wrong_type()),
                }
            }
        };
        self.server.store.hit(matches!(r, Ok(Some(_))));
        r
    }
}

/// A value type commands reach by key: where it sits in a [`Value`] and what an empty one is.
pub trait Kind: Sized {
    fn of(v: &Value) -> Option<&Self>;
    fn of_mut(v: &mut Value) -> Option<&mut Self>;
    fn empty() -> Value;
    fn is_empty(&self) -> bool;
}

macro_rules! kind {
    ($t:ty, $variant:ident) => {
        impl Kind for $t {
            fn of(v: &Value) -> Option<&Self> {
                match v {
                    Value::$variant(x) => Some(x),
                    _ => None,
                }
            }
            fn of_mut(v: &mut Value) -> Option<&mut Self> {
                match v {
                    Value::$variant(x) => Some(x),
                    _ => None,
                }
            }
            fn empty() -> Value {
                Value::$variant(Box::default())
            }
            fn is_empty(&self) -> bool {
                self.is_empty()
            }
        }
    };
}

kind!(crate::store::HashValue, Hash);
kind!(lists::ListValue, List);
kind!(sets::SetValue, Set);
kind!(crate::store::zset::ZSet, ZSet);
kind!(crate::store::stream::Stream, Stream);

/// The value of kind `T` at `key`: `Ok(None)` when missing, WRONGTYPE for another kind.
pub fn typed<'s, T: Kind>(
    shard: &'s Shard,
    key: &[u8],
    now: u64,
) -> Result<Option<&'s T>, CmdError> {
    match shard.get(key, now) {
        None => Ok(None),
        Some(e) => T::of(&e.value).map(Some).ok_or_else(CmdError::wrong_type),
    }
}

/// The value of kind `T` at `key` for update, created empty when missing if `create` is set.
pub fn typed_mut<'s, T: Kind>(
    shard: &'s mut Shard,
    key: &Bytes,
    now: u64,
    create: bool,
) -> Result<Option<&'s mut T>, CmdError> {
    typed::<T>(shard, key, now)?;
    if create && shard.get(key, now).is_none() {
        shard.insert(own(key.clone()), crate::store::Entry::new(T::empty()), now);
    }
    Ok(shard
        .get_mut(key, now)
        .and_then(|e| T::of_mut(&mut e.value)))
}

/// Removes `key` if its aggregate became empty (Redis never keeps empty aggregates), with
/// Redis's "del" event after the command's own.
pub fn drop_if_empty<T: Kind>(shard: &mut Shard, key: &[u8], now: u64) {
    if shard
        .get(key, now)
        .and_then(|e| T::of(&e.value))
        .is_some_and(|v| v.is_empty())
    {
        shard.remove(key, now);
        crate::notify::emit(crate::notify::GENERIC, "del", key, shard.db_index());
    }
}

/// Reads the string value of `key` in a locked shard, WRONGTYPE for other types.
pub fn string_in<'s>(
    shard: &'s Shard,
    key: &[u8],
    now: u64,
) -> Result<Option<&'s Bytes>, CmdError> {
    match shard.get(key, now) {
        None => Ok(None),
        Some(e) => match &e.value {
            Value::Str(b) => Ok(Some(b)),
            _ => Err(CmdError::wrong_type()),
        },
    }
}

/// The arity check of commands whose table arity is -1 so that RedisAI's own checks can run
/// first (AI.* commands): Redis's text, with the lower-case name Redis 7 prints.
pub fn check_arity(args: &Args, ok: impl std::ops::RangeBounds<usize>) -> Result<(), CmdError> {
    if ok.contains(&args.argc()) {
        return Ok(());
    }
    let name = String::from_utf8_lossy(args.request().arg(0)).to_ascii_lowercase();
    Err(CmdError::new(format!(
        "ERR wrong number of arguments for '{name}' command"
    )))
}

/// Values smaller than this are copied out of the read buffer they arrived in.
const OWN_COPY_LIMIT: usize = 16 * 1024;

/// Gives a value read off the socket its own allocation before it is stored, so a small value
/// does not pin the whole read buffer it arrived in. Large values already own their buffer.
pub fn own(b: Bytes) -> Bytes {
    if b.len() < OWN_COPY_LIMIT {
        Bytes::copy_from_slice(&b)
    } else {
        b
    }
}
