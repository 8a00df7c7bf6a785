//! The code's layout as a test: the rooms under `src/` are layered, and a room may use only
//! the rooms below it (so no import cycle between rooms can form); no source file grows past
//! the size one can hold in one's head. `cargo test --test layers` prints what breaks a rule.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// From the top down. `app` wires everything; `base` uses nothing of ours.
const ROOMS: &[&str] = &[
    "app",
    "services",
    "gateway",
    "dataplane",
    "mesh",
    "config",
    "p2p",
    "sys",
    "base",
];

/// Lines per file, tests beside the code included.
const MAX_LINES: usize = 600;

fn rank(room: &str) -> Option<usize> {
    ROOMS.iter().position(|r| *r == room)
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .expect("src/ is readable")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The text of a file without its unit tests: test code may reach anywhere.
fn non_test_code(path: &Path, text: &str) -> String {
    let in_tests_dir = path.components().any(|c| c.as_os_str() == "tests");
    if path.file_name().is_some_and(|n| n == "tests.rs") || in_tests_dir {
        return String::new();
    }
    match text.find("#[cfg(test)]\nmod tests {") {
        Some(i) => text[..i].to_string(),
        None => text.to_string(),
    }
}

/// Every room named after `crate::`, as `crate::room::…` or inside `crate::{room::…, …}`.
fn rooms_used(code: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in code.lines().enumerate() {
        let line = line.split("//").next().unwrap_or("");
        for (i, _) in line.match_indices("crate::") {
            let rest = &line[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                for item in group.split(',') {
                    let name: String = item
                        .trim()
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    out.push((n + 1, name));
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                out.push((n + 1, name));
            }
        }
    }
    out
}

#[test]
fn each_room_uses_only_the_rooms_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut wrong: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut rooms_seen = 0;
    for path in &files {
        let rel = path.strip_prefix(&src).expect("under src/");
        let Some(room) = rel.components().next().and_then(|c| c.as_os_str().to_str()) else {
            continue;
        };
        if rel.components().count() == 1 {
            continue; // lib.rs, main.rs: the crate root and the binary sit above every room.
        }
        let own = rank(room).unwrap_or_else(|| panic!("src/{room}/ is not a known room"));
        rooms_seen += 1;
        let text = fs::read_to_string(path).expect("readable source");
        for (line, used) in rooms_used(&non_test_code(path, &text)) {
            let Some(r) = rank(&used) else { continue };
            if r < own {
                wrong
                    .entry(format!("{room} -> {used}"))
                    .or_default()
                    .push(format!("src/{}:{line}", rel.display()));
            }
        }
    }
    assert!(rooms_seen > 50, "only {rooms_seen} files found under src/");
    assert!(
        wrong.is_empty(),
        "rooms that use a room above them (order: {}):\n{wrong:#?}",
        ROOMS.join(" > ")
    );
}

#[test]
fn no_source_file_is_over_the_limit() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|p| {
            let n = fs::read_to_string(p).ok()?.lines().count();
            (n > MAX_LINES).then(|| {
                format!(
                    "{} ({n} lines)",
                    p.strip_prefix(&src).unwrap_or(p).display()
                )
            })
        })
        .collect();
    assert!(long.is_empty(), "over {MAX_LINES} lines: {long:#?}");
}

#[test]
fn the_checker_sees_both_forms_of_use() {
    let code = "use crate::base::prefix::Prefix;\nuse crate::{app::node, mesh};\n// crate::app in a comment\n";
    let used: Vec<String> = rooms_used(code).into_iter().map(|(_, r)| r).collect();
    assert_eq!(used, ["base", "app", "mesh"]);
}
