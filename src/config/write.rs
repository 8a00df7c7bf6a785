//! Edits of the file's text as the daemon makes them (peer sections, main options), and the
//! atomic write; the user's other lines and comments are kept.

use super::schema::{MAIN, PEER};
use super::uci::{Located, Stmt};
use super::*;

/// The text of a peer section as the daemon writes it: named `peer_<id>`, or `name` when the
/// section being replaced already had one (the user's, or ours).
fn peer_section_text(peer: &PeerConfig, name: Option<&str>) -> String {
    let mut out = String::new();
    let name = name.map_or_else(|| peer_section_name(&peer.peer_id), str::to_string);
    out.push_str(&format!("config peer {}\n", uci::quote(&name)));
    out.push_str(&format!(
        "\toption peer_id {}\n",
        uci::quote(&peer.peer_id.to_string())
    ));
    out.push_str(&format!("\toption alias {}\n", uci::quote(&peer.alias)));
    if let Some(ip) = peer.ip {
        out.push_str(&format!("\toption ip {}\n", uci::quote(&ip.to_string())));
    }
    // A domain the alias would not give (set by the user, or imported from AWL) is kept.
    if !peer.domain.is_empty() && peer.domain != domain_label(&peer.alias, &peer.peer_id) {
        out.push_str(&format!("\toption domain {}\n", uci::quote(&peer.domain)));
    }
    if peer.allow_exit {
        out.push_str("\toption allow_exit '1'\n");
    }
    if peer.allow_lan {
        out.push_str("\toption allow_lan '1'\n");
    }
    if peer.accept_routes {
        out.push_str("\toption accept_routes '1'\n");
    }
    for r in &peer.accept_route {
        out.push_str(&format!(
            "\tlist accept_route {}\n",
            uci::quote(&r.to_string())
        ));
    }
    for a in &peer.address {
        out.push_str(&format!("\tlist address {}\n", uci::quote(a)));
    }
    out
}

/// Appends a named `config peer` section (text-level, so comments and order stay).
pub fn add_peer_section(text: &str, peer: &PeerConfig) -> String {
    let mut out = text.trim_end().to_string();
    if !out.is_empty() {
        out.push_str("\n\n");
    }
    out.push_str(&peer_section_text(peer, None));
    out
}

/// Writes `peer`'s section: replaced where it stands if the file has one (keeping its name,
/// or naming it if it was anonymous), else appended. All other text is kept as it is.
pub fn upsert_peer_section(text: &str, peer: &PeerConfig) -> String {
    let Some((start, end, name)) = peer_section_range(text, &peer.peer_id) else {
        return add_peer_section(text, peer);
    };
    let lines: Vec<&str> = text.lines().collect();
    // Keep blank lines and comments that trail the section (they belong to what follows).
    let mut body_end = end;
    while body_end > start + 1 && {
        let l = lines[body_end - 2].trim();
        l.is_empty() || l.starts_with('#')
    } {
        body_end -= 1;
    }
    let mut out: Vec<String> = lines[..start - 1].iter().map(|l| l.to_string()).collect();
    out.extend(
        peer_section_text(peer, name.as_deref())
            .lines()
            .map(str::to_string),
    );
    out.extend(lines[body_end - 1..].iter().map(|l| l.to_string()));
    let mut joined = out.join("\n");
    joined.push('\n');
    joined
}

