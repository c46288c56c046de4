//! Raw-protocol helpers shared by the behaviour tests: each sends one request over its own
//! connection (or a given one) with the `kafka-protocol` codec and returns what the test checks.

use crate::common::{admin, connect, roundtrip, TestBroker};
use bytes::Bytes;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::describe_transactions_response::TransactionState;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    BatchDecodeInfo, Compression, Record, RecordBatchDecoder, RecordBatchEncoder,
    RecordEncodeOptions, TimestampType,
};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use uuid::Uuid;

pub fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

pub fn topic(v: &str) -> TopicName {
    TopicName(s(v))
}

pub fn tid(v: &str) -> TransactionalId {
    TransactionalId(s(v))
}

/// Wall-clock milliseconds (the broker's clock in these tests).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// Polls `f` every 50 ms until it returns `Some`, failing with `what` after `secs` seconds.
pub async fn eventually<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn blocking<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    tokio::task::spawn_blocking(f).await.expect("client thread")
}

pub use crate::common::create_topic_with;

/// A topic config's current value, through DescribeConfigs (rdkafka).
pub async fn config_value(b: &TestBroker, topic: &str, key: &str) -> String {
    use rdkafka::admin::{AdminOptions, ResourceSpecifier};
    let res = admin(&b.bootstrap())
        .describe_configs([&ResourceSpecifier::Topic(topic)], &AdminOptions::new())
        .await
        .expect("describe_configs");
    let r = res.into_iter().next().expect("one").expect("ok");
    r.get(key).expect("entry").value.clone().unwrap_or_default()
}

/// ListOffsets for one partition: (error, offset, timestamp).
pub fn list_offsets(b: &TestBroker, t: &str, partition: i32, ts: i64, v: i16) -> (i16, i64, i64) {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let mut req = ListOffsetsRequest::default();
    req.replica_id = BrokerId(-1);
    let mut lt = ListOffsetsTopic::default();
    lt.name = topic(t);
    let mut p = ListOffsetsPartition::default();
    p.partition_index = partition;
    p.timestamp = ts;
    lt.partitions.push(p);
    req.topics.push(lt);
    let resp: ListOffsetsResponse = roundtrip(&mut connect(b), 2, v, 1, &req);
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.offset, p.timestamp)
}

/// Metadata v13 for the given topics (by name or by id).
pub fn metadata(b: &TestBroker, topics: Vec<(Option<&str>, Uuid)>) -> MetadataResponse {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    let mut req = MetadataRequest::default();
    req.allow_auto_topic_creation = false;
    req.topics = Some(
        topics
            .into_iter()
            .map(|(name, id)| {
                let mut t = MetadataRequestTopic::default();
                t.name = name.map(topic);
                t.topic_id = id;
                t
            })
            .collect(),
    );
    roundtrip(&mut connect(b), 3, 13, 1, &req)
}

/// Appends one uncompressed CreateTime batch holding `records` (timestamp, value) with Produce
/// v8, acks=all: (error, base offset).
pub fn produce(b: &TestBroker, t: &str, partition: i32, records: &[(i64, &str)]) -> (i16, i64) {
    let req = produce_request(t, partition, records);
    let resp: ProduceResponse = roundtrip(&mut connect(b), 0, 8, 1, &req);
    let p = &resp.responses[0].partition_responses[0];
    if p.error_code != 0 {
        eprintln!(
            "produce to {t}-{partition}: {:?} {:?}",
            p.error_message, p.record_errors
        );
    }
    (p.error_code, p.base_offset)
}

/// A Produce request (acks=all) of one uncompressed CreateTime batch holding `records`
/// (timestamp, value) for one partition.
pub fn produce_request(t: &str, partition: i32, records: &[(i64, &str)]) -> ProduceRequest {
    produce_batch_request(t, partition, record_batch(records, None))
}

/// One uncompressed CreateTime batch holding `records` (timestamp, value); with `producer`
/// (producer id, epoch, first sequence) a transactional one.
pub fn record_batch(records: &[(i64, &str)], producer: Option<(i64, i16, i32)>) -> Bytes {
    let recs: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (ts, v))| Record {
            transactional: producer.is_some(),
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: producer.map_or(-1, |p| p.0),
            producer_epoch: producer.map_or(-1, |p| p.1),
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // the encoder starts a new batch where offset - sequence changes; without a
            // producer the batch's base sequence comes out as -1
            sequence: producer.map_or(-1, |p| p.2) + i as i32,
            timestamp: *ts,
            key: None,
            value: Some(Bytes::copy_from_slice(v.as_bytes())),
            headers: Default::default(),
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    let opts = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &recs, &opts).expect("encode batch");
    buf.freeze()
}

/// A Produce request (acks=all) of `batch` for one partition.
pub fn produce_batch_request(t: &str, partition: i32, batch: Bytes) -> ProduceRequest {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    let mut pd = PartitionProduceData::default();
    pd.index = partition;
    pd.records = Some(batch);
    let mut td = TopicProduceData::default();
    td.name = topic(t);
    td.partition_data.push(pd);
    let mut req = ProduceRequest::default();
    req.acks = -1;
    req.timeout_ms = 10_000;
    req.topic_data.push(td);
    req
}

