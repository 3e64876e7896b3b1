//! Users and their credentials (PROTOCOL.md 3.1): names, argon2 password hashes, and bearer tokens
//! stored only as hashes. Octo's own, not the operating system's.
//!
//! The store is one JSON file in the data dir (`users.json`, mode 0600), replaced atomically
//! (written beside, synced, renamed, directory synced), so a crash leaves the old file or the new
//! one, never half of either. Tokens are 32 random bytes; only their blake3 is kept, so the file
//! alone does not let anyone in. The first start creates the first user and writes its token to
//! `<data_dir>/token` (0600), reused on later starts.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;
use octo_core::UserId;
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// Longest user name.
pub const NAME_CHARS_MAX: usize = 64;

/// Tokens start with this, so they are recognisable in configs and leaks.
pub const TOKEN_PREFIX: &str = "octo_";

/// Why a users operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UsersError {
    /// Caller error: choose another name.
    #[error("user name {0:?} is not valid: use 1..64 characters of a-z 0-9 . _ -")]
    BadName(String),
    /// Caller error: the name is taken.
    #[error("a user named {0:?} exists already")]
    Exists(String),
    /// Caller error: no such user.
    #[error("no user named {0:?}")]
    NotFound(String),
    /// Caller error: passwords need 8 characters at least.
    #[error("the password is too short: use at least 8 characters")]
    WeakPassword,
    /// Stop: the users file cannot be read or written.
    #[error("users file {path}: {detail}")]
    Storage { path: PathBuf, detail: String },
}

/// One user as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub name: String,
    /// argon2id in PHC form; `None` for token-only users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// blake3 (hex) of each valid token.
    #[serde(default)]
    pub token_hashes: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct UsersFile {
    users: Vec<User>,
}

/// The users of one data dir.
#[derive(Debug, Clone)]
pub struct UserStore {
    dir: PathBuf,
}

fn token_hash(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

fn check_name(name: &str) -> Result<(), UsersError> {
    let ok = !name.is_empty()
        && name.chars().count() <= NAME_CHARS_MAX
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(UsersError::BadName(name.to_owned()))
    }
}

fn hash_password(password: &str) -> Result<String, UsersError> {
    if password.chars().count() < 8 {
        return Err(UsersError::WeakPassword);
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| UsersError::Storage {
            path: PathBuf::new(),
            detail: format!("hashing failed: {e}"),
        })
}

/// Writes `bytes` to `path` atomically with mode 0600: a crash leaves the old or the new content.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path)?;
    // The rename is durable only once the directory is.
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

impl UserStore {
    /// The store of `data_dir` (created if missing).
    ///
    /// # Errors
    /// [`UsersError::Storage`].
    pub fn open(data_dir: &Path) -> Result<UserStore, UsersError> {
        std::fs::create_dir_all(data_dir).map_err(|e| UsersError::Storage {
            path: data_dir.to_path_buf(),
            detail: e.to_string(),
        })?;
        Ok(UserStore {
            dir: data_dir.to_path_buf(),
        })
    }

    fn path(&self) -> PathBuf {
        self.dir.join("users.json")
    }

    fn storage(&self, e: impl std::fmt::Display) -> UsersError {
        UsersError::Storage {
            path: self.path(),
            detail: e.to_string(),
        }
    }

    fn load(&self) -> Result<UsersFile, UsersError> {
        match std::fs::read(self.path()) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| self.storage(e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(UsersFile::default()),
            Err(e) => Err(self.storage(e)),
        }
    }

    fn save(&self, file: &UsersFile) -> Result<(), UsersError> {
        let bytes = serde_json::to_vec_pretty(file).map_err(|e| self.storage(e))?;
        write_private(&self.path(), &bytes).map_err(|e| self.storage(e))
    }

    fn update<T>(
        &self,
        change: impl FnOnce(&mut UsersFile) -> Result<T, UsersError>,
    ) -> Result<T, UsersError> {
        let mut file = self.load()?;
        let result = change(&mut file)?;
        self.save(&file)?;
        Ok(result)
    }

