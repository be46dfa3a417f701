//! The module's data types: tensors, models (with their versions) and routers.
//!
//! Each holds a `Box<Value>` of locus-server's keyspace. In RDB files, DUMP payloads and AOF
//! rewrites they travel in locus-server's own serialization (its DUMP payload, CRC included),
//! so a value saved by the module restores in locus-server and back.

use crate::ffi::{self, RString};
use crate::host::host;
use bytes::Bytes;
use locus::persist::migrate::{self, Restored};
use locus::store::{Entry, Value};
use redis_module::native_types::RedisType;
use redis_module::raw;
use std::os::raw::{c_char, c_int, c_void};

/// The encoding version of the values' serialization in RDB files: above every version RedisAI
/// 1.2 wrote (0 to 4) under the same type names, so neither reads the other's values wrongly
/// (each refuses a version it does not know). 6: the module's auxiliary data also holds request
/// logs and monitors (values are written as in 5).
pub const ENCVER: i32 = 6;

/// The command an AOF rewrite logs each value with (its serialization, as RESTORE takes it).
pub const RESTORE_COMMAND: &str = "AI._RESTORE";

/// The type's callbacks; `jobs`: the one type that also saves the scoring jobs in snapshots
/// (as auxiliary data after the keys).
const fn methods(jobs: bool) -> raw::RedisModuleTypeMethods {
    raw::RedisModuleTypeMethods {
        version: raw::REDISMODULE_TYPE_METHOD_VERSION as u64,
        rdb_load: Some(rdb_load),
        rdb_save: Some(rdb_save),
        aof_rewrite: Some(aof_rewrite),
        mem_usage: Some(mem_usage),
        digest: Some(digest),
        free: Some(free),
        aux_load: if jobs {
            Some(crate::score::aux_load)
        } else {
            None
        },
        aux_save: if jobs {
            Some(crate::score::aux_save)
        } else {
            None
        },
        aux_save2: None,
        aux_save_triggers: if jobs {
            raw::REDISMODULE_AUX_AFTER_RDB as i32
        } else {
            0
        },
        free_effort: None,
        unlink: None,
        copy: Some(copy),
        defrag: None,
        copy2: None,
        free_effort2: None,
        mem_usage2: None,
        unlink2: None,
    }
}

/// Type names are nine characters; TYPE answers them. Tensors and models have RedisAI's.
pub static TENSOR_TYPE: RedisType = RedisType::new("AI_TENSOR", ENCVER, methods(false));
pub static MODEL_TYPE: RedisType = RedisType::new("AI__MODEL", ENCVER, methods(true));
pub static ROUTER_TYPE: RedisType = RedisType::new("AI_ROUTER", ENCVER, methods(false));

fn type_of(value: &Value) -> &'static RedisType {
    match value {
        Value::Model(_) => &MODEL_TYPE,
        Value::Router(_) => &ROUTER_TYPE,
        _ => &TENSOR_TYPE,
    }
}

fn raw_type(t: &RedisType) -> *mut raw::RedisModuleType {
    *t.raw_type.borrow()
}

/// The type name of one of the module's types (TYPE's answer).
pub fn name_of(t: *mut raw::RedisModuleType) -> Option<&'static str> {
    [
        (&TENSOR_TYPE, "AI_TENSOR"),
        (&MODEL_TYPE, "AI__MODEL"),
        (&ROUTER_TYPE, "AI_ROUTER"),
    ]
    .iter()
    .find(|(ours, _)| raw_type(ours) == t)
    .map(|(_, name)| *name)
}

fn is_ours(t: *mut raw::RedisModuleType) -> bool {
    !t.is_null()
        && [&TENSOR_TYPE, &MODEL_TYPE, &ROUTER_TYPE]
            .iter()
            .any(|ours| raw_type(ours) == t)
}

/// What a key holds, as the bridge sees it.
pub enum Read {
    Absent,
    Other,
    /// A Redis stream (a request log's stream is checked to be one).
    Stream,
    Ai(Value),
}

/// Reads a key: a shallow copy of the module's value, or what kind of thing is there.
///
/// # Safety
/// `ctx` holds Redis's lock.
pub unsafe fn read(ctx: *mut raw::RedisModuleCtx, key: *mut raw::RedisModuleString) -> Read {
    let handle = raw::RedisModule_OpenKey.unwrap()(ctx, key, raw::REDISMODULE_READ as i32)
        .cast::<raw::RedisModuleKey>();
    if handle.is_null() {
        return Read::Absent;
    }
    let out = read_open(handle);
    raw::RedisModule_CloseKey.unwrap()(handle);
    out
}

/// Reads an open key (see [`read`]).
///
/// # Safety
/// `handle` is an open key and Redis's lock is held.
pub unsafe fn read_open(handle: *mut raw::RedisModuleKey) -> Read {
    let kind = raw::RedisModule_KeyType.unwrap()(handle);
    if kind == raw::REDISMODULE_KEYTYPE_EMPTY as c_int {
        Read::Absent
    } else if kind == raw::REDISMODULE_KEYTYPE_MODULE as c_int
        && is_ours(raw::RedisModule_ModuleTypeGetType.unwrap()(handle))
    {
        let v = raw::RedisModule_ModuleTypeGetValue.unwrap()(handle).cast::<Value>();
        match crate::host::share(&*v) {
            Some(v) => Read::Ai(v),
            None => Read::Other,
        }
    } else if kind == raw::REDISMODULE_KEYTYPE_STREAM as c_int {
        Read::Stream
    } else {
        Read::Other
    }
}

