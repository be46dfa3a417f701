//! Request logging (data lineage): `AI.LOG SET key STREAM stream [SAMPLE p] [MAXLEN n]
//! [PAYLOAD NONE | DIGEST | FULL]` appends sampled runs of a model or router key to an ordinary
//! Redis stream: when, which model, version, router and target, the input and output key names
//! and shapes, the payloads (none, their SHA-256, or the blobs), latency, client and user.
//! Consumer groups on the stream can feed a warehouse.
//!
//! Settings are kept per database and key in the store (snapshots and the AOF keep them); a
//! server with none set pays one atomic load per run.

use crate::server::Server;
use crate::tensor::Tensor;
use bytes::Bytes;
use rand::Rng;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Payload {
    None,
    Digest,
    Full,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LogSpec {
    pub stream: Bytes,
    pub sample: f64,
    pub maxlen: u64,
    pub payload: Payload,
}

impl LogSpec {
    /// Parses `STREAM s [SAMPLE p] [MAXLEN n] [PAYLOAD NONE|DIGEST|FULL]`.
    pub fn parse(words: &[Bytes]) -> Result<LogSpec, String> {
        let mut spec = LogSpec {
            stream: Bytes::new(),
            sample: 1.0,
            maxlen: 10_000,
            payload: Payload::None,
        };
        let mut i = 0;
        let word = |i: usize| words.get(i).ok_or_else(|| "ERR syntax error".to_string());
        while i < words.len() {
            let kw = String::from_utf8_lossy(&words[i]).to_ascii_uppercase();
            let v = word(i + 1)?;
            let text = String::from_utf8_lossy(v).into_owned();
            match kw.as_str() {
                "STREAM" => spec.stream = v.clone(),
                "SAMPLE" => {
                    spec.sample = text
                        .parse::<f64>()
                        .ok()
                        .filter(|p| (0.0..=1.0).contains(p))
                        .ok_or("ERR SAMPLE must be between 0 and 1")?
                }
                "MAXLEN" => {
                    spec.maxlen = text
                        .parse::<u64>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or("ERR MAXLEN must be a positive integer")?
                }
                "PAYLOAD" => {
                    spec.payload = match text.to_ascii_uppercase().as_str() {
                        "NONE" => Payload::None,
                        "DIGEST" => Payload::Digest,
                        "FULL" => Payload::Full,
                        _ => return Err("ERR PAYLOAD is NONE, DIGEST or FULL".into()),
                    }
                }
                _ => return Err("ERR syntax error".into()),
            }
            i += 2;
        }
        if spec.stream.is_empty() {
            return Err("ERR AI.LOG SET needs STREAM stream".into());
        }
        Ok(spec)
    }

    pub fn to_words(&self) -> Vec<Bytes> {
        let payload = match self.payload {
            Payload::None => "NONE",
            Payload::Digest => "DIGEST",
            Payload::Full => "FULL",
        };
        [
            ("STREAM", self.stream.clone()),
            (
                "SAMPLE",
                Bytes::from(crate::util::format_f64_human(self.sample)),
            ),
            ("MAXLEN", Bytes::from(self.maxlen.to_string())),
            ("PAYLOAD", Bytes::from_static(payload.as_bytes())),
        ]
        .into_iter()
        .flat_map(|(k, v)| [Bytes::from_static(k.as_bytes()), v])
        .collect()
    }
}

/// One finished run, as the log records it.
pub struct RunRecord<'a> {
    pub key: &'a [u8],
    /// (router, target) decisions, outermost first; empty for a direct run.
    pub decisions: Vec<(Bytes, Bytes)>,
    /// The model version that answered a direct run.
    pub version: Option<u64>,
    pub inputs: &'a [Bytes],
    pub outputs: &'a [Bytes],
    pub input_tensors: &'a [Arc<Tensor>],
    pub output_tensors: &'a [Tensor],
    pub latency_us: u64,
    pub ok: Result<(), &'a str>,
    pub client: String,
    pub user: String,
}

