//! FUNCTION libraries (Redis 7.0): loading a library's code, which registers its functions
//! with `redis.register_function`, and the registry FCALL, FUNCTION LIST, DELETE, DUMP and
//! RESTORE work on.

use super::vm::{lua_error_message, Flags};
use bytes::Bytes;
use mlua::{Function, Lua, MultiValue, Table, Value};
use std::collections::{BTreeMap, HashMap};

/// A registered function.
#[derive(Clone)]
pub struct FunctionEntry {
    pub name: String,
    pub library: String,
    pub callback: Function,
    pub flags: Flags,
    /// The flags as given, for FUNCTION LIST.
    pub flag_names: Vec<String>,
    pub description: Option<String>,
}

/// A loaded library.
#[derive(Clone)]
pub struct Library {
    pub name: String,
    pub code: Bytes,
    /// Its functions, in registration order.
    pub functions: Vec<String>,
}

/// Every library and function, by name.
#[derive(Clone, Default)]
pub struct Registry {
    pub libraries: BTreeMap<String, Library>,
    functions: HashMap<String, FunctionEntry>,
}

impl Registry {
    /// A function by name, ignoring case as FCALL does.
    pub fn get(&self, name: &[u8]) -> Option<&FunctionEntry> {
        self.functions
            .get(&std::str::from_utf8(name).ok()?.to_ascii_lowercase())
    }

    pub fn function(&self, name: &str) -> Option<&FunctionEntry> {
        self.functions.get(&name.to_ascii_lowercase())
    }

    pub fn function_count(&self) -> usize {
        self.functions.len()
    }

    pub fn clear(&mut self) {
        self.libraries.clear();
        self.functions.clear();
    }

    /// FUNCTION DELETE.
    pub fn delete(&mut self, library: &str) -> Result<(), String> {
        let lib = self
            .libraries
            .remove(library)
            .ok_or_else(|| "ERR Library not found".to_string())?;
        for f in lib.functions {
            self.functions.remove(&f.to_ascii_lowercase());
        }
        Ok(())
    }

    /// Adds a loaded library, replacing one of the same name when `replace` is set.
    fn add(
        &mut self,
        lib: Library,
        functions: Vec<FunctionEntry>,
        replace: bool,
    ) -> Result<(), String> {
        if self.libraries.contains_key(&lib.name) && !replace {
            return Err(format!("ERR Library '{}' already exists", lib.name));
        }
        for f in &functions {
            if let Some(existing) = self.functions.get(&f.name.to_ascii_lowercase()) {
                if existing.library != lib.name {
                    return Err(format!("ERR Function {} already exists", f.name));
                }
            }
        }
        if let Some(old) = self.libraries.remove(&lib.name) {
            for f in old.functions {
                self.functions.remove(&f.to_ascii_lowercase());
            }
        }
        for f in functions {
            self.functions.insert(f.name.to_ascii_lowercase(), f);
        }
        self.libraries.insert(lib.name.clone(), lib);
        Ok(())
    }

    /// Merges `other` in (FUNCTION RESTORE APPEND / REPLACE): all or nothing.
    pub fn merge(&mut self, other: Registry, replace: bool) -> Result<(), String> {
        let mut next = self.clone();
        for (name, lib) in other.libraries.clone() {
            let functions = lib
                .functions
                .iter()
                .filter_map(|f| other.function(f).cloned())
                .collect();
            if !replace && next.libraries.contains_key(&name) {
                return Err(format!("ERR Library {name} already exists"));
            }
            next.add(lib, functions, replace)?;
        }
        *self = next;
        Ok(())
    }
}

/// The library name a `#!lua name=<lib>` shebang gives (functionExtractLibMetaData).
fn parse_shebang(code: &[u8]) -> Result<String, String> {
    if !code.starts_with(b"#!") {
        return Err("ERR Missing library metadata".into());
    }
    let Some(end) = code.iter().position(|&b| b == b'\n') else {
        return Err("ERR Invalid library metadata".into());
    };
    let line = String::from_utf8_lossy(&code[..end]).into_owned();
    let parts: Vec<&str> = line.split(' ').filter(|p| !p.is_empty()).collect();
    let Some(first) = parts.first() else {
        return Err("ERR Invalid library metadata".into());
    };
    let engine = &first[2..];
    let mut name = None;
    for p in &parts[1..] {
        if p.len() >= 5 && p[..5].eq_ignore_ascii_case("name=") {
            if name.is_some() {
                return Err(
                    "ERR Invalid metadata value, name argument was given multiple times".into(),
                );
            }
            // sdssplitargs: a quoted value loses its quotes.
            let v = &p[5..];
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            name = Some(v.to_string());
        } else {
            return Err(format!("ERR Invalid metadata value given: {p}"));
        }
    }
    let name = name.ok_or_else(|| "ERR Library name was not given".to_string())?;
    if !valid_name(&name) {
        return Err(ERR_NAME.into());
    }
    if !engine.eq_ignore_ascii_case("lua") {
        return Err(format!("ERR Engine '{engine}' not found"));
    }
    Ok(name)
}

