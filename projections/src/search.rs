//! The `search` projection: full-text over message content and conversation titles with tantivy,
//! ranked by BM25, with snippets, filtered by user. Its applied offset is the payload of its last
//! commit, so after a crash it resumes from the last commit and re-applies (every change is a
//! delete-then-add by key, so re-applying is harmless).
//!
//! One document per message (keyed by message id: a rewrite of an hstry message replaces it) and
//! one per titled conversation. A fork's inherited messages are not indexed again: a message is
//! found once, under the conversation where it was written. Content is indexed twice, the way
//! hstry's two search modes read it (HSTRY_API.md 6.1):
//! - natural: words, lowercased, English (Porter) stemming;
//! - code: runs of letters, digits and `_ . / :`, lowercased, so `src/foo_bar.rs` is one token.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use octo_core::history::TextOrBlob;
use octo_core::{Body, Event, Kind, LogEntry, Offset, SessionId, UserId};
use octo_log::{EventLog, LogFilter, QueueBound, ReadQuery, Subscription, TypePattern};
use tantivy::collector::TopDocs;
use tantivy::query::{
    BooleanQuery, Occur, PhrasePrefixQuery, PhraseQuery, Query, RegexQuery, TermQuery,
};
use tantivy::schema::{
    Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value as _,
};
use tantivy::tokenizer::{
    LowerCaser, SimpleTokenizer, TextAnalyzer, Token, TokenFilter, TokenStream, Tokenizer,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};
use tokio::sync::{Notify, watch};

use crate::history::conversations::message_text;
use crate::projector::WaitError;

/// Bumped whenever what is indexed changes: a new version rebuilds from offset 0.
pub const VERSION: u32 = 1;

/// The writer's memory budget.
pub const WRITER_MEMORY_BYTES: usize = 64 << 20;

/// Entries folded into one commit at most. Larger than the fjall projections' batches: every
/// commit makes a segment that background merges must fold in again, so catching up in big
/// commits keeps merging from competing with searches afterwards.
pub const COMMIT_ENTRIES_MAX: usize = 8_192;

/// Least time between two commits while changes keep coming, unless a reader is waiting for
/// them: each commit writes a segment (from fresh indexing arenas) that merges fold in again, so
/// a busy log committed entry by entry spent a third of the server's CPU in tantivy, and at
/// four commits a second the fresh arenas' page faults still showed beside a 1,000-socket
/// fan-out. Readers that need a change wait for it and get it at once.
pub const COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// Entries read per page while catching up (only those of [`INDEXED_TYPES`] count).
pub const CATCH_UP_PAGE_ENTRIES: usize = 4_096;

/// Changes staged at most between two commits while catching up: the work a crash makes the next
/// start redo. The writer's memory budget, not this, bounds what indexing holds in memory.
pub const CATCH_UP_COMMIT_CHANGES: usize = 262_144;

/// The event types that change the index (an entry of any other changes nothing): catching
/// up reads only these, skipping the rest of the log by the record's header.
pub const INDEXED_TYPES: &[&str] = &[
    "message.created",
    "stream.message_end",
    "history.message_upserted",
    "session.created",
    "session.forked",
    "session.renamed",
    "history.conversation_upserted",
    "history.conversation_updated",
    "session.deleted",
    "history.conversation_deleted",
];

/// Tokens shown around the first match in a snippet.
pub const SNIPPET_TOKENS: usize = 12;

const NATURAL: &str = "octo_natural";
const CODE: &str = "octo_code";
const KIND_MESSAGE: &str = "message";
const KIND_TITLE: &str = "title";

/// Why search failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SearchError {
    /// Caller error: the query leaves nothing to match.
    #[error("{0}")]
    Query(String),
    /// Stop: the index failed (disk, or damage).
    #[error("search index: {0}")]
    Index(String),
    /// Stop: the log could not be read.
    #[error("search projector reading the log: {0}")]
    Log(String),
}

fn index_error(e: impl std::fmt::Display) -> SearchError {
    SearchError::Index(e.to_string())
}

/// How a query's tokens are read (hstry's SearchMode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Natural,
    Code,
}

/// One whitespace-separated token of a query: a literal phrase, or a prefix when it ended in `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct QueryToken {
    text: String,
    prefix: bool,
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    mode: Mode,
    tokens: Vec<QueryToken>,
}

impl SearchQuery {
    /// Parses hstry's query text. `mode` is hstry's SearchMode number: 1 natural, 2 code, anything
    /// else auto (code when the text looks like code, HSTRY_API.md 6.1).
    ///
    /// # Errors
    /// [`SearchError::Query`] when nothing is left to match.
    pub fn parse(text: &str, mode: i32) -> Result<SearchQuery, SearchError> {
        let mode = match mode {
            1 => Mode::Natural,
            2 => Mode::Code,
            _ if looks_like_code(text) => Mode::Code,
            _ => Mode::Natural,
        };
        let tokens: Vec<QueryToken> = text
            .split_whitespace()
            .filter_map(|token| {
                let (text, prefix) = match token.strip_suffix('*') {
                    Some(stem) => (stem.trim_end_matches('*'), true),
                    None => (token, false),
                };
                (!text.is_empty()).then(|| QueryToken {
                    text: text.to_owned(),
                    prefix,
                })
            })
            .collect();
        if tokens.is_empty() {
            return Err(SearchError::Query(
                "the query is empty: give at least one word".to_owned(),
            ));
        }
        Ok(SearchQuery { mode, tokens })
    }

