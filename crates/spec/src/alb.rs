//! `spec.alb`: a canary whose traffic an AWS Application Load Balancer
//! carries. serin owns the forward action of one listener (its default
//! action) or of one listener rule, and splits it between two target groups
//! by weight; both versions are measured from CloudWatch's `AWS/ApplicationELB`
//! metrics per target group.
//!
//! The ARN rules live here so that `serin validate`, `serin run` and the
//! router parse alike: none accepts what another refuses.

use serde::{Deserialize, Serialize};

use crate::problem::{Path, Problem};

/// The provider name of the AWS Application Load Balancer.
pub const ALB_PROVIDER: &str = "alb";

/// The longest target group stickiness an ALB accepts (7 days).
pub const MAX_STICKINESS_SECONDS: i64 = 604_800;

/// The stickiness duration when `sessionAffinity.maxAge` is not given,
/// Flagger's default cookie lifetime.
pub const DEFAULT_STICKINESS_SECONDS: i64 = 86_400;

/// `spec.alb`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlbSpec {
    /// The listener whose default forward action serin owns.
    #[serde(default)]
    pub listener_arn: String,
    /// A rule of that listener whose forward action serin owns instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_arn: Option<String>,
    /// The target group of the stable version.
    #[serde(default)]
    pub stable_target_group_arn: String,
    /// The AWS region of the load balancer.
    #[serde(default)]
    pub region: String,
    /// Another endpoint for the Elastic Load Balancing and CloudWatch APIs
    /// (moto, LocalStack, a VPC endpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

/// What an Elastic Load Balancing ARN names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArnKind {
    /// `listener/app/LB/ID/ID`.
    Listener,
    /// `listener-rule/app/LB/ID/ID/ID`.
    Rule,
    /// `targetgroup/NAME/ID`.
    TargetGroup,
}

/// The parts of an Elastic Load Balancing ARN serin checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElbArn<'a> {
    /// `aws`, `aws-cn`, `aws-us-gov`, ...
    pub partition: &'a str,
    /// The region in the ARN.
    pub region: &'a str,
    /// The 12-digit account.
    pub account: &'a str,
    /// The resource after the account: `listener/app/shop/50dc6c495c0c9188/f2f7dc8efc522ab2`.
    pub resource: &'a str,
}

// === impl ArnKind ===

impl ArnKind {
    /// The resource type prefix in the ARN.
    fn prefix(self) -> &'static str {
        match self {
            ArnKind::Listener => "listener/app/",
            ArnKind::Rule => "listener-rule/app/",
            ArnKind::TargetGroup => "targetgroup/",
        }
    }

    /// How many `/`-separated parts follow the prefix.
    fn parts(self) -> usize {
        match self {
            ArnKind::Listener => 3,
            ArnKind::Rule => 4,
            ArnKind::TargetGroup => 2,
        }
    }

    /// An example, for messages.
    fn example(self) -> &'static str {
        match self {
            ArnKind::Listener => {
                "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/shop/50dc6c495c0c9188/f2f7dc8efc522ab2"
            }
            ArnKind::Rule => {
                "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/shop/50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee"
            }
            ArnKind::TargetGroup => {
                "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/shop-v2/73e2d6bc24d8a067"
            }
        }
    }
}

