//! locus-server's replies through Redis's module reply API (which turns RESP3 maps, sets,
//! doubles and booleans into their RESP2 forms for RESP2 clients, as Redis's own commands do).

use locus::server::reply::Reply;
use redis_module::raw;
use std::ffi::CString;

/// Whether the client speaks RESP3 (where a few replies differ in shape, not only in type).
unsafe fn resp3(ctx: *mut raw::RedisModuleCtx) -> bool {
    crate::ffi::context_flags(ctx) & raw::REDISMODULE_CTX_FLAGS_RESP3 != 0
}

fn c_text(s: &str) -> CString {
    CString::new(s.replace('\0', " ")).unwrap_or_default()
}

/// Sends `reply` to the context's client.
///
/// # Safety
/// `ctx` is a live command or blocked-client reply context.
pub unsafe fn send(ctx: *mut raw::RedisModuleCtx, reply: &Reply) {
    match reply {
        Reply::Status(s) => {
            raw::RedisModule_ReplyWithSimpleString.unwrap()(ctx, c_text(s).as_ptr());
        }
        Reply::StatusOwned(s) => {
            raw::RedisModule_ReplyWithSimpleString.unwrap()(ctx, c_text(s).as_ptr());
        }
        Reply::Error(e) => {
            raw::RedisModule_ReplyWithError.unwrap()(ctx, c_text(e).as_ptr());
        }
        Reply::Int(i) => {
            raw::RedisModule_ReplyWithLongLong.unwrap()(ctx, *i);
        }
        Reply::Bulk(b) => {
            raw::RedisModule_ReplyWithStringBuffer.unwrap()(ctx, b.as_ptr().cast(), b.len());
        }
        Reply::Verbatim(b) => {
            raw::RedisModule_ReplyWithVerbatimString.unwrap()(ctx, b.as_ptr().cast(), b.len());
        }
        Reply::Null => {
            raw::RedisModule_ReplyWithNull.unwrap()(ctx);
        }
        Reply::NullArray => {
            raw::RedisModule_ReplyWithNullArray.unwrap()(ctx);
        }
        Reply::Array(items) | Reply::Push(items) | Reply::Many(items) => {
            raw::RedisModule_ReplyWithArray.unwrap()(ctx, items.len() as _);
            for r in items {
                send(ctx, r);
            }
        }
        Reply::Set(items) => {
            raw::RedisModule_ReplyWithSet.unwrap()(ctx, items.len() as _);
            for r in items {
                send(ctx, r);
            }
        }
        Reply::Map(pairs) => {
            raw::RedisModule_ReplyWithMap.unwrap()(ctx, pairs.len() as _);
            for (k, v) in pairs {
                send(ctx, k);
                send(ctx, v);
            }
        }
        Reply::Pairs(pairs) => {
            if resp3(ctx) {
                raw::RedisModule_ReplyWithMap.unwrap()(ctx, pairs.len() as _);
                for (k, v) in pairs {
                    send(ctx, k);
                    send(ctx, v);
                }
            } else {
                raw::RedisModule_ReplyWithArray.unwrap()(ctx, pairs.len() as _);
                for (k, v) in pairs {
                    raw::RedisModule_ReplyWithArray.unwrap()(ctx, 2);
                    send(ctx, k);
                    send(ctx, v);
                }
            }
        }
        Reply::Double(d) => {
            raw::RedisModule_ReplyWithDouble.unwrap()(ctx, *d);
        }
        Reply::HumanDouble(text) => {
            if resp3(ctx) {
                let d = std::str::from_utf8(text)
                    .ok()
                    .and_then(|t| t.parse::<f64>().ok())
                    .unwrap_or(f64::NAN);
                raw::RedisModule_ReplyWithDouble.unwrap()(ctx, d);
            } else {
                raw::RedisModule_ReplyWithStringBuffer.unwrap()(
                    ctx,
                    text.as_ptr().cast(),
                    text.len(),
                );
            }
        }
        Reply::Bool(b) => {
            raw::RedisModule_ReplyWithBool.unwrap()(ctx, *b as _);
        }
    }
}
