//! Observability: the Prometheus text, the `metrics` facade (feature `metrics`), tracing spans
//! and events (feature `tracing`), and per-actor introspection. CI runs this file with
//! `--features tracing,metrics` too.

mod common;

use rein::{Actor, Context};

struct Echo;

impl Actor for Echo {
    type Msg = u32;
    fn handle(&mut self, _: &mut Context<Self>, n: u32) {
        assert!(n != 13, "unlucky");
    }
}

#[test]
fn prometheus_text_has_every_figure_once_with_help_and_type() {
    let rt = common::runtime(2);
    let echo = rt.spawn(Echo);
    for n in 0..10 {
        echo.send(n).unwrap();
    }
    let report = common::wait(rt);
    let text = report.metrics.to_prometheus();
    assert!(text.contains("rein_messages_total 10\n"), "{text}");
    assert!(text.contains("rein_actors_spawned_total 1\n"));
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (name, value) = line.rsplit_once(' ').expect("name value");
        let name = name.split('{').next().unwrap();
        assert!(name.starts_with("rein_"), "{line}");
        assert!(value.parse::<f64>().is_ok(), "{line}");
        assert!(
            text.contains(&format!("# TYPE {name} ")) && text.contains(&format!("# HELP {name} ")),
            "{name} lacks HELP or TYPE"
        );
    }
    let types = text.lines().filter(|l| l.starts_with("# TYPE")).count();
    assert_eq!(types, 18, "14 runtime-wide figures and 4 per worker");
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("rein_worker_messages_total{"))
            .count(),
        2,
        "one line per worker"
    );
    assert_eq!(report.metrics.messages, report.metrics.messages());
}

#[test]
fn the_snapshot_names_each_actor_its_type_and_what_it_is_muted_on() {
    let rt = common::runtime(1);
    let echo = rt.spawn(Echo);
    let snap = rt.mute_snapshot();
    let info = snap.actor(echo.id()).expect("listed");
    assert!(
        info.type_name.ends_with("observe::Echo"),
        "{}",
        info.type_name
    );
    assert_eq!(
        info.watermarks,
        (rein::DEFAULT_LOW_WATERMARK, rein::DEFAULT_HIGH_WATERMARK)
    );
    assert!(!info.is_blocking());
    assert!(snap.blocking().next().is_none());
    assert!(snap.to_string().starts_with("1 live actors, 0 muted"));
    common::wait(rt);
}

#[cfg(feature = "metrics")]
mod facade {
    use super::*;
    use metrics::{
        Counter, CounterFn, Gauge, GaugeFn, Histogram, Key, KeyName, Metadata, Recorder,
        SharedString, Unit,
    };
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    /// Remembers the last value of every counter and gauge by name and labels.
    #[derive(Default, Clone)]
    struct Remember(Arc<Mutex<BTreeMap<String, f64>>>);

    struct Slot(String, Remember);

    impl CounterFn for Slot {
        fn increment(&self, value: u64) {
            *self.1 .0.lock().unwrap().entry(self.0.clone()).or_default() += value as f64;
        }
        fn absolute(&self, value: u64) {
            self.1
                 .0
                .lock()
                .unwrap()
                .insert(self.0.clone(), value as f64);
        }
    }

    impl GaugeFn for Slot {
        fn increment(&self, value: f64) {
            *self.1 .0.lock().unwrap().entry(self.0.clone()).or_default() += value;
        }
        fn decrement(&self, value: f64) {
            *self.1 .0.lock().unwrap().entry(self.0.clone()).or_default() -= value;
        }
        fn set(&self, value: f64) {
            self.1 .0.lock().unwrap().insert(self.0.clone(), value);
        }
    }

    fn name(key: &Key) -> String {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        format!("{}{{{}}}", key.name(), labels.join(","))
    }

    impl Recorder for Remember {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(Arc::new(Slot(name(key), self.clone())))
        }
        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::from_arc(Arc::new(Slot(name(key), self.clone())))
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    #[test]
    fn record_reports_every_figure_through_the_facade() {
        let rt = common::runtime(2);
        let echo = rt.spawn(Echo);
        for n in 0..7 {
            echo.send(n).unwrap();
        }
        let report = common::wait(rt);
        let recorder = Remember::default();
        metrics::with_local_recorder(&recorder, || report.metrics.record());
        let seen = recorder.0.lock().unwrap();
        assert_eq!(seen.get("rein_messages_total{}"), Some(&7.0));
        assert_eq!(
            seen.get("rein_actors_live{}"),
            Some(&(report.metrics.live_actors as f64))
        );
        assert!(seen.contains_key("rein_worker_messages_total{worker=1}"));
        assert_eq!(seen.len(), 14 + 4 * 2, "{seen:?}");
    }
}

#[cfg(feature = "tracing")]
mod traced {
    use super::*;
    use rein::Runtime;
    use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
    use std::sync::{Arc, Mutex};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    /// Collects `target level name` for every span created and event seen.
    #[derive(Default, Clone)]
    struct Collect {
        seen: Arc<Mutex<Vec<String>>>,
        next: Arc<AtomicU64>,
    }

    impl Subscriber for Collect {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, span: &Attributes<'_>) -> Id {
            let m = span.metadata();
            self.seen.lock().unwrap().push(format!(
                "{} {} span {}",
                m.target(),
                m.level(),
                m.name()
            ));
            Id::from_u64(self.next.fetch_add(1, SeqCst) + 1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let m = event.metadata();
            self.seen
                .lock()
                .unwrap()
                .push(format!("{} {} event", m.target(), m.level()));
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    #[test]
    fn behaviours_are_spans_and_panics_and_overloads_are_events() {
        let collect = Collect::default();
        let dispatch = tracing::Dispatch::new(collect.clone());
        tracing::dispatcher::set_global_default(dispatch).expect("the only subscriber");
        let rt = Runtime::builder()
            .threads(1)
            .watermarks(1, 4)
            .build()
            .unwrap();
        let echo = rt.spawn(Echo);
        for n in 0..20 {
            echo.send(n).unwrap(); // 13 panics: the actor stops
        }
        common::wait(rt);
        let seen = collect.seen.lock().unwrap();
        let count = |what: &str| seen.iter().filter(|s| s.as_str() == what).count();
        assert_eq!(
            count("rein::behaviour TRACE span behaviour"),
            14,
            "{seen:?}"
        );
        assert_eq!(count("rein::panic WARN event"), 1, "{seen:?}");
        assert!(count("rein::overload DEBUG event") >= 1, "{seen:?}");
    }
}
