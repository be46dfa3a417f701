//! Inference on the keyspace for the faces that are not RESP (the KServe V2 protocol over REST
//! and gRPC, the dashboard): a request names a model or router key and carries its tensors,
//! and gets the outputs back instead of having them written to keys. It goes through the same
//! path as `AI.MODELEXECUTE`: the same lookup of versions and routers, the same signature
//! checks, the same run queue (so V2 and RESP requests for one model batch together), and the
//! same statistics, monitors and request logs.

pub mod codec;
pub mod meta;

use crate::cmd::models::{get_versions, run_model, LoggedNames, RunLog};
use crate::cmd::routers::{self, RunTarget};
use crate::cmd::{CmdError, Ctx};
use crate::engine::model::Model;
use crate::engine::versions::VersionedModel;
use crate::server::reply::Reply;
use crate::server::Server;
use crate::store::{Entry, Value};
use crate::tensor::{DType, Tensor};
use bytes::Bytes;
use locus_engine::router::route::{self, EventSink, Node};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The V2 protocol has no databases: its models are the keys of database 0.
pub const DB: usize = 0;

/// A named tensor of a request or an answer.
pub struct Named {
    pub name: String,
    pub tensor: Tensor,
}

/// One inference request.
pub struct Call {
    /// The model or router key.
    pub model: String,
    pub version: Option<u64>,
    /// The client's request id: the sticky name of a sticky split, and the name a bandit's
    /// reward (`AI.ROUTERREWARD router id`) refers to.
    pub id: String,
    pub inputs: Vec<Named>,
    /// Outputs asked for, by name; empty for all of them.
    pub outputs: Vec<String>,
    /// How long the request may wait for its run.
    pub timeout: Option<Duration>,
    /// The ACL user the request acts as (`None`: the server's own, unrestricted).
    pub user: Option<Arc<crate::acl::User>>,
}

/// The outputs of a run, with the version of the model that answered (direct runs).
pub struct Answer {
    pub version: Option<u64>,
    pub outputs: Vec<Named>,
}

/// Why a request failed, in the classes both protocols tell apart.
#[derive(Debug)]
pub enum Failure {
    /// No such model, router or version.
    NotFound(String),
    /// The request does not fit the model (names, types, shapes).
    Invalid(String),
    /// The run did not finish in time, or the server is loading.
    Unavailable(String),
    /// The model failed.
    Failed(String),
    /// The request's user may not do this (ACL).
    Forbidden(String),
}

impl Failure {
    pub fn message(&self) -> &str {
        match self {
            Failure::NotFound(m) | Failure::Invalid(m) | Failure::Unavailable(m) => m,
            Failure::Failed(m) | Failure::Forbidden(m) => m,
        }
    }
}

/// Drops RESP's error-code prefix: the V2 protocols carry the message alone.
fn plain(text: &str) -> String {
    text.strip_prefix("ERR ").unwrap_or(text).to_string()
}

/// What a model or router key offers to describe: its signature and versions.
pub struct Described {
    /// The model the key's requests are checked against (a router's: its first target's).
    pub signature: Arc<Model>,
    /// The versions of a model key, oldest first; empty for a router.
    pub versions: Vec<u64>,
    /// The version that `version` (or the live one) resolved to, for a model key.
    pub version: Option<u64>,
    pub is_router: bool,
}

/// Runs `f` with a context on database 0, as an internal client.
fn with_ctx<T>(server: &Arc<Server>, f: impl FnOnce(&Ctx) -> T) -> T {
    with_ctx_as(server, None, f)
}

/// Runs `f` with a context on database 0, as `user` (its ACL rules apply to what the run
/// reaches, router targets included) or as an internal client.
fn with_ctx_as<T>(
    server: &Arc<Server>,
    user: Option<Arc<crate::acl::User>>,
    f: impl FnOnce(&Ctx) -> T,
) -> T {
    let mut client = server.clients.detached(DB);
    if let Some(user) = user {
        client.set_user(user);
    }
    let cmd = Arc::clone(
        server
            .commands
            .get(b"ai.modelexecute")
            .expect("AI.MODELEXECUTE is known"),
    );
    let ctx = Ctx::new(server, &mut client, &cmd);
    f(&ctx)
}

