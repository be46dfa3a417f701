//! A stored model: its settings (RedisAI's MODELSTORE options), its ONNX blob, its signature
//! read from the graph, and a pool of ONNX Runtime sessions (a session runs one request at a
//! time, so each worker takes its own).

use super::backend::OnnxBackend;
use super::histogram::Histogram;
use crate::tensor::{DType, Tensor};
use bytes::Bytes;
use ort::session::{builder::GraphOptimizationLevel, RunOptions, Session, SessionInputValue};
use ort::value::{TensorElementType, TensorRef, ValueType};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Where a model runs. RedisAI accepts `CPU`, `CPU:n`, `GPU` and `GPU:n` (any case); ONNX
/// Runtime has one CPU device, so `CPU:n` differs from `CPU` only in its run queue.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Device {
    Cpu(u32),
    Gpu(u32),
}

impl Device {
    /// Parses `CPU`, `CPU:n`, `GPU`, `GPU:n` (case-insensitively).
    pub fn parse(s: &[u8]) -> Option<Device> {
        let s = String::from_utf8_lossy(s).to_ascii_uppercase();
        let (kind, id) = match s.split_once(':') {
            Some((kind, id)) => {
                if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                (kind, id.parse().ok()?)
            }
            None => (s.as_str(), 0),
        };
        match kind {
            "CPU" => Some(Device::Cpu(id)),
            "GPU" => Some(Device::Gpu(id)),
            _ => None,
        }
    }

    /// A canonical name (`CPU:0`, `GPU:1`…) for logs and thread names.
    pub fn name(&self) -> String {
        match self {
            Device::Cpu(n) => format!("CPU:{n}"),
            Device::Gpu(n) => format!("GPU:{n}"),
        }
    }
}

/// One input or output of the graph.
#[derive(Clone, Debug)]
pub struct Port {
    pub name: String,
    /// `None` for non-tensor values (sequences, maps).
    pub dtype: Option<DType>,
    /// Dimensions, -1 where dynamic; empty for non-tensors.
    pub dims: Vec<i64>,
    /// For a sequence of maps (a ZipMap's output, as scikit-learn classifiers export their
    /// probabilities): the class labels, in the order the model gives them. Such an output is
    /// stored as a FLOAT tensor [N, labels], one column per label.
    pub labels: Option<Vec<String>>,
}

impl Port {
    /// Whether a run gives this output as a tensor (a sequence of maps becomes one).
    pub fn is_tensor(&self) -> bool {
        self.dtype.is_some()
    }
}

/// Settings given at MODELSTORE.
#[derive(Clone, Debug)]
pub struct ModelSpec {
    pub backend: String,
    pub device: Device,
    /// The device as the user wrote it, echoed by MODELGET; upper-cased, it names the model's
    /// run queue (RedisAI keeps one queue per device string, so `CPU` and `CPU:1` run in
    /// parallel).
    pub device_name: String,
    pub tag: Bytes,
    pub batchsize: usize,
    pub minbatchsize: usize,
    pub minbatchtimeout: u64,
    /// Input/output names to bind (RedisAI's INPUTS/OUTPUTS); empty = the graph's own.
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
}

impl ModelSpec {
    /// The run queue this model's requests go to.
    pub fn queue_name(&self) -> String {
        self.device_name.to_ascii_uppercase()
    }
}

/// Failed requests of every model since start: the error-rate alert looks at the models only
/// when this moves.
pub static FAILED_REQUESTS: AtomicU64 = AtomicU64::new(0);

/// Run statistics for AI.INFO and the metrics.
pub struct ModelStats {
    pub calls: AtomicU64,
    pub errors: AtomicU64,
    pub samples: AtomicU64,
    pub duration_us: AtomicU64,
    /// Requests whose client stopped waiting (TIMEOUT) before the run finished.
    pub timeouts: AtomicU64,
    /// Requests refused before they ran (inputs that do not fit the signature); also counted
    /// in `calls` and `errors`, as RedisAI counts them.
    pub rejected: AtomicU64,
    /// Per request: time queued, time of the run it was part of, and both.
    pub queue_us: Histogram,
    pub run_us: Histogram,
    pub total_us: Histogram,
    /// Requests per run.
    pub batch_size: Histogram,
}

