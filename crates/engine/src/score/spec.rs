//! A scoring job's definition: the words of `AI.SCORE` after the job name, parsed, and written
//! back (a job is persisted as these words, so a restarted server re-reads them the same way).

use crate::tensor::DType;
use bytes::Bytes;

/// Rows per batch when `BATCH` is not given.
pub const DEFAULT_BATCH: usize = 256;
/// The largest `BATCH`: a batch is one model run, and its rows are held in memory.
pub const MAX_BATCH: usize = 65_536;
/// The most hash fields a row may name.
pub const MAX_FIELDS: usize = 65_536;

/// Where a key's rows come from.
#[derive(Clone, Debug, PartialEq)]
pub enum InputSpec {
    /// A hash: the named fields, parsed as numbers of `dtype`, make one row. `dtype` is `None`
    /// until the model is known (it then defaults to the model's input type).
    Hash {
        fields: Vec<Bytes>,
        dtype: Option<DType>,
    },
    /// A tensor key: its rows (dimension 0) are rows of the batch.
    Tensor,
}

/// Where a key's predictions go.
#[derive(Clone, Debug, PartialEq)]
pub enum OutputSpec {
    /// A field of the (hash) key itself: column `index` of the row's outputs, counting the
    /// columns of every model output in order (a classifier's label, then its probabilities).
    Field { name: Bytes, index: usize },
    /// A tensor key named `input key + suffix`, holding the key's rows of model output `index`.
    Tensor { suffix: Bytes, index: usize },
}

/// Whether a job yields to online requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    /// Yields: online requests of the same queue go first, and the job's batches shrink while
    /// online traffic is seen.
    Low,
    /// Runs its batches as fast as the queue takes them.
    Normal,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ScoreSpec {
    /// The model or router key.
    pub model: Bytes,
    pub version: Option<u64>,
    pub pattern: Bytes,
    pub input: InputSpec,
    /// Keys of tensors given to every batch after the rows (dimension 0 of size 1, repeated
    /// for every row).
    pub consts: Vec<Bytes>,
    pub output: OutputSpec,
    pub batch: usize,
    /// At most this many keys are scored (0: no limit).
    pub limit: u64,
    pub priority: Priority,
}

fn upper(w: &[u8]) -> String {
    String::from_utf8_lossy(w).to_ascii_uppercase()
}

fn count(w: Option<&Bytes>, what: &str, max: u64) -> Result<u64, String> {
    let w = w.ok_or_else(|| format!("ERR {what} needs a value"))?;
    crate::numbers::parse_u64(w)
        .filter(|&n| n <= max)
        .ok_or_else(|| format!("ERR {what} must be an integer from 0 to {max}"))
}

