//! The files an audit layer creates are private to their owner, and files it cannot use
//! are refused with a clear error and left untouched.

mod common;

use std::fs;
use std::path::Path;

use common::{Audit, child};
use tracing::info_span;

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[test]
fn the_database_and_its_wal_and_shm_files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new-folder").join("audit.db");
    let (layer, guard) = reasonkit_audit::AuditLayer::builder()
        .path(&path)
        .build()
        .unwrap();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::layer::SubscriberExt::with(
        tracing_subscriber::registry(),
        layer,
    ));
    tracing::dispatcher::with_default(&dispatch, || info_span!("session").in_scope(|| {}));
    guard.flush().unwrap();
    // While the layer runs, the WAL and shared-memory files exist beside the database.
    let wal = path.with_file_name("audit.db-wal");
    let shm = path.with_file_name("audit.db-shm");
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&wal), 0o600);
    assert_eq!(mode(&shm), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
}

#[cfg(unix)]
#[test]
fn an_existing_folder_keeps_its_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let audit_path = dir.path().join("audit.db");
    drop(
        reasonkit_audit::AuditLayer::builder()
            .path(&audit_path)
            .build()
            .unwrap(),
    );
    assert_eq!(mode(dir.path()), 0o755);
}

fn sha_of(path: &Path) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(fs::read(path).unwrap()).to_vec()
}

#[cfg(unix)]
#[test]
fn a_read_only_database_is_refused_and_left_untouched() {
    use std::os::unix::fs::PermissionsExt;
    let audit = Audit::new();
    audit.run(|| info_span!("session", id = "existing").in_scope(|| {}));
    let path = audit.path.clone();
    drop(audit.guard);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o444)).unwrap();
    fs::set_permissions(audit.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let before = sha_of(&path);

    let out = if rustix::process::getuid().is_root() {
        // Root writes through file permissions: open it as an ordinary user instead, with
        // a copy of the helper that user can run wherever the checkout lives.
        let helper = audit.dir.path().join("audit_child");
        fs::copy(common::example_binary("audit_child"), &helper).unwrap();
        fs::set_permissions(&helper, fs::Permissions::from_mode(0o755)).unwrap();
        let mut command = std::process::Command::new("setpriv");
        command
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&helper)
            .arg("build")
            .arg(&path);
        command
            .output()
            .expect("setpriv (util-linux) runs the check as an unprivileged user")
    } else {
        child("build", &path, 0).output().unwrap()
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("read-only"), "{stdout}");
    assert!(stdout.contains(&path.display().to_string()), "{stdout}");
    assert_eq!(sha_of(&path), before);
}
