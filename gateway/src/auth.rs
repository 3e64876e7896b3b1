//! Who is calling (PROTOCOL.md 3.1): a bearer token (CLIs), or the session cookie that
//! `POST /api/login` sets (browsers, whose WebSocket `Origin` must then be the server's own).
//!
//! The cookie is `<user id>.<expiry ms>.<mac>`, the MAC a keyed blake3 over the rest with a key kept
//! in the data dir (0600), so sign-ins survive restarts without a session table, and a removed
//! user's cookie stops working at once (the user is looked up on every check).

use std::path::Path;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use octo_core::UserId;
use rand::RngCore;
use serde::Deserialize;
use serde_json::json;

use crate::server::SharedApp;
use crate::users::{User, write_private};

/// The cookie's name.
pub const COOKIE: &str = "octo_session";

/// How long a sign-in lasts.
pub const COOKIE_MAX_AGE_SECS: u64 = 30 * 24 * 3600;

/// The cookie key of `data_dir`, created on first use.
///
/// # Errors
/// When the key file cannot be read or written.
pub fn cookie_key(data_dir: &Path) -> std::io::Result<[u8; 32]> {
    let path = data_dir.join("cookie.key");
    if let Ok(bytes) = std::fs::read(&path)
        && let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice())
    {
        return Ok(key);
    }
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    write_private(&path, &key)?;
    Ok(key)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn mac(key: &[u8; 32], payload: &str) -> String {
    blake3::keyed_hash(key, payload.as_bytes())
        .to_hex()
        .to_string()
}

/// A cookie value for `user_id`, valid for [`COOKIE_MAX_AGE_SECS`].
pub fn cookie_value(key: &[u8; 32], user_id: &UserId) -> String {
    let payload = format!(
        "{}.{}",
        user_id.as_str(),
        now_ms() + COOKIE_MAX_AGE_SECS * 1000
    );
    let mac = mac(key, &payload);
    format!("{payload}.{mac}")
}

/// The user id a cookie value vouches for, if its MAC holds and it has not expired.
pub fn check_cookie(key: &[u8; 32], value: &str) -> Option<UserId> {
    let (payload, given) = value.rsplit_once('.')?;
    let expected = mac(key, payload);
    // Constant time: blake3's Hash comparison is.
    let given = blake3::Hash::from_hex(given).ok()?;
    let expected = blake3::Hash::from_hex(expected).ok()?;
    if given != expected {
        return None;
    }
    let (user, expiry) = payload.rsplit_once('.')?;
    if expiry.parse::<u64>().ok()? < now_ms() {
        return None;
    }
    UserId::new(user).ok()
}

fn cookie_from(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE).then_some(value)
        })
}

fn bearer_from(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
}

/// Whether a browser's `Origin` names this server (same host and port as `Host`).
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        // Not a browser: no cross-site risk from a cookie it holds.
        return true;
    };
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or(origin);
    origin_host.eq_ignore_ascii_case(host)
}

/// The calling user, from the bearer token or (same origin only) the cookie.
pub fn authenticate(app: &SharedApp, headers: &HeaderMap) -> Option<User> {
    if let Some(token) = bearer_from(headers) {
        return app.users.by_token(token).ok().flatten();
    }
    let value = cookie_from(headers)?;
    if !same_origin(headers) {
        return None;
    }
    let user_id = check_cookie(&app.cookie_key, value)?;
    app.users.by_id(&user_id).ok().flatten()
}

/// 401 with a typed body.
pub fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"code": "unauthorized", "message": "sign in: POST /api/login, or send Authorization: Bearer <token>"})),
    )
        .into_response()
}

/// `POST /api/login` body: a token, or a name and password.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Login {
    Token { token: String },
    Password { user: String, password: String },
}

/// `POST /api/login`.
pub async fn login(State(app): State<SharedApp>, body: axum::body::Bytes) -> Response {
    let Ok(login) = serde_json::from_slice::<Login>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"code": "invalid_field", "message": "send {\"token\"} or {\"user\", \"password\"}"})),
        )
            .into_response();
    };
    let users = app.users.clone();
    let found = tokio::task::spawn_blocking(move || match login {
        Login::Token { token } => users.by_token(&token),
        Login::Password { user, password } => users.by_password(&user, &password),
    })
    .await;
    let Ok(Ok(Some(user))) = found else {
        return unauthorized();
    };
    let cookie = format!(
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age={COOKIE_MAX_AGE_SECS}",
        cookie_value(&app.cookie_key, &user.id)
    );
    let mut response = Json(json!({"user": {"id": user.id, "name": user.name}})).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `POST /api/logout`: clears the cookie.
pub async fn logout() -> Response {
    let mut response = Json(json!({"ok": true})).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("octo_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    response
}