/// Stores an AI value under `key`, replacing what was there.
///
/// # Safety
/// `ctx` holds Redis's lock.
pub unsafe fn write(ctx: *mut raw::RedisModuleCtx, key: &[u8], value: Value) {
    let k = RString::new(ctx, key);
    let handle = ffi::open_key(ctx, &k, true);
    let t = raw_type(type_of(&value));
    let boxed = Box::into_raw(Box::new(value)).cast::<c_void>();
    raw::RedisModule_ModuleTypeSetValue.unwrap()(handle, t, boxed);
    raw::RedisModule_CloseKey.unwrap()(handle);
}

/// The value's serialization (locus-server's DUMP payload).
fn payload(value: &Value) -> Vec<u8> {
    let entry = Entry::new(crate::host::share(value).expect("an AI value"));
    migrate::dump(&Bytes::new(), &entry)
}

/// A value back from its serialization; a model's graph is loaded by the engine here.
pub fn restore(bytes: &[u8]) -> Result<Value, String> {
    match migrate::restore(bytes)? {
        Restored::Value(v) if crate::host::identity(&v).is_some() => Ok(v),
        Restored::Value(_) => Err("ERR Bad data format".into()),
        Restored::Model(loaded) => {
            let server = &host().server;
            match locus::persist::materialize(&server.store, &server.engine, loaded)? {
                Some((_, _, entry)) => Ok(entry.value),
                None => Err("ERR Bad data format".into()),
            }
        }
    }
}

unsafe extern "C" fn rdb_load(rdb: *mut raw::RedisModuleIO, encver: c_int) -> *mut c_void {
    if encver > ENCVER {
        return std::ptr::null_mut();
    }
    let mut len = 0usize;
    let p = raw::RedisModule_LoadStringBuffer.unwrap()(rdb, &mut len);
    if p.is_null() {
        return std::ptr::null_mut();
    }
    let bytes = std::slice::from_raw_parts(p.cast::<u8>(), len).to_vec();
    raw::RedisModule_Free.unwrap()(p.cast());
    match restore(&bytes) {
        Ok(v) => Box::into_raw(Box::new(v)).cast(),
        Err(e) => {
            let msg = std::ffi::CString::new(format!("Locus: cannot load a value: {e}"))
                .unwrap_or_default();
            raw::RedisModule_LogIOError.unwrap()(
                rdb,
                c"warning".as_ptr(),
                c"%s".as_ptr(),
                msg.as_ptr(),
            );
            std::ptr::null_mut()
        }
    }
}

unsafe extern "C" fn rdb_save(rdb: *mut raw::RedisModuleIO, value: *mut c_void) {
    let bytes = payload(&*value.cast::<Value>());
    raw::RedisModule_SaveStringBuffer.unwrap()(rdb, bytes.as_ptr().cast::<c_char>(), bytes.len());
}

unsafe extern "C" fn aof_rewrite(
    aof: *mut raw::RedisModuleIO,
    key: *mut raw::RedisModuleString,
    value: *mut c_void,
) {
    let bytes = payload(&*value.cast::<Value>());
    let name = std::ffi::CString::new(RESTORE_COMMAND).unwrap_or_default();
    raw::RedisModule_EmitAOF.unwrap()(
        aof,
        name.as_ptr(),
        c"sb".as_ptr(),
        key,
        bytes.as_ptr().cast::<c_char>(),
        bytes.len(),
    );
}

unsafe extern "C" fn mem_usage(value: *const c_void) -> usize {
    (*value.cast::<Value>()).memory_usage()
}

unsafe extern "C" fn digest(md: *mut raw::RedisModuleDigest, value: *mut c_void) {
    let bytes = payload(&*value.cast::<Value>());
    raw::RedisModule_DigestAddStringBuffer.unwrap()(
        md,
        bytes.as_ptr().cast_mut().cast(),
        bytes.len(),
    );
    raw::RedisModule_DigestEndSequence.unwrap()(md);
}

unsafe extern "C" fn free(value: *mut c_void) {
    drop(Box::from_raw(value.cast::<Value>()));
}

/// COPY: tensors and models are immutable (changes replace them), so the copy shares them; a
/// router keeps statistics and weights in place, so the copy gets its own.
unsafe extern "C" fn copy(
    _from: *mut raw::RedisModuleString,
    _to: *mut raw::RedisModuleString,
    value: *const c_void,
) -> *mut c_void {
    let v = &*value.cast::<Value>();
    let copied = match v {
        Value::Router(_) => match restore(&payload(v)) {
            Ok(c) => c,
            Err(_) => return std::ptr::null_mut(),
        },
        other => crate::host::share(other).expect("an AI value"),
    };
    Box::into_raw(Box::new(copied)).cast()
}
