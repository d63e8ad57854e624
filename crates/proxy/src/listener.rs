//! Accepting connections: the accept loop, and the dedicated worker
//! threads (one single-threaded runtime each, like nginx's workers) that
//! each accept from a duplicate of the listening socket and serve what they
//! accepted, so a request never crosses threads.

use crate::{
    balance::{Balance, Handoff},
    connection::serve_connection,
    forward::{self, HttpClient},
    server::Shared,
};
use std::{future::Future, io, os::fd::AsFd, sync::Arc, time::Duration};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{Semaphore, mpsc, oneshot, watch},
};

/// What connections are served with: the shared state and this thread's
/// upstream pool.
#[derive(Clone, Debug)]
pub(crate) struct Worker {
    pub(crate) shared: Arc<Shared>,
    pub(crate) client: HttpClient,
    /// This worker's place in `balance` (dedicated threads only).
    pub(crate) index: usize,
    pub(crate) balance: Option<Arc<Balance>>,
    /// Held by this worker thread's connections (dedicated threads only):
    /// the thread ends once every clone is gone.
    pub(crate) _local: Option<mpsc::Sender<()>>,
}

/// What a worker thread starts from.
pub(crate) struct Start<'a> {
    pub(crate) shared: &'a Arc<Shared>,
    pub(crate) state: &'a watch::Receiver<u8>,
    pub(crate) alive: &'a mpsc::Sender<()>,
    pub(crate) slots: &'a Option<Arc<Semaphore>>,
}

/// Dedicated worker threads, each running a single-threaded runtime that
/// accepts from a duplicate of the listener and serves what it accepted.
pub(crate) struct Workers {
    stop: watch::Sender<bool>,
    done: watch::Sender<bool>,
    exited: Vec<oneshot::Receiver<()>>,
}

// === impl Workers ===

impl Workers {
    /// Starts `n` threads; on failure, stops those started and gives the
    /// listener back.
    pub(crate) async fn start(
        n: usize,
        listener: TcpListener,
        start: Start<'_>,
    ) -> std::result::Result<Workers, (TcpListener, io::Error)> {
        let (stop, stop_rx) = watch::channel(false);
        let (done, done_rx) = watch::channel(false);
        let mut workers = Workers {
            stop,
            done,
            exited: Vec::with_capacity(n),
        };
        let mut ready = Vec::with_capacity(n);
        let (inboxes, mut receivers): (Vec<_>, Vec<_>) =
            (0..n).map(|_| mpsc::unbounded_channel()).unzip();
        let balance = Arc::new(Balance::new(inboxes));
        for (i, inbox) in receivers.drain(..).enumerate() {
            // A duplicate descriptor of the same listening socket: the
            // kernel hands each connection to one of the accepting threads.
            let dup = match listener.as_fd().try_clone_to_owned() {
                Ok(fd) => std::net::TcpListener::from(fd),
                Err(error) => return Err(workers.abort(listener, error).await),
            };
            let (ready_tx, ready_rx) = oneshot::channel();
            let (exited_tx, exited_rx) = oneshot::channel();
            let thread = WorkerThread {
                index: i,
                balance: balance.clone(),
                inbox,
                listener: dup,
                shared: start.shared.clone(),
                state: start.state.clone(),
                alive: start.alive.clone(),
                slots: start.slots.clone(),
                stop: stop_rx.clone(),
                done: done_rx.clone(),
            };
            let spawned = std::thread::Builder::new()
                .name(format!("serin-proxy-{i}"))
                .spawn(move || {
                    thread.run(ready_tx);
                    let _ = exited_tx.send(());
                });
            if let Err(error) = spawned {
                return Err(workers.abort(listener, error).await);
            }
            workers.exited.push(exited_rx);
            ready.push(ready_rx);
        }
        for ready in ready {
            let error = match ready.await {
                Ok(Ok(())) => continue,
                Ok(Err(error)) => error,
                Err(_) => io::Error::other("worker thread ended while starting"),
            };
            return Err(workers.abort(listener, error).await);
        }
        // The workers hold their own descriptors; this one would only wake
        // the caller's runtime on every new connection.
        drop(listener);
        Ok(workers)
    }

    async fn abort(self, listener: TcpListener, error: io::Error) -> (TcpListener, io::Error) {
        self.stop_accepting();
        self.finish().await;
        (listener, error)
    }

    pub(crate) fn stop_accepting(&self) {
        let _ = self.stop.send(true);
    }

    /// Ends the workers (closing what connections remain) and waits for
    /// their threads to exit.
    pub(crate) async fn finish(self) {
        let _ = self.stop.send(true);
        let _ = self.done.send(true);
        for exited in self.exited {
            let _ = exited.await;
        }
    }
}

