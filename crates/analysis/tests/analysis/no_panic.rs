//! No input makes a judge panic: NaN scalars, zero and huge counts, errors
//! above requests, weights beyond 100, clocks that go backwards. And no
//! input puts NaN or an infinity into a reason or into serialized evidence.

use proptest::prelude::*;
use serin_analysis::{AnalysisConfig, Analyzer, Decision, JudgeKind, MetricCheck, TickInput};

/// Every reason reads without `NaN`/`inf`, and the decision survives a JSON
/// round trip unchanged (JSON has no NaN or infinity: serde would write
/// `null` and the value would come back different, or not at all).
fn assert_clean(d: &Decision) -> Result<(), TestCaseError> {
    let texts = d.reasons.iter().chain(d.metrics.iter().map(|m| &m.reason));
    for r in texts {
        let bad = r.split(|c: char| !c.is_alphanumeric()).any(|w| {
            w.eq_ignore_ascii_case("nan")
                || w.eq_ignore_ascii_case("inf")
                || w.eq_ignore_ascii_case("infinity")
        });
        prop_assert!(!bad, "reason with NaN/inf: {r}");
    }
    let json = serde_json::to_string(d).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let back: Decision =
        serde_json::from_str(&json).map_err(|e| TestCaseError::fail(format!("{e}: {json}")))?;
    // serde_json's float parsing may differ in the last bit: compare numbers
    // with a relative tolerance, everything else exactly.
    let close = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => a.is_finite() && (a - b).abs() <= 1e-12 * a.abs().max(1.0),
        (None, None) => true,
        _ => false,
    };
    prop_assert_eq!(back.verdict, d.verdict);
    prop_assert_eq!(&back.reasons, &d.reasons);
    prop_assert_eq!(back.metrics.len(), d.metrics.len());
    for (b, m) in back.metrics.iter().zip(&d.metrics) {
        prop_assert_eq!(
            (&b.name, b.status, &b.reason),
            (&m.name, m.status, &m.reason)
        );
        for (x, y) in [
            (b.canary, m.canary),
            (b.stable, m.stable),
            (b.margin, m.margin),
            (b.e_value, m.e_value),
            (b.p_value, m.p_value),
            (b.range.0, m.range.0),
            (b.range.1, m.range.1),
            (b.interval.map(|i| i.low), m.interval.map(|i| i.low)),
            (b.interval.map(|i| i.high), m.interval.map(|i| i.high)),
        ] {
            prop_assert!(close(x, y), "{:?} vs {:?} in {}", x, y, json);
        }
    }
    Ok(())
}
use serin_stats::{Counts, Pair};

fn counts() -> impl Strategy<Value = Counts> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        0u64..u64::MAX,
        0u64..1000,
    )
        .prop_map(|(requests, errors, micros, n, small)| {
            let mut c = Counts {
                requests: if small % 3 == 0 { small } else { requests },
                errors: if small % 5 == 0 { small / 2 } else { errors },
                ..Counts::default()
            };
            c.latency
                .record_n(micros, if small % 2 == 0 { small } else { n });
            c
        })
}

fn scalar() -> impl Strategy<Value = Option<f64>> {
    prop_oneof![
        Just(None),
        Just(Some(f64::NAN)),
        Just(Some(f64::INFINITY)),
        Just(Some(0.0)),
        any::<f64>().prop_map(Some),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn judges_never_panic(
        steps in proptest::collection::vec((counts(), counts(), any::<u8>(), any::<u64>(), scalar(), scalar()), 1..12),
    ) {
        for judge in JudgeKind::ALL {
            let mut cfg = AnalysisConfig::flagger_defaults().with_judge(judge);
            cfg.metrics.push(MetricCheck::named("request-duration-p50").compare(Some(0.0), Some(1.1)));
            cfg.metrics.push(MetricCheck::named("request-rate").range(Some(1.0), None));
            cfg.metrics.push(MetricCheck::named("conversion").range(Some(1.0), Some(2.0)).compare(Some(0.1), Some(1.5)));
            cfg.metrics[0] = cfg.metrics[0].clone().compare(Some(1.0), Some(2.0));
            let mut a = Analyzer::new(cfg.clone()).unwrap();
            for (c, s, w, at, sc, ss) in &steps {
                let pair = Pair { canary: c.clone(), stable: s.clone() };
                a.observe(*at, *w, &pair);
                if let Some(d) = a.early(*at) {
                    assert_clean(&d)?;
                }
                let mut input = TickInput::builtin(&cfg, |_| pair.clone());
                input.push_scalar("conversion", *sc, *ss);
                let d = a.evaluate(*at, &input);
                assert_clean(&d)?;
                a.step_advanced(*at, *w);
            }
        }
    }

    /// The first ticks of a rollout, before any data or with one version
    /// only (what `serin demo --faulty` shows first): still no NaN.
    #[test]
    fn early_ticks_read_well(
        canary in 0u64..3, stable in 0u64..300, errors in 0u64..3, micros in 1u64..10_000_000,
    ) {
        for judge in JudgeKind::ALL {
            let cfg = AnalysisConfig::flagger_defaults().with_judge(judge);
            let mut a = Analyzer::new(cfg.clone()).unwrap();
            let d = a.evaluate(0, &TickInput::default());
            assert_clean(&d)?;
            let mut pair = Pair::default();
            for i in 0..canary {
                pair.canary.record(if i < errors { 500 } else { 200 }, std::time::Duration::from_micros(micros));
            }
            for _ in 0..stable {
                pair.stable.record(200, std::time::Duration::from_micros(micros / 2 + 1));
            }
            a.observe(1000, 10, &pair);
            if let Some(d) = a.early(1000) {
                assert_clean(&d)?;
            }
            let d = a.evaluate(60_000, &TickInput::builtin(&cfg, |_| pair.clone()));
            assert_clean(&d)?;
            if judge == JudgeKind::Sequential {
                let lat = d.metrics.iter().find(|m| m.name == "request-duration").unwrap();
                prop_assert!(!lat.reason.contains("NaN"), "{}", lat.reason);
            }
        }
    }
}
