//! UPnP Internet Gateway Device: find the gateway with SSDP, read its description for the
//! WAN connection service, and map a UDP port with SOAP (`AddPortMapping`,
//! `GetExternalIPAddress`, `DeletePortMapping`). The text formats are handled by small pure
//! functions; every read is bounded in size and time.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const SSDP: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(239, 255, 255, 250), 1900);
const SEARCH_WAIT: Duration = Duration::from_secs(2);
/// Descriptions read per search at most: anyone on the LAN can answer a search, and each
/// answer costs an HTTP fetch.
const MAX_DESCRIPTIONS: usize = 4;
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// Descriptions of real gateways are a few kB; SOAP answers smaller.
const MAX_HTTP: usize = 64 * 1024;
/// WAN connection services, most specific first.
const SERVICES: [&str; 3] = [
    "urn:schemas-upnp-org:service:WANIPConnection:2",
    "urn:schemas-upnp-org:service:WANIPConnection:1",
    "urn:schemas-upnp-org:service:WANPPPConnection:1",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    Io(std::io::ErrorKind),
    /// No gateway answered the search.
    NotFound,
    /// The gateway's description lists no WAN connection service.
    NoService,
    /// The gateway answered the action with a SOAP fault (UPnP error code, e.g. 718:
    /// the port is mapped to another host).
    Fault(u16),
    Http(u16),
    Malformed(&'static str),
    Timeout,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io(k) => write!(f, "UPnP: {k}"),
            Error::NotFound => f.write_str("UPnP: no gateway answered"),
            Error::NoService => f.write_str("UPnP: the gateway offers no WAN connection service"),
            Error::Fault(c) => write!(f, "UPnP: the gateway refused (error {c})"),
            Error::Http(c) => write!(f, "UPnP: HTTP status {c}"),
            Error::Malformed(what) => write!(f, "UPnP: malformed {what}"),
            Error::Timeout => f.write_str("UPnP: the gateway did not answer in time"),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.kind())
    }
}

pub fn search_request() -> String {
    format!(
        "M-SEARCH * HTTP/1.1\r\nHOST: {SSDP}\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\
         MAN: \"ssdp:discover\"\r\nMX: 2\r\n\r\n"
    )
}

/// The `LOCATION` of an SSDP answer.
pub fn location(answer: &str) -> Option<&str> {
    answer.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case("location").then(|| v.trim())
    })
}

/// `http://host:port/path` → (host:port, /path). Only plain HTTP to an IPv4 literal: a
/// gateway on the LAN has no name, and anything else is not ours to follow.
pub fn split_url(url: &str) -> Option<(SocketAddrV4, String)> {
    let rest = url.strip_prefix("http://")?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    let addr = match host.parse::<SocketAddrV4>() {
        Ok(a) => a,
        Err(_) => SocketAddrV4::new(host.parse().ok()?, 80),
    };
    Some((addr, path))
}

/// Where an SSDP answer from `src` says the description is — only on the answering host
/// itself: a LOCATION elsewhere would have us fetch from any host a LAN device names.
pub fn location_from(answer: &str, src: SocketAddr) -> Option<(SocketAddrV4, String)> {
    let (addr, path) = location(answer).and_then(split_url)?;
    (std::net::IpAddr::V4(*addr.ip()) == src.ip()).then_some((addr, path))
}

/// Where the SOAP actions go: the control URL, relative or absolute, on the host that served
/// the description (the same rule as [`location_from`]).
pub fn control_target(description_host: SocketAddrV4, url: &str) -> Option<(SocketAddrV4, String)> {
    if url.starts_with("http://") {
        let (addr, path) = split_url(url)?;
        return (addr.ip() == description_host.ip()).then_some((addr, path));
    }
    url.starts_with('/')
        .then(|| (description_host, url.to_string()))
}

/// The text of the first `<tag>…</tag>` in `xml` (namespaces prefixes allowed: `<u:tag>`).
fn element<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let mut from = 0;
    while let Some(i) = xml[from..].find('<') {
        let start = from + i + 1;
        let end = start + xml[start..].find('>')?;
        let name = xml[start..end].split_whitespace().next().unwrap_or("");
        let local = name.rsplit(':').next().unwrap_or(name);
        if local == tag && !name.starts_with('/') {
            let body = &xml[end + 1..];
            let close = body.find("</")?;
            return Some(body[..close].trim());
        }
        from = end;
    }
    None
}

/// The control URL of the first WAN connection service in a device description, and which
/// service it is.
pub fn control_url(description: &str) -> Option<(&'static str, String)> {
    for want in SERVICES {
        for block in description.split("<service>").skip(1) {
            let block = block.split("</service>").next().unwrap_or(block);
            if element(block, "serviceType") == Some(want) {
                return element(block, "controlURL").map(|u| (want, u.to_string()));
            }
        }
    }
    None
}

/// The SOAP envelope of `action` with its arguments, in order.
pub fn soap_body(service: &str, action: &str, args: &[(&str, String)]) -> String {
    let mut inner = String::new();
    for (k, v) in args {
        inner.push_str(&format!("<{k}>{v}</{k}>"));
    }
    format!(
        "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>\
         <u:{action} xmlns:u=\"{service}\">{inner}</u:{action}></s:Body></s:Envelope>\r\n"
    )
}

