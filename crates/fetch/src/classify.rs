//! The address classifier: which special-purpose range, if any, an IP
//! address belongs to.
//!
//! [`classify`] is a pure function of the address. It follows the IANA
//! special-purpose address registries (RFC 6890 and its updates) and is
//! deliberately stricter than "globally reachable" there: a whole block is
//! refused where IANA marks only most of it as not global (`192.0.0.0/24`,
//! `2001::/23`), because no server Charter must talk to lives there. Only
//! [`AddressClass::Global`] may be fetched without an operator allowlist
//! (OWASP SSRF Prevention Cheat Sheet, "Case 2"; CIMD §6.5).
//!
//! IPv6 forms that carry an IPv4 address (IPv4-mapped `::ffff:0:0/96`,
//! IPv4-compatible `::/96`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) take the
//! class of the embedded IPv4 address, so `::ffff:127.0.0.1` is loopback:
//! connecting to them reaches (or may reach) that IPv4 address. IPv6
//! outside global unicast `2000::/3` is reserved.
//!
//! It does not decide what is *allowed*: the operator allowlist is applied
//! by the caller (`vet`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The kind of address; everything but `Global` is refused by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressClass {
    /// Publicly routable unicast.
    Global,
    /// `127.0.0.0/8`, `::1` (RFC 1122 §3.2.1.3, RFC 4291 §2.5.3).
    Loopback,
    /// `10/8`, `172.16/12`, `192.168/16` (RFC 1918), and the local-use
    /// NAT64 prefix `64:ff9b:1::/48` (RFC 8215), whose embedding the
    /// operator chooses and which is never globally reachable.
    Private,
    /// `169.254/16` including the cloud metadata address `169.254.169.254`
    /// (RFC 3927), `fe80::/10` (RFC 4291).
    LinkLocal,
    /// Carrier-grade NAT shared space `100.64/10` (RFC 6598).
    SharedCgnat,
    /// `224/4`, `ff00::/8`.
    Multicast,
    /// "This network" `0/8` (RFC 791, RFC 1122) and `::`.
    Unspecified,
    /// Limited broadcast `255.255.255.255` (RFC 919).
    Broadcast,
    /// `192.0.2/24`, `198.51.100/24`, `203.0.113/24` (RFC 5737),
    /// `2001:db8::/32` (RFC 3849), `3fff::/20` (RFC 9637).
    Documentation,
    /// Benchmarking `198.18/15` (RFC 2544).
    Benchmarking,
    /// `240/4` (RFC 1112), IPv6 outside `2000::/3`, SRv6 SIDs `5f00::/16`
    /// (RFC 9602).
    Reserved,
    /// IETF protocol assignments: `192.0.0/24` (RFC 6890) and the rest of
    /// `2001::/23` (RFC 2928).
    IetfProtocol,
    /// Deprecated 6to4 relay anycast `192.88.99/24` (RFC 7526).
    SixToFourRelay,
    /// Unique local `fc00::/7` (RFC 4193).
    UniqueLocal,
    /// Deprecated site-local `fec0::/10` (RFC 3879).
    SiteLocal,
    /// Discard-only `100::/64` (RFC 6666).
    Discard,
    /// Teredo `2001::/32` (RFC 4380): the client address inside is
    /// obfuscated, so the whole prefix is refused.
    Teredo,
    /// ORCHID `2001:10::/28` (RFC 4843) and ORCHIDv2 `2001:20::/28`
    /// (RFC 7343): identifiers, not locators.
    Orchid,
}

impl AddressClass {
    /// A short name for messages ("a private address").
    pub fn as_str(self) -> &'static str {
        match self {
            AddressClass::Global => "global",
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::LinkLocal => "link-local",
            AddressClass::SharedCgnat => "shared (carrier-grade NAT)",
            AddressClass::Multicast => "multicast",
            AddressClass::Unspecified => "unspecified",
            AddressClass::Broadcast => "broadcast",
            AddressClass::Documentation => "documentation",
            AddressClass::Benchmarking => "benchmarking",
            AddressClass::Reserved => "reserved",
            AddressClass::IetfProtocol => "IETF protocol assignment",
            AddressClass::SixToFourRelay => "6to4 relay anycast",
            AddressClass::UniqueLocal => "unique local",
            AddressClass::SiteLocal => "site-local",
            AddressClass::Discard => "discard-only",
            AddressClass::Teredo => "Teredo",
            AddressClass::Orchid => "ORCHID",
        }
    }

    /// Whether the address may be fetched without an allowlist entry.
    pub fn is_global(self) -> bool {
        self == AddressClass::Global
    }
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The class of `ip`. Pure: no lookups, no configuration.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// Whether `ip` lies in `prefix/len` (IPv4).
fn in_v4(ip: u32, prefix: [u8; 4], len: u32) -> bool {
    let prefix = u32::from_be_bytes(prefix);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    ip & mask == prefix & mask
}

