//! The simulated VPC: hosts with roles, security groups, external peers, and the
//! normal traffic between them.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use compact_str::{format_compact, CompactString};
use flowhound_flow::record::tcp;
use flowhound_flow::{Action, CloudContext, Counts, Direction, FlowRecord, GroundTruth, Timestamp};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Pareto};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Web,
    App,
    Db,
    Cache,
    Bastion,
    Monitor,
    Worker,
}

impl Role {
    /// Inbound TCP ports the role's security group opens.
    pub(crate) fn open_tcp(self) -> &'static [u16] {
        match self {
            Role::Web => &[80, 443, 9100],
            Role::App => &[8080, 9100],
            Role::Db => &[5432, 9100],
            Role::Cache => &[6379, 9100],
            Role::Bastion => &[22, 9100],
            Role::Monitor => &[3000, 9090, 9100],
            Role::Worker => &[9100],
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Host {
    pub ip: Ipv4Addr,
    pub role: Role,
    pub cloud: Arc<CloudContext>,
}

pub(crate) const ACCOUNT: &str = "123456789012";
pub(crate) const RESOLVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
pub(crate) const NTP: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 123);

#[derive(Debug)]
pub(crate) struct World {
    pub hosts: Vec<Host>,
    /// Host indices by role.
    by_role: Vec<Vec<usize>>,
    /// Internet clients of the web tier, most popular first (Pareto-picked).
    pub clients: Vec<Ipv4Addr>,
    /// External APIs the app and workers call.
    pub apis: Vec<Ipv4Addr>,
    pub mirrors: Vec<Ipv4Addr>,
    pub admins: Vec<Ipv4Addr>,
    size_req: LogNormal<f64>,
    size_resp: LogNormal<f64>,
    pkts: Pareto<f64>,
    dur: LogNormal<f64>,
}

/// A public IPv4 address outside the ranges scenarios reserve for "never seen"
/// sources (185.220.0.0/16, 45.155.0.0/16, 193.32.0.0/16) and outside private space.
pub(crate) fn public_ip(rng: &mut ChaCha8Rng) -> Ipv4Addr {
    loop {
        let a: u8 = rng.gen_range(1..=223);
        let b: u8 = rng.gen();
        let reserved =
            matches!((a, b), (10, _) | (127, _) | (169, 254) | (172, 16..=31) | (192, 168) | (100, 64..=127))
                || matches!((a, b), (185, 220) | (45, 155) | (193, 32))
                || a == 0;
        if !reserved {
            return Ipv4Addr::new(a, b, rng.gen(), rng.gen_range(1..=254));
        }
    }
}

impl World {
    pub(crate) fn new(rng: &mut ChaCha8Rng) -> Self {
        let layout: &[(Role, usize, u8)] = &[
            (Role::Web, 6, 1),
            (Role::Bastion, 1, 1),
            (Role::App, 10, 2),
            (Role::Worker, 5, 2),
            (Role::Monitor, 1, 2),
            (Role::Db, 3, 3),
            (Role::Cache, 2, 3),
        ];
        let mut hosts = Vec::new();
        let mut next_in_subnet = [10u8; 4];
        for &(role, count, subnet) in layout {
            for _ in 0..count {
                let last = next_in_subnet[usize::from(subnet)];
                next_in_subnet[usize::from(subnet)] += rng.gen_range(1..=7);
                let az = if hosts.len() % 2 == 0 { "use1-az1" } else { "use1-az2" };
                let hex = |rng: &mut ChaCha8Rng| -> CompactString {
                    (0..17).map(|_| char::from(b"0123456789abcdef"[rng.gen_range(0..16)])).collect()
                };
                let cloud = CloudContext {
                    version: Some(5),
                    account_id: Some(ACCOUNT.into()),
                    interface_id: Some(format_compact!("eni-{}", hex(rng))),
                    vpc_id: Some("vpc-0a1b2c3d4e5f60718".into()),
                    subnet_id: Some(format_compact!("subnet-0{subnet}{}", &hex(rng)[..15])),
                    instance_id: Some(format_compact!("i-{}", hex(rng))),
                    region: Some("us-east-1".into()),
                    az_id: Some(az.into()),
                    traffic_type: Some("IPv4".into()),
                    ..Default::default()
                };
                hosts.push(Host { ip: Ipv4Addr::new(10, 0, subnet, last), role, cloud: Arc::new(cloud) });
            }
        }
        let mut clients: Vec<Ipv4Addr> = (0..4000).map(|_| public_ip(rng)).collect();
        clients.dedup();
        let apis = (0..40).map(|_| public_ip(rng)).collect();
        let mirrors = (0..4).map(|_| public_ip(rng)).collect();
        let admins = (0..3).map(|_| public_ip(rng)).collect();
        let mut by_role = vec![Vec::new(); 7];
        for (i, h) in hosts.iter().enumerate() {
            by_role[h.role as usize].push(i);
        }
        World {
            hosts,
            by_role,
            clients,
            apis,
            mirrors,
            admins,
            size_req: LogNormal::new(5.6, 0.9).expect("valid lognormal"),
            size_resp: LogNormal::new(7.5, 1.4).expect("valid lognormal"),
            pkts: Pareto::new(1.0, 1.6).expect("valid pareto"),
            dur: LogNormal::new(0.5, 1.3).expect("valid lognormal"),
        }
    }