const ERR_NAME: &str = "ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long";

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

const FLAG_NAMES: [&str; 5] = [
    "no-writes",
    "allow-oom",
    "allow-stale",
    "no-cluster",
    "allow-cross-slot-keys",
];

/// Loads a library's code: runs it once in an environment of its own where `redis` offers
/// only `register_function` and `log`, collecting what it registers. Adds it to `registry`.
pub fn load_library(
    lua: &Lua,
    registry: &mut Registry,
    code: Bytes,
    replace: bool,
) -> Result<String, String> {
    let name = parse_shebang(&code)?;
    if registry.libraries.contains_key(&name) && !replace {
        return Err(format!("ERR Library '{name}' already exists"));
    }
    let registered = std::sync::Arc::new(parking_lot::Mutex::new(Vec::<FunctionEntry>::new()));
    let err = |e: mlua::Error| e.to_string();
    // While the library loads it sees only `redis` (with register_function and log); after
    // that its functions see every global, as a script does. Writes are refused throughout.
    let env = lua.create_table().map_err(err)?;
    let meta = sealed_metatable(lua).map_err(err)?;
    env.set_metatable(Some(meta.clone())).map_err(err)?;
    let api = lua.create_table().map_err(err)?;
    let api_meta = sealed_metatable(lua).map_err(err)?;
    let reg = registered.clone();
    let lib_name = name.clone();
    // A library that kept `redis` from its load cannot register functions later.
    let loading = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let still_loading = loading.clone();
    let register = lua
        .create_function(move |_, args: MultiValue| {
            if !still_loading.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(mlua::Error::runtime(
                    "redis.register_function can only be called on FUNCTION LOAD command",
                ));
            }
            let entry = register_args(&lib_name, &args).map_err(mlua::Error::runtime)?;
            let mut r = reg.lock();
            if r.iter().any(|f| f.name.eq_ignore_ascii_case(&entry.name)) {
                return Err(mlua::Error::runtime(
                    "Function already exists in the library",
                ));
            }
            r.push(entry);
            Ok(())
        })
        .map_err(err)?;
    api.raw_set("register_function", register).map_err(err)?;
    let real_redis: Table = lua.globals().get("redis").map_err(err)?;
    for k in [
        "log",
        "LOG_DEBUG",
        "LOG_VERBOSE",
        "LOG_NOTICE",
        "LOG_WARNING",
        "REDIS_VERSION",
        "REDIS_VERSION_NUM",
    ] {
        api.raw_set(k, real_redis.get::<Value>(k).map_err(err)?)
            .map_err(err)?;
    }
    api.set_metatable(Some(api_meta)).map_err(err)?;
    env.raw_set("redis", api).map_err(err)?;
    // The engine gets the code from its first newline on, so line numbers hold.
    let start = code.iter().position(|&b| b == b'\n').unwrap_or(code.len());
    let chunk = lua
        .load(&code[start..])
        .set_name("@user_function")
        .set_environment(env.clone())
        .into_function()
        .map_err(|e| format!("ERR Error compiling function: {}", lua_error_message(&e)))?;
    chunk.call::<()>(()).map_err(|e| {
        let msg = lua_error_message(&e);
        let msg = msg.lines().next().unwrap_or("");
        let msg = msg.strip_prefix("runtime error: ").unwrap_or(msg);
        format!("ERR Error registering functions: ERR {msg}")
    })?;
    loading.store(false, std::sync::atomic::Ordering::Relaxed);
    env.raw_set("redis", Value::Nil).map_err(err)?;
    meta.raw_set("__index", lua.globals()).map_err(err)?;
    let functions = registered.lock().clone();
    if functions.is_empty() {
        return Err("ERR No functions registered".into());
    }
    let lib = Library {
        name: name.clone(),
        code,
        functions: functions.iter().map(|f| f.name.clone()).collect(),
    };
    registry.add(lib, functions, replace)?;
    Ok(name)
}

