//! Access control as Redis 7 has it: users with passwords and selectors, the checks every
//! command passes (its category and command bits, every key its key specs name, every
//! channel), and the ACL log. The AI commands add three categories of their own: `@ai` for all
//! of them, `@ai-run` for using models (tensors, execution, DAGs, scoring) and `@ai-manage`
//! for managing them (store, delete, promote, rollback, routers, monitors, logs, config), so a
//! user can be allowed to run a model without being able to replace it.

pub mod log;
pub mod rules;

use crate::cmd::{ArgList, Command, CommandTable};
use bytes::Bytes;
use parking_lot::RwLock;
use rules::{RuleError, UserRules, KEY_READ, KEY_WRITE};
use smallvec::SmallVec;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// ACL categories in Redis's order (ACL CAT lists them so), then Locus's own.
pub const CATEGORIES: &[&str] = &[
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
    "ai",
    "ai-run",
    "ai-manage",
];

/// The bit of a category name (case-insensitive), as `Command::acl_mask` holds them.
pub fn category_mask(name: &str) -> Option<u32> {
    CATEGORIES
        .iter()
        .position(|c| c.eq_ignore_ascii_case(name))
        .map(|i| 1 << i)
}

/// A user. Connections hold it and re-read its rules when the ACL epoch moves, so a change
/// made by ACL SETUSER applies to connections already authenticated as the user.
pub struct User {
    pub name: Bytes,
    rules: RwLock<Arc<UserRules>>,
    /// Deleted (ACL DELUSER, or gone after ACL LOAD): its connections are closed.
    pub removed: AtomicBool,
}

impl User {
    fn new(name: Bytes, rules: UserRules) -> Arc<User> {
        Arc::new(User {
            name,
            rules: RwLock::new(Arc::new(rules)),
            removed: AtomicBool::new(false),
        })
    }

    pub fn rules(&self) -> Arc<UserRules> {
        self.rules.read().clone()
    }

    pub fn name_str(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

/// The user the server's own clients run as (blocked retries, jobs, scripts started by the
/// server): named `default`, allowed everything, and never registered, so no ACL rule
/// reaches it.
pub fn internal_user() -> Arc<User> {
    static INTERNAL: std::sync::LazyLock<Arc<User>> = std::sync::LazyLock::new(|| {
        User::new(Bytes::from_static(b"default"), UserRules::superuser())
    });
    INTERNAL.clone()
}

/// A user allowed everything under another name: what a host that checks ACL rules itself
/// (the Redis module, where redis-server does) runs a client's calls as, so that the calls
/// record who made them.
pub fn trusted_user(name: Bytes) -> Arc<User> {
    if name.as_ref() == b"default" {
        return internal_user();
    }
    User::new(name, UserRules::superuser())
}

/// Why a command was refused, with the argument position of the key or channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    Command,
    Key(usize),
    Channel(usize),
}

impl Denied {
    fn rank(self) -> (u8, usize) {
        match self {
            Denied::Command => (1, 0),
            Denied::Key(i) => (2, i),
            Denied::Channel(i) => (4, i),
        }
    }

    /// The reply to a refused command (Redis's processCommand).
    pub fn error(self, cmd: &Command) -> String {
        match self {
            Denied::Command => format!(
                "NOPERM this user has no permissions to run the '{}' command",
                cmd.name
            ),
            Denied::Key(_) => {
                "NOPERM this user has no permissions to access one of the keys used as arguments"
                    .into()
            }
            Denied::Channel(_) => "NOPERM this user has no permissions to access one of the channels used as arguments".into(),
        }
    }

    /// The reason scripts report (`getAclErrorMessage`).
    pub fn script_reason(self) -> &'static str {
        match self {
            Denied::Command => "can't run this command or subcommand",
            Denied::Key(_) => {
                "can't access at least one of the keys mentioned in the command arguments"
            }
            Denied::Channel(_) => "can't publish to the channel mentioned in the command",
        }
    }

    /// The reason EXEC reports when the rules changed after a command was queued.
    pub fn exec_reason(self) -> &'static str {
        match self {
            Denied::Command => "no permission to execute the command or subcommand",
            Denied::Key(_) => "no permission to touch the specified keys",
            Denied::Channel(_) => "no permission to access one of the channels used as arguments",
        }
    }

    pub fn log_reason(self) -> log::Reason {
        match self {
            Denied::Command => log::Reason::Command,
            Denied::Key(_) => log::Reason::Key,
            Denied::Channel(_) => log::Reason::Channel,
        }
    }

    /// The logged object: the command's name, or the key or channel refused.
    pub fn object<A: ArgList + ?Sized>(self, cmd: &Command, argv: &A) -> Bytes {
        match self {
            Denied::Command => Bytes::from(cmd.name.clone()),
            Denied::Key(i) | Denied::Channel(i) => Bytes::copy_from_slice(argv.arg(i)),
        }
    }
}

