//! Runs the constant copy script with stand-ins for `pg_dump` and `pg_restore`, to check what it
//! hands them: the `.pgpass` it writes (escaping), the connection settings, and that hostile
//! values stay data.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use reviewapp_resources::db_copy::DB_COPY_SCRIPT;

/// Records its environment and arguments, keeps a copy of the .pgpass file, writes the dump.
const FAKE_PG_DUMP: &str = r#"#!/bin/sh
cp "${PGPASSFILE:-/nonexistent}" "$FAKE_OUT/pgpass" 2>/dev/null || true
ls -l "${PGPASSFILE:-/nonexistent}" >"$FAKE_OUT/pgpass.ls" 2>/dev/null || true
printf '%s\n' "$@" >"$FAKE_OUT/pg_dump.args"
printf 'PGHOST=%s\nPGPORT=%s\nPGDATABASE=%s\nPGUSER=%s\nPGPASSWORD=%s\n' \
  "${PGHOST-}" "${PGPORT-}" "${PGDATABASE-}" "${PGUSER-}" "${PGPASSWORD-<unset>}" >"$FAKE_OUT/pg_dump.env"
for arg in "$@"; do
  case "$arg" in --file=*) echo dump >"${arg#--file=}" ;; esac
done
"#;

const FAKE_PG_RESTORE: &str = r#"#!/bin/sh
printf '%s\n' "$@" >"$FAKE_OUT/pg_restore.args"
printf 'PGPASSWORD=%s\n' "${PGPASSWORD-<unset>}" >"$FAKE_OUT/pg_restore.env"
for arg in "$@"; do last="$arg"; done
test -f "$last"
"#;

struct Sandbox {
    root: PathBuf,
}