/// Whether `ip` lies in `prefix/len` (IPv6).
fn in_v6(ip: u128, prefix: Ipv6Addr, len: u32) -> bool {
    let prefix = u128::from(prefix);
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    };
    ip & mask == prefix & mask
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    use AddressClass::*;
    let n = u32::from(ip);
    // Most specific first: `255.255.255.255` lies inside `240/4`, and the
    // `192.0.0/24`, `192.0.2/24`, `192.88.99/24` blocks are all distinct.
    const TABLE: &[([u8; 4], u32, AddressClass)] = &[
        ([255, 255, 255, 255], 32, Broadcast),
        ([0, 0, 0, 0], 8, Unspecified),
        ([10, 0, 0, 0], 8, Private),
        ([100, 64, 0, 0], 10, SharedCgnat),
        ([127, 0, 0, 0], 8, Loopback),
        ([169, 254, 0, 0], 16, LinkLocal),
        ([172, 16, 0, 0], 12, Private),
        ([192, 0, 0, 0], 24, IetfProtocol),
        ([192, 0, 2, 0], 24, Documentation),
        ([192, 88, 99, 0], 24, SixToFourRelay),
        ([192, 168, 0, 0], 16, Private),
        ([198, 18, 0, 0], 15, Benchmarking),
        ([198, 51, 100, 0], 24, Documentation),
        ([203, 0, 113, 0], 24, Documentation),
        ([224, 0, 0, 0], 4, Multicast),
        ([240, 0, 0, 0], 4, Reserved),
    ];
    TABLE
        .iter()
        .find(|(prefix, len, _)| in_v4(n, *prefix, *len))
        .map_or(Global, |(_, _, class)| *class)
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    use AddressClass::*;
    let n = u128::from(ip);
    let v6 = |a: u16, b: u16, c: u16| Ipv6Addr::new(a, b, c, 0, 0, 0, 0, 0);

    // `::` and `::1` sit inside the IPv4-compatible block `::/96`; they are
    // themselves, not `0.0.0.0` and `0.0.0.1`.
    if ip == Ipv6Addr::UNSPECIFIED {
        return Unspecified;
    }
    if ip == Ipv6Addr::LOCALHOST {
        return Loopback;
    }
    // Forms that embed an IPv4 address in the low 32 bits: a connection to
    // them reaches that IPv4 host (mapped on a dual-stack socket, NAT64
    // through the translator, compatible through an automatic tunnel).
    if in_v6(n, Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96) // RFC 4291 §2.5.5.2
        || in_v6(n, Ipv6Addr::UNSPECIFIED, 96) // RFC 4291 §2.5.5.1
        || in_v6(n, v6(0x64, 0xff9b, 0), 96)
    // RFC 6052 §2.1
    {
        return classify_v4(low_v4(n));
    }
    // 6to4 (RFC 3056 §2): `2002:V4ADDR::/48`.
    if in_v6(n, v6(0x2002, 0, 0), 16) {
        // Bits 16..48 hold the IPv4 address; the shift and mask keep 32 bits.
        return classify_v4(Ipv4Addr::from(((n >> 80) & 0xffff_ffff) as u32));
    }

    const TABLE: &[((u16, u16, u16), u32, AddressClass)] = &[
        ((0x64, 0xff9b, 1), 48, Private), // RFC 8215 local-use NAT64
        ((0x100, 0, 0), 64, Discard),
        ((0x2001, 0, 0), 32, Teredo),
        ((0x2001, 0x10, 0), 28, Orchid),
        ((0x2001, 0x20, 0), 28, Orchid),
        ((0x2001, 0, 0), 23, IetfProtocol),
        ((0x2001, 0xdb8, 0), 32, Documentation),
        ((0x3fff, 0, 0), 20, Documentation),
        ((0x5f00, 0, 0), 16, Reserved),
        ((0xfc00, 0, 0), 7, UniqueLocal),
        ((0xfe80, 0, 0), 10, LinkLocal),
        ((0xfec0, 0, 0), 10, SiteLocal),
        ((0xff00, 0, 0), 8, Multicast),
    ];
    if let Some((_, _, class)) = TABLE
        .iter()
        .find(|((a, b, c), len, _)| in_v6(n, v6(*a, *b, *c), *len))
    {
        return *class;
    }
    // Only global unicast space is ever routed on the Internet
    // (RFC 4291 §2.4); everything else is unassigned or special.
    if in_v6(n, v6(0x2000, 0, 0), 3) {
        Global
    } else {
        Reserved
    }
}

/// The IPv4 address in the low 32 bits of an IPv6 address.
fn low_v4(n: u128) -> Ipv4Addr {
    // Truncation is the point: keep the last 32 bits.
    Ipv4Addr::from((n & 0xffff_ffff) as u32)
}

/// The address an allowlist CIDR is matched against: an IPv4-mapped IPv6
/// address is the IPv4 address it maps, so `127.0.0.0/8` covers
/// `::ffff:127.0.0.1` too.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests;
