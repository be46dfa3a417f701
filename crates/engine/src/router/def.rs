//! A router's definition: the words of AI.ROUTERSET after the key, parsed, and written back.

use super::bandit::Strategy;
use bytes::Bytes;

/// A target as a definition names it: a model key (its live version), `key@n` (version n),
/// or another router's key.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetRef {
    pub key: Bytes,
    pub version: Option<u64>,
}

impl TargetRef {
    /// `key@n` when the part after the last `@` is a positive integer, else the whole word.
    pub fn parse(word: &[u8]) -> TargetRef {
        if let Some(at) = word.iter().rposition(|&b| b == b'@') {
            let tail = std::str::from_utf8(&word[at + 1..]).ok();
            if let Some(n) = tail
                .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|t| t.parse::<u64>().ok())
                .filter(|&n| n > 0)
            {
                return TargetRef {
                    key: Bytes::copy_from_slice(&word[..at]),
                    version: Some(n),
                };
            }
        }
        TargetRef {
            key: Bytes::copy_from_slice(word),
            version: None,
        }
    }

    /// The target as written in the definition.
    pub fn name(&self) -> Bytes {
        match self.version {
            None => self.key.clone(),
            Some(n) => {
                let mut v = self.key.to_vec();
                v.extend_from_slice(format!("@{n}").as_bytes());
                Bytes::from(v)
            }
        }
    }
}

/// How an ENSEMBLE combines its targets' outputs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mix {
    Mean,
    Vote,
    Weighted,
}

/// When a CASCADE escalates to its second target.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Condition {
    /// Some row's largest value is below the bound (the first model is unsure).
    MaxProbBelow(f64),
    /// Some row's argmax (or label) is this class (the refinement case).
    ArgmaxIs(i64),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cascade {
    /// Which output of the first target the condition reads.
    pub output: usize,
    pub condition: Condition,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Split {
        sticky: bool,
    },
    Shadow,
    Cascade(Cascade),
    Ensemble {
        mix: Mix,
    },
    Bandit {
        strategy: Strategy,
        seed: Option<u64>,
    },
}

/// Bounds a candidate must stay within over its last `window` requests.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Guard {
    /// Largest share of failed requests.
    pub errors: Option<f64>,
    /// Largest 99th-percentile latency, in milliseconds.
    pub p99_ms: Option<f64>,
    /// Largest share of requests whose shadow outputs disagree (argmax) with the primary's.
    pub disagree: Option<f64>,
    pub window: u64,
}

/// Progressive delivery: `step` percent more traffic every `every` requests.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ramp {
    pub step: f64,
    pub every: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RouterDef {
    pub kind: Kind,
    pub targets: Vec<TargetRef>,
    /// SPLIT: traffic weights; SHADOW: [1, sample rate]; ENSEMBLE: combining weights (1 each
    /// for MEAN and VOTE); CASCADE and BANDIT: 1 each (unused).
    pub weights: Vec<f64>,
    pub guard: Option<Guard>,
    pub ramp: Option<Ramp>,
}

/// The longest guard window: its requests are kept one by one.
pub const MAX_WINDOW: u64 = 1_000_000;

const KEYWORDS: &[&str] = &["STICKY", "GUARD", "RAMP", "SAMPLE", "SEED", "OUTPUT", "IF"];

fn is_keyword(w: &[u8]) -> bool {
    KEYWORDS
        .iter()
        .any(|k| w.eq_ignore_ascii_case(k.as_bytes()))
}

fn text(w: &[u8]) -> String {
    String::from_utf8_lossy(w).into_owned()
}

fn number(w: &[u8], what: &str) -> Result<f64, String> {
    std::str::from_utf8(w)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("ERR {what} '{}' is not a number", text(w)))
}

fn weight(w: &[u8]) -> Result<f64, String> {
    let v = number(w, "weight")?;
    if v < 0.0 {
        return Err(format!("ERR weight '{}' is negative", text(w)));
    }
    Ok(v)
}

fn rate(w: &[u8], what: &str) -> Result<f64, String> {
    let v = number(w, what)?;
    if !(0.0..=1.0).contains(&v) {
        return Err(format!("ERR {what} must be between 0 and 1"));
    }
    Ok(v)
}

fn count(w: &[u8], what: &str) -> Result<u64, String> {
    std::str::from_utf8(w)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("ERR {what} must be a positive integer"))
}