/// One worker thread's share of the proxy.
struct WorkerThread {
    index: usize,
    balance: Arc<Balance>,
    inbox: mpsc::UnboundedReceiver<Handoff>,
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    state: watch::Receiver<u8>,
    alive: mpsc::Sender<()>,
    slots: Option<Arc<Semaphore>>,
    stop: watch::Receiver<bool>,
    done: watch::Receiver<bool>,
}

// === impl WorkerThread ===

impl WorkerThread {
    fn run(self, ready: oneshot::Sender<io::Result<()>>) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => {
                let _ = ready.send(Err(error));
                return;
            }
        };
        let WorkerThread {
            index,
            balance,
            inbox,
            listener,
            shared,
            state,
            alive,
            slots,
            mut stop,
            mut done,
        } = self;
        runtime.block_on(async move {
            let listener = match listener
                .set_nonblocking(true)
                .and_then(|()| TcpListener::from_std(listener))
            {
                Ok(listener) => listener,
                Err(error) => {
                    let _ = ready.send(Err(error));
                    return;
                }
            };
            let _ = ready.send(Ok(()));
            let (local, mut local_rx) = mpsc::channel::<()>(1);
            let worker = Worker {
                client: forward::client(&shared.limits, shared.upstream_tls.clone()),
                shared,
                index,
                balance: Some(balance),
                _local: Some(local),
            };
            let stopped = async move {
                let _ = stop.wait_for(|stop| *stop).await;
            };
            let state = relay(state);
            accept_loop(listener, worker, stopped, state, alive, slots, Some(inbox)).await;
            // Serve what was accepted until it is done or the proxy ends it.
            // Should the proxy's `serve` be dropped instead, connections
            // drain on their own (the state channel closes).
            tokio::select! {
                _ = local_rx.recv() => {}
                () = async {
                    if done.wait_for(|done| *done).await.is_err() {
                        std::future::pending::<()>().await;
                    }
                } => {}
            }
        });
    }
}

/// This worker's copy of the proxy's lifecycle (`RUNNING`, `DRAINING`,
/// `CLOSING`), kept in step with `global` by a task on the worker's own
/// runtime. Connections wait on it between requests (the fast path
/// registers a waiter for every request); on the one channel every worker
/// shares, the workers' threads would take one lock for every request, and
/// a thread preempted while holding it would hold up the other. Ends like
/// the proxy's: closed when `global` closes.
fn relay(mut global: watch::Receiver<u8>) -> watch::Receiver<u8> {
    let (local, receiver) = watch::channel(*global.borrow_and_update());
    tokio::spawn(async move {
        while global.changed().await.is_ok() {
            local.send_replace(*global.borrow_and_update());
        }
    });
    receiver
}

/// Accepts connections until `stop` completes and serves each in its own
/// task on the current runtime. With dedicated workers, a connection this
/// worker accepted while it serves more than another is handed to the least
/// loaded one, and connections handed here arrive through `inbox`.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    worker: Worker,
    stop: impl Future<Output = ()>,
    state_rx: watch::Receiver<u8>,
    alive_tx: mpsc::Sender<()>,
    slots: Option<Arc<Semaphore>>,
    mut inbox: Option<mpsc::UnboundedReceiver<Handoff>>,
) {
    tokio::pin!(stop);
    let mut permit = None;
    loop {
        if let (Some(slots), None) = (&slots, &permit) {
            permit = tokio::select! {
                biased;
                () = &mut stop => break,
                permit = slots.clone().acquire_owned() => permit.ok(),
            };
        }
        let accepted = tokio::select! {
            biased;
            () = &mut stop => break,
            Some(handoff) = next_handoff(&mut inbox) => {
                match TcpStream::from_std(handoff.stream) {
                    Ok(stream) => {
                        tokio::spawn(serve_connection(
                            worker.clone(),
                            stream,
                            handoff.peer,
                            state_rx.clone(),
                            alive_tx.clone(),
                            handoff.permit,
                        ));
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot take over a connection");
                        if let Some(balance) = &worker.balance {
                            balance.release(worker.index);
                        }
                    }
                }
                continue;
            }
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Usually out of file descriptors: back off instead of
                // spinning, connections in flight will free some.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let permit = permit.take();
        if let Some(balance) = &worker.balance {
            let target = balance.assign(worker.index);
            if target != worker.index {
                match stream.into_std() {
                    Ok(stream) => balance.hand(
                        target,
                        Handoff {
                            stream,
                            peer,
                            permit,
                        },
                    ),
                    // The connection is dropped.
                    Err(_) => balance.release(target),
                }
                continue;
            }
        }
        tokio::spawn(serve_connection(
            worker.clone(),
            stream,
            peer,
            state_rx.clone(),
            alive_tx.clone(),
            permit,
        ));
    }
}

async fn next_handoff(inbox: &mut Option<mpsc::UnboundedReceiver<Handoff>>) -> Option<Handoff> {
    match inbox {
        Some(inbox) => inbox.recv().await,
        None => std::future::pending().await,
    }
}