    pub(crate) fn pick(&self, rng: &mut ChaCha8Rng, role: Role) -> &Host {
        let ids = &self.by_role[role as usize];
        &self.hosts[ids[rng.gen_range(0..ids.len())]]
    }

    /// Role `a` with probability `p`, else role `b`.
    pub(crate) fn pick_mix(&self, rng: &mut ChaCha8Rng, p: f64, a: Role, b: Role) -> &Host {
        let role = if rng.gen_bool(p) { a } else { b };
        self.pick(rng, role)
    }

    /// A heavy-tailed packet count with a typical size per packet.
    fn volume(&self, rng: &mut ChaCha8Rng, per_pkt: &LogNormal<f64>, scale: f64) -> (u64, u64) {
        let pkts = (self.pkts.sample(rng) * scale).clamp(1.0, 200_000.0) as u64;
        let size = per_pkt.sample(rng).clamp(40.0, 1500.0) as u64;
        (pkts, pkts * size)
    }

    fn client_ip(&self, rng: &mut ChaCha8Rng) -> Ipv4Addr {
        // Pareto rank: a few clients make most requests, as on real sites.
        let rank = (Pareto::new(1.0, 1.1).expect("valid pareto").sample(rng) - 1.0) * 40.0;
        self.clients[(rank as usize).min(self.clients.len() - 1)]
    }