/// How a command names pub/sub channels (Redis's `getChannelsFromCommand`).
fn channels<A: ArgList + ?Sized>(cmd: &Command, argv: &A) -> SmallVec<[(usize, bool); 4]> {
    let n = argv.argc();
    match cmd.name.as_str() {
        "publish" | "spublish" if n > 1 => smallvec::smallvec![(1, false)],
        "subscribe" | "ssubscribe" => (1..n).map(|i| (i, false)).collect(),
        "psubscribe" => (1..n).map(|i| (i, true)).collect(),
        _ => SmallVec::new(),
    }
}

/// Whether `rules` let the command run with these arguments (Redis's
/// `ACLCheckAllUserCommandPerm`): some selector must allow the command, all its keys with the
/// access their key specs declare, and all its channels.
pub fn check<A: ArgList + ?Sized>(
    rules: &UserRules,
    cmd: &Command,
    argv: &A,
) -> Result<(), Denied> {
    if rules.unrestricted {
        return Ok(());
    }
    let first_arg_at = if cmd.is_sub { 2 } else { 1 };
    let first_arg = (argv.argc() > first_arg_at).then(|| argv.arg(first_arg_at));
    let mut keys = None;
    let mut worst = Denied::Command;
    for s in &rules.selectors {
        let verdict = (|| {
            if !s.allows_command(cmd, first_arg) {
                return Err(Denied::Command);
            }
            if !s.allkeys && cmd.has_keys() {
                // The common single-key command: no key list to build.
                if let Some((i, needs)) = cmd.single_key {
                    if i < argv.argc() && !s.allows_key(argv.arg(i), needs) {
                        return Err(Denied::Key(i));
                    }
                } else {
                    let keys = keys.get_or_insert_with(|| cmd.keys_with_access(argv));
                    for &(i, needs) in keys.iter() {
                        if !s.allows_key(argv.arg(i), needs) {
                            return Err(Denied::Key(i));
                        }
                    }
                }
            }
            if !s.allchannels && cmd.channels {
                for (i, pattern) in channels(cmd, argv) {
                    if !s.allows_channel(argv.arg(i), pattern) {
                        return Err(Denied::Channel(i));
                    }
                }
            }
            Ok(())
        })();
        match verdict {
            Ok(()) => return Ok(()),
            Err(d) if d.rank() > worst.rank() => worst = d,
            Err(_) => {}
        }
    }
    Err(worst)
}

/// Whether `rules` allow touching one key with the given access, outside a command's own
/// arguments (a router's target, a model the HTTP face runs).
pub fn key_allowed(rules: &UserRules, key: &[u8], write: bool) -> bool {
    let needs = if write { KEY_WRITE } else { KEY_READ };
    rules.unrestricted || rules.selectors.iter().any(|s| s.allows_key(key, needs))
}

/// All users, the ACL log and the epoch connections compare to notice changes.
pub struct Acl {
    users: RwLock<BTreeMap<Bytes, Arc<User>>>,
    default_user: Arc<User>,
    /// Moves on every change to any user's rules.
    pub epoch: AtomicU64,
    /// Whether new connections must authenticate (the default user has passwords or is off).
    pub auth_required: AtomicBool,
    pub log: log::AclLog,
    /// `acl-pubsub-default allchannels`: new users and selectors start with every channel.
    pub pubsub_allchannels: AtomicBool,
}

impl Acl {
    pub fn new(table: &CommandTable) -> Acl {
        let mut rules = UserRules::new(table.all().len(), false);
        for w in ["+@all", "~*", "&*", "on", "nopass"] {
            rules
                .apply(table, w.as_bytes(), false)
                .expect("default rules");
        }
        let default_user = User::new(Bytes::from_static(b"default"), rules);
        let mut users = BTreeMap::new();
        users.insert(default_user.name.clone(), default_user.clone());
        Acl {
            users: RwLock::new(users),
            default_user,
            epoch: AtomicU64::new(1),
            auth_required: AtomicBool::new(false),
            log: log::AclLog::default(),
            pubsub_allchannels: AtomicBool::new(false),
        }
    }

    pub fn default_user(&self) -> Arc<User> {
        self.default_user.clone()
    }

    /// Whether the default user takes no password (protected mode then applies).
    pub fn default_nopass(&self) -> bool {
        self.default_user.rules().nopass
    }

