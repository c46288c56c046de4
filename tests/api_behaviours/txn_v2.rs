//! Transactions v2 (KIP-890 part 2) over the raw protocol: `transaction.version` 2 finalized in
//! ApiVersions; Produce v12+ and TxnOffsetCommit v5 add partitions and groups to the open
//! transaction themselves; EndTxn v5 bumps the epoch (retries answered with the new one), so a
//! late write of an ended transaction is refused; an exhausted epoch moves the transactional id
//! to a new producer id.

use crate::common::{connect, create_topic, roundtrip, TestBroker};
use crate::util::*;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;
use std::net::TcpStream;

const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;

/// Produce at `v` of one transactional batch of `n` records (sequences from `seq`) for
/// `t`-`partition` by `(pid, epoch)` of transactional id `id`: the partition's error code.
fn txn_produce(
    s: &mut TcpStream,
    v: i16,
    id: &str,
    (t, partition): (&str, i32),
    (pid, epoch): (ProducerId, i16),
    (seq, n): (i32, i32),
) -> i16 {
    let values: Vec<String> = (0..n)
        .map(|i| format!("{id}-{epoch}-{}", seq + i))
        .collect();
    let records: Vec<(i64, &str)> = values.iter().map(|v| (now_ms(), v.as_str())).collect();
    let mut req = produce_batch_request(
        t,
        partition,
        record_batch(&records, Some((pid.0, epoch, seq))),
    );
    req.transactional_id = Some(tid(id));
    let resp: ProduceResponse = roundtrip(s, 0, v, 7, &req);
    resp.responses[0].partition_responses[0].error_code
}

/// EndTxn v5: (error, producer id, epoch) of the answer.
fn end_v5(
    s: &mut TcpStream,
    id: &str,
    (pid, epoch): (ProducerId, i16),
    commit: bool,
) -> (i16, i64, i16) {
    let resp = end_txn_at(s, 5, id, (pid, epoch), commit);
    (resp.error_code, resp.producer_id.0, resp.producer_epoch)
}

/// TxnOffsetCommit v5 of `offset` for `t`-0 in `group`: the partition's error code.
fn txn_commit_v5(
    conn: &mut TcpStream,
    id: &str,
    (pid, epoch): (ProducerId, i16),
    group: &str,
    t: &str,
    offset: i64,
) -> i16 {
    let mut req = TxnOffsetCommitRequest::default();
    req.transactional_id = tid(id);
    req.group_id = GroupId(s(group));
    req.producer_id = pid;
    req.producer_epoch = epoch;
    req.generation_id = -1;
    let mut p = TxnOffsetCommitRequestPartition::default();
    p.partition_index = 0;
    p.committed_offset = offset;
    p.committed_leader_epoch = -1;
    let mut tt = TxnOffsetCommitRequestTopic::default();
    tt.name = topic(t);
    tt.partitions.push(p);
    req.topics.push(tt);
    let resp: TxnOffsetCommitResponse = roundtrip(conn, 28, 5, 9, &req);
    resp.topics[0].partitions[0].error_code
}

