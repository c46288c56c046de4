//! What the cluster tests share: a real etcd, Tiercel nodes (the built binary) sharing one
//! bucket (a local directory), and the clients' views of them.

#![allow(dead_code)] // each test crate uses some of these

use crate::common::{free_port, read_response, send_request};
use kafka_protocol::messages::{MetadataRequest, MetadataResponse};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const LEASE_MS: u64 = 3000;

pub struct Etcd {
    pub child: Child,
    pub endpoint: String,
    pub ports: (u16, u16),
    pub dir: tempfile::TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn etcd() -> Etcd {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = (free_port(), free_port());
    let child = spawn_etcd(dir.path(), ports);
    Etcd {
        child,
        endpoint: format!("http://127.0.0.1:{}", ports.0),
        ports,
        dir,
    }
}

impl Etcd {
    /// Kills etcd; `restart` brings it back on the same data and ports.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn restart(&mut self) {
        self.child = spawn_etcd(self.dir.path(), self.ports);
    }
}

pub fn spawn_etcd(dir: &Path, (client, peer): (u16, u16)) -> Child {
    let endpoint = format!("http://127.0.0.1:{client}");
    let child = Command::new("etcd")
        .arg("--data-dir")
        .arg(dir.join("etcd"))
        .args(["--listen-client-urls", &endpoint])
        .args(["--advertise-client-urls", &endpoint])
        .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
        .args([
            "--initial-advertise-peer-urls",
            &format!("http://127.0.0.1:{peer}"),
        ])
        .args([
            "--initial-cluster",
            &format!("default=http://127.0.0.1:{peer}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("etcd is not installed (Debian: apt-get install etcd-server)");
    crate::common::wait_listening(client, "etcd");
    child
}

pub struct Node {
    pub id: i32,
    pub port: u16,
    pub metrics_port: u16,
    pub dir: PathBuf,
    pub child: Option<Child>,
}

impl Node {
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for the process to end.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct Cluster {
    pub etcd: Etcd,
    pub tier: tempfile::TempDir,
    pub root: tempfile::TempDir,
    pub nodes: Vec<Node>,
}

impl Cluster {
    pub fn start(n: i32) -> Cluster {
        Self::start_with(n, |_| Vec::new())
    }

    /// As [`Cluster::start`], node `id` with the flags `extra(id)` as well.
    pub fn start_with(n: i32, extra: impl Fn(i32) -> Vec<String>) -> Cluster {
        let mut c = Cluster {
            etcd: etcd(),
            tier: tempfile::tempdir().expect("tempdir"),
            root: tempfile::tempdir().expect("tempdir"),
            nodes: Vec::new(),
        };
        for id in 1..=n {
            let node = Node {
                id,
                port: free_port(),
                metrics_port: free_port(),
                dir: c.root.path().join(format!("node{id}")),
                child: None,
            };
            c.nodes.push(node);
            let flags = extra(id);
            c.launch_with(id, &flags.iter().map(String::as_str).collect::<Vec<_>>());
        }
        c
    }

    pub fn node(&mut self, id: i32) -> &mut Node {
        self.nodes.iter_mut().find(|n| n.id == id).expect("node id")
    }

    /// Starts (or restarts) node `id` on its port and data dir.
    pub fn launch(&mut self, id: i32) {
        self.launch_with(id, &[]);
    }

    /// Starts node `id` with `extra` flags as well.
    pub fn launch_with(&mut self, id: i32, extra: &[&str]) {
        let tier = url_of(self.tier.path());
        let endpoint = self.etcd.endpoint.clone();
        let node = self.node(id);
        std::fs::create_dir_all(&node.dir).expect("node dir");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.dir.join("tiercel.log"))
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_tiercel"))
            .args(["--listen", &node.addr()])
            .arg("--data-dir")
            .arg(node.dir.join("data"))
            .args([
                "--metrics-listen",
                &format!("127.0.0.1:{}", node.metrics_port),
            ])
            .args(["--node-id", &id.to_string()])
            .args(["--etcd-endpoints", &endpoint])
            .args(["--etcd-prefix", "/test"])
            .args(["--tier-url", &tier])
            .args(["--cluster-lease-ttl-ms", &LEASE_MS.to_string()])
            .args(["--num-partitions", "6"])
            .args(extra)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("spawn tiercel");
        crate::common::wait_listening(node.port, &format!("node {id}"));
        node.child = Some(child);
    }

    /// The sum of the series of metric `name` node `id` exports whose line contains `having`
    /// (a label, say; "" for every series).
    pub fn metric(&self, id: i32, name: &str, having: &str) -> f64 {
        let node = self.nodes.iter().find(|n| n.id == id).expect("node id");
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], node.metrics_port));
        crate::common::scrape(addr)
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
                    && l.contains(having)
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(Node::addr)
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| {
                let log = std::fs::read_to_string(n.dir.join("tiercel.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                format!(
                    "--- node {} ---\n{}\n",
                    n.id,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect()
    }
}

pub fn url_of(dir: &Path) -> String {
    format!("file://{}/", dir.display())
}

/// One partition as a Metadata answer shows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    pub leader: i32,
    pub epoch: i32,
    pub error: i16,
}

/// Metadata v12 for `topic` from the node at `addr`: live node ids and each partition.
pub fn metadata(addr: &str, topic: &str) -> Option<(Vec<i32>, BTreeMap<i32, Placement>)> {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::StrBytes;
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut req = MetadataRequest::default();
    let mut t = MetadataRequestTopic::default();
    t.name = Some(TopicName(StrBytes::from_string(topic.to_string())));
    req.topics = Some(vec![t]);
    req.allow_auto_topic_creation = false;
    send_request(&mut s, 3, 12, 1, &req);
    let resp: MetadataResponse = read_response(&mut s, 3, 12, 1).ok()?;
    let nodes = resp.brokers.iter().map(|b| b.node_id.0).collect();
    let t = resp.topics.first()?;
    if t.error_code != 0 {
        return None;
    }
    let parts = t
        .partitions
        .iter()
        .map(|p| {
            (
                p.partition_index,
                Placement {
                    leader: p.leader_id.0,
                    epoch: p.leader_epoch,
                    error: p.error_code,
                },
            )
        })
        .collect();
    Some((nodes, parts))
}

/// Waits until `addr` shows `topic` with every partition led by a live node and `check` holds.
pub fn wait_placement(
    c: &Cluster,
    addr: &str,
    topic: &str,
    what: &str,
    check: impl Fn(&[i32], &BTreeMap<i32, Placement>) -> bool,
) -> BTreeMap<i32, Placement> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = None;
    loop {
        if let Some((nodes, parts)) = metadata(addr, topic) {
            let led = parts
                .values()
                .all(|p| p.error == 0 && nodes.contains(&p.leader));
            if led && check(&nodes, &parts) {
                return parts;
            }
            last = Some((nodes, parts));
        }
        assert!(
            Instant::now() < deadline,
            "{what}: last metadata {last:?}\n{}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn per_node(parts: &BTreeMap<i32, Placement>) -> BTreeMap<i32, usize> {
    let mut m = BTreeMap::new();
    for p in parts.values() {
        *m.entry(p.leader).or_default() += 1;
    }
    m
}

pub fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let t = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        let res = crate::common::admin(bootstrap)
            .create_topics([&t], &AdminOptions::new())
            .await
            .expect("create_topics");
        assert!(res.iter().all(|r| r.is_ok()), "{res:?}");
    });
}

