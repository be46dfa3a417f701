//! Pub/sub: channel and pattern subscriptions, and delivery to subscribed connections.
//!
//! A message is handed to each subscriber's connection as a control message; the bytes queued
//! for a connection are counted, and a subscriber that does not read is disconnected once it
//! passes `client-output-buffer-limit pubsub` (the hard limit at once, the soft limit after it
//! stayed over it for the given seconds), so a slow reader never grows memory without bound.

use super::client::{ClientInfo, Control};
use super::reply::Reply;
use crate::store::glob::GlobPattern;
use ahash::RandomState;
use bytes::Bytes;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// `client-output-buffer-limit` for the pubsub class.
#[derive(Clone, Copy, Default)]
pub struct OutputLimit {
    pub hard: usize,
    pub soft: usize,
    pub soft_secs: u64,
}

#[derive(Default)]
pub struct PubSub {
    channels: RwLock<HashMap<Bytes, Vec<Arc<ClientInfo>>, RandomState>>,
    /// Each pattern is compiled once, at PSUBSCRIBE, and matched against every published channel.
    patterns: RwLock<Vec<(Bytes, GlobPattern, Arc<ClientInfo>)>>,
}

impl PubSub {
    pub fn subscribe(&self, channel: &Bytes, client: &Arc<ClientInfo>) {
        self.channels
            .write()
            .entry(channel.clone())
            .or_default()
            .push(client.clone());
    }

    pub fn unsubscribe(&self, channel: &[u8], id: u64) {
        let mut map = self.channels.write();
        if let Some(subs) = map.get_mut(channel) {
            subs.retain(|c| c.id != id);
            if subs.is_empty() {
                map.remove(channel);
            }
        }
    }

    pub fn psubscribe(&self, pattern: &Bytes, client: &Arc<ClientInfo>) {
        self.patterns.write().push((
            pattern.clone(),
            GlobPattern::new(pattern, false),
            client.clone(),
        ));
    }

    pub fn punsubscribe(&self, pattern: &[u8], id: u64) {
        self.patterns
            .write()
            .retain(|(p, _, c)| !(c.id == id && p.as_ref() == pattern));
    }

    /// Delivers `message` to every subscriber of `channel` and of a matching pattern; returns
    /// how many received it.
    pub fn publish(&self, channel: &Bytes, message: &Bytes, limit: OutputLimit) -> usize {
        let mut n = 0;
        let size = 48 + channel.len() + message.len();
        if let Some(subs) = self.channels.read().get(channel) {
            for c in subs {
                let msg = Reply::Push(vec![
                    Reply::bulk_str("message"),
                    Reply::Bulk(channel.clone()),
                    Reply::Bulk(message.clone()),
                ]);
                n += deliver(c, msg, size, limit) as usize;
            }
        }
        for (pattern, matcher, c) in self.patterns.read().iter() {
            if matcher.matches(channel) {
                let msg = Reply::Push(vec![
                    Reply::bulk_str("pmessage"),
                    Reply::Bulk(pattern.clone()),
                    Reply::Bulk(channel.clone()),
                    Reply::Bulk(message.clone()),
                ]);
                n += deliver(c, msg, size + pattern.len(), limit) as usize;
            }
        }
        n
    }

    /// PUBSUB CHANNELS: active channels, optionally matching a pattern.
    pub fn channels(&self, pattern: Option<&[u8]>) -> Vec<Bytes> {
        let matcher = pattern.map(|p| GlobPattern::new(p, false));
        self.channels
            .read()
            .keys()
            .filter(|c| matcher.as_ref().is_none_or(|p| p.matches(c)))
            .cloned()
            .collect()
    }

    /// Channels with at least one subscriber (INFO pubsub_channels).
    pub fn channel_count(&self) -> usize {
        self.channels.read().len()
    }

    /// One client's channels (false) and patterns (true), for ACL changes that revoke them.
    pub fn subscriptions_of(&self, id: u64) -> Vec<(Bytes, bool)> {
        let mut out: Vec<(Bytes, bool)> = self
            .channels
            .read()
            .iter()
            .filter(|(_, subs)| subs.iter().any(|c| c.id == id))
            .map(|(ch, _)| (ch.clone(), false))
            .collect();
        out.extend(
            self.patterns
                .read()
                .iter()
                .filter(|(_, _, c)| c.id == id)
                .map(|(p, _, _)| (p.clone(), true)),
        );
        out
    }

    /// PUBSUB NUMSUB: subscribers of one channel.
    pub fn numsub(&self, channel: &[u8]) -> usize {
        self.channels.read().get(channel).map_or(0, |v| v.len())
    }

    /// PUBSUB NUMPAT: distinct patterns subscribed to.
    pub fn numpat(&self) -> usize {
        let p = self.patterns.read();
        let mut names: Vec<&Bytes> = p.iter().map(|(p, _, _)| p).collect();
        names.sort();
        names.dedup();
        names.len()
    }
}

/// Queues one message for a subscriber unless it is over its output limit, in which case it
/// is disconnected instead. Returns whether it counts as received (as in Redis, a subscriber
/// closed for this very message still counts).
fn deliver(c: &ClientInfo, msg: Reply, size: usize, limit: OutputLimit) -> bool {
    let pending = c.pending_out.fetch_add(size, Ordering::Relaxed) + size;
    let over_hard = limit.hard > 0 && pending > limit.hard;
    let over_soft = limit.soft > 0 && pending > limit.soft;
    let now = crate::util::now_ms();
    let soft_expired = if over_soft {
        let since = c.soft_since_ms.load(Ordering::Relaxed);
        if since == 0 {
            c.soft_since_ms.store(now, Ordering::Relaxed);
            false
        } else {
            now.saturating_sub(since) >= limit.soft_secs * 1000
        }
    } else {
        c.soft_since_ms.store(0, Ordering::Relaxed);
        false
    };
    if over_hard || soft_expired {
        c.pending_out.fetch_sub(size, Ordering::Relaxed);
        if !c.is_killed() {
            tracing::warn!(
                "Client id={} addr={} scheduled to be closed for overcoming of output buffer limits.",
                c.id,
                c.addr
            );
            c.send(Control::Kill);
            return true;
        }
        return false;
    }
    c.send(Control::Message(msg, size));
    true
}
