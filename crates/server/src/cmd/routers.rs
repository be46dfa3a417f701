//! Routers as keys: AI.ROUTERSET, AI.ROUTERGET, AI.ROUTERINFO, AI.ROUTERWEIGHT and
//! AI.ROUTERREWARD, and the resolution of a router key into what a run request executes
//! (used by AI.MODELEXECUTE, AI.MODELRUN and the DAG's model op). The routing logic itself
//! (decisions, statistics, guards, ramps, combining outputs) is the engine's
//! (`locus_engine::router`); here are the keyspace, the AOF, the audit and the alerts.

use super::models::ERR_MODEL_EMPTY;
use super::{own, Args, CmdError, CmdResult, Ctx};
use crate::audit::{Action, Actor};
use crate::engine::model::Model;
use crate::server::reply::Reply;
use crate::server::Server;
use crate::store::{Entry, Value};
use bytes::Bytes;
use locus_engine::router::route::{EventSink, Exec, Hop, Node};
use locus_engine::router::{Decision, Event, Kind, Router, TargetRef};
use std::sync::Arc;

/// How deep routers may nest; definitions with cycles are refused, this catches the rest.
const MAX_DEPTH: usize = 16;

/// How many model runs one request may fan out to (ensembles of ensembles multiply).
const MAX_RUNS: usize = 256;

/// An alert with the same kind and subject is raised at most once in this time.
const ALERT_REPEAT_MS: u64 = 60_000;

/// When each recent cause last raised an alert.
static RECENT_ALERTS: parking_lot::Mutex<std::collections::BTreeMap<String, u64>> =
    parking_lot::Mutex::new(std::collections::BTreeMap::new());

/// Raises `queue-depth` for every run queue holding more than `alert-queue-depth` requests
/// (0: never); the server's periodic task calls it.
pub fn check_queue_depths(server: &Server) {
    let limit = server.config.get_i64("alert-queue-depth");
    if limit <= 0 {
        return;
    }
    let now = crate::util::now_ms();
    for (queue, len) in server.engine.queue_lengths() {
        if len as i64 > limit {
            let xadd = raise_alert(
                server,
                0,
                now,
                "queue-depth",
                &[
                    ("queue", queue.clone()),
                    ("detail", format!("{len} requests waiting (limit {limit})")),
                ],
            );
            if let (Some(xadd), Some(mut txn)) = (xadd, server.aof.begin()) {
                txn.record(0, now, [xadd.iter()]);
            }
        }
    }
}

/// Alerts raised since start (the metrics' `locus_alerts_total`).
pub static ALERTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The channel guard breaches and promotions are published on.
pub const ALERTS_CHANNEL: &str = "__locus__:alerts";

/// What a run request's key holds.
pub enum RunTarget {
    Model(Arc<Model>),
    Router(Arc<Router>),
}

/// The model or router at `key` (`VERSION n` only for models).
pub fn lookup(ctx: &Ctx, key: &[u8], version: Option<u64>) -> Result<RunTarget, CmdError> {
    let shard = ctx.db().read(key);
    match shard.get(key, ctx.now()) {
        None => Err(CmdError::new(ERR_MODEL_EMPTY)),
        Some(Entry {
            value: Value::Model(m),
            ..
        }) => m
            .resolve(version)
            .map(|v| RunTarget::Model(Arc::clone(&v.model)))
            .map_err(CmdError),
        Some(Entry {
            value: Value::Router(r),
            ..
        }) => {
            if version.is_some() {
                return Err(CmdError::new(
                    "ERR VERSION applies to model keys: name versions inside the router",
                ));
            }
            Ok(RunTarget::Router(Arc::clone(r)))
        }
        Some(_) => Err(CmdError::wrong_type()),
    }
}

fn target_name(t: &TargetRef) -> String {
    String::from_utf8_lossy(&t.name()).into_owned()
}

