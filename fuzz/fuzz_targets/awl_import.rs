//! AWL's config_awl.json as `awl config import-awl` reads it, and the import planned from it:
//! never a panic, and what it would write always loads.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(c) = awl::migrate::parse_awl(text) else { return };
    let state = awl::peers::SavedState::default();
    if let Ok(plan) = awl::migrate::plan(&c, "config awl 'main'\n", "fuzz", &state) {
        assert!(awl::config::parse(&plan.text, "fuzz").is_ok());
    }
});
