//! Which network addresses a user-given URL may reach (webhooks, `start_image`, `start_video`):
//! only public unicast ones. The lists follow IANA's IPv4 and IPv6 Special-Purpose Address
//! Registries (every block in them is refused, globally reachable or not: none is a place a
//! user's media or webhook receiver lives), plus multicast; an IPv6 address that embeds an IPv4
//! one (IPv4-mapped, IPv4-compatible, IPv4-translated, NAT64, 6to4) is judged by the IPv4
//! address inside.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IPv4 special-purpose blocks (network, prefix length).
const V4_REFUSED: [([u8; 4], u8); 20] = [
    ([0, 0, 0, 0], 8),          // "this network"
    ([10, 0, 0, 0], 8),         // private
    ([100, 64, 0, 0], 10),      // shared address space (carrier-grade NAT)
    ([127, 0, 0, 0], 8),        // loopback
    ([169, 254, 0, 0], 16),     // link-local (cloud metadata services live here)
    ([172, 16, 0, 0], 12),      // private
    ([192, 0, 0, 0], 24),       // IETF protocol assignments (incl. 192.0.0.170 NAT64 discovery)
    ([192, 0, 2, 0], 24),       // documentation TEST-NET-1
    ([192, 31, 196, 0], 24),    // AS112-v4
    ([192, 52, 193, 0], 24),    // AMT
    ([192, 88, 99, 0], 24),     // deprecated 6to4 relay anycast
    ([192, 168, 0, 0], 16),     // private
    ([192, 175, 48, 0], 24),    // direct delegation AS112
    ([198, 18, 0, 0], 15),      // benchmarking
    ([198, 51, 100, 0], 24),    // documentation TEST-NET-2
    ([203, 0, 113, 0], 24),     // documentation TEST-NET-3
    ([224, 0, 0, 0], 4),        // multicast
    ([240, 0, 0, 0], 4),        // reserved
    ([255, 255, 255, 255], 32), // limited broadcast (inside 240/4; listed for the reader)
    ([233, 252, 0, 0], 24),     // MCAST-TEST-NET (inside 224/4; listed for the reader)
];

/// IPv6 special-purpose blocks that embed no IPv4 address (network, prefix length).
const V6_REFUSED: [(u128, u8); 12] = [
    (0, 128),                          // unspecified
    (1, 128),                          // loopback
    (0x0064_ff9b_0001 << 80, 48),      // local-use IPv4/IPv6 translation
    (0x0100 << 112, 64),               // discard-only
    (0x0100_0000_0000_0001 << 64, 64), // dummy prefix
    (0x2001 << 112, 23),               // IETF protocol assignments (incl. Teredo)
    (0x2001_0db8 << 96, 32),           // documentation
    (0x3fff << 112, 20),               // documentation
    (0x5f00 << 112, 16),               // segment routing SIDs
    (0xfc00 << 112, 7),                // unique local
    (0xfe80 << 112, 10),               // link-local
    (0xfec0 << 112, 10),               // deprecated site-local
];

fn in_block(address: u128, network: u128, prefix: u8, bits: u32) -> bool {
    let shift = bits - u32::from(prefix);
    shift >= bits || (address >> shift) == (network >> shift)
}

/// Whether a user-given URL may reach `ip`.
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let address = u128::from(u32::from(ip));
    !V4_REFUSED
        .iter()
        .any(|(network, prefix)| in_block(address, u128::from(u32::from(Ipv4Addr::from(*network))), *prefix, 32))
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return is_public_v4(v4);
    }
    let address = u128::from(ip);
    if (address >> 120) == 0xff {
        return false; // multicast
    }
    !V6_REFUSED.iter().any(|(network, prefix)| in_block(address, *network, *prefix, 128))
}