/// What a router's target names, looked up without deciding anything.
fn lookup_target(ctx: &Ctx, t: &TargetRef) -> Result<RunTarget, String> {
    let shard = ctx.db().read(&t.key);
    match shard.get(&t.key, ctx.now()) {
        None => Err(format!(
            "ERR router target '{}' does not exist",
            target_name(t)
        )),
        Some(Entry {
            value: Value::Model(m),
            ..
        }) => m
            .resolve(t.version)
            .map(|v| RunTarget::Model(Arc::clone(&v.model)))
            .map_err(|e| match t.version {
                Some(n) => format!(
                    "ERR router target '{}': model has no version {n}",
                    target_name(t)
                ),
                None => format!("ERR router target '{}': {}", target_name(t), &e[4..]),
            }),
        Some(Entry {
            value: Value::Router(r),
            ..
        }) if t.version.is_none() => Ok(RunTarget::Router(Arc::clone(r))),
        Some(_) => Err(format!(
            "ERR router target '{}' is not a model or a router",
            target_name(t)
        )),
    }
}

/// The model whose signature (inputs, outputs) a request through this target is checked
/// against: the first model reached through each router's first target that resolves. A
/// target that does not resolve counts as a failed request of that target.
pub fn signature(ctx: &Ctx, target: &RunTarget) -> Result<Arc<Model>, CmdError> {
    let mut router = match target {
        RunTarget::Model(m) => return Ok(Arc::clone(m)),
        RunTarget::Router(r) => Arc::clone(r),
    };
    for _ in 0..MAX_DEPTH {
        let mut first_error = None;
        let mut next = None;
        for (i, t) in router.def.targets.iter().enumerate() {
            match lookup_target(ctx, t) {
                Ok(found) => {
                    next = Some(found);
                    break;
                }
                Err(e) => {
                    let sink = events(ctx);
                    for ev in router.record(i, 0, false) {
                        sink.router_event(&t.key, &router, ev);
                    }
                    first_error.get_or_insert(e);
                }
            }
        }
        match next {
            Some(RunTarget::Model(m)) => return Ok(m),
            Some(RunTarget::Router(r)) => router = r,
            None => return Err(CmdError(first_error.unwrap_or_default())),
        }
    }
    Err(CmdError::new("ERR routers nest too deeply"))
}

/// Takes the router's decision for one request and resolves the targets it needs.
/// `sticky` is the first input's name; `outputs` the keys the request writes (a BANDIT
/// remembers which target wrote them, for AI.ROUTERREWARD).
pub fn resolve(
    ctx: &Ctx,
    key: &Bytes,
    router: &Arc<Router>,
    sticky: &[u8],
    outputs: &[Bytes],
    sink: &Arc<dyn EventSink>,
) -> Result<Node, CmdError> {
    let req = Request {
        ctx,
        sticky,
        outputs,
        sink,
        runs: std::cell::Cell::new(0),
    };
    resolve_at(&req, key, router, 0).map_err(CmdError)
}

/// What every level of a resolution shares.
struct Request<'a, 'b> {
    ctx: &'a Ctx<'b>,
    sticky: &'a [u8],
    outputs: &'a [Bytes],
    sink: &'a Arc<dyn EventSink>,
    /// Model runs resolved so far.
    runs: std::cell::Cell<usize>,
}

fn resolve_at(
    req: &Request,
    key: &Bytes,
    router: &Arc<Router>,
    depth: usize,
) -> Result<Node, String> {
    let Request {
        ctx,
        sticky,
        outputs,
        sink,
        ..
    } = *req;
    if depth >= MAX_DEPTH {
        return Err("ERR routers nest too deeply".into());
    }
    // The caller must be allowed to read every target, checked before the router decides
    // anything, so a refused request never counts against a target.
    targets_readable(ctx, router).map_err(|e| e.0)?;
    let hop = |i: usize| Hop {
        router: Arc::clone(router),
        key: key.clone(),
        target: i,
    };
    let target = |i: usize| -> Result<Node, String> {
        let t = &router.def.targets[i];
        let node = match lookup_target(ctx, t) {
            Ok(RunTarget::Model(m)) => {
                req.runs.set(req.runs.get() + 1);
                if req.runs.get() > MAX_RUNS {
                    return Err(format!(
                        "ERR the request fans out to more than {MAX_RUNS} model runs through nested routers"
                    ));
                }
                Ok(Node::model(m))
            }
            Ok(RunTarget::Router(r)) => resolve_at(req, &t.key, &r, depth + 1),
            Err(e) => Err(e),
        };
        match node {
            Ok(mut n) => {
                n.hops.insert(0, hop(i));
                Ok(n)
            }
            Err(e) => {
                // A target that cannot run counts against it, so its guard can act.
                for ev in router.record(i, 0, false) {
                    sink.router_event(key, router, ev);
                }
                Err(e)
            }
        }
    };
    Ok(match router.decide(sticky) {
        Decision::One(i) => {
            router.remember_outputs(i, outputs);
            target(i)?
        }
        Decision::Shadow { candidate } => Node {
            exec: Exec::Shadow {
                primary: Box::new(target(0)?),
                candidate: if candidate {
                    target(1).ok().map(Box::new)
                } else {
                    None
                },
                hop: hop(1),
            },
            hops: Vec::new(),
        },
        Decision::Cascade => {
            let Kind::Cascade(rule) = router.def.kind else {
                unreachable!("a CASCADE decision comes from a CASCADE router")
            };
            Node {
                exec: Exec::Cascade {
                    rule,
                    first: Box::new(target(0)?),
                    second: Box::new(target(1)?),
                },
                hops: Vec::new(),
            }
        }
        Decision::All => {
            let Kind::Ensemble { mix } = router.def.kind else {
                unreachable!("an ALL decision comes from an ENSEMBLE router")
            };
            let members = (0..router.def.targets.len())
                .map(target)
                .collect::<Result<Vec<_>, _>>()?;
            Node {
                exec: Exec::Ensemble {
                    mix,
                    weights: router.weights(),
                    members,
                },
                hops: Vec::new(),
            }
        }
    })
}

