//! The ACL command family: SETUSER, GETUSER, DELUSER, LIST, USERS, WHOAMI, CAT, GENPASS, LOG,
//! SAVE, LOAD, DRYRUN and HELP, with redis-server 7.0's replies and error texts.

use super::connection::help as help_reply;
use super::{Args, CmdError, CmdResult, Ctx};
use crate::acl::{self, rules::Selector, CATEGORIES};
use crate::server::client::Control;
use crate::server::reply::Reply;
use bytes::Bytes;

const NO_ACLFILE: &str = "ERR This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.";

pub fn setuser(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let name = args.next()?;
    if name.iter().any(|c| c.is_ascii_whitespace() || *c == 0) {
        return Err(CmdError::new(
            "ERR Usernames can't contain spaces or null characters",
        ));
    }
    let words = args.rest();
    let server = ctx.server;
    server
        .acl
        .set_user(&server.commands, &name, &words)
        .map_err(|e| CmdError::new(format!("ERR {e}")))?;
    kill_pubsub_clients_denied(ctx, &name);
    Ok(Reply::OK)
}

/// Closes the user's subscribed connections whose channels its new rules no longer allow
/// (Redis's `ACLKillPubsubClientsIfNeeded`).
fn kill_pubsub_clients_denied(ctx: &mut Ctx, name: &[u8]) {
    let Some(user) = ctx.server.acl.user(name) else {
        return;
    };
    let rules = user.rules();
    if rules.selectors.iter().any(|s| s.allchannels) {
        return;
    }
    for info in ctx.server.clients.snapshot() {
        if info.user.lock().as_ref() != name || info.client_type() != "pubsub" {
            continue;
        }
        let allowed = |ch: &[u8], pattern: bool| {
            rules
                .selectors
                .iter()
                .any(|s| s.allows_channel(ch, pattern))
        };
        let subs = ctx.server.pubsub.subscriptions_of(info.id);
        if subs.iter().any(|(ch, pattern)| !allowed(ch, *pattern)) {
            info.send(Control::Kill);
            if info.id == ctx.client.id {
                ctx.client.close_after_reply = true;
            }
        }
    }
}

pub fn deluser(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let names = args.rest();
    if names.iter().any(|n| n.as_ref() == b"default") {
        return Err(CmdError::new("ERR The 'default' user cannot be removed"));
    }
    let gone = ctx.server.acl.delete_users(&names);
    close_connections_of(ctx, &gone);
    Ok(Reply::Int(gone.len() as i64))
}

/// Closes the connections authenticated as users that no longer exist.
fn close_connections_of(ctx: &mut Ctx, gone: &[std::sync::Arc<acl::User>]) {
    if gone.is_empty() {
        return;
    }
    for info in ctx.server.clients.snapshot() {
        let user = info.user.lock().clone();
        if gone.iter().any(|u| u.name == user) {
            if info.id == ctx.client.id {
                ctx.client.close_after_reply = true;
            } else {
                info.send(Control::Kill);
            }
        }
    }
}

fn selector_fields(ctx: &Ctx, s: &Selector) -> Vec<(Reply, Reply)> {
    vec![
        (
            Reply::bulk_str("commands"),
            Reply::bulk(s.describe_commands(&ctx.server.commands)),
        ),
        (Reply::bulk_str("keys"), Reply::bulk(s.keys_field())),
        (Reply::bulk_str("channels"), Reply::bulk(s.channels_field())),
    ]
}

pub fn getuser(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let name = args.next()?;
    let Some(user) = ctx.server.acl.user(&name) else {
        return Ok(Reply::Null);
    };
    let rules = user.rules();
    let mut fields = vec![
        (
            Reply::bulk_str("flags"),
            Reply::Set(
                rules
                    .flag_names()
                    .into_iter()
                    .map(Reply::bulk_str)
                    .collect(),
            ),
        ),
        (
            Reply::bulk_str("passwords"),
            Reply::Array(rules.passwords.iter().map(|p| Reply::bulk_str(p)).collect()),
        ),
    ];
    fields.extend(selector_fields(ctx, &rules.selectors[0]));
    fields.push((
        Reply::bulk_str("selectors"),
        Reply::Array(
            rules.selectors[1..]
                .iter()
                .map(|s| Reply::Map(selector_fields(ctx, s)))
                .collect(),
        ),
    ));
    Ok(Reply::Map(fields))
}

