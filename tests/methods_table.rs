//! The control API's methods live in one table (`awl::app::methods::METHODS`). Every other
//! place that names them is checked against it here, so a copy cannot drift: the CLI's help
//! and parser, the rpcd ACL's read/write lists, and the `rpc.declare`s of luci-app-awl.

use awl::app::cli::{self, Command};
use awl::app::methods::{self, METHODS};
use std::collections::BTreeSet;

const ACL: &str = include_str!("../luci-app-awl/root/usr/share/rpcd/acl.d/luci-app-awl.json");
const AWL_JS: &str = include_str!("../luci-app-awl/htdocs/luci-static/resources/awl.js");

fn parse(line: &str) -> Result<cli::Args, String> {
    cli::parse(line.split_whitespace().map(String::from))
}

/// A command line that exercises every parameter the CLI offers for `method`.
fn cli_line(method: &str) -> String {
    let m = methods::find(method).expect("in the table");
    let mut words = vec![m.name.to_string()];
    for (name, _) in m.params {
        match *name {
            "peer_id" => words.push("12D3KooWX".into()),
            "alias" => words.push("bob".into()),
            "lines" => words.push("7".into()),
            "ip" => words.push("--ip 10.66.0.9".into()),
            "address" => words.push("--address /ip4/1.2.3.4/udp/1/quic-v1".into()),
            other => panic!("no CLI form known for parameter {other} of {method}: add it here"),
        }
    }
    words.join(" ")
}

#[test]
fn every_method_is_in_the_cli_help_and_parser_with_its_declared_parameters() {
    for m in METHODS {
        let in_help = cli::USAGE
            .lines()
            .any(|l| l.split_whitespace().next() == Some(m.name));
        assert!(in_help, "`{}` is missing from `awl help`", m.name);

        let line = cli_line(m.name);
        let args = parse(&line).unwrap_or_else(|e| panic!("`awl {line}`: {e}"));
        let Command::Control(req) = args.command else {
            panic!("`awl {line}` is not a control request");
        };
        assert_eq!(req["cmd"], m.name, "`awl {line}`");
        let sent: BTreeSet<&str> = req
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .filter(|k| *k != "cmd")
            .collect();
        let declared: BTreeSet<&str> = m.params.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            sent, declared,
            "`awl {line}` sends other parameters than the table declares"
        );
    }
}

#[test]
fn the_cli_sends_no_method_that_is_not_in_the_table() {
    for l in cli::USAGE.lines() {
        let Some(word) = l
            .strip_prefix("  ")
            .and_then(|l| l.split_whitespace().next())
        else {
            continue;
        };
        if let Ok(a) = parse(word) {
            if let Command::Control(req) = a.command {
                let cmd = req["cmd"].as_str().unwrap_or_default();
                assert!(methods::find(cmd).is_some(), "`awl {word}` sends `{cmd}`");
            }
        }
    }
    assert!(parse("frobnicate").is_err());
}

#[test]
fn the_acl_grants_exactly_the_rpcd_methods_read_or_write_by_the_table() {
    let acl: serde_json::Value = serde_json::from_str(ACL).expect("acl.d is JSON");
    let group = &acl["luci-app-awl"];
    let list = |side: &str| -> BTreeSet<String> {
        group[side]["ubus"]["awl"]
            .as_array()
            .unwrap_or_else(|| panic!("acl {side}.ubus.awl is a list"))
            .iter()
            .map(|v| v.as_str().expect("a method name").to_string())
            .collect()
    };
    let table = |write: bool| -> BTreeSet<String> {
        METHODS
            .iter()
            .filter(|m| m.rpcd && m.write == write)
            .map(|m| m.name.to_string())
            .collect()
    };
    assert_eq!(list("read"), table(false), "the ACL's read side");
    assert_eq!(list("write"), table(true), "the ACL's write side");
    let not_offered: Vec<_> = METHODS.iter().filter(|m| !m.rpcd).map(|m| m.name).collect();
    for m in not_offered {
        assert!(
            !ACL.contains(&format!("\"{m}\"")),
            "{m} is not offered to rpcd but in the ACL"
        );
    }
}

/// `rpc.declare({ object: 'awl', method: 'M', params: [ 'a', 'b' ] })` in awl.js.
fn js_declares() -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for decl in AWL_JS.split("rpc.declare(").skip(1) {
        let body = &decl[..decl.find(')').expect("a closed rpc.declare")];
        if !body.contains("object: 'awl'") {
            continue;
        }
        let quoted = |after: &str| -> Vec<String> {
            let Some(i) = body.find(after) else {
                return Vec::new();
            };
            let rest = &body[i + after.len()..];
            let end = rest.find([']', ',', '}']).unwrap_or(rest.len());
            let span = if after.ends_with('[') {
                &rest[..rest.find(']').expect("a closed list")]
            } else {
                &rest[..end]
            };
            span.split('\'')
                .skip(1)
                .step_by(2)
                .map(String::from)
                .collect()
        };
        let method = quoted("method:").into_iter().next().expect("a method name");
        out.push((method, quoted("params: [")));
    }
    out
}

#[test]
fn every_luci_call_is_an_rpcd_method_with_declared_parameters() {
    let declared = js_declares();
    assert!(declared.len() >= 9, "awl.js declares {declared:?}");
    for (name, params) in &declared {
        let m = methods::find(name).unwrap_or_else(|| panic!("awl.js calls unknown {name}"));
        assert!(m.rpcd, "awl.js calls {name}, which rpcd does not offer");
        for p in params {
            assert!(
                m.params.iter().any(|(n, _)| n == p),
                "awl.js passes {name}.{p}, which the table does not declare"
            );
        }
    }
    // Every write method LuCI offers a button for reaches the daemon through a declare.
    for m in METHODS
        .iter()
        .filter(|m| m.rpcd && m.write && m.name != "reload")
    {
        assert!(
            declared.iter().any(|(n, _)| n == m.name),
            "awl.js has no rpc.declare for {}",
            m.name
        );
    }
}

#[test]
fn rpcd_signatures_are_the_table() {
    let sig = methods::rpcd_signatures();
    let names: BTreeSet<&str> = sig
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let table: BTreeSet<&str> = METHODS.iter().filter(|m| m.rpcd).map(|m| m.name).collect();
    assert_eq!(names, table);
    for m in METHODS.iter().filter(|m| m.rpcd) {
        let params: BTreeSet<&str> = sig[m.name]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            params,
            m.params.iter().map(|(n, _)| *n).collect(),
            "{}",
            m.name
        );
    }
}
