//! The KServe V2 gRPC face (`inference.GRPCInferenceService`, on `grpc-port`): the same
//! requests as the REST API, with tensors as typed `contents` or as `raw_input_contents`, and
//! Triton's ModelConfig and ModelStatistics calls. Failures map to gRPC status codes.

use crate::inference::{self, codec, meta, Call, Described, Failure, Named};
use crate::server::Server;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};

#[allow(clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("inference");
}

use proto::grpc_inference_service_server::{GrpcInferenceService, GrpcInferenceServiceServer};
use proto::*;

/// The service over a server, ready for tonic's router.
pub fn service(server: Arc<Server>) -> GrpcInferenceServiceServer<Service> {
    let max = server.config.get_i64("http-max-body").max(0) as usize;
    GrpcInferenceServiceServer::new(Service { server })
        .max_decoding_message_size(max)
        .max_encoding_message_size(usize::MAX)
}

pub struct Service {
    server: Arc<Server>,
}

fn status(f: Failure) -> Status {
    match f {
        Failure::NotFound(m) => Status::not_found(m),
        Failure::Invalid(m) => Status::invalid_argument(m),
        Failure::Unavailable(m) => Status::unavailable(m),
        Failure::Failed(m) => Status::internal(m),
        Failure::Forbidden(m) => Status::permission_denied(m),
    }
}

fn parse_version(v: &str) -> Result<Option<u64>, Status> {
    if v.is_empty() {
        return Ok(None);
    }
    v.parse::<u64>().map(Some).map_err(|_| {
        Status::invalid_argument(format!("invalid model version '{v}': versions are numbers"))
    })
}

impl Service {
    fn described(&self, name: &str, version: &str) -> Result<Described, Status> {
        inference::describe(&self.server, name, parse_version(version)?).map_err(status)
    }

    /// The ACL user the call's `authorization` metadata names (HTTP Basic or a Bearer
    /// token, as the REST API takes them).
    fn user<T>(&self, req: &Request<T>) -> Result<Arc<crate::acl::User>, Status> {
        // Protected mode, as on the other faces (a call without a known peer is local: the
        // listeners always record one).
        if self
            .server
            .protected_refuses(req.remote_addr().map(|a| a.ip()))
        {
            return Err(Status::permission_denied(crate::server::PROTECTED_HTTP));
        }
        let auth = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        crate::http::request_user(&self.server, auth).ok_or_else(|| {
            Status::unauthenticated("invalid username-password pair or user is disabled")
        })
    }

    /// The user, allowed to read (or, with `infer`, to run) the model or router `name`.
    fn allowed<T>(
        &self,
        req: &Request<T>,
        name: &str,
        infer: bool,
    ) -> Result<Arc<crate::acl::User>, Status> {
        let user = self.user(req)?;
        inference::authorize(&self.server, Some(&user), name, infer).map_err(status)?;
        Ok(user)
    }
}

fn tensor_metadata(t: meta::TensorMeta) -> model_metadata_response::TensorMetadata {
    model_metadata_response::TensorMetadata {
        name: t.name,
        datatype: t.datatype.to_string(),
        shape: t.shape,
    }
}

/// Raw bytes of a typed `contents` message, in the input's datatype.
fn contents_raw(name: &str, datatype: &str, c: &InferTensorContents) -> Result<Bytes, String> {
    let mut out = Vec::new();
    match datatype {
        "BOOL" => out.extend(c.bool_contents.iter().map(|&b| b as u8)),
        "INT8" => out.extend(c.int_contents.iter().flat_map(|&v| (v as i8).to_le_bytes())),
        "INT16" => out.extend(
            c.int_contents
                .iter()
                .flat_map(|&v| (v as i16).to_le_bytes()),
        ),
        "INT32" => out.extend(c.int_contents.iter().flat_map(|v| v.to_le_bytes())),
        "INT64" => out.extend(c.int64_contents.iter().flat_map(|v| v.to_le_bytes())),
        "UINT8" => out.extend(c.uint_contents.iter().map(|&v| v as u8)),
        "UINT16" => out.extend(
            c.uint_contents
                .iter()
                .flat_map(|&v| (v as u16).to_le_bytes()),
        ),
        "UINT32" => out.extend(c.uint_contents.iter().flat_map(|v| v.to_le_bytes())),
        "UINT64" => out.extend(c.uint64_contents.iter().flat_map(|v| v.to_le_bytes())),
        "FP32" => out.extend(c.fp32_contents.iter().flat_map(|v| v.to_le_bytes())),
        "FP64" => out.extend(c.fp64_contents.iter().flat_map(|v| v.to_le_bytes())),
        "BYTES" => {
            for b in &c.bytes_contents {
                out.extend((b.len() as u32).to_le_bytes());
                out.extend_from_slice(b);
            }
        }
        other => {
            return Err(format!(
                "input '{name}': {other} data must be sent in raw_input_contents"
            ))
        }
    }
    Ok(Bytes::from(out))
}

