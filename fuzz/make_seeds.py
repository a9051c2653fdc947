#!/usr/bin/env python3
"""Writes fuzz/seeds/<target>/: a small seed corpus per fuzz target, from the
repository's own fixtures (crates/flow/tests/fixtures, crates/explain's rule
table, the Parquet fixture) and hand-built binary inputs (pcap, pcapng,
NetFlow v5 and IPFIX datagrams), each framed the way its target expects.

Run from anywhere: python3 fuzz/make_seeds.py. The output is committed; CI's
fuzz smoke run starts from it (a copy, so the committed corpus stays as is).
"""
import os
import shutil
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "crates/flow/tests/fixtures")
OUT = os.path.join(ROOT, "fuzz/seeds")
CAP = 4096  # bytes kept of a text fixture: small seeds fuzz faster


def text(name, cap=CAP):
    with open(os.path.join(FIX, name), "rb") as f:
        data = f.read()
    if len(data) > cap:
        data = data[: data.rfind(b"\n", 0, cap) + 1]
    return data


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- line formats (the first byte picks the dialect where a target says so)
for n in ["vpc-v2.log", "vpc-v8-custom.log", "vpc-broken.log", "vpc-cloudwatch.log", "vpc-bad-header.log"]:
    put("vpc", n, text(n))
for i, n in enumerate(["zeek-conn.log", "iot23.csv", "unsw.csv", "cic-2017.csv"]):
    put("tabular", n, bytes([i]) + text(n))
flowhound_csv = (
    b"start,end,duration,src,dst,src_port,dst_port,protocol,packets,bytes,action,malicious,category\n"
    b"2026-11-03T00:00:00Z,2026-11-03T00:00:01Z,1.000000,10.0.0.1,10.0.0.2,40000,443,6,10,1200,ACCEPT,false,\n"
    b"2026-11-03T00:00:02Z,2026-11-03T00:00:02Z,0.000000,10.0.0.9,10.0.0.2,40001,22,6,1,40,REJECT,true,port_scan\n"
)
put("tabular", "flowhound.csv", bytes([4]) + flowhound_csv)
# 5: a mapping by names (custom.csv's), 6: by positions over a file without a header.
put("tabular", "custom.csv", bytes([5]) + text("custom.csv"))
put("tabular", "headerless.csv", bytes([6]) + b"10.0.0.1,10.0.0.2,40000,6,1200,0.5\n10.0.0.3,10.0.0.2,40001,17,80,1\n")
put("json", "zeek-conn.json", bytes([0]) + text("zeek-conn.json"))
put(
    "json",
    "flowhound.jsonl",
    bytes([1])
    + b'{"start":"2026-11-03T00:00:00Z","src":"10.0.0.1","dst":"10.0.0.2","src_port":40000,"dst_port":443,"protocol":6,"bytes":1200,"packets":10}\n'
    + b'{"start":"2026-11-03T00:00:01Z","src":"fe80::1","dst":"10.0.0.2","protocol":1,"extra":{"x":1.5}}\n',
)
for n in ["vpc-v2.log", "zeek-conn.log", "zeek-conn.json", "iot23.csv", "unsw.csv", "cic-2017.csv", "custom.csv"]:
    put("detect", n, text(n, 2048))
put("detect", "flowhound.csv", flowhound_csv)
put("labels", "labels.csv", b"line,malicious,category\n2,false,\n3,true,port_scan\n4,1,ddos\n5,,\n")
put("labels", "bad.csv", b"line,malicious\nx,maybe\n-1,true\n")

# ---- the rule table and allowlists
with open(os.path.join(ROOT, "crates/explain/src/rules.toml"), "rb") as f:
    put("explain_config", "rules.toml", f.read()[:CAP])
put(
    "explain_config",
    "allow.toml",
    b'[[allow]]\ncidr = "10.0.9.0/24"\nreason = "scanner"\nexpires = "2027-03-01"\n\n'
    b'[[allow]]\nsrc = "10.0.1.5"\ndst = "10.0.2.0/24"\nports = [5432]\nprotocol = "tcp"\n\n'
    b'[[allow]]\naws_service = "S3"\n',
)
put(
    "explain_config",
    "rule.toml",
    b'[[rule]]\nclass = "port_scan"\nvariant = "vertical"\ntechnique = "T1046"\nactor = "src"\n'
    b'when = ["src_distinct_dst_ports_{long} >= 15", "proto in [6, 17]"]\n'
    b'reason = "{src} probed {src_distinct_dst_ports_{long}} ports within {long}"\n',
)

