//! runc's `--console-socket`: runc connects to a unix socket and sends the master end
//! of the container's pseudoterminal as an `SCM_RIGHTS` message. The socket lives in the
//! abstract namespace (`@name`; runc, written in Go, understands the `@` prefix), so no
//! path length limit or file to clean up.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};

/// A listening console socket.
pub struct ConsoleSocket {
    listener: UnixListener,
    name: String,
}

impl ConsoleSocket {
    /// Binds a fresh abstract socket.
    pub fn bind() -> Result<ConsoleSocket> {
        static N: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "tug-console-{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            super::state::now_nanos()
        );
        let addr = SocketAddr::from_abstract_name(name.as_bytes())?;
        let listener = UnixListener::bind_addr(&addr).context("binding a console socket")?;
        Ok(ConsoleSocket { listener, name })
    }

    /// What to pass to runc's `--console-socket`.
    pub fn runc_arg(&self) -> String {
        format!("@{}", self.name)
    }

    /// Waits for runc to connect (while `still_waiting` says so, polled every few
    /// milliseconds) and returns the received terminal master.
    pub fn accept(&self, mut still_waiting: impl FnMut() -> bool) -> Result<OwnedFd> {
        self.listener.set_nonblocking(true)?;
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false)?;
                    return recv_fd(&stream);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if !still_waiting() {
                        anyhow::bail!("runc did not send the terminal");
                    }
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                Err(e) => return Err(e).context("accepting on the console socket"),
            }
        }
    }
}

/// Receives one file descriptor sent with `SCM_RIGHTS`.
fn recv_fd(stream: &UnixStream) -> Result<OwnedFd> {
    let mut data = [0u8; 4096];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // Room for one control message carrying a few fds.
    let mut cbuf = [0u64; 16];
    // SAFETY: msghdr is plain data; every pointer set below outlives the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cbuf);
    // SAFETY: recvmsg on a valid socket with a properly set up msghdr.
    let n = unsafe { libc::recvmsg(stream.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(std::io::Error::last_os_error()).context("recvmsg on the console socket");
    }
    // SAFETY: walking the control messages the kernel filled in, within msg_controllen.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let fd: i32 = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                return Ok(OwnedFd::from_raw_fd(fd));
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    anyhow::bail!("no terminal fd in runc's console message")
}
