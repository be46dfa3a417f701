//! The libraries Redis bundles into its Lua that stock Lua 5.1 lacks: LuaBitOp's `bit`,
//! `cjson` and `cmsgpack`, with their behaviour where scripts can see it.

use mlua::{Lua, MultiValue, Table, Value};
use parking_lot::Mutex;
use std::sync::Arc;

/// LuaBitOp's `bit` library, which Redis bundles: 32-bit operations on numbers.
pub fn bit_library(lua: &Lua) -> mlua::Result<Table> {
    fn tobit(v: f64) -> i32 {
        // LuaBitOp normalises through a double to a signed 32-bit value (mod 2^32).
        (v.rem_euclid(4294967296.0) as u64 as u32) as i32
    }
    let t = lua.create_table()?;
    t.raw_set("tobit", lua.create_function(|_, v: f64| Ok(tobit(v)))?)?;
    t.raw_set("bnot", lua.create_function(|_, v: f64| Ok(!tobit(v)))?)?;
    type Fold = fn(i32, i32) -> i32;
    for (name, f) in [
        ("band", (|a, b| a & b) as Fold),
        ("bor", |a, b| a | b),
        ("bxor", |a, b| a ^ b),
    ] {
        t.raw_set(
            name,
            lua.create_function(move |_, args: mlua::Variadic<f64>| {
                let mut it = args.iter();
                let first = it.next().ok_or_else(|| {
                    mlua::Error::runtime("bad argument #1 (number expected, got no value)")
                })?;
                Ok(it.fold(tobit(*first), |acc, v| f(acc, tobit(*v))))
            })?,
        )?;
    }
    type Shift = fn(i32, u32) -> i32;
    for (name, f) in [
        (
            "lshift",
            (|a: i32, n: u32| ((a as u32) << n) as i32) as Shift,
        ),
        ("rshift", |a, n| ((a as u32) >> n) as i32),
        ("arshift", |a, n| a >> n),
        ("rol", |a, n| (a as u32).rotate_left(n) as i32),
        ("ror", |a, n| (a as u32).rotate_right(n) as i32),
    ] {
        t.raw_set(
            name,
            lua.create_function(move |_, (a, n): (f64, f64)| {
                Ok(f(tobit(a), tobit(n) as u32 & 31))
            })?,
        )?;
    }
    t.raw_set(
        "bswap",
        lua.create_function(|_, v: f64| Ok(tobit(v).swap_bytes()))?,
    )?;
    t.raw_set(
        "tohex",
        lua.create_function(|_, (v, n): (f64, Option<f64>)| {
            let mut n = n.map_or(8, tobit);
            let upper = n < 0;
            if upper {
                n = -n;
            }
            let n = n.clamp(1, 8) as usize;
            let x = tobit(v) as u32;
            let s = if upper {
                format!("{x:08X}")
            } else {
                format!("{x:08x}")
            };
            Ok(s[8 - n..].to_string())
        })?,
    )?;
    Ok(t)
}

/// cjson's settings that scripts may change (`cjson.encode_max_depth(n)` …).
struct JsonConfig {
    encode_max_depth: usize,
    decode_max_depth: usize,
    encode_invalid_numbers: bool,
}

