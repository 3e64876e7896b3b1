//! The sandbox every harness runs in: a policy (profile, denied reads, allowed writes, network and
//! pid isolation), the merge that lets a workspace only tighten it, and the bubblewrap command line
//! that enforces it (REAL_PARTS.md, "Sandbox").
//!
//! Invariants:
//! - every sandbox drops all capabilities and runs as a non-zero uid/gid, so root on the host is
//!   not root inside (REAL_PARTS.md shows the remount escape otherwise);
//! - writable inside: the workspace, the harness's own state dirs, and the policy's `allow_write`;
//!   nothing else;
//! - a workspace's `.octo/sandbox.toml` can only add restrictions ([`SandboxPolicy::restrict`]);
//! - `strict` (network isolated, LLM endpoints bridged in) is refused until the bridge exists,
//!   never silently weakened.
//!
//! Profiles, from the most permissive: `development` shows the host's whole filesystem read-only
//! and shares its network and pids; `minimal` shows only the system directories and the harness's
//! install, on a fresh home, with its own pid namespace; `strict` is `minimal` without the network.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

/// How much of the host a sandbox sees, from the most permissive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    #[default]
    Development,
    Minimal,
    Strict,
}

/// A sandbox file as written (`~/.config/octo/sandbox.toml` or a workspace's
/// `.octo/sandbox.toml`). Every field is optional; unknown keys are errors (a typo must not
/// silently loosen a sandbox).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxFile {
    pub profile: Option<Profile>,
    #[serde(default)]
    pub deny_read: Vec<String>,
    pub allow_write: Option<Vec<String>>,
    pub isolate_network: Option<bool>,
    pub isolate_pid: Option<bool>,
}

/// Why a sandbox could not be configured or started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// Caller error: fix the file.
    #[error("sandbox file {file}: {detail}")]
    BadFile { file: String, detail: String },
    /// Caller error: a path in a sandbox file must be absolute, `~/...`, or (in a workspace file)
    /// relative to the workspace, without `..`.
    #[error(
        "sandbox path {path:?} must be absolute, start with ~/, or be relative to the workspace without .."
    )]
    BadPath { path: String },
    /// Configuration error: the `strict` profile needs the LLM bridge, which does not exist yet.
    #[error(
        "the strict sandbox profile (isolated network with LLM endpoints bridged in) is not available yet; use minimal or development"
    )]
    StrictUnavailable,
}

impl SandboxFile {
    /// Parses TOML.
    ///
    /// # Errors
    /// [`SandboxError::BadFile`] naming `file` and the problem.
    pub fn parse(file: &str, text: &str) -> Result<SandboxFile, SandboxError> {
        toml::from_str(text).map_err(|e| SandboxError::BadFile {
            file: file.to_owned(),
            detail: e.to_string().trim().to_owned(),
        })
    }
}

/// Paths the sandbox never shows, whatever the files say: credentials and Octo's configuration.
/// Octo's data dir (the log, users, tokens) is denied by the gateway, which knows where it is.
pub fn always_denied(home: &Path) -> Vec<PathBuf> {
    [
        ".ssh",
        ".gnupg",
        ".aws",
        ".config/octo",
        ".netrc",
        ".docker",
    ]
    .iter()
    .map(|relative| home.join(relative))
    .collect()
}

/// A resolved policy: absolute paths, every switch decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxPolicy {
    pub profile: Profile,
    pub deny_read: BTreeSet<PathBuf>,
    pub allow_write: BTreeSet<PathBuf>,
    pub isolate_network: bool,
    pub isolate_pid: bool,
}

fn resolve(text: &str, home: &Path, base: Option<&Path>) -> Result<PathBuf, SandboxError> {
    let bad = || SandboxError::BadPath {
        path: text.to_owned(),
    };
    let path = if let Some(rest) = text.strip_prefix("~/") {
        home.join(rest)
    } else if text == "~" {
        home.to_path_buf()
    } else if Path::new(text).is_absolute() {
        PathBuf::from(text)
    } else {
        base.ok_or_else(bad)?.join(text)
    };
    if path.components().any(|c| matches!(c, Component::ParentDir)) || text.is_empty() {
        return Err(bad());
    }
    Ok(path)
}

