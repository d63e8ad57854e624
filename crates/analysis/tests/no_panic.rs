//! No input makes a judge panic: NaN scalars, zero and huge counts, errors
//! above requests, weights beyond 100, clocks that go backwards.

use proptest::prelude::*;
use serin_analysis::{AnalysisConfig, Analyzer, JudgeKind, MetricCheck, TickInput};
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
                let _ = a.early(*at);
                let mut input = TickInput::builtin(&cfg, |_| pair.clone());
                input.push_scalar("conversion", *sc, *ss);
                let d = a.evaluate(*at, &input);
                prop_assert!(serde_json::to_string(&d).is_ok() || d.reasons.iter().any(|r| r.contains("NaN")));
                a.step_advanced(*at, *w);
            }
        }
    }

    #[test]
    fn replay_never_panics(lines in proptest::collection::vec(".{0,80}", 0..20)) {
        let text = lines.join("\n");
        for r in serin_analysis::replay(text.as_bytes(), &AnalysisConfig::default()) {
            let _ = r;
        }
    }
}