    /// The mode the query was read in.
    pub fn mode(&self) -> Mode {
        self.mode
    }
}

fn looks_like_code(text: &str) -> bool {
    if ["/", "\\", "::", "->", "_", "."]
        .iter()
        .any(|marker| text.contains(marker))
    {
        return true;
    }
    text.chars()
        .zip(text.chars().skip(1))
        .any(|(a, b)| a.is_lowercase() && b.is_uppercase())
}

fn natural_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(LowerCaser)
        .filter(CachedStemmer::default())
        .build()
}

/// English (Porter 2) stemming, as tantivy's `Stemmer` does it, remembering the stems of the
/// words it saw: words repeat (a few thousand make up most of any text), and stemming each
/// occurrence again was a third of indexing time.
#[derive(Clone, Default)]
struct CachedStemmer {
    stems: StemCache,
}

/// Word -> stem. Emptied when full: a long tail of rare words cannot grow it without bound.
#[derive(Clone, Default)]
struct StemCache(std::collections::HashMap<Box<str>, Box<str>, foldhash::fast::RandomState>);

/// Words the cache holds at most.
const STEMS_CACHED_MAX: usize = 16_384;
/// Longer words are stemmed every time (they are rare, and would make the cache heavy).
const STEM_CACHED_BYTES_MAX: usize = 24;

impl StemCache {
    /// Replaces `word` with its stem.
    fn stem(&mut self, stemmer: &frostem::Stemmer, word: &mut String) {
        if let Some(stem) = self.0.get(word.as_str()) {
            word.clear();
            word.push_str(stem);
            return;
        }
        let stem = stemmer.stem(word).into_owned();
        if word.len() <= STEM_CACHED_BYTES_MAX {
            if self.0.len() >= STEMS_CACHED_MAX {
                self.0.clear();
            }
            self.0.insert(word.as_str().into(), stem.as_str().into());
        }
        *word = stem;
    }
}

impl TokenFilter for CachedStemmer {
    type Tokenizer<T: Tokenizer> = CachedStemmerFilter<T>;

    fn transform<T: Tokenizer>(self, inner: T) -> CachedStemmerFilter<T> {
        CachedStemmerFilter {
            inner,
            stems: self.stems,
        }
    }
}

#[derive(Clone)]
struct CachedStemmerFilter<T> {
    inner: T,
    stems: StemCache,
}

impl<T: Tokenizer> Tokenizer for CachedStemmerFilter<T> {
    type TokenStream<'a> = CachedStemmerStream<'a, T::TokenStream<'a>>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        CachedStemmerStream {
            tail: self.inner.token_stream(text),
            stemmer: frostem::Stemmer::new(frostem::Algorithm::English),
            stems: &mut self.stems,
        }
    }
}

struct CachedStemmerStream<'a, T> {
    tail: T,
    stemmer: frostem::Stemmer,
    stems: &'a mut StemCache,
}

impl<T: TokenStream> TokenStream for CachedStemmerStream<'_, T> {
    fn advance(&mut self) -> bool {
        if !self.tail.advance() {
            return false;
        }
        let token = self.tail.token_mut();
        self.stems.stem(&self.stemmer, &mut token.text);
        true
    }

    fn token(&self) -> &Token {
        self.tail.token()
    }

    fn token_mut(&mut self) -> &mut Token {
        self.tail.token_mut()
    }
}

/// Tokens of code: runs of letters, digits and `_ . / :` (a path or `std::fs::read` is one
/// token). A character scan: the regex tokenizer spent most of indexing time in its NFA.
#[derive(Clone, Default)]
struct CodeTokenizer {
    token: Token,
}

struct CodeTokenStream<'a> {
    text: &'a str,
    chars: std::str::CharIndices<'a>,
    token: &'a mut Token,
}

fn is_code_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '/' | ':')
}

impl Tokenizer for CodeTokenizer {
    type TokenStream<'a> = CodeTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> CodeTokenStream<'a> {
        self.token.reset();
        CodeTokenStream {
            text,
            chars: text.char_indices(),
            token: &mut self.token,
        }
    }
}

impl TokenStream for CodeTokenStream<'_> {
    fn advance(&mut self) -> bool {
        self.token.text.clear();
        self.token.position = self.token.position.wrapping_add(1);
        while let Some((from, c)) = self.chars.next() {
            if is_code_char(c) {
                let to = self
                    .chars
                    .find(|(_, c)| !is_code_char(*c))
                    .map_or(self.text.len(), |(at, _)| at);
                self.token.offset_from = from;
                self.token.offset_to = to;
                self.token.text.push_str(&self.text[from..to]);
                return true;
            }
        }
        false
    }

    fn token(&self) -> &Token {
        self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        self.token
    }
}

