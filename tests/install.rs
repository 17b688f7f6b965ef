//! `make install` / `make uninstall` into a temporary DESTDIR: the tree, the modes, a kept
//! config. Runs the real Makefile, which builds the release binaries once (cargo no-ops later).

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use support::{release_dir, stdout_of, swapped_target_dir, TempDir};

/// Runs `make <args>` in the crate's directory and returns its stdout; fails the test on error.
fn make(args: &[&str]) -> String {
    make_with(args, &[])
}

/// [`make`] with `env` added to its environment.
fn make_with(args: &[&str], env: &[(&str, &Path)]) -> String {
    stdout_of(
        Command::new("make")
            .arg("--no-print-directory")
            .args(args)
            .envs(env.iter().copied()),
        &format!("make {args:?}"),
    )
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("{} missing: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Every file install puts under DESTDIR with PREFIX=/usr, with its mode.
const INSTALLED: &[(&str, u32)] = &[
    ("usr/sbin/esmed", 0o755),
    ("usr/bin/esmed-smsc", 0o755),
    ("usr/share/esmed/sql/db.sql", 0o644),
    ("usr/share/esmed/sql/esmed-objects.sql", 0o644),
    ("usr/share/esmed/sql/esmed-role.sql", 0o644),
    ("usr/share/esmed/sql/rx-parts-done.sql", 0o644),
    ("usr/share/esmed/sql/upgrade-0.1.sql", 0o644),
    ("usr/share/esmed/sql/upgrade-0.2-dev.sql", 0o644),
    ("usr/share/esmed/sql/upgrade-0.2.sql", 0o644),
    ("usr/share/esmed/sql/changes-0.3.sql", 0o644),
    ("usr/share/esmed/sql/esmed-views.sql", 0o644),
    ("usr/share/esmed/sql/esmed-search-path.sql", 0o644),
    ("usr/share/esmed/sql/results-feed.sql", 0o644),
    ("usr/share/esmed/sql/purge.sql", 0o644),
    ("usr/share/esmed/sql/db-partitioned.sql", 0o644),
    ("usr/share/esmed/sql/esmed-partitions.sql", 0o644),
    ("usr/share/man/man8/esmed.8", 0o644),
    ("usr/share/man/man5/esmed.conf.5", 0o644),
    ("usr/lib/systemd/system/esmed.service", 0o644),
    ("usr/lib/systemd/system/esmed-purge.service", 0o644),
    ("usr/lib/systemd/system/esmed-purge.timer", 0o644),
    ("etc/init.d/esmed", 0o755),
    ("etc/logrotate.d/esmed", 0o644),
    ("etc/cron.d/esmed-purge", 0o644),
    ("etc/default/esmed", 0o644),
    ("etc/esmed/esmed.conf", 0o640),
];

/// Installed by install, removed by uninstall (config files stay).
const REMOVED_BY_UNINSTALL: &[&str] = &[
    "usr/sbin/esmed",
    "usr/bin/esmed-smsc",
    "usr/share/esmed",
    "usr/share/man/man8/esmed.8",
    "usr/share/man/man5/esmed.conf.5",
    "usr/lib/systemd/system/esmed.service",
    "usr/lib/systemd/system/esmed-purge.service",
    "usr/lib/systemd/system/esmed-purge.timer",
    "etc/init.d/esmed",
    "etc/logrotate.d/esmed",
];

/// `systemd-analyze verify` of the installed unit (pointed at the installed binary), where
/// systemd is installed; it prints but does not fail on unknown or misspelt settings.
fn verify_systemd_unit(destdir: &Path, esmed: &Path) {
    let have = Command::new("sh")
        .args(["-c", "command -v systemd-analyze"])
        .output()
        .is_ok_and(|output| output.status.success());
    if !have {
        eprintln!("systemd-analyze not installed: unit not verified");
        return;
    }
    let unit = fs::read_to_string(destdir.join("usr/lib/systemd/system/esmed.service"))
        .expect("read unit")
        .replace("/usr/sbin/esmed", &esmed.display().to_string());
    let copy_dir = destdir.join("verify");
    fs::create_dir_all(&copy_dir).expect("mkdir");
    let copy = copy_dir.join("esmed.service");
    fs::write(&copy, unit).expect("write unit copy");
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&copy)
        .output()
        .expect("run systemd-analyze");
    let complaints = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && complaints.trim().is_empty(),
        "systemd-analyze verify esmed.service: {complaints}"
    );
}

