//! Option values: checked against their descriptor, and read back with their defaults.

use super::error::Expected;
use super::{find, Kind, OptionDesc};
use crate::p2p::identity::PeerId;
use std::collections::HashMap;
use std::net::Ipv4Addr;

/// A parsed, validated value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Val {
    Bool(bool),
    Int(i64),
    Text(String),
    Ip(Ipv4Addr),
    Cidr(Ipv4Addr, u8),
    Peer(PeerId),
}

/// Checks one value against its descriptor; the error is the "expected …" part.
pub(super) fn validate(desc: &OptionDesc, raw: &str) -> Result<Val, Expected> {
    let v = raw.trim();
    match desc.kind {
        Kind::Bool => match v {
            "1" | "yes" | "on" | "true" | "enabled" => Ok(Val::Bool(true)),
            "0" | "no" | "off" | "false" | "disabled" => Ok(Val::Bool(false)),
            _ => Err(Expected::Bool),
        },
        Kind::Int { min, max } => match v.parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Val::Int(n)),
            _ => Err(Expected::Int { min, max }),
        },
        Kind::Str { max_len } => {
            if raw.chars().count() > max_len || raw.chars().any(char::is_control) {
                Err(Expected::Str { max_len })
            } else {
                Ok(Val::Text(raw.to_string()))
            }
        }
        Kind::Ipv4 => v.parse().map(Val::Ip).map_err(|_| Expected::Ipv4),
        Kind::Cidr4 {
            min_prefix,
            max_prefix,
        } => {
            let err = || Expected::Cidr {
                min_prefix,
                max_prefix,
            };
            let (ip, len) = v.split_once('/').ok_or_else(err)?;
            let ip: Ipv4Addr = ip.parse().map_err(|_| err())?;
            let len: u8 = len.parse().map_err(|_| err())?;
            if !(min_prefix..=max_prefix).contains(&len) {
                return Err(err());
            }
            Ok(Val::Cidr(ip, len))
        }
        Kind::Prefix4 => v
            .parse::<crate::base::prefix::Prefix>()
            .map(|p| Val::Cidr(p.addr, p.len))
            .map_err(|e| Expected::Prefix(e.to_string())),
        Kind::Path => {
            if v.starts_with('/') && !v.contains('\0') {
                Ok(Val::Text(v.to_string()))
            } else {
                Err(Expected::Path)
            }
        }
        Kind::Multiaddr => v
            .parse::<crate::p2p::multiaddr::Multiaddr>()
            .map(|_| Val::Text(v.to_string()))
            .map_err(|e| Expected::Multiaddr(e.to_string())),
        Kind::PeerId => v
            .parse::<PeerId>()
            .map(Val::Peer)
            .map_err(|e| Expected::PeerId(e.to_string())),
        Kind::Enum(values) => {
            if values.contains(&v) {
                Ok(Val::Text(v.to_string()))
            } else {
                Err(Expected::OneOf(values))
            }
        }
        Kind::Ifname => {
            if !v.is_empty()
                && v.len() <= 15
                && v.bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':')
            {
                Ok(Val::Text(v.to_string()))
            } else {
                Err(Expected::Ifname)
            }
        }
        Kind::Label => {
            let ok = !v.is_empty()
                && v.len() <= 63
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !v.starts_with('-');
            if ok {
                Ok(Val::Text(v.to_ascii_lowercase()))
            } else {
                Err(Expected::Label)
            }
        }
    }
}

/// Values of one section: option name → (line, values).
pub(super) type SectionValues = HashMap<&'static str, (usize, Vec<Val>)>;

pub(super) fn single<'a>(v: &'a SectionValues, name: &str) -> Option<&'a Val> {
    v.get(name).and_then(|(_, vals)| vals.last())
}

pub(super) fn default_of(section: &str, name: &str) -> Option<Val> {
    let d = find(section, name)?;
    if d.default.is_empty() {
        return None;
    }
    validate(d, d.default).ok()
}

pub(super) fn get_bool(v: &SectionValues, section: &str, name: &str) -> bool {
    match single(v, name)
        .cloned()
        .or_else(|| default_of(section, name))
    {
        Some(Val::Bool(b)) => b,
        _ => false,
    }
}

pub(super) fn get_int(v: &SectionValues, section: &str, name: &str) -> i64 {
    match single(v, name)
        .cloned()
        .or_else(|| default_of(section, name))
    {
        Some(Val::Int(n)) => n,
        _ => 0,
    }
}

pub(super) fn get_text(v: &SectionValues, section: &str, name: &str) -> Option<String> {
    match single(v, name)
        .cloned()
        .or_else(|| default_of(section, name))
    {
        Some(Val::Text(s)) => Some(s),
        _ => None,
    }
}

pub(super) fn get_ip(v: &SectionValues, section: &str, name: &str) -> Option<Ipv4Addr> {
    match single(v, name)
        .cloned()
        .or_else(|| default_of(section, name))
    {
        Some(Val::Ip(ip)) => Some(ip),
        _ => None,
    }
}

pub(super) fn get_list(v: &SectionValues, name: &str) -> Vec<String> {
    v.get(name)
        .map(|(_, vals)| {
            vals.iter()
                .filter_map(|x| match x {
                    Val::Text(s) => Some(s.clone()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}
