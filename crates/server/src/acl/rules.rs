//! A user's rules as Redis 7 keeps them: flags, password hashes and selectors, set by the rule
//! words of ACL SETUSER and described back in the words ACL LIST prints. Each function follows
//! its counterpart in Redis's acl.c (`ACLSetUser`, `ACLSetSelector`, `ACLDescribeUser`), so the
//! same words give the same user and the same description.

use super::{category_mask, CATEGORIES};
use crate::cmd::{Command, CommandTable};
use crate::store::glob::GlobPattern;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Key pattern permissions (`~` both, `%R~` read, `%W~` write).
pub const KEY_READ: u8 = 1;
pub const KEY_WRITE: u8 = 2;

/// Why a rule word was refused: the texts of Redis's `ACLSetUserStringError`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleError {
    Syntax,
    UnknownCommand,
    KeysAfterAll,
    ChannelsAfterAll,
    NoSuchPassword,
    BadHash,
    SubcommandFirstArg,
}

impl RuleError {
    pub fn message(self) -> &'static str {
        match self {
            RuleError::Syntax => "Syntax error",
            RuleError::UnknownCommand => "Unknown command or category name in ACL",
            RuleError::KeysAfterAll => "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns",
            RuleError::ChannelsAfterAll => "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels",
            RuleError::NoSuchPassword => {
                "The password you are trying to remove from the user does not exist"
            }
            RuleError::BadHash => "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters",
            RuleError::SubcommandFirstArg => "Allowing first-arg of a subcommand is not supported",
        }
    }
}

/// A key pattern, compiled once: every command a restricted user runs matches its keys.
#[derive(Clone, Debug)]
pub struct KeyPattern {
    pub pattern: Bytes,
    pub perms: u8,
    matcher: Matcher,
}

/// The common shapes of key patterns (`*`, `prefix:*`, an exact name) are matched without
/// the glob machine; anything else goes through it.
#[derive(Clone, Debug)]
enum Matcher {
    Any,
    Prefix(Bytes),
    Exact(Bytes),
    Glob(GlobPattern),
}

impl Matcher {
    fn new(p: &[u8]) -> Matcher {
        let special = |c: &u8| matches!(c, b'*' | b'?' | b'[' | b'\\');
        match p.split_last() {
            _ if p == b"*" => Matcher::Any,
            Some((b'*', head)) if !head.iter().any(special) => {
                Matcher::Prefix(Bytes::copy_from_slice(head))
            }
            _ if !p.iter().any(special) => Matcher::Exact(Bytes::copy_from_slice(p)),
            _ => Matcher::Glob(GlobPattern::new(p, false)),
        }
    }

    fn matches(&self, key: &[u8]) -> bool {
        // Redis's matcher never matches an empty name, not even with `*`.
        match self {
            Matcher::Any => !key.is_empty(),
            Matcher::Prefix(p) => !key.is_empty() && key.starts_with(p),
            Matcher::Exact(p) => key == p.as_ref(),
            Matcher::Glob(g) => g.matches(key),
        }
    }
}

impl PartialEq for KeyPattern {
    fn eq(&self, o: &Self) -> bool {
        self.pattern == o.pattern && self.perms == o.perms
    }
}

impl Eq for KeyPattern {}

impl KeyPattern {
    /// The pattern as a rule word. `~*` reads back as `allkeys`, after which no pattern may
    /// follow, so a read-write `*` beside other patterns (set as `%RW~*`) is described as
    /// `%RW~*`: Redis describes it as `~*`, a description its own ACL LOAD then refuses.
    fn describe(&self, out: &mut Vec<u8>, alone: bool) {
        let both = self.perms == KEY_READ | KEY_WRITE;
        out.extend_from_slice(match self.perms {
            KEY_READ => b"%R~",
            KEY_WRITE => b"%W~",
            _ if both && !alone && self.pattern.as_ref() == b"*" => b"%RW~",
            _ => b"~",
        });
        out.extend_from_slice(&self.pattern);
    }
}

