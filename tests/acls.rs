//! The ACL authorizer over real TCP: principals authenticated with SASL PLAIN, ACLs made with
//! CreateAcls, and a matrix of principal x operation x resource x pattern answered as Kafka's
//! authorizer answers (LITERAL, PREFIXED and `*` names, `User:*`, hosts, DENY over ALLOW, implied
//! DESCRIBE and DESCRIBE_CONFIGS, super users); DescribeAcls and DeleteAcls filters; ACLs that
//! survive a restart; SECURITY_DISABLED without an authorizer.

#![allow(clippy::disallowed_methods)] // a test (or benchmark) reads and writes its files directly

mod common;

use common::{roundtrip, TestBroker};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;
use tiercel::security::scram::Scram;

const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const GROUP_AUTHORIZATION_FAILED: i16 = 30;
const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
const SECURITY_DISABLED: i16 = 54;

// Kafka's codes
const TOPIC: i8 = 2;
const GROUP: i8 = 3;
const CLUSTER: i8 = 4;
const LITERAL: i8 = 3;
const PREFIXED: i8 = 4;
const MATCH: i8 = 2;
const ANY: i8 = 1;
const READ: i8 = 3;
const WRITE: i8 = 4;
const ALL: i8 = 2;
const DESCRIBE: i8 = 8;
const DELETE: i8 = 6;
const ALTER_CONFIGS: i8 = 11;
const ALLOW: i8 = 3;
const DENY: i8 = 2;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn listener(b: &TestBroker, name: &str) -> SocketAddr {
    b.listeners
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, a)| *a)
        .unwrap_or_else(|| panic!("listener {name}"))
}

fn dial(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s
}

/// A connection authenticated with SASL PLAIN as `user` (password = user name).
fn login(addr: SocketAddr, user: &str) -> TcpStream {
    let mut c = dial(addr);
    let mut h = SaslHandshakeRequest::default();
    h.mechanism = s("PLAIN");
    let hr: SaslHandshakeResponse = roundtrip(&mut c, 17, 1, 1, &h);
    assert_eq!(hr.error_code, 0);
    let mut a = SaslAuthenticateRequest::default();
    a.auth_bytes = format!("\0{user}\0{user}").into_bytes().into();
    let ar: SaslAuthenticateResponse = roundtrip(&mut c, 36, 2, 2, &a);
    assert_eq!(ar.error_code, 0, "login {user}");
    c
}

fn add_user(admin: &mut TcpStream, user: &str) {
    let salt = b"0123456789abcdef".to_vec();
    let mut u = kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion::default();
    u.name = s(user);
    u.mechanism = Scram::Sha256.type_id();
    u.iterations = 4096;
    u.salted_password = Scram::Sha256
        .salted_password(user.as_bytes(), &salt, 4096)
        .into();
    u.salt = salt.into();
    let mut req = AlterUserScramCredentialsRequest::default();
    req.upsertions = vec![u];
    let r: AlterUserScramCredentialsResponse = roundtrip(admin, 51, 0, 3, &req);
    assert_eq!(r.results[0].error_code, 0, "user {user}");
}

#[allow(clippy::too_many_arguments)]
fn acl(rt: i8, name: &str, pt: i8, principal: &str, host: &str, op: i8, perm: i8) -> AclCreation {
    let mut c = AclCreation::default();
    c.resource_type = rt;
    c.resource_name = s(name);
    c.resource_pattern_type = pt;
    c.principal = s(principal);
    c.host = s(host);
    c.operation = op;
    c.permission_type = perm;
    c
}

fn create_acls(c: &mut TcpStream, acls: Vec<AclCreation>) -> Vec<i16> {
    let mut req = CreateAclsRequest::default();
    req.creations = acls;
    let r: CreateAclsResponse = roundtrip(c, 30, 3, 4, &req);
    r.results.iter().map(|r| r.error_code).collect()
}

fn create_topic(c: &mut TcpStream, name: &str) -> i16 {
    let mut t = CreatableTopic::default();
    t.name = TopicName(s(name));
    t.num_partitions = 1;
    t.replication_factor = -1;
    let mut req = CreateTopicsRequest::default();
    req.topics = vec![t];
    req.timeout_ms = 10_000;
    let r: CreateTopicsResponse = roundtrip(c, 19, 7, 5, &req);
    r.topics[0].error_code
}

