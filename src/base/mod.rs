//! Value types and small tools with no I/O, used by every room above.
pub mod prefix;
pub mod ratelimit;