fn code_analyzer() -> Result<TextAnalyzer, SearchError> {
    Ok(TextAnalyzer::builder(CodeTokenizer::default())
        .filter(LowerCaser)
        .build())
}

fn analyze(analyzer: &TextAnalyzer, text: &str) -> Vec<(String, usize, usize)> {
    let mut analyzer = analyzer.clone();
    let mut stream = analyzer.token_stream(text);
    let mut tokens = Vec::new();
    while stream.advance() {
        let token = stream.token();
        tokens.push((token.text.clone(), token.offset_from, token.offset_to));
    }
    tokens
}

#[derive(Clone, Copy)]
struct Fields {
    key: Field,
    conversation: Field,
    user: Field,
    kind: Field,
    role: Field,
    natural: Field,
    code: Field,
    created_ms: Field,
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let text = |tokenizer: &str| {
        TextFieldIndexing::default()
            .set_tokenizer(tokenizer)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions)
    };
    let fields = Fields {
        key: builder.add_text_field("key", STRING | STORED),
        conversation: builder.add_text_field("conversation", STRING | STORED),
        user: builder.add_text_field("user", STRING),
        kind: builder.add_text_field("kind", STRING | STORED),
        role: builder.add_text_field("role", STRING | STORED),
        natural: builder.add_text_field(
            "natural",
            TextOptions::default()
                .set_indexing_options(text(NATURAL))
                .set_stored(),
        ),
        code: builder.add_text_field(
            "code",
            TextOptions::default().set_indexing_options(text(CODE)),
        ),
        created_ms: builder.add_i64_field("created_ms", STORED),
    };
    (builder.build(), fields)
}

/// One matching message (or conversation title).
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The message's UUID, hyphenated; `title:<conversation>` for a title.
    pub message_id: String,
    /// Whether the hit is a conversation's title rather than a message.
    pub title: bool,
    pub conversation: SessionId,
    pub role: String,
    pub content: String,
    pub created_ms: Option<i64>,
    /// FTS5-style: negative BM25, lower is better.
    pub score: f32,
}

/// Filters applied inside the index.
#[derive(Debug, Clone)]
pub struct HitFilter {
    pub user: UserId,
    /// Exact role.
    pub role: Option<String>,
    /// Only messages created strictly after.
    pub after_ms: Option<i64>,
    /// Only messages created strictly before.
    pub before_ms: Option<i64>,
    /// Titles match too (hstry's search is over messages only).
    pub titles: bool,
}

/// A change to the index.
enum Change {
    Upsert {
        /// Whether a document with this key may exist already (an hstry rewrite, a title): then it
        /// is deleted first. A session's messages are written once, and an entry is applied
        /// exactly once (the commit carries the offset), so they skip the delete.
        replace: bool,
        key: String,
        conversation: SessionId,
        user: UserId,
        kind: &'static str,
        role: &'static str,
        text: String,
        created_ms: Option<i64>,
    },
    DeleteKey(String),
    DeleteConversation(SessionId),
}

fn title_key(conversation: &SessionId) -> String {
    format!("title:{conversation}")
}

fn role_of(role: octo_core::message::Role) -> &'static str {
    match role {
        octo_core::message::Role::User => "user",
        octo_core::message::Role::Assistant => "assistant",
        octo_core::message::Role::Tool => "tool",
    }
}

fn title_change(entry: &LogEntry, title: Option<&str>) -> Change {
    match title.filter(|title| !title.is_empty()) {
        Some(title) => Change::Upsert {
            replace: true,
            key: title_key(&entry.session_id),
            conversation: entry.session_id,
            user: entry.user_id.clone(),
            kind: KIND_TITLE,
            role: "",
            text: title.to_owned(),
            created_ms: Some(entry.ts_ms),
        },
        None => Change::DeleteKey(title_key(&entry.session_id)),
    }
}