fn resolve_all(
    texts: &[String],
    home: &Path,
    base: Option<&Path>,
) -> Result<BTreeSet<PathBuf>, SandboxError> {
    texts.iter().map(|text| resolve(text, home, base)).collect()
}

fn is_within(path: &Path, root: &Path) -> bool {
    path.starts_with(root)
}

impl SandboxPolicy {
    /// The user's policy from `~/.config/octo/sandbox.toml` (a missing file is the default file).
    ///
    /// # Errors
    /// [`SandboxError::BadPath`] for a relative path.
    pub fn from_user_file(file: &SandboxFile, home: &Path) -> Result<SandboxPolicy, SandboxError> {
        let profile = file.profile.unwrap_or_default();
        let mut deny_read = resolve_all(&file.deny_read, home, None)?;
        deny_read.extend(always_denied(home));
        Ok(SandboxPolicy {
            profile,
            deny_read,
            allow_write: resolve_all(file.allow_write.as_deref().unwrap_or_default(), home, None)?,
            isolate_network: file.isolate_network.unwrap_or(false) || profile >= Profile::Strict,
            isolate_pid: file.isolate_pid.unwrap_or(false) || profile >= Profile::Minimal,
        })
    }

    /// This policy tightened by a workspace's `.octo/sandbox.toml`: a stricter profile wins, denied
    /// reads add up, allowed writes can only be narrowed to paths within ones already allowed, and
    /// isolation can only be switched on. Nothing a workspace writes can loosen the user's policy.
    ///
    /// # Errors
    /// [`SandboxError::BadPath`] for a path with `..`.
    pub fn restrict(
        &self,
        workspace_file: &SandboxFile,
        workspace: &Path,
        home: &Path,
    ) -> Result<SandboxPolicy, SandboxError> {
        let profile = self
            .profile
            .max(workspace_file.profile.unwrap_or(self.profile));
        let mut deny_read = self.deny_read.clone();
        deny_read.extend(resolve_all(
            &workspace_file.deny_read,
            home,
            Some(workspace),
        )?);
        let allow_write = match &workspace_file.allow_write {
            None => self.allow_write.clone(),
            Some(narrowed) => resolve_all(narrowed, home, Some(workspace))?
                .into_iter()
                .filter(|path| {
                    self.allow_write
                        .iter()
                        .any(|allowed| is_within(path, allowed))
                })
                .collect(),
        };
        Ok(SandboxPolicy {
            profile,
            deny_read,
            allow_write,
            isolate_network: self.isolate_network
                || workspace_file.isolate_network.unwrap_or(false)
                || profile >= Profile::Strict,
            isolate_pid: self.isolate_pid
                || workspace_file.isolate_pid.unwrap_or(false)
                || profile >= Profile::Minimal,
        })
    }

    /// Whether this policy allows nothing that `other` forbids (for tests and audits).
    pub fn is_at_least_as_strict_as(&self, other: &SandboxPolicy) -> bool {
        self.profile >= other.profile
            && self.deny_read.is_superset(&other.deny_read)
            && self.allow_write.iter().all(|path| {
                other
                    .allow_write
                    .iter()
                    .any(|allowed| is_within(path, allowed))
            })
            && (self.isolate_network || !other.isolate_network)
            && (self.isolate_pid || !other.isolate_pid)
    }
}

/// Where one sandboxed harness lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxPaths {
    /// The session's workspace: writable, the working directory.
    pub workspace: PathBuf,
    /// The harness's `HOME` inside.
    pub home: PathBuf,
    /// The harness's own state (pi's agent dir and session dir): writable.
    pub state_dirs: Vec<PathBuf>,
    /// What the harness runs from (its install, e.g. a node_modules folder): readable in every
    /// profile.
    pub read_only: Vec<PathBuf>,
}

/// The uid and gid inside every sandbox; never 0.
pub const SANDBOX_UID: u32 = 1000;
const _: () = assert!(SANDBOX_UID != 0);

/// System directories shown read-only by the `minimal` profile.
const SYSTEM_DIRS: [&str; 8] = [
    "/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/etc", "/opt",
];

fn push(args: &mut Vec<OsString>, parts: &[&str]) {
    args.extend(parts.iter().map(OsString::from));
}