/// Produce with null records: an authorized producer gets INVALID_RECORD (87), an
/// unauthorized one TOPIC_AUTHORIZATION_FAILED before the records are looked at.
fn produce(c: &mut TcpStream, topic: &str) -> i16 {
    let mut p = PartitionProduceData::default();
    p.index = 0;
    p.records = None;
    let mut t = TopicProduceData::default();
    t.name = TopicName(s(topic));
    t.partition_data = vec![p];
    let mut req = ProduceRequest::default();
    req.acks = 1;
    req.timeout_ms = 5000;
    req.topic_data = vec![t];
    let r: ProduceResponse = roundtrip(c, 0, 9, 6, &req);
    r.responses[0].partition_responses[0].error_code
}

fn fetch(c: &mut TcpStream, topic: &str) -> i16 {
    let mut p = FetchPartition::default();
    p.partition = 0;
    p.partition_max_bytes = 1 << 20;
    let mut t = FetchTopic::default();
    t.topic = TopicName(s(topic));
    t.partitions = vec![p];
    let mut req = FetchRequest::default();
    req.max_wait_ms = 0;
    req.max_bytes = 1 << 20;
    req.topics = vec![t];
    req.replica_id = BrokerId(-1);
    let r: FetchResponse = roundtrip(c, 1, 12, 7, &req);
    r.responses[0].partitions[0].error_code
}

/// Metadata for `topics` (`None`: all): each topic's name and error code.
fn metadata(c: &mut TcpStream, topics: Option<&[&str]>) -> Vec<(String, i16)> {
    let mut req = MetadataRequest::default();
    req.allow_auto_topic_creation = false;
    req.topics = topics.map(|ts| {
        ts.iter()
            .map(|t| {
                let mut m = MetadataRequestTopic::default();
                m.name = Some(TopicName(s(t)));
                m
            })
            .collect()
    });
    let r: MetadataResponse = roundtrip(c, 3, 12, 8, &req);
    let mut out: Vec<(String, i16)> = r
        .topics
        .iter()
        .map(|t| {
            (
                t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                t.error_code,
            )
        })
        .collect();
    out.sort();
    out
}

fn describe_topic_configs(c: &mut TcpStream, topic: &str) -> i16 {
    let mut r = DescribeConfigsResource::default();
    r.resource_type = 2;
    r.resource_name = s(topic);
    let mut req = DescribeConfigsRequest::default();
    req.resources = vec![r];
    let resp: DescribeConfigsResponse = roundtrip(c, 32, 4, 9, &req);
    resp.results[0].error_code
}

fn join(c: &mut TcpStream, group: &str) -> i16 {
    let mut p = JoinGroupRequestProtocol::default();
    p.name = s("range");
    p.metadata = vec![0u8, 0].into();
    let mut req = JoinGroupRequest::default();
    req.group_id = GroupId(s(group));
    req.session_timeout_ms = 10_000;
    req.rebalance_timeout_ms = 10_000;
    req.protocol_type = s("consumer");
    req.protocols = vec![p];
    let r: JoinGroupResponse = roundtrip(c, 11, 9, 10, &req);
    r.error_code
}

/// DescribeClientQuotas of everything: its error code (DESCRIBE_CONFIGS on the cluster).
fn describe_quotas(c: &mut TcpStream) -> i16 {
    let r: DescribeClientQuotasResponse =
        roundtrip(c, 48, 1, 12, &DescribeClientQuotasRequest::default());
    r.error_code
}

fn describe_cluster(c: &mut TcpStream) -> i16 {
    let r: DescribeClusterResponse = roundtrip(c, 60, 1, 11, &DescribeClusterRequest::default());
    r.error_code
}

fn init_idempotent(c: &mut TcpStream) -> i16 {
    let mut req = InitProducerIdRequest::default();
    req.transactional_id = None;
    req.transaction_timeout_ms = 60_000;
    req.producer_id = ProducerId(-1);
    req.producer_epoch = -1;
    let r: InitProducerIdResponse = roundtrip(c, 22, 4, 12, &req);
    r.error_code
}

fn delete_filter(rt: i8, name: Option<&str>, pt: i8, principal: Option<&str>) -> DeleteAclsFilter {
    let mut f = DeleteAclsFilter::default();
    f.resource_type_filter = rt;
    f.resource_name_filter = name.map(s);
    f.pattern_type_filter = pt;
    f.principal_filter = principal.map(s);
    f.host_filter = None;
    f.operation = ANY;
    f.permission_type = ANY;
    f
}

