//! The desired-state shape every external balancer shares: serin keeps what
//! it wants the balancer to hold (the stable version, the canary while a
//! rollout is on, the canary's share) and brings the balancer to it at every
//! operation and at every repair. [`Steered`] is the one [`Router`] over
//! any [`Balancer`]: the rollout's operations (`set_canary`, `set_route`,
//! `promote`, `finalise`) only change the desired state, and the balancer
//! only knows how to read itself back and write what differs
//! ([`Balancer::sync`]). So an operation is idempotent, a refusal leaves the
//! desired state changed for the runtime's retry, and drift (a restarted
//! HAProxy, an nginx file edited by hand, an ALB action changed in the
//! console) is repaired by [`Router::repair`], which the runtime calls on
//! its observation ticks.

use serin_rollout::{
    Route,
    ports::{BoxFuture, CanaryTarget, PortError, Router},
};
use std::sync::{Arc, Mutex};

/// What serin wants a balancer to hold, in the balancer's terms (`A`: an
/// `IP:port`, a target group ARN).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired<A> {
    /// The stable version.
    pub stable: A,
    /// The canary, while a rollout is on.
    pub canary: Option<A>,
    /// The canary's percentage; stable gets the rest.
    pub canary_weight: u8,
}

// === impl Desired ===

impl<A> Desired<A> {
    /// Everything on `stable`, no canary.
    pub fn stable(stable: A) -> Self {
        Desired {
            stable,
            canary: None,
            canary_weight: 0,
        }
    }
}

/// The desired state, shared between the router and whoever needs to know
/// where the versions are (nginx's log receiver tells them apart by the
/// address it logs).
#[derive(Debug)]
pub struct DesiredCell<A>(Mutex<Desired<A>>);

// === impl DesiredCell ===

impl<A: Clone> DesiredCell<A> {
    /// A cell holding `desired`.
    pub fn new(desired: Desired<A>) -> Self {
        DesiredCell(Mutex::new(desired))
    }

    /// A copy of the desired state now.
    pub fn get(&self) -> Desired<A> {
        self.lock().clone()
    }

    /// Changes the desired state; returns the new one.
    pub fn update(&self, change: impl FnOnce(&mut Desired<A>)) -> Desired<A> {
        let mut guard = self.lock();
        change(&mut guard);
        guard.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Desired<A>> {
        // A poisoned lock means a panic while cloning a plain value; the
        // value is still whole, so recover it.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A balancer serin brings to a [`Desired`] state.
pub trait Balancer: Send + Sync + 'static {
    /// How the balancer names a version (`IP:port`, a target group ARN).
    type Addr: Clone + PartialEq + Send + Sync + std::fmt::Debug + 'static;

    /// A short name for messages: `haproxy`, `nginx`, `alb`.
    fn name(&self) -> &str;

    /// The canary's address as a rollout names it (`serin start
    /// --canary`), in the balancer's terms; refused with the expected form.
    fn canary_addr(&self, address: &str) -> Result<Self::Addr, PortError>;

    /// Brings the balancer to `desired`: reads what it holds, writes only
    /// what differs, reads it back. `Ok(None)` when it already held
    /// `desired`; `Ok(Some(what))` says what differed and was written.
    fn sync<'a>(
        &'a self,
        desired: &'a Desired<Self::Addr>,
    ) -> BoxFuture<'a, Result<Option<String>, PortError>>;
}

/// Any [`Balancer`] behind the [`Router`] port, with the desired state.
#[derive(Debug)]
pub struct Steered<B: Balancer> {
    balancer: B,
    desired: Arc<DesiredCell<B::Addr>>,
    /// One read-compare-write at a time.
    writing: tokio::sync::Mutex<()>,
}

// === impl Steered ===

impl<B: Balancer> Steered<B> {
    /// `balancer` with everything on `stable`.
    pub fn new_with(balancer: B, stable: B::Addr) -> Self {
        Steered {
            balancer,
            desired: Arc::new(DesiredCell::new(Desired::stable(stable))),
            writing: tokio::sync::Mutex::new(()),
        }
    }

    /// The balancer.
    pub fn balancer(&self) -> &B {
        &self.balancer
    }

    /// What serin wants the balancer to hold now.
    pub fn desired(&self) -> Desired<B::Addr> {
        self.desired.get()
    }

    /// The desired state, shared (for a log receiver).
    pub fn desired_cell(&self) -> Arc<DesiredCell<B::Addr>> {
        self.desired.clone()
    }

    /// Changes the desired state, then brings the balancer to it. When that
    /// fails the desired state stays changed: the runtime retries the
    /// operation, and a repair brings it about too.
    async fn change(&self, change: impl FnOnce(&mut Desired<B::Addr>)) -> Result<(), PortError> {
        let _writing = self.writing.lock().await;
        let desired = self.desired.update(change);
        self.balancer.sync(&desired).await.map(drop)
    }

    fn unsupported_mirror(&self) -> PortError {
        PortError::Unsupported(format!(
            "{}: mirroring is not supported (serin sets weights only)",
            self.balancer.name()
        ))
    }
}

impl<B: Balancer> Router for Steered<B> {
    fn name(&self) -> &str {
        self.balancer.name()
    }

    fn set_canary(&self, canary: &CanaryTarget) -> BoxFuture<'_, Result<(), PortError>> {
        let addr = self.balancer.canary_addr(&canary.address);
        Box::pin(async move {
            let addr = addr?;
            // A new revision starts without traffic; the rollout's first
            // route gives it its weight.
            self.change(|desired| {
                desired.canary = Some(addr);
                desired.canary_weight = 0;
            })
            .await
        })
    }

    fn set_route(&self, route: Route) -> BoxFuture<'_, Result<(), PortError>> {
        Box::pin(async move {
            if route.mirror.is_some() {
                return Err(self.unsupported_mirror());
            }
            self.change(|desired| desired.canary_weight = route.canary_weight)
                .await
        })
    }

    fn restore_canary(
        &self,
        canary: &CanaryTarget,
        route: Route,
    ) -> BoxFuture<'_, Result<(), PortError>> {
        let addr = self.balancer.canary_addr(&canary.address);
        Box::pin(async move {
            let addr = addr?;
            if route.mirror.is_some() {
                return Err(self.unsupported_mirror());
            }
            // The canary a rollout already routes to: one desired state, one
            // sync, so the balancer never holds it at 0 in between.
            self.change(|desired| {
                desired.canary = Some(addr);
                desired.canary_weight = route.canary_weight;
            })
            .await
        })
    }

    fn promote(&self) -> BoxFuture<'_, Result<(), PortError>> {
        Box::pin(async move {
            let Some(canary) = self.desired.get().canary else {
                return Err(PortError::Refused {
                    system: self.balancer.name().to_owned(),
                    message: "no canary to promote".into(),
                });
            };
            // The canary becomes the stable version at full weight until
            // the next rollout starts.
            self.change(|desired| {
                desired.stable = canary;
                desired.canary_weight = 0;
            })
            .await
        })
    }

    fn finalise(&self) -> BoxFuture<'_, Result<(), PortError>> {
        Box::pin(async move {
            self.change(|desired| {
                desired.canary = None;
                desired.canary_weight = 0;
            })
            .await
        })
    }

    fn repair(&self) -> BoxFuture<'_, Result<Option<String>, PortError>> {
        Box::pin(async move {
            let _writing = self.writing.lock().await;
            let desired = self.desired.get();
            self.balancer.sync(&desired).await
        })
    }
}