#[tonic::async_trait]
impl GrpcInferenceService for Service {
    async fn server_live(
        &self,
        _: Request<ServerLiveRequest>,
    ) -> Result<Response<ServerLiveResponse>, Status> {
        Ok(Response::new(ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _: Request<ServerReadyRequest>,
    ) -> Result<Response<ServerReadyResponse>, Status> {
        let loading = self
            .server
            .loading
            .load(std::sync::atomic::Ordering::Relaxed);
        Ok(Response::new(ServerReadyResponse { ready: !loading }))
    }

    async fn model_ready(
        &self,
        req: Request<ModelReadyRequest>,
    ) -> Result<Response<ModelReadyResponse>, Status> {
        self.allowed(&req, &req.get_ref().name, false)?;
        let r = req.into_inner();
        let ready = self.described(&r.name, &r.version).is_ok();
        Ok(Response::new(ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        req: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        self.user(&req)?;
        Ok(Response::new(ServerMetadataResponse {
            name: "locus".into(),
            version: crate::LOCUS_VERSION.into(),
            extensions: crate::http::v2::EXTENSIONS
                .iter()
                .map(|e| e.to_string())
                .collect(),
        }))
    }

    async fn model_metadata(
        &self,
        req: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        self.allowed(&req, &req.get_ref().name, false)?;
        let r = req.into_inner();
        let d = self.described(&r.name, &r.version)?;
        Ok(Response::new(ModelMetadataResponse {
            versions: d.versions.iter().map(|v| v.to_string()).collect(),
            platform: meta::platform(&d).into(),
            inputs: meta::inputs(&d.signature)
                .into_iter()
                .map(tensor_metadata)
                .collect(),
            outputs: meta::outputs(&d.signature)
                .into_iter()
                .map(tensor_metadata)
                .collect(),
            name: r.name,
        }))
    }

    async fn model_infer(
        &self,
        req: Request<ModelInferRequest>,
    ) -> Result<Response<ModelInferResponse>, Status> {
        let user = self.allowed(&req, &req.get_ref().model_name, true)?;
        let r = req.into_inner();
        let version = parse_version(&r.model_version)?;
        let max_bytes = self
            .server
            .config
            .live
            .tensor_max_bytes
            .load(std::sync::atomic::Ordering::Relaxed);
        if !r.raw_input_contents.is_empty() && r.raw_input_contents.len() != r.inputs.len() {
            return Err(Status::invalid_argument(format!(
                "raw_input_contents has {} entries for {} inputs",
                r.raw_input_contents.len(),
                r.inputs.len()
            )));
        }
        let mut raw = r.raw_input_contents.into_iter();
        let mut inputs = Vec::with_capacity(r.inputs.len());
        for i in r.inputs {
            let dtype = inference::from_v2_type(&i.datatype).ok_or_else(|| {
                Status::invalid_argument(format!(
                    "input '{}' has an unknown datatype '{}'",
                    i.name, i.datatype
                ))
            })?;
            let shape = codec::shape_of(&i.name, &i.shape).map_err(Status::invalid_argument)?;
            let data = match (raw.next(), &i.contents) {
                (Some(bytes), _) => Bytes::from(bytes),
                (None, Some(c)) => {
                    contents_raw(&i.name, &i.datatype, c).map_err(Status::invalid_argument)?
                }
                (None, None) => {
                    return Err(Status::invalid_argument(format!(
                        "input '{}' has no data",
                        i.name
                    )))
                }
            };
            let tensor = codec::from_raw(&i.name, dtype, &shape, data, max_bytes)
                .map_err(Status::invalid_argument)?;
            inputs.push(Named {
                name: i.name,
                tensor,
            });
        }
        let timeout = match r
            .parameters
            .get("timeout")
            .and_then(|p| p.parameter_choice.as_ref())
        {
            Some(infer_parameter::ParameterChoice::Int64Param(us)) if *us > 0 => {
                Some(Duration::from_micros(*us as u64))
            }
            Some(infer_parameter::ParameterChoice::Uint64Param(us)) if *us > 0 => {
                Some(Duration::from_micros(*us))
            }
            _ => None,
        };
        let call = Call {
            model: r.model_name.clone(),
            version,
            id: r.id.clone(),
            inputs,
            outputs: r.outputs.into_iter().map(|o| o.name).collect(),
            timeout,
            user: Some(user),
        };
        let answer = inference::infer(&self.server, call).await.map_err(status)?;
        let mut outputs = Vec::with_capacity(answer.outputs.len());
        let mut raw_outputs = Vec::with_capacity(answer.outputs.len());
        for o in answer.outputs {
            outputs.push(model_infer_response::InferOutputTensor {
                datatype: inference::v2_type(o.tensor.dtype()).into(),
                shape: o.tensor.shape().iter().map(|&d| d as i64).collect(),
                parameters: Default::default(),
                contents: None,
                name: o.name,
            });
            raw_outputs.push(codec::to_raw(&o.tensor).to_vec());
        }
        Ok(Response::new(ModelInferResponse {
            model_name: r.model_name,
            model_version: answer.version.map(|v| v.to_string()).unwrap_or_default(),
            id: r.id,
            parameters: Default::default(),
            outputs,
            raw_output_contents: raw_outputs,
        }))
    }

    async fn model_config(
        &self,
        req: Request<ModelConfigRequest>,
    ) -> Result<Response<ModelConfigResponse>, Status> {
        self.allowed(&req, &req.get_ref().name, false)?;
        let r = req.into_inner();
        let d = self.described(&r.name, &r.version)?;
        let c = meta::config(&self.server, &d.signature);
        let config = ModelConfig {
            platform: meta::platform(&d).into(),
            backend: "onnxruntime".into(),
            max_batch_size: c.max_batch_size as i32,
            input: c
                .inputs
                .into_iter()
                .map(|t| ModelInput {
                    data_type: meta::triton_type_number(t.datatype),
                    name: t.name,
                    dims: t.shape,
                })
                .collect(),
            output: c
                .outputs
                .into_iter()
                .map(|t| ModelOutput {
                    data_type: meta::triton_type_number(t.datatype),
                    name: t.name,
                    dims: t.shape,
                })
                .collect(),
            instance_group: vec![ModelInstanceGroup {
                name: r.name.clone(),
                count: c.instances as i32,
                gpus: c.gpu.map(|g| vec![g as i32]).unwrap_or_default(),
                kind: if c.gpu.is_some() {
                    model_instance_group::Kind::Gpu as i32
                } else {
                    model_instance_group::Kind::Cpu as i32
                },
            }],
            dynamic_batching: (c.max_batch_size > 0).then(|| ModelDynamicBatching {
                preferred_batch_size: vec![c.preferred_batch as i32],
                max_queue_delay_microseconds: c.max_queue_delay_us,
            }),
            name: r.name,
        };
        Ok(Response::new(ModelConfigResponse {
            config: Some(config),
        }))
    }

    async fn model_statistics(
        &self,
        req: Request<ModelStatisticsRequest>,
    ) -> Result<Response<ModelStatisticsResponse>, Status> {
        let user = self.user(&req)?;
        let r = req.into_inner();
        let names: Vec<String> = if r.name.is_empty() {
            inference::model_keys(&self.server)
                .into_iter()
                .map(|(k, _)| String::from_utf8_lossy(&k).into_owned())
                .collect()
        } else {
            vec![r.name.clone()]
        };
        let mut model_stats = Vec::new();
        for name in names {
            // Only the models the user may read are listed; naming another is refused.
            if let Err(f) = inference::authorize(&self.server, Some(&user), &name, false) {
                if r.name.is_empty() {
                    continue;
                }
                return Err(status(f));
            }
            let d = match self.described(&name, &r.version) {
                Ok(d) => d,
                Err(e) if !r.name.is_empty() => return Err(e),
                Err(_) => continue,
            };
            let s = meta::stats(&d.signature);
            let dur = |(count, ns): (u64, u64)| Some(StatisticDuration { count, ns });
            model_stats.push(ModelStatistics {
                version: meta::version_text(&d),
                name,
                last_inference: 0,
                inference_count: s.inference_count,
                execution_count: s.execution_count,
                inference_stats: Some(InferStatistics {
                    success: dur(s.success),
                    fail: dur(s.fail),
                    queue: dur(s.queue),
                    compute_input: dur(s.compute_input),
                    compute_infer: dur(s.compute_infer),
                    compute_output: dur(s.compute_output),
                }),
                batch_stats: Vec::new(),
            });
        }
        Ok(Response::new(ModelStatisticsResponse { model_stats }))
    }
}
