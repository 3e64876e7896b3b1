//! `octo-bench fanout --bare`: the fan-out bench's subscribers and measurement against a bare
//! broadcast server instead of `octo serve`: no log, no commands, no projections, no views, one
//! shared encoded entry, each socket written in batches as Octo writes them. It runs in this
//! process on a runtime of its own with as many workers as `octo serve` has, so the client and
//! the machine are the same; what Octo adds over the bare transport is the difference between
//! the two runs.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;

use super::fanout::{Subscriber, latency_ms, now_us, spawn_reader};

/// How the bare server writes its sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Bare {
    /// tokio-tungstenite frames and writes each message, as `octo serve` does (through axum).
    Tungstenite,
    /// Each entry framed once, its bytes shared by every socket and written straight to the TCP
    /// stream: the floor of a WebSocket fan-out on this machine.
    Raw,
}

/// Entries a lagging subscriber may fall behind before it misses some (counted, reported).
const BROADCAST_CAPACITY: usize = 8192;
/// Messages written before one flush, as Octo's writer does.
const WRITE_BATCH_MESSAGES: usize = 64;

/// An entry frame shaped and sized like Octo's `session.renamed` entry frame, so the same
/// scanner reads it: the offset, the publisher's clock in ms and, in the title, in µs.
fn frame(offset: u64, session_id: &str, user_id: &str) -> String {
    let us = now_us();
    format!(
        concat!(
            r#"{{"ch":"agent","type":"entry","session_id":"{s}","entry":{{"offset":{o},"ts_ms":{ms},"#,
            r#""user_id":"{u}","session_id":"{s}","kind":"event","producer":{{"id":"gw:{u}","seq":{o}}},"#,
            r#""body":{{"type":"session.renamed","title":"t{us}","source":"user"}}}}}}"#
        ),
        s = session_id,
        u = user_id,
        o = offset,
        ms = us / 1000,
        us = us,
    )
}

