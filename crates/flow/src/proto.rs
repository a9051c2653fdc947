//! IANA protocol numbers and the keywords datasets use for them.

/// (number, keyword) for the protocols that appear in flow data. UNSW-NB15 spells
/// ~130 protocol names; the rare ones without an IANA number (e.g. `unas`, `any`)
/// are left unmapped rather than guessed.
const TABLE: &[(u8, &str)] = &[
    (0, "hopopt"),
    (1, "icmp"),
    (2, "igmp"),
    (3, "ggp"),
    (4, "ipv4"),
    (5, "st"),
    (6, "tcp"),
    (7, "cbt"),
    (8, "egp"),
    (9, "igp"),
    (12, "pup"),
    (17, "udp"),
    (20, "hmp"),
    (22, "xns-idp"),
    (27, "rdp"),
    (29, "iso-tp4"),
    (33, "dccp"),
    (36, "xtp"),
    (37, "ddp"),
    (41, "ipv6"),
    (43, "ipv6-route"),
    (44, "ipv6-frag"),
    (45, "idrp"),
    (46, "rsvp"),
    (47, "gre"),
    (50, "esp"),
    (51, "ah"),
    (55, "mobile"),
    (58, "ipv6-icmp"),
    (59, "ipv6-nonxt"),
    (60, "ipv6-opts"),
    (88, "eigrp"),
    (89, "ospf"),
    (94, "ipip"),
    (97, "etherip"),
    (98, "encap"),
    (103, "pim"),
    (108, "ipcomp"),
    (112, "vrrp"),
    (115, "l2tp"),
    (124, "isis"),
    (132, "sctp"),
    (133, "fc"),
    (136, "udplite"),
    (137, "mpls-in-ip"),
];

pub fn name(p: u8) -> Option<&'static str> {
    TABLE.iter().find(|(n, _)| *n == p).map(|(_, s)| *s)
}

/// Number for a keyword, case-insensitive; `icmp6` and `ipv6-icmp` are both ICMPv6.
pub fn number(name: &[u8]) -> Option<u8> {
    if name.eq_ignore_ascii_case(b"icmp6") || name.eq_ignore_ascii_case(b"icmpv6") {
        return Some(58);
    }
    TABLE.iter().find(|(_, s)| s.as_bytes().eq_ignore_ascii_case(name)).map(|(n, _)| *n)
}