/// The batch headers a Fetch v11 from `offset` returns (up to 1 MiB).
pub fn fetch_batches(b: &TestBroker, t: &str, partition: i32, offset: i64) -> Vec<BatchDecodeInfo> {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    let mut req = FetchRequest::default();
    req.replica_id = BrokerId(-1);
    req.max_wait_ms = 100;
    req.min_bytes = 1;
    req.max_bytes = 1 << 20;
    let mut p = FetchPartition::default();
    p.partition = partition;
    p.fetch_offset = offset;
    p.partition_max_bytes = 1 << 20;
    let mut ft = FetchTopic::default();
    ft.topic = topic(t);
    ft.partitions.push(p);
    req.topics.push(ft);
    let resp: FetchResponse = roundtrip(&mut connect(b), 1, 11, 1, &req);
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.error_code, 0, "fetch {t}-{partition} at {offset}");
    let mut records = p.records.clone().unwrap_or_default();
    RecordBatchDecoder::decode_batch_info(&mut records).expect("batch headers")
}

/// OffsetFetch v5 of `group` for `partitions` of `t`: the committed offsets (-1: none).
pub fn committed(b: &TestBroker, group: &str, t: &str, partitions: &[i32]) -> Vec<i64> {
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    let mut req = OffsetFetchRequest::default();
    req.group_id = GroupId(s(group));
    let mut ot = OffsetFetchRequestTopic::default();
    ot.name = topic(t);
    ot.partition_indexes = partitions.to_vec();
    req.topics = Some(vec![ot]);
    let resp: OffsetFetchResponse = roundtrip(&mut connect(b), 9, 5, 1, &req);
    assert_eq!(resp.error_code, 0);
    resp.topics[0]
        .partitions
        .iter()
        .map(|p| {
            assert_eq!(p.error_code, 0);
            p.committed_offset
        })
        .collect()
}

/// InitProducerId v4 for a transactional id: (producer id, epoch).
pub fn init_pid(s: &mut TcpStream, id: &str, timeout_ms: i32) -> (ProducerId, i16) {
    let mut req = InitProducerIdRequest::default();
    req.transactional_id = Some(tid(id));
    req.transaction_timeout_ms = timeout_ms;
    req.producer_id = ProducerId(-1);
    req.producer_epoch = -1;
    let resp: InitProducerIdResponse = roundtrip(s, 22, 4, 1, &req);
    assert_eq!(resp.error_code, 0, "InitProducerId {id}");
    (resp.producer_id, resp.producer_epoch)
}

/// AddPartitionsToTxn v3 (the client form): the error of each partition, in order.
pub fn add_v3(
    s: &mut TcpStream,
    id: &str,
    pid: ProducerId,
    epoch: i16,
    t: &str,
    parts: &[i32],
) -> Vec<i16> {
    let mut req = AddPartitionsToTxnRequest::default();
    req.v3_and_below_transactional_id = tid(id);
    req.v3_and_below_producer_id = pid;
    req.v3_and_below_producer_epoch = epoch;
    let mut tt = AddPartitionsToTxnTopic::default();
    tt.name = topic(t);
    tt.partitions = parts.to_vec();
    req.v3_and_below_topics.push(tt);
    let resp: AddPartitionsToTxnResponse = roundtrip(s, 24, 3, 2, &req);
    resp.results_by_topic_v3_and_below[0]
        .results_by_partition
        .iter()
        .map(|p| p.partition_error_code)
        .collect()
}

/// EndTxn v3: the error code.
pub fn end_txn(s: &mut TcpStream, id: &str, pid: ProducerId, epoch: i16, commit: bool) -> i16 {
    end_txn_at(s, 3, id, (pid, epoch), commit).error_code
}

/// EndTxn at `v`: the answer.
pub fn end_txn_at(
    s: &mut TcpStream,
    v: i16,
    id: &str,
    (pid, epoch): (ProducerId, i16),
    commit: bool,
) -> EndTxnResponse {
    let mut req = EndTxnRequest::default();
    req.transactional_id = tid(id);
    req.producer_id = pid;
    req.producer_epoch = epoch;
    req.committed = commit;
    roundtrip(s, 26, v, 3, &req)
}

/// DescribeTransactions v0 of one transactional id.
pub fn describe_txn(b: &TestBroker, id: &str) -> TransactionState {
    let mut req = DescribeTransactionsRequest::default();
    req.transactional_ids = vec![tid(id)];
    let resp: DescribeTransactionsResponse = roundtrip(&mut connect(b), 65, 0, 4, &req);
    resp.transaction_states
        .into_iter()
        .next()
        .expect("one state")
}

/// DescribeTransactions' partitions of a transaction, per topic.
pub fn txn_partitions(st: &TransactionState) -> Vec<(String, Vec<i32>)> {
    st.topics
        .iter()
        .map(|t| (t.topic.0.to_string(), t.partitions.clone()))
        .collect()
}
