//! Sliding windows of per-version counts, and the thread-safe recorder the
//! proxy writes to.
//!
//! Time is passed in as milliseconds from any fixed origin, so the windows are
//! tested with made-up clocks and the proxy decides what "now" is.

use crate::{Counts, Pair, Version};
use std::{collections::BTreeMap, sync::Mutex, time::Duration};

/// Counts of one version in a ring of fixed-width time slots, plus totals
/// since the start. Memory is `slots` × one [`Counts`] whatever the traffic.
#[derive(Clone, Debug)]
pub struct Window {
    slot_ms: u64,
    /// `(slot number, counts)`; a slot is valid only while its number is recent.
    ring: Vec<(u64, Counts)>,
    total: Counts,
    /// Requests by exact status code since the start, for `/metrics`'
    /// `status` label. Bounded: HTTP status codes are 100..=999.
    status_codes: BTreeMap<u16, u64>,
}

// === impl Window ===

impl Window {
    /// A window of `slots` slots of `slot` each: it answers questions about
    /// the last `slot × (slots - 1)` exactly, at slot granularity.
    pub fn new(slot: Duration, slots: usize) -> Self {
        let slot_ms = u64::try_from(slot.as_millis()).unwrap_or(u64::MAX).max(1);
        let slots = slots.max(2);
        Window {
            slot_ms,
            ring: vec![(u64::MAX, Counts::default()); slots],
            total: Counts::default(),
            status_codes: BTreeMap::new(),
        }
    }

    /// A window able to answer for spans up to `span`, with at most 61 slots
    /// of at least one second (exactly one second up to a minute).
    pub fn covering(span: Duration) -> Self {
        let span_ms = u64::try_from(span.as_millis())
            .unwrap_or(u64::MAX)
            .max(1000);
        let slot_ms = span_ms.div_ceil(60).max(1000);
        let slots = span_ms.div_ceil(slot_ms) as usize + 1;
        Window::new(Duration::from_millis(slot_ms), slots)
    }

    /// The longest span this window answers for.
    pub fn span(&self) -> Duration {
        Duration::from_millis(self.slot_ms.saturating_mul(self.ring.len() as u64 - 1))
    }

    /// Records one request answered at `now_ms`.
    pub fn record(&mut self, now_ms: u64, status: u16, latency: Duration) {
        let slot_no = now_ms / self.slot_ms;
        let len = self.ring.len() as u64;
        let index = (slot_no % len) as usize;
        if let Some((number, counts)) = self.ring.get_mut(index) {
            if *number != slot_no {
                *number = slot_no;
                counts.clear();
            }
            counts.record(status, latency);
        }
        self.total.record(status, latency);
        let code = self.status_codes.entry(status.min(999)).or_default();
        *code = code.saturating_add(1);
    }

    /// Forgets every slot: later [`last`](Self::last) answers count only
    /// requests recorded from now on. The totals and status codes since the
    /// window was created stay (they are monotonic counters).
    pub fn forget(&mut self) {
        for (number, counts) in &mut self.ring {
            *number = u64::MAX;
            counts.clear();
        }
    }

    /// Requests by exact status code since the window was created, low to high.
    pub fn status_codes(&self) -> &BTreeMap<u16, u64> {
        &self.status_codes
    }

    /// Everything recorded in the last `span` of whole slots before `now_ms`.
    /// The slot `now_ms` falls in is still filling and is left out, so the
    /// answer depends only on when requests were answered, never on how late
    /// the caller asks: with one-second slots, `last(t, 60s)` at a whole
    /// second `t` is exactly the requests answered in `[t - 60s, t)`. Spans
    /// longer than the window are cut to it.
    pub fn last(&self, now_ms: u64, span: Duration) -> Counts {
        let current = now_ms / self.slot_ms;
        let span_ms = u64::try_from(span.as_millis()).unwrap_or(u64::MAX);
        // The ring holds the filling slot and `len - 1` whole ones.
        let wanted = span_ms
            .div_ceil(self.slot_ms)
            .max(1)
            .min(self.ring.len() as u64 - 1);
        let oldest = current.saturating_sub(wanted);
        let mut out = Counts::default();
        for (number, counts) in &self.ring {
            if *number != u64::MAX && *number >= oldest && *number < current {
                out.merge(counts);
            }
        }
        out
    }

    /// Everything recorded since the window was created.
    pub fn total(&self) -> &Counts {
        &self.total
    }
}

/// Thread-safe per-version windows: what the proxy records into and what the
/// built-in metrics provider reads from.
#[derive(Debug)]
pub struct Recorder {
    versions: [Mutex<Window>; 2],
}

// === impl Recorder ===

impl Recorder {
    /// A recorder whose windows cover at least `span`.
    pub fn new(span: Duration) -> Self {
        Recorder {
            versions: [
                Mutex::new(Window::covering(span)),
                Mutex::new(Window::covering(span)),
            ],
        }
    }

    fn with<R>(&self, version: Version, f: impl FnOnce(&mut Window) -> R) -> R {
        // `version.index()` is 0 or 1 and the array has two entries. A poisoned
        // lock only means a panic elsewhere while counting; the counts are still
        // usable, so take them rather than propagate the panic.
        let mutex = &self.versions[version.index()];
        let mut guard = mutex
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }

    /// Records one request answered by `version`.
    pub fn record(&self, version: Version, now_ms: u64, status: u16, latency: Duration) {
        self.with(version, |w| w.record(now_ms, status, latency));
    }