/// Acts on router events: logs the weight changes to the AOF, audits them, appends them to the
/// alert stream and publishes them on `__locus__:alerts`; a finished ramp promotes the version.
pub struct RouterEvents {
    pub server: Arc<Server>,
    pub db: usize,
}

impl RouterEvents {
    /// Whether `key` still holds this router (it may have been replaced or renamed meanwhile:
    /// then its events change nothing that persists).
    fn current(&self, key: &[u8], router: &Arc<Router>, now: u64) -> bool {
        let shard = self.server.store.db(self.db).read(key);
        matches!(shard.get(key, now), Some(Entry { value: Value::Router(r), .. }) if Arc::ptr_eq(r, router))
    }

    fn alert(
        &self,
        now: u64,
        kind: &str,
        key: &[u8],
        target: &str,
        detail: &str,
    ) -> Option<Vec<Bytes>> {
        raise_alert(
            &self.server,
            self.db,
            now,
            kind,
            &[
                ("router", String::from_utf8_lossy(key).into_owned()),
                ("target", target.to_string()),
                ("detail", detail.to_string()),
            ],
        )
    }

    fn audit(
        &self,
        now: u64,
        command: &str,
        key: &[u8],
        version: Option<u64>,
        detail: &str,
    ) -> Option<Vec<Bytes>> {
        crate::audit::append(
            &self.server,
            self.db,
            now,
            &Actor::server(),
            &Action {
                command,
                key,
                version,
                sha256: "",
                outcome: "ok",
                detail,
            },
        )
    }
}

fn weight_cmd(key: &Bytes, target: Bytes, w: f64) -> Vec<Bytes> {
    vec![
        Bytes::from_static(b"AI.ROUTERWEIGHT"),
        key.clone(),
        target,
        Bytes::from(crate::util::format_f64_human(w)),
    ]
}

impl EventSink for RouterEvents {
    /// Handled in a task of its own: the event may come while a command holds the AOF (a
    /// DAG being parsed), and its log entries must not wait for it inside it.
    fn router_event(&self, key: &Bytes, router: &Arc<Router>, event: Event) {
        let this = RouterEvents {
            server: Arc::clone(&self.server),
            db: self.db,
        };
        let (key, router) = (key.clone(), Arc::clone(router));
        // A host with stand-in databases (no AOF of its own) handles it at once, while the
        // router is still in the call's database.
        if self.server.outbox.is_on() {
            return this.handle(&key, &router, event);
        }
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn(async move { this.handle(&key, &router, event) });
            }
            Err(_) => this.handle(&key, &router, event),
        }
    }
}

