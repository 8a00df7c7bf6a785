//! The `.awl` DNS zone (awl-protocol.md §6): `<alias|domain|peer-id>.awl` → the peer's mesh
//! IP, PTR for mesh IPs, everything else forwarded upstream. Pure: parse a query, decide,
//! build the answer.
//!
//! Unlike AWL (bug #150), AAAA and other types for a known name get an empty NOERROR answer,
//! not an A record.

use std::net::Ipv4Addr;

pub const TTL: u32 = 60;
const T_A: u16 = 1;
const T_PTR: u16 = 12;
const T_ANY: u16 = 255;
const CLASS_IN: u16 = 1;
const RCODE_NXDOMAIN: u8 = 3;
const RCODE_SERVFAIL: u8 = 2;
const RCODE_FORMERR: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub id: u16,
    pub rd: bool,
    /// Lower-case, without the trailing dot.
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
    /// End of the question section in the query bytes.
    question_end: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    A(Ipv4Addr),
    /// A name in our zone, to be answered as `<name>.awl`.
    Ptr(String),
    /// The name exists, but has no record of this type.
    NoData,
    NxDomain,
    /// Not ours: ask the upstream resolver.
    Forward,
}

/// Parses a standard query with one question (the only kind resolvers send).
pub fn parse_query(msg: &[u8]) -> Result<Query, &'static str> {
    if msg.len() < 12 {
        return Err("short header");
    }
    let flags = u16::from_be_bytes([msg[2], msg[3]]);
    if flags & 0x8000 != 0 || (flags >> 11) & 0xf != 0 {
        return Err("not a standard query");
    }
    if u16::from_be_bytes([msg[4], msg[5]]) != 1 {
        return Err("one question expected");
    }
    let mut pos = 12;
    let mut labels: Vec<String> = Vec::new();
    loop {
        let len = *msg.get(pos).ok_or("truncated name")? as usize;
        pos += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return Err("bad label");
        }
        let label = msg.get(pos..pos + len).ok_or("truncated name")?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        pos += len;
        if pos > 12 + 255 {
            return Err("name too long");
        }
    }
    let qtype = u16::from_be_bytes([
        *msg.get(pos).ok_or("truncated")?,
        *msg.get(pos + 1).ok_or("truncated")?,
    ]);
    let qclass = u16::from_be_bytes([
        *msg.get(pos + 2).ok_or("truncated")?,
        *msg.get(pos + 3).ok_or("truncated")?,
    ]);
    Ok(Query {
        id: u16::from_be_bytes([msg[0], msg[1]]),
        rd: flags & 0x0100 != 0,
        name: labels.join("."),
        qtype,
        qclass,
        question_end: pos + 4,
    })
}

/// Our answer for `q`: `lookup` maps a label (`alias`, `domain`, peer ID, all lower-case) to
/// a mesh IP, `reverse` a mesh IP to its label, `in_mesh` says whether an IP is ours to
/// answer for.
pub fn decide(
    q: &Query,
    lookup: impl Fn(&str) -> Option<Ipv4Addr>,
    reverse: impl Fn(Ipv4Addr) -> Option<String>,
    in_mesh: impl Fn(Ipv4Addr) -> bool,
) -> Answer {
    if q.qclass != CLASS_IN && q.qclass != T_ANY {
        return Answer::Forward;
    }
    if let Some(label) = q.name.strip_suffix(".awl") {
        return match lookup(label) {
            Some(ip) if q.qtype == T_A || q.qtype == T_ANY => Answer::A(ip),
            Some(_) => Answer::NoData,
            None => Answer::NxDomain,
        };
    }
    if q.name == "awl" {
        return Answer::NoData;
    }
    if let Some(rev) = q.name.strip_suffix(".in-addr.arpa") {
        let parts: Vec<u8> = rev.split('.').filter_map(|p| p.parse().ok()).collect();
        if parts.len() == 4 && rev.split('.').count() == 4 {
            let ip = Ipv4Addr::new(parts[3], parts[2], parts[1], parts[0]);
            if in_mesh(ip) {
                return match reverse(ip) {
                    Some(n) if q.qtype == T_PTR || q.qtype == T_ANY => Answer::Ptr(n),
                    Some(_) => Answer::NoData,
                    None => Answer::NxDomain,
                };
            }
        }
    }
    Answer::Forward
}