impl Default for ModelStats {
    fn default() -> Self {
        ModelStats {
            calls: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            samples: AtomicU64::new(0),
            duration_us: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            queue_us: Histogram::latency(),
            run_us: Histogram::latency(),
            total_us: Histogram::latency(),
            batch_size: Histogram::batch(),
        }
    }
}

impl ModelStats {
    pub fn reset(&self) {
        for c in [
            &self.calls,
            &self.errors,
            &self.samples,
            &self.duration_us,
            &self.timeouts,
            &self.rejected,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        for h in [
            &self.queue_us,
            &self.run_us,
            &self.total_us,
            &self.batch_size,
        ] {
            h.reset();
        }
    }
}

/// Session options that apply to every model.
#[derive(Clone, Copy, Debug)]
pub struct SessionOptions {
    pub intra_op: usize,
    pub inter_op: usize,
    /// BACKEND_MEMORY_LIMIT in MB (0: none): the CUDA provider's memory limit on GPUs, and a
    /// cap on the bytes held by stored models.
    pub memory_limit_mb: u64,
}

/// Bytes held by stored models (their graphs, counted once per session), for the cap above.
pub static MODEL_BYTES: AtomicU64 = AtomicU64::new(0);

/// Bytes stored models hold as measured: blobs, and each pooled session at the C-heap growth
/// its first build showed (INFO memory's `used_memory_models`).
pub static MODEL_HELD_BYTES: AtomicU64 = AtomicU64::new(0);

/// Counts sessions (and, with `blob`, the model's blob) in or out of both figures: the
/// BACKEND_MEMORY_LIMIT estimate (the graph once per session) and the measured bytes.
fn account(blob: u64, session_estimate: u64, session_measured: u64, sessions: u64, add: bool) {
    let estimate = blob + session_estimate * sessions;
    let measured = blob + session_measured * sessions;
    for (counter, n) in [(&MODEL_BYTES, estimate), (&MODEL_HELD_BYTES, measured)] {
        if add {
            counter.fetch_add(n, Ordering::Relaxed);
        } else {
            let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            });
        }
    }
}

pub struct Model {
    pub spec: ModelSpec,
    pub blob: Bytes,
    /// Graph inputs in the order MODELEXECUTE binds keys to them.
    pub inputs: Vec<Port>,
    pub outputs: Vec<Port>,
    pub stats: ModelStats,
    sessions: Mutex<Vec<Session>>,
    backend: Arc<OnnxBackend>,
    options: SessionOptions,
    /// Set once no key holds the model any more (see [`super::versions::ModelVersion`]).
    retired: AtomicBool,
    /// When a router last sent this model a request (Unix ms): a version a router still
    /// names keeps its session even when it is not live.
    routed_ms: AtomicU64,
    /// What one session holds in ONNX Runtime's heap, measured when the first was built (at
    /// least the graph's size): MEMORY USAGE and INFO count each pooled session at this.
    session_bytes: u64,
}

/// Bytes the C allocator has handed out, which is where ONNX Runtime allocates.
fn native_heap() -> u64 {
    // SAFETY: mallinfo2 only reads the C allocator's counters.
    let m = unsafe { libc::mallinfo2() };
    (m.uordblks + m.hblkhd) as u64
}

/// How long a version a router sent requests to keeps its session once not live.
pub const ROUTED_KEEP_MS: u64 = 60_000;

impl Model {
    /// Whether no key holds this model any more: its queued runs are dropped.
    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// Records that a router sent this model a request.
    pub fn mark_routed(&self) {
        self.routed_ms
            .store(crate::clock::now_ms(), Ordering::Relaxed);
    }