/// The IPv4 address an IPv6 one stands for, in the forms that route to it.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let address = u128::from(ip);
    let low32 = Ipv4Addr::from((address & 0xffff_ffff) as u32);
    let high96 = address >> 32;
    match high96 {
        // IPv4-compatible ::a.b.c.d (deprecated), but :: and ::1 are themselves.
        0 if address > 1 => Some(low32),
        // IPv4-mapped ::ffff:a.b.c.d
        0xffff => Some(low32),
        // IPv4-translated ::ffff:0:a.b.c.d (SIIT)
        0xffff_0000 => Some(low32),
        // NAT64 well-known prefix 64:ff9b::/96
        _ if high96 == 0x0064_ff9b_0000_0000_0000_0000 => Some(low32),
        // 6to4 2002:AABB:CCDD::/48 carries AA.BB.CC.DD
        _ if (address >> 112) == 0x2002 => Some(Ipv4Addr::from(((address >> 80) & 0xffff_ffff) as u32)),
        _ => None,
    }
}

/// Whether a host name is one every resolver answers with this machine (RFC 6761 `localhost`
/// and its subdomains), however it is written: any case, with or without the root's dot.
pub fn is_local_name(host: &str) -> bool {
    let name = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(text: &str) -> bool {
        is_public_ip(text.parse().unwrap())
    }

    #[test]
    fn public_unicast_addresses_pass() {
        for ok in ["8.8.8.8", "1.1.1.1", "93.184.216.34", "192.0.1.1", "100.128.0.1", "2606:4700::1111", "2a00:1450::1"]
        {
            assert!(public(ok), "{ok} is public");
        }
    }

    #[test]
    fn every_ipv4_special_purpose_block_is_refused_at_both_ends() {
        for (network, prefix) in V4_REFUSED {
            let first = u32::from(Ipv4Addr::from(network));
            let last = first | (u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0));
            for ip in [first, last] {
                assert!(
                    !is_public_ip(IpAddr::V4(Ipv4Addr::from(ip))),
                    "{} in {network:?}/{prefix}",
                    Ipv4Addr::from(ip)
                );
            }
        }
        for refused in ["192.0.0.170", "192.0.0.171", "127.0.0.1", "169.254.169.254", "100.100.100.200", "0.1.2.3"] {
            assert!(!public(refused), "{refused}");
        }
        assert!(public("192.0.3.1") && public("198.20.0.1") && public("223.255.255.254"), "neighbours stay public");
    }

    #[test]
    fn ipv6_special_purpose_blocks_are_refused() {
        for refused in [
            "::",
            "::1",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "100::1",
            "64:ff9b:1::1",
            "3fff::1",
            "5f00::1",
        ] {
            assert!(!public(refused), "{refused}");
        }
    }

    #[test]
    fn ipv6_forms_that_embed_an_ipv4_address_are_judged_by_it() {
        for refused in [
            "::ffff:127.0.0.1", // IPv4-mapped
            "::ffff:7f00:1",    // the same, in hex
            "::127.0.0.1",      // IPv4-compatible
            "::10.0.0.1",
            "::ffff:0:10.1.2.3",    // IPv4-translated
            "64:ff9b::192.168.1.1", // NAT64
            "64:ff9b::a9fe:a9fe",   // NAT64 of 169.254.169.254
            "2002:7f00:1::",        // 6to4 of 127.0.0.1
            "2002:c0a8:101::1",     // 6to4 of 192.168.1.1
            "::192.0.0.170",
        ] {
            assert!(!public(refused), "{refused}");
        }
        for ok in ["::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1", "::8.8.8.8"] {
            assert!(public(ok), "{ok} embeds a public address");
        }
    }

    #[test]
    fn localhost_is_recognised_however_it_is_written() {
        for local in ["localhost", "LOCALHOST", "LocalHost.", "localhost.", "a.localhost", "x.LOCALHOST."] {
            assert!(is_local_name(local), "{local}");
        }
        for other in ["localhost.example.com", "mylocalhost", "example.com", "notlocalhost."] {
            assert!(!is_local_name(other), "{other}");
        }
    }
}