fn not_found(name: &str, version: Option<u64>, e: CmdError) -> Failure {
    if e.0.starts_with("WRONGTYPE") || e.0 == crate::cmd::models::ERR_MODEL_EMPTY {
        return Failure::NotFound(format!("Request for unknown model: '{name}' is not found"));
    }
    match version {
        Some(v) if e.0.contains("version") => Failure::NotFound(format!(
            "Request for unknown model: '{name}' version {v} is not found"
        )),
        _ => Failure::NotFound(plain(&e.0)),
    }
}

/// Describes the model or router at `name`.
pub fn describe(
    server: &Arc<Server>,
    name: &str,
    version: Option<u64>,
) -> Result<Described, Failure> {
    with_ctx(server, |ctx| {
        let target = routers::lookup(ctx, name.as_bytes(), version)
            .map_err(|e| not_found(name, version, e))?;
        let signature =
            routers::signature(ctx, &target).map_err(|e| Failure::Unavailable(plain(&e.0)))?;
        Ok(match target {
            RunTarget::Model(m) => {
                let vm = get_versions(ctx, name.as_bytes()).ok();
                let versions = vm
                    .as_ref()
                    .map(|vm| vm.versions().iter().map(|v| v.number).collect())
                    .unwrap_or_default();
                Described {
                    version: vm.as_ref().and_then(|vm| number_of(vm, &m)),
                    signature,
                    versions,
                    is_router: false,
                }
            }
            RunTarget::Router(_) => Described {
                signature,
                versions: Vec::new(),
                version: None,
                is_router: true,
            },
        })
    })
}

/// The version number under which `vm` holds `model`.
fn number_of(vm: &VersionedModel, model: &Arc<Model>) -> Option<u64> {
    vm.versions()
        .iter()
        .find(|v| Arc::ptr_eq(&v.model, model))
        .map(|v| v.number)
}

/// The model keys of database 0 and the routers, for listings.
pub fn model_keys(server: &Server) -> Vec<(Bytes, bool)> {
    let now = crate::util::now_ms();
    let db = server.store.db(DB);
    let mut keys = Vec::new();
    for i in 0..crate::store::SHARDS {
        let shard = db.shard(i).read();
        for (k, e) in shard.iter(now) {
            match &e.value {
                Value::Model(_) => keys.push((k.clone(), false)),
                Value::Router(_) => keys.push((k.clone(), true)),
                _ => {}
            }
        }
    }
    keys.sort();
    keys
}

/// A request checked and resolved, ready to run.
struct Prepared {
    key: Bytes,
    node: Node,
    events: Option<Arc<dyn EventSink>>,
    tensors: Vec<Arc<Tensor>>,
    input_names: Vec<Bytes>,
    /// Indexes into the model's outputs, in the order the answer gives them.
    selection: Vec<usize>,
    output_names: Vec<String>,
    log: Option<RunLog>,
    monitor: Option<Arc<parking_lot::Mutex<locus_engine::monitor::Monitor>>>,
}