    /// One minute of normal traffic: `n` records.
    pub(crate) fn normal_minute(&self, rng: &mut ChaCha8Rng, minute: i64, n: usize, out: &mut Vec<FlowRecord>) {
        let target = out.len() + n;
        while out.len() < target {
            let t = minute + rng.gen_range(0..60);
            let eph = rng.gen_range(32768..=60999);
            let roll: u32 = rng.gen_range(0..100);
            let mut c = Conn::new(t, eph);
            match roll {
                0..=29 => {
                    let web = self.pick(rng, Role::Web);
                    let port = if rng.gen_bool(0.85) { 443 } else { 80 };
                    c.client = self.client_ip(rng);
                    c.cport = rng.gen_range(1024..=65535);
                    c.server(web, port);
                    c.vol(self.volume(rng, &self.size_req, 1.0), self.volume(rng, &self.size_resp, 2.0));
                }
                30..=44 => {
                    c.from(self.pick(rng, Role::Web));
                    c.server(self.pick(rng, Role::App), 8080);
                    c.vol(self.volume(rng, &self.size_req, 1.0), self.volume(rng, &self.size_resp, 1.5));
                }
                45..=56 => {
                    c.from(self.pick(rng, Role::App));
                    c.server(self.pick(rng, Role::Db), 5432);
                    c.vol(self.volume(rng, &self.size_req, 1.0), self.volume(rng, &self.size_resp, 3.0));
                }
                57..=64 => {
                    c.from(self.pick_mix(rng, 0.8, Role::App, Role::Worker));
                    c.server(self.pick(rng, Role::Cache), 6379);
                    c.vol(self.volume(rng, &self.size_req, 0.5), self.volume(rng, &self.size_resp, 0.5));
                }
                65..=76 => {
                    let h = &self.hosts[rng.gen_range(0..self.hosts.len())];
                    c.from(h);
                    c.proto = 17;
                    c.server = RESOLVER;
                    c.sport = 53;
                    c.vol((1, rng.gen_range(60..120)), (1, rng.gen_range(90..400)));
                }
                77..=86 => {
                    c.from(self.pick_mix(rng, 0.6, Role::App, Role::Worker));
                    c.server = self.apis[rng.gen_range(0..self.apis.len())];
                    c.sport = 443;
                    c.vol(self.volume(rng, &self.size_req, 1.0), self.volume(rng, &self.size_resp, 2.0));
                }
                87..=88 => {
                    let h = &self.hosts[rng.gen_range(0..self.hosts.len())];
                    c.from(h);
                    c.server = self.mirrors[rng.gen_range(0..self.mirrors.len())];
                    c.sport = if rng.gen_bool(0.5) { 80 } else { 443 };
                    c.vol(self.volume(rng, &self.size_req, 2.0), self.volume(rng, &self.size_resp, 40.0));
                }
                89 => {
                    let b = self.pick(rng, Role::Bastion);
                    c.client = self.admins[rng.gen_range(0..self.admins.len())];
                    c.cport = rng.gen_range(1024..=65535);
                    c.server(b, 22);
                    c.vol(self.volume(rng, &self.size_req, 3.0), self.volume(rng, &self.size_resp, 3.0));
                }
                90 => {
                    c.from(self.pick(rng, Role::Bastion));
                    let h = &self.hosts[rng.gen_range(0..self.hosts.len())];
                    c.server(h, 22);
                    c.vol(self.volume(rng, &self.size_req, 3.0), self.volume(rng, &self.size_resp, 3.0));
                }
                91..=95 => {
                    c.from(self.pick(rng, Role::Monitor));
                    let h = &self.hosts[rng.gen_range(0..self.hosts.len())];
                    c.server(h, 9100);
                    c.vol(
                        (rng.gen_range(4..8), rng.gen_range(400..700)),
                        (rng.gen_range(5..30), rng.gen_range(4000..30000)),
                    );
                }
                96..=97 => {
                    let h = &self.hosts[rng.gen_range(0..self.hosts.len())];
                    c.from(h);
                    c.proto = 17;
                    c.server = NTP;
                    c.sport = 123;
                    c.cport = 123;
                    c.vol((1, 76), (1, 76));
                }
                _ => {
                    // Internet background radiation: a lone probe of a commonly
                    // scanned port on a public-facing host, dropped by the security
                    // group. Real VPCs see this all day; it is not an attack on us.
                    let h = self.pick_mix(rng, 0.7, Role::Web, Role::Bastion);
                    c.client = public_ip(rng);
                    c.cport = rng.gen_range(1024..=65535);
                    const PROBED: [u16; 8] = [23, 445, 3389, 1433, 3306, 5900, 8080, 2323];
                    c.server(h, *PROBED.choose(rng).unwrap_or(&23));
                    c.vol((1, 40 + rng.gen_range(0..3) * 4), (0, 0));
                }
            }
            c.dur = (self.dur.sample(rng) as i64).clamp(0, 59);
            c.emit(out, target, crate::benign());
        }
    }
}

/// One connection, logged on the internal endpoint's interface as VPC does:
/// a request record and, when accepted, a response record.
#[derive(Debug, Clone)]
pub(crate) struct Conn<'w> {
    pub t: i64,
    pub dur: i64,
    pub client: Ipv4Addr,
    pub cport: u16,
    pub server: Ipv4Addr,
    pub sport: u16,
    pub proto: u8,
    pub req: (u64, u64),
    pub resp: (u64, u64),
    /// Interface the records are captured on.
    pub eni: Option<&'w Host>,
    /// Whether the capturing host is the server (ingress request).
    pub eni_is_server: bool,
    pub action: Option<Action>,
    /// TCP flags of the request record; `None` picks a normal handshake.
    pub flags: Option<u8>,
}