impl RouterEvents {
    fn handle(&self, key: &Bytes, router: &Arc<Router>, event: Event) {
        let now = crate::util::now_ms();
        if !self.current(key, router, now) {
            return;
        }
        let mut txn = self.server.aof.begin();
        let mut log: Vec<Vec<Bytes>> = Vec::new();
        match event {
            Event::Rollback { target, reason } => {
                let t = &router.def.targets[target];
                let name = target_name(t);
                tracing::warn!(
                    "router '{}': rolled back '{name}': {reason}",
                    String::from_utf8_lossy(key)
                );
                log.push(weight_cmd(key, t.name(), 0.0));
                let detail = format!("rollback of {name}: {reason}");
                log.extend(self.audit(now, "AI.ROUTERWEIGHT", key, t.version, &detail));
                log.extend(self.alert(now, "rollback", key, &name, &reason));
            }
            Event::RampStep { target, weights } => {
                for (t, w) in router.def.targets.iter().zip(&weights) {
                    log.push(weight_cmd(key, t.name(), *w));
                }
                let t = &router.def.targets[target];
                let detail = format!(
                    "ramp: {} now serves {}%",
                    target_name(t),
                    crate::util::format_f64_human(weights[target])
                );
                log.extend(self.audit(now, "AI.ROUTERWEIGHT", key, t.version, &detail));
            }
            Event::RampDone { target } => {
                let t = &router.def.targets[target];
                let name = target_name(t);
                let detail = match t.version {
                    Some(n) => {
                        let (result, promoted) = super::model_versions::promote_by_server(
                            &self.server,
                            self.db,
                            &t.key,
                            n,
                        );
                        log.extend(promoted);
                        match result {
                            Ok(()) => format!("{name} serves all traffic: version {n} promoted"),
                            Err(e) => format!("{name} serves all traffic; promotion failed: {e}"),
                        }
                    }
                    None => format!("{name} serves all traffic"),
                };
                log.extend(self.alert(now, "ramp-complete", key, &name, &detail));
            }
        }
        self.server.store.add_dirty(1);
        if let Some(txn) = txn.as_mut() {
            txn.record(self.db, now, log.iter().map(|c| c.iter()));
        }
    }
}

/// A sink for the server's own calls, where no router can be involved.
pub fn events(ctx: &Ctx) -> Arc<dyn EventSink> {
    Arc::new(RouterEvents {
        server: Arc::clone(ctx.server),
        db: ctx.client.db,
    })
}

/// Raises an alert: counted, published as JSON on `__locus__:alerts`, and appended to the
/// alert stream (returned: the XADD for the caller's AOF record).
pub fn raise_alert(
    server: &Server,
    db: usize,
    now: u64,
    kind: &str,
    fields: &[(&str, String)],
) -> Option<Vec<Bytes>> {
    let db = server.outbox.home(db);
    // The same alert (kind and subject) at most once a minute.
    let cause = format!(
        "{db}\0{kind}\0{}",
        fields
            .iter()
            .filter(|(k, _)| *k != "detail")
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
            .join("\0")
    );
    {
        let mut last = RECENT_ALERTS.lock();
        if last.len() > 10_000 {
            last.retain(|_, at| now.saturating_sub(*at) < ALERT_REPEAT_MS);
        }
        if last
            .get(&cause)
            .is_some_and(|at| now.saturating_sub(*at) < ALERT_REPEAT_MS)
        {
            return None;
        }
        last.insert(cause, now);
    }
    ALERTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut message = serde_json::Map::new();
    message.insert("type".into(), kind.into());
    for (k, v) in fields {
        message.insert(k.to_string(), v.clone().into());
    }
    message.insert("time".into(), now.into());
    let (channel, message) = (
        Bytes::from_static(ALERTS_CHANNEL.as_bytes()),
        Bytes::from(serde_json::Value::Object(message).to_string()),
    );
    if server.outbox.is_on() {
        server
            .outbox
            .push(crate::outbox::Forward::Publish { channel, message });
    } else {
        let (hard, soft, soft_secs) = server.config.pubsub_output_limit();
        server.pubsub.publish(
            &channel,
            &message,
            crate::server::pubsub::OutputLimit {
                hard,
                soft,
                soft_secs,
            },
        );
    }
    let stream = server.config.live.alert_stream.read().clone();
    if stream.is_empty() || server.loading.load(std::sync::atomic::Ordering::Relaxed) {
        return None;
    }
    let maxlen = server.config.get_i64("alert-maxlen").max(0) as u64;
    let mut entry = vec![
        ("time", now.to_string().into_bytes()),
        ("type", kind.as_bytes().to_vec()),
    ];
    entry.extend(fields.iter().map(|(k, v)| (*k, v.clone().into_bytes())));
    crate::audit::append_entry(server, db, now, stream, maxlen, entry)
}

