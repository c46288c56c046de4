// A consumer group member (the Java client, default settings but earliest reset) for the
// cluster chaos run: subscribes to TOPIC in group GROUP, commits as it goes, and writes every
// value it receives to OUT (one per line, flushed) until the file STOP exists.
// Usage: java -cp 'jars/*' ClusterGroup.java BOOTSTRAP TOPIC GROUP OUT STOP
import java.io.*;
import java.nio.file.*;
import java.time.Duration;
import java.util.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.common.serialization.StringDeserializer;

public class ClusterGroup {
    public static void main(String[] args) throws Exception {
        Properties p = new Properties();
        p.put("bootstrap.servers", args[0]);
        p.put("group.id", args[2]);
        p.put("auto.offset.reset", "earliest");
        p.put("key.deserializer", StringDeserializer.class.getName());
        p.put("value.deserializer", StringDeserializer.class.getName());
        p.put("metadata.max.age.ms", "1000");
        Path stop = Paths.get(args[4]);
        long errors = 0;
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(p);
             PrintWriter out = new PrintWriter(new FileWriter(args[3], true))) {
            c.subscribe(List.of(args[1]));
            while (!Files.exists(stop)) {
                try {
                    for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                        out.println(r.value());
                    }
                    out.flush();
                    c.commitAsync();
                } catch (Exception e) {
                    // a coordinator or leader moving: the client recovers by itself
                    errors++;
                    System.err.println("poll: " + e);
                }
            }
        }
        System.err.println("consumer stopped; errors " + errors);
    }
}
