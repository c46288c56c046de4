//! Shared harness: an in-process broker on 127.0.0.1:0 over a temporary data dir, and small
//! helpers around the `rdkafka` client (librdkafka built from source).
#![allow(dead_code)]

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::FutureProducer;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use tiercel::broker::Broker;
use tiercel::config::Config;
use tokio::sync::oneshot;

pub struct TestBroker {
    pub addr: SocketAddr,
    /// Every listener's name and bound address.
    pub listeners: Vec<(String, SocketAddr)>,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestBroker {
    pub async fn start() -> TestBroker {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestBroker {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir, tweak).await
    }

    /// Starts a broker over an existing data dir (restart tests).
    pub async fn start_in(dir: tempfile::TempDir, tweak: impl FnOnce(&mut Config)) -> TestBroker {
        // broker logs on RUST_LOG=... for debugging a failing test
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let mut config = Config {
            listen: "127.0.0.1:0".parse().expect("addr"),
            metrics_listen: free_addr(),
            // the embedded tier lands beside it, in `<tmp>/data.tier`
            data_dir: dir.path().join("data"),
            ..Config::default()
        };
        tweak(&mut config);
        let broker = Broker::bind(config).await.expect("broker starts");
        let addr = broker.local_addr;
        let listeners = broker.listener_addrs();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            broker
                .run(async {
                    let _ = rx.await;
                })
                .await
                .expect("clean shutdown");
        });
        TestBroker {
            addr,
            listeners,
            dir,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    /// Graceful stop; returns the data dir for a restart.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("broker task");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        std::mem::replace(&mut self.dir, dir)
    }

    pub fn producer(&self, extra: &[(&str, &str)]) -> FutureProducer {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.bootstrap())
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "20000");
        for (k, v) in extra {
            c.set(*k, *v);
        }
        c.create().expect("producer")
    }

    pub fn consumer(&self) -> BaseConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .set("group.id", "tiercel-tests")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", "100")
            .create()
            .expect("consumer")
    }

    /// Reads `expected` messages from the start of `partitions` of `topic` (or fails after 30 s).
    pub fn consume(&self, topic: &str, partitions: i32, expected: usize) -> Vec<OwnedMessage> {
        let consumer = self.consumer();
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .expect("tpl");
        }
        consumer.assign(&tpl).expect("assign");
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while out.len() < expected && Instant::now() < deadline {
            if let Some(m) = consumer.poll(Duration::from_millis(100)) {
                out.push(m.expect("consume ok").detach());
            }
        }
        assert_eq!(
            out.len(),
            expected,
            "consumed {} of {expected} from {topic}",
            out.len()
        );
        // nothing beyond what was expected
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(300)) {
            panic!("unexpected extra message at offset {}", m.offset());
        }
        out
    }
}

/// A raw connection to the broker, reads bounded by a 10 s timeout.
pub fn connect(b: &TestBroker) -> TcpStream {
    let s = TcpStream::connect(b.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s
}

/// Sends one request encoded with the `kafka-protocol` client codec and decodes the response.
pub fn roundtrip<S, Req, Resp>(s: &mut S, api: i16, version: i16, corr: i32, req: &Req) -> Resp
where
    S: Read + Write,
    Req: kafka_protocol::protocol::Encodable,
    Resp: kafka_protocol::protocol::Decodable,
{
    send_request(s, api, version, corr, req);
    read_response(s, api, version, corr).expect("response")
}

/// Writes one request frame (client id `tiercel-tests`) without waiting for its answer.
pub fn send_request<S, Req>(s: &mut S, api: i16, version: i16, corr: i32, req: &Req)
where
    S: Write,
    Req: kafka_protocol::protocol::Encodable,
{
    use kafka_protocol::messages::{ApiKey, RequestHeader};
    use kafka_protocol::protocol::{Encodable, StrBytes};
    let key = ApiKey::try_from(api).expect("api key");
    let mut body = bytes::BytesMut::new();
    let mut h = RequestHeader::default();
    h.request_api_key = api;
    h.request_api_version = version;
    h.correlation_id = corr;
    h.client_id = Some(StrBytes::from_static_str("tiercel-tests"));
    h.encode(&mut body, key.request_header_version(version))
        .expect("header");
    req.encode(&mut body, version).expect("body");
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    s.write_all(&frame).expect("write");
}

/// Reads and decodes the response to `corr`; `Err` if the connection ends first.
pub fn read_response<S, Resp>(s: &mut S, api: i16, version: i16, corr: i32) -> std::io::Result<Resp>
where
    S: Read,
    Resp: kafka_protocol::protocol::Decodable,
{
    use kafka_protocol::messages::{ApiKey, ResponseHeader};
    use kafka_protocol::protocol::Decodable;
    let key = ApiKey::try_from(api).expect("api key");
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let mut resp = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut resp)?;
    let mut buf = bytes::Bytes::from(resp);
    let rh = ResponseHeader::decode(&mut buf, key.response_header_version(version))
        .expect("response header");
    assert_eq!(rh.correlation_id, corr);
    Ok(Resp::decode(&mut buf, version).expect("response body"))
}