/// A cursor over the definition's words.
struct Words<'a> {
    words: &'a [Bytes],
    pos: usize,
}

impl<'a> Words<'a> {
    fn peek(&self) -> Option<&'a [u8]> {
        self.words.get(self.pos).map(|b| &b[..])
    }
    fn next(&mut self) -> Result<&'a [u8], String> {
        let w = self.peek().ok_or_else(|| "ERR syntax error".to_string())?;
        self.pos += 1;
        Ok(w)
    }
    fn eat(&mut self, kw: &str) -> bool {
        if self
            .peek()
            .is_some_and(|w| w.eq_ignore_ascii_case(kw.as_bytes()))
        {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn done(&self) -> bool {
        self.pos >= self.words.len()
    }
    /// Targets up to the next keyword or the end.
    fn targets(&mut self) -> Vec<TargetRef> {
        let mut v = Vec::new();
        while let Some(w) = self.peek().filter(|w| !is_keyword(w)) {
            v.push(TargetRef::parse(w));
            self.pos += 1;
        }
        v
    }
}

impl RouterDef {
    pub fn parse(words: &[Bytes]) -> Result<RouterDef, String> {
        let mut w = Words { words, pos: 0 };
        let kind_word = w.next()?;
        let kind_name = text(kind_word).to_ascii_uppercase();
        let mut def = match kind_name.as_str() {
            "SPLIT" => {
                let mut targets = Vec::new();
                let mut weights = Vec::new();
                while let Some(t) = w.peek().filter(|t| !is_keyword(t)) {
                    w.pos += 1;
                    let wt = w
                        .next()
                        .map_err(|_| "ERR SPLIT needs a weight after each target".to_string())?;
                    targets.push(TargetRef::parse(t));
                    weights.push(weight(wt)?);
                }
                let sticky = w.eat("STICKY");
                RouterDef {
                    kind: Kind::Split { sticky },
                    targets,
                    weights,
                    guard: None,
                    ramp: None,
                }
            }
            "SHADOW" => {
                let targets = w.targets();
                if targets.len() != 2 {
                    return Err("ERR SHADOW needs a primary and a candidate".into());
                }
                let sample = if w.eat("SAMPLE") {
                    rate(w.next()?, "SAMPLE")?
                } else {
                    1.0
                };
                RouterDef {
                    kind: Kind::Shadow,
                    targets,
                    weights: vec![1.0, sample],
                    guard: None,
                    ramp: None,
                }
            }
            "CASCADE" => {
                let targets = w.targets();
                if targets.len() != 2 {
                    return Err("ERR CASCADE needs a first and a second target".into());
                }
                let output = if w.eat("OUTPUT") {
                    std::str::from_utf8(w.next()?)
                        .ok()
                        .and_then(|s| s.parse::<usize>().ok())
                        .ok_or_else(|| "ERR OUTPUT must be an output index".to_string())?
                } else {
                    0
                };
                if !w.eat("IF") {
                    return Err("ERR CASCADE needs IF MAXPROB < x or IF ARGMAX == k".into());
                }
                let what = text(w.next()?).to_ascii_uppercase();
                let op = text(w.next()?);
                let value = w.next()?;
                let condition = match (what.as_str(), op.as_str()) {
                    ("MAXPROB", "<") => Condition::MaxProbBelow(number(value, "MAXPROB")?),
                    ("ARGMAX", "==") => Condition::ArgmaxIs(
                        std::str::from_utf8(value)
                            .ok()
                            .and_then(|s| s.parse::<i64>().ok())
                            .ok_or_else(|| "ERR ARGMAX must be a class index".to_string())?,
                    ),
                    _ => return Err("ERR CASCADE needs IF MAXPROB < x or IF ARGMAX == k".into()),
                };
                RouterDef {
                    kind: Kind::Cascade(Cascade { output, condition }),
                    weights: vec![1.0; 2],
                    targets,
                    guard: None,
                    ramp: None,
                }
            }
            "ENSEMBLE" => {
                let mix = match text(w.next()?).to_ascii_uppercase().as_str() {
                    "MEAN" => Mix::Mean,
                    "VOTE" => Mix::Vote,
                    "WEIGHTED" => Mix::Weighted,
                    _ => return Err("ERR ENSEMBLE combines by MEAN, VOTE or WEIGHTED".into()),
                };
                let rest = w.targets();
                let (targets, weights) = if mix == Mix::Weighted {
                    if !rest.len().is_multiple_of(2) {
                        return Err(
                            "ERR WEIGHTED needs one weight per target, then the targets".into()
                        );
                    }
                    let k = rest.len() / 2;
                    let weights = words[w.pos - rest.len()..w.pos - k]
                        .iter()
                        .map(|b| weight(b))
                        .collect::<Result<Vec<_>, _>>()?;
                    if weights.iter().all(|&x| x == 0.0) {
                        return Err("ERR at least one weight must be positive".into());
                    }
                    (rest[k..].to_vec(), weights)
                } else {
                    let n = rest.len();
                    (rest, vec![1.0; n])
                };
                if targets.len() < 2 {
                    return Err("ERR ENSEMBLE needs at least two targets".into());
                }
                RouterDef {
                    kind: Kind::Ensemble { mix },
                    targets,
                    weights,
                    guard: None,
                    ramp: None,
                }
            }
            "BANDIT" => {
                let strategy = match text(w.next()?).to_ascii_uppercase().as_str() {
                    "EPSILON" => Strategy::Epsilon(rate(w.next()?, "EPSILON")?),
                    "UCB1" => Strategy::Ucb1,
                    "THOMPSON" => Strategy::Thompson,
                    _ => {
                        return Err("ERR BANDIT strategies are EPSILON e, UCB1 and THOMPSON".into())
                    }
                };
                let targets = w.targets();
                if targets.len() < 2 {
                    return Err("ERR BANDIT needs at least two targets".into());
                }
                let seed = if w.eat("SEED") {
                    let s = w.next()?;
                    Some(
                        std::str::from_utf8(s)
                            .ok()
                            .and_then(|s| s.parse::<u64>().ok())
                            .ok_or_else(|| "ERR SEED must be a non-negative integer".to_string())?,
                    )
                } else {
                    None
                };
                let n = targets.len();
                RouterDef {
                    kind: Kind::Bandit { strategy, seed },
                    targets,
                    weights: vec![1.0; n],
                    guard: None,
                    ramp: None,
                }
            }
            _ => {
                return Err(format!(
                "ERR unknown router kind '{}': expected SPLIT, SHADOW, CASCADE, ENSEMBLE or BANDIT",
                text(kind_word)
            ))
            }
        };
        if def.targets.is_empty() {
            return Err("ERR a router needs at least one target".into());
        }
        if let Kind::Split { .. } = def.kind {
            if def.weights.iter().all(|&x| x == 0.0) {
                return Err("ERR at least one weight must be positive".into());
            }
        }
        // Options common to SPLIT and SHADOW.
        while !w.done() {
            if w.eat("GUARD") {
                if !matches!(def.kind, Kind::Split { .. } | Kind::Shadow) {
                    return Err("ERR GUARD applies to SPLIT and SHADOW routers".into());
                }
                let mut g = Guard {
                    errors: None,
                    p99_ms: None,
                    disagree: None,
                    window: 0,
                };
                loop {
                    if w.done() {
                        return Err("ERR GUARD needs WINDOW n".into());
                    }
                    if w.eat("ERRORS") {
                        g.errors = Some(rate(w.next()?, "ERRORS")?);
                    } else if w.eat("P99") {
                        let v = number(w.next()?, "P99")?;
                        if v <= 0.0 {
                            return Err("ERR P99 must be a positive number of milliseconds".into());
                        }
                        g.p99_ms = Some(v);
                    } else if w.eat("DISAGREE") {
                        if def.kind != Kind::Shadow {
                            return Err("ERR DISAGREE applies to SHADOW routers".into());
                        }
                        g.disagree = Some(rate(w.next()?, "DISAGREE")?);
                    } else if w.eat("WINDOW") {
                        g.window = count(w.next()?, "WINDOW")?;
                        if g.window > MAX_WINDOW {
                            return Err(format!("ERR WINDOW is at most {MAX_WINDOW} requests"));
                        }
                        break;
                    } else {
                        return Err(
                            "ERR GUARD takes ERRORS, P99, DISAGREE and then WINDOW n".into()
                        );
                    }
                }
                if g.errors.is_none() && g.p99_ms.is_none() && g.disagree.is_none() {
                    return Err("ERR GUARD needs at least one of ERRORS, P99, DISAGREE".into());
                }
                def.guard = Some(g);
            } else if w.eat("RAMP") {
                if !matches!(def.kind, Kind::Split { .. }) {
                    return Err("ERR RAMP applies to SPLIT routers".into());
                }
                let step = number(w.next()?, "RAMP step")?;
                if !(step > 0.0 && step <= 100.0) {
                    return Err("ERR RAMP step must be a percentage above 0".into());
                }
                let every = count(w.next()?, "RAMP every")?;
                def.ramp = Some(Ramp { step, every });
            } else {
                return Err(format!(
                    "ERR syntax error near '{}'",
                    text(w.peek().unwrap_or_default())
                ));
            }
        }
        if def.ramp.is_some() {
            if def.guard.is_none() {
                return Err("ERR RAMP needs a GUARD".into());
            }
            if def.targets.len() != 2 {
                return Err(
                    "ERR RAMP needs a SPLIT of two targets: baseline, then candidate".into(),
                );
            }
        }
        Ok(def)
    }

    /// The definition as AI.ROUTERSET words.
    pub fn to_words(&self) -> Vec<Bytes> {
        let s = |x: &str| Bytes::from(x.to_string());
        let num = |x: f64| Bytes::from(crate::numbers::format_f64_human(x));
        let mut out = Vec::new();
        match &self.kind {
            Kind::Split { sticky } => {
                out.push(s("SPLIT"));
                for (t, w) in self.targets.iter().zip(&self.weights) {
                    out.push(t.name());
                    out.push(num(*w));
                }
                if *sticky {
                    out.push(s("STICKY"));
                }
            }
            Kind::Shadow => {
                out.push(s("SHADOW"));
                out.extend(self.targets.iter().map(|t| t.name()));
                out.push(s("SAMPLE"));
                out.push(num(self.weights[1]));
            }
            Kind::Cascade(c) => {
                out.push(s("CASCADE"));
                out.extend(self.targets.iter().map(|t| t.name()));
                out.push(s("OUTPUT"));
                out.push(s(&c.output.to_string()));
                out.push(s("IF"));
                match c.condition {
                    Condition::MaxProbBelow(x) => {
                        out.extend([s("MAXPROB"), s("<"), num(x)]);
                    }
                    Condition::ArgmaxIs(k) => {
                        out.extend([s("ARGMAX"), s("=="), s(&k.to_string())]);
                    }
                }
            }
            Kind::Ensemble { mix } => {
                out.push(s("ENSEMBLE"));
                match mix {
                    Mix::Mean => out.push(s("MEAN")),
                    Mix::Vote => out.push(s("VOTE")),
                    Mix::Weighted => {
                        out.push(s("WEIGHTED"));
                        out.extend(self.weights.iter().map(|w| num(*w)));
                    }
                }
                out.extend(self.targets.iter().map(|t| t.name()));
            }
            Kind::Bandit { strategy, seed } => {
                out.push(s("BANDIT"));
                match strategy {
                    Strategy::Epsilon(e) => out.extend([s("EPSILON"), num(*e)]),
                    Strategy::Ucb1 => out.push(s("UCB1")),
                    Strategy::Thompson => out.push(s("THOMPSON")),
                }
                out.extend(self.targets.iter().map(|t| t.name()));
                if let Some(seed) = seed {
                    out.extend([s("SEED"), s(&seed.to_string())]);
                }
            }
        }
        if let Some(g) = &self.guard {
            out.push(s("GUARD"));
            if let Some(e) = g.errors {
                out.extend([s("ERRORS"), num(e)]);
            }
            if let Some(p) = g.p99_ms {
                out.extend([s("P99"), num(p)]);
            }
            if let Some(d) = g.disagree {
                out.extend([s("DISAGREE"), num(d)]);
            }
            out.extend([s("WINDOW"), s(&g.window.to_string())]);
        }
        if let Some(r) = &self.ramp {
            out.extend([s("RAMP"), num(r.step), s(&r.every.to_string())]);
        }
        out
    }

    /// The kind's name, as AI.ROUTERINFO and AI.ROUTERGET print it.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            Kind::Split { .. } => "SPLIT",
            Kind::Shadow => "SHADOW",
            Kind::Cascade(_) => "CASCADE",
            Kind::Ensemble { .. } => "ENSEMBLE",
            Kind::Bandit { .. } => "BANDIT",
        }
    }

    /// The index of the target written as `name` in the definition.
    pub fn target_index(&self, name: &[u8]) -> Option<usize> {
        self.targets.iter().position(|t| t.name() == name)
    }
}
