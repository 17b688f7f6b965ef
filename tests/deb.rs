//! `make deb`: the package's metadata and contents (when dpkg-deb exists), and on CI machines
//! (CI set, running as root, dpkg present) a real `dpkg -i` and `dpkg --purge` of it.

mod support;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use support::{stdout_of, TempDir};

fn have(command: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {command}")])
        .output()
        .is_ok_and(|output| output.status.success())
}

/// Runs `program args` and returns stdout; fails the test with both streams on error.
fn run(program: &str, args: &[&str]) -> String {
    stdout_of(
        Command::new(program).args(args),
        &format!("{program} {args:?}"),
    )
}

fn build_deb(builddir: &Path) -> PathBuf {
    run(
        "make",
        &[
            "--no-print-directory",
            "deb",
            &format!("BUILDDIR={}", builddir.display()),
        ],
    );
    deb_in(builddir)
}

/// The package `make deb` left in `builddir`.
fn deb_in(builddir: &Path) -> PathBuf {
    let arch = run("dpkg", &["--print-architecture"]);
    let name = format!("esmed_{}_{}.deb", env!("CARGO_PKG_VERSION"), arch.trim());
    let deb = builddir.join(name);
    assert!(deb.is_file(), "{} not built", deb.display());
    deb
}

#[test]
fn make_deb_builds_an_installable_package() {
    if !have("dpkg-deb") || !have("dpkg") {
        eprintln!("dpkg-deb not found: skipping the package test (not a Debian machine)");
        return;
    }
    let dir = TempDir::new("deb");
    let deb = build_deb(&dir.0);
    let deb = deb.to_str().expect("utf-8 path");

    let info = run("dpkg-deb", &["--info", deb]);
    assert!(info.contains("Package: esmed"), "{info}");
    assert!(
        info.contains(&format!("Version: {}", env!("CARGO_PKG_VERSION"))),
        "{info}"
    );
    assert!(info.contains("Depends: adduser"), "{info}");
    for script in ["postinst", "prerm", "postrm"] {
        assert!(info.contains(script), "{script} missing: {info}");
    }
    let conffiles = run("dpkg-deb", &["--info", deb, "conffiles"]);
    for conffile in [
        "/etc/esmed/esmed.conf",
        "/etc/default/esmed",
        "/etc/init.d/esmed",
        "/etc/logrotate.d/esmed",
        "/etc/cron.d/esmed-purge",
    ] {
        assert!(conffiles.lines().any(|l| l == conffile), "{conffiles}");
    }

    let contents = run("dpkg-deb", &["--contents", deb]);
    for (mode, path) in [
        ("-rwxr-xr-x root/root", "./usr/sbin/esmed"),
        ("-rwxr-xr-x root/root", "./usr/bin/esmed-smsc"),
        ("-rw-r----- root/root", "./etc/esmed/esmed.conf"),
        ("-rwxr-xr-x root/root", "./etc/init.d/esmed"),
        ("-rw-r--r-- root/root", "./usr/share/esmed/sql/db.sql"),
        (
            "-rw-r--r-- root/root",
            "./usr/share/esmed/sql/esmed-objects.sql",
        ),
        // Included by db.sql: it fails without it.
        (
            "-rw-r--r-- root/root",
            "./usr/share/esmed/sql/esmed-role.sql",
        ),
        // Included by esmed-objects.sql: db.sql fails without it.
        (
            "-rw-r--r-- root/root",
            "./usr/share/esmed/sql/rx-parts-done.sql",
        ),
        ("-rw-r--r-- root/root", "./usr/share/man/man8/esmed.8.gz"),
        (
            "-rw-r--r-- root/root",
            "./usr/share/man/man5/esmed.conf.5.gz",
        ),
        (
            "-rw-r--r-- root/root",
            "./usr/lib/systemd/system/esmed.service",
        ),
        // The purge, installed off (see tests/install.rs).
        (
            "-rw-r--r-- root/root",
            "./usr/lib/systemd/system/esmed-purge.service",
        ),
        (
            "-rw-r--r-- root/root",
            "./usr/lib/systemd/system/esmed-purge.timer",
        ),
        ("-rw-r--r-- root/root", "./etc/cron.d/esmed-purge"),
        (
            "-rw-r--r-- root/root",
            "./usr/share/esmed/sql/results-feed.sql",
        ),
        ("-rw-r--r-- root/root", "./usr/share/esmed/sql/purge.sql"),
    ] {
        let line = contents
            .lines()
            .find(|line| line.ends_with(&format!(" {path}")))
            .unwrap_or_else(|| panic!("{path} not in the package:\n{contents}"));
        assert!(line.starts_with(mode), "{line}");
    }

    if std::env::var_os("CI").is_some() && run("id", &["-u"]).trim() == "0" {
        install_and_purge(deb);
    } else {
        eprintln!("not on CI as root: dpkg -i of the package skipped");
    }
}