pub fn admin(
    bootstrap: &str,
) -> rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client")
}

/// Creates a topic through the admin API and waits for the result.
pub async fn create_topic(b: &TestBroker, name: &str, partitions: i32) {
    create_topic_with(b, name, partitions, &[]).await
}

/// Creates a topic through CreateTopics (rdkafka) with topic configs.
pub async fn create_topic_with(
    b: &TestBroker,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) {
    use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
    let mut t = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        t = t.set(k, v);
    }
    let res = admin(&b.bootstrap())
        .create_topics([&t], &AdminOptions::new())
        .await
        .expect("create_topics");
    assert!(res.iter().all(|r| r.is_ok()), "{res:?}");
}

/// A TCP proxy in front of the broker for fault injection a real broker cannot be asked for:
/// it can swallow the broker's responses (the requests were processed, the client never hears)
/// and cut every open connection at once.
pub struct CuttingProxy {
    pub addr: SocketAddr,
    upstream: std::sync::Arc<parking_lot::Mutex<Option<SocketAddr>>>,
    conns: std::sync::Arc<parking_lot::Mutex<Vec<tokio::task::AbortHandle>>>,
    swallow: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl CuttingProxy {
    pub async fn start() -> CuttingProxy {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let addr = listener.local_addr().expect("addr");
        let upstream: std::sync::Arc<parking_lot::Mutex<Option<SocketAddr>>> = Default::default();
        let conns: std::sync::Arc<parking_lot::Mutex<Vec<tokio::task::AbortHandle>>> =
            Default::default();
        let swallow: std::sync::Arc<std::sync::atomic::AtomicBool> = Default::default();
        let (up, cs, sw) = (upstream.clone(), conns.clone(), swallow.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Some(target) = *up.lock() else { continue };
                let sw = sw.clone();
                let task = tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw_half) = server.into_split();
                    let upward = async move { tokio::io::copy(&mut cr, &mut sw_half).await };
                    let downward = async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = sr.read(&mut buf).await?;
                            if n == 0 {
                                return Ok::<_, std::io::Error>(());
                            }
                            if !sw.load(Ordering::SeqCst) {
                                cw.write_all(&buf[..n]).await?;
                            }
                        }
                    };
                    let _ = tokio::join!(upward, downward);
                });
                cs.lock().push(task.abort_handle());
            }
        });
        CuttingProxy {
            addr,
            upstream,
            conns,
            swallow,
        }
    }

    pub fn point_at(&self, broker: SocketAddr) {
        *self.upstream.lock() = Some(broker);
    }

    /// While on, the broker's responses are read and thrown away.
    pub fn swallow_responses(&self, on: bool) {
        self.swallow.store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// Drops every connection that is open now.
    pub fn cut(&self) -> usize {
        let mut cs = self.conns.lock();
        let n = cs.len();
        for c in cs.drain(..) {
            c.abort();
        }
        n
    }
}

/// A loopback address with a port that was free a moment ago.
/// `GET /metrics` from a broker's metrics listener: the whole HTTP answer, which must be 200.
pub fn scrape(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).expect("connect to /metrics");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("response");
    assert!(
        out.starts_with("HTTP/1.1 200"),
        "{}",
        out.lines().next().unwrap_or_default()
    );
    out
}

/// A port free now and never handed out before by this process: two ports picked one after
/// the other for one broker (its listener and its /metrics) are never the same, which the
/// operating system alone does not promise, as nothing is bound to the first yet.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// Runs the built binary on `port` over `<dir>/data` (plus `extra` flags) and waits until it
/// accepts connections. The caller kills it (`kill -9` tests) or lets it drop.
pub fn spawn_binary(dir: &std::path::Path, port: u16, extra: &[&str]) -> std::process::Child {
    spawn_binary_at(env!("CARGO_BIN_EXE_tiercel"), dir, port, extra)
}

/// As [`spawn_binary`], for the binary at `bin`.
pub fn spawn_binary_at(
    bin: &str,
    dir: &std::path::Path,
    port: u16,
    extra: &[&str],
) -> std::process::Child {
    use std::process::{Command, Stdio};
    let child = Command::new(bin)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir.join("data"))
        .args(["--metrics-listen", &free_addr().to_string()])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tiercel");
    wait_listening(port, "broker");
    child
}

/// Waits (up to 20 s) until something accepts connections on 127.0.0.1:`port`.
pub fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Makes a stopped broker's transaction log say the coordinator had moved `txn_id`'s open
/// transaction to `state` (PrepareCommit, PrepareAbort) when the broker died, before it wrote
/// the markers: the record it would have appended, appended. Returns the transaction's
/// metadata as it was (Ongoing).
pub fn decide_before_crash(
    data_dir: &std::path::Path,
    txn_id: &str,
    state: tiercel::txn::txn_log::TxnState,
) -> tiercel::txn::txn_log::TxnMeta {
    let mut ongoing = None;
    amend_txn(data_dir, txn_id, |meta| {
        assert_eq!(meta.state, tiercel::txn::txn_log::TxnState::Ongoing);
        ongoing = Some(meta.clone());
        meta.state = state;
    });
    ongoing.expect("the transaction is in the log")
}

