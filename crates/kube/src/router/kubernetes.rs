//! `provider: kubernetes`: blue/green by Service selectors. The Services
//! are the whole route: the apex selects the primary's pods, and the
//! canary's only for the switch before promotion (canary weight 100).

use super::KubeRouter;
use crate::{Object, Result, Routes, subject::Subject};

/// The Kubernetes Service router.
#[derive(Clone, Copy, Debug)]
pub struct KubernetesService;

impl KubeRouter for KubernetesService {
    fn provider(&self) -> &'static str {
        "kubernetes"
    }

    fn objects(&self, _subject: &Subject<'_>, _routes: &Routes) -> Result<Vec<Object>> {
        Ok(Vec::new())
    }

    /// Flagger's `SetRoutes`: the selector moves only at 0/100 and 100/0.
    fn apex_selects_canary(&self, routes: &Routes) -> bool {
        routes.primary == 0 && routes.canary == 100
    }
}