/// Names every anonymous peer section `peer_<id>` (its header line only; all else kept), so
/// configs from before named sections get stable names once. Unchanged text: nothing to do.
pub fn name_peer_sections(text: &str) -> String {
    let Ok(stmts) = uci::statements(text) else {
        return text.to_string();
    };
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let starts: Vec<(usize, bool)> = stmts
        .iter()
        .filter_map(|s| match &s.stmt {
            Stmt::Config { typ, name } => Some((s.line, typ == PEER && name.is_none())),
            _ => None,
        })
        .collect();
    let mut changed = false;
    for (i, (start, anonymous)) in starts.iter().enumerate() {
        if !anonymous {
            continue;
        }
        let end = starts.get(i + 1).map_or(usize::MAX, |(l, _)| *l);
        let id = stmts.iter().find_map(|s| match &s.stmt {
            Stmt::Option { name, value }
                if name == "peer_id" && s.line > *start && s.line < end =>
            {
                value.trim().parse::<PeerId>().ok()
            }
            _ => None,
        });
        if let (Some(id), Some(line)) = (id, lines.get_mut(start - 1)) {
            *line = format!("config peer {}", uci::quote(&peer_section_name(&id)));
            changed = true;
        }
    }
    if !changed {
        return text.to_string();
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// Lines `[start, end)` (1-based) of the peer section whose `peer_id` is `peer`, and its name.
fn peer_section_range(text: &str, peer: &PeerId) -> Option<(usize, usize, Option<String>)> {
    let stmts = uci::statements(text).ok()?;
    let id = peer.to_string();
    let total = text.lines().count();
    let starts: Vec<(usize, &str, Option<&String>)> = stmts
        .iter()
        .filter_map(|s| match &s.stmt {
            Stmt::Config { typ, name } => Some((s.line, typ.as_str(), name.as_ref())),
            _ => None,
        })
        .collect();
    starts.iter().enumerate().find_map(|(i, (start, typ, name))| {
        if *typ != PEER {
            return None;
        }
        let end = starts.get(i + 1).map_or(total + 1, |(l, _, _)| *l);
        let matches = stmts.iter().any(|s| {
            s.line > *start && s.line < end && matches!(&s.stmt, Stmt::Option { name, value } if name == "peer_id" && value.trim() == id)
        });
        matches.then(|| (*start, end, name.cloned()))
    })
}

/// Lines `[start, end)` (1-based) of the node section (the first `config awl`), and the line
/// of its last statement.
fn main_section_range(text: &str) -> Option<(usize, usize, usize)> {
    let stmts = uci::statements(text).ok()?;
    let total = text.lines().count();
    let start = stmts
        .iter()
        .position(|s| matches!(&s.stmt, Stmt::Config { typ, .. } if typ == MAIN))?;
    let end = stmts[start + 1..]
        .iter()
        .find(|s| matches!(s.stmt, Stmt::Config { .. }))
        .map_or(total + 1, |s| s.line);
    let last = stmts[start..]
        .iter()
        .take_while(|s| s.line < end)
        .last()
        .map_or(stmts[start].line, |s| s.line);
    Some((stmts[start].line, end, last))
}

/// The raw value of `option name` in the node section of a file that may not validate (its
/// syntax must be readable): where a broken file says the control socket is.
pub fn peek_main_option(text: &str, name: &str) -> Option<String> {
    let (start, end, _) = main_section_range(text)?;
    uci::statements(text)
        .ok()?
        .into_iter()
        .rev()
        .filter(|s| s.line > start && s.line < end)
        .find_map(|s| match s.stmt {
            Stmt::Option { name: n, value } if n == name => Some(value),
            _ => None,
        })
}

/// Sets `option name 'value'` in the node section: the line that has it is replaced (its
/// indentation kept), else the option is added after the section's last statement. Without a
/// node section, `config awl 'main'` is added at the top. All other text is kept as it is.
pub fn set_main_option(text: &str, name: &str, value: &str) -> String {
    let line = format!("option {name} {}", uci::quote(value));
    edit_main(text, |lines, (start, end, last), stmts| {
        let existing: Vec<usize> = stmts
            .iter()
            .filter(|s| s.line > start && s.line < end)
            .filter(|s| matches!(&s.stmt, Stmt::Option { name: n, .. } if n == name))
            .map(|s| s.line)
            .collect();
        if let Some(&l) = existing.last() {
            let old = &lines[l - 1];
            let indent: String = old.chars().take_while(|c| c.is_whitespace()).collect();
            // A trailing comment stays: the first '#' before which the line is one statement.
            let comment = old
                .match_indices('#')
                .map(|(i, _)| i)
                .find(|&i| {
                    uci::statements(&format!("config awl\n{}", &old[..i])).is_ok_and(|s| {
                        matches!(s.as_slice(), [_, Located { stmt: Stmt::Option { name: n, .. }, .. }] if n == name)
                    })
                })
                .map(|i| format!(" {}", &old[i..]))
                .unwrap_or_default();
            lines[l - 1] = format!("{indent}{line}{comment}");
        } else {
            lines.insert(last, format!("\t{line}"));
        }
    })
}

/// Adds `list name 'value'` to the node section unless that value is already listed.
pub fn add_main_list(text: &str, name: &str, value: &str) -> String {
    edit_main(text, |lines, (start, end, last), stmts| {
        let present = stmts.iter().any(|s| {
            s.line > start
                && s.line < end
                && matches!(&s.stmt, Stmt::List { name: n, value: v } if n == name && v.trim() == value)
        });
        if !present {
            lines.insert(last, format!("\tlist {name} {}", uci::quote(value)));
        }
    })
}

fn edit_main(
    text: &str,
    edit: impl FnOnce(&mut Vec<String>, (usize, usize, usize), &[Located]),
) -> String {
    let with_main;
    let text = if main_section_range(text).is_none() {
        with_main = format!("config awl 'main'\n\n{}", text.trim_start_matches('\n'));
        with_main.as_str()
    } else {
        text
    };
    let (Some(range), Ok(stmts)) = (main_section_range(text), uci::statements(text)) else {
        return text.to_string();
    };
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    edit(&mut lines, range, &stmts);
    let mut out = lines.join("\n").trim_end_matches('\n').to_string();
    out.push('\n');
    out
}

/// Removes the `config peer` section whose `peer_id` is `peer` (all other text kept).
pub fn remove_peer_section(text: &str, peer: &PeerId) -> String {
    let Ok(stmts) = uci::statements(text) else {
        return text.to_string();
    };
    let id = peer.to_string();
    let lines: Vec<&str> = text.lines().collect();
    // Section start lines (1-based) in order, with their types.
    let starts: Vec<(usize, &str)> = stmts
        .iter()
        .filter_map(|s| match &s.stmt {
            Stmt::Config { typ, .. } => Some((s.line, typ.as_str())),
            _ => None,
        })
        .collect();
    let mut drop_ranges = Vec::new();
    for (i, (start, typ)) in starts.iter().enumerate() {
        if *typ != PEER {
            continue;
        }
        let end = starts.get(i + 1).map_or(lines.len() + 1, |(l, _)| *l);
        let matches = stmts.iter().any(|s| {
            s.line > *start && s.line < end && matches!(&s.stmt, Stmt::Option { name, value } if name == "peer_id" && value.trim() == id)
        });
        if matches {
            drop_ranges.push((*start, end));
        }
    }
    if drop_ranges.is_empty() {
        return text.to_string();
    }
    let kept: Vec<&str> = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| !drop_ranges.iter().any(|(s, e)| (*s..*e).contains(&(i + 1))))
        .map(|(_, l)| *l)
        .collect();
    let mut out = kept.join("\n");
    while out.ends_with("\n\n") || out.ends_with('\n') {
        out.pop();
    }
    out.push('\n');
    out
}

/// Writes `contents` to `path` atomically: temp file in the same directory, fsync, rename.
/// The original's mode is kept (0644 for a new file, as OpenWrt's /etc/config); a symlink
/// is followed.
pub fn write_atomic(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    // A symlinked config is written where it points: renaming over the link would replace
    // it with a file and leave the real one unchanged.
    let resolved = std::fs::canonicalize(path).ok();
    let path = resolved.as_deref().unwrap_or(path);
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o644);
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.awl-tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
    std::fs::rename(&tmp, path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