# ---- Parquet: the target adds the magic at both ends
with open(os.path.join(ROOT, "crates/source/tests/fixtures/vpc-flow.parquet"), "rb") as f:
    pq = f.read()
assert pq[:4] == b"PAR1" and pq[-4:] == b"PAR1"
put("parquet", "vpc-flow", pq[4:-4])


# ---- captures: one TCP handshake, a UDP datagram and an ARP frame
def ipv4(src, dst, proto, payload):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0, bytes(src), bytes(dst))
    return h + payload


def tcp(sp, dp, flags):
    return struct.pack("!HHIIBBHHH", sp, dp, 1, 0, 0x50, flags, 1024, 0, 0)


def eth(payload, kind=0x0800):
    return b"\x02" * 6 + b"\x01" * 6 + struct.pack("!H", kind) + payload


A, B = [10, 0, 0, 1], [10, 0, 0, 2]
frames = [
    eth(ipv4(A, B, 6, tcp(40000, 80, 0x02))),
    eth(ipv4(B, A, 6, tcp(80, 40000, 0x12))),
    eth(ipv4(A, B, 6, tcp(40000, 80, 0x11))),
    eth(ipv4(A, B, 17, struct.pack("!HHHH", 5353, 53, 12, 0) + b"abcd")),
    eth(b"\x00\x01\x08\x00\x06\x04\x00\x01" + b"\x00" * 20, 0x0806),
]
# Legacy pcap: the target writes the header (link type from the first byte / 2).
recs = b""
for i, f in enumerate(frames):
    recs += struct.pack("<IIII", 1_700_000_000 + i, 500 * i, len(f), len(f)) + f
put("pcap", "ethernet.pcap", bytes([2]) + recs)
put("pcap", "raw-ip.pcap", bytes([2 * 101]) + struct.pack("<IIII", 1_700_000_000, 0, 40, 40) + frames[0][14:])


def block(kind, body):
    body += b"\x00" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack("<II", kind, n) + body + struct.pack("<I", n)


shb = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
idb = block(1, struct.pack("<HHI", 1, 0, 65535) + struct.pack("<HHB3x", 9, 1, 6) + b"\x00" * 4)
epbs = b""
for i, f in enumerate(frames):
    t = (1_700_000_000 + i) * 1_000_000
    epbs += block(6, struct.pack("<IIIII", 0, t >> 32, t & 0xFFFFFFFF, len(f), len(f)) + f)
spb = block(3, struct.pack("<I", len(frames[3])) + frames[3])
# pcapng: the target writes the 4 magic bytes, the seed the rest of the file.
put("pcap", "ethernet.pcapng", bytes([1]) + (shb + idb + epbs + spb)[4:])

# ---- NetFlow: datagrams framed as a length byte (in 4-byte units) and the bytes
v5 = struct.pack("!HHIIIIBBH", 5, 2, 1000, 1_700_000_000, 0, 1, 0, 0, 0)
for i in range(2):
    v5 += struct.pack(
        "!4s4s4sHHIIIIHHBBBBHHBBH",
        bytes([10, 0, 0, 1 + i]), bytes(B), bytes(4), 1, 2, 10, 1200, 100, 900, 40000 + i, 443, 0, 0x1B, 6, 0, 0, 0, 24, 24, 0,
    )
tmpl = struct.pack("!HH", 256, 5) + struct.pack("!HHHHHHHHHH", 8, 4, 12, 4, 7, 2, 11, 2, 4, 1)
tset = struct.pack("!HH", 2, 4 + len(tmpl)) + tmpl
rec = bytes(A) + bytes(B) + struct.pack("!HHB", 40000, 443, 6)
dbody = rec + rec
dbody += b"\x00" * (-(len(dbody) + 4) % 4)
dset = struct.pack("!HH", 256, 4 + len(dbody)) + dbody
ipfix_body = tset + dset
ipfix = struct.pack("!HHIII", 10, 16 + len(ipfix_body), 1_700_000_000, 1, 7) + ipfix_body


def dgram(d):
    d += b"\x00" * (-len(d) % 4)
    assert len(d) // 4 < 256
    return bytes([len(d) // 4]) + d


put("netflow", "v5", dgram(v5))
put("netflow", "ipfix-template-then-data", dgram(ipfix) + dgram(ipfix))

if __name__ == "__main__":
    total = 0
    for t in sorted(os.listdir(OUT)):
        files = os.listdir(os.path.join(OUT, t))
        size = sum(os.path.getsize(os.path.join(OUT, t, f)) for f in files)
        total += size
        print(f"{t:16} {len(files)} seeds, {size} bytes")
    print(f"total {total} bytes")