/// What one selector allows: commands (a bit per command id, plus allowed first arguments of
/// otherwise blocked commands), keys and channels. A user's first selector is its root one;
/// a command runs when any selector allows all of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    pub root: bool,
    pub allkeys: bool,
    pub allchannels: bool,
    pub allcommands: bool,
    /// Set only by `+@all`/`allcommands`: the rules started from everything (Redis's reserved
    /// "future commands" bit), which decides whether a description starts `+@all` or `-@all`.
    future: bool,
    bits: Vec<u64>,
    /// First arguments allowed one by one (`+select|0`), per command, as the bytes given.
    firstargs: BTreeMap<usize, Vec<Vec<u8>>>,
    pub keys: Vec<KeyPattern>,
    pub channels: Vec<Bytes>,
}

fn has_spaces(s: &[u8]) -> bool {
    s.iter()
        .any(|&c| c.is_ascii_whitespace() || c == 0 || c == 0x0b)
}

impl Selector {
    pub fn new(commands: usize, root: bool, allchannels: bool) -> Selector {
        Selector {
            root,
            allkeys: false,
            allchannels,
            allcommands: false,
            future: false,
            bits: vec![0; commands.div_ceil(64)],
            firstargs: BTreeMap::new(),
            keys: Vec::new(),
            channels: Vec::new(),
        }
    }

    pub fn bit(&self, id: usize) -> bool {
        self.bits
            .get(id / 64)
            .is_some_and(|w| w & (1 << (id % 64)) != 0)
    }

    fn set_bit(&mut self, id: usize, on: bool) {
        if let Some(w) = self.bits.get_mut(id / 64) {
            if on {
                *w |= 1 << (id % 64);
            } else {
                *w &= !(1 << (id % 64));
            }
        }
        if !on {
            self.allcommands = false;
        }
    }

    /// Allows or blocks a command and, for a container, all its subcommands.
    fn change_perm(&mut self, cmd: &Command, allow: bool) {
        self.set_bit(cmd.id, allow);
        self.firstargs.remove(&cmd.id);
        for sub in cmd.subcommands.values() {
            self.set_bit(sub.id, allow);
        }
    }

    fn set_category(&mut self, table: &CommandTable, mask: u32, allow: bool) {
        for cmd in table.commands() {
            if cmd.acl_mask & mask != 0 {
                self.change_perm(cmd, allow);
            }
            for sub in cmd.subcommands.values() {
                if sub.acl_mask & mask != 0 {
                    self.change_perm(sub, allow);
                }
            }
        }
    }

    /// How many of a category's commands (`members`: their ids) are allowed and blocked.
    fn count_category(&self, members: &[usize]) -> (usize, usize) {
        let on = members.iter().filter(|&&id| self.bit(id)).count();
        (on, members.len() - on)
    }

