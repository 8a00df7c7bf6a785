//! inotify, for tests that watch what appears in a directory.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// A non-blocking inotify watch on one path.
pub struct Watch {
    fd: OwnedFd,
}

impl Watch {
    pub fn new(path: &Path, mask: u32) -> io::Result<Watch> {
        let cpath = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // SAFETY: inotify_init1 returns a new descriptor (or -1), owned from here on.
        let fd = unsafe {
            let fd = libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            OwnedFd::from_raw_fd(fd)
        };
        // SAFETY: a live NUL-terminated path.
        if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), cpath.as_ptr(), mask) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Watch { fd })
    }

    /// The events queued so far, as (mask, name).
    pub fn events(&self) -> Vec<(u32, String)> {
        let mut buf = [0u8; 4096];
        // SAFETY: the buffer outlives the read and its length is passed.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        let n = usize::try_from(n).unwrap_or(0);
        let mut out = Vec::new();
        let mut i = 0usize;
        while i + 16 <= n {
            let mask = u32::from_ne_bytes(buf[i + 4..i + 8].try_into().unwrap());
            let len = u32::from_ne_bytes(buf[i + 12..i + 16].try_into().unwrap()) as usize;
            let name = String::from_utf8_lossy(&buf[i + 16..i + 16 + len])
                .trim_end_matches('\0')
                .to_string();
            out.push((mask, name));
            i += 16 + len;
        }
        out
    }
}