/// Status code and body of an HTTP/1.x response.
pub fn parse_http(resp: &[u8]) -> Result<(u16, &str), Error> {
    let text = std::str::from_utf8(resp).map_err(|_| Error::Malformed("HTTP answer"))?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or(Error::Malformed("HTTP status line"))?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok((status, body))
}

/// A SOAP answer: the body on success, the UPnP error code of a fault.
pub fn soap_result(status: u16, body: &str) -> Result<&str, Error> {
    if status == 200 {
        return Ok(body);
    }
    match element(body, "errorCode").and_then(|c| c.parse().ok()) {
        Some(code) => Err(Error::Fault(code)),
        None => Err(Error::Http(status)),
    }
}

/// One gateway's WAN connection service.
#[derive(Debug, Clone)]
pub struct Gateway {
    control: SocketAddrV4,
    path: String,
    service: &'static str,
}

impl Gateway {
    /// Searches the LAN (multicast, and the default gateway itself by unicast, which some
    /// routers answer when multicast is filtered) and reads the first description that
    /// has a WAN connection service.
    pub async fn find(default_gateway: Option<Ipv4Addr>) -> Result<Gateway, Error> {
        let sock = UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))).await?;
        let req = search_request();
        sock.send_to(req.as_bytes(), SSDP).await?;
        if let Some(gw) = default_gateway {
            sock.send_to(req.as_bytes(), SocketAddrV4::new(gw, 1900))
                .await?;
        }
        let deadline = tokio::time::Instant::now() + SEARCH_WAIT;
        let mut buf = vec![0u8; 2048];
        for _ in 0..MAX_DESCRIPTIONS {
            let (addr, path) = loop {
                let (n, src) =
                    match tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await {
                        Err(_) => return Err(Error::NotFound),
                        Ok(r) => r?,
                    };
                let answer = std::str::from_utf8(&buf[..n]).unwrap_or("");
                if let Some(found) = location_from(answer, src) {
                    break found;
                }
            };
            if let Ok(g) = Self::from_description(addr, &path).await {
                return Ok(g);
            }
        }
        Err(Error::NotFound)
    }

    async fn from_description(addr: SocketAddrV4, path: &str) -> Result<Gateway, Error> {
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        let resp = http(addr, req.as_bytes()).await?;
        let (status, body) = parse_http(&resp)?;
        if status != 200 {
            return Err(Error::Http(status));
        }
        let (service, url) = control_url(body).ok_or(Error::NoService)?;
        let (control, path) = control_target(addr, &url).ok_or(Error::Malformed("control URL"))?;
        Ok(Gateway {
            control,
            path,
            service,
        })
    }

    /// Runs `action`; returns the answer's body.
    async fn call(&self, action: &str, args: &[(&str, String)]) -> Result<String, Error> {
        let body = soap_body(self.service, action, args);
        let req = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/xml; charset=\"utf-8\"\r\n\
             SOAPAction: \"{}#{action}\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.path,
            self.control,
            self.service,
            body.len()
        );
        let resp = http(self.control, req.as_bytes()).await?;
        let (status, body) = parse_http(&resp)?;
        Ok(soap_result(status, body)?.to_string())
    }

    pub async fn external_address(&self) -> Result<Ipv4Addr, Error> {
        let body = self.call("GetExternalIPAddress", &[]).await?;
        element(&body, "NewExternalIPAddress")
            .and_then(|a| a.parse().ok())
            .ok_or(Error::Malformed("external address"))
    }

    /// Maps UDP `external` on the gateway to `internal` on this host for `lease` seconds.
    pub async fn map_udp(&self, internal: u16, external: u16, lease: u32) -> Result<(), Error> {
        // The internal client is the address the gateway sees us at: learn it first.
        let local = local_addr_towards(self.control).await?;
        let args = [
            ("NewRemoteHost", String::new()),
            ("NewExternalPort", external.to_string()),
            ("NewProtocol", "UDP".to_string()),
            ("NewInternalPort", internal.to_string()),
            ("NewInternalClient", local.to_string()),
            ("NewEnabled", "1".to_string()),
            ("NewPortMappingDescription", "awl".to_string()),
            ("NewLeaseDuration", lease.to_string()),
        ];
        self.call("AddPortMapping", &args).await.map(|_| ())
    }

    pub async fn unmap_udp(&self, external: u16) -> Result<(), Error> {
        let args = [
            ("NewRemoteHost", String::new()),
            ("NewExternalPort", external.to_string()),
            ("NewProtocol", "UDP".to_string()),
        ];
        self.call("DeletePortMapping", &args).await.map(|_| ())
    }
}

/// Our address on the interface that reaches `peer` (a connected UDP socket sends nothing).
async fn local_addr_towards(peer: SocketAddrV4) -> Result<Ipv4Addr, Error> {
    let s = UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))).await?;
    s.connect(peer).await?;
    match s.local_addr()? {
        SocketAddr::V4(a) => Ok(*a.ip()),
        SocketAddr::V6(_) => Err(Error::Malformed("local address")),
    }
}

