// @confluentinc/kafka-javascript (librdkafka underneath) through its KafkaJS-compatible API,
// against a running broker, default configuration unless a case says otherwise. Prints one line
// per capability: PASS, FAIL (with the reason) or N/A; exits 1 on any FAIL.
// Usage: node ckjs_client.js BOOTSTRAP    (the package resolved from NODE_PATH)
const { KafkaJS } = require('@confluentinc/kafka-javascript');

const { Kafka, CompressionTypes, logLevel } = KafkaJS;
const boot = process.argv[2];
const kafka = new Kafka({ kafkaJS: { brokers: [boot], logLevel: logLevel.NOTHING } });
const results = [];
const name = (p) => `${p}-${Math.random().toString(16).slice(2, 10)}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const { expectFaults, restartBroker, faulty } = require('./harness');

async function record(cap, fn) {
  try {
    const out = await fn();
    if (typeof out === 'string' && out.startsWith('n/a')) {
      results.push(['N/A', cap, out.replace(/^n\/a:? ?/, '')]);
    } else {
      results.push(['PASS', cap, '']);
    }
  } catch (e) {
    results.push(['FAIL', cap, String(e && e.stack ? e.message : e).slice(0, 200)]);
  }
}

function expectEq(got, want, what) {
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    throw new Error(`${what}: expected ${JSON.stringify(want)}, got ${JSON.stringify(got)}`.slice(0, 300));
  }
}

async function createTopic(topic, partitions = 1, k = kafka) {
  const admin = k.admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: partitions }] });
  } finally {
    await admin.disconnect();
  }
}

/** Reads `n` messages from the beginning with a fresh group (then `settle` ms for any extra). */
async function consume(topic, n, opts = {}, settle = 0, k = kafka) {
  const consumer = k.consumer({ kafkaJS: { groupId: name('g'), fromBeginning: true, ...opts } });
  await consumer.connect();
  await consumer.subscribe({ topic });
  const got = [];
  await consumer.run({ eachMessage: async ({ message }) => { got.push(message); } });
  const deadline = Date.now() + 30000;
  while (got.length < n && Date.now() < deadline) await sleep(100);
  await sleep(settle);
  await consumer.disconnect();
  return got;
}

async function produceConsume(codec) {
  const topic = name(`ckjs-${codec}`);
  await createTopic(topic);
  const producer = kafka.producer({ kafkaJS: { compression: codec, acks: -1 } });
  await producer.connect();
  const msgs = [...Array(200).keys()].map((i) => ({
    key: `k${i}`, value: `${codec}-${i}`, headers: { h: `${i}` },
  }));
  await producer.send({ topic, messages: msgs });
  await producer.disconnect();
  const got = await consume(topic, 200);
  // (send() rewrites the message objects it is given: the expectation is rebuilt)
  expectEq(
    got.map((m) => [m.key.toString(), m.value.toString(), m.headers.h.toString()]),
    [...Array(200).keys()].map((i) => [`k${i}`, `${codec}-${i}`, `${i}`]),
    'records',
  );
}

async function group() {
  const topic = name('ckjs-group');
  await createTopic(topic, 4);
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({ topic, messages: [...Array(40).keys()].map((i) => ({ key: `k${i}`, value: `v${i}` })) });
  const groupId = name('grp');
  const seen = new Set();
  const members = [0, 1].map(() => kafka.consumer({ kafkaJS: { groupId, fromBeginning: true } }));
  for (const c of members) {
    await c.connect();
    await c.subscribe({ topic });
    await c.run({ eachMessage: async ({ partition, message }) => { seen.add(`${partition}/${message.offset}`); } });
  }
  const deadline = Date.now() + 40000;
  const shares = () => members.map((c) => c.assignment().map((tp) => tp.partition));
  // both members hold some partitions, none twice, all four between them
  const split = (held) => {
    const all = held.flat();
    return held.every((s) => s.length > 0) && new Set(all).size === all.length && all.length === 4;
  };
  // until every record was read and the rebalance that brought the second member in is over
  while ((seen.size < 40 || !split(shares())) && Date.now() < deadline) await sleep(100);
  const held = shares();
  await sleep(1000); // auto-commit interval
  for (const c of members) await c.disconnect();
  expectEq(seen.size, 40, 'records consumed by the group');
  if (!split(held)) throw new Error(`the two members' assignments: ${JSON.stringify(held)}`);
  // one more record per partition: a member resuming from the commits reads exactly these
  await producer.send({ topic, messages: [0, 1, 2, 3].map((p) => ({ value: `late-${p}`, partition: p })) });
  await producer.disconnect();
  const again = kafka.consumer({ kafkaJS: { groupId, fromBeginning: true } });
  const got = [];
  await again.connect();
  await again.subscribe({ topic });
  await again.run({ eachMessage: async ({ message }) => { got.push(message.value.toString()); } });
  const until = Date.now() + 30000;
  while (got.length < 4 && Date.now() < until) await sleep(100);
  await again.disconnect();
  expectEq(got.sort(), ['late-0', 'late-1', 'late-2', 'late-3'], 'a new member resumes from the commits');
}