/// Redis's `cjson`: `encode` and `decode` between Lua values and JSON, and the setting
/// functions scripts call (`encode_max_depth`, `decode_max_depth`, `encode_invalid_numbers`,
/// `encode_keep_buffer`, …).
pub fn cjson_library(lua: &Lua) -> mlua::Result<Table> {
    let cfg = Arc::new(Mutex::new(JsonConfig {
        encode_max_depth: 1000,
        decode_max_depth: 1000,
        encode_invalid_numbers: false,
    }));
    let t = lua.create_table()?;
    let c = cfg.clone();
    t.raw_set(
        "encode",
        lua.create_function(move |_, v: Value| {
            let (depth, invalid) = {
                let c = c.lock();
                (c.encode_max_depth, c.encode_invalid_numbers)
            };
            let mut out = String::new();
            encode_json(&v, &mut out, 1, depth, invalid).map_err(mlua::Error::runtime)?;
            Ok(out)
        })?,
    )?;
    let c = cfg.clone();
    t.raw_set(
        "decode",
        lua.create_function(move |lua, s: mlua::LuaString| {
            let parsed: serde_json::Value = serde_json::from_slice(&s.as_bytes()).map_err(|e| {
                mlua::Error::runtime(format!("Expected value but found invalid token: {e}"))
            })?;
            let max = c.lock().decode_max_depth;
            if json_depth(&parsed) > max {
                return Err(mlua::Error::runtime(format!(
                    "Found too many nested data structures ({}) at character 1",
                    max + 1
                )));
            }
            json_to_lua(lua, &parsed)
        })?,
    )?;
    let c = cfg.clone();
    t.raw_set(
        "encode_max_depth",
        lua.create_function(move |_, n: Option<f64>| {
            let mut c = c.lock();
            if let Some(n) = n {
                c.encode_max_depth = n.max(1.0) as usize;
            }
            Ok(c.encode_max_depth)
        })?,
    )?;
    let c = cfg.clone();
    t.raw_set(
        "decode_max_depth",
        lua.create_function(move |_, n: Option<f64>| {
            let mut c = c.lock();
            if let Some(n) = n {
                c.decode_max_depth = n.max(1.0) as usize;
            }
            Ok(c.decode_max_depth)
        })?,
    )?;
    let c = cfg;
    t.raw_set(
        "encode_invalid_numbers",
        lua.create_function(move |_, v: Value| {
            let mut c = c.lock();
            if let Value::Boolean(b) = v {
                c.encode_invalid_numbers = b;
            }
            Ok(c.encode_invalid_numbers)
        })?,
    )?;
    // Settings that change nothing here (buffer reuse, sparse arrays, number precision) are
    // accepted, as scripts written for Redis call them.
    for name in [
        "encode_keep_buffer",
        "encode_sparse_array",
        "decode_invalid_numbers",
        "encode_number_precision",
    ] {
        t.raw_set(name, lua.create_function(|_, v: MultiValue| Ok(v))?)?;
    }
    t.raw_set(
        "null",
        Value::LightUserData(mlua::LightUserData(std::ptr::null_mut())),
    )?;
    Ok(t)
}

