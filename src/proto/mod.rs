//! AWL's application protocols (`/awl/0.3.0/…`): wire codecs, no I/O beyond reading a message.
pub mod messages;
pub mod tunnel;