/// One socket: every broadcast entry, batched per write like Octo's writer.
async fn serve(stream: TcpStream, mut entries: broadcast::Receiver<Message>) {
    let _ = stream.set_nodelay(true);
    let Ok(socket) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (mut sink, mut source) = socket.split();
    tokio::spawn(async move { while let Some(Ok(_)) = source.next().await {} });
    loop {
        let first = match entries.recv().await {
            Ok(message) => message,
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => break,
        };
        if sink.feed(first).await.is_err() {
            return;
        }
        for _ in 1..WRITE_BATCH_MESSAGES {
            match entries.try_recv() {
                Ok(message) => {
                    if sink.feed(message).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::TryRecvError::Lagged(_)) => {}
                Err(_) => break,
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
    let _ = sink.close().await;
}

/// An unmasked, final server-to-client text frame around `payload` (RFC 6455 section 5.2).
fn ws_text_frame(payload: &[u8]) -> Arc<[u8]> {
    let mut framed = Vec::with_capacity(payload.len() + 10);
    framed.push(0x81);
    match payload.len() {
        len @ 0..=125 => framed.push(len as u8),
        len @ 126..=0xffff => {
            framed.push(126);
            framed.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            framed.push(127);
            framed.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    framed.extend_from_slice(payload);
    framed.into()
}

/// One socket, raw: every broadcast frame's bytes, batched into one write.
async fn serve_raw(stream: TcpStream, mut frames: broadcast::Receiver<Arc<[u8]>>) {
    let _ = stream.set_nodelay(true);
    let Ok(socket) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    // The client sends nothing before the first entry, so nothing is left in the WebSocket's
    // read buffer.
    let (mut read, mut write) = socket.into_inner().into_split();
    tokio::spawn(async move {
        let mut sink = [0u8; 4096];
        while matches!(read.read(&mut sink).await, Ok(n) if n > 0) {}
    });
    let mut batch = Vec::with_capacity(64 * 1024);
    loop {
        match frames.recv().await {
            Ok(frame) => batch.extend_from_slice(&frame),
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        }
        for _ in 1..WRITE_BATCH_MESSAGES {
            match frames.try_recv() {
                Ok(frame) => batch.extend_from_slice(&frame),
                Err(broadcast::error::TryRecvError::Lagged(_)) => {}
                Err(_) => break,
            }
        }
        if write.write_all(&batch).await.is_err() {
            return;
        }
        batch.clear();
    }
}

/// What the publisher hands to the sockets.
enum Publisher {
    Tungstenite(broadcast::Sender<Message>),
    Raw(broadcast::Sender<Arc<[u8]>>),
}

impl Publisher {
    fn receiver_count(&self) -> usize {
        match self {
            Publisher::Tungstenite(sender) => sender.receiver_count(),
            Publisher::Raw(sender) => sender.receiver_count(),
        }
    }

    fn send(&self, frame: String) {
        match self {
            Publisher::Tungstenite(sender) => {
                let _ = sender.send(Message::Text(frame.into()));
            }
            Publisher::Raw(sender) => {
                let _ = sender.send(ws_text_frame(frame.as_bytes()));
            }
        }
    }
}

/// One configuration: `n` subscribers, entries broadcast at `rate` per second.
pub(super) fn run(
    bare: Bare,
    n: usize,
    rate: u64,
    seconds: f64,
    warmup: f64,
) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(rate > 0, "the bare baseline runs at a fixed rate");
    let server = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bare-server")
        .build()?;
    let listener = server.block_on(TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let publish = match bare {
        Bare::Tungstenite => {
            let (publish, _) = broadcast::channel::<Message>(BROADCAST_CAPACITY);
            let accepting = publish.clone();
            server.spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(serve(stream, accepting.subscribe()));
                }
            });
            Publisher::Tungstenite(publish)
        }
        Bare::Raw => {
            let (publish, _) = broadcast::channel::<Arc<[u8]>>(BROADCAST_CAPACITY);
            let accepting = publish.clone();
            server.spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(serve_raw(stream, accepting.subscribe()));
                }
            });
            Publisher::Raw(publish)
        }
    };
    let client = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let expected_samples = (rate as f64 * (warmup + seconds) * 1.1) as usize;
    let (tasks, subscribers) = client.block_on(async {
        let mut tasks = Vec::with_capacity(n);
        let mut subscribers: Vec<Subscriber> = Vec::with_capacity(n);
        for _ in 0..n {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let (socket, _) =
                tokio_tungstenite::client_async(format!("ws://{addr}/"), stream).await?;
            // Nothing is published yet, so nothing is buffered in the WebSocket layer.
            let (task, subscriber) =
                spawn_reader(socket.into_inner(), 0, stopped.clone(), expected_samples);
            tasks.push(task);
            subscribers.push(subscriber);
        }
        anyhow::Ok((tasks, subscribers))
    })?;
    // Every socket is subscribed once its server task runs; wait for all of them.
    let deadline = Instant::now() + Duration::from_secs(30);
    while publish.receiver_count() < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    anyhow::ensure!(publish.receiver_count() >= n, "subscribers did not connect");
    let (session_id, user_id) = (
        uuid::Uuid::now_v7().to_string(),
        uuid::Uuid::now_v7().to_string(),
    );
    let total = ((warmup + seconds) * rate as f64) as u64;
    let measured_from_us = now_us() + (warmup * 1e6) as u64;
    let started = Instant::now();
    server.block_on(async {
        let interval = Duration::from_secs_f64(1.0 / rate as f64);
        for offset in 1..=total {
            tokio::time::sleep_until((started + interval.mul_f64(offset as f64)).into()).await;
            publish.send(frame(offset, &session_id, &user_id));
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while subscribers
        .iter()
        .any(|s| s.last_offset.load(Ordering::Relaxed) < total)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    let drained = started.elapsed();
    let _ = stop.send(true);
    let mut append_to_receive = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let deliveries: u64 = client.block_on(async {
        for task in tasks {
            let _ = task.await;
        }
        let mut deliveries = 0;
        for subscriber in &subscribers {
            deliveries += subscriber.deliveries.load(Ordering::Relaxed);
            for sample in subscriber.samples.lock().await.iter() {
                if sample.sent_us >= measured_from_us {
                    append_to_receive
                        .record(sample.received_us.saturating_sub(sample.sent_us).max(1))?;
                }
            }
        }
        anyhow::Ok(deliveries)
    })?;
    let caught_up = subscribers
        .iter()
        .filter(|s| s.last_offset.load(Ordering::Relaxed) >= total)
        .count();
    drop(publish);
    server.shutdown_timeout(Duration::from_secs(1));
    Ok(json!({
        "server": format!("{bare:?}"),
        "subscribers": n,
        "target_entries_per_s": rate,
        "entries_published": total,
        "frame_bytes": frame(total, &uuid::Uuid::nil().to_string(), &uuid::Uuid::nil().to_string()).len(),
        "delivered_entries_per_s": (deliveries as f64 / drained.as_secs_f64()).round(),
        "deliveries": deliveries,
        "subscribers_caught_up": caught_up,
        "publish_to_receive_ms": latency_ms(&append_to_receive),
    }))
}
