//! Where a client connects from, as per-address limits count it.

use std::net::IpAddr;

/// The address a per-address limit counts a client under: its IPv4 address,
/// or the /64 of its IPv6 address (one subscriber's usual share, so that
/// walking through one's own prefix gains nothing). IPv4-mapped IPv6
/// addresses count as the IPv4 address.
pub(crate) fn origin_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("address");
        assert_eq!(origin_of(ip("198.51.100.7")), "198.51.100.7");
        assert_eq!(origin_of(ip("2001:db8:1:2:aaaa::1")), "2001:db8:1:2::/64");
        assert_eq!(origin_of(ip("2001:db8:1:2:bbbb::9")), origin_of(ip("2001:db8:1:2:aaaa::1")));
        assert_ne!(origin_of(ip("2001:db8:1:3::1")), origin_of(ip("2001:db8:1:2::1")));
        assert_eq!(origin_of(ip("::ffff:203.0.113.5")), "203.0.113.5");
    }
}