    /// Whether a router sent this model a request lately (see [`ROUTED_KEEP_MS`]).
    pub fn recently_routed(&self) -> bool {
        crate::clock::now_ms().saturating_sub(self.routed_ms.load(Ordering::Relaxed))
            < ROUTED_KEEP_MS
    }

    /// Marks the model as gone from the keyspace (its last holder let go of it).
    pub(crate) fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }

    /// Drops the pooled ONNX Runtime sessions, keeping the blob and signature: a version that
    /// does not serve holds no session until it is run again (a run builds one on demand).
    pub fn release_sessions(&self) {
        let released = std::mem::take(&mut *self.sessions.lock());
        let n = released.len() as u64;
        account(0, self.blob.len() as u64, self.session_bytes, n, false);
    }

    /// Whether a session is pooled, ready to run without building one first.
    pub fn is_loaded(&self) -> bool {
        !self.sessions.lock().is_empty()
    }

    /// Builds a session when none is pooled (call off the I/O threads): a version about to
    /// serve is made ready before it is made live.
    pub fn warm(&self) -> Result<(), String> {
        if self.is_loaded() {
            return Ok(());
        }
        let s = new_session(&self.backend, &self.blob, &self.spec.device, self.options)?;
        account(0, self.blob.len() as u64, self.session_bytes, 1, true);
        self.sessions.lock().push(s);
        Ok(())
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        let n = self.sessions.get_mut().len() as u64;
        let blob = self.blob.len() as u64;
        account(blob, blob, self.session_bytes, n, false);
    }
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("spec", &self.spec)
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .finish()
    }
}

fn dtype_of(t: TensorElementType) -> Option<DType> {
    Some(match t {
        TensorElementType::Float32 => DType::Float,
        TensorElementType::Float64 => DType::Double,
        TensorElementType::Int8 => DType::Int8,
        TensorElementType::Int16 => DType::Int16,
        TensorElementType::Int32 => DType::Int32,
        TensorElementType::Int64 => DType::Int64,
        TensorElementType::Uint8 => DType::Uint8,
        TensorElementType::Uint16 => DType::Uint16,
        TensorElementType::Uint32 => DType::Uint32,
        TensorElementType::Uint64 => DType::Uint64,
        TensorElementType::Bool => DType::Bool,
        TensorElementType::String => DType::String,
        TensorElementType::Float16 => DType::Float16,
        TensorElementType::Bfloat16 => DType::BFloat16,
        _ => return None,
    })
}

fn port(name: &str, ty: &ValueType) -> Port {
    match ty {
        ValueType::Tensor { ty, shape, .. } => Port {
            name: name.to_string(),
            dtype: dtype_of(*ty),
            dims: shape.to_vec(),
            labels: None,
        },
        _ => Port {
            name: name.to_string(),
            dtype: None,
            dims: Vec::new(),
            labels: None,
        },
    }
}

/// Whether a value type is a sequence of maps from labels to floats (a ZipMap's output).
fn is_seq_of_maps(ty: &ValueType) -> bool {
    matches!(ty, ValueType::Sequence(inner)
        if matches!(**inner, ValueType::Map { value: TensorElementType::Float32, .. }))
}

/// Builds one session for `blob` with the engine's options and the model's device.
fn new_session(
    backend: &OnnxBackend,
    blob: &[u8],
    device: &Device,
    opts: SessionOptions,
) -> Result<Session, String> {
    let err = |e: ort::Error| e.to_string();
    let mut b = Session::builder(&backend.env).map_err(err)?;
    b = b
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(|e| e.to_string())?;
    if opts.intra_op > 0 {
        b = b
            .with_intra_threads(opts.intra_op)
            .map_err(|e| e.to_string())?;
    }
    // Idle ONNX Runtime pool threads must sleep, not spin: spinning threads would take the cores
    // the event loops need to answer other clients.
    b = b.with_intra_op_spinning(false).map_err(|e| e.to_string())?;
    b = b.with_inter_op_spinning(false).map_err(|e| e.to_string())?;
    if opts.inter_op > 0 {
        b = b
            .with_inter_threads(opts.inter_op)
            .map_err(|e| e.to_string())?;
    }
    if let Device::Gpu(n) = device {
        let mut cuda = ort::ep::CUDA::default().with_device_id(*n as i32);
        if opts.memory_limit_mb > 0 {
            cuda = cuda.with_memory_limit((opts.memory_limit_mb as usize) << 20);
        }
        let cuda = cuda.build().error_on_failure();
        b = b
            .with_execution_providers([cuda])
            .map_err(|e| e.to_string())?;
    }
    b.commit_from_memory(blob).map_err(err)
}

