//! `/graphql`: queries, mutations and subscriptions over the same log and projections as the
//! WebSocket (ARCHITECTURE.md, "gateway"). `POST` answers queries and mutations, `GET` serves
//! GraphiQL, and a WebSocket upgrade on `GET` speaks `graphql-transport-ws` (and the older
//! `graphql-ws`) for subscriptions.
//!
//! Auth is PROTOCOL.md 3.1: the session cookie or a bearer header, or, on the WebSocket, a
//! `{"token": "..."}` payload in `connection_init`; no credentials get 401. Every session read
//! makes the owner check of the WebSocket (another user's session is `session_not_found`). Every
//! mutation is a canonical command: it goes through the WebSocket's frame decoder and
//! [`crate::commands::execute`] and returns the same ack. Subscriptions resume from an offset with
//! the guarantees of PROTOCOL.md 5.1: every later entry once, in order.
//!
//! The schema is checked in as `gateway/schema.graphql`; a test compares it with the one served.

use std::sync::Arc;

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{
    Context, Enum, ErrorExtensions, ID, InputObject, InputValueError, InputValueResult, Json,
    Object, Scalar, ScalarType, Schema, SimpleObject, Subscription,
};
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use octo_core::frame::{Ack, AckStatus, AgentFrame, ClientFrame, SessionSummary};
use octo_core::message::Role;
use octo_core::now_ms;
use octo_core::{Encoding, ErrorCode, Kind, LogEntry, Message, Offset, SessionId};
use octo_log::{LogFilter, ReadQuery, Subscription as LogSubscription, TypePattern};
use octo_projections::analytics::{Analytics, AnalyticsQuery, Dimension, Row};
use octo_projections::history::conversations::message_text;
use octo_projections::search::{HitFilter, SearchQuery};
use octo_projections::sessions::Sessions;
use serde_json::{Value, json};

use crate::auth::{authenticate, unauthorized};
use crate::server::SharedApp;
use crate::users::User;
use crate::view::View;

/// How deep a query may nest.
pub const DEPTH_MAX: usize = 12;

/// How much a query may ask for (each field costs 1, lists by their `first`/`limit`).
pub const COMPLEXITY_MAX: usize = 5000;

/// Page sizes.
const SESSIONS_PAGE_DEFAULT: usize = 50;
const SESSIONS_PAGE_MAX: usize = 500;
const LOG_PAGE_DEFAULT: usize = 200;
const LOG_PAGE_MAX: usize = 1000;
const SEARCH_LIMIT_MAX: usize = 100;

/// Octo's schema.
pub type OctoSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// The schema, with the app it reads.
pub fn schema(app: SharedApp) -> OctoSchema {
    Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
        .data(app)
        .limit_depth(DEPTH_MAX)
        .limit_complexity(COMPLEXITY_MAX)
        .finish()
}

/// The schema's SDL, as checked in.
pub fn sdl() -> String {
    Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
        .finish()
        .sdl()
}

// ---------------------------------------------------------------------------------------------
// HTTP and WebSocket.

/// `POST /graphql`.
pub async fn post(
    State(state): State<GraphqlState>,
    headers: HeaderMap,
    request: GraphQLRequest,
) -> Response {
    let Some(user) = authenticate(&state.app, &headers) else {
        return unauthorized();
    };
    let response: GraphQLResponse = state
        .schema
        .execute(request.into_inner().data(user))
        .await
        .into();
    response.into_response()
}

/// `GET /graphql`: a WebSocket upgrade for subscriptions, else GraphiQL.
pub async fn get(
    State(state): State<GraphqlState>,
    headers: HeaderMap,
    protocol: Result<GraphQLProtocol, axum::http::StatusCode>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let (Ok(upgrade), Ok(protocol)) = (upgrade, protocol) else {
        return Html(
            async_graphql::http::GraphiQLSource::build()
                .endpoint("/graphql")
                .subscription_endpoint("/graphql")
                .title("Octo GraphQL")
                .finish(),
        )
        .into_response();
    };
    // Credentials on the upgrade (cookie, bearer), or later in `connection_init`.
    let upgraded_as = authenticate(&state.app, &headers);
    let app = Arc::clone(&state.app);
    upgrade
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| {
            GraphQLWebSocket::new(socket, state.schema.clone(), protocol)
                .on_connection_init(move |payload: Value| async move {
                    let user = match payload.get("token").and_then(Value::as_str) {
                        Some(token) => app.users.by_token(token).ok().flatten(),
                        None => upgraded_as,
                    };
                    let Some(user) = user else {
                        return Err(async_graphql::Error::new(
                            "unauthorized: send {\"token\": \"...\"} in connection_init, or sign in",
                        ));
                    };
                    let mut data = async_graphql::Data::default();
                    data.insert(user);
                    Ok(data)
                })
                .serve()
        })
}

/// What the `/graphql` routes share.
#[derive(Clone)]
pub struct GraphqlState {
    pub app: SharedApp,
    pub schema: OctoSchema,
}

/// The `/graphql` routes.
pub fn router(app: SharedApp) -> axum::Router {
    let state = GraphqlState {
        schema: schema(Arc::clone(&app)),
        app,
    };
    axum::Router::new()
        .route("/graphql", axum::routing::get(get).post(post))
        .with_state(state)
}

// ---------------------------------------------------------------------------------------------
// Errors and context.

/// A protocol error as a GraphQL error: `extensions.code` is the section 13 code, `extensions.ref`
/// its `ref`.
fn protocol_error(error: octo_core::Error) -> async_graphql::Error {
    let code = serde_json::to_value(error.code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "internal".into());
    async_graphql::Error::new(error.message.clone()).extend_with(|_, extensions| {
        extensions.set("code", code.clone());
        if let Some(reference) = &error.reference {
            extensions.set("ref", reference.clone());
        }
    })
}

fn error(code: ErrorCode, message: impl Into<String>) -> async_graphql::Error {
    protocol_error(octo_core::Error::new(code, message))
}

fn unavailable(detail: impl std::fmt::Display) -> async_graphql::Error {
    error(ErrorCode::Unavailable, format!("{detail}; retry"))
}

