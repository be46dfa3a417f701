//! Pub/sub commands: SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE, PUBLISH, PUBSUB.
//! Delivery and output limits live in `server::pubsub`.

use super::{Args, CmdResult, Ctx};
use crate::server::client::Client;
use crate::server::pubsub::OutputLimit;
use crate::server::reply::Reply;
use crate::server::Server;
use bytes::Bytes;

/// The client's subscription count, published for CLIENT LIST as it changes.
fn count(client: &Client) -> i64 {
    use std::sync::atomic::Ordering;
    client
        .info
        .subs
        .store(client.channels.len(), Ordering::Relaxed);
    client
        .info
        .psubs
        .store(client.patterns.len(), Ordering::Relaxed);
    (client.channels.len() + client.patterns.len()) as i64
}

fn notice(kind: &'static str, name: Option<Bytes>, n: i64) -> Reply {
    Reply::Push(vec![
        Reply::bulk_str(kind),
        name.map_or(Reply::Null, Reply::Bulk),
        Reply::Int(n),
    ])
}

/// Channels or patterns: the two subscription kinds differ only in names and registry calls.
#[derive(Clone, Copy)]
enum Kind {
    Channel,
    Pattern,
}

impl Kind {
    fn set(self, client: &mut Client) -> &mut std::collections::HashSet<Bytes, ahash::RandomState> {
        match self {
            Kind::Channel => &mut client.channels,
            Kind::Pattern => &mut client.patterns,
        }
    }
}

fn subscribe_generic(ctx: &mut Ctx, args: &mut Args, kind: Kind) -> CmdResult {
    let label = match kind {
        Kind::Channel => "subscribe",
        Kind::Pattern => "psubscribe",
    };
    let mut out = Vec::new();
    for name in args.rest() {
        let name = super::own(name);
        if kind.set(ctx.client).insert(name.clone()) {
            match kind {
                Kind::Channel => ctx.server.pubsub.subscribe(&name, &ctx.client.info),
                Kind::Pattern => ctx.server.pubsub.psubscribe(&name, &ctx.client.info),
            }
        }
        out.push(notice(label, Some(name), count(ctx.client)));
    }
    Ok(Reply::Many(out))
}

fn unsubscribe_generic(ctx: &mut Ctx, args: &mut Args, kind: Kind) -> CmdResult {
    let label = match kind {
        Kind::Channel => "unsubscribe",
        Kind::Pattern => "punsubscribe",
    };
    let mut names = args.rest();
    if names.is_empty() {
        names = kind.set(ctx.client).iter().cloned().collect();
        if names.is_empty() {
            return Ok(Reply::Many(vec![notice(label, None, count(ctx.client))]));
        }
    }
    let mut out = Vec::new();
    for name in names {
        if kind.set(ctx.client).remove(&name) {
            match kind {
                Kind::Channel => ctx.server.pubsub.unsubscribe(&name, ctx.client.id),
                Kind::Pattern => ctx.server.pubsub.punsubscribe(&name, ctx.client.id),
            }
        }
        out.push(notice(label, Some(name), count(ctx.client)));
    }
    Ok(Reply::Many(out))
}

pub fn subscribe(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    subscribe_generic(ctx, args, Kind::Channel)
}

pub fn psubscribe(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    subscribe_generic(ctx, args, Kind::Pattern)
}

pub fn unsubscribe(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    unsubscribe_generic(ctx, args, Kind::Channel)
}

pub fn punsubscribe(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    unsubscribe_generic(ctx, args, Kind::Pattern)
}

/// Drops every subscription of a client (RESET, disconnect).
pub fn unsubscribe_all(server: &Server, client: &mut Client) {
    for ch in client.channels.drain() {
        server.pubsub.unsubscribe(&ch, client.id);
    }
    for p in client.patterns.drain() {
        server.pubsub.punsubscribe(&p, client.id);
    }
    count(client);
}

pub fn publish(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let (channel, message) = (args.next()?, args.next()?);
    let (hard, soft, soft_secs) = ctx.server.config.pubsub_output_limit();
    let n = ctx.server.pubsub.publish(
        &channel,
        &message,
        OutputLimit {
            hard,
            soft,
            soft_secs,
        },
    );
    Ok(Reply::Int(n as i64))
}

pub fn pubsub_channels(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    if args.remaining() > 1 {
        return Err(super::CmdError::new(
            "ERR unknown subcommand or wrong number of arguments for 'CHANNELS'. Try PUBSUB HELP.",
        ));
    }
    let pattern = args.rest().into_iter().next();
    Ok(Reply::Array(
        ctx.server
            .pubsub
            .channels(pattern.as_deref())
            .into_iter()
            .map(Reply::Bulk)
            .collect(),
    ))
}

pub fn pubsub_numsub(ctx: &mut Ctx, args: &mut Args) -> CmdResult {
    let mut out = Vec::new();
    for ch in args.rest() {
        let n = ctx.server.pubsub.numsub(&ch);
        out.push(Reply::Bulk(ch));
        out.push(Reply::Int(n as i64));
    }
    Ok(Reply::Array(out))
}

pub fn pubsub_numpat(ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    Ok(Reply::Int(ctx.server.pubsub.numpat() as i64))
}

pub fn pubsub_help(_ctx: &mut Ctx, _args: &mut Args) -> CmdResult {
    let lines = [
        "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CHANNELS [<pattern>]",
        "    Return the currently active channels matching a <pattern> (default: '*').",
        "NUMPAT",
        "    Return number of subscriptions to patterns.",
        "NUMSUB [<channel> ...]",
        "    Return the number of subscribers for the specified channels, excluding",
        "    pattern subscriptions(default: no channels).",
        "HELP",
        "    Prints this help.",
    ];
    Ok(Reply::Array(
        lines
            .iter()
            .map(|l| Reply::StatusOwned(l.to_string()))
            .collect(),
    ))
}