impl Model {
    /// Parses and optimises the model once (call off the I/O threads). Errors carry the text
    /// the client sees.
    pub fn load(
        backend: Arc<OnnxBackend>,
        spec: ModelSpec,
        blob: Bytes,
        options: SessionOptions,
    ) -> Result<Model, String> {
        if let Device::Gpu(_) = spec.device {
            if !backend.has_cuda {
                return Err(format!(
                    "ERR GPU requested but the loaded ONNX Runtime ({}) has no CUDA execution provider; install the onnxruntime-gpu wheel",
                    backend.path.display()
                ));
            }
        }
        let limit = options.memory_limit_mb << 20;
        if limit > 0 && MODEL_BYTES.load(Ordering::Relaxed) + 2 * blob.len() as u64 > limit {
            return Err(format!(
                "ERR backend memory limit exceeded: BACKEND_MEMORY_LIMIT is {} MB",
                options.memory_limit_mb
            ));
        }
        // RedisAI refuses what it cannot hold in one key (a blob that is no ONNX model at all
        // gets ONNX Runtime's own error below).
        if super::onnx_proto::has_external_initializers(&blob) {
            return Err("Initializer tensors with external data is not allowed.".into());
        }
        let before = native_heap();
        let session =
            // ONNX Runtime's own text, without a code, as RedisAI passes it on.
            new_session(&backend, &blob, &spec.device, options)?;
        // Other loads or runs at the same moment blur this; the graph's size is the floor.
        let session_bytes = native_heap().saturating_sub(before).max(blob.len() as u64);
        // The stored blob and the session built from it.
        let b = blob.len() as u64;
        account(b, b, session_bytes, 1, true);
        let mut inputs: Vec<Port> = session
            .inputs()
            .iter()
            .map(|o| port(o.name(), o.dtype()))
            .collect();
        let zipmaps = super::onnx_proto::zipmap_labels(&blob);
        let mut outputs: Vec<Port> = session
            .outputs()
            .iter()
            .map(|o| {
                let mut p = port(o.name(), o.dtype());
                if is_seq_of_maps(o.dtype()) {
                    p.labels = Some(zipmaps.get(o.name()).cloned().unwrap_or_default());
                    p.dtype = Some(DType::Float);
                    p.dims = vec![-1, p.labels.as_ref().map_or(-1, |l| l.len() as i64)];
                }
                p
            })
            .collect();
        // RedisAI's INPUTS/OUTPUTS name (and order) the graph ports the keys bind to.
        if !spec.inputs.is_empty() {
            inputs = bind_names(&inputs, &spec.inputs, "input")?;
        }
        if !spec.outputs.is_empty() {
            outputs = bind_names(&outputs, &spec.outputs, "output")?;
        }
        Ok(Model {
            spec,
            blob,
            inputs,
            outputs,
            stats: ModelStats::default(),
            sessions: Mutex::new(vec![session]),
            backend,
            options,
            routed_ms: AtomicU64::new(0),
            retired: AtomicBool::new(false),
            session_bytes,
        })
    }