#[test]
fn install_builds_the_tree_keeps_the_config_and_uninstall_removes_the_rest() {
    let dir = TempDir::new("install");
    let destdir = format!("DESTDIR={}", dir.0.display());
    make(&["install", &destdir, "PREFIX=/usr"]);

    for (file, expected) in INSTALLED {
        let path = dir.0.join(file);
        assert_eq!(mode(&path), *expected, "mode of {file}");
    }
    let installed = dir.0.join("usr/sbin/esmed");
    let release = release_dir().join("esmed");
    assert_eq!(
        fs::read(&installed).expect("read installed esmed"),
        fs::read(&release).expect("read release esmed"),
        "the installed binary is the release build"
    );
    let version = Command::new(&installed)
        .arg("--version")
        .output()
        .expect("run installed esmed");
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("esmed "));

    let config = dir.0.join("etc/esmed/esmed.conf");
    let check = Command::new(&installed)
        .args(["--check-config", "-c"])
        .arg(&config)
        .output()
        .expect("check the installed config");
    assert!(
        check.status.success(),
        "the shipped esmed.conf is valid: {}",
        String::from_utf8_lossy(&check.stderr)
    );

    verify_systemd_unit(&dir.0, &installed);
    purge_is_installed_off(&dir.0);

    let shipped = fs::read_to_string(&config).expect("read installed config");
    assert!(
        shipped
            .lines()
            .any(|l| l == "file = /var/log/esmed/esmed.log"),
        "the installed config logs to /var/log/esmed"
    );

    fs::write(&config, "[database]\nname = edited\n").expect("edit the config");
    fs::set_permissions(&config, fs::Permissions::from_mode(0o600)).expect("chmod");
    let again = make(&["install", &destdir, "PREFIX=/usr"]);
    assert!(again.contains("keeping the existing"), "{again}");
    assert_eq!(
        fs::read_to_string(&config).expect("read config"),
        "[database]\nname = edited\n"
    );
    assert_eq!(
        mode(&config),
        0o600,
        "a second install leaves the config alone"
    );

    make(&["uninstall", &destdir, "PREFIX=/usr"]);
    for file in REMOVED_BY_UNINSTALL {
        assert!(!dir.0.join(file).exists(), "{file} left after uninstall");
    }
    assert!(config.exists(), "uninstall keeps the config");
    assert!(dir.0.join("etc/default/esmed").exists());
    assert!(
        dir.0.join("etc/cron.d/esmed-purge").exists(),
        "uninstall keeps the cron file, which the operator may have turned on"
    );
}

/// The purge's timer, its service and the cron line are installed, and off: the cron file
/// has no job line that is not commented out, nothing links the timer into a target, and
/// the service runs `esmed purge` as the esmed user.
fn purge_is_installed_off(destdir: &Path) {
    let cron = fs::read_to_string(destdir.join("etc/cron.d/esmed-purge")).expect("read cron");
    let jobs: Vec<&str> = cron
        .lines()
        .filter(|l| l.contains("esmed purge") && !l.trim_start().starts_with('#'))
        .collect();
    assert!(jobs.is_empty(), "cron job on by default: {jobs:?}");
    assert!(
        cron.contains("#30 3 * * * esmed /usr/sbin/esmed purge --older-than 30d"),
        "{cron}"
    );
    let units = destdir.join("usr/lib/systemd/system");
    let service = fs::read_to_string(units.join("esmed-purge.service")).expect("read service");
    assert!(
        service
            .contains("ExecStart=/usr/sbin/esmed purge --older-than 30d -c /etc/esmed/esmed.conf"),
        "{service}"
    );
    assert!(service.contains("User=esmed"), "{service}");
    let timer = fs::read_to_string(units.join("esmed-purge.timer")).expect("read timer");
    assert!(timer.contains("OnCalendar=daily"), "{timer}");
    let enabled: Vec<_> = walk(destdir)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".wants"))
        .collect();
    assert!(enabled.is_empty(), "enabled by install: {enabled:?}");
}

/// Every path under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut paths = Vec::new();
    for entry in fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            paths.extend(walk(&path));
        }
        paths.push(path);
    }
    paths
}

#[test]
fn install_honours_prefix_in_the_init_script_and_unit() {
    let dir = TempDir::new("install-prefix");
    let destdir = format!("DESTDIR={}", dir.0.display());
    make(&["install", &destdir, "PREFIX=/opt/esmed"]);

    assert_eq!(mode(&dir.0.join("opt/esmed/sbin/esmed")), 0o755);
    assert_eq!(mode(&dir.0.join("etc/esmed/esmed.conf")), 0o640);
    let script = fs::read_to_string(dir.0.join("etc/init.d/esmed")).expect("read script");
    assert!(script.contains("DAEMON=/opt/esmed/sbin/esmed"), "{script}");
    let unit = fs::read_to_string(dir.0.join("opt/esmed/lib/systemd/system/esmed.service"))
        .expect("read unit");
    assert!(unit.contains("ExecStart=/opt/esmed/sbin/esmed -c /etc/esmed/esmed.conf"));
    assert!(!unit.contains("/usr/sbin/esmed"), "{unit}");
    let purge = fs::read_to_string(
        dir.0
            .join("opt/esmed/lib/systemd/system/esmed-purge.service"),
    )
    .expect("read the purge unit");
    assert!(
        purge.contains("ExecStart=/opt/esmed/sbin/esmed purge"),
        "{purge}"
    );
    let cron = fs::read_to_string(dir.0.join("etc/cron.d/esmed-purge")).expect("read cron");
    assert!(cron.contains("esmed /opt/esmed/sbin/esmed purge"), "{cron}");
    assert!(!cron.contains("/usr/sbin/esmed"), "{cron}");
}

/// Packagers and CI build with CARGO_TARGET_DIR set, and install takes the binaries from
/// there. The directory here holds the release binaries swapped, and CARGO=true keeps
/// make's build step from building into it (a second full release build), so what is
/// installed can only have come from it.
#[test]
fn install_takes_the_binaries_from_cargo_target_dir() {
    make(&["build"]);
    let target = TempDir::new("install-target-dir");
    swapped_target_dir(&target.0);
    let release = release_dir();
    let dir = TempDir::new("install-from-target-dir");
    let destdir = format!("DESTDIR={}", dir.0.display());
    make_with(
        &["install", &destdir, "PREFIX=/usr", "CARGO=true"],
        &[("CARGO_TARGET_DIR", &target.0)],
    );
    for (installed, from) in [
        ("usr/sbin/esmed", "esmed-smsc"),
        ("usr/bin/esmed-smsc", "esmed"),
    ] {
        assert!(
            fs::read(dir.0.join(installed)).expect("read installed")
                == fs::read(release.join(from)).expect("read release"),
            "{installed} is not the binary in CARGO_TARGET_DIR"
        );
    }
}