    pub fn user(&self, name: &[u8]) -> Option<Arc<User>> {
        self.users.read().get(name).cloned()
    }

    pub fn users(&self) -> Vec<Arc<User>> {
        self.users.read().values().cloned().collect()
    }

    fn changed(&self) {
        let d = self.default_user.rules();
        self.auth_required
            .store(!d.nopass || !d.enabled, Ordering::Relaxed);
        self.epoch.fetch_add(1, Ordering::Release);
    }

    /// Applies rule words to a user, creating it if needed; nothing changes unless every word
    /// applies (Redis's `ACLStringSetUser`). Returns Redis's error text on failure.
    pub fn set_user(
        &self,
        table: &CommandTable,
        name: &[u8],
        words: &[Bytes],
    ) -> Result<(), String> {
        let merged = rules::merge_selectors(words).map_err(|i| {
            format!(
                "Unmatched parenthesis in acl selector starting at '{}'.",
                String::from_utf8_lossy(&words[i])
            )
        })?;
        let allchannels = self.pubsub_allchannels.load(Ordering::Relaxed);
        let mut users = self.users.write();
        let existing = users.get(name).cloned();
        let mut staged = match &existing {
            Some(u) => (*u.rules()).clone(),
            None => UserRules::new(table.all().len(), allchannels),
        };
        for w in &merged {
            staged.apply(table, w, allchannels).map_err(|e| {
                format!(
                    "Error in ACL SETUSER modifier '{}': {}",
                    String::from_utf8_lossy(w),
                    e.message()
                )
            })?;
        }
        match existing {
            Some(u) => *u.rules.write() = Arc::new(staged),
            None => {
                let name = Bytes::copy_from_slice(name);
                users.insert(name.clone(), User::new(name, staged));
            }
        }
        drop(users);
        self.changed();
        Ok(())
    }

    /// Deletes users; returns those that existed (their connections are to be closed).
    pub fn delete_users(&self, names: &[Bytes]) -> Vec<Arc<User>> {
        let mut users = self.users.write();
        let gone: Vec<_> = names.iter().filter_map(|n| users.remove(n)).collect();
        drop(users);
        for u in &gone {
            u.removed.store(true, Ordering::Relaxed);
        }
        self.changed();
        gone
    }

    /// `requirepass`: the default user's only password, or none (nopass) when empty.
    pub fn set_default_password(&self, table: &CommandTable, pass: &[u8]) {
        let mut rules = (*self.default_user.rules()).clone();
        let allchannels = self.pubsub_allchannels.load(Ordering::Relaxed);
        rules.apply(table, b"resetpass", allchannels).ok();
        if pass.is_empty() {
            rules.apply(table, b"nopass", allchannels).ok();
        } else {
            let mut op = b">".to_vec();
            op.extend_from_slice(pass);
            rules.apply(table, &op, allchannels).ok();
        }
        *self.default_user.rules.write() = Arc::new(rules);
        self.changed();
    }

    /// Checks credentials; returns the user when they are right and the user is enabled.
    pub fn authenticate(&self, name: &[u8], pass: &[u8]) -> Option<Arc<User>> {
        let user = self.user(name)?;
        let rules = user.rules();
        (rules.enabled && rules.password_ok(pass)).then_some(user)
    }

    /// The user a bearer token names: the one whose password the token is (`ACL GENPASS` makes
    /// good tokens). Several users sharing the token is refused as ambiguous.
    pub fn authenticate_token(&self, token: &[u8]) -> Option<Arc<User>> {
        let users = self.users.read();
        let mut found = users.values().filter(|u| {
            let r = u.rules();
            r.enabled && !r.nopass && r.password_ok(token)
        });
        let first = found.next()?.clone();
        found.next().is_none().then_some(first)
    }

