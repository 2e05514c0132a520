//! Every range at its first and last address and just outside, in both
//! families, and every IPv6 form that embeds an IPv4 address.

use super::AddressClass::*;
use super::*;

#[track_caller]
fn check(addr: &str, expected: AddressClass) {
    let ip: IpAddr = addr.parse().unwrap();
    assert_eq!(classify(ip), expected, "{addr}");
}

#[track_caller]
fn check_all(cases: &[(&str, AddressClass)]) {
    for (addr, expected) in cases {
        check(addr, *expected);
    }
}

#[test]
fn ipv4_global() {
    check_all(&[
        ("1.1.1.1", Global),
        ("8.8.8.8", Global),
        ("93.184.216.34", Global),
        ("223.255.255.255", Global),
        // AS112 and AMT blocks are globally reachable (IANA registry).
        ("192.31.196.1", Global),
        ("192.175.48.1", Global),
        ("192.52.193.1", Global),
    ]);
}

#[test]
fn ipv4_unspecified_this_network_rfc1122() {
    check_all(&[
        ("0.0.0.0", Unspecified),
        ("0.0.0.1", Unspecified),
        ("0.255.255.255", Unspecified),
        ("1.0.0.0", Global),
    ]);
}

#[test]
fn ipv4_loopback_rfc1122() {
    check_all(&[
        ("127.0.0.1", Loopback),
        ("127.0.0.0", Loopback),
        ("127.1.2.3", Loopback),
        ("127.255.255.255", Loopback),
        ("126.255.255.255", Global),
        ("128.0.0.0", Global),
    ]);
}

#[test]
fn ipv4_private_rfc1918() {
    check_all(&[
        ("10.0.0.0", Private),
        ("10.0.0.1", Private),
        ("10.255.255.255", Private),
        ("9.255.255.255", Global),
        ("11.0.0.0", Global),
        ("172.16.0.0", Private),
        ("172.20.1.1", Private),
        ("172.31.255.255", Private),
        ("172.15.255.255", Global),
        ("172.32.0.0", Global),
        ("192.168.0.0", Private),
        ("192.168.1.1", Private),
        ("192.168.255.255", Private),
        ("192.167.255.255", Global),
        ("192.169.0.0", Global),
    ]);
}

#[test]
fn ipv4_link_local_rfc3927_and_cloud_metadata() {
    check_all(&[
        ("169.254.0.0", LinkLocal),
        ("169.254.169.254", LinkLocal),
        ("169.254.170.2", LinkLocal),
        ("169.254.255.255", LinkLocal),
        ("169.253.255.255", Global),
        ("169.255.0.0", Global),
    ]);
}

#[test]
fn ipv4_shared_cgnat_rfc6598() {
    check_all(&[
        ("100.64.0.0", SharedCgnat),
        ("100.100.100.200", SharedCgnat),
        ("100.127.255.255", SharedCgnat),
        ("100.63.255.255", Global),
        ("100.128.0.0", Global),
    ]);
}

#[test]
fn ipv4_multicast_reserved_broadcast() {
    check_all(&[
        ("224.0.0.0", Multicast),
        ("224.0.0.251", Multicast),
        ("239.255.255.255", Multicast),
        ("240.0.0.0", Reserved),
        ("250.1.2.3", Reserved),
        ("255.255.255.254", Reserved),
        ("255.255.255.255", Broadcast),
    ]);
}

#[test]
fn ipv4_documentation_rfc5737() {
    check_all(&[
        ("192.0.2.0", Documentation),
        ("192.0.2.255", Documentation),
        ("192.0.3.0", Global),
        ("198.51.100.0", Documentation),
        ("198.51.100.255", Documentation),
        ("198.51.99.255", Global),
        ("198.51.101.0", Global),
        ("203.0.113.0", Documentation),
        ("203.0.113.255", Documentation),
        ("203.0.112.255", Global),
        ("203.0.114.0", Global),
    ]);
}

#[test]
fn ipv4_benchmarking_rfc2544() {
    check_all(&[
        ("198.18.0.0", Benchmarking),
        ("198.19.255.255", Benchmarking),
        ("198.17.255.255", Global),
        ("198.20.0.0", Global),
    ]);
}

#[test]
fn ipv4_ietf_protocol_and_6to4_relay() {
    check_all(&[
        ("192.0.0.0", IetfProtocol),
        ("192.0.0.8", IetfProtocol),
        // PCP and TURN anycast are global in the IANA registry; refused
        // anyway since no fetch target lives there.
        ("192.0.0.9", IetfProtocol),
        ("192.0.0.255", IetfProtocol),
        ("191.255.255.255", Global),
        ("192.0.1.0", Global),
        ("192.88.99.0", SixToFourRelay),
        ("192.88.99.255", SixToFourRelay),
        ("192.88.98.255", Global),
        ("192.88.100.0", Global),
    ]);
}