/// The router at `key`: RedisAI-style empty-key error when missing, WRONGTYPE otherwise.
fn get_router(ctx: &Ctx, key: &[u8]) -> Result<Arc<Router>, CmdError> {
    let shard = ctx.db().read(key);
    match shard.get(key, ctx.now()) {
        None => Err(CmdError::new("ERR router key is empty")),
        Some(Entry {
            value: Value::Router(r),
            ..
        }) => Ok(Arc::clone(r)),
        Some(_) => Err(CmdError::wrong_type()),
    }
}

/// Refuses a router whose targets the client's ACL user may not read: a router never lets a
/// user reach a model its key patterns do not.
fn targets_readable(ctx: &Ctx, router: &Router) -> Result<(), CmdError> {
    for t in &router.def.targets {
        if !crate::acl::key_allowed(&ctx.client.perms, &t.key, false) {
            return Err(CmdError::new(format!(
                "NOPERM this user has no permissions to access the router target '{}'",
                target_name(t)
            )));
        }
    }
    Ok(())
}

/// Refuses a definition whose targets do not resolve or lead back to `key`.
fn check_targets(ctx: &Ctx, key: &[u8], router: &Router) -> Result<(), CmdError> {
    targets_readable(ctx, router)?;
    // Depth-first over router targets, looking for `key`.
    let mut stack: Vec<(Arc<Router>, Bytes, usize)> = Vec::new();
    for t in &router.def.targets {
        if t.key.as_ref() == key {
            return Err(CmdError::new(format!(
                "ERR router '{}' cannot route to itself",
                String::from_utf8_lossy(key)
            )));
        }
        match lookup_target(ctx, t).map_err(CmdError)? {
            RunTarget::Model(_) => {}
            RunTarget::Router(r) => stack.push((r, t.key.clone(), 1)),
        }
    }
    while let Some((r, via, depth)) = stack.pop() {
        if depth >= MAX_DEPTH {
            return Err(CmdError::new("ERR routers nest too deeply"));
        }
        for t in &r.def.targets {
            if t.key.as_ref() == key {
                return Err(CmdError::new(format!(
                    "ERR router '{}' would route to itself through '{}' (a cycle)",
                    String::from_utf8_lossy(key),
                    String::from_utf8_lossy(&via)
                )));
            }
            if let Ok(RunTarget::Router(inner)) = lookup_target(ctx, t) {
                stack.push((inner, t.key.clone(), depth + 1));
            }
        }
    }
    Ok(())
}

/// `AI.ROUTERSET key KIND …`: stores a router (replacing a router at the key).
pub fn routerset(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    super::check_arity(args, 3..)?;
    let key = args.next()?;
    let words = args.rest();
    let (server, db, now) = (ctx.server.clone(), ctx.client.db, ctx.now());
    let actor = Actor::of(ctx.client);
    let definition = String::from_utf8_lossy(&words.join(&b' ')).into_owned();
    let loading = server.loading.load(std::sync::atomic::Ordering::Relaxed);
    let parsed = Router::parse(&words).map_err(CmdError).and_then(|r| {
        // Replaying the log, targets may be stored later than the router: no checks then.
        if !loading {
            check_targets(ctx, &key, &r)?;
        }
        Ok(r)
    });
    let audit = |outcome: &str| {
        let action = Action {
            command: "AI.ROUTERSET",
            key: &key,
            version: None,
            sha256: "",
            outcome,
            detail: &definition,
        };
        crate::audit::append(&server, db, now, &actor, &action)
    };
    let router = match parsed {
        Ok(r) => r,
        Err(e) => {
            ctx.propagate = audit(&e.0).map(|x| vec![x]);
            return Err(e);
        }
    };
    {
        let mut shard = ctx.db().write(&key);
        match shard.get_mut(&key, now) {
            Some(e) if !matches!(e.value, Value::Router(_)) => return Err(CmdError::wrong_type()),
            // A new definition keeps the key's time to live, as a new model version does.
            Some(e) => e.value = Value::Router(Arc::new(router)),
            None => {
                shard.insert(
                    own(key.clone()),
                    Entry::new(Value::Router(Arc::new(router))),
                    now,
                );
            }
        }
    }
    ctx.dirty(1);
    let mut log = vec![args.request().to_vec()];
    log.extend(audit("ok"));
    ctx.propagate = Some(log);
    Ok(Reply::OK)
}

