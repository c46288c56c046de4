// kafkajs against a running broker, default configuration unless a case says otherwise.
// Prints one line per capability: PASS, FAIL (with the reason) or N/A; exits 1 on any FAIL.
// Usage: node kafkajs_client.js BOOTSTRAP    (kafkajs resolved from NODE_PATH or ./node_modules)
const { Kafka, CompressionTypes, logLevel } = require('kafkajs');

const boot = process.argv[2];
const kafka = new Kafka({ clientId: 'tiercel-compat', brokers: [boot], logLevel: logLevel.NOTHING });
const results = [];
const name = (p) => `${p}-${Math.random().toString(16).slice(2, 10)}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const { expectFaults, restartBroker, faulty } = require('./harness');

async function record(cap, fn) {
  try {
    const out = await fn();
    results.push([out === 'n/a' ? 'N/A' : 'PASS', cap, '']);
  } catch (e) {
    results.push(['FAIL', cap, String(e && e.stack ? e.message : e).slice(0, 200)]);
  }
}

function expectEq(got, want, what) {
  const g = JSON.stringify(got);
  const w = JSON.stringify(want);
  if (g !== w) throw new Error(`${what}: expected ${w.slice(0, 80)}, got ${g.slice(0, 80)}`);
}

async function createTopic(topic, partitions = 1, k = kafka) {
  const admin = k.admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true });
  } finally {
    await admin.disconnect();
  }
}

/** Reads `n` messages from the beginning with a fresh group (then `settle` ms for any extra). */
async function consume(topic, n, opts = {}, settle = 0, k = kafka) {
  const consumer = k.consumer({ groupId: name('g'), rebalanceTimeout: 10000, ...opts });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const got = [];
  await consumer.run({ eachMessage: async ({ message }) => { got.push(message); } });
  const deadline = Date.now() + 30000;
  while (got.length < n && Date.now() < deadline) await sleep(100);
  await sleep(settle);
  await consumer.disconnect();
  return got;
}

async function produceConsume(codec) {
  const topic = name(`kjs-${codec}`);
  await createTopic(topic);
  const producer = kafka.producer();
  await producer.connect();
  const msgs = [...Array(200).keys()].map((i) => ({
    key: `k${i}`, value: `${codec}-${i}`, headers: { h: `${i}` },
  }));
  const compression = codec === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None;
  await producer.send({ topic, messages: msgs, compression, acks: -1 });
  await producer.disconnect();
  const got = await consume(topic, 200);
  expectEq(
    got.map((m) => [m.key.toString(), m.value.toString(), m.headers.h.toString()]),
    msgs.map((m) => [m.key, m.value, m.headers.h]),
    'records',
  );
}

async function group() {
  const topic = name('kjs-group');
  await createTopic(topic, 4);
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({ topic, messages: [...Array(40).keys()].map((i) => ({ key: `k${i}`, value: `v${i}` })) });
  const groupId = name('grp');
  const seen = new Set();
  const members = [kafka.consumer({ groupId }), kafka.consumer({ groupId })];
  const shares = [[], []]; // each member's partitions as of its last join
  for (const [i, c] of members.entries()) {
    c.on(c.events.GROUP_JOIN, (e) => { shares[i] = e.payload.memberAssignment[topic] || []; });
    await c.connect();
    await c.subscribe({ topic, fromBeginning: true });
    await c.run({ eachMessage: async ({ partition, message }) => { seen.add(`${partition}/${message.offset}`); } });
  }
  const deadline = Date.now() + 40000;
  // until every record was read and the members' latest joins split the partitions between
  // them (the first member's own join, before the second came, held all four)
  while ((seen.size < 40 || !isShared(shares, 4)) && Date.now() < deadline) await sleep(100);
  // as the members held them: the first one's leaving hands the second everything
  const held = shares.map((s) => [...s]);
  for (const c of members) await c.disconnect(); // commits on the way out
  expectEq(seen.size, 40, 'records consumed by the group');
  expectShared(held, 4);
  // one more record per partition: a member resuming from the commits reads exactly these
  await producer.send({ topic, messages: [0, 1, 2, 3].map((p) => ({ value: `late-${p}`, partition: p })) });
  await producer.disconnect();
  const again = kafka.consumer({ groupId });
  const got = [];
  await again.connect();
  await again.subscribe({ topic, fromBeginning: true });
  await again.run({ eachMessage: async ({ message }) => { got.push(message.value.toString()); } });
  const until = Date.now() + 30000;
  while (got.length < 4 && Date.now() < until) await sleep(100);
  await again.disconnect();
  expectEq(got.sort(), ['late-0', 'late-1', 'late-2', 'late-3'], 'a new member resumes from the commits');
}

/** Both members hold some of the partitions, none twice, all of them between them. */
function isShared(shares, partitions) {
  const all = shares.flat();
  return shares.every((s) => s.length > 0) && new Set(all).size === all.length && all.length === partitions;
}

function expectShared(shares, partitions) {
  if (!isShared(shares, partitions)) throw new Error(`the two members' assignments: ${JSON.stringify(shares)}`);
}