pub fn list(ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    Ok(Reply::Array(
        ctx.server
            .acl
            .list(&ctx.server.commands)
            .into_iter()
            .map(Reply::bulk)
            .collect(),
    ))
}

pub fn users(ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    Ok(Reply::Array(
        ctx.server
            .acl
            .users()
            .iter()
            .map(|u| Reply::Bulk(u.name.clone()))
            .collect(),
    ))
}

pub fn whoami(ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    Ok(Reply::Bulk(ctx.client.user.name.clone()))
}

pub fn cat(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    if args.is_empty() {
        return Ok(Reply::Array(
            CATEGORIES.iter().map(|c| Reply::bulk_str(c)).collect(),
        ));
    }
    let name = args.next()?;
    let Some(mask) = acl::category_mask(&String::from_utf8_lossy(&name)) else {
        let shown: String = String::from_utf8_lossy(&name).chars().take(128).collect();
        return Err(CmdError::new(format!("ERR Unknown category '{shown}'")));
    };
    let mut out = Vec::new();
    for cmd in ctx.server.commands.commands() {
        for c in std::iter::once(cmd).chain(cmd.subcommands.values()) {
            if c.acl_mask & mask != 0 {
                out.push(Reply::bulk_str(&c.name));
            }
        }
    }
    Ok(Reply::Array(out))
}

pub fn genpass(_ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let bits = if args.is_empty() {
        256
    } else {
        args.next_i64()?
    };
    if !(1..=4096).contains(&bits) {
        return Err(CmdError::new("ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096"));
    }
    let chars = (bits as usize).div_ceil(4);
    let mut bytes = vec![0u8; chars.div_ceil(2)];
    rand::Rng::fill(&mut rand::rngs::OsRng, &mut bytes[..]);
    let mut hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    hex.truncate(chars);
    Ok(Reply::bulk_str(&hex))
}

pub fn log(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let mut count = 10i64;
    if !args.is_empty() {
        let a = args.next()?;
        if a.eq_ignore_ascii_case(b"reset") {
            ctx.server.acl.log.reset();
            return Ok(Reply::OK);
        }
        count = crate::util::parse_i64(&a)
            .ok_or_else(CmdError::not_int)?
            .max(0);
    }
    let now = crate::util::now_ms();
    let entries = ctx.server.acl.log.newest(count as usize);
    Ok(Reply::Array(
        entries
            .into_iter()
            .map(|e| {
                let s = Reply::bulk_str;
                Reply::Map(vec![
                    (s("count"), Reply::Int(e.count as i64)),
                    (s("reason"), s(e.reason.as_str())),
                    (s("context"), s(e.context.as_str())),
                    (s("object"), Reply::Bulk(e.object)),
                    (s("username"), Reply::Bulk(e.username)),
                    (
                        s("age-seconds"),
                        Reply::Double(now.saturating_sub(e.ctime_ms) as f64 / 1000.0),
                    ),
                    (s("client-info"), s(&e.client_info)),
                ])
            })
            .collect(),
    ))
}

pub fn save(ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    let file = ctx.server.config.get("aclfile");
    if file.is_empty() {
        return Err(CmdError::new(NO_ACLFILE));
    }
    let mut text = Vec::new();
    for line in ctx.server.acl.list(&ctx.server.commands) {
        text.extend_from_slice(&line);
        text.push(b'\n');
    }
    let tmp = format!(
        "{file}.tmp-{}-{}",
        std::process::id(),
        crate::util::now_ms()
    );
    let written = std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, &file));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        tracing::warn!("ACL SAVE to {file}: {e}");
        return Err(CmdError::new("ERR There was an error trying to save the ACLs. Please check the server logs for more information"));
    }
    Ok(Reply::OK)
}

/// Loads the users of the ACL file, replacing all others; on any error nothing changes.
pub fn load_file(
    server: &crate::server::Server,
    file: &str,
) -> Result<Vec<std::sync::Arc<acl::User>>, String> {
    let text = std::fs::read(file).map_err(|e| {
        format!(
            "Error loading ACLs, opening file '{file}': {}",
            os_error(&e)
        )
    })?;
    let users = server
        .acl
        .parse_users(&server.commands, &acl::file_lines(file, &text))
        .map_err(|e| {
            format!("{e}WARNING: ACL errors detected, no change to the previously active ACL rules was performed")
        })?;
    Ok(server.acl.replace_users(&server.commands, users))
}