    /// Applies one selector rule word (Redis's `ACLSetSelector`).
    pub fn apply(&mut self, table: &CommandTable, op: &[u8]) -> Result<(), RuleError> {
        let is = |w: &str| op.eq_ignore_ascii_case(w.as_bytes());
        if is("allkeys") || is("~*") {
            self.allkeys = true;
            self.keys.clear();
        } else if is("resetkeys") {
            self.allkeys = false;
            self.keys.clear();
        } else if is("allchannels") || is("&*") {
            self.allchannels = true;
            self.channels.clear();
        } else if is("resetchannels") {
            self.allchannels = false;
            self.channels.clear();
        } else if is("allcommands") || is("+@all") {
            self.bits.iter_mut().for_each(|w| *w = u64::MAX);
            self.allcommands = true;
            self.future = true;
            self.firstargs.clear();
        } else if is("nocommands") || is("-@all") {
            self.bits.iter_mut().for_each(|w| *w = 0);
            self.allcommands = false;
            self.future = false;
            self.firstargs.clear();
        } else if op[0] == b'~' || op[0] == b'%' {
            if self.allkeys {
                return Err(RuleError::KeysAfterAll);
            }
            let (perms, offset) = if op[0] == b'%' {
                let mut perms = 0;
                let mut offset = 1;
                loop {
                    match op.get(offset).map(u8::to_ascii_uppercase) {
                        Some(b'R') if perms & KEY_READ == 0 => perms |= KEY_READ,
                        Some(b'W') if perms & KEY_WRITE == 0 => perms |= KEY_WRITE,
                        Some(b'~') => {
                            offset += 1;
                            break;
                        }
                        _ => return Err(RuleError::Syntax),
                    }
                    offset += 1;
                }
                // `%~pattern` (no permission) and `%R` (no `~`) are refused, as Redis 7.2
                // refuses them: 7.0 took them and then could not describe the user.
                if perms == 0 || op.get(offset - 1) != Some(&b'~') {
                    return Err(RuleError::Syntax);
                }
                (perms, offset)
            } else {
                (KEY_READ | KEY_WRITE, 1)
            };
            let pattern = &op[offset.min(op.len())..];
            if has_spaces(pattern) {
                return Err(RuleError::Syntax);
            }
            match self.keys.iter_mut().find(|k| k.pattern == pattern) {
                Some(k) => k.perms |= perms,
                None => self.keys.push(KeyPattern {
                    pattern: Bytes::copy_from_slice(pattern),
                    perms,
                    matcher: Matcher::new(pattern),
                }),
            }
            self.allkeys = false;
        } else if op[0] == b'&' {
            if self.allchannels {
                return Err(RuleError::ChannelsAfterAll);
            }
            let pattern = &op[1..];
            if has_spaces(pattern) {
                return Err(RuleError::Syntax);
            }
            if !self.channels.iter().any(|c| c == pattern) {
                self.channels.push(Bytes::copy_from_slice(pattern));
            }
            self.allchannels = false;
        } else if op.len() >= 2 && (op[0] == b'+' || op[0] == b'-') && op[1] == b'@' {
            let name = String::from_utf8_lossy(&op[2..]);
            let mask = category_mask(&name).ok_or(RuleError::UnknownCommand)?;
            self.set_category(table, mask, op[0] == b'+');
        } else if op[0] == b'+' {
            let name = String::from_utf8_lossy(&op[1..]).into_owned();
            match name.rsplit_once('|') {
                None => {
                    let cmd = lookup(table, &name).ok_or(RuleError::UnknownCommand)?;
                    self.change_perm(&cmd, true);
                }
                Some((parent, sub)) => {
                    let cmd = lookup(table, parent).ok_or(RuleError::UnknownCommand)?;
                    if parent.contains('|') {
                        return Err(RuleError::SubcommandFirstArg);
                    }
                    if sub.is_empty() {
                        return Err(RuleError::Syntax);
                    }
                    if cmd.is_container() {
                        let sub = lookup(table, &name).ok_or(RuleError::UnknownCommand)?;
                        self.change_perm(&sub, true);
                    } else {
                        // Allowing one first argument of an otherwise blocked command
                        // (`+select|0`), which Redis keeps for compatibility.
                        // The argument's own bytes ('|' is never part of a UTF-8 sequence, so
                        // the split is the same as in the lossy name).
                        let raw = &op[1..];
                        let at = raw.iter().rposition(|&c| c == b'|').expect("a '|'");
                        let arg = &raw[at + 1..];
                        let list = self.firstargs.entry(cmd.id).or_default();
                        if !list.iter().any(|a| a.eq_ignore_ascii_case(arg)) {
                            list.push(arg.to_vec());
                        }
                    }
                }
            }
        } else if op[0] == b'-' {
            let name = String::from_utf8_lossy(&op[1..]);
            let cmd = lookup(table, &name).ok_or(RuleError::UnknownCommand)?;
            self.change_perm(&cmd, false);
        } else {
            return Err(RuleError::Syntax);
        }
        Ok(())
    }