/// Parses an Elastic Load Balancing ARN of `kind`: `arn:PARTITION:elasticloadbalancing:REGION:ACCOUNT:RESOURCE`.
pub fn parse_arn(text: &str, kind: ArnKind) -> Result<ElbArn<'_>, String> {
    let bad = |why: &str| format!("{text:?} is not {why}, e.g. {}", kind.example());
    let what = match kind {
        ArnKind::Listener => "an application load balancer listener ARN",
        ArnKind::Rule => "a listener rule ARN",
        ArnKind::TargetGroup => "a target group ARN",
    };
    if text.trim() != text || text.is_empty() || text.len() > 2048 {
        return Err(bad(what));
    }
    let mut fields = text.splitn(6, ':');
    let (
        Some("arn"),
        Some(partition),
        Some("elasticloadbalancing"),
        Some(region),
        Some(account),
        Some(resource),
    ) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    )
    else {
        return Err(bad(what));
    };
    let word = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    if !word(partition) || !partition.starts_with("aws") {
        return Err(bad(&format!("{what} (partition {partition:?})")));
    }
    if !word(region) {
        return Err(bad(&format!("{what} (region {region:?})")));
    }
    if account.len() != 12 || !account.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad(&format!(
            "{what} (account {account:?} is not 12 digits)"
        )));
    }
    let Some(rest) = resource.strip_prefix(kind.prefix()) else {
        return Err(bad(what));
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let name_ok = |s: &str| {
        !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if parts.len() != kind.parts() || !parts.iter().all(|p| name_ok(p)) {
        return Err(bad(what));
    }
    Ok(ElbArn {
        partition,
        region,
        account,
        resource,
    })
}

/// Every problem of `spec.alb` (at `path`). `upstreams_path` with `stable`
/// and `canary` are `spec.upstreams`: for an ALB the stable version is
/// `stableTargetGroupArn`, so `upstreams.stable` is refused, and
/// `upstreams.canary`, when given, is the canary's target group ARN.
pub fn validate(
    path: &Path,
    alb: Option<&AlbSpec>,
    upstreams_path: &Path,
    stable: Option<&str>,
    canary: Option<&str>,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    if stable.is_some() {
        problems.push(Problem::new(
            upstreams_path.key("stable"),
            "not used by provider alb: the stable version is spec.alb.stableTargetGroupArn",
        ));
    }
    let Some(alb) = alb else {
        problems.push(Problem::new(
            path.clone(),
            "required by provider alb: listenerArn, stableTargetGroupArn and region",
        ));
        return problems;
    };
    let listener = check_arn(
        path.key("listenerArn"),
        &alb.listener_arn,
        ArnKind::Listener,
        &mut problems,
    );
    if let Some(rule_arn) = &alb.rule_arn
        && let Some(rule) = check_arn(path.key("ruleArn"), rule_arn, ArnKind::Rule, &mut problems)
        && let Some(listener) = &listener
    {
        // `listener-rule/app/LB/LBID/LISTENERID/RULEID` belongs to
        // `listener/app/LB/LBID/LISTENERID`.
        let rule_listener = rule
            .resource
            .trim_start_matches("listener-rule/")
            .rsplit_once('/')
            .map(|(listener, _)| listener);
        let listener_path = listener.resource.trim_start_matches("listener/");
        if rule_listener != Some(listener_path) || rule.account != listener.account {
            problems.push(Problem::new(
                path.key("ruleArn"),
                "is not a rule of spec.alb.listenerArn",
            ));
        }
    }
    let stable_tg = check_arn(
        path.key("stableTargetGroupArn"),
        &alb.stable_target_group_arn,
        ArnKind::TargetGroup,
        &mut problems,
    );
    if let Some(canary) = canary {
        check_arn(
            upstreams_path.key("canary"),
            canary,
            ArnKind::TargetGroup,
            &mut problems,
        );
        if canary == alb.stable_target_group_arn && stable_tg.is_some() {
            problems.push(Problem::new(
                upstreams_path.key("canary"),
                "is the stable target group: the canary needs its own",
            ));
        }
    }
    let region = alb.region.trim();
    if region.is_empty() {
        problems.push(Problem::new(
            path.key("region"),
            "required by provider alb: the load balancer's AWS region, e.g. us-east-1",
        ));
    } else if !region
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        problems.push(Problem::new(
            path.key("region"),
            format!("{region:?} is not an AWS region, e.g. us-east-1"),
        ));
    } else if let Some(listener) = &listener
        && listener.region != region
    {
        problems.push(Problem::new(
            path.key("region"),
            format!(
                "{region:?} is not the region of spec.alb.listenerArn ({:?})",
                listener.region
            ),
        ));
    }
    if let Some(endpoint) = &alb.endpoint {
        let endpoint = endpoint.trim();
        let scheme_ok = endpoint.split_once("://").is_some_and(|(scheme, rest)| {
            matches!(scheme, "http" | "https")
                && !rest.is_empty()
                && !rest.starts_with('/')
                && !rest.contains(char::is_whitespace)
        });
        if !scheme_ok {
            problems.push(Problem::new(
                path.key("endpoint"),
                format!("{endpoint:?} is not an http(s) URL, e.g. http://127.0.0.1:5000"),
            ));
        }
    }
    problems
}