/// A metatable that makes a table read-only and reading a missing field an error, with
/// Redis's texts.
fn sealed_metatable(lua: &Lua) -> mlua::Result<Table> {
    lua.load(
        r#"return {
            __index = function(t, n)
                error("Script attempted to access nonexistent global variable '" .. tostring(n) .. "'", 2)
            end,
            __newindex = function(t, n, v) error("Attempt to modify a readonly table", 2) end,
        }"#,
    )
    .set_name("=init")
    .call(())
}

/// `redis.register_function(name, callback)` or `redis.register_function{function_name = …,
/// callback = …, flags = {…}, description = …}`.
fn register_args(library: &str, args: &MultiValue) -> Result<FunctionEntry, String> {
    let (name, callback, flags, description) = match args.len() {
        1 => {
            let Value::Table(t) = &args[0] else {
                return Err("calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).".into());
            };
            let (mut name, mut callback, mut flags, mut description) = (None, None, None, None);
            for pair in t.pairs::<Value, Value>() {
                let (k, v) = pair.map_err(|e| e.to_string())?;
                let key =
                    match k {
                        Value::String(k) => k.to_string_lossy(),
                        Value::Number(n) => n.to_string(),
                        Value::Integer(n) => n.to_string(),
                        _ => return Err(
                            "named argument key given to redis.register_function is not a string"
                                .into(),
                        ),
                    };
                match key.to_ascii_lowercase().as_str() {
                    "function_name" => match v {
                        Value::String(_) | Value::Number(_) | Value::Integer(_) => name = Some(v),
                        _ => return Err("function_name argument given to redis.register_function must be a string".into()),
                    },
                    "description" => match v {
                        Value::String(_) | Value::Number(_) | Value::Integer(_) => description = Some(v),
                        _ => return Err("description argument given to redis.register_function must be a string".into()),
                    },
                    "callback" => match v {
                        Value::Function(_) => callback = Some(v),
                        _ => return Err("callback argument given to redis.register_function must be a function".into()),
                    },
                    "flags" => match v {
                        Value::Table(_) => flags = Some(v),
                        _ => return Err("flags argument to redis.register_function must be a table representing function flags".into()),
                    },
                    _ => return Err("unknown argument given to redis.register_function".into()),
                }
            }
            if name.is_none() {
                return Err("redis.register_function must get a function name argument".into());
            }
            if callback.is_none() {
                return Err("redis.register_function must get a callback argument".into());
            }
            (name, callback, flags, description)
        }
        2 => {
            if !matches!(
                args[0],
                Value::String(_) | Value::Number(_) | Value::Integer(_)
            ) {
                return Err("first argument to redis.register_function must be a string".into());
            }
            if !matches!(args[1], Value::Function(_)) {
                return Err("second argument to redis.register_function must be a function".into());
            }
            (Some(args[0].clone()), Some(args[1].clone()), None, None)
        }
        _ => return Err("wrong number of arguments to redis.register_function".into()),
    };
    let text = |v: &Value| match v {
        Value::String(s) => s.to_string_lossy(),
        Value::Number(n) => n.to_string(),
        Value::Integer(n) => n.to_string(),
        _ => String::new(),
    };
    let name = text(name.as_ref().expect("checked"));
    if !valid_name(&name) {
        return Err(ERR_NAME["ERR ".len()..].into());
    }
    let Some(Value::Function(callback)) = callback else {
        return Err("redis.register_function must get a callback argument".into());
    };
    let mut parsed = Flags {
        declared: true,
        ..Flags::default()
    };
    let mut flag_names = Vec::new();
    if let Some(Value::Table(t)) = flags {
        for i in 1.. {
            match t.raw_get::<Value>(i) {
                Ok(Value::Nil) => break,
                Ok(Value::String(f)) => {
                    let f = f.to_string_lossy();
                    if !FLAG_NAMES.contains(&f.as_str()) {
                        return Err("unknown flag given".into());
                    }
                    parsed.no_writes |= f == "no-writes";
                    parsed.allow_oom |= f == "allow-oom";
                    flag_names.push(f);
                }
                _ => return Err("unknown flag given".into()),
            }
        }
    }
    Ok(FunctionEntry {
        name,
        library: library.to_string(),
        callback,
        flags: parsed,
        flag_names,
        description: description.as_ref().map(text),
    })
}