/// Produces `n` records to each partition (acks=all, idempotent) and returns each record's
/// (partition, offset, value).
pub fn produce(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    n: usize,
    tag: &str,
) -> Vec<(i32, i64, String)> {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let producer: FutureProducer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", "60000")
            .set("topic.metadata.refresh.interval.ms", "500")
            .create()
            .expect("producer");
        let mut out = Vec::new();
        for i in 0..n {
            for p in 0..partitions {
                let value = format!("{tag}-{p}-{i}");
                let d = producer
                    .send(
                        FutureRecord::<(), _>::to(topic)
                            .partition(p)
                            .payload(&value),
                        Duration::from_secs(60),
                    )
                    .await
                    .map_err(|(e, _)| e)
                    .expect("delivered");
                assert_eq!(d.partition, p);
                out.push((p, d.offset, value));
            }
        }
        out
    })
}

/// Reads every partition of `topic` from the start to its end (through any node).
pub fn consume_all(bootstrap: &str, topic: &str, partitions: i32) -> Vec<(i32, i64, String)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::Message;
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "cluster-test-reader")
        .set("enable.auto.commit", "false")
        .set("topic.metadata.refresh.interval.ms", "500")
        .create()
        .expect("consumer");
    let mut ends = BTreeMap::new();
    for p in 0..partitions {
        // a metadata answer during a leadership change may lack the partition's leader
        let deadline = Instant::now() + Duration::from_secs(30);
        let high = loop {
            match consumer.fetch_watermarks(topic, p, Duration::from_secs(10)) {
                Ok((_, high)) => break high,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("watermarks of {topic}/{p}: {e}; retrying");
                    std::thread::sleep(Duration::from_millis(300));
                }
                Err(e) => panic!("watermarks of {topic}/{p}: {e}"),
            }
        };
        ends.insert(p, high);
    }
    crate::common::assign_from_start(&consumer, topic, partitions);
    let mut out = Vec::new();
    let mut done = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while done.len() < partitions as usize {
        for p in 0..partitions {
            if ends[&p] == 0 {
                done.insert(p);
            }
        }
        assert!(
            Instant::now() < deadline,
            "consuming timed out: {} of {partitions} done",
            done.len()
        );
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            out.push((m.partition(), m.offset(), v));
            if m.offset() + 1 >= ends[&m.partition()] {
                done.insert(m.partition());
            }
        }
    }
    out.sort();
    out
}

/// Files below `dir` whose path contains `part`.
pub fn files_containing(dir: &Path, part: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().contains(part) {
                out.push(p);
            }
        }
    }
    out
}
