//! A peer's libp2p TLS certificate (DER, the signed-key extension) as the verifier reads it.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = awl::p2p::transport::tls::verify(data);
});
