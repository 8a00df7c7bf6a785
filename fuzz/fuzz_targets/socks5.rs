//! SOCKS5 greetings, requests and replies from peers and local clients.
#![no_main]
use awl::services::socks5;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() >= 2 {
        let _ = socks5::greeting_methods([data[0], data[1]]);
        let _ = socks5::choose_method(&data[2..]);
    }
    let _ = socks5::message_len(data);
    if let Ok((req, _)) = socks5::decode_request(data) {
        if let Ok(enc) = socks5::encode_request(&req) {
            let _ = socks5::decode_request(&enc);
        }
    }
    let _ = socks5::decode_reply(data);
});