async function brokerRestart() {
  const topic = name('ckjs-restart');
  const groupId = name('grp');
  await createTopic(topic);
  const producer = kafka.producer({ kafkaJS: { acks: -1 } });
  await producer.connect();
  const values = (tag) => [...Array(10).keys()].map((i) => `${tag}-${i}`);
  await producer.send({ topic, messages: values('before').map((value) => ({ value })) });
  const first = await consume(topic, 10, { groupId }, 1000); // (auto-commit interval)
  expectEq(first.length, 10, 'records before the restart');
  restartBroker();
  // the same producer reconnects on its own; the group's commit survived the kill
  await producer.send({ topic, messages: values('after').map((value) => ({ value })) });
  await producer.disconnect();
  const resumed = await consume(topic, 10, { groupId });
  expectEq(resumed.map((m) => m.value.toString()), values('after'), 'the group resumes at its commit');
  const all = await consume(topic, 20);
  expectEq(all.map((m) => m.value.toString()), values('before').concat(values('after')), 'the whole log');
}

async function adminOps() {
  const topic = name('ckjs-admin');
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: 3 }] });
    const md = await admin.fetchTopicMetadata({ topics: [topic] });
    expectEq(md[0].partitions.length, 3, 'partitions');
    await admin.deleteTopics({ topics: [topic] });
    const deadline = Date.now() + 10000;
    while ((await admin.listTopics()).includes(topic) && Date.now() < deadline) await sleep(200);
    if ((await admin.listTopics()).includes(topic)) throw new Error('topic still listed after delete');
  } finally {
    await admin.disconnect();
  }
  return 'n/a: create, describe and delete pass; the client has no config describe/alter API';
}

async function idempotent() {
  const clientId = 'idem-kafka-javascript';
  const k = new Kafka({ kafkaJS: { clientId, brokers: [faulty()], logLevel: logLevel.NOTHING } });
  const topic = name('ckjs-idem');
  await createTopic(topic, 1, k);
  const producer = k.producer({ kafkaJS: { idempotent: true } });
  await producer.connect();
  for (let i = 0; i < 500; i += 50) {
    await producer.send({ topic, messages: [...Array(50).keys()].map((j) => ({ value: `${i + j}` })) });
  }
  await producer.disconnect();
  expectFaults(clientId);
  const got = await consume(topic, 500, {}, 0, k);
  expectEq(got.map((m) => Number(m.value.toString())), [...Array(500).keys()], 'exactly once, in order');
  const admin = k.admin();
  await admin.connect();
  try {
    const [p0] = await admin.fetchTopicOffsets(topic);
    expectEq(String(p0.high), '500', 'records in the log (a retried batch stored twice adds more)');
  } finally {
    await admin.disconnect();
  }
}

