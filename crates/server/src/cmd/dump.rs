//! DUMP and RESTORE in Redis 7.0's serialization (RDB version 10 payloads with their CRC64),
//! so values move between Redis and Locus; tensors travel as RedisAI's own values and the
//! other AI types as Locus's (see `persist::migrate`).

use super::{own, Args, CmdError, CmdResult, Ctx};
use crate::persist::migrate::{self, Restored};
use crate::server::reply::Reply;
use crate::server::Server;
use crate::store::{Entry, Value};
use bytes::Bytes;
use std::sync::Arc;

const BUSYKEY: &str = "BUSYKEY Target key name already exists.";

pub fn dump(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let now = ctx.now();
    let shard = ctx.db().read(&key);
    Ok(match shard.get(&key, now) {
        Some(e) => Reply::Bulk(Bytes::from(migrate::dump(&key, e))),
        None => Reply::Null,
    })
}

/// RESTORE's options.
struct Options {
    replace: bool,
    absttl: bool,
    idle: Option<u64>,
    freq: Option<u8>,
}

/// Parses the options after the payload, in Redis's order of checks (IDLETIME and FREQ
/// exclude each other).
fn options(args: &mut Args) -> Result<Options, CmdError> {
    let mut o = Options {
        replace: false,
        absttl: false,
        idle: None,
        freq: None,
    };
    while !args.is_empty() {
        let more = args.remaining() > 1;
        match args.next_upper()?.as_str() {
            "REPLACE" => o.replace = true,
            "ABSTTL" => o.absttl = true,
            "IDLETIME" if more && o.freq.is_none() => {
                let v = crate::util::parse_i64(args.next_slice()?).ok_or_else(CmdError::not_int)?;
                if v < 0 {
                    return Err(CmdError::new("ERR Invalid IDLETIME value, must be >= 0"));
                }
                o.idle = Some(v as u64);
            }
            "FREQ" if more && o.idle.is_none() => {
                let v = crate::util::parse_i64(args.next_slice()?).ok_or_else(CmdError::not_int)?;
                if !(0..=255).contains(&v) {
                    return Err(CmdError::new(
                        "ERR Invalid FREQ value, must be >= 0 and <= 255",
                    ));
                }
                o.freq = Some(v as u8);
            }
            _ => return Err(CmdError::syntax()),
        }
    }
    Ok(o)
}

/// RESTORE key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds] [FREQ frequency]
pub fn restore(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let key = args.next()?;
    let ttl_arg = args.next()?;
    let payload = args.next()?;
    let o = options(args)?;
    let now = ctx.now();
    if !o.replace && ctx.db().read(&key).get(&key, now).is_some() {
        return Err(CmdError::new(BUSYKEY));
    }
    let ttl = crate::util::parse_i64(&ttl_arg).ok_or_else(CmdError::not_int)?;
    if ttl < 0 {
        return Err(CmdError::new("ERR Invalid TTL value, must be >= 0"));
    }
    let expire_at = match (ttl, o.absttl) {
        (0, _) => 0,
        (t, true) => t as u64,
        (t, false) => now.saturating_add(t as u64),
    };
    // Logged with an absolute expiry, as Redis propagates it, so a replay restores the same
    // instant.
    let mut logged = vec![
        Bytes::from_static(b"RESTORE"),
        key.clone(),
        Bytes::from(expire_at.to_string()),
        payload.clone(),
    ];
    if expire_at != 0 {
        logged.push(Bytes::from_static(b"ABSTTL"));
    }
    if o.replace {
        logged.push(Bytes::from_static(b"REPLACE"));
    }
    match migrate::restore(&payload).map_err(CmdError)? {
        Restored::Value(value) => {
            let reply = install(ctx.server, ctx.client.db, &key, value, expire_at, &o, now)?;
            ctx.propagate = Some(vec![logged]);
            ctx.dirty(1);
            Ok(reply)
        }
        Restored::Model(loaded) => {
            let server = ctx.server.clone();
            if ctx.in_exec {
                let value = load_model(&server, loaded).map_err(CmdError)?;
                let reply = install(&server, ctx.client.db, &key, value, expire_at, &o, now)?;
                ctx.propagate = Some(vec![logged]);
                ctx.dirty(1);
                return Ok(reply);
            }
            let db = ctx.client.db;
            ctx.propagate = Some(vec![]);
            ctx.defer(async move {
                // Loading a graph takes a while: never on an I/O thread.
                let loading = server.clone();
                let value = tokio::task::spawn_blocking(move || load_model(&loading, loaded))
                    .await
                    .unwrap_or_else(|e| Err(format!("ERR model loading failed: {e}")));
                let value = match value {
                    Ok(v) => v,
                    Err(e) => return Reply::Error(e),
                };
                let mut txn = server.aof.begin();
                let now = crate::util::now_ms();
                match install(&server, db, &key, value, expire_at, &o, now) {
                    Ok(reply) => {
                        if let Some(txn) = txn.as_mut() {
                            txn.record(db, now, [logged.iter()]);
                        }
                        server.store.add_dirty(1);
                        reply
                    }
                    Err(e) => Reply::Error(e.0),
                }
            })
        }
    }
}

