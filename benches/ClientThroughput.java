// Produce or consume throughput of the Java client (kafka-clients 4.3.0) over any listener, for
// benches/tls.sh. Prints one line: records, milliseconds from the first send (or the first poll)
// to the last acknowledgement (or the last record), and the CPU-seconds the JVM's threads used
// in that time (so the JVM's start-up and the compilation of this file are left out).
//
// produce: RECORDS records of SIZE bytes, acks=all, linger.ms=5, every send acknowledged.
// consume: every partition of TOPIC assigned and read from the beginning until RECORDS arrived.
// Extra client settings come as key=value arguments (security.protocol, ssl.truststore.*, sasl.*).
//
// Usage: java -cp 'jars/*' ClientThroughput.java produce|consume BOOTSTRAP TOPIC RECORDS SIZE [key=value...]
import java.lang.management.ManagementFactory;
import java.time.Duration;
import java.util.*;
import java.util.concurrent.atomic.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class ClientThroughput {
    public static void main(String[] args) throws Exception {
        String mode = args[0], boot = args[1], topic = args[2];
        long records = Long.parseLong(args[3]);
        int size = Integer.parseInt(args[4]);
        Properties p = new Properties();
        p.put("bootstrap.servers", boot);
        for (int i = 5; i < args.length; i++) {
            int eq = args[i].indexOf('=');
            p.put(args[i].substring(0, eq), args[i].substring(eq + 1));
        }
        if (mode.equals("produce")) {
            produce(p, topic, records, size);
        } else {
            consume(p, topic, records);
        }
    }

    static double cpuSeconds() {
        return ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean())
            .getProcessCpuTime() / 1e9;
    }

    static void produce(Properties p, String topic, long records, int size) throws Exception {
        p.put("acks", "all");
        p.put("linger.ms", "5");
        p.put("batch.size", "262144");
        p.put("buffer.memory", "268435456");
        p.put("key.serializer", ByteArraySerializer.class.getName());
        p.put("value.serializer", ByteArraySerializer.class.getName());
        byte[] value = new byte[size];
        new Random(7).nextBytes(value);
        AtomicLong acked = new AtomicLong();
        AtomicReference<Exception> failed = new AtomicReference<>();
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            producer.partitionsFor(topic);
            double cpu0 = cpuSeconds();
            long t0 = System.nanoTime();
            for (long i = 0; i < records; i++) {
                producer.send(new ProducerRecord<>(topic, value), (m, e) -> {
                    if (e != null) {
                        failed.compareAndSet(null, e);
                    } else {
                        acked.incrementAndGet();
                    }
                });
            }
            producer.flush();
            long ms = (System.nanoTime() - t0) / 1_000_000;
            double cpu = cpuSeconds() - cpu0;
            if (failed.get() != null) {
                throw failed.get();
            }
            System.out.printf("%d %d %.3f%n", acked.get(), ms, cpu);
        }
    }

    static void consume(Properties p, String topic, long records) {
        p.put("key.deserializer", ByteArrayDeserializer.class.getName());
        p.put("value.deserializer", ByteArrayDeserializer.class.getName());
        p.put("enable.auto.commit", "false");
        p.put("max.partition.fetch.bytes", "4194304");
        p.put("fetch.max.bytes", "16777216");
        p.put("max.poll.records", "10000");
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p)) {
            List<TopicPartition> parts = new ArrayList<>();
            for (PartitionInfo i : c.partitionsFor(topic)) {
                parts.add(new TopicPartition(topic, i.partition()));
            }
            c.assign(parts);
            c.seekToBeginning(parts);
            double cpu0 = cpuSeconds();
            long t0 = System.nanoTime();
            long got = 0;
            long idleSince = System.nanoTime();
            while (got < records) {
                int n = c.poll(Duration.ofMillis(200)).count();
                got += n;
                if (n > 0) {
                    idleSince = System.nanoTime();
                } else if (System.nanoTime() - idleSince > 30_000_000_000L) {
                    throw new IllegalStateException("no record for 30 s after " + got + " of " + records);
                }
            }
            long ms = (System.nanoTime() - t0) / 1_000_000;
            System.out.printf("%d %d %.3f%n", got, ms, cpuSeconds() - cpu0);
        }
    }
}
