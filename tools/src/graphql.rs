//! A small client of Octo's GraphQL over HTTP (`POST /graphql` with a bearer token), on hyper:
//! `octoctl` and the tests use it.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// Why a GraphQL request failed.
#[derive(Debug, thiserror::Error)]
pub enum GraphqlError {
    #[error("cannot reach {url}: {detail}")]
    Connect { url: String, detail: String },
    #[error("the server answered {status}: {body}")]
    Status { status: StatusCode, body: String },
    #[error("{message}")]
    Graphql {
        /// The section 13 code in `extensions.code`, when the server gave one.
        code: Option<String>,
        message: String,
    },
    #[error("cannot decode the answer: {0}")]
    Decode(String),
}

impl GraphqlError {
    /// The protocol error code, for a GraphQL error that carries one.
    pub fn code(&self) -> Option<&str> {
        match self {
            GraphqlError::Graphql { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}

/// `host:port` and the path prefix of `http://host:port[/...]`.
fn authority(base: &str) -> Result<String, GraphqlError> {
    let rest = base
        .trim_end_matches('/')
        .strip_prefix("http://")
        .ok_or_else(|| GraphqlError::Connect {
            url: base.to_owned(),
            detail: "only http:// URLs are served (Octo listens on loopback)".into(),
        })?;
    Ok(rest.split('/').next().unwrap_or(rest).to_owned())
}

/// One keep-alive HTTP/1.1 connection to `/graphql`.
pub struct GraphqlClient {
    base: String,
    host: String,
    token: String,
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl GraphqlClient {
    /// Connects to `base` (`http://host:port`) as the owner of `token`.
    ///
    /// # Errors
    /// [`GraphqlError::Connect`].
    pub async fn connect(base: &str, token: &str) -> Result<GraphqlClient, GraphqlError> {
        let host = authority(base)?;
        let connect_error = |detail: String| GraphqlError::Connect {
            url: base.to_owned(),
            detail,
        };
        let stream = tokio::net::TcpStream::connect(&host)
            .await
            .map_err(|e| connect_error(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| connect_error(e.to_string()))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(GraphqlClient {
            base: base.to_owned(),
            host,
            token: token.to_owned(),
            sender,
        })
    }

    /// Runs `query` with `variables`; returns `data`, or the first error.
    ///
    /// # Errors
    /// [`GraphqlError`].
    pub async fn request(&mut self, query: &str, variables: Value) -> Result<Value, GraphqlError> {
        let connect_error = |detail: String| GraphqlError::Connect {
            url: self.base.clone(),
            detail,
        };
        let body = json!({"query": query, "variables": variables}).to_string();
        let request = Request::post("/graphql")
            .header(header::HOST, &self.host)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| connect_error(e.to_string()))?;
        self.sender
            .ready()
            .await
            .map_err(|e| connect_error(e.to_string()))?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| connect_error(e.to_string()))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| connect_error(e.to_string()))?
            .to_bytes();
        if status != StatusCode::OK {
            return Err(GraphqlError::Status {
                status,
                body: String::from_utf8_lossy(&bytes).into_owned(),
            });
        }
        let mut answer: Value =
            serde_json::from_slice(&bytes).map_err(|e| GraphqlError::Decode(e.to_string()))?;
        if let Some(error) = answer["errors"]
            .as_array()
            .and_then(|errors| errors.first())
        {
            return Err(GraphqlError::Graphql {
                code: error["extensions"]["code"].as_str().map(str::to_owned),
                message: error["message"].as_str().unwrap_or("an error").to_owned(),
            });
        }
        Ok(answer["data"].take())
    }
}

/// Runs `query` with `variables` as the owner of `token` against `base` (`http://host:port`)
/// on a connection of its own; returns `data`, or the first error.
///
/// # Errors
/// [`GraphqlError`].
pub async fn request(
    base: &str,
    token: &str,
    query: &str,
    variables: Value,
) -> Result<Value, GraphqlError> {
    GraphqlClient::connect(base, token)
        .await?
        .request(query, variables)
        .await
}
