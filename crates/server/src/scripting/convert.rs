//! Redis's conversions between replies and Lua values (`luaRedisReplyToLuaType` and
//! `luaReplyToRedisReply` in script_lua.c), for both protocol versions a script can select with
//! `redis.setresp`.

use crate::server::reply::Reply;
use bytes::Bytes;
use mlua::{Lua, Table, Value};

/// A command's reply as the script sees it. Errors become `{err = text}` tables (raised by
/// `redis.call`, returned by `redis.pcall`), statuses `{ok = text}`. Under RESP2 the reply is
/// first lowered as a RESP2 client would receive it.
pub fn reply_to_lua(lua: &Lua, reply: Reply, resp3: bool) -> mlua::Result<Value> {
    Ok(match reply {
        Reply::Status(s) => single(lua, "ok", Value::String(lua.create_string(s)?))?,
        Reply::StatusOwned(s) => single(lua, "ok", Value::String(lua.create_string(&s)?))?,
        Reply::Error(e) => error_table(lua, &e)?,
        Reply::Int(i) => Value::Number(i as f64),
        Reply::Bulk(b) | Reply::Verbatim(b) => Value::String(lua.create_string(&b)?),
        Reply::Null | Reply::NullArray => {
            if resp3 {
                Value::Nil
            } else {
                Value::Boolean(false)
            }
        }
        Reply::Array(items) | Reply::Push(items) | Reply::Many(items) => array(lua, items, resp3)?,
        Reply::Set(items) => {
            if resp3 {
                let set = lua.create_table()?;
                for m in items {
                    set.raw_set(reply_to_lua(lua, m, resp3)?, true)?;
                }
                single(lua, "set", Value::Table(set))?
            } else {
                array(lua, items, resp3)?
            }
        }
        Reply::Map(pairs) => {
            if resp3 {
                map(lua, pairs, resp3)?
            } else {
                array(
                    lua,
                    pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
                    resp3,
                )?
            }
        }
        Reply::Pairs(pairs) => {
            if resp3 {
                map(lua, pairs, resp3)?
            } else {
                array(
                    lua,
                    pairs
                        .into_iter()
                        .map(|(k, v)| Reply::Array(vec![k, v]))
                        .collect(),
                    resp3,
                )?
            }
        }
        Reply::Double(d) => {
            if resp3 {
                single(lua, "double", Value::Number(d))?
            } else {
                Value::String(lua.create_string(crate::util::format_f64_g17(d))?)
            }
        }
        Reply::HumanDouble(t) => {
            if resp3 {
                single(
                    lua,
                    "double",
                    Value::Number(crate::util::parse_f64(&t).unwrap_or(0.0)),
                )?
            } else {
                Value::String(lua.create_string(&t[..])?)
            }
        }
        Reply::Bool(b) => {
            if resp3 {
                Value::Boolean(b)
            } else {
                Value::Number(b as i64 as f64)
            }
        }
    })
}

/// `{err = text}`: how errors travel inside Lua.
pub fn error_table(lua: &Lua, text: &str) -> mlua::Result<Value> {
    single(lua, "err", Value::String(lua.create_string(text)?))
}

fn single(lua: &Lua, field: &str, v: Value) -> mlua::Result<Value> {
    let t = lua.create_table_with_capacity(0, 1)?;
    t.raw_set(field, v)?;
    Ok(Value::Table(t))
}

fn array(lua: &Lua, items: Vec<Reply>, resp3: bool) -> mlua::Result<Value> {
    let t = lua.create_table_with_capacity(items.len(), 0)?;
    for (i, item) in items.into_iter().enumerate() {
        t.raw_set(i + 1, reply_to_lua(lua, item, resp3)?)?;
    }
    Ok(Value::Table(t))
}

fn map(lua: &Lua, pairs: Vec<(Reply, Reply)>, resp3: bool) -> mlua::Result<Value> {
    let m = lua.create_table()?;
    for (k, v) in pairs {
        m.raw_set(reply_to_lua(lua, k, resp3)?, reply_to_lua(lua, v, resp3)?)?;
    }
    single(lua, "map", Value::Table(m))
}

/// A script's return value as the reply its caller gets. `resp3` is the protocol the script
/// selected (booleans become RESP3 booleans only then, as in Redis).
pub fn lua_to_reply(v: &Value, resp3: bool) -> Reply {
    lua_to_reply_depth(v, resp3, 0)
}

fn lua_to_reply_depth(v: &Value, resp3: bool, depth: usize) -> Reply {
    if depth > 1000 {
        return Reply::err("ERR reached lua stack limit");
    }
    match v {
        Value::String(s) => Reply::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Boolean(b) => {
            if resp3 {
                Reply::Bool(*b)
            } else if *b {
                Reply::Int(1)
            } else {
                Reply::Null
            }
        }
        Value::Integer(i) => Reply::Int(*i),
        Value::Number(n) => Reply::Int(*n as i64),
        Value::Table(t) => table_to_reply(t, resp3, depth),
        _ => Reply::Null,
    }
}

fn table_to_reply(t: &Table, resp3: bool, depth: usize) -> Reply {
    if let Ok(Value::String(e)) = t.raw_get::<Value>("err") {
        // Written as given: Redis adds no code to a returned error table.
        return Reply::Error(e.to_string_lossy().replace(['\r', '\n'], " "));
    }
    if let Ok(Value::String(s)) = t.raw_get::<Value>("ok") {
        return Reply::StatusOwned(s.to_string_lossy().replace(['\r', '\n'], " "));
    }
    if let Ok(Value::Number(d)) = t.raw_get::<Value>("double") {
        return Reply::Double(d);
    }
    if let Ok(Value::Integer(d)) = t.raw_get::<Value>("double") {
        return Reply::Double(d as f64);
    }
    if let Ok(Value::Table(m)) = t.raw_get::<Value>("map") {
        let mut pairs = Vec::new();
        for (k, v) in m.pairs::<Value, Value>().flatten() {
            pairs.push((
                lua_to_reply_depth(&k, resp3, depth + 1),
                lua_to_reply_depth(&v, resp3, depth + 1),
            ));
        }
        return Reply::Map(pairs);
    }
    if let Ok(Value::Table(s)) = t.raw_get::<Value>("set") {
        let members = s
            .pairs::<Value, Value>()
            .flatten()
            .map(|(k, _)| lua_to_reply_depth(&k, resp3, depth + 1))
            .collect();
        return Reply::Set(members);
    }
    let mut items = Vec::new();
    for i in 1.. {
        match t.raw_get::<Value>(i) {
            Ok(Value::Nil) | Err(_) => break,
            Ok(v) => items.push(lua_to_reply_depth(&v, resp3, depth + 1)),
        }
    }
    Reply::Array(items)
}
