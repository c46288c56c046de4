// The Java client (kafka-clients) against a running broker, default configuration unless a case
// says otherwise (the producer's defaults include idempotence and acks=all). Prints one line per
// capability: PASS, FAIL (with the reason) or N/A; exits 1 on any FAIL.
// Usage: java -cp 'jars/*' JavaClient.java BOOTSTRAP
import java.time.Duration;
import java.util.*;
import java.util.concurrent.*;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class JavaClient {
    static String boot;
    static final List<String[]> results = new ArrayList<>();

    interface Case { String run() throws Exception; }

    static void record(String cap, Case c) {
        try {
            String out = c.run();
            results.add(new String[] {"n/a".equals(out) ? "N/A" : "PASS", cap, ""});
        } catch (Throwable e) {
            String msg = (e.getClass().getSimpleName() + ": " + e.getMessage()).replace('\n', ' ');
            results.add(new String[] {"FAIL", cap, msg.substring(0, Math.min(200, msg.length()))});
            e.printStackTrace();
        }
    }

    static String name(String p) { return p + "-" + UUID.randomUUID().toString().substring(0, 8); }

    static void expect(Object got, Object want, String what) {
        if (!Objects.equals(got, want)) throw new AssertionError(what + ": expected " + want + ", got " + got);
    }

    static Admin admin() {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, boot);
        return Admin.create(p);
    }

    static void create(String topic, int partitions) throws Exception {
        try (Admin a = admin()) {
            a.createTopics(List.of(new NewTopic(topic, partitions, (short) 1))).all().get(30, TimeUnit.SECONDS);
        }
    }

    static KafkaProducer<String, String> producer(Map<String, Object> extra) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, boot);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.putAll(extra);
        return new KafkaProducer<>(p);
    }

    static KafkaConsumer<String, String> consumer(String group) {
        return consumer(group, new Properties());
    }

    static KafkaConsumer<String, String> consumer(String group, Properties extra) {
        Properties p = new Properties();
        p.putAll(extra);
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, boot);
        p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        return new KafkaConsumer<>(p);
    }

    static List<ConsumerRecord<String, String>> consume(String topic, int n) {
        List<ConsumerRecord<String, String>> out = new ArrayList<>();
        try (KafkaConsumer<String, String> c = consumer(name("g"))) {
            c.subscribe(List.of(topic));
            long deadline = System.currentTimeMillis() + 30_000;
            while (out.size() < n && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) out.add(r);
            }
        }
        return out;
    }

    static String produceConsume(String codec) throws Exception {
        String topic = name("java-" + codec);
        create(topic, 1);
        try (KafkaProducer<String, String> p = producer(Map.of(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec))) {
            for (int i = 0; i < 200; i++) {
                ProducerRecord<String, String> r = new ProducerRecord<>(topic, "k" + i, codec + "-" + i);
                r.headers().add(new RecordHeader("h", ("" + i).getBytes()));
                p.send(r);
            }
            p.flush();
        }
        List<ConsumerRecord<String, String>> got = consume(topic, 200);
        expect(got.size(), 200, "records");
        for (int i = 0; i < 200; i++) {
            ConsumerRecord<String, String> r = got.get(i);
            expect(r.key() + "/" + r.value() + "/" + new String(r.headers().lastHeader("h").value()),
                   "k" + i + "/" + codec + "-" + i + "/" + i, "record " + i);
        }
        return "ok";
    }

    static String group() throws Exception {
        String topic = name("java-group");
        create(topic, 4);
        try (KafkaProducer<String, String> p = producer(Map.of())) {
            for (int i = 0; i < 40; i++) p.send(new ProducerRecord<>(topic, "k" + i, "v" + i));
            p.flush();
        }
        String g = name("grp");
        Set<String> seen = ConcurrentHashMap.newKeySet();
        long deadline = System.currentTimeMillis() + 60_000;
        ExecutorService pool = Executors.newFixedThreadPool(2);
        List<Future<?>> members = new ArrayList<>();
        for (int m = 0; m < 2; m++) {
            members.add(pool.submit(() -> {
                try (KafkaConsumer<String, String> c = consumer(g)) {
                    c.subscribe(List.of(topic));
                    while (seen.size() < 40 && System.currentTimeMillis() < deadline) {
                        ConsumerRecords<String, String> rs = c.poll(Duration.ofMillis(200));
                        for (ConsumerRecord<String, String> r : rs) seen.add(r.partition() + "/" + r.offset());
                        if (!rs.isEmpty()) c.commitSync();
                    }
                }
                return null;
            }));
        }
        for (Future<?> f : members) f.get();
        pool.shutdown();
        expect(seen.size(), 40, "records consumed by the group");
        try (KafkaProducer<String, String> p = producer(Map.of())) {
            p.send(new ProducerRecord<>(topic, 0, "late", "late")).get();
        }
        List<String> got = new ArrayList<>();
        try (KafkaConsumer<String, String> c = consumer(g)) {
            c.subscribe(List.of(topic));
            long until = System.currentTimeMillis() + 30_000;
            while (got.isEmpty() && System.currentTimeMillis() < until) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) got.add(r.value());
            }
        }
        expect(got, List.of("late"), "after restart only the new record");
        return "ok";
    }

    static String adminOps() throws Exception {
        String topic = name("java-admin");
        try (Admin a = admin()) {
            a.createTopics(List.of(new NewTopic(topic, 3, (short) 1))).all().get(30, TimeUnit.SECONDS);
            TopicDescription d = a.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
            expect(d.partitions().size(), 3, "partitions");
            ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
            Config cfg = a.describeConfigs(List.of(res)).all().get().get(res);
            expect(cfg.get("cleanup.policy").value(), "delete", "cleanup.policy");
            a.incrementalAlterConfigs(Map.of(res, List.of(new AlterConfigOp(
                new ConfigEntry("retention.ms", "12345"), AlterConfigOp.OpType.SET)))).all().get();
            cfg = a.describeConfigs(List.of(res)).all().get().get(res);
            expect(cfg.get("retention.ms").value(), "12345", "altered retention.ms");
            a.deleteTopics(List.of(topic)).all().get(30, TimeUnit.SECONDS);
            long deadline = System.currentTimeMillis() + 10_000;
            while (a.listTopics().names().get().contains(topic) && System.currentTimeMillis() < deadline) Thread.sleep(200);
            if (a.listTopics().names().get().contains(topic)) throw new AssertionError("topic still listed after delete");
        }
        return "ok";
    }

    static String idempotent() throws Exception {
        String topic = name("java-idem");
        create(topic, 1);
        try (KafkaProducer<String, String> p = producer(Map.of(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true"))) {
            for (int i = 0; i < 500; i++) p.send(new ProducerRecord<>(topic, null, "" + i));
            p.flush();
        }
        List<ConsumerRecord<String, String>> got = consume(topic, 500);
        List<Integer> values = new ArrayList<>();
        for (ConsumerRecord<String, String> r : got) values.add(Integer.parseInt(r.value()));
        List<Integer> want = new ArrayList<>();
        for (int i = 0; i < 500; i++) want.add(i);
        expect(values, want, "exactly once, in order");
        return "ok";
    }

    static List<String> readValues(String topic, String isolation, int n, long settleMs) {
        List<String> out = new ArrayList<>();
        Properties p = new Properties();
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        try (KafkaConsumer<String, String> c = consumer(name("g"), p)) {
            c.subscribe(List.of(topic));
            long deadline = System.currentTimeMillis() + 30_000;
            while (out.size() < n && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) out.add(r.value());
            }
            long settle = System.currentTimeMillis() + settleMs;
            while (System.currentTimeMillis() < settle) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) out.add(r.value());
            }
        }
        return out;
    }

    /** Commit (with offsets sent to the transaction) and abort; both isolation levels. */
    static String transactions() throws Exception {
        String topic = name("java-txn"), src = name("java-txn-in"), group = name("g");
        create(topic, 1);
        create(src, 1);
        try (KafkaProducer<String, String> p = producer(Map.of(ProducerConfig.TRANSACTIONAL_ID_CONFIG, name("java-tx")));
             KafkaConsumer<String, String> member = consumer(group)) {
            p.initTransactions();
            p.beginTransaction();
            for (int i = 0; i < 5; i++) p.send(new ProducerRecord<>(topic, null, "c-" + i));
            p.sendOffsetsToTransaction(Map.of(new TopicPartition(src, 0), new OffsetAndMetadata(5)),
                member.groupMetadata());
            p.commitTransaction();
            p.beginTransaction();
            for (int i = 0; i < 5; i++) p.send(new ProducerRecord<>(topic, null, "a-" + i));
            p.flush();
            p.abortTransaction();
        }
        List<String> want = new ArrayList<>();
        for (int i = 0; i < 5; i++) want.add("c-" + i);
        expect(readValues(topic, "read_committed", 5, 1500), want, "read_committed");
        expect(readValues(topic, "read_uncommitted", 10, 0).size(), 10, "read_uncommitted sees the aborted records");
        try (KafkaConsumer<String, String> c = consumer(group)) {
            TopicPartition tp = new TopicPartition(src, 0);
            OffsetAndMetadata m = c.committed(Set.of(tp), Duration.ofSeconds(10)).get(tp);
            expect(m == null ? null : m.offset(), 5L, "offset committed");
        }
        return "ok";
    }

    public static void main(String[] args) {
        boot = args[0];
        for (String codec : List.of("none", "gzip", "snappy", "lz4", "zstd")) {
            record("produce/consume " + codec, () -> produceConsume(codec));
        }
        record("consumer group (2 members, commits, restart)", JavaClient::group);
        record("admin create/describe/alter/delete", JavaClient::adminOps);
        record("idempotent producer", JavaClient::idempotent);
        record("transactions", JavaClient::transactions);
        boolean failed = false;
        for (String[] r : results) {
            System.out.printf("%-4s %-16s %s%s%n", r[0], "java", r[1], r[2].isEmpty() ? "" : "  -- " + r[2]);
            failed |= r[0].equals("FAIL");
        }
        System.exit(failed ? 1 : 0);
    }
}