async fn acl_broker(dir: Option<tempfile::TempDir>) -> TestBroker {
    let tweak = |c: &mut tiercel::config::Config| {
        c.listeners = "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0".into();
        c.authorizer = "acl".into();
        // the PLAINTEXT listener on 127.0.0.1 is the administrator's
        c.super_users = "User:admin;User:ANONYMOUS".into();
        c.sasl_enabled_mechanisms = "PLAIN".into();
    };
    match dir {
        Some(d) => TestBroker::start_in(d, tweak).await,
        None => TestBroker::start_with(tweak).await,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorizer_answers_as_kafkas() {
    let b = acl_broker(None).await;
    let (plain, sasl) = (listener(&b, "PLAINTEXT"), listener(&b, "SASL_PLAINTEXT"));
    tokio::task::spawn_blocking(move || {
        let mut admin = dial(plain);
        for u in [
            "alice", "bob", "carol", "dave", "eve", "zed", "frank", "gina", "hank", "ivy",
        ] {
            add_user(&mut admin, u);
        }
        for t in [
            "orders",
            "secret",
            "pay-in",
            "pay-secret",
            "payments",
            "audit",
            "shared",
            "logs-app",
            "logs-private",
            "ops",
        ] {
            assert_eq!(create_topic(&mut admin, t), 0, "{t}");
        }
        let codes = create_acls(
            &mut admin,
            vec![
                acl(TOPIC, "orders", LITERAL, "User:alice", "*", READ, ALLOW),
                acl(GROUP, "g", LITERAL, "User:alice", "*", READ, ALLOW),
                acl(TOPIC, "pay-", PREFIXED, "User:bob", "*", WRITE, ALLOW),
                acl(TOPIC, "pay-secret", LITERAL, "User:bob", "*", ALL, DENY),
                acl(
                    TOPIC,
                    "*",
                    LITERAL,
                    "User:carol",
                    "10.0.0.1",
                    DESCRIBE,
                    ALLOW,
                ),
                acl(
                    TOPIC,
                    "audit",
                    LITERAL,
                    "User:dave",
                    "*",
                    ALTER_CONFIGS,
                    ALLOW,
                ),
                acl(TOPIC, "shared", LITERAL, "User:*", "*", READ, ALLOW),
                acl(TOPIC, "shared", LITERAL, "User:eve", "*", READ, DENY),
                acl(TOPIC, "logs-", PREFIXED, "User:frank", "*", READ, ALLOW),
                acl(TOPIC, "logs-private", LITERAL, "User:*", "*", READ, DENY),
                acl(GROUP, "team-", PREFIXED, "User:frank", "*", READ, ALLOW),
                acl(TOPIC, "*", LITERAL, "User:gina", "*", DESCRIBE, ALLOW),
                acl(TOPIC, "ops", LITERAL, "User:gina", "*", DELETE, ALLOW),
                acl(
                    TOPIC,
                    "ops",
                    LITERAL,
                    "User:hank",
                    "127.0.0.1",
                    WRITE,
                    ALLOW,
                ),
                acl(
                    CLUSTER,
                    "kafka-cluster",
                    LITERAL,
                    "User:hank",
                    "*",
                    DESCRIBE,
                    ALLOW,
                ),
                acl(TOPIC, "ops", LITERAL, "User:ivy", "*", ALL, ALLOW),
                acl(TOPIC, "ops", LITERAL, "User:ivy", "*", WRITE, DENY),
                // refused: MATCH is a filter, not a pattern
                acl(TOPIC, "x", MATCH, "User:alice", "*", READ, ALLOW),
            ],
        );
        assert_eq!(
            codes,
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 42],
            "INVALID_REQUEST for the last"
        );

        let (mut frank, mut gina, mut hank, mut ivy) = (
            login(sasl, "frank"),
            login(sasl, "gina"),
            login(sasl, "hank"),
            login(sasl, "ivy"),
        );
        let (mut alice, mut bob, mut carol, mut dave, mut eve, mut zed) = (
            login(sasl, "alice"),
            login(sasl, "bob"),
            login(sasl, "carol"),
            login(sasl, "dave"),
            login(sasl, "eve"),
            login(sasl, "zed"),
        );
        let denied = TOPIC_AUTHORIZATION_FAILED;
        // (what, got, expected); `allowed` means "not refused for authorization"
        let mut matrix: Vec<(&str, i16, i16)> = vec![
            (
                "alice fetch orders (LITERAL READ)",
                fetch(&mut alice, "orders"),
                0,
            ),
            (
                "alice produce orders (no WRITE)",
                produce(&mut alice, "orders"),
                denied,
            ),
            (
                "alice fetch secret (no ACL)",
                fetch(&mut alice, "secret"),
                denied,
            ),
            (
                "bob produce pay-in (PREFIXED WRITE)",
                produce(&mut bob, "pay-in"),
                87,
            ),
            (
                "bob produce pay-secret (DENY ALL over ALLOW)",
                produce(&mut bob, "pay-secret"),
                denied,
            ),
            (
                "bob produce payments (prefix does not match)",
                produce(&mut bob, "payments"),
                denied,
            ),
            (
                "bob fetch pay-in (WRITE does not give READ)",
                fetch(&mut bob, "pay-in"),
                denied,
            ),
            (
                "dave describe configs of audit (ALTER_CONFIGS implies)",
                describe_topic_configs(&mut dave, "audit"),
                0,
            ),
            (
                "dave describe configs of orders",
                describe_topic_configs(&mut dave, "orders"),
                denied,
            ),
            ("zed fetch shared (User:*)", fetch(&mut zed, "shared"), 0),
            (
                "eve fetch shared (DENY for eve)",
                fetch(&mut eve, "shared"),
                denied,
            ),
            (
                "alice join g (READ group)",
                (join(&mut alice, "g") == GROUP_AUTHORIZATION_FAILED) as i16,
                0,
            ),
            (
                "alice join h (no ACL)",
                join(&mut alice, "h"),
                GROUP_AUTHORIZATION_FAILED,
            ),
            (
                "alice create topic",
                create_topic(&mut alice, "alice-new"),
                denied,
            ),
            (
                "admin (super user) create topic",
                create_topic(&mut admin, "admin-new"),
                0,
            ),
            (
                "alice describe cluster",
                describe_cluster(&mut alice),
                CLUSTER_AUTHORIZATION_FAILED,
            ),
            ("admin describe cluster", describe_cluster(&mut admin), 0),
            (
                "bob idempotent producer (WRITE on a topic)",
                init_idempotent(&mut bob),
                0,
            ),
            (
                "carol idempotent producer",
                init_idempotent(&mut carol),
                CLUSTER_AUTHORIZATION_FAILED,
            ),
        ];
        let cluster_denied = CLUSTER_AUTHORIZATION_FAILED;
        let more: Vec<(&str, i16, i16)> = vec![
            (
                "frank fetch logs-app (PREFIXED READ)",
                fetch(&mut frank, "logs-app"),
                0,
            ),
            (
                "frank fetch logs-private (DENY User:* over PREFIXED ALLOW)",
                fetch(&mut frank, "logs-private"),
                denied,
            ),
            (
                "frank produce logs-app (READ does not give WRITE)",
                produce(&mut frank, "logs-app"),
                denied,
            ),
            (
                "frank metadata logs-app (READ implies DESCRIBE)",
                metadata(&mut frank, Some(&["logs-app"]))[0].1,
                0,
            ),
            (
                "frank join team-a (PREFIXED group READ)",
                (join(&mut frank, "team-a") == GROUP_AUTHORIZATION_FAILED) as i16,
                0,
            ),
            (
                "frank join teams (prefix team- does not match)",
                join(&mut frank, "teams"),
                GROUP_AUTHORIZATION_FAILED,
            ),
            (
                "frank describe cluster",
                describe_cluster(&mut frank),
                cluster_denied,
            ),
            (
                "gina metadata ops (LITERAL * DESCRIBE)",
                metadata(&mut gina, Some(&["ops"]))[0].1,
                0,
            ),
            (
                "gina fetch ops (DESCRIBE does not give READ)",
                fetch(&mut gina, "ops"),
                denied,
            ),
            (
                "gina describe configs of ops (DELETE does not imply DESCRIBE_CONFIGS)",
                describe_topic_configs(&mut gina, "ops"),
                denied,
            ),
            (
                "hank produce ops (host 127.0.0.1 matches)",
                produce(&mut hank, "ops"),
                87,
            ),
            (
                "hank describe cluster (CLUSTER DESCRIBE)",
                describe_cluster(&mut hank),
                0,
            ),
            (
                "hank idempotent producer (WRITE on ops)",
                init_idempotent(&mut hank),
                0,
            ),
            (
                "hank describe client quotas (needs DESCRIBE_CONFIGS)",
                describe_quotas(&mut hank),
                cluster_denied,
            ),
            (
                "hank fetch ops (WRITE does not give READ)",
                fetch(&mut hank, "ops"),
                denied,
            ),
            ("ivy fetch ops (ALL)", fetch(&mut ivy, "ops"), 0),
            (
                "ivy produce ops (DENY WRITE over ALL)",
                produce(&mut ivy, "ops"),
                denied,
            ),
            (
                "ivy describe configs of ops (ALL)",
                describe_topic_configs(&mut ivy, "ops"),
                0,
            ),
            (
                "zed metadata ops (no ACL)",
                metadata(&mut zed, Some(&["ops"]))[0].1,
                denied,
            ),
            (
                "alice describe client quotas",
                describe_quotas(&mut alice),
                cluster_denied,
            ),
            (
                "admin describe client quotas (super user)",
                describe_quotas(&mut admin),
                0,
            ),
        ];
        matrix.extend(more);
        let acl_by_alice = create_acls(
            &mut alice,
            vec![acl(
                TOPIC,
                "secret",
                LITERAL,
                "User:alice",
                "*",
                READ,
                ALLOW,
            )],
        );
        matrix.push((
            "alice create ACL",
            acl_by_alice[0],
            CLUSTER_AUTHORIZATION_FAILED,
        ));
        // Metadata: what may not be described is not listed, and refused when named
        let listed = metadata(&mut alice, None);
        let expected = [("orders".to_string(), 0), ("shared".to_string(), 0)];
        matrix.push((
            "alice lists orders and shared only",
            (listed == expected) as i16,
            1,
        ));
        let named = metadata(&mut alice, Some(&["orders", "secret"]));
        matrix.push(("alice metadata orders", named[0].1, 0));
        matrix.push(("alice metadata secret", named[1].1, denied));
        let by_bob = metadata(&mut bob, Some(&["pay-in"]));
        matrix.push((
            "bob metadata pay-in (WRITE implies DESCRIBE)",
            by_bob[0].1,
            0,
        ));
        let by_carol = metadata(&mut carol, Some(&["orders"]));
        matrix.push(("carol metadata from another host", by_carol[0].1, denied));
        let failures: Vec<String> = matrix
            .iter()
            .filter(|(_, got, want)| got != want)
            .map(|(what, got, want)| format!("{what}: got {got}, want {want}"))
            .collect();
        assert!(failures.is_empty(), "{failures:#?}");
        assert!(matrix.len() >= 40, "{} cases", matrix.len());

        // DescribeAcls with MATCH: every binding that applies to pay-in
        let mut d = DescribeAclsRequest::default();
        d.resource_type_filter = TOPIC;
        d.resource_name_filter = Some(s("pay-in"));
        d.pattern_type_filter = MATCH;
        d.principal_filter = None;
        d.host_filter = None;
        d.operation = ANY;
        d.permission_type = ANY;
        let described: DescribeAclsResponse = roundtrip(&mut admin, 29, 3, 13, &d);
        assert_eq!(described.error_code, 0);
        let mut names: Vec<(String, i8)> = described
            .resources
            .iter()
            .map(|r| (r.resource_name.to_string(), r.pattern_type))
            .collect();
        names.sort();
        assert_eq!(
            names,
            [("*".to_string(), LITERAL), ("pay-".to_string(), PREFIXED)]
        );

        // DeleteAcls: bob's prefixed grant goes, and with it his writes
        let mut del = DeleteAclsRequest::default();
        del.filters = vec![delete_filter(
            TOPIC,
            Some("pay-"),
            PREFIXED,
            Some("User:bob"),
        )];
        let deleted: DeleteAclsResponse = roundtrip(&mut admin, 31, 3, 14, &del);
        assert_eq!(deleted.filter_results[0].error_code, 0);
        assert_eq!(deleted.filter_results[0].matching_acls.len(), 1);
        assert_eq!(produce(&mut bob, "pay-in"), denied);
    })
    .await
    .expect("matrix");

    // ACLs survive a restart
    let dir = b.stop().await;
    let b = acl_broker(Some(dir)).await;
    let sasl = listener(&b, "SASL_PLAINTEXT");
    tokio::task::spawn_blocking(move || {
        let mut alice = login(sasl, "alice");
        assert_eq!(fetch(&mut alice, "orders"), 0);
        assert_eq!(produce(&mut alice, "orders"), TOPIC_AUTHORIZATION_FAILED);
        let mut bob = login(sasl, "bob");
        assert_eq!(produce(&mut bob, "pay-in"), TOPIC_AUTHORIZATION_FAILED);
    })
    .await
    .expect("after restart");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_authorizer_acl_requests_are_security_disabled() {
    let b = TestBroker::start().await;
    let addr = b.addr;
    tokio::task::spawn_blocking(move || {
        let mut c = dial(addr);
        let codes = create_acls(
            &mut c,
            vec![acl(TOPIC, "t", LITERAL, "User:a", "*", READ, ALLOW)],
        );
        assert_eq!(codes, [SECURITY_DISABLED]);
        // and everything is allowed
        assert_eq!(describe_cluster(&mut c), 0);
    })
    .await
    .expect("client");
    b.stop().await;
}
