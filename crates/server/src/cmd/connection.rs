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
    crate::tracking::disable(&ctx.client.info);
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

/// CLIENT TRACKING ON|OFF [REDIRECT id] [PREFIX p …] [BCAST] [OPTIN] [OPTOUT] [NOLOOP]:
/// client-side caching, with Redis's checks and error texts in Redis's order.
pub fn client_tracking(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    use crate::tracking::{BCAST, NOLOOP, ON, OPTIN, OPTOUT};
    let mode = args.next()?;
    let mut redirect: i64 = 0;
    let mut options = 0u32;
    let mut prefixes: Vec<Bytes> = Vec::new();
    while !args.is_empty() {
        let opt = args.next_upper()?;
        let more = !args.is_empty();
        match opt.as_str() {
            "REDIRECT" if more => {
                if redirect != 0 {
                    return Err(CmdError::new(
                        "ERR A client can only redirect to a single other client",
                    ));
                }
                redirect = args.next_i64()?;
                if redirect <= 0 || ctx.server.clients.get(redirect as u64).is_none() {
                    return Err(CmdError::new(
                        "ERR The client ID you want redirect to does not exist",
                    ));
                }
            }
            "BCAST" => options |= BCAST,
            "OPTIN" => options |= OPTIN,
            "OPTOUT" => options |= OPTOUT,
            "NOLOOP" => options |= NOLOOP,
            "PREFIX" if more => prefixes.push(args.next()?),
            _ => return Err(CmdError::syntax()),
        }
    }
    let info = ctx.client.info.clone();
    if mode.eq_ignore_ascii_case(b"off") {
        crate::tracking::disable(&info);
        return Ok(Reply::OK);
    }
    if !mode.eq_ignore_ascii_case(b"on") {
        return Err(CmdError::syntax());
    }
    let current = info.tracking.load(Ordering::Relaxed);
    if options & BCAST == 0 && !prefixes.is_empty() {
        return Err(CmdError::new(
            "ERR PREFIX option requires BCAST mode to be enabled",
        ));
    }
    if current & ON != 0 && (current & BCAST != 0) != (options & BCAST != 0) {
        return Err(CmdError::new("ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode."));
    }
    if options & BCAST != 0 && options & (OPTIN | OPTOUT) != 0 {
        return Err(CmdError::new(
            "ERR OPTIN and OPTOUT are not compatible with BCAST",
        ));
    }
    if options & OPTIN != 0 && options & OPTOUT != 0 {
        return Err(CmdError::new(
            "ERR You can't specify both OPTIN mode and OPTOUT mode",
        ));
    }
    if (options & OPTIN != 0 && current & OPTOUT != 0)
        || (options & OPTOUT != 0 && current & OPTIN != 0)
    {
        return Err(CmdError::new("ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode."));
    }
    if options & BCAST != 0 {
        crate::tracking::check_prefixes(info.id, &prefixes).map_err(CmdError)?;
    }
    crate::tracking::enable(&info, redirect as u64, options, &prefixes);
    Ok(Reply::OK)
}

/// CLIENT CACHING YES|NO: whether the next command's reads are tracked (OPTIN / OPTOUT).
pub fn client_caching(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    use crate::tracking::{CACHING, ON, OPTIN, OPTOUT};
    let info = &ctx.client.info;
    let flags = info.tracking.load(Ordering::Relaxed);
    if flags & ON == 0 {
        return Err(CmdError::new("ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled"));
    }
    match args.next_upper()?.as_str() {
        "YES" if flags & OPTIN != 0 => {}
        "YES" => {
            return Err(CmdError::new(
                "ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.",
            ))
        }
        "NO" if flags & OPTOUT != 0 => {}
        "NO" => {
            return Err(CmdError::new(
                "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.",
            ))
        }
        _ => return Err(CmdError::syntax()),
    }
    info.tracking.fetch_or(CACHING, Ordering::Relaxed);
    Ok(Reply::OK)
}

/// The client tracking's invalidations go to: its id, 0 for none, -1 when not tracking.
fn tracking_redirect(info: &crate::server::client::ClientInfo) -> i64 {
    if info.tracking.load(Ordering::Relaxed) & crate::tracking::ON == 0 {
        -1
    } else {
        info.tracking_redirect.load(Ordering::Relaxed) as i64
    }
}

pub fn client_getredir(ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    Ok(Reply::Int(tracking_redirect(&ctx.client.info)))
}

/// CLIENT TRACKINGINFO: flags, redirect and prefixes, as Redis lists them.
pub fn client_trackinginfo(ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    use crate::tracking::{BCAST, BROKEN_REDIRECT, CACHING, NOLOOP, ON, OPTIN, OPTOUT};
    let info = &ctx.client.info;
    let f = info.tracking.load(Ordering::Relaxed);
    let mut flags = vec![if f & ON != 0 { "on" } else { "off" }];
    // Redis's order; the CACHING flag shows under the mode it applies to.
    for (bit, name, caching) in [
        (BCAST, "bcast", None),
        (OPTIN, "optin", Some("caching-yes")),
        (OPTOUT, "optout", Some("caching-no")),
        (NOLOOP, "noloop", None),
        (BROKEN_REDIRECT, "broken_redirect", None),
    ] {
        if f & bit != 0 {
            flags.push(name);
            if let (Some(c), true) = (caching, f & CACHING != 0) {
                flags.push(c);
            }
        }
    }
    Ok(Reply::Map(vec![
        (
            Reply::bulk_str("flags"),
            Reply::Set(flags.into_iter().map(Reply::bulk_str).collect()),
        ),
        (
            Reply::bulk_str("redirect"),
            Reply::Int(tracking_redirect(info)),
        ),
        (
            Reply::bulk_str("prefixes"),
            Reply::Array(
                crate::tracking::prefixes_of(info.id)
                    .into_iter()
                    .map(Reply::Bulk)
                    .collect(),
            ),
        ),
    ]))
}

pub fn client_help(_ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    Ok(help(
        "CLIENT",
        &[
            "CACHING (YES|NO)",
            "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
            "GETREDIR",
            "    Return the client ID we are redirecting to when tracking is enabled.",
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
            "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
            "         [OPTIN] [OPTOUT] [NOLOOP]",
            "    Control server assisted client side caching.",
            "TRACKINGINFO",
            "    Report tracking status for the current connection.",
            "SETINFO <option> <value>",
            "    Set client meta attr. Options are: LIB-NAME, LIB-VER.",
        ],
    ))
}