/// A model value from its loaded record, the engine parsing its graph.
fn load_model(server: &Arc<Server>, loaded: crate::persist::Loaded) -> Result<Value, String> {
    match crate::persist::materialize(&server.store, &server.engine, loaded)? {
        Some((_, _, entry)) => Ok(entry.value),
        None => Err("ERR Bad data format".into()),
    }
}

/// Stores the restored value (BUSYKEY checked again: a model's load let other commands run).
fn install(
    server: &Server,
    db: usize,
    key: &Bytes,
    value: Value,
    expire_at: u64,
    o: &Options,
    now: u64,
) -> Result<Reply, CmdError> {
    let mut shard = server.store.db(db).write(key);
    if shard.get(key, now).is_some() {
        if !o.replace {
            return Err(CmdError::new(BUSYKEY));
        }
        shard.remove(key, now);
    }
    // A TTL already in the past deletes the key (done above when REPLACE found one).
    if expire_at != 0 && expire_at <= now {
        return Ok(Reply::OK);
    }
    let entry = Entry::with_expiry(value, expire_at);
    entry.set_lru_or_lfu(o.freq, o.idle);
    shard.insert(own(key.clone()), entry, now);
    drop(shard);
    crate::notify::notify(server, crate::notify::GENERIC, "restore", key, db);
    Ok(Reply::OK)
}

/// MIGRATE host port key|"" destination-db timeout [COPY] [REPLACE] [AUTH password]
/// [AUTH2 username password] [KEYS key …]: moves keys to another Redis (or Locus) with DUMP
/// payloads and RESTORE, as Redis does: the server is held for the transfer (the isolation
/// gate, on a blocking thread, so the event loops stay free), `timeout` milliseconds bound
/// each step, and the keys the target accepted are deleted here unless COPY.
pub fn migrate(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let host = args.next()?;
    let port = args.next()?;
    let key = args.next()?;
    let db_arg = args.next()?;
    let timeout_arg = args.next()?;
    let (mut copy, mut replace) = (false, false);
    let mut auth: Option<(Option<Bytes>, Bytes)> = None;
    let mut keys = vec![key.clone()];
    while !args.is_empty() {
        let opt = args.next_upper()?;
        match opt.as_str() {
            "COPY" => copy = true,
            "REPLACE" => replace = true,
            "AUTH" if !args.is_empty() => auth = Some((None, args.next()?)),
            "AUTH2" if args.remaining() >= 2 => {
                let user = args.next()?;
                auth = Some((Some(user), args.next()?));
            }
            "KEYS" => {
                if !key.is_empty() {
                    return Err(CmdError::new("ERR When using MIGRATE KEYS option, the key argument must be set to the empty string"));
                }
                keys = args.rest();
            }
            _ => return Err(CmdError::syntax()),
        }
    }
    let timeout = crate::util::parse_i64(&timeout_arg).ok_or_else(CmdError::not_int)?;
    let dbid = crate::util::parse_i64(&db_arg).ok_or_else(CmdError::not_int)?;
    let timeout =
        std::time::Duration::from_millis(if timeout <= 0 { 1000 } else { timeout as u64 });
    let now = ctx.now();
    let present: Vec<Bytes> = keys
        .into_iter()
        .filter(|k| ctx.db().read(k).contains(k, now))
        .collect();
    if present.is_empty() {
        return Ok(Reply::Status("NOKEY"));
    }
    let server = ctx.server.clone();
    let db = ctx.client.db;
    let target = format!(
        "{}:{}",
        String::from_utf8_lossy(&host),
        String::from_utf8_lossy(&port)
    );
    let job = Transfer {
        target,
        timeout,
        auth,
        dbid,
        keys: present,
        copy,
        replace,
    };
    ctx.defer(async move {
        tokio::task::spawn_blocking(move || {
            let _gate = server.gate.exclusive();
            job.run(&server, db)
        })
        .await
        .unwrap_or_else(|e| Reply::err(format!("ERR MIGRATE failed: {e}")))
    })
}

/// One MIGRATE's work, done while the server is held.
struct Transfer {
    target: String,
    timeout: std::time::Duration,
    auth: Option<(Option<Bytes>, Bytes)>,
    dbid: i64,
    keys: Vec<Bytes>,
    copy: bool,
    replace: bool,
}

