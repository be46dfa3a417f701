//! Locus: a Redis-compatible tensor data store that runs ONNX models beside the data.
//!
//! Layers, from the wire inwards: [`server`] (sockets, RESP framing, clients), [`cmd`] (one file
//! per command family), [`store`] (the keyspace). The AI engine (tensors, models, DAGs) is the
//! `locus-engine` crate, which knows nothing of sockets, so that it is also hosted inside
//! redis-server as a module.

pub mod acl;
pub mod audit;
pub mod cmd;
pub mod config;
pub mod error_alerts;
pub mod grpc;
pub mod http;
pub mod inference;
pub mod jobs;
pub mod memory;
pub mod model_uri;
pub mod notify;
pub mod outbox;
pub mod persist;
pub mod request_log;
pub mod scorefiles;
pub mod scripting;
pub mod server;
pub mod store;
pub mod tracking;
pub mod util;

// The engine crate's modules under their old paths: the server is one host of the engine.
pub use locus_engine::{dag, engine, explain, tensor};

/// The version Locus reports as `redis_version`, so that clients that gate features on it see a
/// Redis 7 feature set.
pub const REDIS_VERSION: &str = "7.2.0";
pub const LOCUS_VERSION: &str = env!("CARGO_PKG_VERSION");