fn shapes<'t>(ts: impl Iterator<Item = &'t Tensor>) -> String {
    ts.map(|t| {
        t.shape()
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("x")
    })
    .collect::<Vec<_>>()
    .join(",")
}

/// Appends `run` to the key's log stream when the sample draws it; returns the XADD to log in
/// the AOF.
pub fn record(server: &Server, db: usize, spec: &LogSpec, run: RunRecord) -> Option<Vec<Bytes>> {
    if spec.sample < 1.0 && rand::thread_rng().gen::<f64>() >= spec.sample {
        return None;
    }
    let now = crate::util::now_ms();
    let join = |v: &[Bytes]| {
        v.iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect::<Vec<_>>()
            .join(",")
    };
    let (router, target) = match (run.decisions.first(), run.decisions.last()) {
        (Some((r, _)), Some((_, t))) => (r.to_vec(), t.to_vec()),
        _ => (Vec::new(), Vec::new()),
    };
    let model = match run.decisions.last() {
        Some((_, t)) => {
            // `key@n` names the model key and the version.
            let t = locus_engine::router::TargetRef::parse(t);
            (
                t.key.to_vec(),
                t.version.map(|n| n.to_string()).unwrap_or_default(),
            )
        }
        None => (
            run.key.to_vec(),
            run.version.map(|n| n.to_string()).unwrap_or_default(),
        ),
    };
    let mut fields: Vec<(String, Vec<u8>)> = [
        ("time", now.to_string().into_bytes()),
        ("key", run.key.to_vec()),
        ("model", model.0),
        ("version", model.1.into_bytes()),
        ("router", router),
        ("target", target),
        ("inputs", join(run.inputs).into_bytes()),
        ("outputs", join(run.outputs).into_bytes()),
        (
            "input_shapes",
            shapes(run.input_tensors.iter().map(|t| t.as_ref())).into_bytes(),
        ),
        (
            "output_shapes",
            shapes(run.output_tensors.iter()).into_bytes(),
        ),
        ("latency_us", run.latency_us.to_string().into_bytes()),
        (
            "outcome",
            match run.ok {
                Ok(()) => b"ok".to_vec(),
                Err(e) => e.as_bytes().to_vec(),
            },
        ),
        ("client", run.client.into_bytes()),
        ("user", run.user.into_bytes()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    match spec.payload {
        Payload::None => {}
        Payload::Digest => {
            for (i, t) in run.input_tensors.iter().enumerate() {
                fields.push((format!("input_{i}_sha256"), digest(t).into_bytes()));
            }
            for (i, t) in run.output_tensors.iter().enumerate() {
                fields.push((format!("output_{i}_sha256"), digest(t).into_bytes()));
            }
        }
        Payload::Full => {
            for (i, t) in run.input_tensors.iter().enumerate() {
                fields.push((
                    format!("input_{i}_dtype"),
                    t.dtype().name().as_bytes().to_vec(),
                ));
                fields.push((format!("input_{i}_blob"), t.blob().to_vec()));
            }
            for (i, t) in run.output_tensors.iter().enumerate() {
                fields.push((
                    format!("output_{i}_dtype"),
                    t.dtype().name().as_bytes().to_vec(),
                ));
                fields.push((format!("output_{i}_blob"), t.blob().to_vec()));
            }
        }
    }
    // A key of another type under the stream's name is left alone: the entry is dropped.
    {
        let shard = server.store.db(db).read(&spec.stream);
        if shard
            .get(&spec.stream, now)
            .is_some_and(|e| !matches!(e.value, crate::store::Value::Stream(_)))
        {
            return None;
        }
    }
    crate::audit::append_entry(server, db, now, spec.stream.clone(), spec.maxlen, fields)
}

fn digest(t: &Tensor) -> String {
    crate::engine::versions::sha256_hex(t.blob())
}
