//! What the V2 protocol and Triton's extensions say about a model, computed once for both
//! faces (REST and gRPC): its tensor metadata from the ONNX signature, the configuration
//! (batching, instances) that perf_analyzer reads before it sends load, and its statistics.

use super::{v2_type, Described};
use crate::engine::model::{Device, Model, Port};
use crate::server::Server;
use crate::tensor::DType;
use std::sync::atomic::Ordering;

/// One tensor of a signature: name, V2 datatype, shape (-1 where dynamic).
pub struct TensorMeta {
    pub name: String,
    pub datatype: &'static str,
    pub shape: Vec<i64>,
}

/// A port's metadata. Sequences of maps (scikit-learn's probabilities) come out as FP32
/// [N, labels], as Locus stores them.
pub fn tensor_meta(p: &Port) -> TensorMeta {
    let (dtype, shape) = match (&p.labels, p.dtype) {
        (Some(labels), _) => (DType::Float, vec![-1, labels.len() as i64]),
        (None, Some(t)) => (t, p.dims.clone()),
        (None, None) => (DType::Float, vec![-1]),
    };
    TensorMeta {
        name: p.name.clone(),
        datatype: v2_type(dtype),
        shape,
    }
}

pub fn inputs(m: &Model) -> Vec<TensorMeta> {
    m.inputs.iter().map(tensor_meta).collect()
}

pub fn outputs(m: &Model) -> Vec<TensorMeta> {
    m.outputs.iter().map(tensor_meta).collect()
}

/// Triton's `DataType` enum name for a V2 datatype.
pub fn triton_type(datatype: &str) -> &'static str {
    match datatype {
        "BOOL" => "TYPE_BOOL",
        "UINT8" => "TYPE_UINT8",
        "UINT16" => "TYPE_UINT16",
        "UINT32" => "TYPE_UINT32",
        "UINT64" => "TYPE_UINT64",
        "INT8" => "TYPE_INT8",
        "INT16" => "TYPE_INT16",
        "INT32" => "TYPE_INT32",
        "INT64" => "TYPE_INT64",
        "FP16" => "TYPE_FP16",
        "FP32" => "TYPE_FP32",
        "FP64" => "TYPE_FP64",
        "BYTES" => "TYPE_STRING",
        "BF16" => "TYPE_BF16",
        _ => "TYPE_INVALID",
    }
}

/// The number of Triton's `DataType` enum for a V2 datatype.
pub fn triton_type_number(datatype: &str) -> i32 {
    match datatype {
        "BOOL" => 1,
        "UINT8" => 2,
        "UINT16" => 3,
        "UINT32" => 4,
        "UINT64" => 5,
        "INT8" => 6,
        "INT16" => 7,
        "INT32" => 8,
        "INT64" => 9,
        "FP16" => 10,
        "FP32" => 11,
        "FP64" => 12,
        "BYTES" => 13,
        "BF16" => 14,
        _ => 0,
    }
}

/// Triton's model configuration, as far as an ONNX model in Locus has one.
pub struct Config {
    /// BATCHSIZE; 0 when the model does not batch requests together. When above 0, the
    /// tensor dims leave out the batch dimension, as Triton's do.
    pub max_batch_size: usize,
    pub inputs: Vec<TensorMeta>,
    pub outputs: Vec<TensorMeta>,
    pub gpu: Option<u32>,
    /// Runs of the model's queue in parallel (threads-per-queue).
    pub instances: usize,
    /// MINBATCHSIZE (or BATCHSIZE) as the preferred batch, MINBATCHTIMEOUT as the delay.
    pub preferred_batch: usize,
    pub max_queue_delay_us: u64,
}

pub fn config(server: &Server, m: &Model) -> Config {
    let batch = m.spec.batchsize;
    let strip = |mut t: TensorMeta| {
        if batch > 0 && !t.shape.is_empty() {
            t.shape.remove(0);
        }
        t
    };
    Config {
        max_batch_size: batch,
        inputs: inputs(m).into_iter().map(strip).collect(),
        outputs: outputs(m).into_iter().map(strip).collect(),
        gpu: match m.spec.device {
            Device::Gpu(id) => Some(id),
            Device::Cpu(_) => None,
        },
        instances: server.config.get_i64("threads-per-queue").max(1) as usize,
        preferred_batch: if m.spec.minbatchsize > 0 {
            m.spec.minbatchsize
        } else {
            batch
        },
        max_queue_delay_us: m.spec.minbatchtimeout * 1000,
    }
}

/// A model's counts and cumulative durations, in Triton's terms.
pub struct Stats {
    pub inference_count: u64,
    pub execution_count: u64,
    pub success: (u64, u64),
    pub fail: (u64, u64),
    pub queue: (u64, u64),
    pub compute_input: (u64, u64),
    pub compute_infer: (u64, u64),
    pub compute_output: (u64, u64),
}

/// Counts and nanoseconds from the model's statistics (AI.INFO's).
pub fn stats(m: &Model) -> Stats {
    let s = &m.stats;
    let calls = s.calls.load(Ordering::Relaxed);
    let errors = s.errors.load(Ordering::Relaxed);
    let total = s.total_us.snapshot();
    let queue = s.queue_us.snapshot();
    let run = s.run_us.snapshot();
    Stats {
        inference_count: s.samples.load(Ordering::Relaxed),
        execution_count: s.batch_size.snapshot().count,
        success: (calls.saturating_sub(errors), total.sum * 1000),
        fail: (errors, 0),
        queue: (queue.count, queue.sum * 1000),
        // A run's time covers making the input tensors and reading the outputs: Locus does
        // not time them apart. Triton's clients require the three compute counts to agree
        // (perf_analyzer stops otherwise), so input and output count the same requests, with
        // no time of their own.
        compute_input: (run.count, 0),
        compute_infer: (run.count, run.sum * 1000),
        compute_output: (run.count, 0),
    }
}

/// The version a V2 reply names: the resolved one for a model, empty for a router.
pub fn version_text(d: &Described) -> String {
    d.version.map(|v| v.to_string()).unwrap_or_default()
}

/// The platform a V2 metadata reply names.
pub fn platform(d: &Described) -> &'static str {
    if d.is_router {
        "locus_router"
    } else {
        "onnxruntime_onnx"
    }
}