#[test]
fn ipv6_global() {
    check_all(&[
        ("2606:4700:4700::1111", Global),
        ("2001:4860:4860::8888", Global),
        ("2000::", Global),
        ("3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Global),
        // Just past 2001::/23 and 2001:db8::/32.
        ("2001:200::1", Global),
        ("2001:db7:ffff::1", Global),
        ("2001:db9::1", Global),
    ]);
}

#[test]
fn ipv6_loopback_unspecified() {
    check_all(&[
        ("::1", Loopback),
        ("0:0:0:0:0:0:0:1", Loopback),
        ("::", Unspecified),
    ]);
}

#[test]
fn ipv6_link_local_site_local_ula_rfc4291_rfc3879_rfc4193() {
    check_all(&[
        ("fe80::", LinkLocal),
        ("fe80::1", LinkLocal),
        ("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", LinkLocal),
        ("fec0::", SiteLocal),
        ("fec0::1", SiteLocal),
        ("feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", SiteLocal),
        ("fc00::", UniqueLocal),
        ("fd00::1", UniqueLocal),
        ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", UniqueLocal),
        ("fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Reserved),
        ("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Reserved),
    ]);
}

#[test]
fn ipv6_multicast() {
    check_all(&[
        ("ff00::", Multicast),
        ("ff02::1", Multicast),
        ("ff05::1:3", Multicast),
        ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Multicast),
    ]);
}

#[test]
fn ipv6_documentation_rfc3849_rfc9637() {
    check_all(&[
        ("2001:db8::", Documentation),
        ("2001:db8::1", Documentation),
        ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", Documentation),
        ("3fff::", Documentation),
        ("3fff:fff:ffff::1", Documentation),
        ("3fff:1000::", Global),
    ]);
}

#[test]
fn ipv6_discard_rfc6666() {
    check_all(&[
        ("100::", Discard),
        ("100::ffff:ffff:ffff:ffff", Discard),
        ("100:0:0:1::", Reserved),
    ]);
}

#[test]
fn ipv6_teredo_orchid_ietf_rfc4380_rfc4843_rfc7343() {
    check_all(&[
        ("2001::", Teredo),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", Teredo),
        ("2001:0:ffff:ffff:ffff:ffff:ffff:ffff", Teredo),
        ("2001:10::", Orchid),
        ("2001:1f:ffff:ffff:ffff:ffff:ffff:ffff", Orchid),
        ("2001:20::", Orchid),
        ("2001:2f:ffff:ffff:ffff:ffff:ffff:ffff", Orchid),
        ("2001:1::1", IetfProtocol),
        ("2001:2::", IetfProtocol),
        ("2001:3::1", IetfProtocol),
        ("2001:30::1", IetfProtocol),
        ("2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", IetfProtocol),
    ]);
}

#[test]
fn ipv6_outside_global_unicast_is_reserved() {
    check_all(&[
        ("1::", Reserved),
        ("1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Reserved),
        ("4000::1", Reserved),
        ("5f00::1", Reserved),
        ("e000::1", Reserved),
        ("::1:0:0:1", Reserved),
    ]);
}

/// RFC 4291 §2.5.5.2: `::ffff:a.b.c.d` is the IPv4 address a.b.c.d.
#[test]
fn ipv4_mapped_takes_the_embedded_class() {
    check_all(&[
        ("::ffff:127.0.0.1", Loopback),
        ("::ffff:7f00:1", Loopback),
        ("::ffff:10.0.0.1", Private),
        ("::ffff:172.16.0.1", Private),
        ("::ffff:192.168.1.1", Private),
        ("::ffff:169.254.169.254", LinkLocal),
        ("::ffff:100.64.0.1", SharedCgnat),
        ("::ffff:0.0.0.0", Unspecified),
        ("::ffff:255.255.255.255", Broadcast),
        ("::ffff:224.0.0.1", Multicast),
        ("::ffff:192.0.2.1", Documentation),
        ("::ffff:8.8.8.8", Global),
    ]);
}

/// RFC 4291 §2.5.5.1 (deprecated): `::a.b.c.d`.
#[test]
fn ipv4_compatible_takes_the_embedded_class() {
    check_all(&[
        ("::127.0.0.1", Loopback),
        ("::7f00:1", Loopback),
        ("::10.0.0.1", Private),
        ("::169.254.169.254", LinkLocal),
        ("::0.0.0.2", Unspecified),
        ("::8.8.8.8", Global),
    ]);
}

/// RFC 6052 §2.1 well-known prefix; RFC 8215 local-use prefix.
#[test]
fn nat64_takes_the_embedded_class() {
    check_all(&[
        ("64:ff9b::127.0.0.1", Loopback),
        ("64:ff9b::7f00:1", Loopback),
        ("64:ff9b::10.0.0.1", Private),
        ("64:ff9b::169.254.169.254", LinkLocal),
        ("64:ff9b::8.8.8.8", Global),
        // Local-use: the embedding is the operator's choice; never global.
        ("64:ff9b:1::", Private),
        ("64:ff9b:1::8.8.8.8", Private),
        ("64:ff9b:1:ffff:ffff:ffff:ffff:ffff", Private),
        ("64:ff9b:2::8.8.8.8", Reserved),
    ]);
}

/// RFC 3056 §2: `2002:V4ADDR::/48`.
#[test]
fn six_to_four_takes_the_embedded_class() {
    check_all(&[
        ("2002:7f00:1::", Loopback),
        ("2002:7f00:1::1", Loopback),
        ("2002:a00:1::1", Private),
        ("2002:c0a8:101::1", Private),
        ("2002:a9fe:a9fe::1", LinkLocal),
        ("2002::1", Unspecified),
        ("2002:808:808::1", Global),
    ]);
}

#[test]
fn only_global_is_global() {
    assert!(Global.is_global());
    for class in [Loopback, Private, LinkLocal, Teredo, Reserved] {
        assert!(!class.is_global(), "{class}");
    }
}

#[test]
fn canonical_unmaps_ipv4_mapped_only() {
    let c = |s: &str| canonical(s.parse().unwrap()).to_string();
    assert_eq!(c("::ffff:127.0.0.1"), "127.0.0.1");
    assert_eq!(c("127.0.0.1"), "127.0.0.1");
    assert_eq!(c("::1"), "::1");
    assert_eq!(c("::127.0.0.1"), "::7f00:1");
}
