//! The Locus engine: tensors, ONNX Runtime models and their run queues with batching, DAGs and
//! tensor ops. It knows nothing of sockets, RESP or the keyspace: its hosts (`locus-server` and
//! the Redis module) parse commands, hold the keys, and call in here.

pub mod clock;
pub mod dag;
pub mod engine;
pub mod explain;
pub mod monitor;
pub mod numbers;
pub mod router;
pub mod score;
pub mod tensor;

/// The ONNX Runtime binding the engine is built on, for hosts and tools that need the same
/// version (the benchmark's in-process baseline).
pub use ort;
