//! Transactions end to end with librdkafka (rdkafka): commit and abort under both isolation
//! levels, the last stable offset, fencing by a new producer instance, transaction timeouts,
//! offsets committed inside a transaction, and the operator APIs.

#![allow(clippy::disallowed_methods)] // a test (or benchmark) reads and writes its files directly

mod common;

use common::{connect, create_topic, read_to_end as read, roundtrip, txn_producer, TestBroker};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

fn send(p: &BaseProducer, topic: &str, partition: i32, value: &str) {
    p.send(
        BaseRecord::to(topic)
            .partition(partition)
            .key(value)
            .payload(value),
    )
    .expect("enqueue");
}

/// `v` sorted (several partitions interleave in any order).
fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// The values `<prefix>-0` .. `<prefix>-(n-1)`.
fn values(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

fn list_offset(b: &TestBroker, topic: &str, partition: i32, isolation: i8) -> i64 {
    let mut s = connect(b);
    let mut req = ListOffsetsRequest::default();
    req.replica_id = BrokerId(-1);
    req.isolation_level = isolation;
    let mut t = ListOffsetsTopic::default();
    t.name = TopicName(StrBytes::from_string(topic.into()));
    let mut p = ListOffsetsPartition::default();
    p.partition_index = partition;
    p.timestamp = -1;
    t.partitions.push(p);
    req.topics.push(t);
    let resp: ListOffsetsResponse = roundtrip(&mut s, 2, 5, 1, &req);
    resp.topics[0].partitions[0].offset
}

async fn blocking<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    tokio::task::spawn_blocking(f).await.expect("client thread")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_records_are_read_once_and_aborted_ones_only_by_read_uncommitted() {
    let b = TestBroker::start().await;
    create_topic(&b, "tx", 2).await;
    let bs = b.bootstrap();
    blocking(move || {
        let p = txn_producer(&bs, "tx-basic", &[]);
        for (round, commit) in [("c1", true), ("ab", false), ("c2", true)] {
            p.begin_transaction().expect("begin");
            for i in 0..10 {
                send(&p, "tx", i % 2, &format!("{round}-{i}"));
            }
            p.flush(T).expect("flush");
            if commit {
                p.commit_transaction(T).expect("commit");
            } else {
                p.abort_transaction(T).expect("abort");
            }
        }
    })
    .await;
    let bs = b.bootstrap();
    let (committed, all) = blocking(move || {
        (
            read(&bs, "tx", 2, "read_committed"),
            read(&bs, "tx", 2, "read_uncommitted"),
        )
    })
    .await;
    // exactly the committed records, each once
    let want = sorted([values("c1", 10), values("c2", 10)].concat());
    assert_eq!(sorted(committed), want);
    let want_all = sorted([values("c1", 10), values("ab", 10), values("c2", 10)].concat());
    assert_eq!(
        sorted(all),
        want_all,
        "read_uncommitted sees the aborted records too, each once"
    );
    // the markers took offsets: 5 records + 3 markers per partition
    assert_eq!(list_offset(&b, "tx", 0, 0), 18);
}

/// Records large enough that fetches answer with batches left in their segment files (sent
/// with `sendfile` on this plain-TCP listener): both isolation levels read exactly what they
/// must, the committed read cut at an open transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_reads_sent_from_files_keep_both_isolation_levels_exact() {
    let metrics_addr = common::free_addr();
    let b = TestBroker::start_with(|c| c.metrics_listen = metrics_addr).await;
    create_topic(&b, "big", 2).await;
    let bs = b.bootstrap();
    let pad = "x".repeat(3000);
    let big = move |round: &str, n: usize| -> Vec<String> {
        (0..n).map(|i| format!("{round}-{i}-{pad}")).collect()
    };
    let (rounds, open) = (big.clone(), big.clone());
    let p = blocking(move || {
        let p = txn_producer(&bs, "tx-big", &[]);
        for (round, commit) in [("c1", true), ("ab", false), ("c2", true), ("open", false)] {
            p.begin_transaction().expect("begin");
            for (i, v) in rounds(round, 40).iter().enumerate() {
                send(&p, "big", (i % 2) as i32, v);
            }
            p.flush(T).expect("flush");
            match (round, commit) {
                ("open", _) => {}
                (_, true) => p.commit_transaction(T).expect("commit"),
                (_, false) => p.abort_transaction(T).expect("abort"),
            }
        }
        p
    })
    .await;
    let bs = b.bootstrap();
    let (committed, all) = blocking(move || {
        (
            read(&bs, "big", 2, "read_committed"),
            read(&bs, "big", 2, "read_uncommitted"),
        )
    })
    .await;
    assert_eq!(
        sorted(committed),
        sorted([big("c1", 40), big("c2", 40)].concat())
    );
    let every = [
        big("c1", 40),
        big("ab", 40),
        big("c2", 40),
        open("open", 40),
    ]
    .concat();
    assert_eq!(sorted(all), sorted(every));
    blocking(move || p.commit_transaction(T).expect("commit")).await;
    let sent = tokio::task::block_in_place(|| common::scrape(metrics_addr))
        .lines()
        .find(|l| l.starts_with("tiercel_fetch_sendfile_bytes_total"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(sent > 0.0, "no fetch was sent from a file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_stable_offset_holds_read_committed_back_until_the_commit() {
    let b = TestBroker::start().await;
    create_topic(&b, "lso", 1).await;
    let bs = b.bootstrap();
    let p = blocking(move || {
        let p = txn_producer(&bs, "tx-lso", &[]);
        p.begin_transaction().expect("begin");
        for i in 0..5 {
            send(&p, "lso", 0, &format!("t-{i}"));
        }
        p.flush(T).expect("flush");
        p
    })
    .await;
    // plain records after the open transaction's: still behind the LSO
    let plain = b.producer(&[]);
    for i in 0..3 {
        plain
            .send(
                rdkafka::producer::FutureRecord::to("lso")
                    .partition(0)
                    .key("k")
                    .payload(&format!("plain-{i}")),
                T,
            )
            .await
            .expect("plain send");
    }
    assert_eq!(list_offset(&b, "lso", 0, 0), 8, "high watermark");
    assert_eq!(
        list_offset(&b, "lso", 0, 1),
        0,
        "LSO at the open transaction"
    );
    let bs = b.bootstrap();
    let (before, p) = blocking(move || (read(&bs, "lso", 1, "read_committed"), p)).await;
    assert!(
        before.is_empty(),
        "the reader reached the LSO and got nothing: {before:?}"
    );
    blocking(move || p.commit_transaction(T).expect("commit")).await;
    assert_eq!(list_offset(&b, "lso", 0, 1), 9, "LSO = HW once committed");
    let bs = b.bootstrap();
    let after = blocking(move || read(&bs, "lso", 1, "read_committed")).await;
    assert_eq!(
        after,
        [values("t", 5), values("plain", 3)].concat(),
        "in log order, each once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_instance_fences_the_old_one_and_aborts_its_transaction() {
    let b = TestBroker::start().await;
    create_topic(&b, "fence", 1).await;
    let bs = b.bootstrap();
    blocking(move || {
        let old = txn_producer(&bs, "tx-fence", &[]);
        old.begin_transaction().expect("begin");
        send(&old, "fence", 0, "zombie");
        old.flush(T).expect("flush");
        let new = txn_producer(&bs, "tx-fence", &[]);
        let err = old
            .commit_transaction(T)
            .expect_err("the old instance is fenced");
        use rdkafka::types::RDKafkaErrorCode as E;
        assert!(
            matches!(
                err.rdkafka_error_code(),
                Some(E::Fenced | E::ProducerFenced | E::InvalidProducerEpoch)
            ),
            "{err:?}"
        );
        new.begin_transaction().expect("begin");
        send(&new, "fence", 0, "live");
        new.commit_transaction(T).expect("commit");
    })
    .await;
    let bs = b.bootstrap();
    let (committed, all) = blocking(move || {
        (
            read(&bs, "fence", 1, "read_committed"),
            read(&bs, "fence", 1, "read_uncommitted"),
        )
    })
    .await;
    assert_eq!(committed, vec!["live".to_string()]);
    assert_eq!(all, vec!["zombie".to_string(), "live".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_open_past_its_timeout_is_aborted() {
    let b = TestBroker::start_with(|c| c.transaction_abort_interval_ms = 100).await;
    create_topic(&b, "slow", 1).await;
    let bs = b.bootstrap();
    let p = blocking(move || {
        let p = txn_producer(&bs, "tx-slow", &[("transaction.timeout.ms", "1000")]);
        p.begin_transaction().expect("begin");
        send(&p, "slow", 0, "late");
        p.flush(T).expect("flush");
        p
    })
    .await;
    assert_eq!(list_offset(&b, "slow", 0, 1), 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while list_offset(&b, "slow", 0, 1) == 0 {
        assert!(
            Instant::now() < deadline,
            "the timed-out transaction was never aborted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(list_offset(&b, "slow", 0, 1), 2, "record + abort marker");
    blocking(move || {
        assert!(p.commit_transaction(T).is_err(), "the producer was fenced");
    })
    .await;
    let bs = b.bootstrap();
    let committed = blocking(move || read(&bs, "slow", 1, "read_committed")).await;
    assert!(committed.is_empty(), "{committed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_sent_to_a_transaction_commit_and_abort_with_it() {
    let b = TestBroker::start().await;
    create_topic(&b, "in", 1).await;
    create_topic(&b, "out", 1).await;
    let plain = b.producer(&[]);
    for i in 0..10 {
        plain
            .send(
                rdkafka::producer::FutureRecord::to("in")
                    .partition(0)
                    .key("k")
                    .payload(&format!("in-{i}")),
                T,
            )
            .await
            .expect("seed");
    }
    let bs = b.bootstrap();
    let addr = b.addr;
    blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bs)
            .set("group.id", "ctp")
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .create()
            .expect("consumer");
        let p = txn_producer(&bs, "tx-ctp", &[]);
        let offsets = |next: i64| {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset("in", 0, Offset::Offset(next))
                .expect("tpl");
            tpl
        };
        // aborted: the group's offset does not move
        p.begin_transaction().expect("begin");
        send(&p, "out", 0, "x");
        p.send_offsets_to_transaction(&offsets(5), &consumer.group_metadata().expect("cgm"), T)
            .expect("send offsets");
        p.flush(T).expect("flush");
        p.abort_transaction(T).expect("abort");
        let committed = consumer
            .committed_offsets(offsets(0), T)
            .expect("committed");
        assert_eq!(committed.elements()[0].offset(), Offset::Invalid);
        // open with offsets: OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT
        p.begin_transaction().expect("begin");
        send(&p, "out", 0, "y");
        p.send_offsets_to_transaction(&offsets(10), &consumer.group_metadata().expect("cgm"), T)
            .expect("send offsets");
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(T)).expect("timeout");
        let mut req = OffsetFetchRequest::default();
        req.group_id = GroupId(StrBytes::from_static_str("ctp"));
        let mut t =
            kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic::default();
        t.name = TopicName(StrBytes::from_static_str("in"));
        t.partition_indexes = vec![0];
        req.topics = Some(vec![t]);
        req.require_stable = true;
        let resp: OffsetFetchResponse = roundtrip(&mut s, 9, 7, 1, &req);
        assert_eq!(
            resp.topics[0].partitions[0].error_code, 88,
            "UNSTABLE_OFFSET_COMMIT"
        );
        p.commit_transaction(T).expect("commit");
        let committed = consumer
            .committed_offsets(offsets(0), T)
            .expect("committed");
        assert_eq!(committed.elements()[0].offset(), Offset::Offset(10));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_can_list_and_describe_transactions_and_producers() {
    let b = TestBroker::start().await;
    create_topic(&b, "ops", 1).await;
    let bs = b.bootstrap();
    let p = blocking(move || {
        let p = txn_producer(&bs, "tx-ops", &[]);
        p.begin_transaction().expect("begin");
        send(&p, "ops", 0, "v");
        p.flush(T).expect("flush");
        p
    })
    .await;
    let mut s = connect(&b);
    let mut req = ListTransactionsRequest::default();
    req.state_filters = vec![
        StrBytes::from_static_str("Ongoing"),
        StrBytes::from_static_str("Bogus"),
    ];
    req.duration_filter = -1;
    let resp: ListTransactionsResponse = roundtrip(&mut s, 66, 1, 1, &req);
    assert_eq!(
        resp.unknown_state_filters,
        vec![StrBytes::from_static_str("Bogus")]
    );
    assert_eq!(resp.transaction_states.len(), 1);
    assert_eq!(
        resp.transaction_states[0].transactional_id.0.as_str(),
        "tx-ops"
    );
    let pid = resp.transaction_states[0].producer_id;

    let mut req = DescribeTransactionsRequest::default();
    req.transactional_ids = vec![
        TransactionalId(StrBytes::from_static_str("tx-ops")),
        TransactionalId(StrBytes::from_static_str("nope")),
    ];
    let resp: DescribeTransactionsResponse = roundtrip(&mut s, 65, 0, 2, &req);
    let st = &resp.transaction_states[0];
    assert_eq!(
        (st.error_code, st.transaction_state.as_str()),
        (0, "Ongoing")
    );
    assert_eq!(st.producer_id, pid);
    assert_eq!(st.topics[0].topic.0.as_str(), "ops");
    assert_eq!(st.topics[0].partitions, vec![0]);
    assert_eq!(
        resp.transaction_states[1].error_code, 105,
        "TRANSACTIONAL_ID_NOT_FOUND"
    );

    let mut req = DescribeProducersRequest::default();
    let mut t = kafka_protocol::messages::describe_producers_request::TopicRequest::default();
    t.name = TopicName(StrBytes::from_static_str("ops"));
    t.partition_indexes = vec![0];
    req.topics.push(t);
    let resp: DescribeProducersResponse = roundtrip(&mut s, 61, 0, 3, &req);
    let ps = &resp.topics[0].partitions[0].active_producers;
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0].producer_id, pid);
    assert_eq!(ps[0].current_txn_start_offset, 0);
    blocking(move || p.commit_transaction(T).expect("commit")).await;
    let resp: DescribeProducersResponse = roundtrip(&mut s, 61, 0, 4, &req);
    assert_eq!(
        resp.topics[0].partitions[0].active_producers[0].current_txn_start_offset,
        -1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_decided_before_a_crash_is_finished_at_start_up() {
    use tiercel::txn::txn_log::TxnState;
    let b = TestBroker::start().await;
    create_topic(&b, "decided", 1).await;
    let bs = b.bootstrap();
    let p = blocking(move || {
        let p = txn_producer(&bs, "tx-decided", &[]);
        p.begin_transaction().expect("begin");
        for i in 0..3 {
            send(&p, "decided", 0, &format!("d-{i}"));
        }
        p.flush(T).expect("flush");
        p
    })
    .await;
    let dir = b.stop().await;
    // the coordinator had written PrepareCommit when the broker died: only the markers and
    // the completion are missing
    common::decide_before_crash(
        &dir.path().join("data"),
        "tx-decided",
        TxnState::PrepareCommit,
    );

    let b = TestBroker::start_in(dir, |_| {}).await;
    let bs = b.bootstrap();
    let committed = blocking(move || read(&bs, "decided", 1, "read_committed")).await;
    assert_eq!(committed, vec!["d-0", "d-1", "d-2"]);
    let mut s = connect(&b);
    let mut req = DescribeTransactionsRequest::default();
    req.transactional_ids = vec![TransactionalId(StrBytes::from_static_str("tx-decided"))];
    let resp: DescribeTransactionsResponse = roundtrip(&mut s, 65, 0, 1, &req);
    assert_eq!(
        resp.transaction_states[0].transaction_state.as_str(),
        "CompleteCommit"
    );
    blocking(move || drop(p)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_transactional_requests_get_kafka_errors() {
    use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
    let b = TestBroker::start().await;
    create_topic(&b, "bad-txn", 1).await;
    let mut s = connect(&b);
    let tid = |v: &'static str| TransactionalId(StrBytes::from_static_str(v));
    let init = |s: &mut std::net::TcpStream, timeout: i32| {
        let mut req = InitProducerIdRequest::default();
        req.transactional_id = Some(tid("bad"));
        req.transaction_timeout_ms = timeout;
        req.producer_id = ProducerId(-1);
        req.producer_epoch = -1;
        let resp: InitProducerIdResponse = roundtrip(s, 22, 4, 1, &req);
        resp
    };
    assert_eq!(
        init(&mut s, 0).error_code,
        50,
        "INVALID_TRANSACTION_TIMEOUT"
    );
    assert_eq!(
        init(&mut s, 1_000_000_000).error_code,
        50,
        "above transaction_max_timeout_ms"
    );
    let ok = init(&mut s, 10_000);
    assert_eq!(ok.error_code, 0);
    let (pid, epoch) = (ok.producer_id, ok.producer_epoch);

    let end = |s: &mut std::net::TcpStream, id: &'static str, epoch: i16| {
        let mut req = EndTxnRequest::default();
        req.transactional_id = tid(id);
        req.producer_id = pid;
        req.producer_epoch = epoch;
        req.committed = true;
        let resp: EndTxnResponse = roundtrip(s, 26, 3, 2, &req);
        resp.error_code
    };
    assert_eq!(
        end(&mut s, "nope", epoch),
        49,
        "INVALID_PRODUCER_ID_MAPPING"
    );
    assert_eq!(
        end(&mut s, "bad", epoch),
        48,
        "nothing open: INVALID_TXN_STATE"
    );
    assert_eq!(end(&mut s, "bad", epoch + 1), 90, "PRODUCER_FENCED (v2+)");

    let add = |s: &mut std::net::TcpStream, topics: &[(&'static str, i32)], epoch: i16| {
        let mut req = AddPartitionsToTxnRequest::default();
        req.v3_and_below_transactional_id = tid("bad");
        req.v3_and_below_producer_id = pid;
        req.v3_and_below_producer_epoch = epoch;
        for (t, p) in topics {
            let mut tt = AddPartitionsToTxnTopic::default();
            tt.name = TopicName(StrBytes::from_static_str(t));
            tt.partitions = vec![*p];
            req.v3_and_below_topics.push(tt);
        }
        let resp: AddPartitionsToTxnResponse = roundtrip(s, 24, 3, 3, &req);
        resp.results_by_topic_v3_and_below
            .iter()
            .map(|t| {
                (
                    t.name.0.to_string(),
                    t.results_by_partition[0].partition_error_code,
                )
            })
            .collect::<Vec<_>>()
    };
    let mut codes = add(&mut s, &[("bad-txn", 0), ("missing", 0)], epoch);
    codes.sort();
    assert_eq!(
        codes,
        vec![("bad-txn".to_string(), 55), ("missing".to_string(), 3)],
        "OPERATION_NOT_ATTEMPTED beside UNKNOWN_TOPIC_OR_PARTITION"
    );
    assert_eq!(
        add(&mut s, &[("bad-txn", 0)], epoch - 1)[0].1,
        90,
        "stale epoch"
    );
    assert_eq!(add(&mut s, &[("bad-txn", 0)], epoch)[0].1, 0);

    // offsets for a group the transaction never added
    let mut req = TxnOffsetCommitRequest::default();
    req.transactional_id = tid("bad");
    req.group_id = GroupId(StrBytes::from_static_str("g"));
    req.producer_id = pid;
    req.producer_epoch = epoch;
    req.generation_id = -1;
    let mut t =
        kafka_protocol::messages::txn_offset_commit_request::TxnOffsetCommitRequestTopic::default();
    t.name = TopicName(StrBytes::from_static_str("bad-txn"));
    let mut p = kafka_protocol::messages::txn_offset_commit_request::TxnOffsetCommitRequestPartition::default();
    p.committed_offset = 1;
    t.partitions.push(p);
    req.topics.push(t);
    let resp: TxnOffsetCommitResponse = roundtrip(&mut s, 28, 3, 4, &req);
    assert_eq!(
        resp.topics[0].partitions[0].error_code, 48,
        "INVALID_TXN_STATE"
    );
    // and the broker still answers
    assert_eq!(end(&mut s, "bad", epoch), 0, "the open transaction commits");
}