/// Checks one ARN, pushing its problem; the parsed ARN when it is good.
fn check_arn<'a>(
    path: Path,
    text: &'a str,
    kind: ArnKind,
    problems: &mut Vec<Problem>,
) -> Option<ElbArn<'a>> {
    if text.is_empty() {
        problems.push(Problem::new(
            path,
            format!("required by provider alb, e.g. {}", kind.example()),
        ));
        return None;
    }
    match parse_arn(text, kind) {
        Ok(arn) => Some(arn),
        Err(reason) => {
            problems.push(Problem::new(path, reason));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTENER: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/shop/50dc6c495c0c9188/f2f7dc8efc522ab2";
    const RULE: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/shop/50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee";
    const TG: &str =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/shop-v1/73e2d6bc24d8a067";
    const TG2: &str =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/shop-v2/83e2d6bc24d8a067";

    fn good() -> AlbSpec {
        AlbSpec {
            listener_arn: LISTENER.into(),
            rule_arn: Some(RULE.into()),
            stable_target_group_arn: TG.into(),
            region: "us-east-1".into(),
            endpoint: Some("http://127.0.0.1:5000".into()),
        }
    }

    fn problems(alb: &AlbSpec, stable: Option<&str>, canary: Option<&str>) -> Vec<String> {
        let spec = Path::root().key("spec");
        validate(
            &spec.key("alb"),
            Some(alb),
            &spec.key("upstreams"),
            stable,
            canary,
        )
        .iter()
        .map(ToString::to_string)
        .collect()
    }

    #[test]
    fn a_complete_block_is_valid() {
        assert_eq!(problems(&good(), None, Some(TG2)), Vec::<String>::new());
        let no_rule = AlbSpec {
            rule_arn: None,
            endpoint: None,
            ..good()
        };
        assert!(problems(&no_rule, None, None).is_empty());
    }

    #[test]
    fn arns_are_checked_for_shape() {
        assert!(parse_arn(LISTENER, ArnKind::Listener).is_ok());
        assert!(parse_arn(RULE, ArnKind::Rule).is_ok());
        assert_eq!(
            parse_arn(TG, ArnKind::TargetGroup).map(|a| a.region),
            Ok("us-east-1")
        );
        assert!(parse_arn(TG, ArnKind::Listener).is_err());
        assert!(parse_arn(LISTENER, ArnKind::TargetGroup).is_err());
        assert!(
            parse_arn(
                "arn:aws:elasticloadbalancing:us-east-1:1234:targetgroup/a/b",
                ArnKind::TargetGroup
            )
            .is_err()
        );
        assert!(
            parse_arn(
                "arn:aws:ec2:us-east-1:123456789012:targetgroup/a/b",
                ArnKind::TargetGroup
            )
            .is_err()
        );
        assert!(parse_arn(&format!(" {TG}"), ArnKind::TargetGroup).is_err());
        assert!(parse_arn(&format!("{TG}/x"), ArnKind::TargetGroup).is_err());
        assert!(parse_arn("", ArnKind::Rule).is_err());
        assert!(parse_arn("arn:", ArnKind::Rule).is_err());
    }

    #[test]
    fn every_problem_names_its_field() {
        let bad = AlbSpec {
            listener_arn: LISTENER.into(),
            rule_arn: Some(RULE.replace("f2f7dc8efc522ab2", "0000000000000000")),
            stable_target_group_arn: "shop-v1".into(),
            region: "eu-west-1".into(),
            endpoint: Some("127.0.0.1:5000".into()),
        };
        let found = problems(&bad, Some("127.0.0.1:9001"), Some("nope"));
        let paths: Vec<&str> = found.iter().filter_map(|p| p.split(':').next()).collect();
        assert_eq!(
            paths,
            [
                "spec.upstreams.stable",
                "spec.alb.ruleArn",
                "spec.alb.stableTargetGroupArn",
                "spec.upstreams.canary",
                "spec.alb.region",
                "spec.alb.endpoint",
            ],
            "{found:#?}"
        );
        let missing = problems(&AlbSpec::default(), None, None);
        assert!(
            missing
                .iter()
                .any(|p| p.starts_with("spec.alb.listenerArn: required")),
            "{missing:#?}"
        );
        assert!(
            missing
                .iter()
                .any(|p| p.starts_with("spec.alb.region: required"))
        );
        let same = problems(&good(), None, Some(TG));
        assert!(
            same.iter()
                .any(|p| p.contains("is the stable target group"))
        );
    }
}
