//! Sign-in (PROTOCOL.md 3.1): `POST /api/login` with a token or a name and password sets an
//! HttpOnly, SameSite=Strict cookie; the cookie opens the WebSocket from the server's own origin
//! only; logout clears it; bad credentials get 401 and no cookie.

mod support;

use octo_core::Encoding;
use serde_json::{Value, json};
use support::Octo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// One HTTP/1.1 request on a fresh connection: (status, headers text, body).
async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("writes");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("reads");
    let (head, body) = response.split_once("\r\n\r\n").expect("a response");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    (status, head.to_owned(), body.to_owned())
}

fn cookie_of(head: &str) -> Option<String> {
    head.lines()
        .find_map(|line| {
            line.strip_prefix("set-cookie: ")
                .or_else(|| line.strip_prefix("Set-Cookie: "))
        })
        .map(str::to_owned)
}

async fn ws_with_cookie(octo: &Octo, cookie: &str, origin: &str) -> Result<(), String> {
    let mut request = octo_tools::client::ws_url(&octo.url())
        .into_client_request()
        .expect("request");
    request
        .headers_mut()
        .insert("Cookie", cookie.parse().expect("header"));
    request
        .headers_mut()
        .insert("Origin", origin.parse().expect("header"));
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        Encoding::Json.subprotocol().parse().expect("header"),
    );
    tokio_tungstenite::connect_async(request)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_sets_a_cookie_that_opens_the_socket_from_the_same_origin() {
    let octo = Octo::start(json!([])).await;
    let addr = octo.server().addr();
    octo.server()
        .app()
        .users
        .set_password(&octo.server().user().name, "correct horse battery")
        .expect("sets a password");

    for body in [
        json!({"token": "octo_nope"}),
        json!({"user": octo.server().user().name, "password": "wrong password"}),
        json!({"user": "nobody", "password": "whatever123"}),
    ] {
        let (status, head, body_text) = http(addr, "POST", "/api/login", &body.to_string()).await;
        assert_eq!(status, 401, "{body}");
        assert!(cookie_of(&head).is_none(), "no cookie for bad credentials");
        let body: Value = serde_json::from_str(&body_text).expect("json");
        assert_eq!(body["code"], "unauthorized");
    }
    let (status, _, _) = http(addr, "POST", "/api/login", "not json").await;
    assert_eq!(status, 400);

    for body in [
        json!({"token": octo.token()}),
        json!({"user": octo.server().user().name, "password": "correct horse battery"}),
    ] {
        let (status, head, body_text) = http(addr, "POST", "/api/login", &body.to_string()).await;
        assert_eq!(status, 200);
        let body: Value = serde_json::from_str(&body_text).expect("json");
        assert_eq!(body["user"]["name"], octo.server().user().name.as_str());
        let set_cookie = cookie_of(&head).expect("a cookie");
        assert!(
            set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
            "{set_cookie}"
        );
        let cookie = set_cookie.split(';').next().expect("name=value").to_owned();
        ws_with_cookie(&octo, &cookie, &format!("http://{addr}"))
            .await
            .expect("the cookie opens the socket from the same origin");
        let cross = ws_with_cookie(&octo, &cookie, "http://evil.example").await;
        assert!(
            cross.is_err_and(|e| e.contains("401")),
            "another origin is refused"
        );
        let forged = format!("{}0", cookie);
        let refused = ws_with_cookie(&octo, &forged, &format!("http://{addr}")).await;
        assert!(
            refused.is_err_and(|e| e.contains("401")),
            "a forged cookie is refused"
        );
    }
    let (status, head, _) = http(addr, "POST", "/api/logout", "").await;
    assert_eq!(status, 200);
    assert!(cookie_of(&head).is_some_and(|c| c.contains("Max-Age=0")));
    // No credentials at all: 401 before any upgrade.
    let (status, _, _) = http(addr, "GET", "/api/ws", "").await;
    assert_eq!(status, 401);
}

/// `octo serve --frontend DIR` serves the built UI: its files, `index.html` for the UI's own routes
/// (so `/s/<id>` loads the app), and a JSON 404 for an unknown API path.
#[tokio::test(flavor = "multi_thread")]
async fn serves_the_web_ui_and_its_routes() {
    let dist = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    std::fs::write(
        dist.path().join("index.html"),
        "<!doctype html><p>octo-ui-index</p>",
    )
    .expect("writes");
    std::fs::create_dir_all(dist.path().join("assets")).expect("mkdir");
    std::fs::write(
        dist.path().join("assets/app.js"),
        "console.log('octo-ui-app')",
    )
    .expect("writes");
    let root = dist.path().to_path_buf();
    let octo = Octo::start_with(json!([]), |config| config.frontend = Some(root)).await;
    let addr = octo.server().addr();

    for path in ["/", "/s/0193f1a0-5c2e-7b40-9a11-3c5e7d9f0b21", "/analytics"] {
        let (status, _, body) = http(addr, "GET", path, "").await;
        assert_eq!(status, 200, "{path}");
        assert!(body.contains("octo-ui-index"), "{path}: {body}");
    }
    let (status, head, body) = http(addr, "GET", "/assets/app.js", "").await;
    assert_eq!(status, 200);
    assert!(body.contains("octo-ui-app"), "{body}");
    assert!(head.to_ascii_lowercase().contains("javascript"), "{head}");

    let (status, _, body) = http(addr, "GET", "/api/nope", "").await;
    assert_eq!(status, 404);
    let error: Value = serde_json::from_str(&body).expect("a JSON error");
    assert_eq!(error["code"], "not_found");
    let (status, _, _) = http(addr, "GET", "/api/health", "").await;
    assert_eq!(status, 200);
}