    /// The command rules that rebuild this selector's bitmap (Redis's
    /// `ACLDescribeSelectorCommandRules`): `+@all` or `-@all`, then the categories that fit
    /// best, then single commands.
    pub fn describe_commands(&self, table: &CommandTable) -> Vec<u8> {
        let n = table.all().len();
        let mut rules = Vec::new();
        let additive = !self.future;
        let mut fake = Selector::new(n, false, false);
        if additive {
            rules.extend_from_slice(b"-@all ");
        } else {
            rules.extend_from_slice(b"+@all ");
            fake.apply(table, b"+@all").ok();
        }
        let mut temp = self.clone();
        let mut applied = [false; CATEGORIES.len()];
        loop {
            let mut best = None;
            let (mut mindiff, mut maxsame) = (usize::MAX, 0);
            for (j, _) in CATEGORIES.iter().enumerate() {
                if applied[j] {
                    continue;
                }
                let (on, off) = temp.count_category(table.category_members(j));
                let (diff, same) = if additive { (off, on) } else { (on, off) };
                if same > diff && (diff < mindiff || (diff == mindiff && same > maxsame)) {
                    best = Some(j);
                    mindiff = diff;
                    maxsame = same;
                }
            }
            let Some(best) = best else { break };
            fake.set_category(table, 1 << best, additive);
            temp.set_category(table, 1 << best, !additive);
            rules.extend_from_slice(if additive { b"+@" } else { b"-@" });
            rules.extend_from_slice(CATEGORIES[best].as_bytes());
            rules.push(b' ');
            applied[best] = true;
        }
        for cmd in table.commands() {
            self.describe_single(cmd, &mut fake, &mut rules);
            for sub in cmd.subcommands.values() {
                self.describe_single(sub, &mut fake, &mut rules);
            }
            if !self.bit(cmd.id) {
                for arg in self.firstargs.get(&cmd.id).into_iter().flatten() {
                    rules.push(b'+');
                    rules.extend_from_slice(cmd.name.as_bytes());
                    rules.push(b'|');
                    rules.extend_from_slice(arg);
                    rules.push(b' ');
                }
            }
        }
        rules.pop();
        rules
    }

    fn describe_single(&self, cmd: &Arc<Command>, fake: &mut Selector, rules: &mut Vec<u8>) {
        let user = self.bit(cmd.id);
        if user != fake.bit(cmd.id) {
            rules.push(if user { b'+' } else { b'-' });
            rules.extend_from_slice(cmd.name.as_bytes());
            rules.push(b' ');
            fake.change_perm(cmd, user);
        }
    }

    /// The selector as rule words (`ACLDescribeSelector`): keys, channels, commands. Bytes:
    /// patterns may hold any byte but spaces, and describe themselves as given.
    pub fn describe(&self, table: &CommandTable) -> Vec<u8> {
        let mut out = Vec::new();
        if self.allkeys {
            out.extend_from_slice(b"~* ");
        } else {
            let alone = self.keys.len() == 1;
            for k in &self.keys {
                k.describe(&mut out, alone);
                out.push(b' ');
            }
        }
        if self.allchannels {
            out.extend_from_slice(b"&* ");
        } else {
            out.extend_from_slice(b"resetchannels ");
            for c in &self.channels {
                out.push(b'&');
                out.extend_from_slice(c);
                out.push(b' ');
            }
        }
        out.extend_from_slice(&self.describe_commands(table));
        out
    }