/// What one entry changes, its blobs read through `blob`.
async fn changes_of(log: &dyn EventLog, entry: &LogEntry) -> Result<Vec<Change>, SearchError> {
    let Body::Event(event) = &entry.body else {
        return Ok(Vec::new());
    };
    let message = |message: &octo_core::Message| Change::Upsert {
        replace: false,
        key: message.id.to_string(),
        conversation: entry.session_id,
        user: entry.user_id.clone(),
        kind: KIND_MESSAGE,
        role: role_of(message.role),
        text: message_text(message),
        created_ms: Some(message.created_ms),
    };
    Ok(match event {
        Event::MessageCreated(created) => vec![message(&created.message)],
        Event::StreamMessageEnd(end) => vec![message(&end.message)],
        Event::HistoryMessageUpserted(upserted) => {
            let text = match &upserted.content {
                TextOrBlob::Inline(text) => text.clone(),
                TextOrBlob::Blob(reference) => {
                    let bytes = log
                        .blob(reference.blob)
                        .await
                        .map_err(index_error)?
                        .unwrap_or_default();
                    String::from_utf8_lossy(&bytes).into_owned()
                }
            };
            vec![Change::Upsert {
                replace: true,
                key: upserted.message_id.to_string(),
                conversation: entry.session_id,
                user: entry.user_id.clone(),
                kind: KIND_MESSAGE,
                role: upserted.role.as_str(),
                text,
                created_ms: upserted.created_ms,
            }]
        }
        Event::SessionCreated(created) => vec![title_change(entry, created.title.as_deref())],
        Event::SessionForked(forked) => vec![title_change(entry, forked.title.as_deref())],
        Event::SessionRenamed(renamed) => vec![title_change(entry, Some(&renamed.title))],
        Event::HistoryConversationUpserted(upserted) => {
            vec![title_change(entry, upserted.title.as_deref())]
        }
        Event::HistoryConversationUpdated(updated) => match &updated.title {
            Some(title) => vec![title_change(entry, Some(title))],
            None => Vec::new(),
        },
        Event::SessionDeleted(_) | Event::HistoryConversationDeleted(_) => {
            vec![Change::DeleteConversation(entry.session_id)]
        }
        _ => Vec::new(),
    })
}

/// The index: its writer (used by the projector only) and its reader.
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter<TantivyDocument>>,
    fields: Fields,
    natural: TextAnalyzer,
    code: TextAnalyzer,
    /// Commits made since open.
    commits: AtomicU64,
}

