pub mod autonat_peer;
pub mod peer;