impl Transfer {
    fn run(self, server: &Arc<Server>, db: usize) -> Reply {
        use std::io::{BufRead, Write};
        let now = crate::util::now_ms();
        // Payloads first: a key that expired since the command was read is left out.
        let mut sent = Vec::new();
        let mut out = Vec::new();
        if let Some((user, pass)) = &self.auth {
            let mut cmd = vec![Bytes::from_static(b"AUTH")];
            cmd.extend(user.iter().cloned());
            cmd.push(pass.clone());
            write_command(&mut out, &cmd);
        }
        write_command(
            &mut out,
            &[
                Bytes::from_static(b"SELECT"),
                Bytes::from(self.dbid.to_string()),
            ],
        );
        for key in &self.keys {
            let shard = server.store.db(db).read(key);
            let Some(e) = shard.get(key, now) else {
                continue;
            };
            let ttl = if e.expire_at == 0 {
                0
            } else {
                e.expire_at.saturating_sub(now).max(1)
            };
            let mut cmd = vec![
                Bytes::from_static(b"RESTORE"),
                key.clone(),
                Bytes::from(ttl.to_string()),
                Bytes::from(migrate::dump(key, e)),
            ];
            if self.replace {
                cmd.push(Bytes::from_static(b"REPLACE"));
            }
            write_command(&mut out, &cmd);
            sent.push(key.clone());
        }
        let connect = || -> std::io::Result<std::net::TcpStream> {
            use std::net::ToSocketAddrs;
            let addr = self
                .target
                .to_socket_addrs()?
                .next()
                .ok_or_else(|| std::io::Error::other("no address"))?;
            let s = std::net::TcpStream::connect_timeout(&addr, self.timeout)?;
            s.set_read_timeout(Some(self.timeout))?;
            s.set_write_timeout(Some(self.timeout))?;
            Ok(s)
        };
        let mut stream = match connect() {
            Ok(s) => s,
            // Redis connects without waiting and learns of a refusal when it writes.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                return Reply::err("IOERR error or timeout writing to target instance")
            }
            Err(_) => return Reply::err("IOERR error or timeout connecting to the client"),
        };
        if stream.write_all(&out).is_err() {
            return Reply::err("IOERR error or timeout writing to target instance");
        }
        let Ok(reader) = stream.try_clone() else {
            return Reply::err("IOERR error or timeout reading to target instance");
        };
        let mut reader = std::io::BufReader::new(reader);
        let mut line = String::new();
        let mut read_line = |line: &mut String| -> bool {
            line.clear();
            matches!(reader.read_line(line), Ok(n) if n > 0)
        };
        // AUTH's and SELECT's replies, then one per RESTORE; the first error is reported.
        let mut error: Option<String> = None;
        for _ in 0..(self.auth.is_some() as usize + 1) {
            if !read_line(&mut line) {
                return Reply::err("IOERR error or timeout reading to target instance");
            }
            if let Some(e) = line.strip_prefix('-') {
                error.get_or_insert_with(|| e.trim_end().to_string());
            }
        }
        let mut moved = Vec::new();
        for key in &sent {
            if !read_line(&mut line) {
                let lost = Reply::err("IOERR error or timeout reading to target instance");
                return self.finish(server, db, now, moved, Some(lost));
            }
            match line.strip_prefix('-') {
                Some(e) => {
                    error.get_or_insert_with(|| e.trim_end().to_string());
                }
                None if error.is_none() => moved.push(key.clone()),
                None => {}
            }
        }
        let reply =
            error.map(|e| Reply::err(format!("ERR Target instance replied with error: {e}")));
        self.finish(server, db, now, moved, reply)
    }

    /// Deletes what the target accepted (unless COPY), logs the deletions, and answers.
    fn finish(
        &self,
        server: &Arc<Server>,
        db: usize,
        now: u64,
        moved: Vec<Bytes>,
        reply: Option<Reply>,
    ) -> Reply {
        if !self.copy && !moved.is_empty() {
            let mut deleted = Vec::new();
            for key in moved {
                if server.store.db(db).write(&key).remove(&key, now).is_some() {
                    crate::notify::notify(server, crate::notify::GENERIC, "del", &key, db);
                    deleted.push(key);
                }
            }
            if !deleted.is_empty() {
                server.store.add_dirty(deleted.len() as u64);
                if let Some(mut t) = server.aof.begin() {
                    let mut del = vec![Bytes::from_static(b"DEL")];
                    del.extend(deleted);
                    t.record(db, now, [del.iter()]);
                }
            }
        }
        reply.unwrap_or(Reply::OK)
    }
}

/// Appends one command in RESP.
fn write_command(out: &mut Vec<u8>, args: &[Bytes]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}
