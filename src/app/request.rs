//! The control API's requests, typed: parsed from the JSON line (`{"cmd":…, params}`, the
//! names and parameters of [`crate::app::methods`]), carried out on the node, and the result
//! as the JSON the CLI and LuCI read.

use crate::app::error::NodeError;
use crate::app::node::Node;
use crate::mesh::peers::KnownPeer;
use crate::p2p::identity::{IdentityError, PeerId};
use crate::p2p::multiaddr::{Multiaddr, MultiaddrError};
use serde_json::{json, Value};
use std::net::Ipv4Addr;
use std::sync::Arc;

/// A control request, parsed from its JSON (`cmd` and the parameters `methods` declares).
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Status,
    Peers,
    Requests,
    Blocked,
    Health,
    Metrics,
    Logs {
        lines: usize,
    },
    Invite {
        peer: PeerId,
        alias: Option<String>,
        ip: Option<Ipv4Addr>,
        address: Option<Multiaddr>,
    },
    Accept {
        peer: PeerId,
        alias: Option<String>,
        ip: Option<Ipv4Addr>,
    },
    Decline {
        peer: PeerId,
    },
    Remove {
        peer: PeerId,
    },
    Reload,
}

/// A request's result, as the `result` of the reply.
#[derive(Debug)]
pub enum Response {
    /// A JSON view of the node (status, peers, requests, blocked, health).
    View(Value),
    /// The peer an invite or accept added: `{"peer_id","alias","ip"}`.
    Added(KnownPeer),
    /// Done, nothing to tell: `{}`.
    Done,
    /// Peers known after a reload: `{"peers": n}`.
    Reloaded(usize),
    /// Prometheus text, as a JSON string.
    Text(String),
    /// Recent log lines.
    Lines(Vec<String>),
}

impl Response {
    pub fn to_json(&self) -> Value {
        match self {
            Response::View(v) => v.clone(),
            Response::Added(p) => {
                json!({"peer_id": p.peer_id.to_string(), "alias": p.alias, "ip": p.ip.to_string()})
            }
            Response::Done => json!({}),
            Response::Reloaded(n) => json!({ "peers": n }),
            Response::Text(t) => Value::String(t.clone()),
            Response::Lines(l) => json!(l),
        }
    }
}