impl Sandbox {
    fn new(name: &str) -> Self {
        let root =
            std::env::temp_dir().join(format!("reviewapp-db-copy-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for dir in ["bin", "out", "tmp"] {
            fs::create_dir_all(root.join(dir)).unwrap();
        }
        write_executable(&root.join("bin/pg_dump"), FAKE_PG_DUMP);
        write_executable(&root.join("bin/pg_restore"), FAKE_PG_RESTORE);
        fs::write(root.join("db-copy.sh"), DB_COPY_SCRIPT).unwrap();
        Self { root }
    }

    /// Runs `command` (with the script at `./db-copy.sh`) under `sh` with only `env` set.
    fn run(&self, command: &str, env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(command)
            .current_dir(&self.root)
            .env_clear();
        cmd.env(
            "PATH",
            format!("{}:/usr/bin:/bin", self.root.join("bin").display()),
        );
        cmd.env("FAKE_OUT", self.root.join("out"));
        cmd.env("TMPDIR", self.root.join("tmp"));
        for (key, value) in env {
            cmd.env(key, value);
        }
        cmd.output().unwrap()
    }

    fn out(&self, file: &str) -> String {
        fs::read_to_string(self.root.join("out").join(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"))
    }

    fn tmp_is_empty(&self) -> bool {
        fs::read_dir(self.root.join("tmp"))
            .unwrap()
            .next()
            .is_none()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

fn write_executable(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

fn check(output: &Output) {
    assert!(
        output.status.success(),
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn parts_go_through_an_escaped_pgpass_file_and_never_the_command_line() {
    let sandbox = Sandbox::new("parts");
    let password = r#"p:a\ss"; rm -rf / #$(whoami)"#;
    let output = sandbox.run(
        "sh ./db-copy.sh",
        &[
            ("SOURCE_HOST", "db:host"),
            ("SOURCE_DATABASE", "shop"),
            ("SOURCE_USER", "reader"),
            ("SOURCE_PASSWORD", password),
            ("POSTGRES_USER", "postgres"),
            ("POSTGRES_PASSWORD", "local-secret"),
            ("PGPASSWORD", "must-not-reach-pg_dump"),
        ],
    );
    check(&output);
    assert_eq!(
        sandbox.out("pgpass"),
        "db\\:host:5432:shop:reader:p\\:a\\\\ss\"; rm -rf / #$(whoami)\n"
    );
    assert!(
        sandbox.out("pgpass.ls").starts_with("-rw-------"),
        "{}",
        sandbox.out("pgpass.ls")
    );
    assert_eq!(
        sandbox.out("pg_dump.env"),
        "PGHOST=db:host\nPGPORT=5432\nPGDATABASE=shop\nPGUSER=reader\nPGPASSWORD=<unset>\n"
    );
    let dump_args = sandbox.out("pg_dump.args");
    for flag in [
        "--format=custom",
        "--no-owner",
        "--no-acl",
        "--schema=public",
        "--exclude-table=spatial_ref_sys",
    ] {
        assert!(
            dump_args.lines().any(|l| l == flag),
            "{flag} in {dump_args}"
        );
    }
    assert!(
        !dump_args.contains("rm -rf") && !dump_args.contains("reader"),
        "{dump_args}"
    );
    let restore_args = sandbox.out("pg_restore.args");
    assert!(
        restore_args.lines().any(|l| l == "--no-owner"),
        "{restore_args}"
    );
    assert!(
        restore_args.lines().any(|l| l == "--username=postgres"),
        "{restore_args}"
    );
    assert!(
        restore_args.lines().any(|l| l == "--dbname=postgres"),
        "{restore_args}"
    );
    assert_eq!(sandbox.out("pg_restore.env"), "PGPASSWORD=local-secret\n");
    assert!(sandbox.tmp_is_empty(), "the dump and .pgpass are removed");
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("rm -rf"),
        "values are not echoed"
    );
}

#[test]
fn a_port_is_used_and_a_url_replaces_the_parts() {
    let sandbox = Sandbox::new("url");
    let output = sandbox.run(
        "sh ./db-copy.sh",
        &[
            ("SOURCE_DATABASE_URL", "postgres://u:p@h:6543/d"),
            ("SOURCE_HOST", "ignored"),
        ],
    );
    check(&output);
    let dump_args = sandbox.out("pg_dump.args");
    assert!(
        dump_args
            .lines()
            .any(|l| l == "--dbname=postgres://u:p@h:6543/d"),
        "{dump_args}"
    );
    assert!(
        !sandbox.root.join("out/pgpass").exists(),
        "no .pgpass for a URL"
    );
    assert!(
        sandbox
            .out("pg_restore.args")
            .lines()
            .any(|l| l == "--username=postgres"),
        "POSTGRES_USER defaults"
    );

    let sandbox = Sandbox::new("port");
    let env = [
        ("SOURCE_HOST", "h"),
        ("SOURCE_PORT", "6543"),
        ("SOURCE_DATABASE", "d"),
        ("SOURCE_USER", "u"),
        ("SOURCE_PASSWORD", ""),
    ];
    check(&sandbox.run("sh ./db-copy.sh", &env));
    assert_eq!(
        sandbox.out("pgpass"),
        "h:6543:d:u:\n",
        "an empty password is allowed"
    );
}

#[test]
fn missing_parts_fail_before_anything_runs() {
    let sandbox = Sandbox::new("missing");
    let output = sandbox.run(
        "sh ./db-copy.sh",
        &[
            ("SOURCE_HOST", "h"),
            ("SOURCE_USER", "u"),
            ("SOURCE_PASSWORD", "p"),
        ],
    );
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("SOURCE_DATABASE"),
        "{output:?}"
    );
    assert!(
        !sandbox.root.join("out/pg_dump.args").exists(),
        "pg_dump never ran"
    );
    assert!(sandbox.tmp_is_empty());
}

#[test]
fn sourcing_the_script_leaves_the_caller_alone_and_reports_failure() {
    let sandbox = Sandbox::new("sourced");
    let env = [
        ("SOURCE_HOST", "h"),
        ("SOURCE_DATABASE", "d"),
        ("SOURCE_USER", "u"),
        ("SOURCE_PASSWORD", "p"),
    ];
    // `set -eu` stays inside the script's subshell: the caller may still expand an unset variable.
    let output = sandbox.run(". ./db-copy.sh && echo \"after:$UNSET_IN_CALLER.\"", &env);
    check(&output);
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("after:."),
        "{output:?}"
    );
    let output = sandbox.run(". ./db-copy.sh || echo \"caller saw the failure\"", &[]);
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("caller saw the failure"),
        "{output:?}"
    );
}
