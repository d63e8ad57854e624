//! A real `moto_server` (PyPI `moto[server]`) on loopback, for the tests of
//! serin's ALB router and CloudWatch metrics: the Elastic Load Balancing and
//! CloudWatch APIs answered by moto's implementation of them, through the
//! official SDK, not a fake that agrees with us.
//!
//! `scripts/test.sh` installs moto into a virtual environment and exports
//! `SERIN_MOTO_SERVER`; without it the venv it creates is looked for in
//! `~/.cache/serin/venv`. A missing binary fails the test with the command
//! that installs it.
//!
//! [`Relay`] sits between serin and moto to play the network's and AWS's
//! bad days: connections dropped, or every call answered `Throttling`.

use crate::ports::free_port;
use aws_sdk_elasticloadbalancingv2::{
    Client,
    config::Credentials,
    types::{Action, ActionTypeEnum, RuleCondition, TargetTypeEnum},
};
use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};

/// The environment variable naming the `moto_server` binary.
pub const MOTO_SERVER_VAR: &str = "SERIN_MOTO_SERVER";
/// The region every test uses.
pub const REGION: &str = "us-east-1";
/// Readiness is polled this often, this many times: at most 30 s (moto
/// imports every service's models on start).
const READY_EVERY: Duration = Duration::from_millis(100);
const READY_TRIES: u32 = 300;

/// A real moto_server, killed on drop.
pub struct Moto {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// Its port.
    pub port: u16,
    child: Child,
}

/// An application load balancer made in moto: a listener forwarding to the
/// stable group, a rule of it forwarding there too, and two more groups.
#[derive(Clone, Debug)]
pub struct Alb {
    /// The load balancer.
    pub load_balancer_arn: String,
    /// Its listener on port 80.
    pub listener_arn: String,
    /// A rule of that listener (path `/shop/*`).
    pub rule_arn: String,
    /// The stable version's target group.
    pub stable: String,
    /// The canary's target group.
    pub canary: String,
    /// A third version's target group.
    pub next: String,
}

// === impl Moto ===

