//! AWL's JSON messages (auth request/response, status) as read from a stream.
#![no_main]
use awl::mesh::messages::{self, AuthRequest, AuthResponse, Fields, StatusInfo};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(Some(v)) = messages::complete_object(data) else { return };
    let Ok(f) = Fields::from_value(v) else { return };
    if let Ok(s) = StatusInfo::from_fields(&f) {
        let _ = messages::encode_line(&s.to_json());
    }
    let _ = AuthRequest::from_fields(&f);
    let _ = AuthResponse::from_fields(&f);
});