impl ScoreSpec {
    /// Parses `MODEL key [VERSION n] MATCH pattern (HASH FIELDS n f… [AS type] | TENSOR)
    /// [CONST k key…] OUTPUT (FIELD name [INDEX i] | TENSOR suffix [INDEX i]) [BATCH n]
    /// [LIMIT n] [PRIORITY LOW|NORMAL]`; after MODEL the clauses come in any order.
    pub fn parse(words: &[Bytes]) -> Result<ScoreSpec, String> {
        let mut it = words.iter().peekable();
        if it.next().map(|w| upper(w)).as_deref() != Some("MODEL") {
            return Err("ERR AI.SCORE starts with MODEL key".into());
        }
        let model = it
            .next()
            .cloned()
            .ok_or("ERR MODEL needs a model or router key")?;
        let (mut version, mut pattern, mut input, mut output) = (None, None, None, None);
        let mut consts = Vec::new();
        let (mut batch, mut limit, mut priority) = (DEFAULT_BATCH, 0, Priority::Low);
        while let Some(w) = it.next() {
            match upper(w).as_str() {
                "VERSION" => {
                    let n = count(it.next(), "VERSION", u64::MAX)?;
                    if n == 0 {
                        return Err("ERR VERSION must be a positive integer".into());
                    }
                    version = Some(n);
                }
                "MATCH" => pattern = Some(it.next().cloned().ok_or("ERR MATCH needs a pattern")?),
                "HASH" => {
                    if it.next().map(|w| upper(w)).as_deref() != Some("FIELDS") {
                        return Err("ERR HASH takes FIELDS n field …".into());
                    }
                    let n = count(it.next(), "FIELDS", MAX_FIELDS as u64)? as usize;
                    if n == 0 {
                        return Err("ERR FIELDS needs at least one field".into());
                    }
                    let fields: Vec<Bytes> = it.by_ref().take(n).cloned().collect();
                    if fields.len() != n {
                        return Err(format!("ERR FIELDS {n} names fewer than {n} fields"));
                    }
                    let mut dtype = None;
                    if it.peek().is_some_and(|w| upper(w) == "AS") {
                        it.next();
                        let t = it.next().ok_or("ERR AS needs a type")?;
                        dtype = Some(numeric_type(t)?);
                    }
                    input = Some(InputSpec::Hash { fields, dtype });
                }
                "TENSOR" if input.is_none() => input = Some(InputSpec::Tensor),
                "CONST" => {
                    let n = count(it.next(), "CONST", 1024)? as usize;
                    let keys: Vec<Bytes> = it.by_ref().take(n).cloned().collect();
                    if keys.len() != n {
                        return Err(format!("ERR CONST {n} names fewer than {n} keys"));
                    }
                    consts = keys;
                }
                "OUTPUT" => {
                    let kind = it.next().map(|w| upper(w));
                    let name = it
                        .next()
                        .cloned()
                        .ok_or("ERR OUTPUT takes FIELD name or TENSOR suffix")?;
                    let mut index = 0;
                    if it.peek().is_some_and(|w| upper(w) == "INDEX") {
                        it.next();
                        index = count(it.next(), "INDEX", u32::MAX as u64)? as usize;
                    }
                    output = Some(match kind.as_deref() {
                        Some("FIELD") => OutputSpec::Field { name, index },
                        Some("TENSOR") if !name.is_empty() => OutputSpec::Tensor {
                            suffix: name,
                            index,
                        },
                        Some("TENSOR") => {
                            return Err("ERR OUTPUT TENSOR needs a non-empty suffix".into())
                        }
                        _ => return Err("ERR OUTPUT takes FIELD name or TENSOR suffix".into()),
                    });
                }
                "BATCH" => {
                    batch = count(it.next(), "BATCH", MAX_BATCH as u64)? as usize;
                    if batch == 0 {
                        return Err(format!("ERR BATCH must be from 1 to {MAX_BATCH}"));
                    }
                }
                "LIMIT" => limit = count(it.next(), "LIMIT", u64::MAX)?,
                "PRIORITY" => {
                    priority = match it.next().map(|w| upper(w)).as_deref() {
                        Some("LOW") => Priority::Low,
                        Some("NORMAL") => Priority::Normal,
                        _ => return Err("ERR PRIORITY takes LOW or NORMAL".into()),
                    }
                }
                other => {
                    return Err(format!(
                        "ERR unknown AI.SCORE argument '{}'",
                        other.to_lowercase()
                    ))
                }
            }
        }
        let pattern = pattern.ok_or("ERR AI.SCORE needs MATCH pattern")?;
        let input = input.ok_or("ERR AI.SCORE needs HASH FIELDS … or TENSOR")?;
        let output = output.ok_or("ERR AI.SCORE needs OUTPUT FIELD … or OUTPUT TENSOR …")?;
        if matches!(
            (&input, &output),
            (InputSpec::Tensor, OutputSpec::Field { .. })
        ) {
            return Err(
                "ERR OUTPUT FIELD writes into hashes: TENSOR input needs OUTPUT TENSOR".into(),
            );
        }
        if let (InputSpec::Hash { fields, .. }, OutputSpec::Field { name, .. }) = (&input, &output)
        {
            if fields.contains(name) {
                return Err("ERR OUTPUT FIELD must not be one of the input fields".into());
            }
        }
        Ok(ScoreSpec {
            model,
            version,
            pattern,
            input,
            consts,
            output,
            batch,
            limit,
            priority,
        })
    }

