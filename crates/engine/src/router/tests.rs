use super::*;
use crate::tensor::{DType, Tensor};

fn words(s: &str) -> Vec<Bytes> {
    s.split_whitespace()
        .map(|w| Bytes::from(w.to_string()))
        .collect()
}

fn router(s: &str) -> Router {
    Router::parse(&words(s)).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn err(s: &str) -> String {
    Router::parse(&words(s)).expect_err(s)
}

#[test]
fn definitions_round_trip() {
    for s in [
        "SPLIT a 95 b@2 5 STICKY",
        "SPLIT a 90 b 10 GUARD ERRORS 0.02 P99 50 WINDOW 100 RAMP 10 500",
        "SHADOW a b@3 SAMPLE 0.25 GUARD DISAGREE 0.1 WINDOW 50",
        "CASCADE small big OUTPUT 1 IF MAXPROB < 0.8",
        "CASCADE car plate IF ARGMAX == 3",
        "ENSEMBLE MEAN a b c",
        "ENSEMBLE VOTE a b c",
        "ENSEMBLE WEIGHTED 2 1 a b",
        "BANDIT EPSILON 0.1 a b c SEED 7",
        "BANDIT UCB1 a b",
        "BANDIT THOMPSON a b c SEED 1",
    ] {
        let r = router(s);
        let again = Router::parse(&r.to_words()).expect("canonical form parses");
        assert_eq!(r.def, again.def, "{s}");
    }
    let r = router("SPLIT a 95 b 5");
    assert_eq!(
        r.to_words(),
        words("SPLIT a 95 b 5"),
        "weights print without a fraction"
    );
    assert_eq!(
        TargetRef::parse(b"m@12"),
        TargetRef {
            key: Bytes::from_static(b"m"),
            version: Some(12)
        }
    );
    assert_eq!(TargetRef::parse(b"user@example").version, None);
}

#[test]
fn bad_definitions_say_why() {
    assert!(err("ROUND a b").contains("unknown router kind 'ROUND'"));
    assert!(err("SPLIT a x").contains("weight 'x' is not a number"));
    assert!(err("SPLIT a -1 b 2").contains("negative"));
    assert!(err("SPLIT a 0 b 0").contains("positive"));
    assert!(err("SPLIT a").contains("weight after each target"));
    assert!(err("SHADOW a").contains("primary and a candidate"));
    assert!(err("SHADOW a b SAMPLE 2").contains("between 0 and 1"));
    assert!(err("CASCADE a b IF MAXPROB > 1").contains("IF MAXPROB"));
    assert!(err("ENSEMBLE MEDIAN a b").contains("MEAN, VOTE or WEIGHTED"));
    assert!(err("ENSEMBLE WEIGHTED 1 a b").contains("one weight per target"));
    assert!(err("ENSEMBLE MEAN a").contains("at least two"));
    assert!(err("BANDIT GREEDY a b").contains("strategies"));
    assert!(err("SPLIT a 1 b 1 GUARD WINDOW 10").contains("at least one"));
    assert!(err("SPLIT a 1 b 1 GUARD ERRORS 0.1").contains("needs WINDOW"));
    assert!(err("SPLIT a 1 b 1 GUARD DISAGREE 0.1 WINDOW 5").contains("SHADOW"));
    assert!(err("SPLIT a 1 b 1 RAMP 10 100").contains("needs a GUARD"));
    assert!(err("ENSEMBLE MEAN a b GUARD ERRORS 0.1 WINDOW 5").contains("SPLIT and SHADOW"));
    assert!(err("SPLIT a 1 b 1 GUARD ERRORS 0.1 WINDOW 2000000").contains("at most"));
    assert!(err("SPLIT a 1 b 1 STICKY FOO").contains("syntax error"));
}

#[test]
fn split_weights_hold() {
    let r = router("SPLIT a 80 b 20");
    let mut counts = [0u32; 2];
    for _ in 0..20_000 {
        match r.decide(b"x") {
            Decision::One(i) => counts[i] += 1,
            d => panic!("{d:?}"),
        }
    }
    let share = counts[1] as f64 / 20_000.0;
    assert!((share - 0.2).abs() < 0.02, "{counts:?}");
}

#[test]
fn sticky_is_a_fixed_function_of_the_name() {
    let a = router("SPLIT a 50 b 50 STICKY");
    let b = router("SPLIT a 50 b 50 STICKY");
    let mut seen = [false; 2];
    for i in 0..200 {
        let name = format!("user:{i}");
        let d = a.decide(name.as_bytes());
        assert_eq!(d, a.decide(name.as_bytes()));
        assert_eq!(d, b.decide(name.as_bytes()));
        if let Decision::One(t) = d {
            seen[t] = true;
        }
    }
    assert_eq!(seen, [true, true]);
}

#[test]
fn a_guard_rolls_back_within_one_window() {
    let r = router("SPLIT a 50 b 50 GUARD ERRORS 0.02 WINDOW 100");
    let mut events = Vec::new();
    // 5% of the candidate's requests fail.
    for i in 0..100 {
        events.extend(r.record(1, 100, i % 20 != 0));
        if !events.is_empty() {
            break;
        }
    }
    assert!(
        matches!(events[0], Event::Rollback { target: 1, .. }),
        "{events:?}"
    );
    assert_eq!(r.weights(), vec![50.0, 0.0]);
    for _ in 0..1000 {
        assert_eq!(r.decide(b"k"), Decision::One(0));
    }
    // The baseline is never rolled back.
    for _ in 0..100 {
        assert!(r.record(0, 100, false).is_empty());
    }
    let report = r.report();
    assert!(
        report[1].guard.starts_with("breached: errors"),
        "{}",
        report[1].guard
    );
    assert_eq!(report[1].rollbacks, 1);
}

#[test]
fn a_healthy_candidate_ramps_to_everything() {
    let r = router("SPLIT a 90 b 10 GUARD ERRORS 0.5 WINDOW 10 RAMP 30 5");
    let mut events = Vec::new();
    for _ in 0..100 {
        events.extend(r.record(1, 100, true));
    }
    let steps: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, Event::RampStep { .. }))
        .collect();
    assert_eq!(steps.len(), 3, "10 -> 40 -> 70 -> 100: {events:?}");
    assert!(events.contains(&Event::RampDone { target: 1 }));
    assert_eq!(r.weights(), vec![0.0, 100.0]);
}

