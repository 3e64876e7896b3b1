//! `octo-bench fanout`: one session watched by 1, 100 and 1,000 WebSocket subscribers while
//! entries are appended at a fixed rate and as fast as possible; delivered entries per second and
//! append-to-receive latency (p50, p99) per configuration.
//!
//! It drives a real `octo serve` (started as a child on a fresh data dir) through the public
//! protocol only: the appends are `session.rename` commands (each appends the command and its
//! `session.renamed`, two entries, with no harness involved), whose titles carry the sender's
//! clock in microseconds; a subscriber's latency is its receive time minus that stamp, so it
//! covers the command, the durable append, the fan-out and the socket.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use memchr::memmem;
use octo_core::Encoding;
use octo_core::frame::{AgentServerFrame, ServerFrame};
use serde_json::json;
use tokio::sync::Mutex;

use crate::client::Client;

/// Arguments of `octo-bench fanout`.
#[derive(Debug, clap::Args)]
pub struct FanoutArgs {
    /// Seconds of appending per configuration.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Subscriber counts (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 100, 1000])]
    subscribers: Vec<usize>,
    /// Append rates in entries per second; 0 means as fast as possible (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [1000u64, 0])]
    rates: Vec<u64>,
    /// Seconds of appending before the measured ones, per configuration: the first entries to
    /// fresh connections grow every buffer on the way, a one-time cost that is not the steady
    /// state measured here (latencies of entries sent then are not counted; deliveries are).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Concurrent writer connections (the rate is shared among them).
    #[arg(long, default_value_t = 8)]
    writers: usize,
    /// The `octo` binary (default: beside this one).
    #[arg(long)]
    octo: Option<PathBuf>,
    /// Measure a bare broadcast server instead of `octo serve`, with the same subscribers, on
    /// the same machine: the transport's own cost, as a baseline. `tungstenite` frames each
    /// message through tokio-tungstenite as Octo does; `raw` writes one pre-framed copy of each
    /// entry, shared by every socket, straight to the TCP stream.
    #[arg(long, value_enum)]
    bare: Option<super::fanout_bare::Bare>,
    /// Where to put the data dir (a fresh temporary folder inside it). Use a real disk.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
}

pub(super) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

pub(super) struct Octo {
    child: Child,
    pub(super) url: String,
    pub(super) token: String,
}

impl Drop for Octo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(super) fn start_octo(
    binary: &Path,
    data_dir: &Path,
    workspaces: &Path,
) -> anyhow::Result<Octo> {
    std::fs::create_dir_all(workspaces)?;
    let child = Command::new(binary)
        .arg("--data-dir")
        .arg(data_dir)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--model",
            "bench/none",
            "--pi",
            "/nonexistent/pi",
        ])
        .arg("--workspaces")
        .arg(workspaces)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let mut octo = Octo {
        child,
        url: String::new(),
        token: String::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(url) = std::fs::read_to_string(data_dir.join("url")) {
            octo.url = url;
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "octo did not start in 30 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    octo.token = std::fs::read_to_string(data_dir.join("token"))?
        .trim()
        .to_owned();
    Ok(octo)
}

/// What a subscriber looks for in a frame, found without decoding it (the bench's client must
/// cost little beside the server it measures, on the same cores). JSON entry frames start with
/// `ENTRY_PREFIX`, then the subscribed session, then the entry with its offset first.
struct Scan {
    offset: memmem::Finder<'static>,
    ts_ms: memmem::Finder<'static>,
    renamed: memmem::Finder<'static>,
}

const ENTRY_PREFIX: &[u8] = b"{\"ch\":\"agent\",\"type\":\"entry\",";

impl Scan {
    fn new() -> Scan {
        Scan {
            offset: memmem::Finder::new(b"\"offset\":"),
            ts_ms: memmem::Finder::new(b"\"ts_ms\":"),
            // A body's `type` comes first, then its fields in order.
            renamed: memmem::Finder::new(b"\"type\":\"session.renamed\",\"title\":\"t"),
        }
    }

    fn is_entry(frame: &[u8]) -> bool {
        frame.starts_with(ENTRY_PREFIX)
    }

    /// The entry's offset.
    fn offset_of(&self, frame: &[u8]) -> Option<u64> {
        let start = self.offset.find(frame)? + self.offset.needle().len();
        digits(&frame[start..])
    }

    /// When the log appended the entry, in milliseconds of the server's clock.
    fn ts_ms_of(&self, frame: &[u8]) -> Option<u64> {
        let start = self.ts_ms.find(frame)? + self.ts_ms.needle().len();
        digits(&frame[start..])
    }

    /// The microsecond stamp in a `session.renamed` entry's title.
    fn stamp_of(&self, frame: &[u8]) -> Option<u64> {
        let start = self.renamed.find(frame)? + self.renamed.needle().len();
        digits(&frame[start..])
    }
}

/// The decimal number at the start of `bytes`.
fn digits(bytes: &[u8]) -> Option<u64> {
    let len = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&bytes[..len]).ok()?.parse().ok()
}

