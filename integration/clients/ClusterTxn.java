// Transactions v2 (KIP-890) through the Java client against a cluster: a transactional producer
// writes every partition of a new 6-partition topic (their leaders spread over the nodes, most
// of them not the transaction's coordinator, so each adds its partition at the coordinator)
// and sends offsets for three groups (their coordinators are other nodes, mostly), over three
// transactions: commit, abort, commit. Then read_committed sees exactly the committed records,
// every group has the last committed transaction's offset, and the producer's epoch is 3 (one
// bump per EndTxn v5). Prints one line and exits 0 when all of that holds.
// Usage: java -cp 'jars/*' ClusterTxn.java BOOTSTRAP
import java.time.Duration;
import java.util.*;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class ClusterTxn {
    static void fail(String what) {
        System.out.println("FAIL: transactions v2 across the cluster: " + what);
        System.exit(1);
    }

    public static void main(String[] args) throws Exception {
        String boot = args[0], topic = "tv2-out", src = "tv2-in", id = "tv2-app";
        List<String> groups = List.of("tv2-g1", "tv2-g2", "tv2-g3");
        Properties ap = new Properties();
        ap.put("bootstrap.servers", boot);
        try (Admin admin = Admin.create(ap)) {
            admin.createTopics(List.of(new NewTopic(topic, 6, (short) 1), new NewTopic(src, 1, (short) 1))).all().get();
        }
        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, boot);
        pp.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, id);
        pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        Set<String> want = new TreeSet<>();
        try (KafkaProducer<String, String> p = new KafkaProducer<>(pp)) {
            p.initTransactions();
            for (int t = 0; t < 3; t++) {
                p.beginTransaction();
                for (int i = 0; i < 12; i++) {
                    String v = "t" + t + "-" + i;
                    p.send(new ProducerRecord<>(topic, i % 6, null, v));
                    if (t != 1) want.add(v);
                }
                for (String g : groups) {
                    @SuppressWarnings("removal")
                    ConsumerGroupMetadata meta = new ConsumerGroupMetadata(g);
                    p.sendOffsetsToTransaction(Map.of(new TopicPartition(src, 0), new OffsetAndMetadata(10 + t)), meta);
                }
                if (t == 1) {
                    p.flush();
                    p.abortTransaction();
                } else {
                    p.commitTransaction();
                }
            }
        }
        Properties cp = new Properties();
        cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, boot);
        cp.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        Set<String> got = new TreeSet<>();
        int read = 0;
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(cp)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (int i = 0; i < 6; i++) tps.add(new TopicPartition(topic, i));
            c.assign(tps);
            c.seekToBeginning(tps);
            long deadline = System.currentTimeMillis() + 60_000;
            while (got.size() < want.size() && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    got.add(r.value());
                    read++;
                }
            }
            // a little longer: nothing aborted may follow
            for (int i = 0; i < 5; i++) for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                got.add(r.value());
                read++;
            }
        }
        if (!got.equals(want) || read != want.size()) fail("read_committed read " + read + " records " + got + ", want " + want);
        try (Admin admin = Admin.create(ap)) {
            for (String g : groups) {
                OffsetAndMetadata m = admin.listConsumerGroupOffsets(g).partitionsToOffsetAndMetadata().get()
                    .get(new TopicPartition(src, 0));
                if (m == null || m.offset() != 12) fail(g + " committed " + m + ", want 12");
            }
            TransactionDescription d = admin.describeTransactions(List.of(id)).description(id).get();
            if (d.producerEpoch() != 3) fail("producer epoch " + d.producerEpoch() + " after three transactions, want 3");
        }
        System.out.println("transactions v2 across the cluster: " + want.size() + " committed records read once, "
            + groups.size() + " groups' offsets committed, producer epoch 3");
    }
}
