//! Transaction coordinator behaviours: the batched AddPartitionsToTxn (v4, verify_only),
//! ListTransactions' duration filter, PrepareAbort recovery at start-up and transactional-id
//! expiry.

use crate::common::{connect, create_topic, roundtrip, TestBroker};
use crate::util::*;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::*;
use rdkafka::producer::{BaseRecord, Producer};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

/// One transaction of a v4+ AddPartitionsToTxn: (id, producer id, epoch, verify_only,
/// partitions of `topic`).
type Txn<'a> = (&'a str, ProducerId, i16, bool, &'a [i32]);

/// AddPartitionsToTxn at `v` (4+, the batched form) for `txns`, all on `t`: per transaction, the
/// error of each partition in order.
fn add_batched(s: &mut TcpStream, v: i16, t: &str, txns: &[Txn]) -> Vec<Vec<i16>> {
    let mut req = AddPartitionsToTxnRequest::default();
    for (id, pid, epoch, verify_only, parts) in txns {
        let mut tx = AddPartitionsToTxnTransaction::default();
        tx.transactional_id = tid(id);
        tx.producer_id = *pid;
        tx.producer_epoch = *epoch;
        tx.verify_only = *verify_only;
        let mut tt = AddPartitionsToTxnTopic::default();
        tt.name = topic(t);
        tt.partitions = parts.to_vec();
        tx.topics.push(tt);
        req.transactions.push(tx);
    }
    let resp: AddPartitionsToTxnResponse = roundtrip(s, 24, v, 5, &req);
    assert_eq!(resp.error_code, 0);
    txns.iter()
        .map(|(id, ..)| {
            let r = resp
                .results_by_transaction
                .iter()
                .find(|r| r.transactional_id.0.as_str() == *id)
                .expect("a result per transaction");
            let mut by_partition: Vec<(i32, i16)> = r.topic_results[0]
                .results_by_partition
                .iter()
                .map(|p| (p.partition_index, p.partition_error_code))
                .collect();
            by_partition.sort();
            by_partition.into_iter().map(|(_, c)| c).collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_partitions_to_txn_v4_verifies_and_adds() {
    let b = TestBroker::start().await;
    create_topic(&b, "apt", 3).await;
    let mut s = connect(&b);
    let (pid, epoch) = init_pid(&mut s, "tx-apt", 60_000);
    assert_eq!(add_v3(&mut s, "tx-apt", pid, epoch, "apt", &[0]), vec![0]);

    // verify_only: partition 0 is in the transaction; nothing is added by asking
    assert_eq!(
        add_batched(&mut s, 4, "apt", &[("tx-apt", pid, epoch, true, &[0])]),
        vec![vec![0]]
    );
    // a stale epoch is fenced, an unknown transactional id has no producer-id mapping; each
    // transaction of the batch is answered on its own
    assert_eq!(
        add_batched(
            &mut s,
            4,
            "apt",
            &[
                ("tx-apt", pid, epoch - 1, true, &[0]),
                ("tx-nobody", pid, epoch, true, &[0]),
            ]
        ),
        vec![vec![90], vec![49]],
        "PRODUCER_FENCED, INVALID_PRODUCER_ID_MAPPING"
    );
    assert_eq!(
        txn_partitions(&describe_txn(&b, "tx-apt")),
        vec![("apt".into(), vec![0])]
    );

    // verify_only false adds, as v3 does
    assert_eq!(
        add_batched(&mut s, 4, "apt", &[("tx-apt", pid, epoch, false, &[1, 2])]),
        vec![vec![0, 0]]
    );
    let st = describe_txn(&b, "tx-apt");
    assert_eq!(
        (st.error_code, st.transaction_state.as_str()),
        (0, "Ongoing")
    );
    assert_eq!(txn_partitions(&st), vec![("apt".into(), vec![0, 1, 2])]);
    assert_eq!(
        add_batched(
            &mut s,
            4,
            "apt",
            &[("tx-apt", pid, epoch, true, &[0, 1, 2])]
        ),
        vec![vec![0, 0, 0]]
    );
    assert_eq!(end_txn(&mut s, "tx-apt", pid, epoch, true), 0);
    b.stop().await;
}

/// Kafka's coordinator (TransactionCoordinator.handleVerifyPartitionsInTransaction, since
/// KAFKA-16314 / Kafka 3.8) answers a verify_only for a partition the transaction does not hold
/// with TRANSACTION_ABORTABLE (120), at v4 and v5 alike; Kafka 3.5-3.7 answered
/// INVALID_TXN_STATE (48).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_only_of_a_partition_not_in_the_transaction_is_abortable() {
    let b = TestBroker::start().await;
    create_topic(&b, "apt-missing", 2).await;
    let mut s = connect(&b);
    let (pid, epoch) = init_pid(&mut s, "tx-missing", 60_000);
    assert_eq!(
        add_v3(&mut s, "tx-missing", pid, epoch, "apt-missing", &[0]),
        vec![0]
    );
    for v in [4, 5] {
        assert_eq!(
            add_batched(
                &mut s,
                v,
                "apt-missing",
                &[("tx-missing", pid, epoch, true, &[0, 1])]
            ),
            vec![vec![0, 120]],
            "v{v}"
        );
    }
    b.stop().await;
}

fn list_txns(b: &TestBroker, duration_filter: i64) -> Vec<String> {
    let mut req = ListTransactionsRequest::default();
    req.state_filters = vec![s("Ongoing")];
    req.duration_filter = duration_filter;
    let resp: ListTransactionsResponse = roundtrip(&mut connect(b), 66, 1, 1, &req);
    assert_eq!(resp.error_code, 0);
    let mut ids: Vec<String> = resp
        .transaction_states
        .iter()
        .map(|t| t.transactional_id.0.to_string())
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_transactions_duration_filter_lists_only_older_open_transactions() {
    let b = TestBroker::start().await;
    create_topic(&b, "dur", 1).await;
    let mut s = connect(&b);
    let (pid, epoch) = init_pid(&mut s, "tx-dur", 60_000);
    let opened = Instant::now(); // no later than the transaction's start
    assert_eq!(add_v3(&mut s, "tx-dur", pid, epoch, "dur", &[0]), vec![0]);
    assert_eq!(list_txns(&b, -1), vec!["tx-dur".to_string()], "no filter");
    assert!(
        list_txns(&b, 60_000).is_empty(),
        "open for less than a minute"
    );
    // once it has been open longer than 300 ms it is listed under that filter
    eventually(10, "the transaction to pass the filter", || {
        (list_txns(&b, 300) == ["tx-dur"]).then_some(())
    })
    .await;
    // (the broker counts whole milliseconds)
    let age = opened.elapsed();
    assert!(age >= Duration::from_millis(299), "listed after {age:?}");
    assert!(list_txns(&b, 60_000).is_empty());
    assert_eq!(end_txn(&mut s, "tx-dur", pid, epoch, false), 0);
    assert!(list_txns(&b, -1).is_empty(), "no longer Ongoing");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_decided_before_a_crash_is_finished_at_start_up() {
    use tiercel::txn::txn_log::TxnState;
    let b = TestBroker::start().await;
    create_topic(&b, "undone", 1).await;
    let bs = b.bootstrap();
    let p = blocking(move || {
        let p = crate::common::txn_producer(&bs, "tx-undone", &[]);
        p.begin_transaction().expect("begin");
        for i in 0..3 {
            let v = format!("u-{i}");
            p.send(BaseRecord::to("undone").partition(0).key(&v).payload(&v))
                .expect("enqueue");
        }
        p.flush(T).expect("flush");
        p
    })
    .await;
    let dir = b.stop().await;
    // the coordinator had written PrepareAbort when the broker died: the markers and the
    // completion are missing
    let ongoing = crate::common::decide_before_crash(
        &dir.path().join("data"),
        "tx-undone",
        TxnState::PrepareAbort,
    );
    assert!(ongoing.partitions.contains(&("undone".to_string(), 0)));

    let b = TestBroker::start_in(dir, |_| {}).await;
    // the abort marker lands after the three records
    eventually(10, "the abort marker", || {
        (list_offsets(&b, "undone", 0, -1, 1) == (0, 4, -1)).then_some(())
    })
    .await;
    // the coordinator records the completion once the marker is durable: a moment after it
    // shows in the log
    let st = eventually(10, "the abort to complete", || {
        let st = describe_txn(&b, "tx-undone");
        (st.error_code == 0 && st.transaction_state.as_str() == "CompleteAbort").then_some(st)
    })
    .await;
    assert!(st.topics.is_empty(), "{:?}", st.topics);
    let bs = b.bootstrap();
    let (committed, all) = blocking(move || {
        (
            crate::common::read_to_end(&bs, "undone", 1, "read_committed"),
            crate::common::read_to_end(&bs, "undone", 1, "read_uncommitted"),
        )
    })
    .await;
    assert!(
        committed.is_empty(),
        "aborted records are invisible: {committed:?}"
    );
    assert_eq!(all, vec!["u-0", "u-1", "u-2"]);
    blocking(move || drop(p)).await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_transactional_ids_expire() {
    let b = TestBroker::start_with(|c| {
        c.transactional_id_expiration_ms = 1000;
        c.transaction_abort_interval_ms = 100;
    })
    .await;
    create_topic(&b, "exp", 1).await;
    let mut s = connect(&b);
    let (pid, epoch) = init_pid(&mut s, "tx-idle", 60_000);
    assert_eq!(add_v3(&mut s, "tx-idle", pid, epoch, "exp", &[0]), vec![0]);
    assert_eq!(end_txn(&mut s, "tx-idle", pid, epoch, true), 0);
    let st = describe_txn(&b, "tx-idle");
    assert_eq!(
        (st.error_code, st.transaction_state.as_str()),
        (0, "CompleteCommit")
    );
    // an open transaction is never expired, however long its id is idle
    let (open_pid, open_epoch) = init_pid(&mut s, "tx-open", 60_000);
    assert_eq!(
        add_v3(&mut s, "tx-open", open_pid, open_epoch, "exp", &[0]),
        vec![0]
    );

    eventually(10, "tx-idle to expire", || {
        (describe_txn(&b, "tx-idle").error_code == 105).then_some(())
    })
    .await;
    let st = describe_txn(&b, "tx-open");
    assert_eq!(
        (st.error_code, st.transaction_state.as_str()),
        (0, "Ongoing")
    );
    // the expired id starts over: a new producer id at epoch 0
    let (new_pid, new_epoch) = init_pid(&mut s, "tx-idle", 60_000);
    assert_ne!(new_pid, pid);
    assert_eq!(new_epoch, 0);
    assert_eq!(end_txn(&mut s, "tx-open", open_pid, open_epoch, false), 0);
    b.stop().await;
}