fn encode_name(name: &str, out: &mut Vec<u8>) {
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let l = &label.as_bytes()[..label.len().min(63)];
        out.push(l.len() as u8);
        out.extend_from_slice(l);
    }
    out.push(0);
}

fn header(q: &Query, rcode: u8, answers: u16, out: &mut Vec<u8>) {
    out.extend_from_slice(&q.id.to_be_bytes());
    // QR, AA, RD as asked, RA.
    let mut flags: u16 = 0x8400 | 0x0080 | u16::from(rcode);
    if q.rd {
        flags |= 0x0100;
    }
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&answers.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
}

/// The response to `query` (the bytes `q` was parsed from). `Forward` is not an answer.
pub fn respond(query: &[u8], q: &Query, a: &Answer) -> Vec<u8> {
    let mut out = Vec::with_capacity(q.question_end + 64);
    let question = &query[12..q.question_end.min(query.len())];
    match a {
        Answer::A(ip) => {
            header(q, 0, 1, &mut out);
            out.extend_from_slice(question);
            out.extend_from_slice(&[0xc0, 12]);
            out.extend_from_slice(&T_A.to_be_bytes());
            out.extend_from_slice(&CLASS_IN.to_be_bytes());
            out.extend_from_slice(&TTL.to_be_bytes());
            out.extend_from_slice(&4u16.to_be_bytes());
            out.extend_from_slice(&ip.octets());
        }
        Answer::Ptr(name) => {
            header(q, 0, 1, &mut out);
            out.extend_from_slice(question);
            out.extend_from_slice(&[0xc0, 12]);
            out.extend_from_slice(&T_PTR.to_be_bytes());
            out.extend_from_slice(&CLASS_IN.to_be_bytes());
            out.extend_from_slice(&TTL.to_be_bytes());
            let mut rdata = Vec::new();
            encode_name(&format!("{name}.awl"), &mut rdata);
            out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            out.extend_from_slice(&rdata);
        }
        Answer::NoData | Answer::Forward => {
            header(q, 0, 0, &mut out);
            out.extend_from_slice(question);
        }
        Answer::NxDomain => {
            header(q, RCODE_NXDOMAIN, 0, &mut out);
            out.extend_from_slice(question);
        }
    }
    out
}

/// SERVFAIL for a query we could not forward; FORMERR for one we could not parse (when at
/// least the ID is there).
pub fn failure(query: &[u8], parsed: Option<&Query>) -> Option<Vec<u8>> {
    match parsed {
        Some(q) => {
            let mut out = Vec::new();
            header(q, RCODE_SERVFAIL, 0, &mut out);
            out.extend_from_slice(&query[12..q.question_end.min(query.len())]);
            Some(out)
        }
        None if query.len() >= 12 => {
            let mut out = query[..12].to_vec();
            out[2] = 0x80 | (query[2] & 0x01);
            out[3] = 0x80 | RCODE_FORMERR;
            out[4..12].fill(0);
            Some(out)
        }
        None => None,
    }
}