/// Changes what a stopped broker's transaction log says of `txn_id` (its last state, changed
/// by `f`, appended as the coordinator would have).
pub fn amend_txn(
    data_dir: &std::path::Path,
    txn_id: &str,
    f: impl FnOnce(&mut tiercel::txn::txn_log::TxnMeta),
) {
    use tiercel::format::journal::{decode_prefix, encode};
    use tiercel::txn::txn_log::TxnRecord;
    let path = data_dir.join("transactions.log");
    let bytes = std::fs::read(&path).expect("transaction log");
    let (records, _) = decode_prefix::<TxnRecord>(&bytes);
    let mut meta = records
        .iter()
        .rev()
        .find_map(|r| match r {
            TxnRecord::Put { id, meta } if id == txn_id => Some(meta.clone()),
            _ => None,
        })
        .expect("the transactional id is in the log");
    f(&mut meta);
    let mut tail = Vec::new();
    encode(
        &TxnRecord::Put {
            id: txn_id.into(),
            meta,
        },
        &mut tail,
    )
    .expect("encode");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("open");
    std::io::Write::write_all(&mut file, &tail).expect("append");
}

/// A transactional producer (`linger.ms` 5, then `extra`), its transactions initialised.
pub fn txn_producer(
    bootstrap: &str,
    id: &str,
    extra: &[(&str, &str)],
) -> rdkafka::producer::BaseProducer {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("transactional.id", id)
        .set("linger.ms", "5");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    let p: rdkafka::producer::BaseProducer = c.create().expect("producer");
    rdkafka::producer::Producer::init_transactions(&p, Duration::from_secs(20))
        .expect("init_transactions");
    p
}

/// Every value readable from the start of `topic` under `isolation`, in the order read: the
/// reader goes on until every partition has reported its end (partition EOF: the high watermark
/// for read_uncommitted, the last stable offset for read_committed) with nothing after it, so
/// "nothing more" is what the broker answered, not what arrived before a timer ran out.
pub fn read_to_end(bootstrap: &str, topic: &str, partitions: i32, isolation: &str) -> Vec<String> {
    read_to_end_with(bootstrap, topic, partitions, isolation, &[])
}

/// [`read_to_end`] by a consumer with the settings `extra` as well.
pub fn read_to_end_with(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    isolation: &str,
    extra: &[(&str, &str)],
) -> Vec<String> {
    let mut conf = ClientConfig::new();
    conf.set("bootstrap.servers", bootstrap)
        .set("group.id", format!("reader-{isolation}"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", isolation)
        .set("fetch.wait.max.ms", "50");
    for (k, v) in extra {
        conf.set(*k, *v);
    }
    let c: BaseConsumer = conf.create().expect("consumer");
    assign_from_start(&c, topic, partitions);
    let mut out = Vec::new();
    let mut at_end = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while at_end.len() < partitions as usize {
        assert!(
            Instant::now() < deadline,
            "{topic}: no end reached: {out:?}"
        );
        match c.poll(Duration::from_millis(50)) {
            None => {}
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => panic!("consume: {e}"),
            Some(Ok(m)) => {
                at_end.remove(&m.partition());
                out.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
            }
        }
    }
    out
}

/// Total bytes and count of the files ending in `.{ext}` anywhere below `dir`.
pub fn dir_bytes(dir: &std::path::Path, ext: &str) -> (u64, usize) {
    let mut total = (0, 0);
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                let (b, n) = dir_bytes(&p, ext);
                total = (total.0 + b, total.1 + n);
            } else if p.extension().is_some_and(|x| x == ext) {
                total.0 += e.metadata().map(|m| m.len()).unwrap_or(0);
                total.1 += 1;
            }
        }
    }
    total
}

/// OffsetForLeaderEpoch (`version`) for one partition on the node at `addr`: (error code,
/// leader epoch, end offset).
pub fn offset_for_leader_epoch(
    addr: &str,
    topic: &str,
    partition: i32,
    current_leader_epoch: i32,
    leader_epoch: i32,
    version: i16,
) -> (i16, i32, i64) {
    use kafka_protocol::messages::offset_for_leader_epoch_request::{
        OffsetForLeaderPartition, OffsetForLeaderTopic,
    };
    use kafka_protocol::messages::{
        BrokerId, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;
    let mut p = OffsetForLeaderPartition::default();
    p.partition = partition;
    p.current_leader_epoch = current_leader_epoch;
    p.leader_epoch = leader_epoch;
    let mut t = OffsetForLeaderTopic::default();
    t.topic = TopicName(StrBytes::from_string(topic.to_string()));
    t.partitions = vec![p];
    let mut req = OffsetForLeaderEpochRequest::default();
    req.replica_id = BrokerId(-1);
    req.topics = vec![t];
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let resp: OffsetForLeaderEpochResponse = roundtrip(&mut s, 23, version, 9, &req);
    let r = &resp.topics[0].partitions[0];
    (r.error_code, r.leader_epoch, r.end_offset)
}

/// Assigns every partition of `topic` to `consumer`, each from its first offset.
pub fn assign_from_start<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partitions: i32,
) {
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
}
