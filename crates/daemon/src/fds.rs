//! Open files: the daemon raises its soft limit to the hard one at start,
//! then shares what it has between the API and the canaries' proxies, so
//! that neither can take the descriptors the other needs.
//!
//! Every connection is a descriptor. Before this, ~1,100 idle API
//! connections under the usual soft limit of 1,024 left the proxies unable
//! to accept (`Too many open files`): user traffic and `/healthz` timed out.
//! Now the API holds at most [`Budget::api`] connections and each proxy at
//! most [`Budget::per_proxy`] (two descriptors each: the client's and the
//! upstream's), after a fixed [`RESERVE`] for everything else.

/// Descriptors kept for everything but client connections: the state store
/// (database, WAL, shared memory, lock), access logs, webhook and metric
/// queries, the runtime's own.
pub const RESERVE: u64 = 64;

/// The API keeps at least this many connections, however low the limit.
pub const MIN_API_CONNECTIONS: usize = 8;

/// Each proxy keeps at least this many client connections, however low the
/// limit.
pub const MIN_PROXY_CONNECTIONS: usize = 16;

/// Descriptors one proxied request can hold: the client's connection and
/// the one to the upstream.
const PER_PROXY_CONNECTION: u64 = 2;

/// How many connections the API and each proxy may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Most API connections.
    pub api: usize,
    /// Most client connections per proxy; `None` when the limit is unknown
    /// or unlimited (each proxy serves as many as come).
    pub per_proxy: Option<usize>,
    /// The limit is too low for the minimums: descriptors may run out.
    pub short: bool,
}

/// Shares `open_files` (the soft limit; `None`: unlimited or unknown)
/// between the API, which asks for `api_wanted` connections, and the
/// proxies of `canaries` canaries. The API gets at most a quarter of what
/// is left after [`RESERVE`]; the proxies share the rest equally.
pub fn budget(open_files: Option<u64>, canaries: usize, api_wanted: usize) -> Budget {
    let Some(limit) = open_files else {
        return Budget {
            api: api_wanted.max(1),
            per_proxy: None,
            short: false,
        };
    };
    let usable = usize::try_from(limit.saturating_sub(RESERVE)).unwrap_or(usize::MAX);
    let api = api_wanted
        .min(usable / 4)
        .max(MIN_API_CONNECTIONS.min(api_wanted.max(1)));
    let rest = usable.saturating_sub(api);
    let per_descriptor = usize::try_from(PER_PROXY_CONNECTION).unwrap_or(2);
    let fair = rest / per_descriptor.saturating_mul(canaries.max(1));
    let per_proxy = fair.max(MIN_PROXY_CONNECTIONS);
    let needed = api
        .saturating_add(
            per_proxy
                .saturating_mul(per_descriptor)
                .saturating_mul(canaries),
        )
        .saturating_add(usize::try_from(RESERVE).unwrap_or(usize::MAX));
    Budget {
        api,
        per_proxy: Some(per_proxy),
        short: needed > usize::try_from(limit).unwrap_or(usize::MAX),
    }
}

/// Raises the soft limit on open files to the hard limit and returns the
/// soft limit in effect (`None`: unlimited, or unknown on this system).
pub fn raise_open_files_limit() -> Option<u64> {
    imp::raise()
}

#[cfg(unix)]
mod imp {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

    pub fn raise() -> Option<u64> {
        let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
        if current == maximum {
            return current;
        }
        match setrlimit(
            Resource::Nofile,
            Rlimit {
                current: maximum,
                maximum,
            },
        ) {
            Ok(()) => {
                tracing::info!(from = ?current, to = ?maximum, "raised the open-file limit");
                maximum
            }
            Err(error) => {
                // macOS refuses an unlimited soft limit; keep what there is.
                tracing::warn!(%error, limit = ?current, "cannot raise the open-file limit");
                current
            }
        }
    }
}

#[cfg(not(unix))]
mod imp {
    pub fn raise() -> Option<u64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_usual_soft_limit_leaves_room_for_both() {
        let one = budget(Some(1_024), 1, 256);
        assert_eq!(one.api, 240, "a quarter of 1,024 - 64");
        assert_eq!(one.per_proxy, Some(360));
        assert!(!one.short);
        let api_and_proxies = one.api as u64 + 2 * 360 + RESERVE;
        assert!(api_and_proxies <= 1_024, "{api_and_proxies}");

        let ten = budget(Some(1_024), 10, 256);
        assert_eq!((ten.api, ten.per_proxy), (240, Some(36)));
        assert!(!ten.short);
    }

    #[test]
    fn a_high_limit_gives_the_api_what_it_asks() {
        let high = budget(Some(1_048_576), 3, 256);
        assert_eq!(high.api, 256);
        assert!(high.per_proxy.is_some_and(|n| n > 100_000));
        assert_eq!(budget(None, 3, 256).per_proxy, None);
        assert_eq!(budget(None, 3, 256).api, 256);
    }

    #[test]
    fn a_tiny_limit_keeps_the_minimums_and_says_it_is_short() {
        let tiny = budget(Some(128), 20, 256);
        assert_eq!(tiny.api, 16, "a quarter of 128 - 64");
        assert_eq!(tiny.per_proxy, Some(MIN_PROXY_CONNECTIONS));
        assert!(tiny.short);
        assert_eq!(budget(Some(10), 1, 256).api, MIN_API_CONNECTIONS);
        assert_eq!(budget(Some(10), 1, 4).api, 4, "never more than asked");
    }

    #[test]
    fn raising_keeps_or_raises_the_soft_limit() {
        let before = rustix_soft();
        let after = raise_open_files_limit();
        match (before, after) {
            (Some(before), Some(after)) => assert!(after >= before),
            (_, None) => {}
            (None, Some(after)) => panic!("an unlimited soft limit lowered to {after}"),
        }
    }

    #[cfg(unix)]
    fn rustix_soft() -> Option<u64> {
        rustix::process::getrlimit(rustix::process::Resource::Nofile).current
    }

    #[cfg(not(unix))]
    fn rustix_soft() -> Option<u64> {
        None
    }
}
