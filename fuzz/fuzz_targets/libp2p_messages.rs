//! libp2p messages from the network: the first byte picks the decoder (identify, Kademlia,
//! relay hop/stop, DCUtR, multiaddr, peer ID, multistream-select).
#![no_main]
use awl::p2p::{dcutr, identify, kad, multistream, relay};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else { return };
    match which % 8 {
        0 => {
            if let Ok(i) = identify::IdentifyInfo::decode(body) {
                let _ = identify::IdentifyInfo::decode(&i.encode());
            }
        }
        1 => {
            if let Ok(m) = kad::FindNode::decode(body) {
                let _ = kad::FindNode::decode(&m.encode());
            }
        }
        2 => {
            if let Ok(m) = relay::HopMessage::decode(body) {
                let _ = relay::HopMessage::decode(&m.encode());
            }
        }
        3 => {
            if let Ok(m) = relay::StopMessage::decode(body) {
                let _ = relay::StopMessage::decode(&m.encode());
            }
        }
        4 => {
            if let Ok(m) = dcutr::HolePunch::decode(body) {
                let _ = dcutr::HolePunch::decode(&m.encode());
            }
        }
        5 => {
            if let Ok(a) = awl::p2p::multiaddr::Multiaddr::from_bytes(body) {
                let _ = a.to_string().parse::<awl::p2p::multiaddr::Multiaddr>();
                let _ = relay::parse_circuit(&a);
            }
        }
        6 => {
            let _ = awl::p2p::identity::PeerId::from_bytes(body);
        }
        _ => {
            let _ = multistream::decode_body(body);
        }
    }
});
