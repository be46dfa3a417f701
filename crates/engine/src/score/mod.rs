//! Batch scoring: a job's definition (`AI.SCORE`), records turned into batches and model
//! outputs back into per-key predictions, and the job loop with its checkpoints and pacing.
//! Hosts supply the records and take the predictions: `locus-server` scans its keyspace,
//! `locus-score` reads files.

pub mod job;
pub mod rows;
pub mod spec;

pub use job::{block_on, Job, Progress, ScoreHost, State};
pub use rows::{Prediction, Record};
pub use spec::{InputSpec, OutputSpec, Priority, ScoreSpec};