    /// ACL GETUSER's `keys` field.
    pub fn keys_field(&self) -> Vec<u8> {
        if self.allkeys {
            return b"~*".to_vec();
        }
        let mut out = Vec::new();
        let alone = self.keys.len() == 1;
        for (i, k) in self.keys.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            k.describe(&mut out, alone);
        }
        out
    }

    /// ACL GETUSER's `channels` field.
    pub fn channels_field(&self) -> Vec<u8> {
        if self.allchannels {
            return b"&*".to_vec();
        }
        let mut out = Vec::new();
        for (i, c) in self.channels.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            out.push(b'&');
            out.extend_from_slice(c);
        }
        out
    }

    /// Whether the selector allows the command itself (not yet its keys and channels).
    pub fn allows_command(&self, cmd: &Command, first_arg: Option<&[u8]>) -> bool {
        if self.allcommands || cmd.no_auth || self.bit(cmd.id) {
            return true;
        }
        match (first_arg, self.firstargs.get(&cmd.id)) {
            (Some(arg), Some(list)) => list.iter().any(|a| a.eq_ignore_ascii_case(arg)),
            _ => false,
        }
    }

    /// Whether a key may be touched with the access `needs` (KEY_READ / KEY_WRITE bits).
    pub fn allows_key(&self, key: &[u8], needs: u8) -> bool {
        self.allkeys
            || self
                .keys
                .iter()
                .any(|p| p.perms & needs == needs && p.matcher.matches(key))
    }

    /// The first arguments allowed one by one (`+cmd|arg`), for every command.
    pub fn firstarg_words(&self) -> impl Iterator<Item = &[u8]> {
        self.firstargs.values().flatten().map(|a| a.as_slice())
    }

    /// Whether a channel (or, for PSUBSCRIBE, a pattern, compared literally) is allowed.
    pub fn allows_channel(&self, channel: &[u8], is_pattern: bool) -> bool {
        self.allchannels
            || self.channels.iter().any(|p| {
                if is_pattern {
                    p.as_ref() == channel
                } else {
                    crate::store::glob::glob_match(p, channel, false)
                }
            })
    }

    fn unrestricted(&self) -> bool {
        self.allcommands && self.allkeys && self.allchannels
    }
}

/// Looks a command or `container|sub` up by its lowercase name, as ACL rules name them.
pub fn lookup(table: &CommandTable, name: &str) -> Option<Arc<Command>> {
    match name.split_once('|') {
        None => table.get(name.as_bytes()).cloned(),
        Some((parent, sub)) => table
            .get(parent.as_bytes())?
            .subcommands
            .get(&sub.to_uppercase())
            .cloned(),
    }
}

/// A user's flags, passwords and selectors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRules {
    pub enabled: bool,
    pub nopass: bool,
    /// `skip-sanitize-payload` (Some(false)) or `sanitize-payload` (Some(true)).
    pub sanitize: Option<bool>,
    /// SHA-256 hex digests, in the order they were added.
    pub passwords: Vec<String>,
    /// The root selector first.
    pub selectors: Vec<Selector>,
    /// A selector allows every command, key and channel: no check needs to run.
    pub unrestricted: bool,
}