impl<'w> Conn<'w> {
    pub(crate) fn new(t: i64, cport: u16) -> Self {
        Conn {
            t,
            dur: 0,
            client: Ipv4Addr::UNSPECIFIED,
            cport,
            server: Ipv4Addr::UNSPECIFIED,
            sport: 0,
            proto: 6,
            req: (1, 60),
            resp: (0, 0),
            eni: None,
            eni_is_server: false,
            action: None,
            flags: None,
        }
    }

    /// The client is this internal host (egress capture unless the server is ours).
    pub(crate) fn from(&mut self, h: &'w Host) {
        self.client = h.ip;
        self.eni = Some(h);
        self.eni_is_server = false;
    }

    /// The server is this internal host; its security group decides.
    pub(crate) fn server(&mut self, h: &'w Host, port: u16) {
        self.server = h.ip;
        self.sport = port;
        self.eni = Some(h);
        self.eni_is_server = true;
        let open = self.proto != 6 || h.role.open_tcp().contains(&port);
        let internal_ok = is_internal(self.client) || matches!(port, 80 | 443) || h.role == Role::Bastion;
        self.action = Some(if open && internal_ok { Action::Accept } else { Action::Reject });
    }

    pub(crate) fn vol(&mut self, req: (u64, u64), resp: (u64, u64)) {
        self.req = req;
        self.resp = resp;
    }

    /// One direction's record: `(src, port) → (dst, port)` carrying `v` = (packets, bytes).
    fn record(
        &self,
        (src, sport): (Ipv4Addr, u16),
        (dst, dport): (Ipv4Addr, u16),
        v: (u64, u64),
        flags: u8,
        dir: Direction,
    ) -> FlowRecord {
        let start = Timestamp::from_secs(self.t);
        let end = Timestamp::from_secs(self.t + self.dur);
        FlowRecord {
            start,
            end,
            duration_us: Some(self.dur as u64 * 1_000_000),
            src: Some(IpAddr::V4(src)),
            dst: Some(IpAddr::V4(dst)),
            src_port: Some(sport),
            dst_port: Some(dport),
            protocol: Some(self.proto),
            packets: Counts::total(v.0),
            bytes: Counts::total(v.1),
            action: Some(self.action.unwrap_or(Action::Accept)),
            tcp_flags: Some(if self.proto == 6 { flags } else { 0 }),
            direction: Some(dir),
            cloud: self.eni.map(|h| h.cloud.clone()),
            ..Default::default()
        }
    }

    /// Appends the request (and response) records, never beyond `limit` records.
    pub(crate) fn emit(&self, out: &mut Vec<FlowRecord>, limit: usize, truth: Option<GroundTruth>) {
        if out.len() >= limit {
            return;
        }
        let accepted = self.action != Some(Action::Reject);
        let short = self.dur < 50;
        let req_flags = self.flags.unwrap_or(if short { tcp::SYN | tcp::FIN } else { tcp::SYN });
        let (req_dir, resp_dir) = if self.eni_is_server {
            (Direction::Ingress, Direction::Egress)
        } else {
            (Direction::Egress, Direction::Ingress)
        };
        let mut r = self.record((self.client, self.cport), (self.server, self.sport), self.req, req_flags, req_dir);
        r.truth = truth.clone();
        out.push(r);
        if accepted && self.resp.0 > 0 && out.len() < limit {
            let resp_flags = if short { tcp::SYN | tcp::ACK | tcp::FIN } else { tcp::SYN | tcp::ACK };
            let mut r =
                self.record((self.server, self.sport), (self.client, self.cport), self.resp, resp_flags, resp_dir);
            r.truth = truth;
            out.push(r);
        }
    }
}

pub(crate) fn is_internal(ip: Ipv4Addr) -> bool {
    ip.is_private() || ip.octets()[0] == 169
}
