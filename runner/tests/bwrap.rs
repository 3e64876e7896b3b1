//! The sandbox through the real bubblewrap: what a harness inside can and cannot do.
//!
//! Needs `bwrap` on the PATH (scripts/test.sh installs Debian's bubblewrap).

use std::path::{Path, PathBuf};
use std::process::Command;

use octo_runner::sandbox::{Profile, SandboxFile, SandboxPaths, SandboxPolicy, bwrap_args};

struct Host {
    _dir: tempfile::TempDir,
    root: PathBuf,
    workspace: PathBuf,
    home: PathBuf,
    state: PathBuf,
    outside: PathBuf,
}

impl Host {
    fn new() -> Host {
        // Not under /tmp: the sandbox mounts its own empty /tmp over it.
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
        let root = dir.path().to_path_buf();
        let (workspace, home, outside) = (root.join("ws"), root.join("home"), root.join("outside"));
        let state = home.join(".pi/agent");
        for path in [&workspace, &state, &outside, &home.join(".ssh")] {
            std::fs::create_dir_all(path).expect("mkdir");
        }
        std::fs::write(home.join(".ssh/id_ed25519"), "SECRET-KEY").expect("write");
        std::fs::write(outside.join("file.txt"), "original").expect("write");
        std::fs::write(workspace.join("notes.txt"), "readme").expect("write");
        Host {
            _dir: dir,
            root,
            workspace,
            home,
            state,
            outside,
        }
    }

    fn paths(&self) -> SandboxPaths {
        SandboxPaths {
            workspace: self.workspace.clone(),
            home: self.home.clone(),
            state_dirs: vec![self.state.clone()],
            read_only: vec![],
        }
    }

    fn policy(&self, file: &SandboxFile) -> SandboxPolicy {
        SandboxPolicy::from_user_file(file, &self.home).expect("policy resolves")
    }
}

struct Outcome {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn run(policy: &SandboxPolicy, paths: &SandboxPaths, script: &str) -> Outcome {
    let args = bwrap_args(policy, paths).expect("a sandbox for this policy");
    let output = Command::new("bwrap")
        .args(args)
        .args(["--", "/bin/sh", "-c", script])
        .output()
        .expect("bwrap runs (install Debian's bubblewrap: scripts/test.sh does)");
    Outcome {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn sh_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

#[test]
fn inside_there_is_no_root_and_no_capability() {
    let host = Host::new();
    for profile in [Profile::Development, Profile::Minimal] {
        let policy = host.policy(&SandboxFile {
            profile: Some(profile),
            ..Default::default()
        });
        let out = run(
            &policy,
            &host.paths(),
            "id -u; id -g; grep CapEff /proc/self/status; mount -o remount,bind,rw / 2>&1 && echo REMOUNTED; true",
        );
        assert!(out.ok, "{profile:?}: {}", out.stderr);
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(
            lines.first().copied(),
            Some("1000"),
            "{profile:?} uid: {}",
            out.stdout
        );
        assert_eq!(lines.get(1).copied(), Some("1000"), "{profile:?} gid");
        assert!(
            out.stdout.contains("CapEff:\t0000000000000000"),
            "{profile:?}: {}",
            out.stdout
        );
        assert!(
            !out.stdout.contains("REMOUNTED"),
            "{profile:?}: / could be remounted read-write"
        );
    }
}

#[test]
fn only_the_workspace_and_state_dirs_are_writable() {
    let host = Host::new();
    let policy = host.policy(&SandboxFile::default());
    let script = format!(
        "echo made > {ws}/made.txt && echo ws-ok; \
         echo state > {state}/s.json && echo state-ok; \
         echo changed > {outside}/file.txt && echo OUTSIDE-WRITTEN; \
         echo new > {outside}/new.txt && echo OUTSIDE-CREATED; \
         echo home > {home}/h.txt && echo HOME-WRITTEN; \
         cat {ws}/notes.txt",
        ws = sh_quote(&host.workspace),
        state = sh_quote(&host.state),
        outside = sh_quote(&host.outside),
        home = sh_quote(&host.home),
    );
    let out = run(&policy, &host.paths(), &script);
    assert!(
        out.stdout.contains("ws-ok") && out.stdout.contains("state-ok"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    assert!(out.stdout.contains("readme"), "the workspace is readable");
    for forbidden in ["OUTSIDE-WRITTEN", "OUTSIDE-CREATED", "HOME-WRITTEN"] {
        assert!(
            !out.stdout.contains(forbidden),
            "{forbidden}: {}",
            out.stdout
        );
    }
    assert!(
        out.stderr.contains("Read-only file system"),
        "the OS refused: {}",
        out.stderr
    );
    // The host saw exactly the allowed writes.
    assert_eq!(
        std::fs::read_to_string(host.workspace.join("made.txt")).expect("on the host"),
        "made\n"
    );
    assert_eq!(
        std::fs::read_to_string(host.state.join("s.json")).expect("on the host"),
        "state\n"
    );
    assert_eq!(
        std::fs::read_to_string(host.outside.join("file.txt")).expect("exists"),
        "original"
    );
    assert!(!host.outside.join("new.txt").exists());
    assert!(!host.home.join("h.txt").exists());
}

#[test]
fn denied_paths_are_unreadable_including_a_workspace_addition() {
    let host = Host::new();
    std::fs::write(host.root.join("ws/private.env"), "TOKEN=1").expect("write");
    let user = host.policy(&SandboxFile::default());
    let workspace_file =
        SandboxFile::parse(".octo/sandbox.toml", "deny_read = [\"private.env\"]\n")
            .expect("parses");
    let policy = user
        .restrict(&workspace_file, &host.workspace, &host.home)
        .expect("merges");
    let script = format!(
        "cat {key} && echo KEY-READ; cat {env} && echo ENV-READ; ls {ssh}; echo done",
        key = sh_quote(&host.home.join(".ssh/id_ed25519")),
        env = sh_quote(&host.workspace.join("private.env")),
        ssh = sh_quote(&host.home.join(".ssh")),
    );
    let out = run(&policy, &host.paths(), &script);
    assert!(out.stdout.contains("done"), "{}", out.stderr);
    assert!(
        !out.stdout.contains("SECRET-KEY") && !out.stdout.contains("KEY-READ"),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("TOKEN=1") && !out.stdout.contains("ENV-READ"),
        "{}",
        out.stdout
    );
    assert_eq!(
        std::fs::read_to_string(host.home.join(".ssh/id_ed25519")).expect("intact"),
        "SECRET-KEY"
    );
}

#[test]
fn minimal_shows_only_the_system_the_install_and_the_workspace() {
    let host = Host::new();
    let policy = host.policy(&SandboxFile {
        profile: Some(Profile::Minimal),
        ..Default::default()
    });
    let script = format!(
        "ls {outside} && echo OUTSIDE-VISIBLE; ls {ws} && echo ws-visible; ls /usr/bin/env && echo usr-ok; \
         ls {state_parent} && echo state-visible; echo $HOME",
        outside = sh_quote(&host.outside),
        ws = sh_quote(&host.workspace),
        state_parent = sh_quote(&host.state),
    );
    let out = run(&policy, &host.paths(), &script);
    assert!(!out.stdout.contains("OUTSIDE-VISIBLE"), "{}", out.stdout);
    for wanted in ["ws-visible", "usr-ok", "state-visible"] {
        assert!(
            out.stdout.contains(wanted),
            "{wanted}: {}{}",
            out.stdout,
            out.stderr
        );
    }
    assert!(
        out.stdout.contains(&host.home.display().to_string()),
        "HOME is set: {}",
        out.stdout
    );
}