const OPCODE_TEXT: u8 = 0x1;
const OPCODE_CLOSE: u8 = 0x8;
const OPCODE_PING: u8 = 0x9;
const OPCODE_PONG: u8 = 0xa;

/// A subscriber's socket read as WebSocket frames (RFC 6455 5.2) straight from one reused
/// buffer: the measuring client reads whatever arrived in one syscall and copies, allocates and
/// zeroes nothing per frame, so what it costs beside the server stays small. The server's frames
/// are unmasked and, for these small entries, never fragmented.
struct RawFrames {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
    /// Bytes of `buf` already parsed.
    at: usize,
}

impl RawFrames {
    fn new(stream: tokio::net::TcpStream) -> RawFrames {
        RawFrames {
            stream,
            buf: Vec::with_capacity(256 << 10),
            at: 0,
        }
    }

    /// Reads what the socket has; `false` at its end.
    async fn fill(&mut self) -> std::io::Result<bool> {
        use tokio::io::AsyncReadExt as _;
        if self.buf.capacity() - self.buf.len() < 16 << 10 {
            self.buf.reserve(64 << 10);
        }
        Ok(self.stream.read_buf(&mut self.buf).await? > 0)
    }

    /// The next whole frame in the buffer, as (opcode, payload).
    fn next_frame(&mut self) -> anyhow::Result<Option<(u8, &[u8])>> {
        let rest = &self.buf[self.at..];
        let [first, second, ..] = *rest else {
            return Ok(None);
        };
        anyhow::ensure!(second & 0x80 == 0, "a server frame is masked");
        let (len, header) = match second & 0x7f {
            126 if rest.len() >= 4 => (usize::from(u16::from_be_bytes([rest[2], rest[3]])), 4),
            127 if rest.len() >= 10 => {
                let len: [u8; 8] = rest[2..10].try_into().expect("8 bytes");
                (usize::try_from(u64::from_be_bytes(len))?, 10)
            }
            126 | 127 => return Ok(None),
            len => (usize::from(len), 2),
        };
        if rest.len() < header + len {
            return Ok(None);
        }
        self.at += header + len;
        let start = self.at - len;
        Ok(Some((first & 0x0f, &self.buf[start..self.at])))
    }

    /// Drops the parsed frames from the buffer, keeping a partial one.
    fn consume(&mut self) {
        self.buf.drain(..self.at);
        self.at = 0;
    }

    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt as _;
        self.stream.write_all(bytes).await
    }
}

/// A client's frame: masked, as RFC 6455 5.3 requires (with a zero key, which leaves the payload
/// as it is), and short.
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let len = u8::try_from(payload.len()).unwrap_or(125).min(125);
    let mut frame = vec![0x80 | opcode, 0x80 | len, 0, 0, 0, 0];
    frame.extend_from_slice(&payload[..usize::from(len)]);
    frame
}

/// Commands a writer may have in flight.
const WINDOW: usize = 64;

