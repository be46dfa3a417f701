//! Model versions: what a model key holds. Every store adds a numbered version instead of
//! discarding the old one; one version is live (it serves runs that name no version), the
//! others are kept for promotion, rollback, shadowing or inspection, bounded by a maximum.
//!
//! A [`VersionedModel`] is a value: hosts change it by building the next one and swapping it in
//! under their key lock, so a reader (a run being parsed, a snapshot being written) always sees
//! one whole state, and a flip between versions is atomic. Versions are shared between
//! successive states through `Arc`, so a version's model, with its run statistics and sessions,
//! is the same object before and after a promote.

use super::model::Model;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Who stored a version and when, with the user's own metadata.
#[derive(Clone, Debug, Default)]
pub struct VersionInfo {
    /// Unix time of the store, in milliseconds.
    pub created_ms: u64,
    /// The user the storing client was authenticated as.
    pub created_by: String,
    /// The storing client's name (CLIENT SETNAME), empty when it had none.
    pub client_name: String,
    /// The hex SHA-256 of the model blob.
    pub sha256: String,
    /// Free-form field/value pairs given with META (training run, data set digest, owner…).
    pub meta: Vec<(Bytes, Bytes)>,
}

/// One stored version. When the last state holding it lets go (the version was deleted or
/// evicted, or its key left the keyspace), its model retires: runs still queued for it are
/// dropped rather than run against a version that no longer exists.
pub struct ModelVersion {
    pub number: u64,
    pub model: Arc<Model>,
    pub info: VersionInfo,
    /// Whether the version has ever been live (a staged version never has).
    served: AtomicBool,
}

impl Drop for ModelVersion {
    fn drop(&mut self) {
        self.model.retire();
    }
}

impl std::fmt::Debug for ModelVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelVersion")
            .field("number", &self.number)
            .field("model", &self.model)
            .finish()
    }
}

impl ModelVersion {
    pub fn new(number: u64, model: Model, info: VersionInfo, served: bool) -> ModelVersion {
        ModelVersion {
            number,
            model: Arc::new(model),
            info,
            served: AtomicBool::new(served),
        }
    }

    /// Whether the version has ever served.
    pub fn has_served(&self) -> bool {
        self.served.load(Ordering::Relaxed)
    }
}

/// Where a version stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Serves runs that name no version.
    Live,
    /// Stored with STAGED and never live yet.
    Staged,
    /// Was live once; kept for rollback.
    Previous,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Live => "live",
            Status::Staged => "staged",
            Status::Previous => "previous",
        }
    }
}

/// The versions of one model key.
#[derive(Clone, Debug, Default)]
pub struct VersionedModel {
    /// Ascending by number.
    versions: Vec<Arc<ModelVersion>>,
    live: Option<u64>,
    /// The versions that were live before, most recent last: MODELROLLBACK walks back along it.
    history: Vec<u64>,
    /// The number the next store gets.
    next: u64,
}

