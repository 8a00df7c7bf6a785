//! AWL's receive-side rewrite of an IPv4 packet from a peer (source, destination, checksums).
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;

fuzz_target!(|data: &[u8]| {
    let mut a = data.to_vec();
    let _ = awl::dataplane::packet::rewrite(&mut a, Some(Ipv4Addr::new(10, 66, 0, 2)), Some(Ipv4Addr::new(10, 66, 0, 1)));
    let mut b = data.to_vec();
    let _ = awl::dataplane::packet::rewrite(&mut b, None, Some(Ipv4Addr::new(192, 168, 1, 10)));
    let _ = awl::dataplane::packet::ip_version(data);
});
