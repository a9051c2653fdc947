//! Which addresses are internal: private ranges plus the user's own CIDRs.

use std::net::IpAddr;

use ipnet::IpNet;

/// Address ranges that never route on the public Internet, so traffic there is
/// "ours": RFC 1918, RFC 6598 (carrier-grade NAT, also used inside AWS), loopback,
/// link-local, and IPv6 unique-local (fc00::/7).
const PRIVATE: &[&str] = &[
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
];

/// The internal address space of a deployment. Kept as integer (network, mask)
/// pairs: checked for every flow, twice, and `IpNet::contains` through its
/// generic trait measured 3% of an inspect profile on its own.
#[derive(Debug, Clone)]
pub struct Networks {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl Default for Networks {
    fn default() -> Self {
        Self::new(&[])
    }
}

impl Networks {
    /// The private ranges plus `extra` (e.g. a company's public blocks).
    pub fn new(extra: &[IpNet]) -> Self {
        let mut nets: Vec<IpNet> = PRIVATE.iter().filter_map(|s| s.parse().ok()).collect();
        nets.extend_from_slice(extra);
        let mut n = Networks { v4: Vec::new(), v6: Vec::new() };
        for net in nets {
            match net {
                IpNet::V4(v) => n.v4.push((u32::from(v.network()), u32::from(v.netmask()))),
                IpNet::V6(v) => n.v6.push((u128::from(v.network()), u128::from(v.netmask()))),
            }
        }
        n
    }

    #[inline]
    pub fn is_internal(&self, ip: IpAddr) -> bool {
        // IPv4-mapped IPv6 (::ffff:10.0.0.1) is judged as the IPv4 address.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match ip {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                self.v4.iter().any(|(net, mask)| a & mask == *net)
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                self.v6.iter().any(|(net, mask)| a & mask == *net)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let n = Networks::new(&["203.0.113.0/24".parse().expect("cidr")]);
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        for internal in
            ["10.1.2.3", "172.31.16.139", "192.168.1.1", "100.64.0.1", "fd00::1", "::ffff:10.0.0.1", "203.0.113.12"]
        {
            assert!(n.is_internal(ip(internal)), "{internal}");
        }
        for external in ["8.8.8.8", "172.32.0.1", "100.128.0.1", "2001:db8::1", "78.24.182.42"] {
            assert!(!n.is_internal(ip(external)), "{external}");
        }
    }
}
