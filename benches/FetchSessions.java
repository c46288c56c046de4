// One Java consumer assigned every partition of a topic, polling for a while as a producer writes
// a trickle of records (RATE per second, to partitions in turn). Prints one CSV line:
// fetch requests, bytes the consumer sent and received per fetch (its own network metrics),
// records read, and whether every record came back.
// Usage: java -cp 'jars/*' FetchSessions.java BOOTSTRAP TOPIC PARTITIONS SECONDS RATE
import java.time.Duration;
import java.util.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.*;

public class FetchSessions {
    static double metric(Map<MetricName, ? extends Metric> metrics, String group, String name) {
        double sum = 0;
        for (var e : metrics.entrySet()) {
            MetricName n = e.getKey();
            // the per-node entries only: the client-wide total would count twice
            if (n.group().equals(group) && n.name().equals(name) && n.tags().containsKey("node-id")
                    && !n.tags().get("node-id").startsWith("node--")) {
                Object v = e.getValue().metricValue();
                if (v instanceof Double d) sum += d;
            }
        }
        return sum;
    }

    public static void main(String[] args) throws Exception {
        String boot = args[0], topic = args[1];
        int parts = Integer.parseInt(args[2]), seconds = Integer.parseInt(args[3]), rate = Integer.parseInt(args[4]);
        Properties cp = new Properties();
        cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, boot);
        cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, boot);
        pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        pp.put(ProducerConfig.LINGER_MS_CONFIG, "0");
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(cp);
             KafkaProducer<String, String> p = new KafkaProducer<>(pp)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (int i = 0; i < parts; i++) tps.add(new TopicPartition(topic, i));
            c.assign(tps);
            c.seekToEnd(tps);
            for (TopicPartition tp : tps) c.position(tp);
            c.poll(Duration.ofMillis(1000));
            var m = c.metrics();
            double req0 = metric(m, "consumer-node-metrics", "request-total");
            double out0 = metric(m, "consumer-node-metrics", "outgoing-byte-total");
            double in0 = metric(m, "consumer-node-metrics", "incoming-byte-total");
            long end = System.currentTimeMillis() + seconds * 1000L;
            long next = System.currentTimeMillis();
            int sent = 0, read = 0;
            while (System.currentTimeMillis() < end) {
                while (System.currentTimeMillis() >= next) {
                    p.send(new ProducerRecord<>(topic, sent % parts, null, "r" + sent));
                    sent++;
                    next += 1000 / Math.max(1, rate);
                }
                read += c.poll(Duration.ofMillis(50)).count();
            }
            p.flush();
            long drain = System.currentTimeMillis() + 10_000;
            while (read < sent && System.currentTimeMillis() < drain) read += c.poll(Duration.ofMillis(100)).count();
            m = c.metrics();
            double reqs = metric(m, "consumer-node-metrics", "request-total") - req0;
            double out = metric(m, "consumer-node-metrics", "outgoing-byte-total") - out0;
            double in = metric(m, "consumer-node-metrics", "incoming-byte-total") - in0;
            System.out.printf(Locale.ROOT, "%.0f,%.0f,%.0f,%d,%d%n", reqs, out / Math.max(1, reqs), in / Math.max(1, reqs), read, sent);
        }
    }
}