/// The hex SHA-256 of a model blob (MODELVERSIONS, MODELLIST, the audit stream).
pub fn sha256_hex(blob: &[u8]) -> String {
    let digest = Sha256::digest(blob);
    let mut s = String::with_capacity(64);
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

impl VersionedModel {
    /// Rebuilds a stored state (snapshot loading). `versions` must be ascending by number.
    pub fn restore(
        versions: Vec<ModelVersion>,
        live: Option<u64>,
        history: Vec<u64>,
        next: u64,
    ) -> VersionedModel {
        let vm = VersionedModel {
            versions: versions.into_iter().map(Arc::new).collect(),
            live,
            history,
            next,
        };
        vm.settle_sessions();
        vm
    }

    /// The version that serves, if any (a key whose only stores were STAGED has none).
    pub fn live(&self) -> Option<&Arc<ModelVersion>> {
        self.live.and_then(|n| self.get(n))
    }

    pub fn live_number(&self) -> Option<u64> {
        self.live
    }

    pub fn get(&self, number: u64) -> Option<&Arc<ModelVersion>> {
        self.versions
            .binary_search_by_key(&number, |v| v.number)
            .ok()
            .map(|i| &self.versions[i])
    }

    /// The version a request names, or the live one: the errors are what the client sees.
    pub fn resolve(&self, number: Option<u64>) -> Result<&Arc<ModelVersion>, String> {
        match number {
            Some(n) => self
                .get(n)
                .ok_or_else(|| format!("ERR model has no version {n}")),
            None => self
                .live()
                .ok_or_else(|| "ERR model has no live version: promote one first".to_string()),
        }
    }

    pub fn versions(&self) -> &[Arc<ModelVersion>] {
        &self.versions
    }

    pub fn history(&self) -> &[u64] {
        &self.history
    }

    /// The number the next store gets.
    pub fn next_number(&self) -> u64 {
        self.next.max(1)
    }

    pub fn status(&self, v: &ModelVersion) -> Status {
        if self.live == Some(v.number) {
            Status::Live
        } else if v.has_served() {
            Status::Previous
        } else {
            Status::Staged
        }
    }

    /// Adds a version: live unless `staged`. Keeps at most `max` versions, evicting the oldest
    /// that is not live. Returns the new version's number and the numbers evicted.
    pub fn add(
        &mut self,
        model: Model,
        info: VersionInfo,
        staged: bool,
        max: usize,
    ) -> (u64, Vec<u64>) {
        let number = self.next_number();
        self.next = number + 1;
        self.versions
            .push(Arc::new(ModelVersion::new(number, model, info, !staged)));
        if !staged {
            self.make_live(number);
        }
        let mut evicted = Vec::new();
        while self.versions.len() > max.max(1) {
            let Some(oldest) = self.versions.iter().find(|v| Some(v.number) != self.live) else {
                break;
            };
            let n = oldest.number;
            self.forget(n);
            evicted.push(n);
        }
        self.settle_sessions();
        (number, evicted)
    }

    /// Makes version `number` live; the version live before becomes the rollback target.
    pub fn promote(&mut self, number: u64) -> Result<(), String> {
        let v = self
            .get(number)
            .ok_or_else(|| format!("ERR model has no version {number}"))?;
        v.served.store(true, Ordering::Relaxed);
        if self.live != Some(number) {
            self.make_live(number);
        }
        self.settle_sessions();
        Ok(())
    }

    /// Returns to the version that was live before the last promote or store; returns it.
    pub fn rollback(&mut self) -> Result<u64, String> {
        // The version live now may also sit deeper in the history (it was promoted again).
        while self.history.last().is_some_and(|&n| Some(n) == self.live) {
            self.history.pop();
        }
        let Some(previous) = self.history.pop() else {
            return Err("ERR no earlier live version to roll back to".into());
        };
        self.live = Some(previous);
        self.settle_sessions();
        Ok(previous)
    }

    /// Deletes one version; the live one cannot be (delete the whole key instead).
    pub fn remove(&mut self, number: u64) -> Result<(), String> {
        if self.get(number).is_none() {
            return Err(format!("ERR model has no version {number}"));
        }
        if self.live == Some(number) {
            return Err(
                "ERR version is live: promote another version first, or delete the whole model"
                    .into(),
            );
        }
        self.forget(number);
        Ok(())
    }

    /// Bytes held by every version (blobs and sessions), for MEMORY USAGE and INFO.
    pub fn memory_usage(&self) -> usize {
        self.versions.iter().map(|v| v.model.memory_usage()).sum()
    }

    fn make_live(&mut self, number: u64) {
        if let Some(old) = self.live {
            self.history.retain(|&n| n != old);
            self.history.push(old);
        }
        self.live = Some(number);
    }

    fn forget(&mut self, number: u64) {
        self.versions.retain(|v| v.number != number);
        self.history.retain(|&n| n != number);
    }

    /// Only the live version keeps a pooled session; the others keep their blob and build a
    /// session again when run.
    fn settle_sessions(&self) {
        for v in &self.versions {
            // A version a router still sends requests to stays ready, live or not.
            if Some(v.number) != self.live && !v.model.recently_routed() {
                v.model.release_sessions();
            }
        }
    }
}
