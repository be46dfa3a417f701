//! Router definitions (SPLIT, CANARY, SHADOW, CASCADE, ENSEMBLE, BANDIT and their options) as
//! AI.ROUTERSET parses them; a definition that parses must describe itself in words that parse
//! back to the same description.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use locus_engine::router::RouterDef;

fuzz_target!(|data: &[u8]| {
    let words: Vec<Bytes> = data
        .split(|&b| b == b' ')
        .map(Bytes::copy_from_slice)
        .collect();
    if let Ok(def) = RouterDef::parse(&words) {
        let again = RouterDef::parse(&def.to_words()).expect("a router's own words parse");
        assert_eq!(again.to_words(), def.to_words());
    }
});