/// The question of a DNS message (query or response): ID, lower-case name, type, class.
/// `None` unless there is exactly one question.
pub fn question(msg: &[u8]) -> Option<(u16, String, u16, u16)> {
    if msg.len() < 12 || u16::from_be_bytes([msg[4], msg[5]]) != 1 {
        return None;
    }
    let mut pos = 12;
    let mut name: Vec<u8> = Vec::new();
    loop {
        let len = *msg.get(pos)? as usize;
        pos += 1;
        if len == 0 {
            break;
        }
        if len > 63 || pos > 12 + 255 {
            return None;
        }
        if !name.is_empty() {
            name.push(b'.');
        }
        name.extend(msg.get(pos..pos + len)?.iter().map(u8::to_ascii_lowercase));
        pos += len;
    }
    let qtype = u16::from_be_bytes([*msg.get(pos)?, *msg.get(pos + 1)?]);
    let qclass = u16::from_be_bytes([*msg.get(pos + 2)?, *msg.get(pos + 3)?]);
    Some((
        u16::from_be_bytes([msg[0], msg[1]]),
        String::from_utf8_lossy(&name).into_owned(),
        qtype,
        qclass,
    ))
}

struct Forwarded<C> {
    client: C,
    /// The client's query ID, restored in the answer.
    client_id: u16,
    upstream: std::net::SocketAddr,
    name: String,
    qtype: u16,
    qclass: u16,
    since: std::time::Instant,
}

/// Queries forwarded upstream and waiting for their answer. Each goes out with a fresh random
/// ID (from the system CSPRNG) on one of several sockets with random ports (`slot`), and an
/// answer is taken only when it arrives on that socket, from the upstream it was sent to, with
/// that ID and the same question (name, type, class); anything else is dropped, and the query
/// keeps waiting for its real answer. A blind spoofer has to guess 16 bits of ID and the port.
pub struct Forwarder<C> {
    pending: std::collections::HashMap<(usize, u16), Forwarded<C>>,
    max: usize,
    rng: ring::rand::SystemRandom,
}

impl<C> Forwarder<C> {
    pub fn new(max: usize) -> Self {
        Forwarder {
            pending: std::collections::HashMap::new(),
            max,
            rng: ring::rand::SystemRandom::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Queries waiting on socket `slot`.
    pub fn on_slot(&self, slot: usize) -> usize {
        self.pending.keys().filter(|(s, _)| *s == slot).count()
    }

    /// Registers `query` to go out on socket `slot` to `upstream`: returns the bytes to send
    /// (the query with a fresh random ID), or `None` when it cannot be forwarded (full, or not
    /// a query with one question).
    pub fn start(
        &mut self,
        slot: usize,
        query: &[u8],
        upstream: std::net::SocketAddr,
        client: C,
        now: std::time::Instant,
    ) -> Option<Vec<u8>> {
        if self.pending.len() >= self.max {
            return None;
        }
        let (client_id, name, qtype, qclass) = question(query)?;
        let id = (0..8).find_map(|_| {
            let mut b = [0u8; 2];
            ring::rand::SecureRandom::fill(&self.rng, &mut b).ok()?;
            let id = u16::from_be_bytes(b);
            (!self.pending.contains_key(&(slot, id))).then_some(id)
        })?;
        self.pending.insert(
            (slot, id),
            Forwarded {
                client,
                client_id,
                upstream,
                name,
                qtype,
                qclass,
                since: now,
            },
        );
        let mut out = query.to_vec();
        out[..2].copy_from_slice(&id.to_be_bytes());
        Some(out)
    }

    /// An answer that arrived on socket `slot` from `from`: the client and the answer with the
    /// client's ID, or `None` (dropped) unless it matches a waiting query in every respect.
    pub fn answer(
        &mut self,
        slot: usize,
        from: std::net::SocketAddr,
        msg: &[u8],
    ) -> Option<(C, Vec<u8>)> {
        let (id, name, qtype, qclass) = question(msg)?;
        if msg[2] & 0x80 == 0 {
            return None;
        }
        let p = self.pending.get(&(slot, id))?;
        if p.upstream != from || p.name != name || p.qtype != qtype || p.qclass != qclass {
            return None;
        }
        let p = self.pending.remove(&(slot, id))?;
        let mut out = msg.to_vec();
        out[..2].copy_from_slice(&p.client_id.to_be_bytes());
        Some((p.client, out))
    }

    /// Forgets a query that could not be sent.
    pub fn cancel(&mut self, slot: usize, id: u16) {
        self.pending.remove(&(slot, id));
    }

    /// Drops the queries older than `timeout`; returns their clients.
    pub fn expire(&mut self, now: std::time::Instant, timeout: std::time::Duration) -> Vec<C> {
        let old: Vec<(usize, u16)> = self
            .pending
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.since) > timeout)
            .map(|(k, _)| *k)
            .collect();
        old.into_iter()
            .filter_map(|k| self.pending.remove(&k).map(|p| p.client))
            .collect()
    }
}