/// SHA-256 of a password, as the lowercase hex ACL GETUSER shows.
pub fn hash_password(pass: &[u8]) -> String {
    let digest = Sha256::digest(pass);
    let mut hex = String::with_capacity(64);
    for b in digest {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// The digest a password rule names: `>pass`/`<pass` (hashed here, `clear` being the
/// rule's first byte) or `#hash`/`!hash` (given, and checked).
fn rule_hash(op: &[u8], clear: u8) -> Result<String, RuleError> {
    if op[0] == clear {
        return Ok(hash_password(&op[1..]));
    }
    if !valid_hash(&op[1..]) {
        return Err(RuleError::BadHash);
    }
    Ok(String::from_utf8_lossy(&op[1..]).into_owned())
}

fn valid_hash(h: &[u8]) -> bool {
    h.len() == 64 && h.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

impl UserRules {
    /// A new user: off, no passwords, no commands, no keys, channels per `acl-pubsub-default`.
    pub fn new(commands: usize, allchannels: bool) -> UserRules {
        UserRules {
            enabled: false,
            nopass: false,
            sanitize: None,
            passwords: Vec::new(),
            selectors: vec![Selector::new(commands, true, allchannels)],
            unrestricted: false,
        }
    }

    /// Everything allowed, for the server's own clients.
    pub fn superuser() -> UserRules {
        let mut root = Selector::new(0, true, true);
        root.allkeys = true;
        root.allcommands = true;
        root.future = true;
        UserRules {
            enabled: true,
            nopass: true,
            sanitize: None,
            passwords: Vec::new(),
            selectors: vec![root],
            unrestricted: true,
        }
    }

    /// Applies one rule word (Redis's `ACLSetUser`).
    pub fn apply(
        &mut self,
        table: &CommandTable,
        op: &[u8],
        allchannels_default: bool,
    ) -> Result<(), RuleError> {
        let result = self.apply_inner(table, op, allchannels_default);
        self.unrestricted = self.selectors.iter().any(Selector::unrestricted);
        result
    }

    fn apply_inner(
        &mut self,
        table: &CommandTable,
        op: &[u8],
        allchannels_default: bool,
    ) -> Result<(), RuleError> {
        if op.is_empty() {
            return Ok(());
        }
        let is = |w: &str| op.eq_ignore_ascii_case(w.as_bytes());
        let commands = table.all().len();
        if is("on") {
            self.enabled = true;
        } else if is("off") {
            self.enabled = false;
        } else if is("skip-sanitize-payload") {
            self.sanitize = Some(false);
        } else if is("sanitize-payload") {
            self.sanitize = Some(true);
        } else if is("nopass") {
            self.nopass = true;
            self.passwords.clear();
        } else if is("resetpass") {
            self.nopass = false;
            self.passwords.clear();
        } else if op[0] == b'>' || op[0] == b'#' {
            let hash = rule_hash(op, b'>')?;
            if !self.passwords.contains(&hash) {
                self.passwords.push(hash);
            }
            self.nopass = false;
        } else if op[0] == b'<' || op[0] == b'!' {
            let hash = rule_hash(op, b'<')?;
            let Some(at) = self.passwords.iter().position(|p| *p == hash) else {
                return Err(RuleError::NoSuchPassword);
            };
            self.passwords.remove(at);
        } else if op[0] == b'(' && op[op.len() - 1] == b')' {
            let mut selector = Selector::new(commands, false, allchannels_default);
            let inner = &op[1..op.len() - 1];
            for word in inner
                .split(|c| c.is_ascii_whitespace())
                .filter(|w| !w.is_empty())
            {
                selector.apply(table, word)?;
            }
            self.selectors.push(selector);
        } else if is("clearselectors") {
            self.selectors.truncate(1);
        } else if is("reset") {
            for w in ["resetpass", "resetkeys", "resetchannels"] {
                self.apply_inner(table, w.as_bytes(), allchannels_default)?;
            }
            if allchannels_default {
                self.apply_inner(table, b"allchannels", allchannels_default)?;
            }
            for w in ["off", "sanitize-payload", "clearselectors", "-@all"] {
                self.apply_inner(table, w.as_bytes(), allchannels_default)?;
            }
        } else {
            self.selectors[0].apply(table, op)?;
        }
        Ok(())
    }

    /// The rules as ACL LIST prints them after the user's name (`ACLDescribeUser`).
    pub fn describe(&self, table: &CommandTable) -> Vec<u8> {
        let mut out = Vec::new();
        for flag in self.flag_names() {
            out.extend_from_slice(flag.as_bytes());
            out.push(b' ');
        }
        for p in &self.passwords {
            out.push(b'#');
            out.extend_from_slice(p.as_bytes());
            out.push(b' ');
        }
        for s in &self.selectors {
            let d = s.describe(table);
            if s.root {
                out.extend_from_slice(&d);
            } else {
                out.extend_from_slice(b" (");
                out.extend_from_slice(&d);
                out.push(b')');
            }
        }
        out
    }

    /// The flags in Redis's order: on, off, nopass, skip-sanitize-payload, sanitize-payload.
    pub fn flag_names(&self) -> Vec<&'static str> {
        let mut flags = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            flags.push("nopass");
        }
        match self.sanitize {
            Some(false) => flags.push("skip-sanitize-payload"),
            Some(true) => flags.push("sanitize-payload"),
            None => {}
        }
        flags
    }

    /// Checks a password against the user's hashes in time independent of where they differ.
    pub fn password_ok(&self, pass: &[u8]) -> bool {
        if self.nopass {
            return true;
        }
        let hashed = hash_password(pass);
        let mut ok = false;
        for p in &self.passwords {
            let diff = p
                .bytes()
                .zip(hashed.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            ok |= diff == 0;
        }
        ok
    }
}

/// Joins rule words that open a selector with `(` and close it later with `)` into one word,
/// as Redis's `ACLMergeSelectorArguments` does. Errs with the index of an unclosed `(`.
pub fn merge_selectors(words: &[Bytes]) -> Result<Vec<Bytes>, usize> {
    let mut out = Vec::with_capacity(words.len());
    let mut open: Option<(usize, Vec<u8>)> = None;
    for (i, w) in words.iter().enumerate() {
        if let Some((_, buf)) = open.as_mut() {
            buf.push(b' ');
            buf.extend_from_slice(w);
            if w.last() == Some(&b')') {
                out.push(Bytes::from(open.take().unwrap().1));
            }
            continue;
        }
        if w.first() == Some(&b'(') && w.last() != Some(&b')') {
            open = Some((i, w.to_vec()));
            continue;
        }
        out.push(w.clone());
    }
    match open {
        Some((i, _)) => Err(i),
        None => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn words(s: &str) -> Vec<Bytes> {
        s.split(' ')
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    fn apply_all(table: &CommandTable, rules: &mut UserRules, ws: &[Bytes]) {
        for w in merge_selectors(ws).unwrap() {
            rules.apply(table, &w, false).unwrap();
        }
    }

    #[test]
    fn default_user_and_new_user_describe_as_redis_does() {
        let t = CommandTable::load();
        let mut d = UserRules::new(t.all().len(), false);
        apply_all(&t, &mut d, &words("+@all ~* &* on nopass"));
        assert_eq!(d.describe(&t), b"on nopass ~* &* +@all");
        assert!(d.unrestricted);
        let n = UserRules::new(t.all().len(), false);
        assert_eq!(n.describe(&t), b"off resetchannels -@all");
    }

    #[test]
    fn read_write_star_beside_other_patterns_describes_itself_so_it_reads_back() {
        // Found by the acl fuzz target: Redis describes `%RW~*` as `~*`, which reads back as
        // allkeys, and then refuses the patterns after it.
        let t = CommandTable::load();
        let mut u = UserRules::new(t.all().len(), false);
        apply_all(&t, &mut u, &words("on %RW~* ~y."));
        let described = u.describe(&t);
        assert_eq!(described, b"on %RW~* ~y. resetchannels -@all");
        let mut again = UserRules::new(t.all().len(), false);
        apply_all(
            &t,
            &mut again,
            &words(std::str::from_utf8(&described).unwrap()),
        );
        assert_eq!(again.describe(&t), described);
        // Alone, it is `~*`, as in Redis (and the same as allkeys).
        let mut alone = UserRules::new(t.all().len(), false);
        apply_all(&t, &mut alone, &words("%RW~*"));
        assert_eq!(alone.describe(&t), b"off ~* resetchannels -@all");
    }

    #[test]
    fn first_arguments_keep_their_bytes() {
        // `+select|<arg>` takes any bytes (Redis keeps them as given): a first argument that is
        // not UTF-8 must allow exactly itself and describe itself unchanged.
        let t = CommandTable::load();
        let select = t.get(b"select").expect("SELECT");
        let mut u = UserRules::new(t.all().len(), false);
        u.apply(&t, b"+select|\xff\xfe", false).unwrap();
        u.apply(&t, b"+select|Ab", false).unwrap();
        let s = &u.selectors[0];
        assert!(s.allows_command(select, Some(b"\xff\xfe")));
        assert!(s.allows_command(select, Some(b"aB")));
        // The lossy text of those bytes is another argument.
        assert!(!s.allows_command(select, Some("\u{fffd}\u{fffd}".as_bytes())));
        let described = u.describe(&t);
        assert_eq!(
            described,
            b"off resetchannels -@all +select|\xff\xfe +select|Ab".to_vec()
        );
        let mut again = UserRules::new(t.all().len(), false);
        for w in described.split(|&c| c == b' ') {
            again.apply(&t, w, false).unwrap();
        }
        assert_eq!(again.describe(&t), described);
    }
    #[test]
    fn errors_leave_their_text() {
        let t = CommandTable::load();
        let mut u = UserRules::new(t.all().len(), false);
        let e = |u: &mut UserRules, w: &str| u.apply(&t, w.as_bytes(), false).unwrap_err();
        assert_eq!(e(&mut u, "+nosuch"), RuleError::UnknownCommand);
        assert_eq!(e(&mut u, "#abc"), RuleError::BadHash);
        assert_eq!(e(&mut u, "<nopass"), RuleError::NoSuchPassword);
        assert_eq!(e(&mut u, "+config|get|x"), RuleError::SubcommandFirstArg);
        assert_eq!(e(&mut u, "bogus"), RuleError::Syntax);
        assert_eq!(e(&mut u, "%~x"), RuleError::Syntax);
        assert_eq!(e(&mut u, "%R"), RuleError::Syntax);
        u.apply(&t, b"%RW~x", false).unwrap();
        u.apply(&t, b"allkeys", false).unwrap();
        assert_eq!(e(&mut u, "~x"), RuleError::KeysAfterAll);
    }

    #[test]
    fn fast_key_matchers_agree_with_the_glob_machine() {
        let keys: &[&[u8]] = &[
            b"", b"k", b"key:1", b"key:", b"keys", b"a*b", b"x\\y", b"kex:1",
        ];
        for p in [
            &b"*"[..],
            b"key:*",
            b"key:1",
            b"k?y:*",
            b"a\\*b",
            b"[k]ey:*",
            b"key\\:*",
            b"*:1",
        ] {
            let m = Matcher::new(p);
            for k in keys {
                assert_eq!(
                    m.matches(k),
                    crate::store::glob::glob_match(p, k, false),
                    "{} against {}",
                    String::from_utf8_lossy(p),
                    String::from_utf8_lossy(k)
                );
            }
        }
    }

    const OPS: &[&str] = &[
        "+@all",
        "-@all",
        "+@read",
        "-@read",
        "+@write",
        "-@write",
        "+@string",
        "-@hash",
        "+@admin",
        "-@dangerous",
        "+@ai",
        "-@ai-manage",
        "+@ai-run",
        "+get",
        "-get",
        "+set",
        "-config",
        "+config|get",
        "-client",
        "+client|id",
        "+select|0",
        "+@pubsub",
        "-publish",
        "allcommands",
        "nocommands",
        "+ai.modelexecute",
        "-ai.tensorset",
        "+acl|whoami",
    ];

    proptest! {
        /// The description of any rule sequence, applied to a fresh user, gives the same
        /// command bitmap (the check Redis's ACLDescribeSelectorCommandRules asserts).
        #[test]
        fn descriptions_rebuild_the_same_commands(ops in prop::collection::vec(0..OPS.len(), 0..12)) {
            let t = CommandTable::load();
            let mut sel = Selector::new(t.all().len(), true, false);
            for &i in &ops {
                sel.apply(&t, OPS[i].as_bytes()).unwrap();
            }
            let described = sel.describe_commands(&t);
            let mut again = Selector::new(t.all().len(), true, false);
            for w in described.split(|&c| c == b' ') {
                again.apply(&t, w).unwrap();
            }
            for c in t.all() {
                prop_assert_eq!(sel.bit(c.id), again.bit(c.id), "{} after {:?}: {}", c.name, ops, String::from_utf8_lossy(&described));
                prop_assert_eq!(sel.allows_command(c, Some(b"0")), again.allows_command(c, Some(b"0")));
            }
        }
    }
}