    /// The users of an ACL file or of `user` lines in the config file, parsed and validated as
    /// a whole: Ok(users by name) or Redis's one-line description of every problem.
    pub fn parse_users(
        &self,
        table: &CommandTable,
        lines: &[(String, usize, Vec<Bytes>)],
    ) -> Result<BTreeMap<Bytes, UserRules>, String> {
        let allchannels = self.pubsub_allchannels.load(Ordering::Relaxed);
        let mut out: BTreeMap<Bytes, UserRules> = BTreeMap::new();
        let mut errors = String::new();
        for (file, line, words) in lines {
            if words.len() < 2 || words[0].as_ref() != b"user" {
                errors.push_str(&format!(
                    "{file}:{line} should start with user keyword followed by the username. "
                ));
                continue;
            }
            let name = &words[1];
            if name.iter().any(|c| c.is_ascii_whitespace() || *c == 0) {
                errors.push_str(&format!(
                    "'{file}:{line}: username '{}' contains invalid characters. ",
                    String::from_utf8_lossy(name)
                ));
                continue;
            }
            if out.contains_key(name) {
                errors.push_str(&format!(
                    "WARNING: Duplicate user '{}' found on line {line}. ",
                    String::from_utf8_lossy(name)
                ));
                continue;
            }
            let Ok(merged) = rules::merge_selectors(&words[2..]) else {
                errors.push_str(&format!(
                    "{file}:{line}: Unmatched parenthesis in selector definition."
                ));
                continue;
            };
            let mut rules = UserRules::new(table.all().len(), allchannels);
            let mut syntax_error = false;
            for w in &merged {
                if let Err(e) = rules.apply(table, w, allchannels) {
                    if e == RuleError::UnknownCommand {
                        errors.push_str(&format!(
                            "{file}:{line}: Error in applying operation '{}': {}. ",
                            String::from_utf8_lossy(w),
                            e.message()
                        ));
                    } else if !syntax_error {
                        errors.push_str(&format!("{file}:{line}: {}. ", e.message()));
                        syntax_error = true;
                    }
                }
            }
            out.insert(name.clone(), rules);
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }

    /// Replaces every user with `loaded` (ACL LOAD, and the users of the config file at
    /// start-up). The default user keeps its identity (connections hold it) and takes the
    /// loaded rules, or the defaults if the file has none; other users are new, so connections
    /// authenticated as the old ones are returned to be closed.
    pub fn replace_users(
        &self,
        table: &CommandTable,
        mut loaded: BTreeMap<Bytes, UserRules>,
    ) -> Vec<Arc<User>> {
        let default_rules = loaded.remove(&b"default"[..]).unwrap_or_else(|| {
            let mut r = UserRules::new(table.all().len(), false);
            for w in ["+@all", "~*", "&*", "on", "nopass"] {
                r.apply(table, w.as_bytes(), false).ok();
            }
            r
        });
        *self.default_user.rules.write() = Arc::new(default_rules);
        let mut users = self.users.write();
        let old: Vec<Arc<User>> = std::mem::take(&mut *users)
            .into_values()
            .filter(|u| !Arc::ptr_eq(u, &self.default_user))
            .collect();
        users.insert(self.default_user.name.clone(), self.default_user.clone());
        for (name, rules) in loaded {
            users.insert(name.clone(), User::new(name, rules));
        }
        drop(users);
        for u in &old {
            u.removed.store(true, Ordering::Relaxed);
        }
        self.changed();
        old
    }

    /// Adds or replaces the given users, leaving the others (the config file's `user` lines).
    pub fn add_users(&self, loaded: BTreeMap<Bytes, UserRules>) {
        let mut users = self.users.write();
        for (name, rules) in loaded {
            match users.get(&name) {
                Some(u) => *u.rules.write() = Arc::new(rules),
                None => {
                    users.insert(name.clone(), User::new(name, rules));
                }
            }
        }
        drop(users);
        self.changed();
    }

    /// Every user as a `user <name> <rules>` line (ACL LIST, ACL SAVE).
    pub fn list(&self, table: &CommandTable) -> Vec<Vec<u8>> {
        self.users()
            .iter()
            .map(|u| {
                let mut line = b"user ".to_vec();
                line.extend_from_slice(&u.name);
                line.push(b' ');
                line.extend_from_slice(&u.rules().describe(table));
                line
            })
            .collect()
    }
}

/// Splits an ACL file into numbered lines of words (bytes: patterns may hold any byte but
/// spaces).
pub fn file_lines(file: &str, text: &[u8]) -> Vec<(String, usize, Vec<Bytes>)> {
    let trim = |w: &[u8]| -> Bytes {
        let start = w.iter().position(|c| !matches!(c, b'\t' | b'\r' | b'\n'));
        let end = w.iter().rposition(|c| !matches!(c, b'\t' | b'\r' | b'\n'));
        match (start, end) {
            (Some(a), Some(b)) => Bytes::copy_from_slice(&w[a..=b]),
            _ => Bytes::new(),
        }
    };
    text.split(|&c| c == b'\n')
        .enumerate()
        .filter_map(|(i, line)| {
            let words: Vec<Bytes> = line
                .split(|&c| c == b' ')
                .map(trim)
                .filter(|w| !w.is_empty())
                .collect();
            (!words.is_empty()).then(|| (file.to_string(), i + 1, words))
        })
        .collect()
}