/// One `session.renamed` a subscriber received.
pub(super) struct Sample {
    /// The writer's clock when it sent the rename (in the title).
    pub(super) sent_us: u64,
    /// The entry's `ts_ms`: the log's clock when it appended the entry.
    pub(super) appended_ms: u64,
    pub(super) received_us: u64,
}

pub(super) struct Subscriber {
    pub(super) deliveries: Arc<AtomicU64>,
    pub(super) samples: Arc<Mutex<Vec<Sample>>>,
    pub(super) last_offset: Arc<AtomicU64>,
}

async fn subscribe_all(
    octo: &Octo,
    session_id: &str,
    n: usize,
    stop: tokio::sync::watch::Receiver<bool>,
    expected_samples: usize,
) -> anyhow::Result<(Vec<tokio::task::JoinHandle<()>>, Vec<Subscriber>)> {
    let mut tasks = Vec::with_capacity(n);
    let mut subscribers = Vec::with_capacity(n);
    // The session's head now, from one probe subscription: the subscribers start there, so none
    // replays what earlier configurations appended.
    let head = {
        let mut probe = Client::connect(&octo.url, &octo.token, Encoding::Json).await?;
        probe
            .send(&json!({"ch": "agent", "type": "subscribe", "id": "probe", "session_id": session_id, "after": null}))
            .await?;
        loop {
            if let ServerFrame::Agent(AgentServerFrame::Subscribed(subscribed)) =
                probe.next_frame_within(Duration::from_secs(30)).await?
            {
                break subscribed.head.get();
            }
        }
    };
    for i in 0..n {
        let mut client = Client::connect(&octo.url, &octo.token, Encoding::Json).await?;
        let id = format!("f{i}");
        client
            .send(&json!({"ch": "agent", "type": "subscribe", "id": id, "session_id": session_id, "after": head}))
            .await?;
        loop {
            if let ServerFrame::Agent(AgentServerFrame::Subscribed(_)) =
                client.next_frame_within(Duration::from_secs(30)).await?
            {
                break;
            }
        }
        // The subscribed frame was the last one before the appends start, so nothing is
        // buffered in the WebSocket layer: from here the task reads frames off the socket itself.
        let tokio_tungstenite::MaybeTlsStream::Plain(stream) = client.into_raw().into_inner()
        else {
            anyhow::bail!("the bench speaks plain TCP");
        };
        let (task, subscriber) = spawn_reader(stream, head, stop.clone(), expected_samples);
        tasks.push(task);
        subscribers.push(subscriber);
    }
    Ok((tasks, subscribers))
}

/// A subscriber reading entry frames off `stream` (a WebSocket whose handshake is done) until
/// `stop`, counting deliveries and keeping a sample of each stamped rename.
pub(super) fn spawn_reader(
    stream: tokio::net::TcpStream,
    head: u64,
    stop: tokio::sync::watch::Receiver<bool>,
    expected_samples: usize,
) -> (tokio::task::JoinHandle<()>, Subscriber) {
    let subscriber = Subscriber {
        deliveries: Arc::new(AtomicU64::new(0)),
        samples: Arc::new(Mutex::new(Vec::new())),
        last_offset: Arc::new(AtomicU64::new(head)),
    };
    let (deliveries, samples, last_offset) = (
        Arc::clone(&subscriber.deliveries),
        Arc::clone(&subscriber.samples),
        Arc::clone(&subscriber.last_offset),
    );
    let task = tokio::spawn(async move {
        let mut frames = RawFrames::new(stream);
        // Room for every sample up front: 1,000 subscribers growing their buffers in step
        // would stall together on the copies and show as latency.
        let mut local: Vec<Sample> = Vec::with_capacity(expected_samples);
        let scan = Scan::new();
        let mut stop = stop;
        let stopped = stop.changed();
        tokio::pin!(stopped);
        'read: loop {
            tokio::select! {
                biased;
                read = frames.fill() => if !matches!(read, Ok(true)) { break },
                _ = &mut stopped => break,
            }
            let received = now_us();
            loop {
                match frames.next_frame() {
                    Ok(Some((OPCODE_TEXT, frame))) => {
                        if !Scan::is_entry(frame) {
                            continue;
                        }
                        deliveries.fetch_add(1, Ordering::Relaxed);
                        if let Some(offset) = scan.offset_of(frame) {
                            last_offset.fetch_max(offset, Ordering::Relaxed);
                        }
                        if let (Some(sent_us), Some(appended_ms)) =
                            (scan.stamp_of(frame), scan.ts_ms_of(frame))
                        {
                            local.push(Sample {
                                sent_us,
                                appended_ms,
                                received_us: received,
                            });
                        }
                    }
                    Ok(Some((OPCODE_PING, payload))) => {
                        let pong = client_frame(OPCODE_PONG, payload);
                        if frames.write_all(&pong).await.is_err() {
                            break 'read;
                        }
                    }
                    Ok(Some((OPCODE_CLOSE, _))) | Err(_) => break 'read,
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                }
            }
            frames.consume();
        }
        samples.lock().await.extend(local);
    });
    (task, subscriber)
}