#[test]
fn p99_guard_counts_slow_requests() {
    let r = router("SPLIT a 1 b 1 GUARD P99 10 WINDOW 200");
    let mut rolled = false;
    for i in 0..200 {
        let slow = i % 50 == 0; // 2% above 10 ms
        rolled |= !r
            .record(1, if slow { 20_000 } else { 1_000 }, true)
            .is_empty();
    }
    assert!(rolled);
}

#[test]
fn bandits_find_the_best_arm() {
    use rand::{Rng, SeedableRng};
    for strategy in ["EPSILON 0.1", "UCB1", "THOMPSON"] {
        let r = router(&format!("BANDIT {strategy} a b c SEED 42"));
        let p = [0.1, 0.2, 0.3];
        let mut env = rand::rngs::SmallRng::seed_from_u64(9);
        let mut best = 0;
        for i in 0..10_000 {
            let Decision::One(arm) = r.decide(b"") else {
                panic!()
            };
            r.record(arm, 10, true);
            let key = Bytes::from(format!("out:{i}"));
            r.remember_outputs(arm, std::slice::from_ref(&key));
            let reward = if env.gen::<f64>() < p[arm] { 1.0 } else { 0.0 };
            assert_eq!(r.reward(&key, reward), Ok(arm));
            if i >= 8_000 && arm == 2 {
                best += 1;
            }
        }
        assert!(best >= 1_700, "{strategy}: {best} of 2000 to the best arm");
    }
}

fn f(shape: &[usize], v: &[f32]) -> Tensor {
    let b: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    Tensor::from_raw(DType::Float, shape, &b)
}

fn close(t: &Tensor, want: &[f32]) {
    let got: Vec<f32> = t
        .blob()
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
    }
}

#[test]
fn combining_outputs() {
    let a = f(&[2, 3], &[0.1, 0.7, 0.2, 0.5, 0.4, 0.1]);
    let b = f(&[2, 3], &[0.3, 0.3, 0.4, 0.6, 0.3, 0.1]);
    let c = f(&[2, 3], &[0.2, 0.6, 0.2, 0.1, 0.1, 0.8]);
    let mean = combine::ensemble(Mix::Mean, &[1.0, 1.0], &[vec![a.clone()], vec![b.clone()]])
        .expect("mean");
    close(&mean[0], &[0.2, 0.5, 0.3, 0.55, 0.35, 0.1]);
    let vote = combine::ensemble(
        Mix::Vote,
        &[1.0, 1.0, 1.0],
        &[vec![a.clone()], vec![b.clone()], vec![c]],
    )
    .expect("vote");
    let third = 1.0f32 / 3.0;
    close(
        &vote[0],
        &[0.0, 2.0 * third, third, 2.0 * third, 0.0, third],
    );
    let agreement = combine::compare(std::slice::from_ref(&a), &[b]);
    assert_eq!(agreement.outputs[0].rows, 2);
    assert_eq!(agreement.outputs[0].rows_agree, 1);
    assert!((agreement.outputs[0].max_abs_diff - 0.4).abs() < 1e-6);
    assert!(agreement.disagrees());
    assert!(!combine::compare(std::slice::from_ref(&a), std::slice::from_ref(&a)).disagrees());
    assert!(combine::escalates(Condition::MaxProbBelow(0.6), &a));
    assert!(!combine::escalates(Condition::MaxProbBelow(0.5), &a));
    assert!(combine::escalates(Condition::ArgmaxIs(0), &a));
    assert!(!combine::escalates(Condition::ArgmaxIs(2), &a));
    let bad = combine::ensemble(Mix::Mean, &[1.0, 1.0], &[vec![a], vec![f(&[3], &[1.0; 3])]]);
    assert!(bad.unwrap_err().contains("differ in shape"));
}