    /// Runs the model on `inputs` (one per input port, already checked), returning one tensor
    /// per output port. `opts` lets the watchdog terminate the run.
    pub fn run(&self, inputs: &[&Tensor], opts: &RunOptions) -> Result<Vec<Tensor>, String> {
        let mut session = match self.sessions.lock().pop() {
            Some(s) => s,
            None => {
                let s = new_session(&self.backend, &self.blob, &self.spec.device, self.options)
                    .map_err(|e| format!("ERR {e}"))?;
                account(0, self.blob.len() as u64, self.session_bytes, 1, true);
                s
            }
        };
        let result = self.run_with(&mut session, inputs, opts);
        self.sessions.lock().push(session);
        result
    }

    fn run_with(
        &self,
        session: &mut Session,
        inputs: &[&Tensor],
        opts: &RunOptions,
    ) -> Result<Vec<Tensor>, String> {
        let mut strings: Vec<Vec<String>> = Vec::new();
        let mut values: Vec<(String, SessionInputValue<'_>)> = Vec::with_capacity(inputs.len());
        for (port, t) in self.inputs.iter().zip(inputs) {
            let v = input_value(t, &mut strings).map_err(|e| format!("ERR {e}"))?;
            values.push((port.name.clone(), v));
        }
        // ONNX Runtime's own text, without a code, as RedisAI passes it on.
        let outputs = session
            .run_with_options(values, opts)
            .map_err(|e| e.to_string())?;
        let mut result = Vec::with_capacity(self.outputs.len());
        for port in &self.outputs {
            let v = outputs
                .get(&port.name)
                .ok_or_else(|| format!("ERR model produced no output '{}'", port.name))?;
            result.push(match &port.labels {
                Some(labels) => seq_of_maps_tensor(&port.name, labels, v)?,
                None => output_tensor(&port.name, v)?,
            });
        }
        Ok(result)
    }

    /// [`Self::check_inputs`] for a run about to be queued: a refused run counts as a call and
    /// an error, as ONNX Runtime's refusal does in RedisAI.
    pub fn admit(&self, tensors: &[Arc<Tensor>]) -> Result<(), String> {
        self.check_inputs(tensors).inspect_err(|_| {
            self.stats.calls.fetch_add(1, Ordering::Relaxed);
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
            self.stats.rejected.fetch_add(1, Ordering::Relaxed);
            FAILED_REQUESTS.fetch_add(1, Ordering::Relaxed);
        })
    }

    /// Checks input tensors against the graph's signature before a run, input by input in
    /// graph order, type before rank before dimensions, with the texts ONNX Runtime 1.11 gives
    /// (the version RedisAI 1.2.7 ships), which RedisAI passes through as they are.
    pub fn check_inputs(&self, tensors: &[Arc<Tensor>]) -> Result<(), String> {
        for (port, t) in self.inputs.iter().zip(tensors) {
            if let Some(want) = port.dtype {
                if want != t.dtype() {
                    return Err(format!(
                        "Unexpected input data type. Actual: (tensor({})) , expected: (tensor({}))",
                        ort_type_name(t.dtype()),
                        ort_type_name(want)
                    ));
                }
            }
            if port.dims.is_empty() {
                continue;
            }
            if port.dims.len() != t.shape().len() {
                return Err(format!(
                    "Invalid rank for input: {} Got: {} Expected: {} Please fix either the inputs or the model.",
                    port.name,
                    t.shape().len(),
                    port.dims.len()
                ));
            }
            let bad: Vec<String> = port
                .dims
                .iter()
                .zip(t.shape())
                .enumerate()
                .filter(|(_, (&want, &got))| want > 0 && want as usize != got)
                .map(|(i, (want, got))| format!(" index: {i} Got: {got} Expected: {want} "))
                .collect();
            if !bad.is_empty() {
                return Err(format!(
                    "Got invalid dimensions for input: {} for the following indices {} Please fix either the inputs or the model.",
                    port.name,
                    bad.concat()
                ));
            }
        }
        Ok(())
    }

    /// Which outputs a request naming `n` output keys gets: every output, or, as RedisAI does
    /// for ONNX-ML models, only the tensor outputs when `n` counts just those.
    pub fn output_selection(&self, n: usize) -> Option<Vec<usize>> {
        if n == self.outputs.len() {
            return Some((0..n).collect());
        }
        let tensors: Vec<usize> = self
            .outputs
            .iter()
            .enumerate()
            .filter(|(_, p)| p.labels.is_none() && p.is_tensor())
            .map(|(i, _)| i)
            .collect();
        (tensors.len() == n && n > 0).then_some(tensors)
    }

    /// The class labels of the first sequence-of-maps output (MODELGET META's `labels`).
    pub fn labels(&self) -> Option<&[String]> {
        self.outputs.iter().find_map(|p| p.labels.as_deref())
    }

    /// Bytes held by the model: its blob, and each pooled session at its measured size.
    pub fn memory_usage(&self) -> usize {
        self.blob.len() + self.session_bytes as usize * self.sessions.lock().len()
    }
}

fn bind_names(ports: &[Port], names: &[String], what: &str) -> Result<Vec<Port>, String> {
    names
        .iter()
        .map(|n| {
            ports
                .iter()
                .find(|p| &p.name == n)
                .cloned()
                .ok_or_else(|| format!("ERR the model has no {what} named '{n}'"))
        })
        .collect()
}

/// Reinterprets an aligned blob as elements of `T`, without copying.
fn typed<T: bytemuck::Pod>(blob: &[u8]) -> Result<&[T], String> {
    bytemuck::try_cast_slice(blob)
        .map_err(|e| format!("tensor data is not aligned for its type: {e}"))
}

/// A borrowed ONNX Runtime view over a stored tensor (strings are converted).
fn input_value<'a>(
    t: &'a Tensor,
    strings: &mut Vec<Vec<String>>,
) -> Result<SessionInputValue<'a>, String> {
    let shape: Vec<usize> = t.shape().to_vec();
    let blob = &t.blob()[..];
    macro_rules! view {
        ($ty:ty) => {
            TensorRef::<$ty>::from_array_view((shape, typed::<$ty>(blob)?))
                .map_err(|e| e.to_string())?
                .into_dyn()
                .into()
        };
    }
    Ok(match t.dtype() {
        DType::Float => view!(f32),
        DType::Double => view!(f64),
        DType::Int8 => view!(i8),
        DType::Int16 => view!(i16),
        DType::Int32 => view!(i32),
        DType::Int64 => view!(i64),
        DType::Uint8 => view!(u8),
        DType::Uint16 => view!(u16),
        DType::Uint32 => view!(u32),
        DType::Uint64 => view!(u64),
        DType::Float16 => view!(half::f16),
        DType::BFloat16 => view!(half::bf16),
        DType::Bool => {
            // Stored bytes are validated 0/1, which is exactly Rust's bool.
            let bools: &[bool] =
                unsafe { std::slice::from_raw_parts(blob.as_ptr() as *const bool, blob.len()) };
            TensorRef::<bool>::from_array_view((shape, bools))
                .map_err(|e| e.to_string())?
                .into_dyn()
                .into()
        }
        DType::String => {
            let s: Vec<String> = t
                .strings()
                .iter()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .collect();
            strings.push(s.clone());
            ort::value::Tensor::from_string_array((shape, &s[..]))
                .map_err(|e| e.to_string())?
                .into_dyn()
                .into()
        }
    })
}

