//! Locus: a Redis-compatible tensor data store that runs ONNX models beside the data.
//!
//! Layers, from the wire inwards: [`server`] (sockets, RESP framing, clients), [`cmd`] (one file
//! per command family), [`store`] (the keyspace). The AI engine (tensors, models, DAGs) knows
//! nothing of sockets, so that it can also be hosted inside redis-server as a module.

pub mod cmd;
pub mod config;
pub mod dag;
pub mod engine;
pub mod persist;
pub mod scripting;
pub mod server;
pub mod store;
pub mod tensor;
pub mod util;

/// The version Locus reports as `redis_version`, so that clients that gate features on it see a
/// Redis 7 feature set.
pub const REDIS_VERSION: &str = "7.2.0";
pub const LOCUS_VERSION: &str = env!("CARGO_PKG_VERSION");