fn num(x: f64) -> Reply {
    Reply::Double(x)
}

/// `AI.ROUTERGET key`: the definition, with the current weights.
pub fn routerget(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    super::check_arity(args, 2..=2)?;
    let key = args.next()?;
    let r = get_router(ctx, &key)?;
    let s = Reply::bulk_str;
    let weights = r.weights();
    Ok(Reply::Map(vec![
        (s("kind"), s(r.def.kind_name())),
        (
            s("targets"),
            Reply::Array(
                r.def
                    .targets
                    .iter()
                    .map(|t| Reply::Bulk(t.name()))
                    .collect(),
            ),
        ),
        (
            s("weights"),
            Reply::Array(weights.iter().map(|w| num(*w)).collect()),
        ),
        (
            s("definition"),
            Reply::Array(r.to_words().into_iter().map(Reply::Bulk).collect()),
        ),
    ]))
}

/// `AI.ROUTERINFO key [RESETSTAT]`: per-target calls, errors, latency, share of traffic,
/// shadow agreement, bandit arms, guard state and rollbacks.
pub fn routerinfo(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    super::check_arity(args, 2..=3)?;
    let key = args.next()?;
    let r = get_router(ctx, &key)?;
    if !args.is_empty() {
        if !args.eat("RESETSTAT") {
            return Err(CmdError::syntax());
        }
        r.reset_stats();
        return Ok(Reply::OK);
    }
    Ok(info_reply(key, &r))
}

/// A router's figures (AI.ROUTERINFO, and AI.INFO of a router key).
pub fn info_reply(key: Bytes, r: &Router) -> Reply {
    let s = Reply::bulk_str;
    let (calls, errors, rollbacks) = r.totals();
    let targets = r
        .report()
        .into_iter()
        .zip(&r.def.targets)
        .map(|(t, def)| {
            let mut fields = vec![
                (s("target"), Reply::Bulk(def.name())),
                (s("weight"), num(t.weight)),
                (s("calls"), Reply::Int(t.calls as i64)),
                (s("errors"), Reply::Int(t.errors as i64)),
                (s("share"), num(t.share)),
                (s("p50_us"), Reply::Int(t.p50_us as i64)),
                (s("p99_us"), Reply::Int(t.p99_us as i64)),
                (s("guard"), s(&t.guard)),
                (s("rollbacks"), Reply::Int(t.rollbacks as i64)),
            ];
            if matches!(r.def.kind, Kind::Shadow) && !t.shadow.is_empty() {
                let outputs = t
                    .shadow
                    .iter()
                    .enumerate()
                    .map(|(i, o)| {
                        Reply::Map(vec![
                            (s("output"), Reply::Int(i as i64)),
                            (s("compared"), Reply::Int(o.compared as i64)),
                            (s("max_abs_diff"), num(o.max_abs_diff)),
                            (s("mean_max_abs_diff"), num(o.mean_max_abs_diff)),
                            (
                                s("argmax_agreement"),
                                o.argmax_agreement().map_or(Reply::Null, num),
                            ),
                        ])
                    })
                    .collect();
                fields.push((s("agreement"), Reply::Array(outputs)));
            }
            if let Some(arm) = t.arm {
                fields.extend([
                    (s("pulls"), Reply::Int(arm.pulls as i64)),
                    (s("rewards"), Reply::Int(arm.rewards as i64)),
                    (s("mean_reward"), num(arm.mean_reward)),
                ]);
            }
            Reply::Map(fields)
        })
        .collect();
    Reply::Map(vec![
        (s("key"), Reply::Bulk(key)),
        (s("type"), s("ROUTER")),
        (s("kind"), s(r.def.kind_name())),
        (s("calls"), Reply::Int(calls as i64)),
        (s("errors"), Reply::Int(errors as i64)),
        (s("rollbacks"), Reply::Int(rollbacks as i64)),
        (s("targets"), Reply::Array(targets)),
    ])
}

