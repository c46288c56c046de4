//! The built broker binary over a power-loss mount, and the client helpers the power-loss
//! scenarios share.
//!
//! The broker's data dir is `<mount>/data` (the broker creates it), it runs without a tier (`--tier-url none`), optionally with one
//! kind of fsync skipped through the test-only `TIERCEL_UNSAFE_SKIP_FSYNC` (set on the child
//! only). Its output goes to a log file outside the mount, so it survives the power cut and a
//! failing test can show it. A broker still running when its handle drops is killed and reaped:
//! a failing test leaves no process behind.

use super::PowerLossMount;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A mounted power-loss file system for a broker. Its data dir `<mount>/data` does not exist
/// yet: the broker creates it, and must make it durable itself (a directory never synced into
/// its parent vanishes at the power cut with everything in it).
pub fn mount() -> PowerLossMount {
    PowerLossMount::mount().expect("mount the power-loss file system (needs /dev/fuse and root)")
}

pub struct Broker {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
}

impl Broker {
    /// Starts the binary on `port` over `<fs>/data` and waits until it accepts connections.
    pub fn start(
        fs: &PowerLossMount,
        port: u16,
        skip_fsync: Option<&str>,
        extra: &[&str],
    ) -> Broker {
        let log = fs.scratch().join("broker.log");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("broker log file");
        let err = out.try_clone().expect("broker log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tiercel"));
        cmd.args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(fs.path().join("data"))
            .args(["--metrics-listen", &crate::common::free_addr().to_string()])
            .args(["--tier-url", "none"])
            .args(extra)
            .env_remove("TIERCEL_UNSAFE_SKIP_FSYNC")
            .env("NO_COLOR", "1")
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        if let Some(kind) = skip_fsync {
            cmd.env("TIERCEL_UNSAFE_SKIP_FSYNC", kind);
        }
        let child = cmd.spawn().expect("spawn tiercel");
        let mut broker = Broker {
            child: Some(child),
            port,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            let exited = broker
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                panic!(
                    "broker exited at start-up ({status}):\n{}",
                    broker.log_tail()
                );
            }
            assert!(
                Instant::now() < deadline,
                "broker did not start:\n{}",
                broker.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        broker
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `kill -9` and reap: no clean shutdown, nothing more reaches the file system.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `kill -9`, then the power cut; prints what the file system forgot.
    pub fn power_cut(&mut self, fs: &PowerLossMount, what: &str) {
        self.kill();
        let lost = fs.lose_power();
        eprintln!(
            "{what}: power cut; forgot {lost:?}; before it {:?}",
            fs.stats()
        );
    }

    /// The last lines the broker printed (for failure messages).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn consumer(bootstrap: &str, group: &str, isolation: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("isolation.level", isolation)
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("consumer")
}

/// Assigns `topic`'s partitions from their first offset.
pub fn from_start(c: &BaseConsumer, topic: &str, partitions: i32) {
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("tpl");
    }
    c.assign(&tpl).expect("assign");
}

/// Polls records into `seen`, by (partition, offset), until `enough` says so or `limit` passes.
pub fn poll_until(
    c: &BaseConsumer,
    seen: &mut BTreeMap<(i32, i64), Vec<u8>>,
    limit: Duration,
    enough: impl Fn(&BTreeMap<(i32, i64), Vec<u8>>) -> bool,
) {
    let deadline = Instant::now() + limit;
    while !enough(seen) && Instant::now() < deadline {
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let value = m.payload().unwrap_or_default().to_vec();
                seen.insert((m.partition(), m.offset()), value);
            }
            Some(Err(e)) => eprintln!("read back: {e}"),
            None => {}
        }
    }
}
