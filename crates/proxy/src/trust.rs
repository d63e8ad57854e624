//! Which peers may speak for a client. A front proxy only knows the address
//! that connected to it; `X-Forwarded-For`, `-Proto` and `-Host` claim more,
//! and the upstream believes them (rate limits, audit logs, redirects). So
//! serin keeps what a peer claims only when the peer is a proxy the operator
//! put in front of it (`service.trustedProxies`), and otherwise says only
//! what it saw itself.

use std::{
    fmt,
    iter::FromIterator,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

/// An address range: one address (`127.0.0.1`, `::1`) or a CIDR block
/// (`10.0.0.0/8`, `fd00::/8`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpRange {
    addr: IpAddr,
    prefix: u8,
}

/// Why a text is not an [`IpRange`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidIpRange {
    /// The address part is not an IPv4 or IPv6 address.
    #[error("{0:?} is not an IP address or CIDR range; expected e.g. 10.0.0.0/8 or 127.0.0.1")]
    Address(String),
    /// The prefix length is not a number within the address's bits.
    #[error("{text:?}: the prefix length must be a number from 0 to {max}")]
    Prefix {
        /// The range as given.
        text: String,
        /// 32 for IPv4, 128 for IPv6.
        max: u8,
    },
    /// Bits are set past the prefix, so the range is not what it looks like
    /// (`10.0.0.1/8` is `10.0.0.0/8`): refused rather than guessed.
    #[error("{text:?} has bits set past its /{prefix} prefix; did you mean {suggestion}?")]
    HostBits {
        /// The range as given.
        text: String,
        /// Its prefix length.
        prefix: u8,
        /// The range it covers, written correctly.
        suggestion: String,
    },
}

/// The peers whose `X-Forwarded-*` headers are kept. Empty (the default):
/// none are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpRange>);

// === impl IpRange ===

impl IpRange {
    /// Whether `ip` is in the range. An IPv4 address mapped into IPv6
    /// (`::ffff:10.0.0.1`, what a dual-stack listener reports) is taken as
    /// the IPv4 address it is.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(range), IpAddr::V4(ip)) => {
                mask(u128::from(range.to_bits()), self.prefix, 32)
                    == mask(u128::from(ip.to_bits()), self.prefix, 32)
            }
            (IpAddr::V6(range), IpAddr::V6(ip)) => {
                mask(range.to_bits(), self.prefix, 128) == mask(ip.to_bits(), self.prefix, 128)
            }
            _ => false,
        }
    }

    fn bits(addr: IpAddr) -> (u128, u8) {
        match addr {
            IpAddr::V4(v4) => (u128::from(v4.to_bits()), 32),
            IpAddr::V6(v6) => (v6.to_bits(), 128),
        }
    }
}

/// The top `prefix` of `width` bits of `bits`.
fn mask(bits: u128, prefix: u8, width: u8) -> u128 {
    let host_bits = u32::from(width.saturating_sub(prefix));
    // `checked_shl` is None for a shift of 128 (a /0 of IPv6): nothing kept.
    bits.checked_shr(host_bits)
        .and_then(|b| b.checked_shl(host_bits))
        .unwrap_or(0)
}

impl FromStr for IpRange {
    type Err = InvalidIpRange;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        let (addr, prefix) = match trimmed.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (trimmed, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| InvalidIpRange::Address(text.to_owned()))?;
        let (bits, width) = IpRange::bits(addr);
        let prefix = match prefix {
            None => width,
            // Digits only: `u8` would also take `+8`.
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= width && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => {
                    return Err(InvalidIpRange::Prefix {
                        text: text.to_owned(),
                        max: width,
                    });
                }
            },
        };
        if mask(bits, prefix, width) != bits {
            let network = match addr {
                // The masked bits of an IPv4 address fit in 32.
                IpAddr::V4(_) => IpAddr::from(Ipv4Addr::from_bits(
                    u32::try_from(mask(bits, prefix, width)).unwrap_or_default(),
                )),
                IpAddr::V6(_) => IpAddr::from(Ipv6Addr::from_bits(mask(bits, prefix, width))),
            };
            return Err(InvalidIpRange::HostBits {
                text: text.to_owned(),
                prefix,
                suggestion: format!("{network}/{prefix}"),
            });
        }
        Ok(IpRange { addr, prefix })
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

// === impl TrustedProxies ===

impl TrustedProxies {
    /// Whether a peer at `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|range| range.contains(ip))
    }

    /// Whether no peer is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<IpRange> for TrustedProxies {
    fn from_iter<I: IntoIterator<Item = IpRange>>(ranges: I) -> Self {
        TrustedProxies(ranges.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(s: &str) -> IpRange {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn ranges_hold_what_their_prefix_says() {
        let ten = range("10.0.0.0/8");
        assert!(ten.contains(ip("10.1.2.3")));
        assert!(ten.contains(ip("::ffff:10.1.2.3")));
        assert!(!ten.contains(ip("11.0.0.1")));
        assert!(!ten.contains(ip("::1")));
        let one = range("127.0.0.1");
        assert!(one.contains(ip("127.0.0.1")));
        assert!(!one.contains(ip("127.0.0.2")));
        assert!(range("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(range("::/0").contains(ip("2001:db8::1")));
        assert!(range("fd00::/8").contains(ip("fd12::1")));
        assert!(!range("fd00::/8").contains(ip("fe80::1")));
        assert!(range("::1").contains(ip("::1")));
        assert_eq!(range(" 10.0.0.0/8 ").to_string(), "10.0.0.0/8");
    }

    #[test]
    fn bad_ranges_say_why() {
        for bad in ["", "10.0.0", "localhost", "10.0.0.0/", "10.0.0.0/x"] {
            assert!(bad.parse::<IpRange>().is_err(), "{bad}");
        }
        assert_eq!(
            "10.0.0.0/33".parse::<IpRange>(),
            Err(InvalidIpRange::Prefix {
                text: "10.0.0.0/33".into(),
                max: 32
            })
        );
        assert!("10.0.0.0/+8".parse::<IpRange>().is_err());
        assert!("::/129".parse::<IpRange>().is_err());
        let err = "10.0.0.1/8".parse::<IpRange>().map(|_| ());
        assert_eq!(
            err.map_err(|e| e.to_string()),
            Err("\"10.0.0.1/8\" has bits set past its /8 prefix; did you mean 10.0.0.0/8?".into())
        );
    }

    #[test]
    fn no_proxy_is_trusted_by_default() {
        let none = TrustedProxies::default();
        assert!(none.is_empty());
        assert!(!none.contains(ip("127.0.0.1")));
        let some: TrustedProxies = [range("10.0.0.0/8"), range("127.0.0.1")]
            .into_iter()
            .collect();
        assert!(some.contains(ip("127.0.0.1")));
        assert!(some.contains(ip("10.9.9.9")));
        assert!(!some.contains(ip("192.168.0.1")));
    }
}
