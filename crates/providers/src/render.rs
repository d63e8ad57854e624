//! What each external router would hold at a canary weight, for `serin
//! render`: pure functions over a canary file, no I/O. Each calls the code
//! its router uses to build what it writes (the nginx file, the HAProxy
//! commands, the ALB forward action), so render and router never disagree.
//!
//! The canary side is the file's `upstreams.canary` (an `IP:port` for nginx
//! and HAProxy, a target group ARN for an ALB); without one there is no
//! canary to send traffic to and everything stays on the stable version,
//! whatever the weight.

use serin_spec::Canary;
use std::net::SocketAddr;

/// Why a canary's router state cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The canary does not use this router (`provider` is another).
    #[error("spec.provider is not {0}")]
    OtherProvider(&'static str),
    /// A field the router needs is missing or wrong; the message names it.
    #[error("{0}")]
    Invalid(String),
}

/// The result of rendering.
pub type Result<T, E = RenderError> = std::result::Result<T, E>;

/// `upstreams.stable` and `upstreams.canary` as `IP:port`, with the rule of
/// `parse` (the router's own).
fn addrs(
    canary: &Canary,
    parse: fn(&str) -> std::result::Result<SocketAddr, String>,
) -> Result<(SocketAddr, Option<SocketAddr>)> {
    let upstreams = canary.spec.upstreams.as_ref();
    let stable = upstreams
        .and_then(|u| u.stable.as_deref())
        .ok_or_else(|| RenderError::Invalid("spec.upstreams.stable: required".into()))?;
    let stable =
        parse(stable).map_err(|e| RenderError::Invalid(format!("spec.upstreams.stable: {e}")))?;
    let canary_addr = upstreams
        .and_then(|u| u.canary.as_deref())
        .map(|c| parse(c).map_err(|e| RenderError::Invalid(format!("spec.upstreams.canary: {e}"))))
        .transpose()?;
    Ok((stable, canary_addr))
}

/// The upstream file serin writes to `spec.nginx.configFile` when the
/// canary has `weight` percent (nginx's `provider: nginx` outside
/// Kubernetes).
pub fn nginx(canary: &Canary, weight: u8) -> Result<String> {
    if !canary.is_nginx() {
        return Err(RenderError::OtherProvider("nginx"));
    }
    let spec = canary
        .spec
        .nginx
        .as_ref()
        .ok_or_else(|| RenderError::Invalid("spec.nginx: required by provider nginx".into()))?;
    let (stable, canary_addr) = addrs(canary, serin_spec::nginx::server_addr)?;
    Ok(crate::nginx::file_at(
        &spec.upstream,
        stable,
        canary_addr,
        weight,
    ))
}

/// The HAProxy runtime API commands, one per line, that set the backend to
/// the canary at `weight` percent on every instance.
pub fn haproxy(canary: &Canary, weight: u8) -> Result<String> {
    if !canary.is_haproxy() {
        return Err(RenderError::OtherProvider("haproxy"));
    }
    let spec =
        canary.spec.haproxy.as_ref().ok_or_else(|| {
            RenderError::Invalid("spec.haproxy: required by provider haproxy".into())
        })?;
    let (stable, canary_addr) = addrs(canary, serin_spec::haproxy::server_addr)?;
    let commands = crate::haproxy::commands_at(spec, stable, canary_addr, weight)
        .map_err(|e| RenderError::Invalid(e.to_string()))?;
    let mut text = commands.join("\n");
    text.push('\n');
    Ok(text)
}