/// The `.awl` name rules live with the peer table's names.
pub use crate::mesh::names::label_of;

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        encode_name(name, &mut m);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&CLASS_IN.to_be_bytes());
        m
    }

    fn zone(label: &str) -> Option<Ipv4Addr> {
        (label == "office" || label == "12d3koowabc").then_some(Ipv4Addr::new(10, 66, 0, 2))
    }

    fn rev(ip: Ipv4Addr) -> Option<String> {
        (ip == Ipv4Addr::new(10, 66, 0, 2)).then(|| "office".to_string())
    }

    fn mesh(ip: Ipv4Addr) -> bool {
        ip.octets()[..2] == [10, 66]
    }

    fn answer(name: &str, qtype: u16) -> Answer {
        let m = query(name, qtype);
        let q = parse_query(&m).unwrap();
        decide(&q, zone, rev, mesh)
    }

    #[test]
    fn zone_answers() {
        assert_eq!(
            answer("Office.AWL.", T_A),
            Answer::A(Ipv4Addr::new(10, 66, 0, 2))
        );
        assert_eq!(
            answer("12D3KooWabc.awl", T_A),
            Answer::A(Ipv4Addr::new(10, 66, 0, 2))
        );
        assert_eq!(
            answer("office.awl", 28),
            Answer::NoData,
            "AAAA: empty, not an A (AWL #150)"
        );
        assert_eq!(answer("nobody.awl", T_A), Answer::NxDomain);
        assert_eq!(answer("example.com", T_A), Answer::Forward);
        assert_eq!(
            answer("2.0.66.10.in-addr.arpa", T_PTR),
            Answer::Ptr("office".into())
        );
        assert_eq!(answer("9.0.66.10.in-addr.arpa", T_PTR), Answer::NxDomain);
        assert_eq!(answer("1.1.168.192.in-addr.arpa", T_PTR), Answer::Forward);
    }

    #[test]
    fn responses_are_well_formed() {
        let m = query("office.awl", T_A);
        let q = parse_query(&m).unwrap();
        let r = respond(&m, &q, &Answer::A(Ipv4Addr::new(10, 66, 0, 2)));
        assert_eq!(&r[..2], &[0x12, 0x34]);
        assert_eq!(r[2] & 0x80, 0x80, "a response");
        assert_eq!(r[3] & 0x0f, 0, "NOERROR");
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 1);
        assert_eq!(&r[r.len() - 4..], &[10, 66, 0, 2]);
        // The dnsaddr client parses our answers: the same wire format both ways.
        let nx = respond(&m, &q, &Answer::NxDomain);
        assert_eq!(nx[3] & 0x0f, RCODE_NXDOMAIN);
        let p = respond(&m, &q, &Answer::Ptr("office".into()));
        assert!(p.windows(7).any(|w| w == b"\x06office"));
    }

    #[test]
    fn garbage_is_refused_without_panics() {
        assert!(parse_query(&[1, 2, 3]).is_err());
        let mut m = query("office.awl", T_A);
        m[2] |= 0x80;
        assert!(parse_query(&m).is_err(), "a response is not a query");
        let m = query("office.awl", T_A);
        for cut in 0..m.len() {
            let _ = parse_query(&m[..cut]);
        }
        assert!(failure(&[1, 2], None).is_none());
        let f = failure(&m[..12], None).unwrap();
        assert_eq!(f[3] & 0x0f, RCODE_FORMERR);
        assert_eq!(label_of(" Work PC "), "work_pc");
    }
    fn reply_to(fwd: &[u8], ip: [u8; 4]) -> Vec<u8> {
        let q = parse_query(fwd).unwrap();
        let mut r = respond(fwd, &q, &Answer::A(Ipv4Addr::from(ip)));
        r[2] &= !0x04; // not authoritative: an upstream's answer
        r
    }

    #[test]
    fn forwarded_queries_get_random_ids_and_only_their_own_answer() {
        let up: std::net::SocketAddr = "192.0.2.53:53".parse().unwrap();
        let now = std::time::Instant::now();
        let mut f: Forwarder<&str> = Forwarder::new(128);
        let q = query("www.example.com", T_A);
        let mut ids = std::collections::HashSet::new();
        for i in 0..64 {
            let out = f.start(i % 4, &q, up, "c", now).unwrap();
            ids.insert(u16::from_be_bytes([out[0], out[1]]));
        }
        assert!(ids.len() > 56, "IDs are random, not sequential: {ids:?}");
        let mut f: Forwarder<&str> = Forwarder::new(128);
        let fwd = f.start(2, &q, up, "client", now).unwrap();
        assert_ne!(&fwd[..2], &q[..2], "the client's ID is not sent upstream");
        let good = reply_to(&fwd, [203, 0, 113, 9]);
        // Spoofed: another source, another socket, another ID, another question.
        let other: std::net::SocketAddr = "192.0.2.54:53".parse().unwrap();
        assert!(f.answer(2, other, &good).is_none(), "wrong source");
        assert!(f.answer(1, up, &good).is_none(), "wrong socket (port)");
        let mut bad_id = good.clone();
        bad_id[1] ^= 1;
        assert!(f.answer(2, up, &bad_id).is_none(), "wrong ID");
        let mut q2 = query("www.example.org", T_A);
        q2[..2].copy_from_slice(&fwd[..2]);
        assert!(
            f.answer(2, up, &reply_to(&q2, [6, 6, 6, 6])).is_none(),
            "wrong name"
        );
        let mut q3 = query("www.example.com", 28);
        q3[..2].copy_from_slice(&fwd[..2]);
        let r3 = respond(&q3, &parse_query(&q3).unwrap(), &Answer::NoData);
        assert!(f.answer(2, up, &r3).is_none(), "wrong type");
        assert!(f.answer(2, up, &fwd).is_none(), "a query is not an answer");
        assert_eq!(f.len(), 1, "the real answer is still awaited");
        // The genuine answer (name in another case is the same name) goes to the client.
        let mut upper = good.clone();
        upper[13] = b'W';
        let (c, out) = f.answer(2, up, &upper).expect("the real answer");
        assert_eq!(c, "client");
        assert_eq!(&out[..2], &[0x12, 0x34], "the client's ID restored");
        assert_eq!(&out[out.len() - 4..], &[203, 0, 113, 9]);
        assert!(f.answer(2, up, &good).is_none(), "answered once");
    }

    #[test]
    fn the_forwarder_is_bounded_and_expires() {
        let up: std::net::SocketAddr = "192.0.2.53:53".parse().unwrap();
        let now = std::time::Instant::now();
        let mut f: Forwarder<u32> = Forwarder::new(2);
        let q = query("a.example", T_A);
        assert!(f.start(0, &q, up, 1, now).is_some());
        assert!(f.start(0, &q, up, 2, now).is_some());
        assert!(f.start(0, &q, up, 3, now).is_none(), "full");
        assert!(f.start(0, &[0; 5], up, 3, now).is_none());
        assert_eq!(f.on_slot(0), 2);
        let later = now + std::time::Duration::from_secs(6);
        let mut gone = f.expire(later, std::time::Duration::from_secs(5));
        gone.sort();
        assert_eq!(gone, vec![1, 2]);
        assert!(f.is_empty());
    }
}