/// Why a request failed: the reply's `error`.
#[derive(Debug)]
pub enum Error {
    MissingCmd,
    Missing(&'static str),
    BadPeerId(IdentityError),
    BadIp(String),
    BadAddress(MultiaddrError),
    UnknownCommand(String),
    Node(Box<NodeError>),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::MissingCmd => f.write_str("missing cmd"),
            Error::Missing(what) => write!(f, "missing {what}"),
            Error::BadPeerId(e) => e.fmt(f),
            Error::BadIp(s) => write!(f, "bad IPv4 address '{s}'"),
            Error::BadAddress(e) => e.fmt(f),
            Error::UnknownCommand(c) => write!(
                f,
                "unknown command '{c}' (known: {})",
                crate::app::methods::names().join(", ")
            ),
            Error::Node(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {}

impl From<NodeError> for Error {
    fn from(e: NodeError) -> Self {
        Error::Node(Box::new(e))
    }
}

/// A string parameter; an empty one counts as absent.
fn arg<'a>(req: &'a Value, key: &str) -> Option<&'a str> {
    req.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn peer_arg(req: &Value) -> Result<PeerId, Error> {
    arg(req, "peer_id")
        .ok_or(Error::Missing("peer_id"))?
        .parse::<PeerId>()
        .map_err(Error::BadPeerId)
}

fn ip_arg(req: &Value) -> Result<Option<Ipv4Addr>, Error> {
    arg(req, "ip")
        .map(|s| s.parse().map_err(|_| Error::BadIp(s.to_string())))
        .transpose()
}

fn alias_arg(req: &Value) -> Option<String> {
    arg(req, "alias").map(String::from)
}

impl Request {
    /// Reads a request; the names and parameters are those of [`crate::app::methods`].
    pub fn parse(req: &Value) -> Result<Request, Error> {
        let cmd = arg(req, "cmd").ok_or(Error::MissingCmd)?;
        Ok(match cmd {
            "status" => Request::Status,
            "peers" => Request::Peers,
            "requests" => Request::Requests,
            "blocked" => Request::Blocked,
            "health" => Request::Health,
            "metrics" => Request::Metrics,
            "logs" => Request::Logs {
                lines: req
                    .get("lines")
                    .and_then(Value::as_u64)
                    .unwrap_or(100)
                    .min(crate::app::logring::LINES as u64) as usize,
            },
            "invite" => {
                let peer = peer_arg(req)?;
                let address = arg(req, "address")
                    .map(|a| a.parse::<Multiaddr>().map_err(Error::BadAddress))
                    .transpose()?;
                Request::Invite {
                    peer,
                    alias: alias_arg(req),
                    ip: ip_arg(req)?,
                    address,
                }
            }
            "accept" => Request::Accept {
                peer: peer_arg(req)?,
                alias: alias_arg(req),
                ip: ip_arg(req)?,
            },
            "decline" => Request::Decline {
                peer: peer_arg(req)?,
            },
            "remove" => Request::Remove {
                peer: peer_arg(req)?,
            },
            "reload" => Request::Reload,
            other => return Err(Error::UnknownCommand(other.to_string())),
        })
    }
}

/// Carries out a request.
pub async fn execute(node: &Arc<Node>, req: Request) -> Result<Response, Error> {
    Ok(match req {
        Request::Status => Response::View(node.status_json()),
        Request::Peers => Response::View(node.peers_json()),
        Request::Requests => Response::View(node.requests_json()),
        Request::Blocked => Response::View(node.blocked_json()),
        Request::Health => Response::View(node.health_json()),
        Request::Metrics => Response::Text(crate::app::metrics::render(node)),
        Request::Logs { lines } => Response::Lines(crate::app::logring::recent(lines)),
        Request::Invite {
            peer,
            alias,
            ip,
            address,
        } => Response::Added(node.invite(&peer, alias, ip, address).await?),
        Request::Accept { peer, alias, ip } => {
            Response::Added(node.accept(&peer, alias, ip).await?)
        }
        Request::Decline { peer } => {
            node.decline(&peer).await?;
            Response::Done
        }
        Request::Remove { peer } => {
            node.remove(&peer)?;
            Response::Done
        }
        Request::Reload => Response::Reloaded(node.reload()?),
    })
}

/// One JSON request to its JSON result.
pub async fn dispatch(node: &Arc<Node>, req: &Value) -> Result<Value, Error> {
    let req = Request::parse(req)?;
    execute(node, req).await.map(|r| r.to_json())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::methods::{Param, METHODS};
    use crate::p2p::identity::Keypair;

    /// Every method of the table parses (with each declared parameter), and nothing else does.
    #[test]
    fn the_parser_knows_exactly_the_methods_of_the_table() {
        let id = Keypair::generate().peer_id().to_string();
        for m in METHODS {
            let mut req = serde_json::Map::new();
            req.insert("cmd".into(), m.name.into());
            for (name, t) in m.params {
                let v: Value = match (*name, t) {
                    ("peer_id", _) => id.clone().into(),
                    ("ip", _) => "10.66.0.7".into(),
                    ("address", _) => "/ip4/192.0.2.1/udp/4363/quic-v1".into(),
                    (_, Param::Str) => "x".into(),
                    (_, Param::Int) => 5.into(),
                };
                req.insert(name.to_string(), v);
            }
            let parsed = Request::parse(&Value::Object(req));
            assert!(parsed.is_ok(), "{}: {parsed:?}", m.name);
        }
        let e = Request::parse(&json!({"cmd": "frobnicate"})).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("unknown command 'frobnicate' (known: status, "));
    }

    #[test]
    fn parameters_are_read_as_before() {
        let id = Keypair::generate().peer_id();
        let r = Request::parse(&json!({"cmd": "invite", "peer_id": id.to_string(),
            "alias": "", "ip": "10.66.0.9", "address": "/ip4/192.0.2.1/udp/4363/quic-v1"}))
        .unwrap();
        let Request::Invite {
            peer,
            alias,
            ip,
            address,
        } = r
        else {
            panic!("{r:?}")
        };
        assert_eq!(peer, id);
        assert_eq!(alias, None, "an empty string is absent");
        assert_eq!(ip, Some(Ipv4Addr::new(10, 66, 0, 9)));
        assert!(address.is_some());
        assert_eq!(
            Request::parse(&json!({"cmd": "logs"})).unwrap(),
            Request::Logs { lines: 100 }
        );
        assert_eq!(
            Request::parse(&json!({"cmd": "logs", "lines": 1_000_000})).unwrap(),
            Request::Logs {
                lines: crate::app::logring::LINES
            }
        );
    }

    #[test]
    fn errors_read_as_before() {
        let msg = |v: Value| Request::parse(&v).unwrap_err().to_string();
        assert_eq!(msg(json!({})), "missing cmd");
        assert_eq!(msg(json!({"cmd": ""})), "missing cmd");
        assert_eq!(msg(json!({"cmd": "accept"})), "missing peer_id");
        let id = Keypair::generate().peer_id().to_string();
        assert_eq!(
            msg(json!({"cmd": "accept", "peer_id": id, "ip": "10.1"})),
            "bad IPv4 address '10.1'"
        );
        assert!(matches!(
            Request::parse(&json!({"cmd": "remove", "peer_id": "nonsense"})),
            Err(Error::BadPeerId(_))
        ));
    }

    #[test]
    fn results_have_the_fields_clients_read() {
        let t = crate::mesh::peers::PeerTable::new(
            Keypair::generate().peer_id(),
            Ipv4Addr::new(10, 66, 0, 1),
            24,
            4,
        );
        let id = Keypair::generate().peer_id();
        let p = t
            .prepare_add(
                &id,
                Some("laptop".into()),
                Some(Ipv4Addr::new(10, 66, 0, 2)),
                true,
            )
            .unwrap();
        let v = Response::Added(p.clone()).to_json();
        assert_eq!(
            v,
            json!({"peer_id": p.peer_id.to_string(), "alias": "laptop", "ip": "10.66.0.2"})
        );
        assert_eq!(Response::Done.to_json(), json!({}));
        assert_eq!(Response::Reloaded(3).to_json(), json!({"peers": 3}));
        assert_eq!(Response::Text("a 1\n".into()).to_json(), json!("a 1\n"));
        assert_eq!(Response::Lines(vec!["x".into()]).to_json(), json!(["x"]));
    }
}
