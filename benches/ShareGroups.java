// Consumes every record of a topic once with N consumers of one group and prints one CSV line:
// mode, consumers, records, seconds from the consumers' start to the last record, records/s,
// deliveries (a share group may deliver a record twice when a lock runs out) and the records
// each consumer got (min/max). MODE "share" uses KafkaShareConsumer (KIP-932, implicit
// acknowledgement: each poll accepts the records of the previous one), "classic" a KafkaConsumer
// group (group.protocol=consumer, KIP-848) committing after each poll.
// WORK_US: microseconds of work per record (parked), to see what the consumers' number buys.
// Usage: java -cp 'jars/*' ShareGroups.java BOOTSTRAP TOPIC MODE CONSUMERS RECORDS GROUP [WORK_US]
import java.time.Duration;
import java.util.*;
import java.util.concurrent.*;
import java.util.concurrent.atomic.*;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public class ShareGroups {
    static long work;

    public static void main(String[] args) throws Exception {
        String boot = args[0], topic = args[1], mode = args[2], group = args[5];
        int n = Integer.parseInt(args[3]);
        long records = Long.parseLong(args[4]);
        work = args.length > 6 ? Long.parseLong(args[6]) * 1000 : 0;
        if (mode.equals("share")) {
            try (Admin a = Admin.create(Map.of("bootstrap.servers", boot))) {
                a.incrementalAlterConfigs(Map.of(new ConfigResource(ConfigResource.Type.GROUP, group),
                    List.of(new AlterConfigOp(new ConfigEntry("share.auto.offset.reset", "earliest"),
                        AlterConfigOp.OpType.SET)))).all().get();
            }
        }
        Set<Long> seen = ConcurrentHashMap.newKeySet();
        AtomicLong deliveries = new AtomicLong();
        AtomicBoolean stop = new AtomicBoolean();
        long[] perConsumer = new long[n];
        List<Thread> threads = new ArrayList<>();
        long start = System.nanoTime();
        AtomicLong end = new AtomicLong();
        for (int i = 0; i < n; i++) {
            final int me = i;
            Properties p = new Properties();
            p.put("bootstrap.servers", boot);
            p.put("group.id", group);
            p.put("key.deserializer", ByteArrayDeserializer.class.getName());
            p.put("value.deserializer", ByteArrayDeserializer.class.getName());
            Thread t = new Thread(() -> {
                if (mode.equals("share")) {
                    try (KafkaShareConsumer<byte[], byte[]> c = new KafkaShareConsumer<>(p)) {
                        c.subscribe(List.of(topic));
                        while (!stop.get()) {
                            ConsumerRecords<byte[], byte[]> rs = c.poll(Duration.ofMillis(100));
                            count(rs, me, perConsumer, seen, deliveries, records, stop, start, end);
                        }
                        c.commitSync();
                    }
                } else {
                    p.put("group.protocol", "consumer");
                    p.put("auto.offset.reset", "earliest");
                    p.put("enable.auto.commit", "false");
                    try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p)) {
                        c.subscribe(List.of(topic));
                        while (!stop.get()) {
                            ConsumerRecords<byte[], byte[]> rs = c.poll(Duration.ofMillis(100));
                            count(rs, me, perConsumer, seen, deliveries, records, stop, start, end);
                            if (!rs.isEmpty()) c.commitAsync();
                        }
                        c.commitSync();
                    }
                }
            });
            t.start();
            threads.add(t);
        }
        long deadline = System.currentTimeMillis() + 300_000;
        while (!stop.get() && System.currentTimeMillis() < deadline) Thread.sleep(20);
        stop.set(true);
        for (Thread t : threads) t.join(60_000);
        double secs = ((end.get() == 0 ? System.nanoTime() : end.get()) - start) / 1e9;
        long min = Arrays.stream(perConsumer).min().orElse(0), max = Arrays.stream(perConsumer).max().orElse(0);
        System.out.printf("%s,%d,%d,%.3f,%.0f,%d,%d,%d%n", mode, n, seen.size(), secs, seen.size() / secs,
            deliveries.get(), min, max);
        System.exit(seen.size() == records ? 0 : 1);
    }

    static void count(ConsumerRecords<byte[], byte[]> rs, int me, long[] per, Set<Long> seen, AtomicLong deliveries,
                      long records, AtomicBoolean stop, long start, AtomicLong end) {
        for (ConsumerRecord<byte[], byte[]> r : rs) {
            seen.add(((long) r.partition() << 40) | r.offset());
            deliveries.incrementAndGet();
            if (work > 0) java.util.concurrent.locks.LockSupport.parkNanos(work);
            per[me]++;
        }
        if (seen.size() >= records && !stop.get()) {
            end.compareAndSet(0, System.nanoTime());
            stop.set(true);
        }
    }
}