/// The functions of a registry, as FUNCTION DUMP writes them: for each library, Redis's
/// RDB_OPCODE_FUNCTION2 (245) and its code as an RDB string; then the RDB version (10) and a
/// CRC-64 (Jones) of everything before it, as DUMP payloads end.
pub fn dump(registry: &Registry) -> Vec<u8> {
    let mut out = Vec::new();
    for lib in registry.libraries.values() {
        out.push(245);
        rdb_write_len(&mut out, lib.code.len() as u64);
        out.extend_from_slice(&lib.code);
    }
    out.extend_from_slice(&10u16.to_le_bytes());
    let crc = crate::util::crc64_jones(0, &out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// The library codes in a FUNCTION DUMP payload, checked as Redis checks it.
pub fn parse_dump(payload: &[u8]) -> Result<Vec<Bytes>, String> {
    const BAD: &str = "ERR DUMP payload version or checksum are wrong";
    if payload.len() < 10 {
        return Err(BAD.into());
    }
    let (body, footer) = payload.split_at(payload.len() - 10);
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    let crc = u64::from_le_bytes(footer[2..10].try_into().expect("8 bytes"));
    if version > 10 || crate::util::crc64_jones(0, &payload[..payload.len() - 8]) != crc {
        return Err(BAD.into());
    }
    let mut codes = Vec::new();
    let mut pos = 0;
    while pos < body.len() {
        if body[pos] != 245 {
            return Err("ERR given type is not a function".into());
        }
        pos += 1;
        let (code, used) =
            rdb_read_string(&body[pos..]).ok_or("ERR Failed loading library payload")?;
        codes.push(Bytes::from(code));
        pos += used;
    }
    Ok(codes)
}

/// An RDB string: plain, an integer encoding, or LZF-compressed (Redis compresses strings
/// over 20 bytes). Returns the bytes and how much was read.
fn rdb_read_string(b: &[u8]) -> Option<(Vec<u8>, usize)> {
    let first = *b.first()?;
    if first >> 6 != 3 {
        let (len, used) = rdb_read_len(b)?;
        let end = used.checked_add(usize::try_from(len).ok()?)?;
        return Some((b.get(used..end)?.to_vec(), end));
    }
    match first & 0x3f {
        0 => Some(((*b.get(1)? as i8).to_string().into_bytes(), 2)),
        1 => Some((
            i16::from_le_bytes(b.get(1..3)?.try_into().ok()?)
                .to_string()
                .into_bytes(),
            3,
        )),
        2 => Some((
            i32::from_le_bytes(b.get(1..5)?.try_into().ok()?)
                .to_string()
                .into_bytes(),
            5,
        )),
        3 => {
            let (clen, u1) = rdb_read_len(&b[1..])?;
            let (len, u2) = rdb_read_len(&b[1 + u1..])?;
            let start = 1 + u1 + u2;
            let end = start.checked_add(usize::try_from(clen).ok()?)?;
            let out = lzf_decompress(b.get(start..end)?, usize::try_from(len).ok()?)?;
            Some((out, end))
        }
        _ => None,
    }
}

/// LZF decompression (liblzf's format, as Redis writes compressed strings).
pub fn lzf_decompress(input: &[u8], out_len: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(out_len);
    let mut i = 0;
    while i < input.len() {
        let ctrl = input[i] as usize;
        i += 1;
        if ctrl < 32 {
            let n = ctrl + 1;
            out.extend_from_slice(input.get(i..i + n)?);
            i += n;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                len += *input.get(i)? as usize;
                i += 1;
            }
            let back = ((ctrl & 0x1f) << 8) + *input.get(i)? as usize + 1;
            i += 1;
            let start = out.len().checked_sub(back)?;
            for k in 0..len + 2 {
                let byte = out[start + k];
                out.push(byte);
            }
        }
        if out.len() > out_len {
            return None;
        }
    }
    (out.len() == out_len).then_some(out)
}

fn rdb_write_len(out: &mut Vec<u8>, len: u64) {
    if len < 64 {
        out.push(len as u8);
    } else if len < 16384 {
        out.push(0x40 | (len >> 8) as u8);
        out.push(len as u8);
    } else if len <= u32::MAX as u64 {
        out.push(0x80);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

fn rdb_read_len(b: &[u8]) -> Option<(u64, usize)> {
    let first = *b.first()?;
    match first >> 6 {
        0 => Some(((first & 0x3f) as u64, 1)),
        1 => Some(((((first & 0x3f) as u64) << 8) | *b.get(1)? as u64, 2)),
        _ if first == 0x80 => Some((u32::from_be_bytes(b.get(1..5)?.try_into().ok()?) as u64, 5)),
        _ if first == 0x81 => Some((u64::from_be_bytes(b.get(1..9)?.try_into().ok()?), 9)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rdb_lengths_round_trip() {
        for n in [0u64, 63, 64, 16383, 16384, 1 << 32] {
            let mut v = Vec::new();
            rdb_write_len(&mut v, n);
            assert_eq!(rdb_read_len(&v), Some((n, v.len())));
        }
    }
}