    /// Every user.
    ///
    /// # Errors
    /// [`UsersError::Storage`].
    pub fn list(&self) -> Result<Vec<User>, UsersError> {
        Ok(self.load()?.users)
    }

    /// Adds a user with an optional password; returns it and its first token.
    ///
    /// # Errors
    /// [`UsersError`].
    pub fn add(&self, name: &str, password: Option<&str>) -> Result<(User, String), UsersError> {
        check_name(name)?;
        let password_hash = password.map(hash_password).transpose()?;
        self.update(|file| {
            if file.users.iter().any(|user| user.name == name) {
                return Err(UsersError::Exists(name.to_owned()));
            }
            let id = UserId::new(format!(
                "u-{}",
                octo_core::SessionId::new().as_uuid().simple()
            ))
            .map_err(|e| UsersError::Storage {
                path: PathBuf::new(),
                detail: e.to_string(),
            })?;
            let token = new_token();
            let user = User {
                id,
                name: name.to_owned(),
                password_hash,
                token_hashes: vec![token_hash(&token)],
            };
            file.users.push(user.clone());
            Ok((user, token))
        })
    }

    /// Removes a user (their sessions stay in the log, unreachable to others).
    ///
    /// # Errors
    /// [`UsersError`].
    pub fn remove(&self, name: &str) -> Result<(), UsersError> {
        self.update(|file| {
            let before = file.users.len();
            file.users.retain(|user| user.name != name);
            if file.users.len() == before {
                Err(UsersError::NotFound(name.to_owned()))
            } else {
                Ok(())
            }
        })
    }

    /// Sets a user's password.
    ///
    /// # Errors
    /// [`UsersError`].
    pub fn set_password(&self, name: &str, password: &str) -> Result<(), UsersError> {
        let hash = hash_password(password)?;
        self.update(|file| {
            let user = file
                .users
                .iter_mut()
                .find(|user| user.name == name)
                .ok_or_else(|| UsersError::NotFound(name.to_owned()))?;
            user.password_hash = Some(hash);
            Ok(())
        })
    }

    /// Issues a new token for a user; with `revoke_others`, every older token stops working.
    ///
    /// # Errors
    /// [`UsersError`].
    pub fn issue_token(&self, name: &str, revoke_others: bool) -> Result<String, UsersError> {
        self.update(|file| {
            let user = file
                .users
                .iter_mut()
                .find(|user| user.name == name)
                .ok_or_else(|| UsersError::NotFound(name.to_owned()))?;
            let token = new_token();
            if revoke_others {
                user.token_hashes.clear();
            }
            user.token_hashes.push(token_hash(&token));
            Ok(token)
        })
    }

    /// The user a bearer token belongs to.
    ///
    /// # Errors
    /// [`UsersError::Storage`].
    pub fn by_token(&self, token: &str) -> Result<Option<User>, UsersError> {
        let hash = token_hash(token);
        Ok(self
            .load()?
            .users
            .into_iter()
            .find(|user| user.token_hashes.contains(&hash)))
    }

    /// The user with this id.
    ///
    /// # Errors
    /// [`UsersError::Storage`].
    pub fn by_id(&self, id: &UserId) -> Result<Option<User>, UsersError> {
        Ok(self.load()?.users.into_iter().find(|user| &user.id == id))
    }