impl SearchIndex {
    /// Opens (or creates) the index of the current version under `dir` (a new version rebuilds
    /// from offset 0 beside the older one, see [`retire_older`]). Blocking.
    ///
    /// # Errors
    /// [`SearchError::Index`].
    pub fn open(dir: &Path) -> Result<SearchIndex, SearchError> {
        let path: PathBuf = dir.join(format!("search.v{VERSION}"));
        std::fs::create_dir_all(&path).map_err(index_error)?;
        let (schema, fields) = schema();
        let directory = tantivy::directory::MmapDirectory::open(&path).map_err(index_error)?;
        let index = Index::open_or_create(directory, schema).map_err(index_error)?;
        let natural = natural_analyzer();
        let code = code_analyzer()?;
        index.tokenizers().register(NATURAL, natural.clone());
        index.tokenizers().register(CODE, code.clone());
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(2));
        let writer = index
            .writer_with_num_threads(threads, WRITER_MEMORY_BYTES)
            .map_err(index_error)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(index_error)?;
        Ok(SearchIndex {
            index,
            reader,
            writer: Mutex::new(writer),
            fields,
            natural,
            code,
            commits: AtomicU64::new(0),
        })
    }

    /// Commits made since the index was opened.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// The offset of the last commit (0: nothing).
    ///
    /// # Errors
    /// [`SearchError::Index`].
    pub fn committed(&self) -> Result<Offset, SearchError> {
        let metas = self.index.load_metas().map_err(index_error)?;
        match metas.payload {
            None => Ok(Offset::ZERO),
            Some(payload) => payload
                .parse::<u64>()
                .map_err(index_error)
                .and_then(|value| Offset::new(value).map_err(index_error)),
        }
    }

    fn apply(&self, changes: Vec<Change>, applied: Offset) -> Result<(), SearchError> {
        self.stage_and_commit(changes, Some(applied))
    }

    /// Hands `changes` to the indexing threads and, with `commit`, commits everything staged
    /// with that offset as its payload and reloads the reader. Blocking.
    fn stage_and_commit(
        &self,
        changes: Vec<Change>,
        commit: Option<Offset>,
    ) -> Result<(), SearchError> {
        let mut writer = self
            .writer
            .lock()
            .map_err(|_| SearchError::Index("the index writer panicked".to_owned()))?;
        Self::stage(&writer, self.fields, changes)?;
        let Some(applied) = commit else {
            return Ok(());
        };
        let mut prepared = writer.prepare_commit().map_err(index_error)?;
        prepared.set_payload(&applied.get().to_string());
        prepared.commit().map_err(index_error)?;
        self.commits.fetch_add(1, Ordering::Relaxed);
        drop(writer);
        self.reader.reload().map_err(index_error)
    }

    fn stage(
        writer: &IndexWriter<TantivyDocument>,
        f: Fields,
        changes: Vec<Change>,
    ) -> Result<(), SearchError> {
        for change in changes {
            match change {
                Change::Upsert {
                    replace,
                    key,
                    conversation,
                    user,
                    kind,
                    role,
                    text,
                    created_ms,
                } => {
                    if replace {
                        writer.delete_term(Term::from_field_text(f.key, &key));
                    }
                    let mut doc = TantivyDocument::new();
                    doc.add_text(f.key, &key);
                    doc.add_text(f.conversation, conversation.to_string());
                    doc.add_text(f.user, user.as_str());
                    doc.add_text(f.kind, kind);
                    doc.add_text(f.role, role);
                    doc.add_text(f.natural, &text);
                    doc.add_text(f.code, &text);
                    if let Some(created_ms) = created_ms {
                        doc.add_i64(f.created_ms, created_ms);
                    }
                    writer.add_document(doc).map_err(index_error)?;
                }
                Change::DeleteKey(key) => {
                    writer.delete_term(Term::from_field_text(f.key, &key));
                }
                Change::DeleteConversation(conversation) => {
                    writer.delete_term(Term::from_field_text(
                        f.conversation,
                        &conversation.to_string(),
                    ));
                }
            }
        }
        Ok(())
    }

    fn analyzer(&self, mode: Mode) -> (&TextAnalyzer, Field) {
        match mode {
            Mode::Natural => (&self.natural, self.fields.natural),
            Mode::Code => (&self.code, self.fields.code),
        }
    }

    fn token_query(&self, mode: Mode, token: &QueryToken) -> Option<Box<dyn Query>> {
        let (analyzer, field) = self.analyzer(mode);
        let terms: Vec<Term> = analyze(analyzer, &token.text)
            .into_iter()
            .map(|(text, _, _)| Term::from_field_text(field, &text))
            .collect();
        match (terms.len(), token.prefix) {
            (0, _) => None,
            (1, false) => Some(Box::new(TermQuery::new(
                terms[0].clone(),
                IndexRecordOption::WithFreqs,
            ))),
            (1, true) => {
                let value = terms[0].value();
                let pattern = format!("{}.*", escape_regex(value.as_str().unwrap_or_default()));
                RegexQuery::from_pattern(&pattern, field)
                    .ok()
                    .map(|query| Box::new(query) as Box<dyn Query>)
            }
            (_, false) => Some(Box::new(PhraseQuery::new(terms))),
            (_, true) => Some(Box::new(PhrasePrefixQuery::new(terms))),
        }
    }

    /// Every message matching `query` and `filter`, best first (ties in index order).
    ///
    /// # Errors
    /// [`SearchError`].
    pub fn search(&self, query: &SearchQuery, filter: &HitFilter) -> Result<Vec<Hit>, SearchError> {
        let f = self.fields;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for token in &query.tokens {
            if let Some(q) = self.token_query(query.mode, token) {
                clauses.push((Occur::Must, q));
            }
        }
        if clauses.is_empty() {
            return Err(SearchError::Query(
                "the query has no words to search for".to_owned(),
            ));
        }
        let exact = |field: Field, text: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_text(field, text),
                IndexRecordOption::Basic,
            ))
        };
        clauses.push((Occur::Must, exact(f.user, filter.user.as_str())));
        if !filter.titles {
            clauses.push((Occur::Must, exact(f.kind, KIND_MESSAGE)));
        }
        if let Some(role) = &filter.role {
            clauses.push((Occur::Must, exact(f.role, role)));
        }
        let searcher = self.reader.searcher();
        let limit = usize::try_from(searcher.num_docs())
            .unwrap_or(usize::MAX)
            .max(1);
        let top = searcher
            .search(
                &BooleanQuery::new(clauses),
                &TopDocs::with_limit(limit).order_by_score(),
            )
            .map_err(index_error)?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            let doc: TantivyDocument = searcher.doc(address).map_err(index_error)?;
            let text = |field: Field| {
                doc.get_first(field)
                    .and_then(|value| value.as_str())
                    .unwrap_or_default()
                    .to_owned()
            };
            let created_ms = doc.get_first(f.created_ms).and_then(|value| value.as_i64());
            let in_time = filter
                .after_ms
                .is_none_or(|after| created_ms.is_some_and(|at| at > after))
                && filter
                    .before_ms
                    .is_none_or(|before| created_ms.is_some_and(|at| at < before));
            if !in_time {
                continue;
            }
            let Ok(conversation) = SessionId::parse(&text(f.conversation)) else {
                continue;
            };
            hits.push(Hit {
                message_id: text(f.key),
                title: text(f.kind) == KIND_TITLE,
                conversation,
                role: text(f.role),
                content: text(f.natural),
                created_ms,
                score: -score,
            });
        }
        Ok(hits)
    }

    /// About 12 tokens of `content` around the first match, matches in `[` `]`, cut ends `…`.
    pub fn snippet(&self, query: &SearchQuery, content: &str) -> String {
        let (analyzer, _) = self.analyzer(query.mode);
        let wanted: Vec<(String, bool)> = query
            .tokens
            .iter()
            .flat_map(|token| {
                let terms = analyze(analyzer, &token.text);
                let last = terms.len().saturating_sub(1);
                terms
                    .into_iter()
                    .enumerate()
                    .map(move |(n, (text, _, _))| (text, token.prefix && n == last))
            })
            .collect();
        let tokens = analyze(analyzer, content);
        let matches = |text: &str| {
            wanted
                .iter()
                .any(|(term, prefix)| text == term || (*prefix && text.starts_with(term.as_str())))
        };
        let first = tokens
            .iter()
            .position(|(text, _, _)| matches(text))
            .unwrap_or(0);
        let start = first.saturating_sub(SNIPPET_TOKENS / 3);
        let end = (start + SNIPPET_TOKENS).min(tokens.len());
        if tokens.is_empty() || start >= end {
            return content.chars().take(120).collect();
        }
        let mut snippet = String::new();
        if start > 0 {
            snippet.push('…');
        }
        let mut at = tokens[start].1;
        for (text, from, to) in &tokens[start..end] {
            snippet.push_str(&content[at..*from]);
            if matches(text) {
                snippet.push('[');
                snippet.push_str(&content[*from..*to]);
                snippet.push(']');
            } else {
                snippet.push_str(&content[*from..*to]);
            }
            at = *to;
        }
        if end < tokens.len() {
            snippet.push('…');
        }
        snippet
    }
}

