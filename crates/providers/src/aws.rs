//! What the AWS adapters (the ALB router, the CloudWatch metrics) share: one
//! way to build the SDK's configuration and one way to turn its errors into
//! the runtime's [`PortError`].
//!
//! Credentials come from the SDK's standard chain (environment, shared
//! profile files with `credential_process`, web identity, ECS, IMDS); the
//! region from the canary; `endpoint`, when given, replaces the service's
//! endpoint (moto, LocalStack, a VPC endpoint). The SDK's HTTPS client is
//! hyper with rustls on aws-lc-rs, the provider the rest of serin uses.

use aws_config::{
    BehaviorVersion, ConfigLoader, Region, SdkConfig, retry::RetryConfig, timeout::TimeoutConfig,
};
use aws_sdk_elasticloadbalancingv2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use serin_rollout::ports::PortError;
use std::time::Duration;

/// How long one attempt may take, connection included: Elastic Load
/// Balancing and CloudWatch answer in well under a second.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection may take to open.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Attempts per call: the SDK's own backoff retries a throttled call once;
/// beyond that the runtime keeps the operation pending and retries it on
/// its own schedule, so a long outage never blocks a rollout's loop.
pub const MAX_ATTEMPTS: u32 = 2;
/// How much of an error message a [`PortError`] quotes.
const MAX_MESSAGE_CHARS: usize = 600;

/// The SDK configuration for `region`, `endpoint` overriding the service's
/// endpoint when given, credentials from the standard chain.
pub async fn sdk_config(region: &str, endpoint: Option<&str>) -> SdkConfig {
    loader(region, endpoint).load().await
}

/// The loader [`sdk_config`] loads: serin's timeouts and retries, the
/// region and endpoint. Tests add their own credentials to it.
pub fn loader(region: &str, endpoint: Option<&str>) -> ConfigLoader {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.trim().to_owned()))
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .build(),
        );
    if let Some(endpoint) = endpoint.map(str::trim).filter(|e| !e.is_empty()) {
        loader = loader.endpoint_url(endpoint);
    }
    loader
}

/// An SDK error as the runtime's error: a service's answer (throttled,
/// not found, access denied) is [`PortError::Refused`] with its code, no
/// answer at all (refused connection, DNS, timeout) is
/// [`PortError::Unavailable`]. Either way the runtime keeps the operation
/// pending and retries it.
///
/// The SDK's error types are one type for every service (smithy's), so
/// this serves the CloudWatch client too.
pub fn port_error<E, R>(system: &str, error: SdkError<E, R>) -> PortError
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let system = system.to_owned();
    match &error {
        SdkError::ServiceError(service) => {
            let inner = service.err();
            let code = inner.code().unwrap_or("error");
            let message = inner.message().unwrap_or_default();
            PortError::Refused {
                system,
                message: shorten(&format!("{code}: {message}")),
            }
        }
        SdkError::TimeoutError(_) => PortError::Timeout {
            system,
            after: ATTEMPT_TIMEOUT,
        },
        _ => PortError::Unavailable {
            system,
            message: shorten(&DisplayErrorContext(&error).to_string()),
        },
    }
}

/// At most [`MAX_MESSAGE_CHARS`] characters, on one line.
fn shorten(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(MAX_MESSAGE_CHARS)
        .collect()
}