fn json_depth(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(a) => 1 + a.iter().map(json_depth).max().unwrap_or(0),
        serde_json::Value::Object(o) => 1 + o.values().map(json_depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn encode_json(
    v: &Value,
    out: &mut String,
    depth: usize,
    max: usize,
    invalid_ok: bool,
) -> Result<(), String> {
    match v {
        Value::Nil => out.push_str("null"),
        Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Integer(i) => out.push_str(&i.to_string()),
        Value::Number(n) => {
            if !n.is_finite() {
                if !invalid_ok {
                    return Err("Cannot serialise number: must not be NaN or Inf".into());
                }
                out.push_str(if n.is_nan() {
                    "nan"
                } else if *n > 0.0 {
                    "inf"
                } else {
                    "-inf"
                });
                return Ok(());
            }
            if n.fract() == 0.0 && n.abs() < 1e15 {
                out.push_str(&(*n as i64).to_string());
            } else {
                out.push_str(&format_g14(*n));
            }
        }
        Value::String(s) => {
            out.push_str(&serde_json::to_string(&s.to_string_lossy()).map_err(|e| e.to_string())?)
        }
        Value::Table(t) => {
            if depth > max {
                return Err(format!("Cannot serialise, excessive nesting ({depth})"));
            }
            let len = t.raw_len();
            let pairs: Vec<(Value, Value)> = t.pairs::<Value, Value>().flatten().collect();
            let is_array = pairs.len() == len
                && pairs
                    .iter()
                    .all(|(k, _)| matches!(k, Value::Integer(_) | Value::Number(_)));
            if is_array && len > 0 {
                out.push('[');
                for i in 1..=len {
                    if i > 1 {
                        out.push(',');
                    }
                    encode_json(
                        &t.raw_get::<Value>(i).map_err(|e| e.to_string())?,
                        out,
                        depth + 1,
                        max,
                        invalid_ok,
                    )?;
                }
                out.push(']');
            } else {
                out.push('{');
                for (i, (k, v)) in pairs.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let key = match k {
                        Value::String(s) => s.to_string_lossy(),
                        Value::Integer(n) => n.to_string(),
                        Value::Number(n) => format_g14(*n),
                        _ => {
                            return Err(
                                "Cannot serialise table: table key must be a number or string"
                                    .into(),
                            )
                        }
                    };
                    out.push_str(&serde_json::to_string(&key).map_err(|e| e.to_string())?);
                    out.push(':');
                    encode_json(v, out, depth + 1, max, invalid_ok)?;
                }
                out.push('}');
            }
        }
        other => {
            return Err(format!(
                "Cannot serialise {}: type not supported",
                other.type_name()
            ))
        }
    }
    Ok(())
}

/// `%.14g`, as cjson writes numbers.
fn format_g14(n: f64) -> String {
    let s = format!("{:.13e}", n);
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-5..14).contains(&exp) {
        let digits = (13 - exp).max(0) as usize;
        let f = format!("{:.*}", digits, n);
        let f = if f.contains('.') {
            f.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            f
        };
        f
    } else {
        let m = mantissa.trim_end_matches('0').trim_end_matches('.');
        format!("{m}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    }
}

fn json_to_lua(lua: &Lua, v: &serde_json::Value) -> mlua::Result<Value> {
    Ok(match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Boolean(*b),
        serde_json::Value::Number(n) => Value::Number(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Value::String(lua.create_string(s)?),
        serde_json::Value::Array(a) => {
            let t = lua.create_table_with_capacity(a.len(), 0)?;
            for (i, x) in a.iter().enumerate() {
                t.raw_set(i + 1, json_to_lua(lua, x)?)?;
            }
            Value::Table(t)
        }
        serde_json::Value::Object(o) => {
            let t = lua.create_table_with_capacity(0, o.len())?;
            for (k, x) in o {
                t.raw_set(k.as_str(), json_to_lua(lua, x)?)?;
            }
            Value::Table(t)
        }
    })
}

/// Redis's `cmsgpack` (lua_cmsgpack): `pack(...)`, `unpack(s)`, `unpack_one(s, offset)` and
/// `unpack_limit(s, limit, offset)`.
pub fn cmsgpack_library(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set(
        "pack",
        lua.create_function(|lua, args: MultiValue| {
            if args.is_empty() {
                return Err(mlua::Error::runtime("MessagePack pack needs input."));
            }
            let mut out = Vec::new();
            for v in args.iter() {
                mp_encode(v, &mut out, 0)?;
            }
            lua.create_string(&out)
        })?,
    )?;
    t.raw_set(
        "unpack",
        lua.create_function(|lua, s: mlua::LuaString| {
            let b = s.as_bytes();
            let mut pos = 0;
            let mut out = MultiValue::new();
            while pos < b.len() {
                out.push_back(mp_decode(lua, &b, &mut pos)?);
            }
            Ok(out)
        })?,
    )?;
    t.raw_set(
        "unpack_one",
        lua.create_function(|lua, (s, offset): (mlua::LuaString, Option<i64>)| {
            unpack_limited(lua, &s.as_bytes(), 1, offset.unwrap_or(0))
        })?,
    )?;
    t.raw_set(
        "unpack_limit",
        lua.create_function(
            |lua, (s, limit, offset): (mlua::LuaString, i64, Option<i64>)| {
                unpack_limited(
                    lua,
                    &s.as_bytes(),
                    limit.max(0) as usize,
                    offset.unwrap_or(0),
                )
            },
        )?,
    )?;
    Ok(t)
}

/// Decodes up to `limit` objects from `offset`: (next offset, or -1 at the end; objects…).
fn unpack_limited(lua: &Lua, b: &[u8], limit: usize, offset: i64) -> mlua::Result<MultiValue> {
    let mut pos = usize::try_from(offset).map_err(|_| {
        mlua::Error::runtime("Invalid request to unpack with offset of -1 and limit of 1.")
    })?;
    let mut values = Vec::new();
    while pos < b.len() && (limit == 0 || values.len() < limit) {
        values.push(mp_decode(lua, b, &mut pos)?);
    }
    let next = if pos >= b.len() { -1 } else { pos as i64 };
    let mut out = MultiValue::new();
    out.push_back(Value::Number(next as f64));
    out.extend(values);
    Ok(out)
}

fn mp_encode(v: &Value, out: &mut Vec<u8>, depth: usize) -> mlua::Result<()> {
    match v {
        Value::Nil => out.push(0xc0),
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(i) => mp_int(*i, out),
        Value::Number(n) => {
            if n.fract() == 0.0 && n.abs() < 9.2e18 {
                mp_int(*n as i64, out)
            } else if (*n as f32) as f64 == *n {
                out.push(0xca);
                out.extend_from_slice(&(*n as f32).to_be_bytes());
            } else {
                out.push(0xcb);
                out.extend_from_slice(&n.to_be_bytes());
            }
        }
        Value::String(s) => {
            let b = s.as_bytes();
            let n = b.len();
            if n < 32 {
                out.push(0xa0 | n as u8);
            } else if n <= 0xff {
                out.extend_from_slice(&[0xd9, n as u8]);
            } else if n <= 0xffff {
                out.push(0xda);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            } else {
                out.push(0xdb);
                out.extend_from_slice(&(n as u32).to_be_bytes());
            }
            out.extend_from_slice(&b);
        }
        Value::Table(t) if depth < 16 => {
            let len = t.raw_len();
            let pairs: Vec<(Value, Value)> = t.pairs::<Value, Value>().flatten().collect();
            let is_array = len > 0 && pairs.len() == len;
            if is_array {
                mp_header(len, 0x90, 0xdc, 0xdd, out);
                for i in 1..=len {
                    mp_encode(&t.raw_get::<Value>(i)?, out, depth + 1)?;
                }
            } else {
                mp_header(pairs.len(), 0x80, 0xde, 0xdf, out);
                for (k, v) in &pairs {
                    mp_encode(k, out, depth + 1)?;
                    mp_encode(v, out, depth + 1)?;
                }
            }
        }
        _ => out.push(0xc0),
    }
    Ok(())
}

fn mp_header(n: usize, fix: u8, x16: u8, x32: u8, out: &mut Vec<u8>) {
    if n < 16 {
        out.push(fix | n as u8);
    } else if n <= 0xffff {
        out.push(x16);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(x32);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

fn mp_int(i: i64, out: &mut Vec<u8>) {
    if i >= 0 {
        if i <= 127 {
            out.push(i as u8);
        } else if i <= 0xff {
            out.extend_from_slice(&[0xcc, i as u8]);
        } else if i <= 0xffff {
            out.push(0xcd);
            out.extend_from_slice(&(i as u16).to_be_bytes());
        } else if i <= 0xffff_ffff {
            out.push(0xce);
            out.extend_from_slice(&(i as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&(i as u64).to_be_bytes());
        }
    } else if i >= -32 {
        out.push(i as i8 as u8);
    } else if i >= -128 {
        out.extend_from_slice(&[0xd0, i as i8 as u8]);
    } else if i >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(i as i16).to_be_bytes());
    } else if i >= -2147483648 {
        out.push(0xd2);
        out.extend_from_slice(&(i as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&i.to_be_bytes());
    }
}

fn mp_decode(lua: &Lua, b: &[u8], pos: &mut usize) -> mlua::Result<Value> {
    let bad = || mlua::Error::runtime("Missing bytes in input.");
    let take = |pos: &mut usize, n: usize| -> mlua::Result<&[u8]> {
        let s = b.get(*pos..*pos + n).ok_or_else(bad)?;
        *pos += n;
        Ok(s)
    };
    let be = |s: &[u8]| s.iter().fold(0u64, |acc, &x| (acc << 8) | x as u64);
    let tag = *b.get(*pos).ok_or_else(bad)?;
    *pos += 1;
    let num = |x: f64| Value::Number(x);
    Ok(match tag {
        0x00..=0x7f => num(tag as f64),
        0xe0..=0xff => num(tag as i8 as f64),
        0xc0 => Value::Nil,
        0xc2 => Value::Boolean(false),
        0xc3 => Value::Boolean(true),
        0xcc => num(be(take(pos, 1)?) as f64),
        0xcd => num(be(take(pos, 2)?) as f64),
        0xce => num(be(take(pos, 4)?) as f64),
        0xcf => num(be(take(pos, 8)?) as f64),
        0xd0 => num(take(pos, 1)?[0] as i8 as f64),
        0xd1 => num(be(take(pos, 2)?) as u16 as i16 as f64),
        0xd2 => num(be(take(pos, 4)?) as u32 as i32 as f64),
        0xd3 => num(be(take(pos, 8)?) as i64 as f64),
        0xca => num(f32::from_bits(be(take(pos, 4)?) as u32) as f64),
        0xcb => num(f64::from_bits(be(take(pos, 8)?))),
        0xa0..=0xbf | 0xd9 | 0xda | 0xdb | 0xc4 | 0xc5 | 0xc6 => {
            let n = match tag {
                0xa0..=0xbf => (tag & 0x1f) as usize,
                0xd9 | 0xc4 => be(take(pos, 1)?) as usize,
                0xda | 0xc5 => be(take(pos, 2)?) as usize,
                _ => be(take(pos, 4)?) as usize,
            };
            Value::String(lua.create_string(take(pos, n)?)?)
        }
        0x90..=0x9f | 0xdc | 0xdd => {
            let n = match tag {
                0x90..=0x9f => (tag & 0x0f) as usize,
                0xdc => be(take(pos, 2)?) as usize,
                _ => be(take(pos, 4)?) as usize,
            };
            let t = lua.create_table_with_capacity(n.min(1 << 16), 0)?;
            for i in 1..=n {
                t.raw_set(i, mp_decode(lua, b, pos)?)?;
            }
            Value::Table(t)
        }
        0x80..=0x8f | 0xde | 0xdf => {
            let n = match tag {
                0x80..=0x8f => (tag & 0x0f) as usize,
                0xde => be(take(pos, 2)?) as usize,
                _ => be(take(pos, 4)?) as usize,
            };
            let t = lua.create_table_with_capacity(0, n.min(1 << 16))?;
            for _ in 0..n {
                let k = mp_decode(lua, b, pos)?;
                let v = mp_decode(lua, b, pos)?;
                if k != Value::Nil {
                    t.raw_set(k, v)?;
                }
            }
            Value::Table(t)
        }
        _ => return Err(mlua::Error::runtime("Bad data format in input.")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g14_matches_printf() {
        assert_eq!(format_g14(0.5), "0.5");
        assert_eq!(format_g14(1.0 / 3.0), "0.33333333333333");
        assert_eq!(format_g14(1e20), "1e+20");
        assert_eq!(format_g14(1.5e-7), "1.5e-07");
    }

    #[test]
    fn msgpack_numbers_as_redis_packs_them() {
        let mut out = Vec::new();
        mp_encode(&Value::Number(0.1), &mut out, 0).unwrap();
        assert_eq!(out, [0xcb, 0x3f, 0xb9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a]);
        out.clear();
        mp_encode(&Value::Number(-1099511627776.0), &mut out, 0).unwrap();
        assert_eq!(out, [0xd3, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0]);
    }
}