impl Moto {
    /// Starts moto_server on a free loopback port; returns once it answers.
    pub async fn start() -> Moto {
        let binary = std::env::var_os(MOTO_SERVER_VAR)
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .map(|home| PathBuf::from(home).join(".cache/serin/venv/bin/moto_server"))
            })
            .filter(|p| p.exists())
            .expect(
                "moto_server is not installed: python3 -m venv ~/.cache/serin/venv && \
                 ~/.cache/serin/venv/bin/pip install 'moto[server]' (scripts/test.sh does and sets SERIN_MOTO_SERVER)",
            );
        let port = free_port();
        let child = Command::new(binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let moto = Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            child,
        };
        for _ in 0..READY_TRIES {
            if crate::http::get(port, "/moto-api/").await.is_some() {
                return moto;
            }
            tokio::time::sleep(READY_EVERY).await;
        }
        panic!("moto_server did not answer within 30s");
    }

    /// An SDK configuration for moto at `endpoint` (moto's own, or a
    /// [`Relay`]'s), with moto's test credentials.
    pub async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(REGION))
            .endpoint_url(endpoint)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
            .load()
            .await
    }

    /// An Elastic Load Balancing client for this moto.
    pub async fn elb(&self) -> Client {
        Client::new(&Moto::sdk_config(&self.endpoint).await)
    }

    /// One EC2 call by its query API (the tests need a VPC and subnets,
    /// not an EC2 SDK); returns the answer's XML.
    async fn ec2(&self, query: &str) -> String {
        let body = format!("{query}&Version=2016-11-15");
        let request = format!(
            "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/{REGION}/ec2/aws4_request, SignedHeaders=host, Signature=00\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len(),
            port = self.port,
        );
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("connect to moto");
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("read");
        assert!(answer.starts_with("HTTP/1.1 200"), "EC2 {query}: {answer}");
        answer
    }

    /// The `tag` of one EC2 call's answer. moto has once been seen to
    /// answer 200 without it on a loaded machine: the call is made again
    /// (five times at most), and the last answer is shown if none has it.
    async fn ec2_value(&self, query: &str, tag: &str) -> String {
        let (start, end) = (format!("<{tag}>"), format!("</{tag}>"));
        let mut answer = String::new();
        for _ in 0..5 {
            answer = self.ec2(query).await;
            if let Some(value) = between(&answer, &start, &end) {
                return value;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        panic!("EC2 {query}: no <{tag}> in five answers, the last: {answer}");
    }

    /// A VPC with two subnets, a load balancer, three target groups, a
    /// listener forwarding to the first and a rule forwarding there too.
    pub async fn create_alb(&self) -> Alb {
        let vpc = self
            .ec2_value("Action=CreateVpc&CidrBlock=10.0.0.0/16", "vpcId")
            .await;
        let mut subnets = Vec::new();
        for (zone, cidr) in [("a", "10.0.1.0/24"), ("b", "10.0.2.0/24")] {
            let subnet = self
                .ec2_value(
                    &format!(
                        "Action=CreateSubnet&VpcId={vpc}&CidrBlock={}&AvailabilityZone={REGION}{zone}",
                        cidr.replace('/', "%2F")
                    ),
                    "subnetId",
                )
                .await;
            subnets.push(subnet);
        }
        let elb = self.elb().await;
        let lb = elb
            .create_load_balancer()
            .name("shop")
            .set_subnets(Some(subnets))
            .send()
            .await
            .expect("CreateLoadBalancer");
        let load_balancer_arn = lb.load_balancers()[0]
            .load_balancer_arn()
            .expect("a load balancer ARN")
            .to_owned();
        let mut groups = Vec::new();
        for name in ["shop-v1", "shop-v2", "shop-v3"] {
            let group = elb
                .create_target_group()
                .name(name)
                .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Http)
                .port(80)
                .vpc_id(&vpc)
                .target_type(TargetTypeEnum::Instance)
                .send()
                .await
                .expect("CreateTargetGroup");
            groups.push(
                group.target_groups()[0]
                    .target_group_arn()
                    .expect("a target group ARN")
                    .to_owned(),
            );
        }
        let forward = Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .target_group_arn(&groups[0])
            .build();
        let listener = elb
            .create_listener()
            .load_balancer_arn(&load_balancer_arn)
            .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Http)
            .port(80)
            .default_actions(forward.clone())
            .send()
            .await
            .expect("CreateListener");
        let listener_arn = listener.listeners()[0]
            .listener_arn()
            .expect("a listener ARN")
            .to_owned();
        let rule = elb
            .create_rule()
            .listener_arn(&listener_arn)
            .priority(10)
            .conditions(
                RuleCondition::builder()
                    .field("path-pattern")
                    .values("/shop/*")
                    .build(),
            )
            .actions(forward)
            .send()
            .await
            .expect("CreateRule");
        let rule_arn = rule.rules()[0].rule_arn().expect("a rule ARN").to_owned();
        let mut groups = groups.into_iter();
        Alb {
            load_balancer_arn,
            listener_arn,
            rule_arn,
            stable: groups.next().expect("three groups"),
            canary: groups.next().expect("three groups"),
            next: groups.next().expect("three groups"),
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The text between `start` and `end` in `text`, if both are there.
fn between(text: &str, start: &str, end: &str) -> Option<String> {
    let from = text.find(start)? + start.len();
    let to = text[from..].find(end)? + from;
    Some(text[from..to].to_owned())
}

/// How a [`Relay`] treats connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelayMode {
    /// Passes bytes both ways.
    Up,
    /// Closes every connection at once (open ones too).
    Down,
    /// Answers every request `400 Throttling`, as AWS does when a caller
    /// exceeds its rate.
    Throttle,
}

/// A loopback TCP relay to a server, whose mode a test switches.
pub struct Relay {
    /// `http://127.0.0.1:PORT` of the relay.
    pub endpoint: String,
    mode: watch::Sender<RelayMode>,
    task: tokio::task::JoinHandle<()>,
}

// === impl Relay ===

impl Relay {
    /// A relay to `127.0.0.1:port`, up.
    pub async fn start(port: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let endpoint = format!(
            "http://{}",
            listener
                .local_addr()
                .expect("a bound socket has an address")
        );
        let (mode, watching) = watch::channel(RelayMode::Up);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mut watching = watching.clone();
                tokio::spawn(async move {
                    let at_start = *watching.borrow_and_update();
                    match at_start {
                        RelayMode::Down => drop(client),
                        RelayMode::Throttle => throttle(client).await,
                        RelayMode::Up => {
                            let Ok(mut server) = TcpStream::connect(("127.0.0.1", port)).await
                            else {
                                return;
                            };
                            let mut client = client;
                            // A mode change ends the connection, so a pooled
                            // connection cannot slip past a switch.
                            tokio::select! {
                                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                                _ = watching.changed() => {}
                            }
                        }
                    }
                });
            }
        });
        Relay {
            endpoint,
            mode,
            task,
        }
    }

    /// Switches the mode; open connections are closed.
    pub fn set(&self, mode: RelayMode) {
        self.mode.send_replace(mode);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request (headers and a `Content-Length` body) and answers it
/// as AWS's query APIs answer a throttled call.
async fn throttle(mut client: TcpStream) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let Ok(read) = client.read(&mut chunk).await else {
            return;
        };
        if read == 0 {
            return;
        }
        buffer.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&buffer);
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if buffer.len() >= end + 4 + length || buffer.len() > 1 << 20 {
                break;
            }
        }
        if buffer.len() > 1 << 20 {
            break;
        }
    }
    let body = "<ErrorResponse xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\">\
                <Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error>\
                <RequestId>serin-test</RequestId></ErrorResponse>";
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = client.write_all(answer.as_bytes()).await;
    let _ = client.shutdown().await;
}