    /// The definition as `AI.SCORE` words (after the job name); [`ScoreSpec::parse`] reads
    /// them back to the same definition.
    pub fn to_words(&self) -> Vec<Bytes> {
        let mut w: Vec<Bytes> = vec!["MODEL".into(), self.model.clone()];
        let num = |n: u64| Bytes::from(n.to_string());
        if let Some(v) = self.version {
            w.extend(["VERSION".into(), num(v)]);
        }
        w.extend(["MATCH".into(), self.pattern.clone()]);
        match &self.input {
            InputSpec::Hash { fields, dtype } => {
                w.extend(["HASH".into(), "FIELDS".into(), num(fields.len() as u64)]);
                w.extend(fields.iter().cloned());
                if let Some(t) = dtype {
                    w.extend(["AS".into(), Bytes::from_static(t.name().as_bytes())]);
                }
            }
            InputSpec::Tensor => w.push("TENSOR".into()),
        }
        if !self.consts.is_empty() {
            w.extend(["CONST".into(), num(self.consts.len() as u64)]);
            w.extend(self.consts.iter().cloned());
        }
        match &self.output {
            OutputSpec::Field { name, index } => {
                w.extend(["OUTPUT".into(), "FIELD".into(), name.clone()]);
                w.extend(["INDEX".into(), num(*index as u64)]);
            }
            OutputSpec::Tensor { suffix, index } => {
                w.extend(["OUTPUT".into(), "TENSOR".into(), suffix.clone()]);
                w.extend(["INDEX".into(), num(*index as u64)]);
            }
        }
        w.extend(["BATCH".into(), num(self.batch as u64)]);
        if self.limit > 0 {
            w.extend(["LIMIT".into(), num(self.limit)]);
        }
        w.extend([
            "PRIORITY".into(),
            match self.priority {
                Priority::Low => "LOW".into(),
                Priority::Normal => "NORMAL".into(),
            },
        ]);
        w
    }

    /// The keys the definition names (the model or router, and the CONST tensors).
    pub fn keys(&self) -> impl Iterator<Item = &Bytes> {
        std::iter::once(&self.model).chain(self.consts.iter())
    }
}

/// A numeric row type (`AS`): what a hash field's text is parsed as.
fn numeric_type(w: &[u8]) -> Result<DType, String> {
    match DType::parse(w) {
        Some(t) if !matches!(t, DType::String | DType::Bool) => Ok(t),
        _ => Err(format!(
            "ERR AS takes a numeric tensor type, not '{}'",
            String::from_utf8_lossy(w)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<Bytes> {
        s.split(' ')
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    #[test]
    fn parses_and_writes_back() {
        let spec = ScoreSpec::parse(&words(
            "MODEL m VERSION 2 MATCH user:* HASH FIELDS 3 a b c AS double CONST 1 ref OUTPUT FIELD score INDEX 1 BATCH 64 LIMIT 10 PRIORITY normal",
        ))
        .unwrap();
        assert_eq!(spec.version, Some(2));
        assert_eq!(
            spec.input,
            InputSpec::Hash {
                fields: words("a b c"),
                dtype: Some(DType::Double)
            }
        );
        assert_eq!(spec.priority, Priority::Normal);
        assert_eq!(ScoreSpec::parse(&spec.to_words()).unwrap(), spec);
        let t = ScoreSpec::parse(&words("MODEL m MATCH t:* TENSOR OUTPUT TENSOR :out")).unwrap();
        assert_eq!(t.batch, DEFAULT_BATCH);
        assert_eq!(t.priority, Priority::Low);
        assert_eq!(ScoreSpec::parse(&t.to_words()).unwrap(), t);
    }

    #[test]
    fn refuses_bad_definitions() {
        for (s, err) in [
            ("MATCH x TENSOR", "starts with MODEL"),
            ("MODEL m TENSOR OUTPUT TENSOR s", "needs MATCH"),
            ("MODEL m MATCH * OUTPUT TENSOR s", "needs HASH"),
            ("MODEL m MATCH * TENSOR", "needs OUTPUT"),
            (
                "MODEL m MATCH * TENSOR OUTPUT FIELD f",
                "needs OUTPUT TENSOR",
            ),
            ("MODEL m MATCH * HASH FIELDS 3 a", "fewer than 3"),
            (
                "MODEL m MATCH * HASH FIELDS 1 a OUTPUT FIELD a",
                "must not be one",
            ),
            (
                "MODEL m MATCH * HASH FIELDS 1 a AS STRING OUTPUT FIELD s",
                "numeric",
            ),
            (
                "MODEL m MATCH * TENSOR OUTPUT TENSOR s BATCH 0",
                "BATCH must be",
            ),
            (
                "MODEL m MATCH * TENSOR OUTPUT TENSOR s BATCH 99999999",
                "BATCH must be",
            ),
            (
                "MODEL m MATCH * TENSOR OUTPUT TENSOR s PRIORITY HIGH",
                "LOW or NORMAL",
            ),
            ("MODEL m MATCH * TENSOR OUTPUT TENSOR s FOO", "unknown"),
            (
                "MODEL m VERSION 0 MATCH * TENSOR OUTPUT TENSOR s",
                "positive",
            ),
        ] {
            let e = ScoreSpec::parse(&words(s)).unwrap_err();
            assert!(e.contains(err), "{s}: {e}");
        }
    }
}
