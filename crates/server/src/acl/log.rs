//! The ACL log (ACL LOG): refused commands, keys, channels and failed logins, newest first.
//! Like entries within a minute of each other are folded into one with a count, as Redis does.

use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::VecDeque;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Command,
    Key,
    Channel,
    Auth,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Command => "command",
            Reason::Key => "key",
            Reason::Channel => "channel",
            Reason::Auth => "auth",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    Toplevel,
    Multi,
    Lua,
}

impl Context {
    pub fn as_str(self) -> &'static str {
        match self {
            Context::Toplevel => "toplevel",
            Context::Multi => "multi",
            Context::Lua => "lua",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub count: u64,
    pub reason: Reason,
    pub context: Context,
    pub object: Bytes,
    pub username: Bytes,
    pub ctime_ms: u64,
    pub client_info: String,
}

/// Redis folds an event into an entry at most this old.
const GROUPING_MS: u64 = 60_000;

#[derive(Default)]
pub struct AclLog {
    entries: Mutex<VecDeque<Entry>>,
}

impl AclLog {
    /// Records an event, folding it into a like entry among the ten newest.
    pub fn add(&self, mut e: Entry, max_len: usize) {
        let mut entries = self.entries.lock();
        let like = entries.iter().take(10).position(|c| {
            c.reason == e.reason
                && c.context == e.context
                && c.ctime_ms.abs_diff(e.ctime_ms) <= GROUPING_MS
                && c.object == e.object
                && c.username == e.username
        });
        if let Some(i) = like {
            let mut found = entries.remove(i).expect("index found above");
            found.count += 1;
            found.ctime_ms = e.ctime_ms;
            found.client_info = std::mem::take(&mut e.client_info);
            entries.push_front(found);
        } else {
            entries.push_front(e);
            entries.truncate(max_len);
        }
    }

    pub fn newest(&self, count: usize) -> Vec<Entry> {
        self.entries.lock().iter().take(count).cloned().collect()
    }

    pub fn reset(&self) {
        self.entries.lock().clear();
    }

    pub fn trim(&self, max_len: usize) {
        self.entries.lock().truncate(max_len);
    }
}
