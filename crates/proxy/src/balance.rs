//! Spreading connections over the dedicated workers: the kernel wakes
//! whichever worker is idle first, so the worker that accepted a connection
//! hands it to the least loaded one, and each connection gives its share of
//! the load back when it ends.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};
use tokio::sync::{OwnedSemaphorePermit, mpsc};

/// A connection accepted by one worker and served by another.
#[derive(Debug)]
pub(crate) struct Handoff {
    pub(crate) stream: std::net::TcpStream,
    pub(crate) peer: SocketAddr,
    pub(crate) permit: Option<OwnedSemaphorePermit>,
}

/// Spreads connections over dedicated workers: the kernel wakes whichever
/// worker is idle first, which under a burst of connections is one worker
/// taking nearly all of them.
#[derive(Debug)]
pub(crate) struct Balance {
    /// Connections each worker serves or has been handed.
    loads: Vec<AtomicUsize>,
    inboxes: Vec<mpsc::UnboundedSender<Handoff>>,
}

// === impl Balance ===

impl Balance {
    /// One inbox per worker; every worker starts with no load.
    pub(crate) fn new(inboxes: Vec<mpsc::UnboundedSender<Handoff>>) -> Self {
        Balance {
            loads: inboxes.iter().map(|_| AtomicUsize::new(0)).collect(),
            inboxes,
        }
    }

    /// Counts a new connection against the least loaded worker (`me` on a
    /// tie) and says which worker that is.
    pub(crate) fn assign(&self, me: usize) -> usize {
        let target = self.pick(me);
        if let Some(load) = self.loads.get(target) {
            load.fetch_add(1, Ordering::Relaxed);
        }
        target
    }

    /// Sends a connection assigned to `target` there. Should that worker
    /// have stopped, the connection is dropped and its load given back.
    pub(crate) fn hand(&self, target: usize, handoff: Handoff) {
        let sent = self
            .inboxes
            .get(target)
            .is_some_and(|inbox| inbox.send(handoff).is_ok());
        if !sent {
            self.release(target);
        }
    }

    /// Gives back one connection's share of worker `index`'s load.
    pub(crate) fn release(&self, index: usize) {
        if let Some(load) = self.loads.get(index) {
            load.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The least loaded worker, `me` on a tie.
    fn pick(&self, me: usize) -> usize {
        let mut best = me;
        let mut least = self.loads.get(me).map_or(0, |l| l.load(Ordering::Relaxed));
        for (i, load) in self.loads.iter().enumerate() {
            let load = load.load(Ordering::Relaxed);
            if load < least {
                best = i;
                least = load;
            }
        }
        best
    }
}

/// Gives a connection's share of its worker's load back when it ends.
pub(crate) struct LoadGuard(Option<(Arc<Balance>, usize)>);

// === impl LoadGuard ===

impl LoadGuard {
    /// Guards a connection served by worker `index` of `balance` (nothing
    /// to give back without dedicated workers).
    pub(crate) fn new(balance: Option<Arc<Balance>>, index: usize) -> Self {
        LoadGuard(balance.map(|balance| (balance, index)))
    }
}

impl Drop for LoadGuard {
    fn drop(&mut self) {
        if let Some((balance, index)) = &self.0 {
            balance.release(*index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn balance(n: usize) -> (Balance, Vec<mpsc::UnboundedReceiver<Handoff>>) {
        let (inboxes, receivers) = (0..n).map(|_| mpsc::unbounded_channel()).unzip();
        (Balance::new(inboxes), receivers)
    }

    #[test]
    fn connections_go_to_the_least_loaded_worker_and_come_back() {
        let (balance, _receivers) = balance(3);
        // A tie keeps the connection where it was accepted.
        assert_eq!(balance.assign(1), 1);
        assert_eq!(balance.assign(1), 0);
        assert_eq!(balance.assign(1), 2);
        assert_eq!(balance.assign(0), 0);
        balance.release(2);
        assert_eq!(balance.assign(0), 2);
        let loads: Vec<usize> = balance
            .loads
            .iter()
            .map(|l| l.load(Ordering::Relaxed))
            .collect();
        assert_eq!(loads, [2, 1, 1]);
    }

    #[test]
    fn a_guard_gives_the_load_back() {
        let (balance, _receivers) = balance(2);
        let balance = Arc::new(balance);
        assert_eq!(balance.assign(0), 0);
        drop(LoadGuard::new(Some(balance.clone()), 0));
        assert_eq!(balance.loads[0].load(Ordering::Relaxed), 0);
        drop(LoadGuard::new(None, 0));
    }
}
