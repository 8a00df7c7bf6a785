//! A tunnel stream as the receiver walks it: 8-byte headers and bodies, then the rewrite.
#![no_main]
use awl::mesh::tunnel::{RecordHeader, HEADER_LEN};
use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while rest.len() >= HEADER_LEN {
        let mut h = [0u8; HEADER_LEN];
        h.copy_from_slice(&rest[..HEADER_LEN]);
        rest = &rest[HEADER_LEN..];
        let Ok(hdr) = RecordHeader::parse(h) else { return };
        if hdr.len > rest.len() || hdr.len > 4096 {
            return;
        }
        let mut pkt = rest[..hdr.len].to_vec();
        let _ = awl::dataplane::packet::rewrite(&mut pkt, Some(Ipv4Addr::new(10, 66, 0, 2)), Some(Ipv4Addr::new(10, 66, 0, 1)));
        rest = &rest[hdr.len..];
    }
});