/// Copies one output into a stored tensor.
/// An element type as ONNX Runtime names it in its messages.
fn ort_type_name(d: DType) -> &'static str {
    match d {
        DType::Float => "float",
        DType::Double => "double",
        DType::Int8 => "int8",
        DType::Int16 => "int16",
        DType::Int32 => "int32",
        DType::Int64 => "int64",
        DType::Uint8 => "uint8",
        DType::Uint16 => "uint16",
        DType::Uint32 => "uint32",
        DType::Uint64 => "uint64",
        DType::Float16 => "float16",
        DType::BFloat16 => "bfloat16",
        DType::Bool => "bool",
        DType::String => "string",
    }
}

/// The outputs of a run that a request asked for, in its order.
pub fn select_outputs(outputs: Vec<Tensor>, selection: &[usize]) -> Vec<Tensor> {
    let mut all: Vec<Option<Tensor>> = outputs.into_iter().map(Some).collect();
    selection
        .iter()
        .filter_map(|&i| all.get_mut(i).and_then(Option::take))
        .collect()
}

/// A sequence of maps (one per row, label → probability) as a FLOAT tensor [N, labels], the
/// columns in `labels` order; with no labels known, in the first map's key order.
fn seq_of_maps_tensor(
    name: &str,
    labels: &[String],
    v: &ort::value::DynValue,
) -> Result<Tensor, String> {
    let err = |e: ort::Error| format!("ERR model output '{name}': {e}");
    let maps = v
        .try_extract_sequence::<ort::value::DynValueTypeMarker>()
        .map_err(err)?;
    let mut rows: Vec<Vec<(String, f32)>> = Vec::with_capacity(maps.len());
    for m in &maps {
        let kv: Vec<(String, f32)> = match m.dtype() {
            ValueType::Map {
                key: TensorElementType::String,
                ..
            } => m.try_extract_key_values::<String, f32>().map_err(err)?,
            _ => m
                .try_extract_key_values::<i64, f32>()
                .map_err(err)?
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        };
        rows.push(kv);
    }
    let order: Vec<String> = if labels.is_empty() {
        rows.first()
            .map(|r| r.iter().map(|(k, _)| k.clone()).collect())
            .unwrap_or_default()
    } else {
        labels.to_vec()
    };
    let mut data: Vec<f32> = Vec::with_capacity(rows.len() * order.len());
    for row in &rows {
        for label in &order {
            data.push(
                row.iter()
                    .find(|(k, _)| k == label)
                    .map_or(0.0, |(_, v)| *v),
            );
        }
    }
    Ok(Tensor::from_raw(
        DType::Float,
        &[rows.len(), order.len()],
        bytemuck::cast_slice(&data),
    ))
}