/// The error as C's strerror words it (without Rust's " (os error N)").
fn os_error(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

pub fn load(ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    let file = ctx.server.config.get("aclfile");
    if file.is_empty() {
        return Err(CmdError::new(NO_ACLFILE));
    }
    let gone = load_file(ctx.server, &file).map_err(|e| CmdError::new(format!("ERR {e}")))?;
    close_connections_of(ctx, &gone);
    Ok(Reply::OK)
}

pub fn dryrun(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let name = args.next()?;
    let Some(user) = ctx.server.acl.user(&name) else {
        return Err(CmdError::new(format!(
            "ERR User '{}' not found",
            String::from_utf8_lossy(&name)
        )));
    };
    let argv: Vec<Bytes> = args.rest();
    let not_found = || {
        CmdError::new(format!(
            "ERR Command '{}' not found",
            String::from_utf8_lossy(&argv[0])
        ))
    };
    let top = ctx.server.commands.get(&argv[0]).ok_or_else(not_found)?;
    let cmd = match (top.is_container(), argv.len() >= 2) {
        (true, true) => top
            .subcommands
            .get(&String::from_utf8_lossy(&argv[1]).to_uppercase())
            .cloned()
            .ok_or_else(not_found)?,
        _ => top.clone(),
    };
    if !cmd.arity_ok(argv.len()) {
        return Err(CmdError::new(format!(
            "ERR wrong number of arguments for '{}' command",
            cmd.name
        )));
    }
    match acl::check(&user.rules(), &cmd, &argv[..]) {
        Ok(()) => Ok(Reply::OK),
        Err(acl::Denied::Command) => Ok(Reply::bulk_str(&format!(
            "This user has no permissions to run the '{}' command",
            cmd.name
        ))),
        Err(acl::Denied::Key(i)) => Ok(Reply::bulk_str(&format!(
            "This user has no permissions to access the '{}' key",
            String::from_utf8_lossy(&argv[i])
        ))),
        Err(acl::Denied::Channel(i)) => Ok(Reply::bulk_str(&format!(
            "This user has no permissions to access the '{}' channel",
            String::from_utf8_lossy(&argv[i])
        ))),
    }
}

pub fn help(_ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    Ok(help_reply(
        "ACL",
        &[
            "CAT [<category>]",
            "    List all commands that belong to <category>, or all command categories",
            "    when no category is specified.",
            "DELUSER <username> [<username> ...]",
            "    Delete a list of users.",
            "DRYRUN <username> <command> [<arg> ...]",
            "    Returns whether the user can execute the given command without executing the command.",
            "GETUSER <username>",
            "    Get the user's details.",
            "GENPASS [<bits>]",
            "    Generate a secure 256-bit user password. The optional `bits` argument can",
            "    be used to specify a different size.",
            "LIST",
            "    Show users details in config file format.",
            "LOAD",
            "    Reload users from the ACL file.",
            "LOG [<count> | RESET]",
            "    Show the ACL log entries.",
            "SAVE",
            "    Save the current config to the ACL file.",
            "SETUSER <username> <attribute> [<attribute> ...]",
            "    Create or modify a user with the specified attributes.",
            "USERS",
            "    List all the registered usernames.",
            "WHOAMI",
            "    Return the current connection username.",
        ],
    ))
}

/// Records a refused command, key, channel or login in the ACL log.
pub fn log_denial(
    server: &crate::server::Server,
    client: &crate::server::client::Client,
    reason: acl::log::Reason,
    context: acl::log::Context,
    object: Bytes,
    username: Option<Bytes>,
) {
    let max = server.config.get_i64("acllog-max-len").max(0) as usize;
    server.acl.log.add(
        acl::log::Entry {
            count: 1,
            reason,
            context,
            object,
            username: username.unwrap_or_else(|| client.user.name.clone()),
            ctime_ms: crate::util::now_ms(),
            client_info: client.info.describe(server),
        },
        max,
    );
}