fn escape_regex(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() * 2);
    for c in text.chars() {
        if "\\.+*?()|[]{}^$#&-~\"<>@".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// Drops the index folders of older versions under `dir`: called once the current version has
/// caught up with the log.
///
/// # Errors
/// [`SearchError::Index`].
pub fn retire_older(dir: &Path) -> Result<(), SearchError> {
    let current = format!("search.v{VERSION}");
    let Ok(read) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for old in read.flatten() {
        let name = old.file_name().to_string_lossy().into_owned();
        if name.starts_with("search.v") && name != current {
            tracing::info!(old = name, "dropping an older search index version");
            std::fs::remove_dir_all(old.path()).map_err(index_error)?;
        }
    }
    Ok(())
}

/// What readers hold: the index and its applied offset.
#[derive(Clone)]
pub struct Searcher {
    index: Arc<SearchIndex>,
    applied: watch::Receiver<Offset>,
    /// Tells the projector a reader waits, so changes held back for the next commit go now.
    wanted: Arc<Wanted>,
    _task: Arc<AbortOnDrop>,
}

/// The newest offset a reader waits for, and the projector's wake-up when it moves.
#[derive(Default)]
struct Wanted {
    offset: AtomicU64,
    notify: Notify,
}

impl Wanted {
    /// Whether a commit through `seen` would serve a reader still waiting beyond `published`.
    fn served_by(&self, published: Offset, seen: Offset) -> bool {
        let wanted = self.offset.load(Ordering::Acquire);
        published.get() < wanted && wanted <= seen.get()
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Searcher {
    /// The newest offset the index reflects.
    pub fn applied(&self) -> Offset {
        *self.applied.borrow()
    }

    /// Waits until the index reflects `offset` (read your writes).
    ///
    /// # Errors
    /// [`WaitError`].
    pub async fn wait_for(&self, offset: Offset, timeout: Duration) -> Result<(), WaitError> {
        let mut applied = self.applied.clone();
        if *applied.borrow() < offset {
            self.wanted.offset.fetch_max(offset.get(), Ordering::AcqRel);
            self.wanted.notify.notify_one();
        }
        match tokio::time::timeout(timeout, applied.wait_for(|applied| *applied >= offset)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(WaitError::Stopped),
            Err(_) => Err(WaitError::Timeout {
                wanted: offset,
                applied: self.applied(),
            }),
        }
    }

    /// See [`SearchIndex::commits`].
    pub fn commits(&self) -> u64 {
        self.index.commits()
    }

    /// The documents (messages and titles) the last commit holds.
    pub fn documents(&self) -> u64 {
        self.index.reader.searcher().num_docs()
    }

    /// See [`SearchIndex::search`].
    ///
    /// # Errors
    /// [`SearchError`].
    pub fn search(&self, query: &SearchQuery, filter: &HitFilter) -> Result<Vec<Hit>, SearchError> {
        self.index.search(query, filter)
    }

    /// See [`SearchIndex::snippet`].
    pub fn snippet(&self, query: &SearchQuery, content: &str) -> String {
        self.index.snippet(query, content)
    }
}

/// Opens the index under `dir` and starts its projector: it catches up from the last commit, then
/// follows the log.
///
/// # Errors
/// [`SearchError`] if the index cannot be opened.
pub async fn spawn_search(log: Arc<dyn EventLog>, dir: PathBuf) -> Result<Searcher, SearchError> {
    let open_in = dir.clone();
    let index = tokio::task::spawn_blocking(move || SearchIndex::open(&open_in))
        .await
        .map_err(index_error)??;
    let index = Arc::new(index);
    let committed = index.committed()?;
    let (publish, applied) = watch::channel(committed);
    let wanted = Arc::new(Wanted::default());
    let task = tokio::spawn(run(
        log,
        Arc::clone(&index),
        committed,
        publish,
        Arc::clone(&wanted),
        dir,
    ));
    Ok(Searcher {
        index,
        applied,
        wanted,
        _task: Arc::new(AbortOnDrop(task)),
    })
}

async fn run(
    log: Arc<dyn EventLog>,
    index: Arc<SearchIndex>,
    applied: Offset,
    publish: watch::Sender<Offset>,
    wanted: Arc<Wanted>,
    dir: PathBuf,
) {
    // The version in use is swapped in once it has caught up with the log as it was at start.
    let head = log.head();
    let applied = match catch_up(&log, &index, applied, head, &publish, &wanted).await {
        Ok(applied) => applied,
        Err(e) => {
            tracing::error!(error = %e, "search projector cannot catch up");
            return;
        }
    };
    if let Err(e) = retire_older(&dir) {
        tracing::warn!(error = %e, "cannot drop an older search index");
    }
    // Then follow the log; live entries come decoded, so they are all read.
    let mut subscription = match Subscription::new(
        Arc::clone(&log),
        LogFilter::all(),
        applied,
        QueueBound::default(),
    ) {
        Ok(subscription) => subscription,
        Err(e) => {
            tracing::error!(error = %e, "search projector cannot subscribe");
            return;
        }
    };
    // Changes read but not committed yet, the entries they came from, and the last entry read.
    let mut pending: Vec<Change> = Vec::new();
    let mut pending_entries = 0usize;
    let mut seen = applied;
    let mut last_commit: Option<Instant> = None;
    loop {
        // The next entry; while changes wait, also the time of their commit or a waiting reader.
        let mut timer = false;
        let first = if pending.is_empty() {
            Some(subscription.next().await)
        } else {
            let due = last_commit.map_or_else(Instant::now, |at| at + COMMIT_INTERVAL);
            tokio::select! {
                next = subscription.next() => Some(next),
                () = tokio::time::sleep_until(due.into()) => {
                    timer = true;
                    None
                }
                () = wanted.notify.notified() => None,
            }
        };
        let mut batch = Vec::with_capacity(64);
        match first {
            Some(Ok(entry)) => batch.push(entry),
            Some(Err(e)) => {
                tracing::error!(error = %e, "search projector lost the log");
                return;
            }
            None => {}
        }
        // Take whatever is ready without waiting, up to the commit bound; also when a reader
        // woke us, so the commit it waits for holds the entries already here.
        while pending_entries + batch.len() < COMMIT_ENTRIES_MAX {
            match tokio::time::timeout(Duration::ZERO, subscription.next()).await {
                Ok(Ok(entry)) => batch.push(entry),
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "search projector lost the log");
                    return;
                }
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            for entry in &batch {
                match changes_of(&*log, entry).await {
                    Ok(more) => pending.extend(more),
                    Err(e) => {
                        tracing::error!(error = %e, "search projector stopped");
                        return;
                    }
                }
            }
            pending_entries += batch.len();
            seen = batch.last().map_or(seen, |entry| entry.offset);
        }
        if !pending.is_empty() {
            // A reader waiting for what has been read is served at once, however recent the
            // last commit.
            let due = timer
                || wanted.served_by(*publish.borrow(), seen)
                || pending_entries >= COMMIT_ENTRIES_MAX
                || last_commit.is_none_or(|at| at.elapsed() >= COMMIT_INTERVAL);
            if !due {
                // Held for the next commit: the offset is not published until they are in.
                continue;
            }
            let changes = std::mem::take(&mut pending);
            let index = Arc::clone(&index);
            let done = tokio::task::spawn_blocking(move || index.apply(changes, seen)).await;
            match done {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "search projector stopped");
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, "search projector panicked");
                    return;
                }
            }
            last_commit = Some(Instant::now());
        }
        pending_entries = 0;
        // With no change the commit's payload lags behind: a restart re-reads a few entries that
        // change nothing.
        publish.send_replace(seen);
    }
}