fn output_tensor(name: &str, v: &ort::value::DynValue) -> Result<Tensor, String> {
    let ValueType::Tensor { ty, .. } = v.dtype() else {
        return Err(format!(
            "ERR model output '{name}' is not a tensor (for scikit-learn classifiers, export with zipmap=False)"
        ));
    };
    let dtype = dtype_of(*ty).ok_or_else(|| {
        format!("ERR model output '{name}' has an unsupported element type {ty:?}")
    })?;
    macro_rules! extract {
        ($t:ty) => {{
            let (shape, data) = v
                .try_extract_tensor::<$t>()
                .map_err(|e| format!("ERR {e}"))?;
            let dims: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
            Tensor::from_raw(dtype, &dims, bytemuck::cast_slice(data))
        }};
    }
    Ok(match dtype {
        DType::Float => extract!(f32),
        DType::Double => extract!(f64),
        DType::Int8 => extract!(i8),
        DType::Int16 => extract!(i16),
        DType::Int32 => extract!(i32),
        DType::Int64 => extract!(i64),
        DType::Uint8 => extract!(u8),
        DType::Uint16 => extract!(u16),
        DType::Uint32 => extract!(u32),
        DType::Uint64 => extract!(u64),
        DType::Float16 => extract!(half::f16),
        DType::BFloat16 => extract!(half::bf16),
        DType::Bool => {
            let (shape, data) = v
                .try_extract_tensor::<bool>()
                .map_err(|e| format!("ERR {e}"))?;
            let dims: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
            let bytes: Vec<u8> = data.iter().map(|&b| b as u8).collect();
            Tensor::from_raw(dtype, &dims, &bytes)
        }
        DType::String => {
            let (shape, strings) = v.try_extract_strings().map_err(|e| format!("ERR {e}"))?;
            let dims: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
            let mut blob = Vec::new();
            for s in strings {
                blob.extend_from_slice(s.as_bytes());
                blob.push(0);
            }
            Tensor::from_raw(dtype, &dims, &blob)
        }
    })
}