fn app<'a>(ctx: &Context<'a>) -> &'a SharedApp {
    ctx.data_unchecked::<SharedApp>()
}

fn user<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a User> {
    ctx.data::<User>()
        .map_err(|_| error(ErrorCode::Internal, "no user on this request"))
}

fn session_id(id: &ID, field: &str) -> async_graphql::Result<SessionId> {
    id.parse::<SessionId>().map_err(|_| {
        protocol_error(
            octo_core::Error::new(ErrorCode::InvalidId, format!("{field} is not a session id"))
                .with_ref(field.to_owned()),
        )
    })
}

/// The caller's live session, or `session_not_found` (unknown, deleted and another user's alike).
async fn owned(
    ctx: &Context<'_>,
    id: &ID,
) -> async_graphql::Result<(SessionId, octo_projections::sessions::SessionRecord)> {
    let session_id = session_id(id, "sessionId")?;
    let user = user(ctx)?;
    match app(ctx).owned_session(&user.id, &session_id).await {
        Ok(Some(record)) => Ok((session_id, record)),
        Ok(None) => Err(protocol_error(
            octo_core::Error::new(
                ErrorCode::SessionNotFound,
                "no such session: unknown, deleted, or not yours",
            )
            .with_ref(session_id.to_string()),
        )),
        Err(e) => Err(unavailable(e)),
    }
}

fn check_after(app: &SharedApp, after: Offset) -> async_graphql::Result<()> {
    let head = app.log.head();
    if after > head {
        return Err(protocol_error(
            octo_core::Error::new(
                ErrorCode::InvalidOffset,
                format!("after {after} is beyond the log head {head}: start again from null"),
            )
            .with_ref("after"),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Scalars and small types.

/// A log offset: a position in the one log, increasing, never reused (PROTOCOL.md 2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetValue(pub Offset);

/// A log offset: a position in the one log, increasing, never reused.
#[Scalar(name = "Offset")]
impl ScalarType for OffsetValue {
    fn parse(value: async_graphql::Value) -> InputValueResult<Self> {
        let number = match &value {
            async_graphql::Value::Number(n) => n.as_u64(),
            async_graphql::Value::String(s) => s.parse::<u64>().ok(),
            _ => None,
        };
        number
            .and_then(|n| Offset::new(n).ok())
            .map(OffsetValue)
            .ok_or_else(|| InputValueError::custom("an offset is a non-negative integer"))
    }

    fn to_value(&self) -> async_graphql::Value {
        async_graphql::Value::Number(self.0.get().into())
    }
}

fn offset(value: Option<OffsetValue>) -> Offset {
    value.map_or(Offset::ZERO, |o| o.0)
}

/// A provider and model.
#[derive(Debug, Clone, SimpleObject, InputObject)]
#[graphql(input_name = "ModelInput")]
pub struct Model {
    pub provider: String,
    pub model_id: String,
}

impl From<octo_core::ModelRef> for Model {
    fn from(model: octo_core::ModelRef) -> Model {
        Model {
            provider: model.provider,
            model_id: model.model_id,
        }
    }
}

/// How hard the model thinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum ThinkingLevel {
    Off,
    Minimal,
    Low,
    Medium,
    High,
    Xhigh,
}

impl ThinkingLevel {
    fn wire(self) -> &'static str {
        match self {
            ThinkingLevel::Off => "off",
            ThinkingLevel::Minimal => "minimal",
            ThinkingLevel::Low => "low",
            ThinkingLevel::Medium => "medium",
            ThinkingLevel::High => "high",
            ThinkingLevel::Xhigh => "xhigh",
        }
    }
}

/// What a session's agent is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum RunState {
    Idle,
    Working,
    Error,
}

/// Commands or events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum EntryKind {
    Command,
    Event,
}

/// What a prompt does when the agent is already working.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum WhenBusy {
    /// Inject it into the running turn.
    Steer,
    /// Queue it for when the run ends.
    FollowUp,
}

/// A session's token use and cost.
#[derive(Debug, Clone, SimpleObject)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub cost_usd: f64,
}

/// A protocol error (PROTOCOL.md 13).
#[derive(Debug, Clone, SimpleObject)]
pub struct ProtocolError {
    pub code: String,
    pub message: String,
    #[graphql(name = "ref")]
    pub reference: Option<String>,
}

impl From<octo_core::Error> for ProtocolError {
    fn from(error: octo_core::Error) -> ProtocolError {
        ProtocolError {
            code: serde_json::to_value(error.code)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            message: error.message,
            reference: error.reference,
        }
    }
}

/// How a command was received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[graphql(name = "AckStatus")]
pub enum AckStatusValue {
    /// Durably appended at `offset`.
    Accepted,
    /// Already in the log under this `commandId`: nothing happened again.
    Duplicate,
    /// Nothing appended, nothing changed; see `error`.
    Rejected,
}

/// The answer to a command (PROTOCOL.md 4.1): exactly one per command.
#[derive(Debug, Clone, SimpleObject)]
#[graphql(name = "Ack")]
pub struct AckValue {
    pub command_id: ID,
    pub status: AckStatusValue,
    pub offset: Option<OffsetValue>,
    /// The entry's session: the new one for `createSession`, `fork` and `rerun`.
    pub session_id: Option<ID>,
    pub error: Option<ProtocolError>,
}

