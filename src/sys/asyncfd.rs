//! Registering a descriptor with tokio's reactor ([`AsyncFd`]), for owners of a descriptor only.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

mod sealed {
    pub trait Sealed {}
    impl Sealed for std::net::UdpSocket {}
    impl Sealed for std::os::fd::OwnedFd {}
}

/// Types that own their descriptor: it stays open, and the same, for as long as the value
/// lives, which is what [`AsyncFd`] requires of what it holds.
pub trait OwnsFd: AsRawFd + sealed::Sealed {}
impl OwnsFd for std::net::UdpSocket {}
impl OwnsFd for OwnedFd {}

/// `io` registered for `interest`. Must run inside the tokio runtime.
pub fn register<T: OwnsFd>(io: T, interest: Interest) -> io::Result<AsyncFd<T>> {
    // SAFETY: the AsyncFd owns `io`, and `io` owns its descriptor (`OwnsFd`), so it stays open
    // and the same for the registration's whole life.
    unsafe { AsyncFd::register_with_interest(io, interest) }.map_err(io::Error::from)
}