/// The forward action serin gives the ALB listener (or rule) at `weight`
/// percent, as the Elastic Load Balancing API spells it in JSON.
#[cfg(feature = "aws")]
pub fn alb(canary: &Canary, weight: u8) -> Result<serde_json::Value> {
    use serin_spec::alb::{ArnKind, parse_arn};
    if !canary.is_alb() {
        return Err(RenderError::OtherProvider("alb"));
    }
    let spec = canary
        .spec
        .alb
        .as_ref()
        .ok_or_else(|| RenderError::Invalid("spec.alb: required by provider alb".into()))?;
    parse_arn(&spec.stable_target_group_arn, ArnKind::TargetGroup)
        .map_err(|e| RenderError::Invalid(format!("spec.alb.stableTargetGroupArn: {e}")))?;
    let canary_group = canary
        .spec
        .upstreams
        .as_ref()
        .and_then(|u| u.canary.as_deref())
        .map(|arn| {
            parse_arn(arn, ArnKind::TargetGroup)
                .map(|_| arn.to_owned())
                .map_err(|e| RenderError::Invalid(format!("spec.upstreams.canary: {e}")))
        })
        .transpose()?;
    let desired = crate::alb::Desired {
        stable: spec.stable_target_group_arn.clone(),
        canary: canary_group,
        canary_weight: weight,
    };
    Ok(crate::alb::ForwardPlan::new(&desired, crate::alb::stickiness_of(canary)).to_json())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary(yaml: &str) -> Canary {
        match serin_spec::parse_documents("shop.yaml", yaml)
            .expect("a canary file")
            .pop()
        {
            Some(serin_spec::Document::Canary(canary)) => canary,
            other => panic!("not a canary: {other:?}"),
        }
    }

    const HEAD: &str =
        "apiVersion: serin.dev/v1alpha1\nkind: Canary\nmetadata: {name: shop}\nspec:\n";

    #[test]
    fn nginx_renders_the_file_the_router_writes() {
        let c = canary(&format!(
            "{HEAD}  provider: nginx\n  nginx: {{upstream: shop, configFile: /tmp/shop.conf, logListen: 127.0.0.1:5140}}\n  upstreams: {{stable: 127.0.0.1:9001, canary: 127.0.0.1:9002}}\n"
        ));
        let text = nginx(&c, 30).expect("renders");
        assert_eq!(
            text,
            crate::nginx::file_at(
                "shop",
                "127.0.0.1:9001".parse().expect("addr"),
                Some("127.0.0.1:9002".parse().expect("addr")),
                30
            )
        );
        assert!(text.contains("upstream shop {\n"));
        assert!(text.contains("    server 127.0.0.1:9001 weight=70;\n"));
        assert!(text.contains("    server 127.0.0.1:9002 weight=30;\n"));
        let at_zero = nginx(&c, 0).expect("renders");
        assert!(!at_zero.contains("127.0.0.1:9002"), "{at_zero}");
        assert!(matches!(haproxy(&c, 0), Err(RenderError::OtherProvider(_))));
    }

    #[test]
    fn haproxy_renders_every_command() {
        let c = canary(&format!(
            "{HEAD}  provider: haproxy\n  haproxy: {{runtimeApi: [\"127.0.0.1:9999\"], backend: shop, servers: {{stable: s1, canary: s2}}, logListen: 127.0.0.1:5141}}\n  upstreams: {{stable: 127.0.0.1:9001, canary: 127.0.0.1:9002}}\n"
        ));
        assert_eq!(
            haproxy(&c, 25).expect("renders"),
            "set server shop/s1 addr 127.0.0.1 port 9001\n\
             set server shop/s1 weight 75\n\
             set server shop/s2 addr 127.0.0.1 port 9002\n\
             set server shop/s2 weight 25\n"
        );
        let no_canary = canary(&format!(
            "{HEAD}  provider: haproxy\n  haproxy: {{runtimeApi: [\"127.0.0.1:9999\"], backend: shop, servers: {{stable: s1, canary: s2}}, logListen: 127.0.0.1:5141}}\n  upstreams: {{stable: 127.0.0.1:9001}}\n"
        ));
        assert_eq!(
            haproxy(&no_canary, 25).expect("renders"),
            "set server shop/s1 addr 127.0.0.1 port 9001\n\
             set server shop/s1 weight 100\n\
             set server shop/s2 weight 0\n"
        );
    }

    #[cfg(feature = "aws")]
    #[test]
    fn alb_renders_the_forward_action() {
        let tg = |name: &str| {
            format!(
                "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/{name}/73e2d6bc24d8a067"
            )
        };
        let c = canary(&format!(
            "{HEAD}  provider: alb\n  alb:\n    listenerArn: arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/shop/50dc6c495c0c9188/f2f7dc8efc522ab2\n    stableTargetGroupArn: {}\n    region: us-east-1\n  upstreams: {{canary: {}}}\n  analysis:\n    sessionAffinity: {{cookieName: c, maxAge: 600}}\n",
            tg("v1"),
            tg("v2")
        ));
        assert_eq!(
            alb(&c, 40).expect("renders"),
            serde_json::json!({
                "Type": "forward",
                "ForwardConfig": {
                    "TargetGroups": [
                        {"TargetGroupArn": tg("v1"), "Weight": 60},
                        {"TargetGroupArn": tg("v2"), "Weight": 40},
                    ],
                    "TargetGroupStickinessConfig": {"Enabled": true, "DurationSeconds": 600},
                }
            })
        );
    }
}
