//! The control API's methods in one table: name, parameters with their types, and whether a
//! method changes state. The daemon's dispatcher refuses what is not here, the rpcd backend
//! (`awl rpcd list|call`) declares exactly these signatures and builds each request from the
//! declared parameters only, and the LuCI tests check the ACL's read/write lists against it.

use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    Str,
    Int,
}

#[derive(Debug)]
pub struct Method {
    pub name: &'static str,
    pub params: &'static [(&'static str, Param)],
    /// Changes state: only for logins with write access (rpcd ACL `write`).
    pub write: bool,
    /// Offered to LuCI through rpcd.
    pub rpcd: bool,
}

const fn m(
    name: &'static str,
    params: &'static [(&'static str, Param)],
    write: bool,
    rpcd: bool,
) -> Method {
    Method {
        name,
        params,
        write,
        rpcd,
    }
}

use Param::{Int, Str};

pub static METHODS: &[Method] = &[
    m("status", &[], false, true),
    m("peers", &[], false, true),
    m("requests", &[], false, true),
    m("blocked", &[], false, true),
    m("health", &[], false, true),
    m("metrics", &[], false, false),
    m("logs", &[("lines", Int)], false, true),
    m(
        "invite",
        &[
            ("peer_id", Str),
            ("alias", Str),
            ("ip", Str),
            ("address", Str),
        ],
        true,
        true,
    ),
    m(
        "accept",
        &[("peer_id", Str), ("alias", Str), ("ip", Str)],
        true,
        true,
    ),
    m("decline", &[("peer_id", Str)], true, true),
    m("remove", &[("peer_id", Str)], true, true),
    m("reload", &[], true, true),
];

pub fn find(name: &str) -> Option<&'static Method> {
    METHODS.iter().find(|m| m.name == name)
}

pub fn names() -> Vec<&'static str> {
    METHODS.iter().map(|m| m.name).collect()
}

/// rpcd's `list` answer: each method with a sample value per parameter (rpcd takes the
/// parameter types from the JSON types: a string, a number).
pub fn rpcd_signatures() -> Value {
    let mut out = Map::new();
    for m in METHODS.iter().filter(|m| m.rpcd) {
        let params: Map<String, Value> = m
            .params
            .iter()
            .map(|(n, t)| {
                let sample = match t {
                    Str => Value::from("str"),
                    Int => Value::from(0),
                };
                (n.to_string(), sample)
            })
            .collect();
        out.insert(m.name.to_string(), Value::Object(params));
    }
    Value::Object(out)
}

/// The whole table as JSON (for tests of the LuCI side and `awl rpcd methods`).
pub fn describe() -> Value {
    METHODS
        .iter()
        .map(|m| {
            serde_json::json!({
                "name": m.name,
                "params": m.params.iter().map(|(n, t)| serde_json::json!({
                    "name": n,
                    "type": match t { Str => "string", Int => "int" },
                })).collect::<Vec<_>>(),
                "write": m.write,
                "rpcd": m.rpcd,
            })
        })
        .collect()
}

/// A control request for rpcd's `call METHOD` with `args` (the JSON rpcd passes on stdin):
/// only the declared parameters, each of its declared type, are taken; everything else —
/// `ubus_rpc_session`, a smuggled `cmd`, unknown keys — is dropped.
pub fn rpcd_request(method: &str, args: &str) -> Result<Value, String> {
    let m = find(method)
        .filter(|m| m.rpcd)
        .ok_or_else(|| format!("unknown method '{method}'"))?;
    let args: Value = if args.trim().is_empty() {
        Value::Object(Map::new())
    } else {
        serde_json::from_str(args).map_err(|e| format!("arguments are not JSON: {e}"))?
    };
    let Value::Object(args) = args else {
        return Err("arguments must be a JSON object".into());
    };
    let mut req = Map::new();
    req.insert("cmd".into(), Value::from(m.name));
    for (name, t) in m.params {
        let Some(v) = args.get(*name) else { continue };
        let ok = match t {
            Str => v.is_string(),
            Int => v.is_u64(),
        };
        if !ok {
            return Err(format!("parameter '{name}' has the wrong type"));
        }
        req.insert(name.to_string(), v.clone());
    }
    Ok(Value::Object(req))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_declared_parameters_reach_the_daemon() {
        // The attack on the old shell backend: a read method with a smuggled "cmd".
        let r = rpcd_request(
            "status",
            r#"{"cmd":"invite","peer_id":"12D3KooWX","ubus_rpc_session":"abc"}"#,
        )
        .unwrap();
        assert_eq!(r, serde_json::json!({"cmd": "status"}));
        let r = rpcd_request(
            "accept",
            r#"{"peer_id":"12D3KooWX","alias":"a","cmd":"remove","ubus_rpc_session":"x","junk":1}"#,
        )
        .unwrap();
        assert_eq!(
            r,
            serde_json::json!({"cmd": "accept", "peer_id": "12D3KooWX", "alias": "a"})
        );
        // Duplicate keys: serde_json keeps the last, and "cmd" is never taken from the caller.
        let r = rpcd_request("peers", r#"{"cmd":"reload","cmd":"remove"}"#).unwrap();
        assert_eq!(r["cmd"], "peers");
        assert!(rpcd_request("accept", r#"{"peer_id":5}"#).is_err());
        assert!(rpcd_request("logs", r#"{"lines":"9; rm -rf /"}"#).is_err());
        assert_eq!(
            rpcd_request("logs", r#"{"lines":20}"#).unwrap()["lines"],
            20
        );
        assert!(
            rpcd_request("metrics", "{}").is_err(),
            "not offered to rpcd"
        );
        assert!(rpcd_request("frobnicate", "{}").is_err());
        assert!(rpcd_request("status", "[1]").is_err());
        assert_eq!(rpcd_request("status", "").unwrap()["cmd"], "status");
    }

    #[test]
    fn signatures_follow_the_table() {
        let s = rpcd_signatures();
        assert_eq!(s["invite"]["ip"], "str");
        assert_eq!(s["logs"]["lines"], 0);
        assert!(s.get("metrics").is_none());
        let writes: Vec<&str> = METHODS.iter().filter(|m| m.write).map(|m| m.name).collect();
        assert_eq!(
            writes,
            ["invite", "accept", "decline", "remove", "reload"],
            "a new write method must be added to LuCI's ACL write list too"
        );
    }
}