/// Whether `user` may use the model or router `name` as the V2 protocol does: `infer` as
/// AI.MODELEXECUTE runs it, otherwise (metadata, readiness, statistics) as AI.INFO reads it.
pub fn authorize(
    server: &Server,
    user: Option<&crate::acl::User>,
    name: &str,
    infer: bool,
) -> Result<(), Failure> {
    let Some(user) = user else { return Ok(()) };
    let key = Bytes::from(name.to_string().into_bytes());
    let argv: Vec<Bytes> = if infer {
        ["AI.MODELEXECUTE", name, "INPUTS", "0", "OUTPUTS", "0"]
            .iter()
            .map(|w| Bytes::from(w.to_string().into_bytes()))
            .collect()
    } else {
        vec![Bytes::from_static(b"AI.INFO"), key]
    };
    let (cmd, _) = server
        .commands
        .resolve(&argv[..])
        .map_err(Failure::Invalid)?;
    crate::acl::check(&user.rules(), &cmd, &argv[..]).map_err(|d| {
        Failure::Forbidden(match d {
            crate::acl::Denied::Command => format!(
                "this user has no permissions to run the '{}' command",
                cmd.name
            ),
            _ => format!("this user has no permissions to access the model '{name}'"),
        })
    })
}

/// A router's refusal of a target the user may not read is a permission failure.
fn resolve_failure(e: CmdError) -> Failure {
    match e.0.strip_prefix("NOPERM ") {
        Some(m) => Failure::Forbidden(m.to_string()),
        None => Failure::Unavailable(plain(&e.0)),
    }
}

