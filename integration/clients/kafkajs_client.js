// kafkajs against a running broker, default configuration unless a case says otherwise.
// Prints one line per capability: PASS, FAIL (with the reason) or N/A; exits 1 on any FAIL.
// Usage: node kafkajs_client.js BOOTSTRAP    (kafkajs resolved from NODE_PATH or ./node_modules)
const { Kafka, CompressionTypes, logLevel } = require('kafkajs');

const boot = process.argv[2];
const kafka = new Kafka({ clientId: 'tiercel-compat', brokers: [boot], logLevel: logLevel.NOTHING });
const results = [];
const name = (p) => `${p}-${Math.random().toString(16).slice(2, 10)}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

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

async function createTopic(topic, partitions = 1) {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true });
  } finally {
    await admin.disconnect();
  }
}

/** Reads `n` messages from the beginning with a fresh group (then `settle` ms for any extra). */
async function consume(topic, n, opts = {}, settle = 0) {
  const consumer = kafka.consumer({ groupId: name('g'), rebalanceTimeout: 10000, ...opts });
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
  for (const c of members) {
    await c.connect();
    await c.subscribe({ topic, fromBeginning: true });
    await c.run({ eachMessage: async ({ partition, message }) => { seen.add(`${partition}/${message.offset}`); } });
  }
  const deadline = Date.now() + 40000;
  while (seen.size < 40 && Date.now() < deadline) await sleep(100);
  for (const c of members) await c.disconnect(); // commits on the way out
  expectEq(seen.size, 40, 'records consumed by the group');
  await producer.send({ topic, messages: [{ key: 'late', value: 'late', partition: 0 }] });
  await producer.disconnect();
  const again = kafka.consumer({ groupId });
  const got = [];
  await again.connect();
  await again.subscribe({ topic, fromBeginning: true });
  await again.run({ eachMessage: async ({ message }) => { got.push(message.value.toString()); } });
  const until = Date.now() + 30000;
  while (got.length < 1 && Date.now() < until) await sleep(100);
  await sleep(500);
  await again.disconnect();
  expectEq(got, ['late'], 'after restart only the new record');
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
  const topic = name('kjs-idem');
  await createTopic(topic);
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  for (let i = 0; i < 500; i += 50) {
    await producer.send({ topic, messages: [...Array(50).keys()].map((j) => ({ value: `${i + j}` })) });
  }
  await producer.disconnect();
  const got = await consume(topic, 500);
  expectEq(got.map((m) => Number(m.value.toString())), [...Array(500).keys()], 'exactly once, in order');
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
  // kafkajs reads committed data by default
  const committed = await consume(topic, 5, {}, 1500);
  expectEq(committed.map((m) => m.value.toString()), [...Array(5).keys()].map((i) => `c-${i}`), 'read_committed');
  const all = await consume(topic, 10, { readUncommitted: true });
  expectEq(all.length, 10, 'read_uncommitted sees the aborted records');
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
  await record('consumer group (2 members, commits, restart)', group);
  await record('admin create/describe/alter/delete', adminOps);
  await record('idempotent producer', idempotent);
  await record('transactions', transactions);
  for (const [status, cap, detail] of results) {
    console.log(`${status.padEnd(4)} ${'kafkajs'.padEnd(16)} ${cap}${detail ? `  -- ${detail}` : ''}`);
  }
  process.exit(results.some((r) => r[0] === 'FAIL') ? 1 : 0);
})();
