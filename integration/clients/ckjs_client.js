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

async function createTopic(topic, partitions = 1) {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: partitions }] });
  } finally {
    await admin.disconnect();
  }
}

/** Reads `n` messages from the beginning with a fresh group (then `settle` ms for any extra). */
async function consume(topic, n, opts = {}, settle = 0) {
  const consumer = kafka.consumer({ kafkaJS: { groupId: name('g'), fromBeginning: true, ...opts } });
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
  while (seen.size < 40 && Date.now() < deadline) await sleep(100);
  await sleep(1000); // auto-commit interval
  for (const c of members) await c.disconnect();
  expectEq(seen.size, 40, 'records consumed by the group');
  await producer.send({ topic, messages: [{ key: 'late', value: 'late', partition: 0 }] });
  await producer.disconnect();
  const again = kafka.consumer({ kafkaJS: { groupId, fromBeginning: true } });
  const got = [];
  await again.connect();
  await again.subscribe({ topic });
  await again.run({ eachMessage: async ({ message }) => { got.push(message.value.toString()); } });
  const until = Date.now() + 30000;
  while (got.length < 1 && Date.now() < until) await sleep(100);
  await sleep(500);
  await again.disconnect();
  expectEq(got, ['late'], 'after restart only the new record');
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
  const topic = name('ckjs-idem');
  await createTopic(topic);
  const producer = kafka.producer({ kafkaJS: { idempotent: true } });
  await producer.connect();
  for (let i = 0; i < 500; i += 50) {
    await producer.send({ topic, messages: [...Array(50).keys()].map((j) => ({ value: `${i + j}` })) });
  }
  await producer.disconnect();
  const got = await consume(topic, 500);
  expectEq(got.map((m) => Number(m.value.toString())), [...Array(500).keys()], 'exactly once, in order');
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
  const committed = await consume(topic, 5, {}, 1500); // read_committed is the default
  expectEq(committed.map((m) => m.value.toString()), [...Array(5).keys()].map((i) => `c-${i}`), 'read_committed');
  const all = await consume(topic, 10, { readUncommitted: true });
  expectEq(all.length, 10, 'read_uncommitted sees the aborted records');
  const admin = kafka.admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchOffsets({ groupId, topics: [src] });
    expectEq(offsets[0].partitions[0].offset, '5', 'offset committed');
  } finally {
    await admin.disconnect();
  }
}

(async () => {
  for (const codec of ['none', 'gzip', 'snappy', 'lz4', 'zstd']) {
    await record(`produce/consume ${codec}`, () => produceConsume(codec));
  }
  await record('consumer group (2 members, commits, restart)', group);
  await record('admin create/describe/alter/delete', adminOps);
  await record('idempotent producer', idempotent);
  await record('transactions', transactions);
  for (const [status, cap, detail] of results) {
    console.log(`${status.padEnd(4)} ${'kafka-javascript'.padEnd(16)} ${cap}${detail ? `  -- ${detail}` : ''}`);
  }
  process.exit(results.some((r) => r[0] === 'FAIL') ? 1 : 0);
})();
