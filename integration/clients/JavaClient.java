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

    /** Both members hold some of the four partitions, none twice, all four between them. */
    static boolean split(List<Set<Integer>> shares) {
        Set<Integer> a = new HashSet<>(shares.get(0)), b = new HashSet<>(shares.get(1)), both = new HashSet<>(a);
        both.addAll(b);
        return !a.isEmpty() && !b.isEmpty() && both.size() == 4 && a.size() + b.size() == 4;
    }

    static void expect(Object got, Object want, String what) {
        if (!Objects.equals(got, want)) throw new AssertionError(what + ": expected " + want + ", got " + got);
    }

    static Admin admin() { return admin(boot); }

    static Admin admin(String bootstrap) {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        return Admin.create(p);
    }

    static void create(String topic, int partitions) throws Exception { create(boot, topic, partitions); }

    static void create(String bootstrap, String topic, int partitions) throws Exception {
        try (Admin a = admin(bootstrap)) {
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
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, boot);
        p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.putAll(extra);
        return new KafkaConsumer<>(p);
    }

    static List<ConsumerRecord<String, String>> consume(String topic, int n) {
        return consume(topic, n, name("g"), new Properties());
    }

    static List<ConsumerRecord<String, String>> consume(String topic, int n, String group, Properties extra) {
        List<ConsumerRecord<String, String>> out = new ArrayList<>();
        try (KafkaConsumer<String, String> c = consumer(group, extra)) {
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
        // each member's assignment as it last saw it
        List<Set<Integer>> shares = List.of(ConcurrentHashMap.newKeySet(), ConcurrentHashMap.newKeySet());
        long deadline = System.currentTimeMillis() + 60_000;
        AtomicBoolean done = new AtomicBoolean();
        ExecutorService pool = Executors.newFixedThreadPool(2);
        List<Future<?>> members = new ArrayList<>();
        for (int m = 0; m < 2; m++) {
            Set<Integer> share = shares.get(m);
            members.add(pool.submit(() -> {
                try (KafkaConsumer<String, String> c = consumer(g)) {
                    c.subscribe(List.of(topic));
                    // until every record was read and the members' latest assignments split the
                    // partitions (the first member alone held all four)
                    while (!done.get() && System.currentTimeMillis() < deadline) {
                        ConsumerRecords<String, String> rs = c.poll(Duration.ofMillis(200));
                        if (done.get()) break; // the other member's leaving may move partitions here
                        Set<Integer> now = new HashSet<>();
                        for (TopicPartition tp : c.assignment()) now.add(tp.partition());
                        share.retainAll(now);
                        share.addAll(now);
                        for (ConsumerRecord<String, String> r : rs) seen.add(r.partition() + "/" + r.offset());
                        if (!rs.isEmpty()) c.commitSync();
                        if (seen.size() >= 40 && split(shares)) done.set(true);
                    }
                }
                return null;
            }));
        }
        for (Future<?> f : members) f.get();
        pool.shutdown();
        expect(seen.size(), 40, "records consumed by the group");
        if (!split(shares)) throw new AssertionError("the two members' assignments: " + shares);
        // one more record per partition: a member resuming from the commits reads exactly these
        try (KafkaProducer<String, String> p = producer(Map.of())) {
            for (int part = 0; part < 4; part++) p.send(new ProducerRecord<>(topic, part, null, "late-" + part)).get();
        }
        List<String> got = new ArrayList<>();
        try (KafkaConsumer<String, String> c = consumer(g)) {
            c.subscribe(List.of(topic));
            long until = System.currentTimeMillis() + 30_000;
            while (got.size() < 4 && System.currentTimeMillis() < until) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) got.add(r.value());
            }
        }
        Collections.sort(got);
        expect(got, List.of("late-0", "late-1", "late-2", "late-3"), "a new member resumes from the commits");
        return "ok";
    }

    static String env(String name) {
        String v = System.getenv(name);
        if (v == null || v.isEmpty()) throw new AssertionError(name + " is not set: run through integration/clients.sh");
        return v;
    }

    /** SIGKILLs the broker and waits until it listens again (integration/clients.sh's hook). */
    static void restartBroker() throws Exception {
        Process p = new ProcessBuilder(env("RESTART_BROKER"))
            .redirectOutput(ProcessBuilder.Redirect.DISCARD).redirectError(ProcessBuilder.Redirect.INHERIT).start();
        if (!p.waitFor(60, TimeUnit.SECONDS) || p.exitValue() != 0) throw new AssertionError("broker restart failed");
    }

    /** Fails unless the fault proxy threw away at least one produce response of `clientId`. */
    static void expectFaults(String clientId) throws Exception {
        long lost = java.nio.file.Files.readAllLines(java.nio.file.Path.of(env("FAULT_LOG"))).stream()
            .filter(l -> l.split(" ").length > 1 && l.split(" ")[1].equals(clientId)).count();
        if (lost == 0) throw new AssertionError("the fault proxy lost no produce response of " + clientId);
    }

    static List<String> values(String tag) {
        List<String> out = new ArrayList<>();
        for (int i = 0; i < 10; i++) out.add(tag + "-" + i);
        return out;
    }

    static String brokerRestart() throws Exception {
        String topic = name("java-restart"), g = name("grp");
        create(topic, 1);
        try (KafkaProducer<String, String> p = producer(Map.of())) {
            for (String v : values("before")) p.send(new ProducerRecord<>(topic, null, v)).get();
            try (KafkaConsumer<String, String> c = consumer(g)) {
                c.subscribe(List.of(topic));
                int n = 0;
                long deadline = System.currentTimeMillis() + 30_000;
                while (n < 10 && System.currentTimeMillis() < deadline) n += c.poll(Duration.ofMillis(200)).count();
                expect(n, 10, "records before the restart");
                c.commitSync();
            }
            restartBroker();
            // the same producer reconnects on its own; the group's commit survived the kill
            for (String v : values("after")) p.send(new ProducerRecord<>(topic, null, v)).get(60, TimeUnit.SECONDS);
        }
        List<String> resumed = new ArrayList<>();
        for (ConsumerRecord<String, String> r : consume(topic, 10, g, new Properties())) resumed.add(r.value());
        expect(resumed, values("after"), "the group resumes at its commit");
        List<String> all = new ArrayList<>();
        for (ConsumerRecord<String, String> r : consume(topic, 20)) all.add(r.value());
        List<String> want = values("before");
        want.addAll(values("after"));
        expect(all, want, "the whole log");
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

    /** ListOffsets v10 through the Admin: earliest, latest, max timestamp, by timestamp and the
     *  latest tiered offset (KIP-1005) once closed segments reach the bucket. */
    static String offsetSpecs() throws Exception {
        String topic = name("java-offsets");
        TopicPartition tp = new TopicPartition(topic, 0);
        try (Admin a = admin()) {
            a.createTopics(List.of(new NewTopic(topic, 1, (short) 1).configs(Map.of("segment.bytes", "1024"))))
                .all().get(30, TimeUnit.SECONDS);
            // current timestamps: old ones would fall to retention.ms
            long t0 = System.currentTimeMillis() - 60_000;
            try (KafkaProducer<String, String> p = producer(Map.of())) {
                for (int i = 0; i < 40; i++) p.send(new ProducerRecord<>(topic, 0, t0 + 10L * i, null, "x".repeat(200))).get();
            }
            expect(offset(a, tp, OffsetSpec.earliest()), 0L, "earliest");
            expect(offset(a, tp, OffsetSpec.latest()), 40L, "latest");
            expect(offset(a, tp, OffsetSpec.maxTimestamp()), 39L, "max timestamp");
            expect(offset(a, tp, OffsetSpec.forTimestamp(t0 + 100)), 10L, "by timestamp");
            long tiered = -1, deadline = System.currentTimeMillis() + 30_000;
            while (tiered < 0 && System.currentTimeMillis() < deadline) {
                tiered = offset(a, tp, OffsetSpec.latestTiered());
                if (tiered < 0) Thread.sleep(200);
            }
            // the active segment is never uploaded
            if (tiered < 0 || tiered >= 39) throw new AssertionError("latest tiered offset " + tiered);
            a.deleteTopics(List.of(topic)).all().get(30, TimeUnit.SECONDS);
        }
        return "ok";
    }

    static long offset(Admin a, TopicPartition tp, OffsetSpec spec) throws Exception {
        return a.listOffsets(Map.of(tp, spec)).partitionResult(tp).get(30, TimeUnit.SECONDS).offset();
    }

    static String idempotent() throws Exception {
        String faulty = env("FAULTY_BOOTSTRAP"), clientId = "idem-java", topic = name("java-idem");
        create(faulty, topic, 1);
        try (KafkaProducer<String, String> p = producer(Map.of(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true",
                ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, faulty, ProducerConfig.CLIENT_ID_CONFIG, clientId))) {
            // ten rounds, each flushed: enough produce requests for the proxy to lose some answers
            for (int round = 0; round < 10; round++) {
                List<Future<RecordMetadata>> sent = new ArrayList<>();
                for (int i = 0; i < 50; i++) sent.add(p.send(new ProducerRecord<>(topic, null, "" + (round * 50 + i))));
                p.flush();
                for (Future<RecordMetadata> f : sent) f.get();
            }
        }
        expectFaults(clientId);
        Properties at = new Properties();
        at.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, faulty);
        List<ConsumerRecord<String, String>> got = consume(topic, 500, name("g"), at);
        List<Integer> values = new ArrayList<>();
        for (ConsumerRecord<String, String> r : got) values.add(Integer.parseInt(r.value()));
        List<Integer> want = new ArrayList<>();
        for (int i = 0; i < 500; i++) want.add(i);
        expect(values, want, "exactly once, in order");
        try (KafkaConsumer<String, String> c = consumer(name("g"), at)) {
            TopicPartition tp = new TopicPartition(topic, 0);
            expect(c.endOffsets(List.of(tp)).get(tp), 500L, "records in the log (a retried batch stored twice adds more)");
        }
        return "ok";
    }

    static List<String> readValues(String topic, String isolation, int n) {
        List<String> out = new ArrayList<>();
        Properties p = new Properties();
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        try (KafkaConsumer<String, String> c = consumer(name("g"), p)) {
            c.subscribe(List.of(topic));
            long deadline = System.currentTimeMillis() + 30_000;
            while (out.size() < n && System.currentTimeMillis() < deadline) {
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
        // a plain record after the aborted transaction: a reader that reaches it has read past
        // everything the transactions wrote, so what it did not see was really filtered
        try (KafkaProducer<String, String> p = producer(Map.of())) {
            p.send(new ProducerRecord<>(topic, null, "end")).get();
        }
        List<String> want = new ArrayList<>();
        for (int i = 0; i < 5; i++) want.add("c-" + i);
        want.add("end");
        expect(readValues(topic, "read_committed", 6), want, "read_committed: the committed records, then the plain one");
        List<String> all = readValues(topic, "read_uncommitted", 11);
        expect(all.size(), 11, "read_uncommitted sees the aborted records");
        expect(all.get(10), "end", "read_uncommitted reads up to the end");
        try (KafkaConsumer<String, String> c = consumer(group)) {
            TopicPartition tp = new TopicPartition(src, 0);
            OffsetAndMetadata m = c.committed(Set.of(tp), Duration.ofSeconds(10)).get(tp);
            expect(m == null ? null : m.offset(), 5L, "offset committed");
        }
        return "ok";
    }

    /** A counter of the broker's /metrics: the sample of `name` carrying every label given. */
    static double brokerMetric(String name, String... labels) throws Exception {
        String url = System.getenv("TIERCEL_METRICS");
        var http = java.net.http.HttpClient.newHttpClient();
        String body = http.send(java.net.http.HttpRequest.newBuilder(java.net.URI.create(url)).build(),
            java.net.http.HttpResponse.BodyHandlers.ofString()).body();
        for (String line : body.split("\n")) {
            if (!line.startsWith(name + "{")) continue;
            boolean all = true;
            for (String l : labels) all &= line.contains(l);
            if (all) return Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
        }
        return 0;
    }

    /** The sum of every sample of the broker's counter `name` carrying every label given. */
    static double brokerMetricSum(String name, String... labels) throws Exception {
        String url = System.getenv("TIERCEL_METRICS");
        var http = java.net.http.HttpClient.newHttpClient();
        String body = http.send(java.net.http.HttpRequest.newBuilder(java.net.URI.create(url)).build(),
            java.net.http.HttpResponse.BodyHandlers.ofString()).body();
        double sum = 0;
        for (String line : body.split("\n")) {
            if (!line.startsWith(name + "{")) continue;
            boolean all = true;
            for (String l : labels) all &= line.contains(l);
            if (all) sum += Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
        }
        return sum;
    }

    /**
     * Transactions v2 (KIP-890): with `transaction.version` 2 finalized the client sends no
     * AddPartitionsToTxn or AddOffsetsToTxn (its produce and its TxnOffsetCommit v5 add them),
     * and each EndTxn (v5) ends with the producer's epoch bumped: three transactions (commit,
     * abort, commit, each with offsets) read back as Kafka would and leave the epoch at 3.
     */
    static String transactionsV2() throws Exception {
        if (System.getenv("TIERCEL_METRICS") == null) return "n/a";
        String topic = name("java-tv2"), src = name("java-tv2-in"), group = name("g"), id = name("java-tv2");
        create(topic, 2);
        create(src, 1);
        String requests = "tiercel_requests_total";
        double adds = brokerMetricSum(requests, "api=\"AddPartitionsToTxn\"")
            + brokerMetricSum(requests, "api=\"AddOffsetsToTxn\"");
        double ends = brokerMetricSum(requests, "api=\"EndTxn\"", "version=\"5\"");
        try (KafkaProducer<String, String> p = producer(Map.of(ProducerConfig.TRANSACTIONAL_ID_CONFIG, id));
             KafkaConsumer<String, String> member = consumer(group)) {
            p.initTransactions();
            for (int t = 0; t < 3; t++) {
                p.beginTransaction();
                for (int i = 0; i < 4; i++) p.send(new ProducerRecord<>(topic, i % 2, null, "t" + t + "-" + i));
                p.sendOffsetsToTransaction(Map.of(new TopicPartition(src, 0), new OffsetAndMetadata(10 + t)),
                    member.groupMetadata());
                if (t == 1) {
                    p.flush();
                    p.abortTransaction();
                } else {
                    p.commitTransaction();
                }
            }
        }
        try (KafkaProducer<String, String> p = producer(Map.of())) {
            p.send(new ProducerRecord<>(topic, 0, null, "end")).get();
            p.send(new ProducerRecord<>(topic, 1, null, "end")).get();
        }
        List<String> got = readValues(topic, "read_committed", 10);
        Collections.sort(got);
        List<String> want = new ArrayList<>(List.of("end", "end"));
        for (int t : new int[] {0, 2}) for (int i = 0; i < 4; i++) want.add("t" + t + "-" + i);
        Collections.sort(want);
        expect(got, want, "read_committed: the committed transactions");
        try (KafkaConsumer<String, String> c = consumer(group)) {
            TopicPartition tp = new TopicPartition(src, 0);
            OffsetAndMetadata m = c.committed(Set.of(tp), Duration.ofSeconds(10)).get(tp);
            expect(m == null ? null : m.offset(), 12L, "offset of the last committed transaction");
        }
        try (Admin a = admin()) {
            TransactionDescription d = a.describeTransactions(List.of(id)).description(id).get();
            expect((int) d.producerEpoch(), 3, "producer epoch after three transactions");
        }
        double addsAfter = brokerMetricSum(requests, "api=\"AddPartitionsToTxn\"")
            + brokerMetricSum(requests, "api=\"AddOffsetsToTxn\"");
        expect(addsAfter - adds, 0.0, "AddPartitionsToTxn/AddOffsetsToTxn requests");
        expect(brokerMetricSum(requests, "api=\"EndTxn\"", "version=\"5\"") - ends, 3.0, "EndTxn v5 requests");
        return "ok";
    }

    static String scrape(String url) throws Exception {
        var http = java.net.http.HttpClient.newHttpClient();
        return http.send(java.net.http.HttpRequest.newBuilder(java.net.URI.create(url)).build(),
            java.net.http.HttpResponse.BodyHandlers.ofString()).body();
    }

    /** Whether `body` holds a client metric starting `prefix` labelled with `clientId`. */
    static boolean pushed(String body, String prefix, String clientId) {
        for (String line : body.split("\n")) {
            if (line.startsWith(prefix) && line.contains("client_id=\"" + clientId + "\"")
                && line.contains("client_software_name=\"apache-kafka-java\"")) return true;
        }
        return false;
    }

    /**
     * Client telemetry (KIP-714) against a broker that asks for `org.apache.kafka.` metrics every
     * second: the producer's and the consumer's metrics show on the broker's /metrics, labelled
     * with their client ids and software, while they run, and are forgotten once they have
     * stopped pushing for three intervals.
     */
    static String telemetry() throws Exception {
        String tb = System.getenv("TELEMETRY_BOOTSTRAP"), tm = System.getenv("TELEMETRY_METRICS");
        if (tb == null || tm == null) return "n/a";
        String topic = name("java-telemetry"), pid = name("java-tel-p"), cid = name("java-tel-c");
        create(tb, topic, 1);
        Properties cx = new Properties();
        cx.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, tb);
        cx.put(ConsumerConfig.CLIENT_ID_CONFIG, cid);
        boolean seenP = false, seenC = false;
        try (KafkaProducer<String, String> p = producer(Map.of(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, tb,
                 ProducerConfig.CLIENT_ID_CONFIG, pid));
             KafkaConsumer<String, String> c = consumer(name("g"), cx)) {
            for (int i = 0; i < 10; i++) p.send(new ProducerRecord<>(topic, null, "v" + i)).get();
            c.subscribe(List.of(topic));
            int read = 0;
            long deadline = System.currentTimeMillis() + 30_000;
            while (System.currentTimeMillis() < deadline && !(seenP && seenC && read >= 10)) {
                read += c.poll(Duration.ofMillis(300)).count();
                String body = scrape(tm);
                seenP = pushed(body, "tiercel_client_org_apache_kafka_producer", pid);
                seenC = pushed(body, "tiercel_client_org_apache_kafka_consumer", cid);
            }
            expect(read, 10, "records consumed");
        }
        expect(seenP, true, "the producer's metrics on the broker's /metrics");
        expect(seenC, true, "the consumer's metrics on the broker's /metrics");
        // closed clients push no more: their values go after three silent intervals (3 s here)
        long closed = System.currentTimeMillis();
        boolean goneP = false, goneC = false;
        while (!(goneP && goneC) && System.currentTimeMillis() - closed < 8_000) {
            String body = scrape(tm);
            goneP = !body.contains("client_id=\"" + pid + "\"");
            goneC = !body.contains("client_id=\"" + cid + "\"");
            Thread.sleep(100);
        }
        expect(goneP, true, "the closed producer's metrics forgotten");
        expect(goneC, true, "the closed consumer's metrics forgotten");
        return "ok";
    }

    /** Fetches the broker served in an incremental fetch session (KIP-227). */
    static double incrementalFetches() throws Exception {
        return brokerMetric("tiercel_fetch_session_requests_total", "kind=\"incremental\"");
    }

    /**
     * KIP-516 on the wire: the client names topics by id in Produce (v13) and Fetch (v13+; it
     * asks for v17), and the records come back.
     */
    static String topicIds() throws Exception {
        if (System.getenv("TIERCEL_METRICS") == null) return "n/a";
        String requests = "tiercel_requests_total", api = "api=\"Produce\"", fetch = "api=\"Fetch\"";
        double p0 = brokerMetric(requests, api, "version=\"13\""), f0 = brokerMetric(requests, fetch, "version=\"17\"");
        String topic = name("java-ids");
        create(topic, 2);
        try (KafkaProducer<String, String> p = producer(Map.of())) {
            for (int i = 0; i < 20; i++) p.send(new ProducerRecord<>(topic, i % 2, "k" + i, "v" + i));
            p.flush();
        }
        List<ConsumerRecord<String, String>> got = consume(topic, 20);
        Set<String> values = new TreeSet<>();
        for (ConsumerRecord<String, String> r : got) values.add(r.value());
        Set<String> want = new TreeSet<>();
        for (int i = 0; i < 20; i++) want.add("v" + i);
        expect(values, want, "records read back");
        double p1 = brokerMetric(requests, api, "version=\"13\""), f1 = brokerMetric(requests, fetch, "version=\"17\"");
        if (p1 <= p0) throw new AssertionError("no Produce v13 request reached the broker");
        if (f1 <= f0) throw new AssertionError("no Fetch v17 request reached the broker");
        return "ok";
    }

    /**
     * KIP-227: a consumer of 24 partitions polls while records arrive in a third of them at a
     * time; it reads through an incremental fetch session and gets every record, in order.
     */
    static String fetchSessions() throws Exception {
        if (System.getenv("TIERCEL_METRICS") == null) return "n/a";
        String topic = name("java-sessions");
        int parts = 24, rounds = 6;
        create(topic, parts);
        double before = incrementalFetches();
        Map<Integer, List<Integer>> want = new TreeMap<>(), got = new TreeMap<>();
        for (int r = 0; r < rounds; r++)
            for (int i = 0; i < parts; i++)
                if ((i + r) % 3 == 0) want.computeIfAbsent(i, k -> new ArrayList<>()).add(r);
        Properties extra = new Properties();
        extra.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, "100");
        try (KafkaConsumer<String, String> c = consumer(name("g"), extra);
             KafkaProducer<String, String> p = producer(Map.of())) {
            List<TopicPartition> tps = new ArrayList<>();
            for (int i = 0; i < parts; i++) tps.add(new TopicPartition(topic, i));
            c.assign(tps);
            c.seekToBeginning(tps);
            c.poll(Duration.ofMillis(500));
            int sent = 0, read = 0;
            for (int r = 0; r < rounds; r++) {
                for (int i = 0; i < parts; i++) {
                    if ((i + r) % 3 == 0) {
                        p.send(new ProducerRecord<>(topic, i, null, Integer.toString(r)));
                        sent++;
                    }
                }
                p.flush();
                long deadline = System.currentTimeMillis() + 15_000;
                while (read < sent && System.currentTimeMillis() < deadline) {
                    for (ConsumerRecord<String, String> rec : c.poll(Duration.ofMillis(200))) {
                        got.computeIfAbsent(rec.partition(), k -> new ArrayList<>()).add(Integer.parseInt(rec.value()));
                        read++;
                    }
                }
            }
        }
        expect(got, want, "records by partition");
        double used = incrementalFetches() - before;
        if (used < rounds) throw new AssertionError(used + " incremental fetches, expected at least " + rounds);
        return "ok";
    }

    public static void main(String[] args) {
        boot = args[0];
        for (String codec : List.of("none", "gzip", "snappy", "lz4", "zstd")) {
            record("produce/consume " + codec, () -> produceConsume(codec));
        }
        record("consumer group (2 members share, commits, resume)", JavaClient::group);
        record("broker restart (kill -9)", JavaClient::brokerRestart);
        record("admin create/describe/alter/delete", JavaClient::adminOps);
        record("list offsets by spec (ListOffsets v10, latest tiered)", JavaClient::offsetSpecs);
        record("idempotent producer", JavaClient::idempotent);
        record("transactions", JavaClient::transactions);
        record("transactions v2 (KIP-890: EndTxn v5, no AddPartitionsToTxn)", JavaClient::transactionsV2);
        record("fetch sessions (KIP-227)", JavaClient::fetchSessions);
        record("topic ids on the wire (Produce v13, Fetch v17)", JavaClient::topicIds);
        record("client telemetry (KIP-714): metrics on the broker's /metrics", JavaClient::telemetry);
        boolean failed = false;
        for (String[] r : results) {
            System.out.printf("%-4s %-16s %s%s%n", r[0], "java", r[1], r[2].isEmpty() ? "" : "  -- " + r[2]);
            failed |= r[0].equals("FAIL");
        }
        System.exit(failed ? 1 : 0);
    }
}
