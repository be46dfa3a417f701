//! The model lifecycle beyond RedisAI: AI.MODELVERSIONS (a key's versions), AI.MODELPROMOTE and
//! AI.MODELROLLBACK (which version serves), AI.MODELLIST (the catalog). Stores and deletes of
//! versions are in `models.rs`; every management action is audited (see `crate::audit`).

use super::models::{get_versions, parse_version};
use super::{Args, CmdError, CmdResult, Ctx};
use crate::audit::{Action, Actor};
use crate::engine::model::Model;
use crate::engine::versions::VersionedModel;
use crate::server::reply::Reply;
use crate::server::Server;
use crate::store::glob::GlobPattern;
use crate::store::{Entry, Value, SHARDS};
use bytes::Bytes;
use std::sync::Arc;

/// META's pairs: a map under RESP3 (the lifecycle commands are Locus's own, so they answer as
/// Redis's own commands do; MODELGET keeps RedisAI's flat shape).
fn meta_map(meta: &[(Bytes, Bytes)]) -> Reply {
    Reply::Map(
        meta.iter()
            .map(|(f, v)| (Reply::Bulk(f.clone()), Reply::Bulk(v.clone())))
            .collect(),
    )
}

/// `AI.MODELVERSIONS key`: every version, oldest first, with where it stands and its record.
pub fn modelversions(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    super::check_arity(args, 2..=2)?;
    let key = args.next()?;
    let versions = get_versions(ctx, &key)?;
    let s = Reply::bulk_str;
    let out = versions
        .versions()
        .iter()
        .map(|v| {
            let i = &v.info;
            Reply::Map(vec![
                (s("version"), Reply::Int(v.number as i64)),
                (s("status"), s(versions.status(v).name())),
                (s("created"), Reply::Int(i.created_ms as i64)),
                (s("created_by"), s(&i.created_by)),
                (s("client_name"), s(&i.client_name)),
                (s("sha256"), s(&i.sha256)),
                (s("size"), Reply::Int(v.model.blob.len() as i64)),
                (s("tag"), Reply::Bulk(v.model.spec.tag.clone())),
                (s("loaded"), Reply::Int(v.model.is_loaded() as i64)),
                (s("meta"), meta_map(&i.meta)),
            ])
        })
        .collect();
    Ok(Reply::Array(out))
}

/// Which way a flip goes.
#[derive(Clone, Copy)]
enum Flip {
    Promote(u64),
    Rollback,
}

impl Flip {
    fn command(self) -> &'static str {
        match self {
            Flip::Promote(_) => "AI.MODELPROMOTE",
            Flip::Rollback => "AI.MODELROLLBACK",
        }
    }

    /// The version the flip would make live in `versions`.
    fn target(self, versions: &VersionedModel) -> Result<u64, String> {
        match self {
            Flip::Promote(n) => versions
                .get(n)
                .map(|v| v.number)
                .ok_or_else(|| format!("ERR model has no version {n}")),
            Flip::Rollback => versions
                .history()
                .iter()
                .rev()
                .find(|&&n| Some(n) != versions.live_number())
                .copied()
                .ok_or_else(|| "ERR no earlier live version to roll back to".to_string()),
        }
    }

    fn apply(self, versions: &mut VersionedModel) -> Result<u64, String> {
        match self {
            Flip::Promote(n) => versions.promote(n).map(|_| n),
            Flip::Rollback => versions.rollback(),
        }
    }
}

/// Flips the key's live version in one step under its lock, on the state current at that
/// moment. Returns the version made live and its digest.
fn flip_now(
    server: &Server,
    db: usize,
    key: &[u8],
    now: u64,
    flip: Flip,
) -> Result<(u64, String), String> {
    let mut shard = server.store.db(db).write(key);
    let Some(entry) = shard.get_mut(key, now) else {
        return Err(super::models::ERR_MODEL_EMPTY.into());
    };
    let Value::Model(current) = &entry.value else {
        return Err(crate::cmd::WRONGTYPE_ERR.into());
    };
    let mut next = (**current).clone();
    let number = flip.apply(&mut next)?;
    let sha256 = next
        .get(number)
        .map(|v| v.info.sha256.clone())
        .unwrap_or_default();
    entry.value = Value::Model(Arc::new(next));
    server.store.add_dirty(1);
    Ok((number, sha256))
}

/// Runs a flip and its audit; returns the reply and what to log.
fn flip_and_audit(
    server: &Server,
    db: usize,
    key: &Bytes,
    now: u64,
    flip: Flip,
    actor: &Actor,
    argv: Vec<Bytes>,
) -> (Result<(), String>, Vec<Vec<Bytes>>) {
    match flip_now(server, db, key, now, flip) {
        Ok((number, sha256)) => {
            let action = Action {
                command: flip.command(),
                key,
                version: Some(number),
                sha256: &sha256,
                outcome: "ok",
                detail: "",
            };
            let mut log = vec![argv];
            log.extend(crate::audit::append(server, db, now, actor, &action));
            (Ok(()), log)
        }
        Err(e) => {
            let version = match flip {
                Flip::Promote(n) => Some(n),
                Flip::Rollback => None,
            };
            let log = crate::audit::append(
                server,
                db,
                now,
                actor,
                &Action::refused(flip.command(), key, version, &e),
            );
            (Err(e), log.into_iter().collect())
        }
    }
}