/// Packagers set CARGO_TARGET_DIR, and the package takes the binaries from there. Its
/// release directory here holds the binaries swapped (`support::swapped_target_dir`), and
/// CARGO=true keeps make's build step from building into it, so the packaged esmed
/// answering --help as esmed-smsc can only have come from CARGO_TARGET_DIR.
#[test]
fn make_deb_takes_the_binaries_from_cargo_target_dir() {
    if !have("dpkg-deb") || !have("dpkg") {
        eprintln!("dpkg-deb not found: skipping the package test (not a Debian machine)");
        return;
    }
    run("make", &["--no-print-directory", "build"]);
    let target = TempDir::new("deb-target-dir");
    support::swapped_target_dir(&target.0);
    let dir = TempDir::new("deb-from-target-dir");
    let output = Command::new("make")
        .args(["--no-print-directory", "deb", "CARGO=true"])
        .arg(format!("BUILDDIR={}", dir.0.display()))
        .env("CARGO_TARGET_DIR", &target.0)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run make deb");
    assert!(
        output.status.success(),
        "make deb failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = dir.0.join("tree");
    let deb = deb_in(&dir.0);
    run(
        "dpkg-deb",
        &[
            "-x",
            deb.to_str().expect("utf-8"),
            tree.to_str().expect("utf-8"),
        ],
    );
    let help = Command::new(tree.join("usr/sbin/esmed"))
        .arg("--help")
        .output()
        .expect("run the packaged esmed");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.starts_with("esmed-smsc: "),
        "the packaged esmed is not the binary in CARGO_TARGET_DIR: {help}"
    );
}

/// Only on throwaway CI machines: installs the package system-wide, then purges it.
fn install_and_purge(deb: &str) {
    run("dpkg", &["-i", deb]);
    let check = || {
        run("getent", &["passwd", "esmed"]);
        let esmed_gid: u32 = run("getent", &["group", "esmed"])
            .split(':')
            .nth(2)
            .and_then(|gid| gid.trim().parse().ok())
            .expect("esmed group id");
        let config = fs::metadata("/etc/esmed/esmed.conf").expect("config installed");
        assert_eq!(config.permissions().mode() & 0o7777, 0o640);
        assert_eq!(
            config.gid(),
            esmed_gid,
            "config readable by the esmed group"
        );
        let logs = fs::metadata("/var/log/esmed").expect("log directory");
        assert_eq!(logs.permissions().mode() & 0o7777, 0o750);
        assert_eq!(logs.gid(), esmed_gid);
        let version = run("/usr/sbin/esmed", &["--version"]);
        assert!(version.starts_with("esmed "), "{version}");
        // ENABLED=no as shipped: start is a no-op that succeeds.
        let start = run("/etc/init.d/esmed", &["start"]);
        assert!(start.contains("ENABLED=no"), "{start}");
        assert!(
            fs::read_dir("/etc/rc2.d")
                .expect("rc2.d")
                .any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().ends_with("esmed"))),
            "update-rc.d made the start links"
        );
    };
    let result = std::panic::catch_unwind(check);
    run("dpkg", &["--purge", "esmed"]);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    for gone in [
        "/usr/sbin/esmed",
        "/etc/init.d/esmed",
        "/etc/esmed/esmed.conf",
        "/var/log/esmed",
    ] {
        assert!(!Path::new(gone).exists(), "{gone} left after purge");
    }
    let user = Command::new("getent")
        .args(["passwd", "esmed"])
        .output()
        .expect("getent");
    assert!(!user.status.success(), "purge removes the esmed user");
}
