//! Connection commands: PING, ECHO, QUIT, HELLO, AUTH, SELECT, RESET and CLIENT.

use super::{Args, CmdError, CmdResult, Ctx, DB_RANGE_ERR};
use crate::server::client::{Control, ReplyMode};
use crate::server::reply::Reply;
use bytes::Bytes;
use std::sync::atomic::Ordering;

/// Redis's `addReplyHelp` layout.
pub fn help(command: &str, lines: &[&str]) -> Reply {
    let mut out = vec![Reply::StatusOwned(format!(
        "{command} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    ))];
    out.extend(lines.iter().map(|l| Reply::StatusOwned(l.to_string())));
    out.push(Reply::Status("HELP"));
    out.push(Reply::Status("    Prints this help."));
    Reply::Array(out)
}

pub fn ping(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    // A subscribed RESP2 connection gets PING's answer in the shape of a message.
    if ctx.client.proto == 2 && ctx.client.subscribed() && args.remaining() <= 1 {
        let arg = args.rest().into_iter().next().unwrap_or_default();
        return Ok(Reply::Array(vec![
            Reply::bulk_str("pong"),
            Reply::Bulk(arg),
        ]));
    }
    match args.remaining() {
        0 => Ok(Reply::Status("PONG")),
        1 => Ok(Reply::Bulk(args.next()?)),
        _ => Err(CmdError::new(
            "ERR wrong number of arguments for 'ping' command",
        )),
    }
}

pub fn echo(_ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    Ok(Reply::Bulk(args.next()?))
}

pub fn quit(ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    ctx.client.close_after_reply = true;
    Ok(Reply::OK)
}

/// Authenticates the connection as `user` (Redis's `ACLAuthenticateUser`); a failure is
/// recorded in the ACL log under the name tried.
fn authenticate(ctx: &mut Ctx, args: &Args, user: &[u8], pass: &[u8]) -> Result<(), CmdError> {
    match ctx.server.acl.authenticate(user, pass) {
        Some(u) => {
            ctx.client.authenticated = true;
            ctx.client.set_user(u);
            Ok(())
        }
        None => {
            let context = if ctx.client.multi.is_some() {
                crate::acl::log::Context::Multi
            } else {
                crate::acl::log::Context::Toplevel
            };
            super::acl::log_denial(
                ctx.server,
                ctx.client,
                crate::acl::log::Reason::Auth,
                context,
                Bytes::copy_from_slice(args.request().arg(0)),
                Some(Bytes::copy_from_slice(user)),
            );
            Err(CmdError::new(
                "WRONGPASS invalid username-password pair or user is disabled.",
            ))
        }
    }
}

pub fn auth(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let (user, pass) = match args.remaining() {
        1 => (Bytes::from_static(b"default"), args.next()?),
        2 => (args.next()?, args.next()?),
        _ => return Err(CmdError::syntax()),
    };
    if args.argc() == 2 && ctx.server.acl.default_user().rules().nopass {
        return Err(CmdError::new(
            "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
        ));
    }
    authenticate(ctx, args, &user, &pass)?;
    Ok(Reply::OK)
}

pub fn hello(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let mut proto = ctx.client.proto;
    if !args.is_empty() {
        let v = args.next()?;
        proto = match crate::util::parse_i64(&v) {
            Some(n @ 2..=3) => n as u8,
            Some(_) => return Err(CmdError::new("NOPROTO unsupported protocol version")),
            None => {
                return Err(CmdError::new(
                    "ERR Protocol version is not an integer or out of range",
                ))
            }
        };
    }
    let mut name = None;
    let mut authed = false;
    while !args.is_empty() {
        let raw = String::from_utf8_lossy(args.peek().unwrap_or_default()).into_owned();
        let opt = args.next_upper()?;
        match opt.as_str() {
            "AUTH" if args.remaining() >= 2 => {
                let (u, p) = (args.next()?, args.next()?);
                authenticate(ctx, args, &u, &p)?;
                authed = true;
            }
            "SETNAME" if !args.is_empty() => name = Some(args.next()?),
            _ => {
                return Err(CmdError::new(format!(
                    "ERR Syntax error in HELLO option '{raw}'"
                )))
            }
        }
    }
    if authed {
        ctx.client.authenticated = true;
    }
    if !ctx.client.authenticated {
        return Err(CmdError::new("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time"));
    }
    if let Some(n) = name {
        validate_name(&n, "Client names")?;
        *ctx.client.info.name.lock() = n;
    }
    ctx.client.set_proto(proto);
    let s = |v: &str| Reply::bulk_str(v);
    Ok(Reply::Map(vec![
        (s("server"), s("redis")),
        (s("version"), s(crate::REDIS_VERSION)),
        (s("proto"), Reply::Int(proto as i64)),
        (s("id"), Reply::Int(ctx.client.id as i64)),
        (s("mode"), s("standalone")),
        (s("role"), s("master")),
        (s("modules"), Reply::Array(vec![])),
    ]))
}

pub fn select(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let n = args.next_i64()?;
    if n < 0 || n as usize >= ctx.server.store.db_count() {
        return Err(CmdError::new(DB_RANGE_ERR));
    }
    ctx.client.select(n as usize);
    Ok(Reply::OK)
}

pub fn reset(ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    ctx.client.select(0);
    ctx.client.set_proto(2);
    ctx.client.reply_mode = ReplyMode::On;
    // RESET returns to the default user, authenticated only if it needs no password.
    let default = ctx.server.acl.default_user();
    let rules = default.rules();
    ctx.client.authenticated = rules.nopass && rules.enabled;
    ctx.client.set_user(default);
    *ctx.client.info.name.lock() = Bytes::new();
    ctx.client.info.no_evict.store(false, Ordering::Relaxed);
    ctx.client.multi = None;
    super::transactions::unwatch_all(ctx.server, ctx.client);
    super::pubsub::unsubscribe_all(ctx.server, ctx.client);
    Ok(Reply::Status("RESET"))
}

fn validate_name(n: &[u8], what: &str) -> Result<(), CmdError> {
    if n.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(CmdError::new(format!(
            "ERR {what} cannot contain spaces, newlines or special characters."
        )));
    }
    Ok(())
}

pub fn client_id(ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    Ok(Reply::Int(ctx.client.id as i64))
}

/// CLIENT UNBLOCK id [TIMEOUT|ERROR]: ends a client's wait on keys, as if it timed out or
/// with an UNBLOCKED error. 1 when that client was blocked.
pub fn client_unblock(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    if args.argc() > 4 {
        return Err(CmdError::new(
            "ERR unknown subcommand or wrong number of arguments for 'UNBLOCK'. Try CLIENT HELP.",
        ));
    }
    let id = args.next()?;
    // Redis reads the reason before the id.
    let how = if args.is_empty() {
        super::blocking::Unblock::Timeout
    } else {
        match args.next_upper()?.as_str() {
            "TIMEOUT" => super::blocking::Unblock::Timeout,
            "ERROR" => super::blocking::Unblock::Error,
            _ => {
                return Err(CmdError::new(
                    "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR",
                ))
            }
        }
    };
    let id = crate::util::parse_i64(&id).ok_or_else(CmdError::not_int)?;
    Ok(Reply::Int(
        ctx.server.blocking.unblock(id as u64, how) as i64
    ))
}

pub fn client_setname(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let n = args.next()?;
    validate_name(&n, "Client names")?;
    *ctx.client.info.name.lock() = n;
    Ok(Reply::OK)
}

pub fn client_getname(ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    let n = ctx.client.info.name.lock().clone();
    Ok(if n.is_empty() {
        Reply::Null
    } else {
        Reply::Bulk(n)
    })
}

pub fn client_list(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let mut ids: Option<Vec<u64>> = None;
    let mut typ: Option<&'static str> = None;
    while !args.is_empty() {
        let opt = args.next_upper()?;
        match opt.as_str() {
            "TYPE" if !args.is_empty() => {
                let t = args.next_upper()?;
                match t.as_str() {
                    "NORMAL" => typ = Some("normal"),
                    "PUBSUB" => typ = Some("pubsub"),
                    "MASTER" | "REPLICA" | "SLAVE" => ids = Some(vec![]),
                    _ => {
                        return Err(CmdError::new(format!(
                            "ERR Unknown client type '{}'",
                            t.to_lowercase()
                        )))
                    }
                }
            }
            "ID" if !args.is_empty() => {
                let mut v = Vec::new();
                while let Some(a) = args.peek() {
                    match crate::util::parse_i64(a) {
                        Some(n) if n > 0 => v.push(n as u64),
                        _ => return Err(CmdError::new("ERR Invalid client ID")),
                    }
                    args.next()?;
                }
                ids = Some(v);
            }
            _ => return Err(CmdError::syntax()),
        }
    }
    let mut text = String::new();
    for c in ctx.server.clients.snapshot() {
        if ids.as_ref().is_some_and(|v| !v.contains(&c.id))
            || typ.is_some_and(|t| t != c.client_type())
        {
            continue;
        }
        text.push_str(&c.describe(ctx.server));
        text.push('\n');
    }
    Ok(Reply::Verbatim(Bytes::from(text)))
}

pub fn client_info(ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    Ok(Reply::Verbatim(Bytes::from(
        ctx.client.info.describe(ctx.server) + "\n",
    )))
}

pub fn client_kill(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let clients = ctx.server.clients.snapshot();
    // Old form: CLIENT KILL addr:port.
    if args.remaining() == 1 {
        let addr = args.next()?;
        let Some(c) = clients.iter().find(|c| c.addr.as_bytes() == addr.as_ref()) else {
            return Err(CmdError::new("ERR No such client"));
        };
        c.send(Control::Kill);
        if c.id == ctx.client.id {
            ctx.client.close_after_reply = true;
        }
        return Ok(Reply::OK);
    }
    let (mut id, mut addr, mut laddr, mut skipme, mut maxage, mut typ, mut user) =
        (None, None, None, true, None, None, None);
    while !args.is_empty() {
        let opt = args.next_upper()?;
        if args.is_empty() {
            return Err(CmdError::syntax());
        }
        let v = args.next()?;
        match opt.as_str() {
            "ID" => {
                id = Some(
                    crate::util::parse_i64(&v)
                        .filter(|n| *n > 0)
                        .ok_or_else(|| CmdError::new("ERR client-id should be greater than 0"))?
                        as u64,
                )
            }
            "ADDR" => addr = Some(v),
            "LADDR" => laddr = Some(v),
            "USER" => {
                if ctx.server.acl.user(&v).is_none() {
                    return Err(CmdError::new(format!(
                        "ERR No such user '{}'",
                        String::from_utf8_lossy(&v)
                    )));
                }
                user = Some(v)
            }
            "MAXAGE" => maxage = Some(crate::util::parse_i64(&v).ok_or_else(CmdError::not_int)?),
            "TYPE" => {
                let t = String::from_utf8_lossy(&v).to_ascii_lowercase();
                if !["normal", "master", "replica", "slave", "pubsub"].contains(&t.as_str()) {
                    return Err(CmdError::new(format!("ERR Unknown client type '{t}'")));
                }
                typ = Some(t);
            }
            "SKIPME" => {
                skipme = match String::from_utf8_lossy(&v).to_ascii_lowercase().as_str() {
                    "yes" => true,
                    "no" => false,
                    _ => return Err(CmdError::syntax()),
                }
            }
            _ => return Err(CmdError::syntax()),
        }
    }
    let now = crate::util::now_ms();
    let mut killed = 0;
    for c in clients {
        let matches = id.is_none_or(|i| i == c.id)
            && addr
                .as_ref()
                .is_none_or(|a| a.as_ref() == c.addr.as_bytes())
            && laddr
                .as_ref()
                .is_none_or(|a| a.as_ref() == c.laddr.as_bytes())
            && user.as_ref().is_none_or(|u| *u == *c.user.lock())
            && typ.as_ref().is_none_or(|t| t == c.client_type())
            && maxage.is_none_or(|m| (now.saturating_sub(c.created_ms) / 1000) as i64 >= m)
            && !(skipme && c.id == ctx.client.id);
        if matches {
            c.send(Control::Kill);
            if c.id == ctx.client.id {
                ctx.client.close_after_reply = true;
            }
            killed += 1;
        }
    }
    Ok(Reply::Int(killed))
}

pub fn client_setinfo(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let attr = args.next_upper()?;
    let value = args.next()?;
    let slot = match attr.as_str() {
        "LIB-NAME" => &ctx.client.info.lib_name,
        "LIB-VER" => &ctx.client.info.lib_ver,
        _ => {
            return Err(CmdError::new(format!(
                "ERR Unrecognized option '{}'",
                attr.to_lowercase()
            )))
        }
    };
    validate_name(&value, &attr.to_lowercase())?;
    *slot.lock() = value;
    Ok(Reply::OK)
}

pub fn client_no_evict(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let on = match args.next_upper()?.as_str() {
        "ON" => true,
        "OFF" => false,
        _ => return Err(CmdError::syntax()),
    };
    ctx.client.info.no_evict.store(on, Ordering::Relaxed);
    Ok(Reply::OK)
}

pub fn client_reply(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    ctx.client.reply_mode = match args.next_upper()?.as_str() {
        "ON" => ReplyMode::On,
        "OFF" => ReplyMode::Off,
        "SKIP" => ReplyMode::Skip,
        _ => return Err(CmdError::syntax()),
    };
    Ok(Reply::OK)
}

pub fn client_help(_ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    Ok(help(
        "CLIENT",
        &[
            "GETNAME",
            "    Return the name of the current connection.",
            "ID",
            "    Return the ID of the current connection.",
            "INFO",
            "    Return information about the current client connection.",
            "KILL <ip:port>",
            "    Kill connection made from <ip:port>.",
            "KILL <option> <value> [<option> <value> [...]]",
            "    Kill connections. Options are: ID, TYPE, USER, ADDR, LADDR, SKIPME, MAXAGE.",
            "LIST [options ...]",
            "    Return information about client connections. Options: TYPE, ID.",
            "NO-EVICT (ON|OFF)",
            "    Protect current client connection from eviction.",
            "REPLY (ON|OFF|SKIP)",
            "    Control the replies sent to the current connection.",
            "SETNAME <name>",
            "    Assign the name <name> to the current connection.",
            "UNBLOCK <clientid> [TIMEOUT|ERROR]",
            "    Unblock the specified blocked client.",
            "SETINFO <option> <value>",
            "    Set client meta attr. Options are: LIB-NAME, LIB-VER.",
        ],
    ))
}
