//! Which process wrote a session, and whether that process still exists.
//!
//! Sessions carry the writer's `pid` and `host`. When a layer opens a file, sessions left
//! `running` by a process of this host that no longer exists are marked `interrupted`: the
//! process crashed or was killed before they closed. Sessions of other hosts (a file on a
//! shared disk) are left alone, since their processes cannot be checked from here.

/// The process this layer runs in.
#[derive(Clone, Debug)]
pub(crate) struct Identity {
    pub(crate) pid: i64,
    pub(crate) host: String,
}

impl Identity {
    pub(crate) fn current() -> Self {
        Identity {
            pid: i64::from(std::process::id()),
            host: host_name(),
        }
    }
}

#[cfg(unix)]
fn host_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

#[cfg(not(unix))]
fn host_name() -> String {
    std::env::var("COMPUTERNAME").unwrap_or_else(|_| "unknown".to_owned())
}

/// Who is running this process, as `user@host` (the maker an evidence bundle names when
/// it is not told).
pub(crate) fn user_at_host() -> String {
    format!(
        "{}@{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into()),
        host_name()
    )
}

/// Whether a process of this host with this pid exists. When that cannot be known, it is
/// taken to exist, so a live run is never marked interrupted.
#[cfg(unix)]
pub(crate) fn is_alive(pid: i64) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    // EPERM: it exists but belongs to someone else.
    !matches!(
        rustix::process::test_kill_process(pid),
        Err(rustix::io::Errno::SRCH)
    )
}

#[cfg(not(unix))]
pub(crate) fn is_alive(_pid: i64) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_an_exited_child_is_not() {
        assert!(is_alive(Identity::current().pid));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = i64::from(child.id());
        child.wait().unwrap();
        assert!(!is_alive(pid));
    }
}