    /// Both versions over the last `span` of whole slots before `now_ms`
    /// (see [`Window::last`]).
    pub fn last(&self, now_ms: u64, span: Duration) -> Pair {
        Pair {
            stable: self.with(Version::Stable, |w| w.last(now_ms, span)),
            canary: self.with(Version::Canary, |w| w.last(now_ms, span)),
        }
    }

    /// Forgets both versions' windows ([`Window::forget`]): later
    /// [`last`](Self::last) answers count only requests recorded from now on,
    /// while [`totals`](Self::totals) stay monotonic. The runtime calls it when
    /// a rollout starts, restarts, is promoted or rolled back, so each
    /// revision is judged on its own traffic.
    pub fn reset_windows(&self) {
        for version in Version::ALL {
            self.with(version, Window::forget);
        }
    }

    /// Both versions since the recorder was created: monotonic counters, as
    /// Prometheus exports them and as streaming consumers diff them.
    pub fn totals(&self) -> Pair {
        Pair {
            stable: self.with(Version::Stable, |w| w.total().clone()),
            canary: self.with(Version::Canary, |w| w.total().clone()),
        }
    }

    /// The longest span the windows answer for.
    pub fn span(&self) -> Duration {
        self.with(Version::Stable, |w| w.span())
    }

    /// Requests `version` answered since the recorder was created, by exact
    /// status code, low to high: `/metrics`' `http_requests_total{status}`.
    pub fn status_codes(&self, version: Version) -> Vec<(u16, u64)> {
        self.with(version, |w| {
            w.status_codes()
                .iter()
                .map(|(code, n)| (*code, *n))
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(5);

    #[test]
    fn last_minute_forgets_older_requests() {
        let mut w = Window::covering(Duration::from_secs(60));
        assert_eq!(w.span(), Duration::from_secs(60));
        w.record(0, 200, MS);
        w.record(30_000, 500, MS);
        w.record(59_000, 200, MS);
        // The second still filling is not counted yet.
        assert_eq!(w.last(59_999, Duration::from_secs(60)).requests, 2);
        assert_eq!(w.last(60_000, Duration::from_secs(60)).requests, 3);
        // At 61 s the slot of second 0 is outside the last minute.
        let last = w.last(61_000, Duration::from_secs(60));
        assert_eq!(last.requests, 2);
        assert_eq!(last.errors, 1);
        assert_eq!(w.total().requests, 3);
    }

    #[test]
    fn the_answer_does_not_depend_on_how_late_it_is_asked() {
        let mut w = Window::covering(Duration::from_secs(10));
        w.record(9_500, 200, MS);
        let at_the_second = w.last(10_000, Duration::from_secs(10));
        // Requests answered after the second do not leak into it.
        w.record(10_003, 500, MS);
        assert_eq!(w.last(10_007, Duration::from_secs(10)), at_the_second);
        assert_eq!(at_the_second.requests, 1);
    }

    #[test]
    fn reused_slots_are_cleared() {
        let mut w = Window::new(Duration::from_secs(1), 4);
        w.record(500, 200, MS);
        // Four seconds later the same ring position is reused.
        w.record(4_500, 200, MS);
        assert_eq!(w.last(5_000, Duration::from_secs(1)).requests, 1);
        assert_eq!(w.last(5_000, Duration::from_secs(10)).requests, 1);
        assert_eq!(w.total().requests, 2);
    }

    #[test]
    fn long_intervals_get_wider_slots() {
        let w = Window::covering(Duration::from_secs(3600));
        assert_eq!(w.span(), Duration::from_secs(3600));
        assert!(w.ring.len() <= 61);
    }

    #[test]
    fn recorder_keeps_versions_apart() {
        let r = Recorder::new(Duration::from_secs(60));
        r.record(Version::Canary, 1_000, 503, MS);
        r.record(Version::Stable, 1_000, 200, MS);
        r.record(Version::Stable, 1_000, 200, MS);
        let pair = r.last(2_000, Duration::from_secs(60));
        assert_eq!(pair.canary.errors, 1);
        assert_eq!(pair.stable.requests, 2);
        assert_eq!(r.totals().canary.requests, 1);
    }

    #[test]
    fn reset_windows_forgets_the_windows_not_the_totals() {
        let r = Recorder::new(Duration::from_secs(60));
        r.record(Version::Canary, 1_000, 503, MS);
        r.record(Version::Canary, 1_400, 503, MS);
        r.record(Version::Stable, 1_400, 200, MS);
        r.reset_windows();
        // Within the same slot as the forgotten requests, and later.
        r.record(Version::Canary, 1_600, 200, MS);
        r.record(Version::Canary, 30_000, 200, MS);
        // Whole seconds only: read once the last one has ended.
        let pair = r.last(31_000, Duration::from_secs(60));
        assert_eq!((pair.canary.requests, pair.canary.errors), (2, 0));
        assert_eq!(pair.stable.requests, 0);
        let totals = r.totals();
        assert_eq!((totals.canary.requests, totals.canary.errors), (4, 2));
        assert_eq!(totals.stable.requests, 1);
        assert_eq!(r.status_codes(Version::Canary), vec![(200, 2), (503, 2)]);
    }

    #[test]
    fn exact_status_codes_are_counted_per_version() {
        let recorder = Recorder::new(Duration::from_secs(60));
        recorder.record(Version::Canary, 0, 200, MS);
        recorder.record(Version::Canary, 10, 503, MS);
        recorder.record(Version::Canary, 20, 200, MS);
        recorder.record(Version::Stable, 20, 404, MS);
        assert_eq!(
            recorder.status_codes(Version::Canary),
            vec![(200, 2), (503, 1)]
        );
        assert_eq!(recorder.status_codes(Version::Stable), vec![(404, 1)]);
    }
}