async function brokerRestart() {
  const topic = name('kjs-restart');
  const groupId = name('grp');
  await createTopic(topic);
  const producer = kafka.producer();
  await producer.connect();
  const values = (tag) => [...Array(10).keys()].map((i) => `${tag}-${i}`);
  await producer.send({ topic, acks: -1, messages: values('before').map((value) => ({ value })) });
  const first = await consume(topic, 10, { groupId }); // commits as it leaves
  expectEq(first.length, 10, 'records before the restart');
  restartBroker();
  // the same producer reconnects on its own; the group's commit survived the kill
  await producer.send({ topic, acks: -1, messages: values('after').map((value) => ({ value })) });
  await producer.disconnect();
  const resumed = await consume(topic, 10, { groupId });
  expectEq(resumed.map((m) => m.value.toString()), values('after'), 'the group resumes at its commit');
  const all = await consume(topic, 20);
  expectEq(all.map((m) => m.value.toString()), values('before').concat(values('after')), 'the whole log');
}

async function adminOps() {
  const topic = name('kjs-admin');
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true });
    const md = await admin.fetchTopicMetadata({ topics: [topic] });
    expectEq(md.topics[0].partitions.length, 3, 'partitions');
    const { ConfigResourceTypes } = require('kafkajs');
    const describe = async () => admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic }],
    });
    let d = await describe();
    const value = (res, key) => res.resources[0].configEntries.find((e) => e.configName === key).configValue;
    expectEq(value(d, 'cleanup.policy'), 'delete', 'cleanup.policy');
    await admin.alterConfigs({
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name: 'retention.ms', value: '12345' }] }],
    });
    d = await describe();
    expectEq(value(d, 'retention.ms'), '12345', 'altered retention.ms');
    await admin.deleteTopics({ topics: [topic] });
    const deadline = Date.now() + 10000;
    while ((await admin.listTopics()).includes(topic) && Date.now() < deadline) await sleep(200);
    if ((await admin.listTopics()).includes(topic)) throw new Error('topic still listed after delete');
  } finally {
    await admin.disconnect();
  }
}

async function idempotent() {
  const clientId = 'idem-kafkajs';
  const k = new Kafka({ clientId, brokers: [faulty()], logLevel: logLevel.NOTHING });
  const topic = name('kjs-idem');
  await createTopic(topic, 1, k);
  const producer = k.producer({ idempotent: true, maxInFlightRequests: 1 });
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
    expectEq(p0.high, '500', 'records in the log (a retried batch stored twice adds more)');
  } finally {
    await admin.disconnect();
  }
}

async function transactions() {
  const topic = name('kjs-txn');
  const src = name('kjs-txn-in');
  const group = name('g');
  await createTopic(topic);
  await createTopic(src);
  const producer = kafka.producer({ transactionalId: name('kjs-tx'), idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  let txn = await producer.transaction();
  await txn.send({ topic, messages: [...Array(5).keys()].map((i) => ({ value: `c-${i}` })) });
  await txn.sendOffsets({ consumerGroupId: group, topics: [{ topic: src, partitions: [{ partition: 0, offset: '5' }] }] });
  await txn.commit();
  txn = await producer.transaction();
  await txn.send({ topic, messages: [...Array(5).keys()].map((i) => ({ value: `a-${i}` })) });
  await txn.abort();
  await producer.disconnect();
  // a plain record after the aborted transaction: a reader that reaches it has read past
  // everything the transactions wrote, so what it did not see was really filtered
  const plain = kafka.producer();
  await plain.connect();
  await plain.send({ topic, messages: [{ value: 'end' }] });
  await plain.disconnect();
  // kafkajs reads committed data by default
  const committed = await consume(topic, 6);
  expectEq(committed.map((m) => m.value.toString()), [...Array(5).keys()].map((i) => `c-${i}`).concat(['end']),
    'read_committed: the committed records, then the plain one');
  const all = await consume(topic, 11, { readUncommitted: true });
  expectEq(all.length, 11, 'read_uncommitted sees the aborted records');
  expectEq(all[10].value.toString(), 'end', 'read_uncommitted reads up to the end');
  const admin = kafka.admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchOffsets({ groupId: group, topics: [src] });
    expectEq(offsets[0].partitions[0].offset, '5', 'offset committed');
  } finally {
    await admin.disconnect();
  }
}

(async () => {
  await record('produce/consume none', () => produceConsume('none'));
  await record('produce/consume gzip', () => produceConsume('gzip'));
  for (const codec of ['snappy', 'lz4', 'zstd']) {
    // kafkajs ships only gzip; the others need codec plugins the user installs
    await record(`produce/consume ${codec}`, async () => 'n/a');
  }
  await record('consumer group (2 members share, commits, resume)', group);
  await record('broker restart (kill -9)', brokerRestart);
  await record('admin create/describe/alter/delete', adminOps);
  await record('idempotent producer', idempotent);
  await record('transactions', transactions);
  for (const [status, cap, detail] of results) {
    console.log(`${status.padEnd(4)} ${'kafkajs'.padEnd(16)} ${cap}${detail ? `  -- ${detail}` : ''}`);
  }
  process.exit(results.some((r) => r[0] === 'FAIL') ? 1 : 0);
})();
