//! Manual actions against the cluster (`serin promote|abort|pause|resume
//! NAME --kubernetes`): annotations on the Canary that `serin controller`
//! honours at its next pass, so the person needs no access to the
//! controller, only to patch Canaries, and every replica sees the same
//! request.
//!
//! - [`ACTION_ANNOTATION`] `promote`: skip the remaining analysis (and the
//!   `confirm-promotion` gate) and promote the canary under analysis;
//!   `abort`: roll it back (a revision still waiting to start is marked
//!   failed). One-shot: the controller removes the annotation once it
//!   acted on it, or recorded a Warning event saying why it did not.
//! - [`PAUSED_ANNOTATION`] `"true"`: hold the rollout at its current
//!   weight, asking no check and counting none, and start no new
//!   revision; `serin resume` removes it.

use kube::{
    Api, Client,
    api::{DynamicObject, Patch, PatchParams},
};
use serde_json::{Value, json};

use crate::{controller::canary_resource, operator::CANARY_VERSIONS};

/// The one-shot manual action on a Canary: `promote` or `abort`.
pub const ACTION_ANNOTATION: &str = "serin.dev/action";

/// Holds a Canary's rollout while `"true"`.
pub const PAUSED_ANNOTATION: &str = "serin.dev/paused";

/// What a person asks of a canary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Promote now.
    Promote,
    /// Roll back now.
    Abort,
    /// Hold at the current weight.
    Pause,
    /// Clear the hold.
    Resume,
}

/// Why a request could not be written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API refused or failed the patch.
    #[error("Kubernetes API: {0}")]
    Api(#[from] kube::Error),
    /// No canary of that name in either group.
    #[error(
        "canary {name} not found in namespace {namespace} (flagger.app/v1beta1 or serin.dev/v1alpha1)"
    )]
    NotFound {
        /// `metadata.name` asked for.
        name: String,
        /// Where it was looked for.
        namespace: String,
    },
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

// === impl Request ===

impl Request {
    /// The merge patch that asks for it.
    pub fn patch(self) -> Value {
        let annotations = match self {
            Request::Promote => json!({ ACTION_ANNOTATION: "promote" }),
            Request::Abort => json!({ ACTION_ANNOTATION: "abort" }),
            Request::Pause => json!({ PAUSED_ANNOTATION: "true" }),
            Request::Resume => json!({ PAUSED_ANNOTATION: null }),
        };
        json!({ "metadata": { "annotations": annotations } })
    }

    /// What the controller will do, in words, for the command's output.
    pub fn describe(self) -> &'static str {
        match self {
            Request::Promote => "promotion requested",
            Request::Abort => "rollback requested",
            Request::Pause => "pause requested",
            Request::Resume => "resume requested",
        }
    }
}

/// Writes `request` on the canary `name` of `namespace` (in
/// `flagger.app/v1beta1`, else `serin.dev/v1alpha1`); returns the group
/// version it was found in.
pub async fn request(
    client: Client,
    namespace: &str,
    name: &str,
    request: Request,
) -> Result<&'static str> {
    for api_version in CANARY_VERSIONS {
        let resource = canary_resource(api_version);
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        match api
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(request.patch()),
            )
            .await
        {
            Ok(_) => return Ok(api_version),
            // Not there (or that group not installed): the other group.
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(error.into()),
        }
    }
    Err(Error::NotFound {
        name: name.to_string(),
        namespace: namespace.to_string(),
    })
}
