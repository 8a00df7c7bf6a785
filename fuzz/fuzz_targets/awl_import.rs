//! AWL's config_awl.json as `awl config import-awl` reads it, and the import planned from it:
//! never a panic, and what it would write always loads.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(c) = awl::app::migrate::parse_awl(text) else { return };
    let state = awl::mesh::peers::SavedState::default();
    if let Ok(plan) = awl::app::migrate::plan(&c, "config awl 'main'\n", "fuzz", &state) {
        assert!(awl::config::parse(&plan.text, "fuzz").is_ok());
    }
});