fn push_path_pair(args: &mut Vec<OsString>, flag: &str, path: &Path) {
    args.push(flag.into());
    args.push(path.into());
    args.push(path.into());
}

/// The bubblewrap arguments (before the command) that enforce `policy` for `paths`.
///
/// # Errors
/// [`SandboxError::StrictUnavailable`] for the strict profile.
pub fn bwrap_args(
    policy: &SandboxPolicy,
    paths: &SandboxPaths,
) -> Result<Vec<OsString>, SandboxError> {
    if policy.profile == Profile::Strict || policy.isolate_network {
        // An isolated network without the bridge would cut the harness off its LLM.
        return Err(SandboxError::StrictUnavailable);
    }
    let mut args: Vec<OsString> = Vec::with_capacity(64);
    push(&mut args, &["--die-with-parent", "--new-session"]);
    push(
        &mut args,
        &[
            "--unshare-user",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
        ],
    );
    if policy.isolate_pid {
        push(&mut args, &["--unshare-pid"]);
    }
    let uid = SANDBOX_UID.to_string();
    push(
        &mut args,
        &["--uid", &uid, "--gid", &uid, "--cap-drop", "ALL"],
    );

    match policy.profile {
        Profile::Development => push_path_pair(&mut args, "--ro-bind", Path::new("/")),
        Profile::Minimal | Profile::Strict => {
            for dir in SYSTEM_DIRS.iter().map(Path::new).filter(|dir| dir.exists()) {
                push_path_pair(&mut args, "--ro-bind", dir);
            }
            for path in paths.read_only.iter().filter(|path| path.exists()) {
                push_path_pair(&mut args, "--ro-bind", path);
            }
        }
    }
    // `--mqueue` and the like must come after `--dev` (REAL_PARTS.md); keep these first.
    push(
        &mut args,
        &["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"],
    );
    if policy.profile >= Profile::Minimal {
        // A fresh, empty home; the harness's state dirs are bound into it below.
        args.push("--tmpfs".into());
        args.push(paths.home.clone().into());
    }
    // Writable paths come after every read-only mount, so they are not covered; a writable path
    // inside a denied one is not bound at all (deny wins).
    let denied = |path: &Path| {
        policy
            .deny_read
            .iter()
            .any(|denied| is_within(path, denied))
    };
    let writable: Vec<&PathBuf> = std::iter::once(&paths.workspace)
        .chain(&paths.state_dirs)
        .chain(&policy.allow_write)
        .filter(|path| path.exists() && !denied(path))
        .collect();
    for path in &writable {
        push_path_pair(&mut args, "--bind", path);
    }
    // Hide denied paths that exist, last, so that no later bind uncovers one (a denied file inside
    // the workspace stays hidden): a directory under an empty tmpfs, a file under /dev/null.
    // Mounting over a path that does not exist would fail on a read-only parent, so those are
    // skipped: there is nothing to hide.
    for denied in &policy.deny_read {
        if denied.is_dir() {
            args.push("--tmpfs".into());
            args.push(denied.into());
        } else if denied.exists() {
            args.push("--ro-bind".into());
            args.push("/dev/null".into());
            args.push(denied.into());
        }
    }
    args.push("--setenv".into());
    args.push("HOME".into());
    args.push(paths.home.clone().into());
    args.push("--chdir".into());
    args.push(paths.workspace.clone().into());
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_parse_and_refuse_typos() {
        let file = SandboxFile::parse("x", "profile = \"minimal\"\ndeny_read = [\"~/secrets\"]\n")
            .expect("parses");
        assert_eq!(file.profile, Some(Profile::Minimal));
        let typo = SandboxFile::parse("x", "isolate_netwrok = true\n");
        assert!(
            matches!(typo, Err(SandboxError::BadFile { .. })),
            "{typo:?}"
        );
        let strict_word = SandboxFile::parse("x", "profile = \"paranoid\"\n");
        assert!(strict_word.is_err());
    }

    #[test]
    fn paths_resolve_without_escapes() {
        let home = Path::new("/home/u");
        assert_eq!(resolve("~/a", home, None), Ok(PathBuf::from("/home/u/a")));
        assert_eq!(resolve("/etc/x", home, None), Ok(PathBuf::from("/etc/x")));
        assert!(
            resolve("rel", home, None).is_err(),
            "relative in the user file"
        );
        assert_eq!(
            resolve("rel", home, Some(Path::new("/w"))),
            Ok(PathBuf::from("/w/rel"))
        );
        assert!(resolve("../up", home, Some(Path::new("/w"))).is_err());
        assert!(resolve("/a/../b", home, None).is_err());
    }

    #[test]
    fn strict_is_refused_not_weakened() {
        let home = Path::new("/home/u");
        let strict = SandboxPolicy::from_user_file(
            &SandboxFile {
                profile: Some(Profile::Strict),
                ..Default::default()
            },
            home,
        )
        .expect("resolves");
        let paths = SandboxPaths {
            workspace: "/w".into(),
            home: home.into(),
            state_dirs: vec![],
            read_only: vec![],
        };
        assert_eq!(
            bwrap_args(&strict, &paths),
            Err(SandboxError::StrictUnavailable)
        );
        let isolated = SandboxPolicy::from_user_file(
            &SandboxFile {
                isolate_network: Some(true),
                ..Default::default()
            },
            home,
        )
        .expect("resolves");
        assert_eq!(
            bwrap_args(&isolated, &paths),
            Err(SandboxError::StrictUnavailable)
        );
    }

    #[test]
    fn every_sandbox_drops_capabilities_and_root() {
        let home = Path::new("/home/u");
        for profile in [Profile::Development, Profile::Minimal] {
            let policy = SandboxPolicy::from_user_file(
                &SandboxFile {
                    profile: Some(profile),
                    ..Default::default()
                },
                home,
            )
            .expect("resolves");
            let paths = SandboxPaths {
                workspace: "/".into(),
                home: home.into(),
                state_dirs: vec![],
                read_only: vec![],
            };
            let args: Vec<String> = bwrap_args(&policy, &paths)
                .expect("builds")
                .into_iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            let joined = args.join(" ");
            assert!(joined.contains("--cap-drop ALL"), "{joined}");
            assert!(
                joined.contains(&format!("--uid {SANDBOX_UID} --gid {SANDBOX_UID}")),
                "{joined}"
            );
            assert!(joined.contains("--unshare-user"), "{joined}");
        }
    }

    mod merge {
        use super::*;
        use proptest::prelude::*;

        fn arb_path() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("~/a".to_owned()),
                Just("~/a/b".to_owned()),
                Just("/srv/x".to_owned()),
                Just("/srv/x/y".to_owned()),
                Just("rel".to_owned()),
                Just("rel/deeper".to_owned()),
                Just("/tmp/t".to_owned()),
            ]
        }

        fn arb_profile() -> impl Strategy<Value = Option<Profile>> {
            prop_oneof![
                Just(None),
                Just(Some(Profile::Development)),
                Just(Some(Profile::Minimal)),
                Just(Some(Profile::Strict))
            ]
        }

        fn arb_file(absolute_only: bool) -> impl Strategy<Value = SandboxFile> {
            let path = move || {
                arb_path().prop_filter("absolute", move |p| {
                    !absolute_only || p.starts_with('/') || p.starts_with('~')
                })
            };
            (
                arb_profile(),
                proptest::collection::vec(path(), 0..4),
                proptest::option::of(proptest::collection::vec(path(), 0..4)),
                proptest::option::of(any::<bool>()),
                proptest::option::of(any::<bool>()),
            )
                .prop_map(
                    |(profile, deny_read, allow_write, isolate_network, isolate_pid)| SandboxFile {
                        profile,
                        deny_read,
                        allow_write,
                        isolate_network,
                        isolate_pid,
                    },
                )
        }

        proptest! {
            #[test]
            fn a_workspace_never_loosens(user in arb_file(true), workspace in arb_file(false)) {
                let home = Path::new("/home/u");
                let base = SandboxPolicy::from_user_file(&user, home).expect("absolute paths resolve");
                let merged = base.restrict(&workspace, Path::new("/w"), home).expect("resolves");
                prop_assert!(merged.is_at_least_as_strict_as(&base), "{merged:?} loosens {base:?}");
                // Restricting twice with the same file changes nothing more.
                let again = merged.restrict(&workspace, Path::new("/w"), home).expect("resolves");
                prop_assert_eq!(again, merged);
            }
        }
    }
}