fn prepare(server: &Arc<Server>, call: Call) -> Result<Prepared, Failure> {
    let Call {
        model: name,
        version,
        id,
        inputs,
        outputs,
        user,
        ..
    } = call;
    authorize(server, user.as_deref(), &name, true)?;
    with_ctx_as(server, user, |ctx| {
        let key = Bytes::from(name.clone().into_bytes());
        let target =
            routers::lookup(ctx, &key, version).map_err(|e| not_found(&name, version, e))?;
        let model =
            routers::signature(ctx, &target).map_err(|e| Failure::Unavailable(plain(&e.0)))?;
        let tensors = bind_inputs(&model, &name, inputs)?;
        model
            .admit(&tensors)
            .map_err(|e| Failure::Invalid(plain(&e)))?;
        let selection = if outputs.is_empty() {
            (0..model.outputs.len()).collect()
        } else {
            outputs
                .iter()
                .map(|o| {
                    model
                        .outputs
                        .iter()
                        .position(|p| &p.name == o)
                        .ok_or_else(|| {
                            Failure::Invalid(format!(
                                "unexpected inference output '{o}' for model '{name}'"
                            ))
                        })
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        let output_names = selection
            .iter()
            .map(|&i| model.outputs[i].name.clone())
            .collect();
        let id_key = [Bytes::from(id.into_bytes())];
        let (node, events) = match target {
            RunTarget::Model(m) => (Node::model(m), None),
            RunTarget::Router(r) => {
                let sink = routers::events(ctx);
                let remembered: &[Bytes] = if id_key[0].is_empty() { &[] } else { &id_key };
                let node = routers::resolve(ctx, &key, &r, &id_key[0], remembered, &sink)
                    .map_err(resolve_failure)?;
                (node, Some(sink))
            }
        };
        let log = server
            .store
            .request_logs
            .get(DB, &key)
            .map(|spec| RunLog::start(ctx, spec, &key, &node));
        let monitor = server.store.monitors.get(DB, &key);
        let input_names = model
            .inputs
            .iter()
            .map(|p| Bytes::from(p.name.clone().into_bytes()))
            .collect();
        Ok(Prepared {
            key,
            node,
            events,
            tensors,
            input_names,
            selection,
            output_names,
            log,
            monitor,
        })
    })
}

/// The request's named inputs as the model's inputs, in the graph's order.
fn bind_inputs(model: &Model, name: &str, inputs: Vec<Named>) -> Result<Vec<Arc<Tensor>>, Failure> {
    let mut given: Vec<Option<Named>> = inputs.into_iter().map(Some).collect();
    if let Some(unknown) = given
        .iter()
        .flatten()
        .find(|n| !model.inputs.iter().any(|p| p.name == n.name))
    {
        return Err(Failure::Invalid(format!(
            "unexpected inference input '{}' for model '{name}'",
            unknown.name
        )));
    }
    if given.len() != model.inputs.len() {
        return Err(Failure::Invalid(format!(
            "expected {} inputs but got {} inputs for model '{name}'",
            model.inputs.len(),
            given.len()
        )));
    }
    let mut tensors = Vec::with_capacity(model.inputs.len());
    for port in &model.inputs {
        let Some(input) = given
            .iter_mut()
            .find(|g| g.as_ref().is_some_and(|n| n.name == port.name))
            .and_then(Option::take)
        else {
            return Err(Failure::Invalid(format!(
                "expected {} inputs but got {} inputs for model '{name}'",
                model.inputs.len(),
                given.len()
            )));
        };
        if let Some(want) = port.dtype {
            if want != input.tensor.dtype() {
                return Err(Failure::Invalid(format!(
                    "inference input '{}' data-type is '{}', but model '{name}' expects '{}'",
                    port.name,
                    v2_type(input.tensor.dtype()),
                    v2_type(want)
                )));
            }
        }
        tensors.push(Arc::new(input.tensor));
    }
    Ok(tensors)
}

/// Sets the request's cancelled flag if the caller stops waiting (a dropped HTTP connection
/// drops the future), so its queued run is skipped.
struct CancelOnDrop(Arc<AtomicBool>, bool);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.1 {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

/// Runs one request and returns its outputs.
pub async fn infer(server: &Arc<Server>, call: Call) -> Result<Answer, Failure> {
    if server.loading.load(Ordering::Relaxed) {
        return Err(Failure::Unavailable(
            "the server is loading its dataset".into(),
        ));
    }
    let timeout = call.timeout;
    let p = prepare(server, call)?;
    let kept = (p.log.is_some() || p.monitor.is_some()).then(|| p.tensors.clone());
    let (outputs, version) = match p.events {
        None => {
            let locus_engine::router::route::Exec::Model(model) = p.node.exec else {
                unreachable!("a direct request runs one model")
            };
            let version = {
                let now = crate::util::now_ms();
                let shard = server.store.db(DB).read(&p.key);
                match shard.get(&p.key, now) {
                    Some(Entry {
                        value: Value::Model(vm),
                        ..
                    }) => number_of(vm, &model),
                    _ => None,
                }
            };
            let ms = timeout.map(|t| t.as_millis().max(1) as u64);
            let result = run_model(server, model, p.tensors, ms).await;
            (
                result.map(|o| crate::engine::model::select_outputs(o, &p.selection)),
                version,
            )
        }
        Some(sink) => {
            let cancelled = Arc::new(AtomicBool::new(false));
            let mut guard = CancelOnDrop(cancelled.clone(), false);
            let run = route::run(server.engine.clone(), p.node, p.tensors, sink, cancelled);
            let finished = match timeout {
                Some(t) => match tokio::time::timeout(t, run).await {
                    Ok(f) => f,
                    Err(_) => return Err(Failure::Unavailable("request timed out".into())),
                },
                None => run.await,
            };
            guard.1 = true;
            if let Some(shadow) = finished.shadow {
                tokio::spawn(shadow);
            }
            let outputs = finished.result.map_err(Reply::Error).and_then(|o| {
                let o = crate::engine::model::select_outputs(o, &p.selection);
                if o.len() == p.selection.len() {
                    Ok(o)
                } else {
                    Err(Reply::err(
                        "ERR the model that answered has fewer outputs than the request names",
                    ))
                }
            });
            (outputs, None)
        }
    };
    if let (Some(m), Some(tensors), Ok(out)) = (&p.monitor, &kept, &outputs) {
        crate::cmd::monitors::observe(server, DB, &p.key, m, tensors, out);
    }
    if let (Some(log), Some(tensors)) = (p.log, kept) {
        let output_keys: Vec<Bytes> = p
            .output_names
            .iter()
            .map(|n| Bytes::from(n.clone().into_bytes()))
            .collect();
        let names = LoggedNames {
            key: &p.key,
            inputs: &p.input_names,
            outputs: &output_keys,
        };
        log.finish(server, DB, &names, None, &tensors, &outputs);
    }
    match outputs {
        Ok(tensors) => Ok(Answer {
            version,
            outputs: p
                .output_names
                .into_iter()
                .zip(tensors)
                .map(|(name, tensor)| Named { name, tensor })
                .collect(),
        }),
        Err(Reply::Status("TIMEDOUT")) => Err(Failure::Unavailable("request timed out".into())),
        Err(Reply::Error(e)) => Err(Failure::Failed(plain(&e))),
        Err(_) => Err(Failure::Failed("the model run failed".into())),
    }
}

/// One explanation request (`POST /v2/models/{name}/explain`).
pub struct ExplainCall {
    pub model: String,
    pub version: Option<u64>,
    pub inputs: Vec<Named>,
    /// Reference rows; without them, the monitor's baseline on the key, or zeros.
    pub background: Option<Tensor>,
    pub method: crate::explain::Method,
    pub target: usize,
    pub class: Option<usize>,
    /// The input explained, by index in the model's inputs.
    pub features: usize,
    pub user: Option<Arc<crate::acl::User>>,
}

/// Explains the rows of a request's input: attributions [rows, features], as AI.EXPLAIN
/// computes them.
pub async fn explain(server: &Arc<Server>, call: ExplainCall) -> Result<Tensor, Failure> {
    if server.loading.load(Ordering::Relaxed) {
        return Err(Failure::Unavailable(
            "the server is loading its dataset".into(),
        ));
    }
    let ExplainCall {
        model: name,
        version,
        inputs,
        background,
        method,
        target,
        class,
        features,
        user,
    } = call;
    authorize(server, user.as_deref(), &name, true)?;
    let request = with_ctx_as(server, user, |ctx| {
        let key = Bytes::from(name.clone().into_bytes());
        let found =
            routers::lookup(ctx, &key, version).map_err(|e| not_found(&name, version, e))?;
        let model =
            routers::signature(ctx, &found).map_err(|e| Failure::Unavailable(plain(&e.0)))?;
        let tensors = bind_inputs(&model, &name, inputs)?;
        let background = match background {
            Some(b) => Some(Arc::new(b)),
            None => crate::cmd::explain::monitor_background(ctx, &key).filter(|b| {
                tensors
                    .get(features)
                    .is_some_and(|x| crate::explain::background_fits(b, x))
            }),
        };
        let request = crate::explain::Request {
            model,
            inputs: tensors,
            feature_input: features,
            background,
            target,
            class,
            method,
        };
        crate::explain::check(&request).map_err(|e| Failure::Invalid(plain(&e)))?;
        Ok(request)
    })?;
    let cancelled = Arc::new(AtomicBool::new(false));
    let _guard = CancelOnDrop(cancelled.clone(), false);
    crate::explain::explain(server.engine.clone(), request, cancelled)
        .await
        .map_err(|e| {
            if e.contains("out of range") || e.contains("must be") {
                Failure::Invalid(plain(&e))
            } else {
                Failure::Failed(plain(&e))
            }
        })
}

/// The V2 protocol's name of an element type.
pub fn v2_type(t: DType) -> &'static str {
    match t {
        DType::Float => "FP32",
        DType::Double => "FP64",
        DType::Int8 => "INT8",
        DType::Int16 => "INT16",
        DType::Int32 => "INT32",
        DType::Int64 => "INT64",
        DType::Uint8 => "UINT8",
        DType::Uint16 => "UINT16",
        DType::Uint32 => "UINT32",
        DType::Uint64 => "UINT64",
        DType::Bool => "BOOL",
        DType::String => "BYTES",
        DType::Float16 => "FP16",
        DType::BFloat16 => "BF16",
    }
}

/// The element type a V2 datatype name stands for.
pub fn from_v2_type(name: &str) -> Option<DType> {
    DType::ALL.into_iter().find(|t| v2_type(*t) == name)
}