async function transactions() {
  const topic = name('ckjs-txn');
  const src = name('ckjs-txn-in');
  const groupId = name('g');
  await createTopic(topic);
  await createTopic(src);
  const member = kafka.consumer({ kafkaJS: { groupId } });
  await member.connect();
  const producer = kafka.producer({ kafkaJS: { transactionalId: name('ckjs-tx') } });
  await producer.connect();
  try {
    let txn = await producer.transaction();
    await txn.send({ topic, messages: [...Array(5).keys()].map((i) => ({ value: `c-${i}` })) });
    await txn.sendOffsets({ consumer: member, topics: [{ topic: src, partitions: [{ partition: 0, offset: '5' }] }] });
    await txn.commit();
    txn = await producer.transaction();
    await txn.send({ topic, messages: [...Array(5).keys()].map((i) => ({ value: `a-${i}` })) });
    await txn.abort();
  } finally {
    await producer.disconnect();
    await member.disconnect();
  }
  // a plain record after the aborted transaction: a reader that reaches it has read past
  // everything the transactions wrote, so what it did not see was really filtered
  const plain = kafka.producer();
  await plain.connect();
  await plain.send({ topic, messages: [{ value: 'end' }] });
  await plain.disconnect();
  const committed = await consume(topic, 6); // read_committed is the default
  expectEq(committed.map((m) => m.value.toString()), [...Array(5).keys()].map((i) => `c-${i}`).concat(['end']),
    'read_committed: the committed records, then the plain one');
  const all = await consume(topic, 11, { readUncommitted: true });
  expectEq(all.length, 11, 'read_uncommitted sees the aborted records');
  expectEq(all[10].value.toString(), 'end', 'read_uncommitted reads up to the end');
  const admin = kafka.admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchOffsets({ groupId, topics: [src] });
    expectEq(offsets[0].partitions[0].offset, '5', 'offset committed');
  } finally {
    await admin.disconnect();
  }
}

/**
 * Client telemetry (KIP-714) against a broker asking for org.apache.kafka.* metrics every
 * second: librdkafka's producer and consumer metrics show on its /metrics by client id.
 */
async function telemetry() {
  const tb = process.env.TELEMETRY_BOOTSTRAP;
  const tm = process.env.TELEMETRY_METRICS;
  if (!tb || !tm) return 'n/a';
  const topic = name('ckjs-telemetry');
  const pid = name('ckjs-tel-p');
  const cid = name('ckjs-tel-c');
  const at = (clientId) => new Kafka({ kafkaJS: { brokers: [tb], clientId, logLevel: logLevel.NOTHING } });
  await createTopic(topic, 1, at(pid));
  const producer = at(pid).producer();
  await producer.connect();
  await producer.send({ topic, messages: [...Array(10).keys()].map((i) => ({ value: `v${i}` })) });
  const consumer = at(cid).consumer({ kafkaJS: { groupId: name('g'), fromBeginning: true } });
  await consumer.connect();
  await consumer.subscribe({ topic });
  let read = 0;
  await consumer.run({ eachMessage: async () => { read += 1; } });
  const seen = (body, prefix, id) => body.split('\n')
    .some((l) => l.startsWith(prefix) && l.includes(`client_id="${id}"`));
  let seenP = false;
  let seenC = false;
  const deadline = Date.now() + 30000;
  try {
    while (Date.now() < deadline && !(seenP && seenC && read >= 10)) {
      await sleep(300);
      const body = await (await fetch(tm)).text();
      seenP = seen(body, 'tiercel_client_org_apache_kafka_producer', pid);
      seenC = seen(body, 'tiercel_client_org_apache_kafka_consumer', cid);
    }
  } finally {
    await consumer.disconnect();
    await producer.disconnect();
  }
  expectEq(read, 10, 'records consumed');
  expectEq(seenP, true, "the producer's metrics on the broker's /metrics");
  expectEq(seenC, true, "the consumer's metrics on the broker's /metrics");
}

(async () => {
  for (const codec of ['none', 'gzip', 'snappy', 'lz4', 'zstd']) {
    await record(`produce/consume ${codec}`, () => produceConsume(codec));
  }
  await record('consumer group (2 members share, commits, resume)', group);
  await record('broker restart (kill -9)', brokerRestart);
  await record('admin create/describe/alter/delete', adminOps);
  await record('idempotent producer', idempotent);
  await record('transactions', transactions);
  await record("client telemetry (KIP-714): metrics on the broker's /metrics", telemetry);
  for (const [status, cap, detail] of results) {
    console.log(`${status.padEnd(4)} ${'kafka-javascript'.padEnd(16)} ${cap}${detail ? `  -- ${detail}` : ''}`);
  }
  process.exit(results.some((r) => r[0] === 'FAIL') ? 1 : 0);
})();
