//! Small safe-ish helpers over Redis's module API.

use redis_module::raw;
use std::os::raw::c_void;

/// A module string made from bytes, freed when dropped.
pub struct RString {
    ctx: *mut raw::RedisModuleCtx,
    pub ptr: *mut raw::RedisModuleString,
}

impl RString {
    /// # Safety
    /// `ctx` is a live module context (or null, for strings outside any context).
    pub unsafe fn new(ctx: *mut raw::RedisModuleCtx, bytes: &[u8]) -> RString {
        let ptr = raw::RedisModule_CreateString.unwrap()(ctx, bytes.as_ptr().cast(), bytes.len());
        RString { ctx, ptr }
    }
}

impl Drop for RString {
    fn drop(&mut self) {
        unsafe { raw::RedisModule_FreeString.unwrap()(self.ctx, self.ptr) }
    }
}

/// The bytes of a module string (valid while the string lives).
///
/// # Safety
/// `s` is a live module string.
pub unsafe fn bytes_of<'a>(s: *const raw::RedisModuleString) -> &'a [u8] {
    let mut len = 0usize;
    let p = raw::RedisModule_StringPtrLen.unwrap()(s, &mut len);
    if p.is_null() || len == 0 {
        return &[];
    }
    std::slice::from_raw_parts(p.cast::<u8>(), len)
}

/// Opens a key for reading, or for reading and writing.
///
/// # Safety
/// `ctx` holds Redis's lock; the handle is closed by the caller.
pub unsafe fn open_key(
    ctx: *mut raw::RedisModuleCtx,
    key: &RString,
    write: bool,
) -> *mut raw::RedisModuleKey {
    let mode = if write {
        raw::REDISMODULE_READ | raw::REDISMODULE_WRITE
    } else {
        raw::REDISMODULE_READ
    };
    raw::RedisModule_OpenKey.unwrap()(ctx, key.ptr, mode as i32).cast::<raw::RedisModuleKey>()
}

/// The context's flags (`REDISMODULE_CTX_FLAGS_*`).
///
/// # Safety
/// `ctx` is a live module context.
pub unsafe fn context_flags(ctx: *mut raw::RedisModuleCtx) -> u32 {
    raw::RedisModule_GetContextFlags.unwrap()(ctx) as u32
}

/// A pointer that crosses to the runtime's threads (Redis's blocked-client handle, which the
/// module API lets any thread unblock).
pub struct SendPtr(pub *mut c_void);
unsafe impl Send for SendPtr {}

/// Gives the embedded client the Redis client's name and ACL user, which model versions and
/// audit records name (Redis has already checked the user's rights).
///
/// # Safety
/// `ctx` is a live command context.
pub unsafe fn identify(ctx: *mut raw::RedisModuleCtx, client: &mut locus::server::client::Client) {
    let id = raw::RedisModule_GetClientId.unwrap()(ctx);
    if id == 0 {
        // Redis itself (an AOF load, a replica applying its master's stream).
        client.info.name.lock().clear();
        client.set_user(locus::acl::internal_user());
        return;
    }
    let taken = |s: *mut raw::RedisModuleString| {
        if s.is_null() {
            return None;
        }
        let b = bytes::Bytes::copy_from_slice(bytes_of(s));
        raw::RedisModule_FreeString.unwrap()(ctx, s);
        Some(b)
    };
    let name = taken(raw::RedisModule_GetClientNameById.unwrap()(ctx, id));
    *client.info.name.lock() = name.unwrap_or_default();
    let user = taken(raw::RedisModule_GetClientUserNameById.unwrap()(ctx, id));
    match user {
        Some(u) if u != client.user.name => client.set_user(locus::acl::trusted_user(u)),
        Some(_) => {}
        None => client.set_user(locus::acl::internal_user()),
    }
}

/// The value of a hash field (a string the caller frees), or null when the hash lacks it.
///
/// # Safety
/// `handle` is an open hash key and `field` a live module string; Redis's lock is held.
pub unsafe fn hash_get(
    handle: *mut raw::RedisModuleKey,
    field: *mut raw::RedisModuleString,
) -> *mut raw::RedisModuleString {
    let mut value: *mut raw::RedisModuleString = std::ptr::null_mut();
    raw::RedisModule_HashGet.unwrap()(
        handle,
        raw::REDISMODULE_HASH_NONE as std::os::raw::c_int,
        field,
        &mut value as *mut *mut raw::RedisModuleString,
        std::ptr::null_mut::<c_void>(),
    );
    value
}