impl From<Ack> for AckValue {
    fn from(ack: Ack) -> AckValue {
        AckValue {
            command_id: ID(ack.command_id.to_string()),
            status: match ack.status {
                AckStatus::Accepted => AckStatusValue::Accepted,
                AckStatus::Duplicate => AckStatusValue::Duplicate,
                AckStatus::Rejected => AckStatusValue::Rejected,
            },
            offset: ack.offset.map(OffsetValue),
            session_id: ack.session_id.map(|id| ID(id.to_string())),
            error: ack.error.map(ProtocolError::from),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sessions.

/// Where a fork starts: its parent and the offset in the parent's view.
#[derive(Debug, Clone)]
pub struct ForkPointValue {
    session_id: SessionId,
    offset: Offset,
}

#[Object(name = "ForkPoint")]
impl ForkPointValue {
    async fn session_id(&self) -> ID {
        ID(self.session_id.to_string())
    }

    async fn offset(&self) -> OffsetValue {
        OffsetValue(self.offset)
    }

    /// The parent session (null once deleted).
    async fn session(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<SessionNode>> {
        let user = user(ctx)?;
        let record = app(ctx)
            .owned_session(&user.id, &self.session_id)
            .await
            .map_err(unavailable)?;
        Ok(record.map(|record| SessionNode(record.summary)))
    }
}

/// A session as the listing shows it.
#[derive(Debug, Clone)]
pub struct SessionNode(SessionSummary);

#[Object(name = "SessionSummary")]
impl SessionNode {
    async fn id(&self) -> ID {
        ID(self.0.session_id.to_string())
    }

    async fn title(&self) -> Option<&str> {
        self.0.title.as_deref()
    }

    /// The first 120 characters of the first user message.
    async fn preview(&self) -> &str {
        &self.0.preview
    }

    async fn harness(&self) -> &str {
        &self.0.harness
    }

    /// Relative to the user's workspaces root.
    async fn workspace(&self) -> &str {
        &self.0.workspace
    }

    /// Set for a fork: where it branched off.
    async fn parent(&self) -> Option<ForkPointValue> {
        self.0.parent.as_ref().map(|parent| ForkPointValue {
            session_id: parent.session_id,
            offset: parent.offset,
        })
    }

    async fn created_ms(&self) -> i64 {
        self.0.created_ms
    }

    async fn updated_ms(&self) -> i64 {
        self.0.updated_ms
    }

    /// The offset of the last entry that changed this summary.
    async fn updated_offset(&self) -> OffsetValue {
        OffsetValue(self.0.updated_offset)
    }

    async fn run_state(&self) -> RunState {
        match self.0.run_state {
            octo_core::frame::RunState::Idle => RunState::Idle,
            octo_core::frame::RunState::Working => RunState::Working,
            octo_core::frame::RunState::Error => RunState::Error,
        }
    }

    async fn model(&self) -> Option<Model> {
        self.0.model.clone().map(Model::from)
    }

    async fn message_count(&self) -> u32 {
        self.0.message_count
    }

    async fn usage(&self) -> Usage {
        let usage = &self.0.usage;
        Usage {
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cache_read_tokens: usage.cache_read_tokens,
            cache_write_tokens: usage.cache_write_tokens,
            cost_usd: usage.cost_usd,
        }
    }

    async fn deleted(&self) -> bool {
        self.0.deleted
    }

    /// The sessions forked from this one (the fork tree's next level).
    async fn forks(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<SessionNode>> {
        forks_of(ctx, &self.0.session_id).await
    }
}

async fn forks_of(
    ctx: &Context<'_>,
    session_id: &SessionId,
) -> async_graphql::Result<Vec<SessionNode>> {
    let app = app(ctx);
    let user = user(ctx)?;
    let children = Sessions::children(app.sessions.keyspace(), session_id).map_err(unavailable)?;
    let mut forks = Vec::with_capacity(children.len());
    for child in children {
        if let Some(record) =
            Sessions::owned(app.sessions.keyspace(), &user.id, &child).map_err(unavailable)?
        {
            forks.push(SessionNode(record.summary));
        }
    }
    Ok(forks)
}

/// A completed message (PROTOCOL.md 7), with where it sits in the log.
#[derive(Debug, Clone)]
pub struct MessageNode {
    message: Message,
    offset: Option<Offset>,
    fork_offset: Option<Offset>,
}

impl MessageNode {
    fn new(message: Message) -> MessageNode {
        MessageNode {
            message,
            offset: None,
            fork_offset: None,
        }
    }
}

#[Object(name = "Message")]
impl MessageNode {
    async fn id(&self) -> ID {
        ID(self.message.id.to_string())
    }

    /// The offset of the entry that completed it (null for the draft of the open run).
    async fn offset(&self) -> Option<OffsetValue> {
        self.offset.map(OffsetValue)
    }

    /// Where "fork here" on this message forks (PROTOCOL.md 9.2): a user message just before
    /// its prompt, an assistant message or tool result at the end of its run. Null while its run
    /// is open. Pass it to `fork` as `atOffset`.
    async fn fork_offset(&self) -> Option<OffsetValue> {
        self.fork_offset.map(OffsetValue)
    }

    /// `user`, `assistant` or `tool`.
    async fn role(&self) -> &'static str {
        match self.message.role {
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }

    /// The text parts, joined (the thinking when there is no text).
    async fn text(&self) -> String {
        message_text(&self.message)
    }

    /// Every part as the protocol has it: text, thinking, tool calls and results, images.
    async fn parts(&self) -> Json<Value> {
        Json(serde_json::to_value(&self.message.parts).unwrap_or(Value::Null))
    }

    async fn created_ms(&self) -> i64 {
        self.message.created_ms
    }

    async fn completed_ms(&self) -> Option<i64> {
        self.message.completed_ms
    }

    async fn provider(&self) -> Option<&str> {
        self.message.provider.as_deref()
    }

    async fn model_id(&self) -> Option<&str> {
        self.message.model_id.as_deref()
    }

    async fn stop_reason(&self) -> Option<String> {
        self.message
            .stop_reason
            .and_then(|reason| serde_json::to_value(reason).ok())
            .and_then(|v| v.as_str().map(str::to_owned))
    }

    /// The harness's message when the stop reason is `error` or `aborted`.
    async fn error(&self) -> Option<&str> {
        self.message.error.as_deref()
    }
}

/// The run in progress.
#[derive(Debug, Clone, SimpleObject)]
pub struct OpenRun {
    pub run_id: ID,
    /// `generating`, `tool_running`, `compacting` or `retrying`.
    pub phase: Json<Value>,
    /// The assistant message streaming now, as its deltas built it.
    pub draft: Option<MessageNode>,
}

/// A session as of an offset (the `snapshot` of PROTOCOL.md 5.5): subscribe to `sessionEvents`
/// after `asOf` to follow it with nothing missed and nothing twice.
pub struct SessionView {
    view: crate::app::Materialised,
}

#[Object(name = "Session")]
impl SessionView {
    async fn id(&self) -> ID {
        ID(self.view.result.session_id.to_string())
    }

    /// The offset the messages are exactly as of.
    async fn as_of(&self) -> OffsetValue {
        OffsetValue(self.view.result.as_of)
    }

    async fn summary(&self) -> SessionNode {
        SessionNode(self.view.result.summary.clone())
    }

    /// Completed messages, oldest first: the newest 200 below `before`.
    async fn messages(&self) -> Vec<MessageNode> {
        let view = &self.view;
        view.result
            .messages
            .iter()
            .enumerate()
            .map(|(i, message)| MessageNode {
                message: message.clone(),
                offset: view.offsets.get(i).copied(),
                fork_offset: view.fork_points.get(i).copied().flatten(),
            })
            .collect()
    }

    /// Pass as `before` for the page of older messages (null: none left).
    async fn next_before(&self) -> Option<OffsetValue> {
        self.view.result.next_before.map(OffsetValue)
    }

    async fn open_run(&self) -> Option<OpenRun> {
        self.view.result.open_run.as_ref().map(|run| OpenRun {
            run_id: ID(run.run_id.to_string()),
            phase: Json(serde_json::to_value(&run.phase).unwrap_or(Value::Null)),
            draft: run.draft.clone().map(MessageNode::new),
        })
    }

    /// Set for a fork: where it branched off.
    async fn parent(&self) -> Option<ForkPointValue> {
        self.view
            .result
            .summary
            .parent
            .as_ref()
            .map(|parent| ForkPointValue {
                session_id: parent.session_id,
                offset: parent.offset,
            })
    }

    async fn forks(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<SessionNode>> {
        forks_of(ctx, &self.view.result.session_id).await
    }
}

/// Which sessions `sessions` lists.
#[derive(Debug, Clone, Default, InputObject)]
pub struct SessionFilter {
    pub harness: Option<String>,
    pub run_state: Option<RunState>,
    /// Only forks (true) or only sessions that are not forks (false).
    pub forked: Option<bool>,
    /// Only the forks of this session.
    pub parent_id: Option<ID>,
    /// A case-insensitive substring of the title or preview.
    pub text: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Log entries.

/// One entry of the log (PROTOCOL.md 2.1).
#[derive(Debug, Clone)]
pub struct LogEntryNode(Arc<LogEntry>);

#[Object(name = "LogEntry")]
impl LogEntryNode {
    async fn offset(&self) -> OffsetValue {
        OffsetValue(self.0.offset)
    }

    async fn ts_ms(&self) -> i64 {
        self.0.ts_ms
    }

    /// The entry's own session (an inherited entry of a fork keeps its parent's).
    async fn session_id(&self) -> ID {
        ID(self.0.session_id.to_string())
    }

    async fn user_id(&self) -> &str {
        self.0.user_id.as_str()
    }

    async fn kind(&self) -> EntryKind {
        match self.0.kind {
            Kind::Command => EntryKind::Command,
            Kind::Event => EntryKind::Event,
        }
    }

    /// The body's `type`: `prompt`, `stream.text_delta`, `agent.idle`...
    #[graphql(name = "type")]
    async fn type_name(&self) -> &str {
        self.0.body.type_name()
    }

    async fn producer(&self) -> &str {
        self.0.producer.id.as_str()
    }

    async fn seq(&self) -> u64 {
        self.0.producer.seq
    }

    async fn command_id(&self) -> Option<ID> {
        self.0.command_id.map(|id| ID(id.to_string()))
    }

    /// The whole entry as PROTOCOL.md 2.1 spells it, `body` included.
    async fn json(&self) -> Json<Value> {
        Json(serde_json::to_value(&*self.0).unwrap_or(Value::Null))
    }

    /// The body alone.
    async fn body(&self) -> Json<Value> {
        Json(serde_json::to_value(&self.0.body).unwrap_or(Value::Null))
    }
}

/// Which entries `logEntries` and `logTail` return.
#[derive(Debug, Clone, Default, InputObject)]
pub struct LogEntryFilter {
    /// One session's view (a fork's includes its inherited entries); else all the user's
    /// sessions.
    pub session_id: Option<ID>,
    pub kind: Option<EntryKind>,
    /// Body types; `stream.*` matches a prefix.
    pub types: Option<Vec<String>>,
}

/// A page of log entries.
#[derive(SimpleObject)]
pub struct LogPage {
    pub entries: Vec<LogEntryNode>,
    /// Pass as `after` for the next page (null: the range is exhausted).
    pub next_after: Option<OffsetValue>,
}

/// The entries a filter selects: one session's view, or the user's whole log.
enum Selection {
    View(View, LogFilter),
    User(LogFilter),
}

async fn selection(
    ctx: &Context<'_>,
    filter: Option<LogEntryFilter>,
) -> async_graphql::Result<Selection> {
    let filter = filter.unwrap_or_default();
    let user = user(ctx)?;
    let mut log_filter = LogFilter::user(user.id.clone());
    log_filter.kind = filter.kind.map(|kind| match kind {
        EntryKind::Command => Kind::Command,
        EntryKind::Event => Kind::Event,
    });
    log_filter.types = filter
        .types
        .unwrap_or_default()
        .iter()
        .map(|t| TypePattern::parse(t))
        .collect();
    match &filter.session_id {
        Some(id) => {
            let (session_id, _) = owned(ctx, id).await?;
            let view = View::of(app(ctx), session_id).map_err(unavailable)?;
            Ok(Selection::View(view, log_filter))
        }
        None => Ok(Selection::User(log_filter)),
    }
}

/// Whether an entry passes the kind and type parts of a filter (a view is read whole).
fn passes(filter: &LogFilter, entry: &LogEntry) -> bool {
    filter.kind.is_none_or(|kind| kind == entry.kind)
        && (filter.types.is_empty()
            || filter
                .types
                .iter()
                .any(|t| t.matches(entry.body.type_name())))
}

// ---------------------------------------------------------------------------------------------
// Analytics and search.

/// What analytics rows are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum AnalyticsDimension {
    Day,
    /// The user (yours only, unless the server grows an operators' view).
    User,
    Harness,
    Provider,
    Model,
}

/// One analytics row: the totals of one group.
#[derive(Debug, Clone, SimpleObject)]
pub struct AnalyticsRow {
    /// `YYYY-MM-DD` (UTC), when grouped by day.
    pub day: Option<String>,
    /// The user's id, when grouped by user.
    pub user: Option<String>,
    pub harness: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub cost_usd: f64,
    /// Runs started.
    pub turns: u64,
    pub tool_calls: u64,
    pub tool_errors: u64,
    /// Milliseconds tools ran.
    pub tool_ms: u64,
    /// Milliseconds runs took.
    pub run_ms: u64,
    pub messages: u64,
}

impl From<Row> for AnalyticsRow {
    fn from(row: Row) -> AnalyticsRow {
        let t = row.totals;
        AnalyticsRow {
            day: row.day.map(octo_projections::analytics::date_of_day),
            user: row.user,
            harness: row.harness,
            provider: row.provider,
            model: row.model,
            input_tokens: t.input_tokens,
            output_tokens: t.output_tokens,
            cache_read_tokens: t.cache_read_tokens,
            cache_write_tokens: t.cache_write_tokens,
            cost_usd: t.cost_usd,
            turns: t.turns,
            tool_calls: t.tool_calls,
            tool_errors: t.tool_errors,
            tool_ms: t.tool_ms,
            run_ms: t.run_ms,
            messages: t.messages,
        }
    }
}

fn day_arg(value: Option<&str>, field: &str, default: u32) -> async_graphql::Result<u32> {
    match value {
        None => Ok(default),
        Some(text) => octo_projections::analytics::day_of_date(text).ok_or_else(|| {
            protocol_error(
                octo_core::Error::new(
                    ErrorCode::InvalidField,
                    format!("{field} is a date, YYYY-MM-DD"),
                )
                .with_ref(field.to_owned()),
            )
        }),
    }
}

/// A search hit: a message (or a session's title) that matches.
#[derive(Debug, Clone, SimpleObject)]
pub struct SearchHit {
    pub session_id: ID,
    /// The message's id; null for a title hit.
    pub message_id: Option<ID>,
    /// `user`, `assistant`, `tool_result`, or `title`.
    pub role: String,
    /// The matching text around the words found, `<b>`-marked.
    pub snippet: String,
    pub created_ms: Option<i64>,
    /// Higher is better.
    pub score: f64,
    pub session: Option<SessionNode>,
}

// ---------------------------------------------------------------------------------------------
// Query.

/// Reads.
pub struct QueryRoot;

#[Object]
impl QueryRoot {
    /// Who is asking.
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<Me> {
        let user = user(ctx)?;
        Ok(Me {
            id: ID(user.id.to_string()),
            name: user.name.clone(),
        })
    }

    /// The log's head: the newest offset.
    async fn head(&self, ctx: &Context<'_>) -> OffsetValue {
        OffsetValue(app(ctx).log.head())
    }

    /// Each projection's version and how far it has applied the log.
    async fn projections(&self, ctx: &Context<'_>) -> Vec<ProjectionStatus> {
        let app = app(ctx);
        let head = app.log.head();
        let applied = app.searcher.applied();
        vec![
            status(&app.sessions, head),
            status(&app.ui, head),
            status(&app.history, head),
            status(&app.analytics, head),
            ProjectionStatus {
                name: "search".into(),
                version: octo_projections::search::VERSION,
                applied: OffsetValue(applied),
                behind: head.get().saturating_sub(applied.get()),
            },
        ]
    }

    /// Your sessions, most recently updated first. Page with `after` (an edge's cursor).
    #[graphql(complexity = "first.unwrap_or(50) * child_complexity")]
    async fn sessions(
        &self,
        ctx: &Context<'_>,
        filter: Option<SessionFilter>,
        #[graphql(validator(minimum = 1, maximum = 500))] first: Option<usize>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, SessionNode, EmptyFields, EmptyFields>> {
        let app = app(ctx);
        let user = user(ctx)?;
        let first = first
            .unwrap_or(SESSIONS_PAGE_DEFAULT)
            .min(SESSIONS_PAGE_MAX);
        let before = after.as_deref().map(parse_cursor).transpose()?;
        let filter = filter.unwrap_or_default();
        let parent = filter
            .parent_id
            .as_ref()
            .map(|id| session_id(id, "parentId"))
            .transpose()?;
        let text = filter.text.as_ref().map(|t| t.to_lowercase());
        app.sessions
            .wait_for(app.log.head(), crate::app::READ_YOUR_WRITES)
            .await
            .map_err(unavailable)?;
        let keep = |record: &octo_projections::sessions::SessionRecord| {
            let summary = &record.summary;
            filter
                .harness
                .as_ref()
                .is_none_or(|h| &summary.harness == h)
                && filter.run_state.is_none_or(|state| {
                    matches!(
                        (state, summary.run_state),
                        (RunState::Idle, octo_core::frame::RunState::Idle)
                            | (RunState::Working, octo_core::frame::RunState::Working)
                            | (RunState::Error, octo_core::frame::RunState::Error)
                    )
                })
                && filter
                    .forked
                    .is_none_or(|forked| forked == summary.parent.is_some())
                && parent.is_none_or(|p| summary.parent.as_ref().map(|r| r.session_id) == Some(p))
                && text.as_ref().is_none_or(|text| {
                    summary.preview.to_lowercase().contains(text)
                        || summary
                            .title
                            .as_ref()
                            .is_some_and(|title| title.to_lowercase().contains(text))
                })
        };
        let mut page =
            Sessions::newest_first(app.sessions.keyspace(), &user.id, before, first + 1, keep)
                .map_err(unavailable)?;
        let more = page.len() > first;
        page.truncate(first);
        let mut connection = Connection::new(before.is_some(), more);
        connection.edges.extend(page.into_iter().map(|summary| {
            Edge::new(
                format!("{}:{}", summary.updated_offset, summary.session_id),
                SessionNode(summary),
            )
        }));
        Ok(connection)
    }

    /// One session as of now (or as of at least `at`), with its newest 200 messages below
    /// `before`: the `snapshot` of the WebSocket.
    async fn session(
        &self,
        ctx: &Context<'_>,
        id: ID,
        at: Option<OffsetValue>,
        before: Option<OffsetValue>,
    ) -> async_graphql::Result<SessionView> {
        let (session_id, _) = owned(ctx, &id).await?;
        let req = octo_core::ReqId::new("graphql").map_err(unavailable)?;
        let view = app(ctx)
            .snapshot_at(req, session_id, at.map(|a| a.0), before.map(|b| b.0), true)
            .await
            .map_err(protocol_error)?;
        Ok(SessionView { view })
    }

    /// Full-text search over your messages and session titles, best first.
    async fn search(
        &self,
        ctx: &Context<'_>,
        query: String,
        #[graphql(validator(minimum = 1, maximum = 100))] limit: Option<usize>,
    ) -> async_graphql::Result<Vec<SearchHit>> {
        let app = app(ctx);
        let user = user(ctx)?;
        let parsed = SearchQuery::parse(&query, 0).map_err(|e| {
            protocol_error(
                octo_core::Error::new(ErrorCode::InvalidField, e.to_string()).with_ref("query"),
            )
        })?;
        app.searcher
            .wait_for(app.log.head(), crate::app::READ_YOUR_WRITES)
            .await
            .map_err(unavailable)?;
        let hits = app
            .searcher
            .search(
                &parsed,
                &HitFilter {
                    user: user.id.clone(),
                    role: None,
                    after_ms: None,
                    before_ms: None,
                    titles: true,
                },
            )
            .map_err(unavailable)?;
        let mut out = Vec::new();
        for hit in hits
            .into_iter()
            .take(limit.unwrap_or(20).min(SEARCH_LIMIT_MAX))
        {
            let session = Sessions::owned(app.sessions.keyspace(), &user.id, &hit.conversation)
                .map_err(unavailable)?;
            let Some(session) = session else {
                continue;
            };
            out.push(SearchHit {
                session_id: ID(hit.conversation.to_string()),
                message_id: (!hit.title).then(|| ID(hit.message_id.clone())),
                role: if hit.title {
                    "title".into()
                } else {
                    hit.role.clone()
                },
                snippet: app.searcher.snippet(&parsed, &hit.content),
                created_ms: hit.created_ms,
                score: -f64::from(hit.score),
                session: Some(SessionNode(session.summary)),
            });
        }
        Ok(out)
    }

    /// Your tokens, cost, turns, tool calls and time, per group, over a range of UTC days
    /// (default: the last 30).
    async fn analytics(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "vec![AnalyticsDimension::Day]")] group_by: Vec<
            AnalyticsDimension,
        >,
        from: Option<String>,
        to: Option<String>,
    ) -> async_graphql::Result<Vec<AnalyticsRow>> {
        let app = app(ctx);
        let user = user(ctx)?;
        let today = octo_projections::analytics::day_of(now_ms());
        let to_day = day_arg(to.as_deref(), "to", today)?;
        let from_day = day_arg(from.as_deref(), "from", to_day.saturating_sub(29))?;
        app.analytics
            .wait_for(app.log.head(), crate::app::READ_YOUR_WRITES)
            .await
            .map_err(unavailable)?;
        let query = AnalyticsQuery {
            user: Some(user.id.clone()),
            from_day,
            to_day,
            group_by: group_by
                .iter()
                .map(|d| match d {
                    AnalyticsDimension::Day => Dimension::Day,
                    AnalyticsDimension::User => Dimension::User,
                    AnalyticsDimension::Harness => Dimension::Harness,
                    AnalyticsDimension::Provider => Dimension::Provider,
                    AnalyticsDimension::Model => Dimension::Model,
                })
                .collect(),
        };
        let rows = Analytics::query(&app.store.snapshot(), app.analytics.keyspace(), &query)
            .map_err(unavailable)?;
        Ok(rows.into_iter().map(AnalyticsRow::from).collect())
    }

    /// Log entries after `after` (oldest first, at most `limit`): one session's view, or all of
    /// yours. The range of `replay` and `octoctl log tail`.
    #[graphql(complexity = "limit.unwrap_or(200) * child_complexity")]
    async fn log_entries(
        &self,
        ctx: &Context<'_>,
        filter: Option<LogEntryFilter>,
        after: Option<OffsetValue>,
        until: Option<OffsetValue>,
        #[graphql(validator(minimum = 1, maximum = 1000))] limit: Option<usize>,
    ) -> async_graphql::Result<LogPage> {
        let app = app(ctx);
        let after = offset(after);
        check_after(app, after)?;
        let limit = limit.unwrap_or(LOG_PAGE_DEFAULT).min(LOG_PAGE_MAX);
        let until = until.map(|u| u.0);
        let batch = match selection(ctx, filter).await? {
            Selection::View(view, filter) => {
                let mut batch = view
                    .read(app.log.as_ref(), after, until, limit)
                    .await
                    .map_err(unavailable)?;
                batch.entries.retain(|entry| passes(&filter, entry));
                batch
            }
            Selection::User(filter) => app
                .log
                .read(ReadQuery {
                    filter,
                    after,
                    until,
                    limit,
                })
                .await
                .map_err(unavailable)?,
        };
        let next_after = if batch.reached_end {
            None
        } else {
            Some(OffsetValue(
                batch.entries.last().map_or(batch.scanned_through, |entry| {
                    entry.offset.max(batch.scanned_through)
                }),
            ))
        };
        Ok(LogPage {
            entries: batch.entries.into_iter().map(LogEntryNode).collect(),
            next_after,
        })
    }
}

/// One projection's progress through the log.
#[derive(SimpleObject)]
pub struct ProjectionStatus {
    pub name: String,
    /// Its schema version: a new one rebuilds from offset 0.
    pub version: u32,
    /// The newest offset it has applied.
    pub applied: OffsetValue,
    /// Entries of the log it has yet to apply.
    pub behind: u64,
}

fn status<P: octo_projections::Projection>(
    handle: &octo_projections::ProjectionHandle<P>,
    head: Offset,
) -> ProjectionStatus {
    let applied = handle.applied();
    ProjectionStatus {
        name: P::NAME.to_owned(),
        version: P::VERSION,
        applied: OffsetValue(applied),
        behind: head.get().saturating_sub(applied.get()),
    }
}

/// The signed-in user.
#[derive(SimpleObject)]
pub struct Me {
    pub id: ID,
    pub name: String,
}

fn parse_cursor(cursor: &str) -> async_graphql::Result<(Offset, SessionId)> {
    let bad = || {
        protocol_error(
            octo_core::Error::new(ErrorCode::InvalidField, "not a cursor of this listing")
                .with_ref("after"),
        )
    };
    let (offset, session) = cursor.split_once(':').ok_or_else(bad)?;
    let offset = offset
        .parse::<u64>()
        .ok()
        .and_then(|n| Offset::new(n).ok())
        .ok_or_else(bad)?;
    let session = session.parse::<SessionId>().map_err(|_| bad())?;
    Ok((offset, session))
}

// ---------------------------------------------------------------------------------------------
// Mutations: the canonical commands.

/// An image for a prompt.
#[derive(Debug, Clone, InputObject)]
pub struct ImageInput {
    /// `image/png`, `image/jpeg`, `image/gif` or `image/webp`.
    pub media_type: String,
    /// Base64.
    pub data: String,
}

/// Runs a command as the WebSocket would: the same decoder, checks and ack.
async fn command(
    ctx: &Context<'_>,
    command_id: &ID,
    session_id: Option<&ID>,
    body: Value,
) -> async_graphql::Result<AckValue> {
    let app = app(ctx);
    let user = user(ctx)?;
    let mut frame = body;
    frame["ch"] = json!("agent");
    frame["command_id"] = json!(command_id.as_str());
    if let Some(session_id) = session_id {
        frame["session_id"] = json!(session_id.as_str());
    }
    let bytes = serde_json::to_vec(&frame).map_err(unavailable)?;
    let decoded = octo_core::frame::decode_client_frame_with_limit(
        Encoding::Json,
        &bytes,
        app.max_frame_bytes,
    )
    .map_err(|e| protocol_error(e.to_error()))?;
    let ClientFrame::Agent(AgentFrame::Command(frame)) = decoded else {
        return Err(error(
            ErrorCode::Internal,
            "a mutation built a frame that is not a command",
        ));
    };
    Ok(crate::commands::execute(app, &user.id, frame).await.into())
}

/// Writes: each canonical command, taking your `commandId` (a UUIDv7: re-sending the same id has
/// no second effect) and returning its ack.
pub struct MutationRoot;

#[Object]
impl MutationRoot {
    /// A new session of `harness` in `workspace` (relative to your workspaces root).
    #[allow(clippy::too_many_arguments)]
    async fn create_session(
        &self,
        ctx: &Context<'_>,
        command_id: ID,
        #[graphql(default = "pi")] harness: String,
        #[graphql(default = ".")] workspace: String,
        model: Option<Model>,
        thinking_level: Option<ThinkingLevel>,
        title: Option<String>,
    ) -> async_graphql::Result<AckValue> {
        let mut body =
            json!({"type": "session.create", "harness": harness, "workspace": workspace});
        if let Some(model) = model {
            body["model"] = json!({"provider": model.provider, "model_id": model.model_id});
        }
        if let Some(level) = thinking_level {
            body["thinking_level"] = json!(level.wire());
        }
        if let Some(title) = title {
            body["title"] = json!(title);
        }
        command(ctx, &command_id, None, body).await
    }

    async fn rename_session(
        &self,
        ctx: &Context<'_>,
        command_id: ID,
        session_id: ID,
        title: String,
    ) -> async_graphql::Result<AckValue> {
        command(
            ctx,
            &command_id,
            Some(&session_id),
            json!({"type": "session.rename", "title": title}),
        )
        .await
    }

    async fn delete_session(
        &self,
        ctx: &Context<'_>,
        command_id: ID,
        session_id: ID,
    ) -> async_graphql::Result<AckValue> {
        command(
            ctx,
            &command_id,
            Some(&session_id),
            json!({"type": "session.delete"}),
        )
        .await
    }

    /// A new session whose view is `sessionId`'s up to `atOffset` (not inside a run); the ack
    /// names the new session.
    async fn fork(
        &self,
        ctx: &Context<'_>,
        command_id: ID,
        session_id: ID,
        at_offset: OffsetValue,
        title: Option<String>,
    ) -> async_graphql::Result<AckValue> {
        let mut body = json!({"type": "fork", "at_offset": at_offset.0.get()});
        if let Some(title) = title {
            body["title"] = json!(title);
        }
        command(ctx, &command_id, Some(&session_id), body).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn prompt(
        &self,
        ctx: &Context<'_>,
        command_id: ID,
        session_id: ID,
        text: String,
        images: Option<Vec<ImageInput>>,
        files: Option<Vec<String>>,
        when_busy: Option<WhenBusy>,
    ) -> async_graphql::Result<AckValue> {
        let mut body = json!({"type": "prompt", "text": text});
        if let Some(images) = images {
            body["images"] = images
                .into_iter()
                .map(|image| json!({"media_type": image.media_type, "data": image.data}))
                .collect();
        }
        if let Some(files) = files {
            body["files"] = json!(files);
        }
        if let Some(when_busy) = when_busy {
            body["when_busy"] = json!(match when_busy {
                WhenBusy::Steer => "steer",
                WhenBusy::FollowUp => "follow_up",
            });
        }
        command(ctx, &command_id, Some(&session_id), body).await
    }

    async fn abort(
        &self,
        ctx: &Context<'_>,
        command_id: ID,
        session_id: ID,
    ) -> async_graphql::Result<AckValue> {
        command(
            ctx,
            &command_id,
            Some(&session_id),
            json!({"type": "abort"}),
        )
        .await
    }

    async fn set_model(
        &self,
        ctx: &Context<'_>,
        command_id: ID,
        session_id: ID,
        provider: String,
        model_id: String,
    ) -> async_graphql::Result<AckValue> {
        command(
            ctx,
            &command_id,
            Some(&session_id),
            json!({"type": "set_model", "provider": provider, "model_id": model_id}),
        )
        .await
    }

    async fn set_thinking_level(
        &self,
        ctx: &Context<'_>,
        command_id: ID,
        session_id: ID,
        level: ThinkingLevel,
    ) -> async_graphql::Result<AckValue> {
        command(
            ctx,
            &command_id,
            Some(&session_id),
            json!({"type": "set_thinking_level", "level": level.wire()}),
        )
        .await
    }

    async fn compact(
        &self,
        ctx: &Context<'_>,
        command_id: ID,
        session_id: ID,
        instructions: Option<String>,
    ) -> async_graphql::Result<AckValue> {
        let mut body = json!({"type": "compact"});
        if let Some(instructions) = instructions {
            body["instructions"] = json!(instructions);
        }
        command(ctx, &command_id, Some(&session_id), body).await
    }

    /// A new session like `sessionId` (same harness and workspace) on `model` (default: the
    /// source's), whose prompts are the source's prompts, sent one after another as each run
    /// ends. Its `session.created` records `rerun_of`; the ack names the new session.
    async fn rerun(
        &self,
        ctx: &Context<'_>,
        command_id: ID,
        session_id: ID,
        model: Option<Model>,
        title: Option<String>,
    ) -> async_graphql::Result<AckValue> {
        let user = user(ctx)?;
        let command_id = command_id.parse::<octo_core::CommandId>().map_err(|_| {
            protocol_error(
                octo_core::Error::new(ErrorCode::InvalidId, "commandId is not a UUIDv7")
                    .with_ref("command_id"),
            )
        })?;
        let source = self::session_id(&session_id, "sessionId")?;
        let model = model.map(|model| octo_core::ModelRef {
            provider: model.provider,
            model_id: model.model_id,
        });
        Ok(
            crate::commands::rerun(app(ctx), &user.id, command_id, source, model, title)
                .await
                .into(),
        )
    }

    /// Answers an extension's input request with exactly one of `value`, `confirmed`,
    /// `cancelled`.
    #[allow(clippy::too_many_arguments)]
    async fn respond_input(
        &self,
        ctx: &Context<'_>,
        command_id: ID,
        session_id: ID,
        request_id: String,
        value: Option<String>,
        confirmed: Option<bool>,
        cancelled: Option<bool>,
    ) -> async_graphql::Result<AckValue> {
        let mut body = json!({"type": "input.respond", "request_id": request_id});
        if let Some(value) = value {
            body["value"] = json!(value);
        }
        if let Some(confirmed) = confirmed {
            body["confirmed"] = json!(confirmed);
        }
        if let Some(cancelled) = cancelled {
            body["cancelled"] = json!(cancelled);
        }
        command(ctx, &command_id, Some(&session_id), body).await
    }
}

// ---------------------------------------------------------------------------------------------
// Subscriptions.

/// Live streams, each resuming exactly once from an offset.
pub struct SubscriptionRoot;

type EntryResults =
    std::pin::Pin<Box<dyn Stream<Item = async_graphql::Result<LogEntryNode>> + Send>>;

fn entries(stream: crate::view::EntryStream, filter: Option<LogFilter>) -> EntryResults {
    Box::pin(stream.filter_map(move |item| {
        let keep = match (&item, &filter) {
            (Ok(entry), Some(filter)) => passes(filter, entry),
            _ => true,
        };
        async move {
            if !keep {
                return None;
            }
            Some(item.map(LogEntryNode).map_err(unavailable))
        }
    }))
}

#[Subscription]
impl SubscriptionRoot {
    /// Every entry of a session's view after `after` (null: from its first), then live.
    async fn session_events(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
        after: Option<OffsetValue>,
    ) -> async_graphql::Result<EntryResults> {
        let (session_id, _) = owned(ctx, &session_id).await?;
        let app = app(ctx);
        let after = offset(after);
        check_after(app, after)?;
        let view = View::of(app, session_id).map_err(unavailable)?;
        let own = LogSubscription::new(
            Arc::clone(&app.log),
            LogFilter::session(session_id),
            after,
            app.queue_bound,
        )
        .map_err(unavailable)?;
        Ok(entries(view.stream(Arc::clone(&app.log), after, own), None))
    }

    /// Your log: every entry of your sessions after `after` that passes `filter`, then live.
    async fn log_tail(
        &self,
        ctx: &Context<'_>,
        filter: Option<LogEntryFilter>,
        after: Option<OffsetValue>,
    ) -> async_graphql::Result<EntryResults> {
        let app = Arc::clone(app(ctx));
        let after = offset(after);
        check_after(&app, after)?;
        match selection(ctx, filter).await? {
            Selection::View(view, filter) => {
                let own = LogSubscription::new(
                    Arc::clone(&app.log),
                    LogFilter::session(view.session_id()),
                    after,
                    app.queue_bound,
                )
                .map_err(unavailable)?;
                Ok(entries(
                    view.stream(Arc::clone(&app.log), after, own),
                    Some(filter),
                ))
            }
            Selection::User(filter) => {
                let subscription =
                    LogSubscription::new(Arc::clone(&app.log), filter, after, app.queue_bound)
                        .map_err(unavailable)?;
                Ok(entries(
                    crate::view::subscription_stream(subscription),
                    None,
                ))
            }
        }
    }

    /// Your sessions' summaries that change after `after` (null: all of them first), as they
    /// change. Resume with the greatest `updatedOffset` seen.
    async fn sessions_changed(
        &self,
        ctx: &Context<'_>,
        after: Option<OffsetValue>,
    ) -> async_graphql::Result<
        std::pin::Pin<Box<dyn Stream<Item = async_graphql::Result<SessionNode>> + Send>>,
    > {
        let app = Arc::clone(app(ctx));
        let user = user(ctx)?.id.clone();
        let after = offset(after);
        check_after(&app, after)?;
        let initial = crate::listing::changed_since(&app, &user, after)
            .await
            .map_err(protocol_error)?;
        let cursor = initial
            .iter()
            .map(|summary| summary.updated_offset)
            .fold(after, Offset::max);
        let live = crate::listing::changes(app, user, cursor);
        Ok(Box::pin(
            futures_util::stream::iter(initial.into_iter().map(Ok))
                .chain(live)
                .map(|item| item.map(SessionNode).map_err(protocol_error)),
        ))
    }
}