async fn one_configuration(
    octo: &Octo,
    session_id: &str,
    n: usize,
    rate: u64,
    args: &FanoutArgs,
) -> anyhow::Result<serde_json::Value> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    // Half the entries are renames; a fixed rate is known, "max" gets a bounded guess.
    let expected_samples = if rate > 0 {
        (rate as f64 * (args.warmup + args.seconds) * 0.6) as usize
    } else {
        8_192
    };
    let (tasks, subscribers) =
        subscribe_all(octo, session_id, n, stopped, expected_samples).await?;
    let duration = Duration::from_secs_f64(args.warmup + args.seconds);
    let started = Instant::now();
    let measured_from_us = now_us() + (args.warmup * 1e6) as u64;
    let last_appended = Arc::new(AtomicU64::new(0));
    // Sender's stamp -> when its ack (the append is durable) arrived.
    let acked_at: Arc<std::sync::Mutex<std::collections::HashMap<u64, u64>>> = Arc::default();
    // Writers pipeline their commands (a window of outstanding acks), so the append rate does
    // not depend on one round trip at a time.
    let mut writers = Vec::new();
    // The server places one connection's commands in order and acks each once durable; the
    // rate is spread over several writers, as many clients would send it.
    let n_writers = args.writers.max(1);
    for _ in 0..n_writers {
        let client = Client::connect(&octo.url, &octo.token, Encoding::Json).await?;
        let (mut sink, mut stream) = futures_util::StreamExt::split(client.into_raw());
        let session_id = session_id.to_owned();
        let last_appended = Arc::clone(&last_appended);
        let sent_at: Arc<std::sync::Mutex<std::collections::HashMap<String, u64>>> = Arc::default();
        let acked_at = Arc::clone(&acked_at);
        let stamps = Arc::clone(&sent_at);
        let window = Arc::new(tokio::sync::Semaphore::new(WINDOW));
        let acks_window = Arc::clone(&window);
        let acks = tokio::spawn(async move {
            let mut acked = 0u64;
            while let Some(Ok(message)) = futures_util::StreamExt::next(&mut stream).await {
                let tokio_tungstenite::tungstenite::Message::Text(text) = message else {
                    continue;
                };
                let Ok(ServerFrame::Agent(AgentServerFrame::Ack(ack))) =
                    octo_core::codec::from_json::<ServerFrame>(text.as_bytes())
                else {
                    continue;
                };
                acks_window.add_permits(1);
                let stamp = stamps
                    .lock()
                    .expect("never poisoned")
                    .remove(&ack.command_id.to_string());
                if let Some(stamp) = stamp {
                    acked_at
                        .lock()
                        .expect("never poisoned")
                        .insert(stamp, now_us());
                }
                match ack.offset {
                    Some(offset) => {
                        // The command's derived event follows it in the same append.
                        last_appended.fetch_max(offset.get() + 1, Ordering::Relaxed);
                        acked += 1;
                    }
                    None => eprintln!("a command was refused: {:?}", ack.error),
                }
            }
            acked
        });
        writers.push(tokio::spawn(async move {
            let mut sent = 0u64;
            // Each rename appends two entries.
            let interval =
                (rate > 0).then(|| Duration::from_secs_f64(2.0 * n_writers as f64 / rate as f64));
            while started.elapsed() < duration {
                if let Some(interval) = interval {
                    let due = started + interval.mul_f64(sent as f64);
                    tokio::time::sleep_until(due.into()).await;
                }
                let Ok(permit) = window.acquire().await else { break };
                permit.forget();
                let (command_id, stamp) = (octo_core::CommandId::new(), now_us());
                sent_at.lock().expect("never poisoned").insert(command_id.to_string(), stamp);
                let frame = json!({"ch": "agent", "type": "session.rename", "command_id": command_id,
                    "session_id": session_id, "title": format!("t{stamp}")});
                let message = tokio_tungstenite::tungstenite::Message::Text(frame.to_string().into());
                if futures_util::SinkExt::send(&mut sink, message).await.is_err() {
                    break;
                }
                sent += 1;
            }
            // Every ack in, then close.
            let _ = window.acquire_many(WINDOW as u32).await;
            let _ = futures_util::SinkExt::close(&mut sink).await;
            let _ = sent;
            acks.await.unwrap_or(0)
        }));
    }
    let mut renames = 0;
    for writer in writers {
        renames += writer.await?;
    }
    let appended_for = started.elapsed();
    // Wait until every subscriber has the last entry (or give up after 30 s).
    let last = last_appended.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(30);
    while subscribers
        .iter()
        .any(|s| s.last_offset.load(Ordering::Relaxed) < last)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let drained = started.elapsed();
    let _ = stop.send(true);
    for task in tasks {
        let _ = task.await;
    }
    let deliveries: u64 = subscribers
        .iter()
        .map(|s| s.deliveries.load(Ordering::Relaxed))
        .sum();
    let caught_up = subscribers
        .iter()
        .filter(|s| s.last_offset.load(Ordering::Relaxed) >= last)
        .count();
    anyhow::ensure!(
        caught_up == n,
        "only {caught_up} of {n} subscribers received the last entry ({last}) within 30 s"
    );
    // End to end: the command sent to the entry received. Append to receive: the entry's `ts_ms`
    // (the log's clock as it appended the entry, same machine) to the entry received; `ts_ms` is
    // whole milliseconds, so this reads up to 1 ms high. Ack to receive: the writer holding the
    // ack (durable and published) to the entry received; a subscriber may get the entry first,
    // which counts as 0.
    let histogram = || Histogram::<u64>::new_with_bounds(1, 60_000_000, 3);
    let (mut end_to_end, mut append_to_receive) = (histogram()?, histogram()?);
    let (mut ack_to_receive, mut send_to_ack) = (histogram()?, histogram()?);
    let acked_at = acked_at.lock().expect("never poisoned").clone();
    for (stamp, acked) in acked_at
        .iter()
        .filter(|(stamp, _)| **stamp >= measured_from_us)
    {
        send_to_ack.record(acked.saturating_sub(*stamp).max(1))?;
    }
    for subscriber in &subscribers {
        let samples = subscriber.samples.lock().await;
        for sample in samples.iter().filter(|s| s.sent_us >= measured_from_us) {
            let received = sample.received_us;
            end_to_end.record(received.saturating_sub(sample.sent_us).max(1))?;
            append_to_receive.record(received.saturating_sub(sample.appended_ms * 1000).max(1))?;
            if let Some(acked) = acked_at.get(&sample.sent_us) {
                ack_to_receive.record(received.saturating_sub(*acked).max(1))?;
            }
        }
    }
    let ms = |us: u64| (us as f64 / 10.0).round() / 100.0;
    Ok(json!({
        "subscribers": n,
        "target_entries_per_s": if rate == 0 { json!("max") } else { json!(rate) },
        "entries_appended": renames * 2,
        "appended_entries_per_s": (renames as f64 * 2.0 / appended_for.as_secs_f64()).round(),
        "delivered_entries_per_s": (deliveries as f64 / drained.as_secs_f64()).round(),
        "deliveries": deliveries,
        "subscribers_caught_up": caught_up,
        "append_to_receive_ms": latency_ms(&append_to_receive),
        "ack_to_receive_ms": {"p50": ms(ack_to_receive.value_at_quantile(0.5)),
            "p99": ms(ack_to_receive.value_at_quantile(0.99))},
        "end_to_end_ms": {"p50": ms(end_to_end.value_at_quantile(0.5)), "p99": ms(end_to_end.value_at_quantile(0.99))},
        "command_ack_ms": {"p50": ms(send_to_ack.value_at_quantile(0.5)), "p99": ms(send_to_ack.value_at_quantile(0.99))},
    }))
}