/// (producer id, epoch, commit?) of every marker in `t`-`partition`.
fn markers(b: &TestBroker, t: &str, partition: i32) -> Vec<(i64, i16)> {
    fetch_batches(b, t, partition, 0)
        .into_iter()
        .filter(|h| h.control)
        .map(|h| (h.producer_id, h.producer_epoch))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_v2_join_by_produce_and_bump_the_epoch_at_each_end() {
    let b = TestBroker::start().await;
    create_topic(&b, "tv2", 2).await;
    create_topic(&b, "tv2-in", 1).await;
    let mut s = connect(&b);

    // the feature clients look for
    let versions: ApiVersionsResponse = roundtrip(&mut s, 18, 3, 1, &ApiVersionsRequest::default());
    let tv = versions
        .finalized_features
        .iter()
        .find(|f| f.name.as_str() == "transaction.version")
        .expect("transaction.version finalized");
    assert_eq!((tv.min_version_level, tv.max_version_level), (2, 2));
    let end_api = versions
        .api_keys
        .iter()
        .find(|k| k.api_key == 26)
        .expect("EndTxn");
    assert_eq!(end_api.max_version, 5);

    let (pid, e) = init_pid(&mut s, "tx-v2", 60_000);
    // no AddPartitionsToTxn: Produce v12 adds the partitions, TxnOffsetCommit v5 the group
    assert_eq!(
        txn_produce(&mut s, 12, "tx-v2", ("tv2", 0), (pid, e), (0, 3)),
        0
    );
    assert_eq!(
        txn_produce(&mut s, 12, "tx-v2", ("tv2", 1), (pid, e), (0, 2)),
        0
    );
    let st = describe_txn(&b, "tx-v2");
    assert_eq!(st.transaction_state.as_str(), "Ongoing");
    assert_eq!(txn_partitions(&st), vec![("tv2".to_string(), vec![0, 1])]);
    assert_eq!(
        txn_commit_v5(&mut s, "tx-v2", (pid, e), "g-v2", "tv2-in", 7),
        0
    );
    // an older protocol's produce to a partition the transaction does not hold is refused
    create_topic(&b, "tv2-other", 1).await;
    assert_eq!(
        txn_produce(&mut s, 11, "tx-v2", ("tv2-other", 0), (pid, e), (0, 1)),
        INVALID_TXN_STATE
    );

    // the commit answers the next epoch; the markers carry it
    assert_eq!(end_v5(&mut s, "tx-v2", (pid, e), true), (0, pid.0, e + 1));
    assert_eq!(committed(&b, "g-v2", "tv2-in", &[0]), vec![7]);
    assert_eq!(markers(&b, "tv2", 0), vec![(pid.0, e + 1)]);
    assert_eq!(markers(&b, "tv2", 1), vec![(pid.0, e + 1)]);
    // a retry of the commit (its answer lost) gets the same answer
    assert_eq!(end_v5(&mut s, "tx-v2", (pid, e), true), (0, pid.0, e + 1));
    // a late write of the ended transaction is refused; the next one starts at sequence 0
    assert_eq!(
        txn_produce(&mut s, 12, "tx-v2", ("tv2", 0), (pid, e), (3, 1)),
        INVALID_PRODUCER_EPOCH
    );
    assert_eq!(
        txn_produce(&mut s, 12, "tx-v2", ("tv2", 0), (pid, e + 1), (0, 2)),
        0
    );
    assert_eq!(
        txn_commit_v5(&mut s, "tx-v2", (pid, e + 1), "g-v2", "tv2-in", 9),
        0
    );
    assert_eq!(
        end_v5(&mut s, "tx-v2", (pid, e + 1), false),
        (0, pid.0, e + 2)
    );
    assert_eq!(markers(&b, "tv2", 0), vec![(pid.0, e + 1), (pid.0, e + 2)]);
    assert_eq!(
        committed(&b, "g-v2", "tv2-in", &[0]),
        vec![7],
        "the abort drops its offsets"
    );

    // an abort with nothing open still bumps; a commit with nothing open is refused; an old
    // epoch that is not a retry is fenced
    assert_eq!(
        end_v5(&mut s, "tx-v2", (pid, e + 2), false),
        (0, pid.0, e + 3)
    );
    assert_eq!(
        end_v5(&mut s, "tx-v2", (pid, e + 3), true).0,
        INVALID_TXN_STATE
    );
    assert_eq!(
        end_v5(&mut s, "tx-v2", (pid, e + 1), false).0,
        90,
        "PRODUCER_FENCED"
    );
    // the first protocol still works for the same id
    assert_eq!(add_v3(&mut s, "tx-v2", pid, e + 3, "tv2", &[1]), vec![0]);
    assert_eq!(
        txn_produce(&mut s, 11, "tx-v2", ("tv2", 1), (pid, e + 3), (0, 1)),
        0
    );
    assert_eq!(end_txn(&mut s, "tx-v2", pid, e + 3, true), 0);
    assert_eq!(markers(&b, "tv2", 1), vec![(pid.0, e + 1), (pid.0, e + 3)]);
    assert_eq!(
        describe_txn(&b, "tx-v2").producer_epoch,
        e + 3,
        "v1 ends without a bump"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_epoch_moves_the_id_to_a_new_producer_id() {
    use tiercel::txn::txn_log::TxnState;
    let b = TestBroker::start().await;
    create_topic(&b, "tv2x", 1).await;
    let (pid, _) = init_pid(&mut connect(&b), "tx-x", 60_000);
    let dir = b.stop().await;
    let last = i16::MAX - 1;
    crate::common::amend_txn(&dir.path().join("data"), "tx-x", |m| {
        m.epoch = last;
        m.state = TxnState::CompleteCommit;
    });
    let b = TestBroker::start_in(dir, |_| {}).await;
    let mut s = connect(&b);
    assert_eq!(
        txn_produce(&mut s, 12, "tx-x", ("tv2x", 0), (pid, last), (0, 2)),
        0
    );
    let (err, next, epoch) = end_v5(&mut s, "tx-x", (pid, last), true);
    assert_eq!(err, 0);
    assert_ne!(next, pid.0, "a new producer id");
    assert_eq!(epoch, 0);
    // the markers close the old producer id with the last epoch
    assert_eq!(markers(&b, "tv2x", 0), vec![(pid.0, i16::MAX)]);
    // a retry from the old producer id is answered with the new one
    assert_eq!(end_v5(&mut s, "tx-x", (pid, last), true), (0, next, 0));
    let next = ProducerId(next);
    assert_eq!(
        txn_produce(&mut s, 12, "tx-x", ("tv2x", 0), (next, 0), (0, 1)),
        0
    );
    assert_eq!(end_v5(&mut s, "tx-x", (next, 0), true), (0, next.0, 1));
    // the old producer id is gone
    assert_eq!(
        txn_produce(&mut s, 12, "tx-x", ("tv2x", 0), (pid, i16::MAX), (0, 1)),
        kafka_protocol::error::ResponseError::InvalidProducerIdMapping.code()
    );
}