/// Indexes the log from `applied` through `until` (at most the head) and returns the offset
/// committed last: pages of the entries of [`INDEXED_TYPES`], the next page read while this one
/// is staged, and a commit only at the end, when a reader waits for what is staged, or after
/// [`CATCH_UP_COMMIT_CHANGES`] (each commit makes segments that merges fold in again).
async fn catch_up(
    log: &Arc<dyn EventLog>,
    index: &Arc<SearchIndex>,
    applied: Offset,
    until: Offset,
    publish: &watch::Sender<Offset>,
    wanted: &Wanted,
) -> Result<Offset, SearchError> {
    if applied >= until {
        return Ok(applied);
    }
    let filter = LogFilter {
        kind: Some(Kind::Event),
        types: INDEXED_TYPES
            .iter()
            .map(|t| TypePattern::parse(t))
            .collect(),
        ..LogFilter::all()
    };
    let read = |after: Offset| {
        let query = ReadQuery {
            filter: filter.clone(),
            after,
            until: Some(until),
            limit: CATCH_UP_PAGE_ENTRIES,
        };
        async move {
            log.read(query)
                .await
                .map_err(|e| SearchError::Log(e.to_string()))
        }
    };
    let mut page = read(applied).await?;
    let mut staged = 0usize;
    loop {
        let through = page.scanned_through;
        let last = page.reached_end || through >= until;
        let mut changes = Vec::new();
        for entry in &page.entries {
            changes.extend(changes_of(&**log, entry).await?);
        }
        staged += changes.len();
        let commit = last
            || staged >= CATCH_UP_COMMIT_CHANGES
            || wanted.served_by(*publish.borrow(), through);
        let stage = {
            let index = Arc::clone(index);
            async move {
                tokio::task::spawn_blocking(move || {
                    index.stage_and_commit(changes, commit.then_some(through))
                })
                .await
                .map_err(index_error)?
            }
        };
        if last {
            stage.await?;
        } else {
            let (staged_page, next) = tokio::join!(stage, read(through));
            staged_page?;
            page = next?;
        }
        if commit {
            staged = 0;
            publish.send_replace(through);
        }
        if last {
            return Ok(through);
        }
    }
}