    /// The user, if `password` is theirs.
    ///
    /// # Errors
    /// [`UsersError::Storage`].
    pub fn by_password(&self, name: &str, password: &str) -> Result<Option<User>, UsersError> {
        let Some(user) = self
            .load()?
            .users
            .into_iter()
            .find(|user| user.name == name)
        else {
            // Hash anyway, so timing does not tell whether the name exists.
            let _ = hash_password("not-a-real-password");
            return Ok(None);
        };
        let Some(stored) = user.password_hash.as_deref() else {
            return Ok(None);
        };
        let parsed = PasswordHash::new(stored).map_err(|e| self.storage(e))?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
            .then_some(user))
    }

    /// At first start: creates the first user (named `name`) unless there is one, and makes sure
    /// `<data_dir>/token` (0600) holds a valid token of the first user, reusing it on later starts.
    ///
    /// # Errors
    /// [`UsersError`].
    pub fn ensure_first_user(&self, name: &str) -> Result<(User, String), UsersError> {
        let token_file = self.dir.join("token");
        let users = self.list()?;
        if let Some(first) = users.first() {
            if let Ok(token) = std::fs::read_to_string(&token_file)
                && first.token_hashes.contains(&token_hash(token.trim()))
            {
                return Ok((first.clone(), token.trim().to_owned()));
            }
            let token = self.issue_token(&first.name, false)?;
            write_private(&token_file, token.as_bytes()).map_err(|e| self.storage(e))?;
            return Ok((first.clone(), token));
        }
        let (user, token) = self.add(name, None)?;
        write_private(&token_file, token.as_bytes()).map_err(|e| self.storage(e))?;
        Ok((user, token))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn tokens_and_passwords_authenticate_only_their_user() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = UserStore::open(dir.path()).expect("opens");
        let (alice, alice_token) = store.add("alice", Some("correct horse")).expect("adds");
        let (bob, bob_token) = store.add("bob", None).expect("adds");
        assert_ne!(alice.id, bob.id);
        assert!(alice_token.starts_with(TOKEN_PREFIX));
        assert_eq!(
            store.by_token(&alice_token).expect("reads").map(|u| u.name),
            Some("alice".into())
        );
        assert_eq!(
            store.by_token(&bob_token).expect("reads").map(|u| u.name),
            Some("bob".into())
        );
        assert!(store.by_token("octo_wrong").expect("reads").is_none());
        assert!(
            store
                .by_password("alice", "correct horse")
                .expect("reads")
                .is_some()
        );
        assert!(
            store
                .by_password("alice", "wrong horse!")
                .expect("reads")
                .is_none()
        );
        assert!(
            store
                .by_password("bob", "anything at all")
                .expect("reads")
                .is_none(),
            "no password set"
        );
        assert!(
            store
                .by_password("carol", "correct horse")
                .expect("reads")
                .is_none()
        );
        let stored = std::fs::read_to_string(dir.path().join("users.json")).expect("file");
        assert!(
            !stored.contains(&alice_token) && !stored.contains("correct horse"),
            "secrets are stored hashed"
        );
        let mode = std::fs::metadata(dir.path().join("users.json"))
            .expect("file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn bad_names_duplicates_and_weak_passwords_change_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = UserStore::open(dir.path()).expect("opens");
        store.add("alice", None).expect("adds");
        for bad in ["", "Alice", "a b", "a/b", &"x".repeat(65)] {
            assert!(
                matches!(store.add(bad, None), Err(UsersError::BadName(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            store.add("alice", None),
            Err(UsersError::Exists(_))
        ));
        assert!(matches!(
            store.add("carol", Some("short")),
            Err(UsersError::WeakPassword)
        ));
        assert!(matches!(
            store.remove("nobody"),
            Err(UsersError::NotFound(_))
        ));
        assert_eq!(store.list().expect("lists").len(), 1);
    }

    #[test]
    fn revoking_tokens_and_the_first_user_token_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = UserStore::open(dir.path()).expect("opens");
        let (first, token) = store.ensure_first_user("admin").expect("creates");
        let token_file = dir.path().join("token");
        assert_eq!(
            std::fs::read_to_string(&token_file).expect("written"),
            token
        );
        assert_eq!(
            std::fs::metadata(&token_file)
                .expect("file")
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        let (again, reused) = store.ensure_first_user("admin").expect("reuses");
        assert_eq!(
            (again.id, reused.as_str()),
            (first.id.clone(), token.as_str()),
            "later starts reuse it"
        );
        let fresh = store.issue_token("admin", true).expect("issues");
        assert!(store.by_token(&token).expect("reads").is_none(), "revoked");
        assert!(store.by_token(&fresh).expect("reads").is_some());
        let (_, rewritten) = store.ensure_first_user("admin").expect("rewrites");
        assert_ne!(rewritten, token, "a revoked token in the file is replaced");
        assert!(store.by_token(&rewritten).expect("reads").is_some());
        store.remove("admin").expect("removes");
        assert!(store.by_token(&fresh).expect("reads").is_none());
    }
}