/// A latency histogram in µs as p50, p99 and max in ms (two decimals) and its sample count.
pub(super) fn latency_ms(histogram: &Histogram<u64>) -> serde_json::Value {
    let ms = |us: u64| (us as f64 / 10.0).round() / 100.0;
    json!({"p50": ms(histogram.value_at_quantile(0.5)), "p99": ms(histogram.value_at_quantile(0.99)),
        "max": ms(histogram.max()), "samples": histogram.len()})
}

/// The binary `name`: `given`, else the one beside this executable.
///
/// # Errors
/// When this executable's folder cannot be found.
pub(super) fn sibling_binary(given: Option<&Path>, name: &str) -> anyhow::Result<PathBuf> {
    match given {
        Some(path) => Ok(path.to_path_buf()),
        None => std::env::current_exe()?
            .parent()
            .map(|dir| dir.join(name))
            .context("no directory for this binary"),
    }
}

/// Runs `octo-bench fanout`.
///
/// # Errors
/// When octo cannot start or a connection fails.
pub fn run(args: &FanoutArgs) -> anyhow::Result<serde_json::Value> {
    if let Some(bare) = args.bare {
        let mut results = Vec::new();
        for &n in &args.subscribers {
            for &rate in args.rates.iter().filter(|&&rate| rate > 0) {
                results.push(super::fanout_bare::run(
                    bare,
                    n,
                    rate,
                    args.seconds,
                    args.warmup,
                )?);
            }
        }
        return Ok(
            json!({"bench": "fanout", "server": format!("bare broadcast ({bare:?})"),
            "seconds": args.seconds, "warmup_seconds": args.warmup, "results": results}),
        );
    }
    let binary = sibling_binary(args.octo.as_deref(), "octo")?;
    std::fs::create_dir_all(&args.dir)?;
    let temporary = tempfile::tempdir_in(&args.dir)?;
    let octo = start_octo(
        &binary,
        &temporary.path().join("data"),
        &temporary.path().join("ws"),
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut writer = Client::connect(&octo.url, &octo.token, Encoding::Json).await?;
        let create = json!({"ch": "agent", "type": "session.create", "command_id": octo_core::CommandId::new(),
            "harness": "pi", "workspace": "."});
        writer.send(&create).await?;
        let session_id = loop {
            if let ServerFrame::Agent(AgentServerFrame::Ack(ack)) =
                writer.next_frame_within(Duration::from_secs(30)).await?
            {
                break ack.session_id.context("session.create refused")?.to_string();
            }
        };
        let mut results = Vec::new();
        for &n in &args.subscribers {
            for &rate in &args.rates {
                results.push(one_configuration(&octo, &session_id, n, rate, args).await?);
            }
        }
        Ok(json!({"bench": "fanout", "octo": binary.display().to_string(), "seconds": args.seconds,
            "warmup_seconds": args.warmup,
            "encoding": "json", "results": results}))
    })
}
