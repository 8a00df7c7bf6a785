//! Calls into the operating system that need `unsafe` or raw file descriptors.
pub mod ifaddrs;
pub mod sockmark;