/// One HTTP exchange (`Connection: close`): the whole answer, at most [`MAX_HTTP`] bytes.
async fn http(addr: SocketAddrV4, req: &[u8]) -> Result<Vec<u8>, Error> {
    let run = async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(req).await?;
        let mut out = Vec::new();
        (&mut s).take(MAX_HTTP as u64).read_to_end(&mut out).await?;
        Ok::<_, std::io::Error>(out)
    };
    tokio::time::timeout(HTTP_TIMEOUT, run)
        .await
        .map_err(|_| Error::Timeout)?
        .map_err(Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DESCRIPTION: &str = r#"<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0"><device>
<deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>
<serviceList><service><serviceType>urn:schemas-upnp-org:service:Layer3Forwarding:1</serviceType>
<controlURL>/ctl/L3F</controlURL></service></serviceList>
<deviceList><device><deviceList><device><serviceList><service>
<serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType>
<serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId>
<controlURL>/ctl/IPConn</controlURL></service></serviceList></device></deviceList></device></deviceList>
</device></root>"#;

    #[test]
    fn ssdp_answer_and_description_give_the_control_url() {
        let answer = "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nLocation: http://192.168.1.1:5000/rootDesc.xml\r\n\r\n";
        let loc = location(answer).unwrap();
        assert_eq!(
            split_url(loc),
            Some((
                "192.168.1.1:5000".parse().unwrap(),
                "/rootDesc.xml".to_string()
            ))
        );
        assert_eq!(
            control_url(DESCRIPTION),
            Some((SERVICES[1], "/ctl/IPConn".to_string()))
        );
        assert_eq!(control_url("<root></root>"), None);
        // Names and https are not followed.
        assert_eq!(split_url("http://router.lan/desc.xml"), None);
        assert_eq!(split_url("https://192.168.1.1/desc.xml"), None);
    }

    #[test]
    fn only_the_answering_host_is_followed() {
        let answer = "HTTP/1.1 200 OK\r\nLOCATION: http://192.168.1.1:5000/rootDesc.xml\r\n\r\n";
        let gw: SocketAddr = "192.168.1.1:1900".parse().unwrap();
        let other: SocketAddr = "192.168.1.66:1900".parse().unwrap();
        assert_eq!(
            location_from(answer, gw),
            Some((
                "192.168.1.1:5000".parse().unwrap(),
                "/rootDesc.xml".to_string()
            ))
        );
        // A LAN device pointing us at another host (or at the internet) is ignored.
        assert_eq!(location_from(answer, other), None);
        let evil = "HTTP/1.1 200 OK\r\nLOCATION: http://203.0.113.9/x\r\n\r\n";
        assert_eq!(location_from(evil, other), None);
        let desc: SocketAddrV4 = "192.168.1.1:5000".parse().unwrap();
        assert_eq!(
            control_target(desc, "/ctl/IPConn"),
            Some((desc, "/ctl/IPConn".into()))
        );
        assert_eq!(
            control_target(desc, "http://192.168.1.1:5001/ctl"),
            Some(("192.168.1.1:5001".parse().unwrap(), "/ctl".into()))
        );
        assert_eq!(control_target(desc, "http://10.0.0.9/ctl"), None);
        assert_eq!(control_target(desc, "ctl"), None);
    }

    #[test]
    fn soap_envelopes_and_faults() {
        let body = soap_body(
            SERVICES[1],
            "DeletePortMapping",
            &[("NewExternalPort", "4363".into())],
        );
        assert!(body.contains("<u:DeletePortMapping xmlns:u=\"urn:schemas-upnp-org:service:WANIPConnection:1\"><NewExternalPort>4363</NewExternalPort></u:DeletePortMapping>"));
        let fault = "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/xml\r\n\r\n<s:Envelope><s:Body><s:Fault><detail><UPnPError xmlns=\"urn:schemas-upnp-org:control-1-0\"><errorCode>718</errorCode><errorDescription>ConflictInMappingEntry</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>";
        let (status, b) = parse_http(fault.as_bytes()).unwrap();
        assert_eq!(soap_result(status, b), Err(Error::Fault(718)));
        let ok = "HTTP/1.1 200 OK\r\n\r\n<s:Envelope><s:Body><u:GetExternalIPAddressResponse xmlns:u=\"x\"><NewExternalIPAddress>198.51.100.7</NewExternalIPAddress></u:GetExternalIPAddressResponse></s:Body></s:Envelope>";
        let (status, b) = parse_http(ok.as_bytes()).unwrap();
        let b = soap_result(status, b).unwrap();
        assert_eq!(element(b, "NewExternalIPAddress"), Some("198.51.100.7"));
        assert_eq!(soap_result(404, ""), Err(Error::Http(404)));
        assert!(parse_http(b"garbage").is_err());
        assert!(parse_http(&[0xff, 0xfe]).is_err());
    }
}