/// `AI.ROUTERWEIGHT key target weight`: changes one target's weight atomically (SHADOW: its
/// sample rate). Setting a weight by hand re-arms the target's guard.
pub fn routerweight(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    super::check_arity(args, 4..=4)?;
    let key = args.next()?;
    let target = args.next()?;
    let w = args
        .next()
        .ok()
        .and_then(|b| crate::util::parse_f64(&b))
        .ok_or_else(|| CmdError::new("ERR weight must be a non-negative number"))?;
    let r = get_router(ctx, &key)?;
    let i = r.def.target_index(&target).ok_or_else(|| {
        CmdError::new(format!(
            "ERR router has no target '{}'",
            String::from_utf8_lossy(&target)
        ))
    })?;
    let (server, db, now) = (ctx.server.clone(), ctx.client.db, ctx.now());
    let actor = Actor::of(ctx.client);
    let detail = format!(
        "{} = {}",
        String::from_utf8_lossy(&target),
        crate::util::format_f64_human(w)
    );
    let mut action = Action {
        command: "AI.ROUTERWEIGHT",
        key: &key,
        version: r.def.targets[i].version,
        sha256: "",
        outcome: "ok",
        detail: &detail,
    };
    if let Err(e) = r.set_weight(i, w) {
        action.outcome = &e;
        ctx.propagate = crate::audit::append(&server, db, now, &actor, &action).map(|x| vec![x]);
        return Err(CmdError(e));
    }
    ctx.dirty(1);
    let mut log = vec![args.request().to_vec()];
    log.extend(crate::audit::append(&server, db, now, &actor, &action));
    ctx.propagate = Some(log);
    Ok(Reply::OK)
}

/// `AI.ROUTERREWARD key OUTPUT out-key reward`: credits a BANDIT's target that wrote `out-key`.
/// Answers with that target.
pub fn routerreward(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    super::check_arity(args, 5..=5)?;
    let key = args.next()?;
    if !args.eat("OUTPUT") {
        return Err(CmdError::syntax());
    }
    let output = args.next()?;
    let reward = args
        .next()
        .ok()
        .and_then(|b| crate::util::parse_f64(&b))
        .ok_or_else(|| CmdError::new("ERR reward must be a number"))?;
    let r = get_router(ctx, &key)?;
    let i = r.reward(&output, reward).map_err(CmdError)?;
    Ok(Reply::Bulk(r.def.targets[i].name()))
}

/// `AI.ALERTS [COUNT n]`: the latest alerts of the client's database (the alert stream),
/// newest first, each its id and fields; 10 unless COUNT says otherwise.
pub fn alerts(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let count = alerts_count(&args.rest())?;
    let key = ctx.server.config.live.alert_stream.read().clone();
    if key.is_empty() {
        return Ok(Reply::Array(Vec::new()));
    }
    let shard = ctx.db().read(&key);
    let Some(Entry {
        value: Value::Stream(s),
        ..
    }) = shard.get(&key, ctx.now())
    else {
        return Ok(Reply::Array(Vec::new()));
    };
    let out = s
        .iter()
        .rev()
        .take(count)
        .map(|(id, fields)| alert_entry(id.to_bytes(), fields))
        .collect();
    Ok(Reply::Array(out))
}

/// AI.ALERTS' arguments (after the command name): `[COUNT n]`, 10 by default.
pub fn alerts_count(words: &[Bytes]) -> Result<usize, CmdError> {
    let Some((first, rest)) = words.split_first() else {
        return Ok(10);
    };
    if !first.eq_ignore_ascii_case(b"COUNT") {
        return Err(CmdError::syntax());
    }
    let count = rest
        .first()
        .and_then(|w| std::str::from_utf8(w).ok())
        .and_then(|w| w.parse::<i64>().ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| CmdError::new("ERR COUNT must be a positive integer"))?;
    if rest.len() > 1 {
        return Err(CmdError::syntax());
    }
    Ok(count as usize)
}

/// One alert as AI.ALERTS lists it: its stream id, then each field.
pub fn alert_entry(id: Bytes, fields: &[Bytes]) -> Reply {
    let mut pairs = vec![(Reply::bulk_str("id"), Reply::Bulk(id))];
    pairs.extend(
        fields
            .chunks_exact(2)
            .map(|kv| (Reply::Bulk(kv[0].clone()), Reply::Bulk(kv[1].clone()))),
    );
    Reply::Map(pairs)
}