/// Applies `entries` straight to an index, committing once: for rebuild benchmarks and tests.
///
/// # Errors
/// [`SearchError`].
pub async fn apply_entries(
    log: &dyn EventLog,
    index: &SearchIndex,
    entries: &[Arc<LogEntry>],
) -> Result<usize, SearchError> {
    let mut changes = Vec::new();
    for entry in entries {
        changes.extend(changes_of(log, entry).await?);
    }
    let count = changes.len();
    if let Some(last) = entries.last() {
        index.apply(changes, last.offset)?;
    }
    Ok(count)
}

/// Stages the changes of `entries` and never commits them: what a crash before the commit leaves
/// behind (nothing, once the index is dropped and reopened). For crash tests.
///
/// # Errors
/// [`SearchError`].
#[doc(hidden)]
pub async fn apply_entries_uncommitted(
    log: &dyn EventLog,
    index: &SearchIndex,
    entries: &[Arc<LogEntry>],
) -> Result<(), SearchError> {
    let mut changes = Vec::new();
    for entry in entries {
        changes.extend(changes_of(log, entry).await?);
    }
    let writer = index
        .writer
        .lock()
        .map_err(|_| SearchError::Index("the index writer panicked".to_owned()))?;
    SearchIndex::stage(&writer, index.fields, changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(analyzer: &mut TextAnalyzer, text: &str) -> Vec<Token> {
        let mut out = Vec::new();
        analyzer
            .token_stream(text)
            .process(&mut |token| out.push(token.clone()));
        out
    }

    #[test]
    fn cached_stemming_is_tantivy_stemming() {
        let mut ours = natural_analyzer();
        let mut theirs = TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(LowerCaser)
            .filter(tantivy::tokenizer::Stemmer::new(
                tantivy::tokenizer::Language::English,
            ))
            .build();
        let long = "internationalizationalistically ".repeat(3);
        let text = format!(
            "Running runners ran; the runner RUNS. Generously generalized generalizations \
             running again: {long} caresses ponies ties caress cats, running."
        );
        // Twice through the same analyzer: the second pass reads the cache.
        for _ in 0..2 {
            assert_eq!(tokens(&mut ours, &text), tokens(&mut theirs, &text));
        }
        // A full cache empties and goes on stemming the same.
        let mut stems = StemCache::default();
        let stemmer = frostem::Stemmer::new(frostem::Algorithm::English);
        for n in 0..STEMS_CACHED_MAX + 10 {
            let mut word = format!("running{n}s");
            stems.stem(&stemmer, &mut word);
            assert_eq!(word, stemmer.stem(&format!("running{n}s")));
            assert!(stems.0.len() <= STEMS_CACHED_MAX);
        }
    }

    #[test]
    fn auto_mode_reads_code_by_its_look() {
        assert_eq!(
            SearchQuery::parse("running tests", 0).map(|q| q.mode).ok(),
            Some(Mode::Natural)
        );
        for code in [
            "src/foo_bar.rs",
            "std::fs::read",
            "a->b",
            "foo_bar",
            "x.y",
            "camelCase",
        ] {
            assert_eq!(
                SearchQuery::parse(code, 0).map(|q| q.mode).ok(),
                Some(Mode::Code),
                "{code}"
            );
        }
        assert_eq!(
            SearchQuery::parse("foo", 2).map(|q| q.mode).ok(),
            Some(Mode::Code)
        );
        assert!(matches!(
            SearchQuery::parse("   ", 0),
            Err(SearchError::Query(_))
        ));
        assert!(matches!(
            SearchQuery::parse("* **", 0),
            Err(SearchError::Query(_))
        ));
    }

    #[test]
    fn code_tokens_keep_paths_whole() {
        let analyzer = code_analyzer().expect("regex compiles");
        let tokens: Vec<String> = analyze(&analyzer, "edit src/foo_bar.rs and std::fs::read")
            .into_iter()
            .map(|(text, _, _)| text)
            .collect();
        assert_eq!(tokens, ["edit", "src/foo_bar.rs", "and", "std::fs::read"]);
    }
}