/// A promotion the server makes by itself (a router's ramp reached 100%): the flip, its
/// audit entry, and what to log.
pub fn promote_by_server(
    server: &Server,
    db: usize,
    key: &Bytes,
    n: u64,
) -> (Result<(), String>, Vec<Vec<Bytes>>) {
    let argv = vec![
        Bytes::from_static(b"AI.MODELPROMOTE"),
        key.clone(),
        Bytes::from_static(b"VERSION"),
        Bytes::from(n.to_string()),
    ];
    let now = crate::util::now_ms();
    flip_and_audit(
        server,
        db,
        key,
        now,
        Flip::Promote(n),
        &Actor::server(),
        argv,
    )
}

/// Promote and rollback: the version about to serve gets its session built first (off the I/O
/// threads), so the flip itself is a pointer swap and the first run after it is not slowed.
fn flip_command(ctx: &mut Ctx, args: &mut Args, key: Bytes, flip: Flip) -> CmdResult {
    let versions = get_versions(ctx, &key)?;
    let (server, db, now) = (ctx.server.clone(), ctx.client.db, ctx.now());
    let actor = Actor::of(ctx.client);
    let argv = args.request().to_vec();
    let target: Option<Arc<Model>> = flip
        .target(&versions)
        .ok()
        .and_then(|n| versions.get(n))
        .map(|v| Arc::clone(&v.model));
    match target {
        Some(model) if !model.is_loaded() && !ctx.in_exec => ctx.defer(async move {
            let warmed = tokio::task::spawn_blocking(move || model.warm())
                .await
                .unwrap_or_else(|e| Err(format!("ERR model loading failed: {e}")));
            let mut txn = server.aof.begin();
            let now = crate::util::now_ms();
            let (result, log) = match warmed {
                Ok(()) => flip_and_audit(&server, db, &key, now, flip, &actor, argv),
                Err(e) => {
                    let log = crate::audit::append(
                        &server,
                        db,
                        now,
                        &actor,
                        &Action::refused(flip.command(), &key, None, &e),
                    );
                    (Err(e), log.into_iter().collect())
                }
            };
            if let (Some(txn), false) = (txn.as_mut(), log.is_empty()) {
                txn.record(db, now, log.iter().map(|c| c.iter()));
            }
            match result {
                Ok(()) => Reply::OK,
                Err(e) => Reply::Error(e),
            }
        }),
        target => {
            if let Some(model) = target {
                // Inside EXEC nothing may wait: the session is built in place.
                model.warm().map_err(CmdError)?;
            }
            let (result, log) = flip_and_audit(&server, db, &key, now, flip, &actor, argv);
            ctx.propagate = (!log.is_empty()).then_some(log);
            ctx.wrote.set(true);
            result.map(|_| Reply::OK).map_err(CmdError)
        }
    }
}

/// `AI.MODELPROMOTE key VERSION n`: makes version n live.
pub fn modelpromote(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    super::check_arity(args, 4..=4)?;
    let key = args.next()?;
    let Some(n) = parse_version(args)? else {
        return Err(CmdError::syntax());
    };
    flip_command(ctx, args, key, Flip::Promote(n))
}

/// `AI.MODELROLLBACK key`: makes live again the version that was live before the last promote
/// or store.
pub fn modelrollback(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    super::check_arity(args, 2..=2)?;
    let key = args.next()?;
    flip_command(ctx, args, key, Flip::Rollback)
}

/// `AI.MODELLIST [MATCH pattern] [COUNT n] [WITHMETA]`: the catalog of the database's model
/// keys, in key order, each with its live version, version count, digest, device and batching.
pub fn modellist(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let (mut pattern, mut count, mut with_meta) = (None, usize::MAX, false);
    while !args.is_empty() {
        match args.next_upper()?.as_str() {
            "MATCH" => pattern = Some(GlobPattern::new(&args.next()?, false)),
            "COUNT" => {
                count = args
                    .next_i64()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| CmdError::new("ERR COUNT must be a positive integer"))?
                    as usize
            }
            "WITHMETA" => with_meta = true,
            _ => return Err(CmdError::syntax()),
        }
    }
    let now = ctx.now();
    let db = ctx.db();
    let mut models: Vec<(Bytes, Arc<VersionedModel>)> = Vec::new();
    for i in 0..SHARDS {
        let shard = db.shard(i).read();
        for (k, e) in shard.iter(now) {
            if let Entry {
                value: Value::Model(m),
                ..
            } = e
            {
                if pattern.as_ref().is_none_or(|p| p.matches(k)) {
                    models.push((k.clone(), Arc::clone(m)));
                }
            }
        }
    }
    models.sort_by(|a, b| a.0.cmp(&b.0));
    let s = Reply::bulk_str;
    let out = models
        .into_iter()
        .take(count)
        .map(|(key, m)| {
            let shown = m.live().or(m.versions().last());
            let live = m
                .live_number()
                .map_or(Reply::Null, |n| Reply::Int(n as i64));
            let mut fields = vec![(s("key"), Reply::Bulk(key)), (s("live"), live)];
            fields.push((s("versions"), Reply::Int(m.versions().len() as i64)));
            if let Some(v) = shown {
                let spec = &v.model.spec;
                fields.extend([
                    (s("sha256"), s(&v.info.sha256)),
                    (s("backend"), s(&spec.backend)),
                    (s("device"), s(&spec.device_name)),
                    (s("tag"), Reply::Bulk(spec.tag.clone())),
                    (s("batchsize"), Reply::Int(spec.batchsize as i64)),
                    (s("minbatchsize"), Reply::Int(spec.minbatchsize as i64)),
                    (
                        s("minbatchtimeout"),
                        Reply::Int(spec.minbatchtimeout as i64),
                    ),
                ]);
                if with_meta {
                    fields.push((s("meta"), meta_map(&v.info.meta)));
                }
            }
            Reply::Map(fields)
        })
        .collect();
    Ok(Reply::Array(out))
}
