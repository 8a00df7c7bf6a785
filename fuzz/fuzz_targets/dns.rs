//! DNS: queries to the service address (parse, decide, answer) and TXT answers to our
//! /dnsaddr lookups.
#![no_main]
use awl::services::dns;
use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;

fuzz_target!(|data: &[u8]| {
    match dns::parse_query(data) {
        Ok(q) => {
            let a = dns::decide(
                &q,
                |l| (l == "office").then_some(Ipv4Addr::new(10, 66, 0, 2)),
                |ip| (ip == Ipv4Addr::new(10, 66, 0, 2)).then(|| "office".to_string()),
                |ip| ip.octets()[0] == 10,
            );
            let _ = dns::respond(data, &q, &a);
            let _ = dns::failure(data, Some(&q));
        }
        Err(_) => {
            let _ = dns::failure(data, None);
        }
    }
    let id = data.first().map_or(0, |b| u16::from(*b));
    let _ = awl::p2p::dnsaddr::parse_txt(data, id);
});
