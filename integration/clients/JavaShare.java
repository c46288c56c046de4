// Share groups (KIP-932) with the Java client's KafkaShareConsumer against a running broker
// (started by integration/share_groups.sh with a short record lock and delivery limit 5).
//
//   phase1 BOOT STATE: a consumer in its own JVM acquires records and is killed with -9 holding
//     them; six consumers then share a 2-partition topic: every record is processed, all six get
//     work, the killed consumer's records come back after the lock timeout with a higher
//     delivery count, records rejected are never delivered again, records released every time
//     are archived after 5 deliveries; the Admin sees a share group of six. At the end one
//     consumer holds records without acknowledging them; STATE gets what was acknowledged and
//     what is held. The script then kills the broker with -9 and restarts it.
//   phase2 BOOT STATE: new records are produced and the group consumes again: every held record
//     and every new one is delivered, nothing acknowledged in phase 1 is.
//   victim BOOT GROUP TOPIC: acquires records, prints "HOLDING p:o ..." and waits to be killed.
// Prints "ok"/"FAIL" lines; exits 1 on any failure.
// Usage: java -cp 'jars/*' -Dshare.source=path/to/JavaShare.java JavaShare.java phase1|phase2 BOOTSTRAP STATEFILE
import java.io.*;
import java.nio.file.*;
import java.time.Duration;
import java.util.*;
import java.util.concurrent.*;
import java.util.concurrent.atomic.*;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class JavaShare {
    static final String TOPIC = "share-work", GROUP = "share-workers";
    static final int PARTITIONS = 2, DELIVERY_LIMIT = 5;
    static int failures = 0;

    static void check(String what, boolean ok, String detail) {
        System.out.println((ok ? "ok   " : "FAIL ") + what + (ok ? "" : ": " + detail));
        if (!ok) failures++;
    }

    static KafkaShareConsumer<String, String> consumer(String boot, String group, int maxPoll) {
        Properties p = new Properties();
        p.put("bootstrap.servers", boot);
        p.put("group.id", group);
        p.put("key.deserializer", StringDeserializer.class.getName());
        p.put("value.deserializer", StringDeserializer.class.getName());
        p.put("share.acknowledgement.mode", "explicit");
        p.put("max.poll.records", String.valueOf(maxPoll));
        KafkaShareConsumer<String, String> c = new KafkaShareConsumer<>(p);
        c.subscribe(List.of(TOPIC));
        return c;
    }

    static void produce(String boot, List<String> values) throws Exception {
        Properties p = new Properties();
        p.put("bootstrap.servers", boot);
        p.put("acks", "all");
        p.put("key.serializer", StringSerializer.class.getName());
        p.put("value.serializer", StringSerializer.class.getName());
        try (KafkaProducer<String, String> pr = new KafkaProducer<>(p)) {
            int i = 0;
            for (String v : values) pr.send(new ProducerRecord<>(TOPIC, i++ % PARTITIONS, null, v));
            pr.flush();
        }
    }

    static String id(ConsumerRecord<String, String> r) { return r.partition() + ":" + r.offset(); }

    /** One delivery as a consumer saw it. */
    record Delivery(String worker, String id, String value, int count) {}

    /** A worker: accepts records, rejects "reject-*", releases "poison-*" every time. */
    static final class Worker implements Runnable {
        final String name;
        final KafkaShareConsumer<String, String> c;
        final ConcurrentLinkedQueue<Delivery> log;
        final AtomicBoolean stop;
        volatile Throwable error;

        Worker(String name, String boot, ConcurrentLinkedQueue<Delivery> log, AtomicBoolean stop) {
            this.name = name;
            this.c = consumer(boot, GROUP, 20);
            this.log = log;
            this.stop = stop;
        }

        public void run() {
            try {
                while (!stop.get()) {
                    ConsumerRecords<String, String> rs = c.poll(Duration.ofMillis(200));
                    for (ConsumerRecord<String, String> r : rs) {
                        log.add(new Delivery(name, id(r), r.value(), r.deliveryCount().orElse((short) -1)));
                        AcknowledgeType t = r.value().startsWith("poison") ? AcknowledgeType.RELEASE
                            : r.value().startsWith("reject") ? AcknowledgeType.REJECT : AcknowledgeType.ACCEPT;
                        c.acknowledge(r, t);
                        Thread.sleep(2); // some work, so that the records spread over the workers
                    }
                    if (!rs.isEmpty()) c.commitSync();
                }
                c.close();
            } catch (Throwable t) {
                error = t;
            }
        }
    }

    static Admin admin(String boot) {
        return Admin.create(Map.of("bootstrap.servers", boot));
    }

    public static void main(String[] args) throws Exception {
        switch (args[0]) {
            case "victim" -> victim(args[1]);
            case "phase1" -> phase1(args[1], Path.of(args[2]));
            case "phase2" -> phase2(args[1], Path.of(args[2]));
            default -> throw new IllegalArgumentException(args[0]);
        }
        System.exit(failures == 0 ? 0 : 1);
    }

    static void victim(String boot) {
        KafkaShareConsumer<String, String> c = consumer(boot, GROUP, 50);
        long until = System.currentTimeMillis() + 30_000;
        while (System.currentTimeMillis() < until) {
            ConsumerRecords<String, String> rs = c.poll(Duration.ofMillis(500));
            if (rs.isEmpty()) continue;
            StringBuilder b = new StringBuilder("HOLDING");
            for (ConsumerRecord<String, String> r : rs) b.append(' ').append(id(r));
            System.out.println(b);
            System.out.flush();
            try { Thread.sleep(600_000); } catch (InterruptedException e) { return; }
        }
        System.out.println("NOTHING");
    }

    static void phase1(String boot, Path state) throws Exception {
        try (Admin a = admin(boot)) {
            a.createTopics(List.of(new NewTopic(TOPIC, PARTITIONS, (short) 1))).all().get();
            ConfigResource g = new ConfigResource(ConfigResource.Type.GROUP, GROUP);
            a.incrementalAlterConfigs(Map.of(g, List.of(new AlterConfigOp(
                new ConfigEntry("share.auto.offset.reset", "earliest"), AlterConfigOp.OpType.SET)))).all().get();
            String reset = a.describeConfigs(List.of(g)).all().get().get(g).get("share.auto.offset.reset").value();
            check("group config share.auto.offset.reset set through the Admin", reset.equals("earliest"), reset);
        }
        // records produced before anyone subscribed: earliest makes them visible
        List<String> first = new ArrayList<>();
        for (int i = 0; i < 200; i++) first.add("early-" + i);
        produce(boot, first);

        // a consumer in its own JVM takes records and is killed holding them
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Process victim = new ProcessBuilder(java, "-cp", System.getProperty("java.class.path"),
            System.getProperty("share.source"), "victim", boot)
            .redirectError(ProcessBuilder.Redirect.INHERIT).start();
        BufferedReader out = new BufferedReader(new InputStreamReader(victim.getInputStream()));
        String line = out.readLine();
        Set<String> held = new HashSet<>();
        if (line != null && line.startsWith("HOLDING")) held.addAll(Arrays.asList(line.substring(8).split(" ")));
        victim.destroyForcibly().waitFor(); // SIGKILL: no close, no release
        check("a consumer acquired records and was killed with -9 holding them", !held.isEmpty(), String.valueOf(line));
        long killedAt = System.currentTimeMillis();

        ConcurrentLinkedQueue<Delivery> log = new ConcurrentLinkedQueue<>();
        AtomicBoolean stop = new AtomicBoolean();
        List<Worker> workers = new ArrayList<>();
        List<Thread> threads = new ArrayList<>();
        for (int i = 0; i < 6; i++) {
            Worker w = new Worker("w" + i, boot, log, stop);
            workers.add(w);
            Thread t = new Thread(w);
            t.start();
            threads.add(t);
        }
        Thread.sleep(3000);
        List<String> more = new ArrayList<>();
        for (int i = 0; i < 1000; i++) {
            more.add(i % 97 == 5 ? "poison-" + i : i % 89 == 3 ? "reject-" + i : "work-" + i);
        }
        produce(boot, more);
        Set<String> values = new HashSet<>(first);
        values.addAll(more);
        long poison = more.stream().filter(v -> v.startsWith("poison")).count();
        long deadline = System.currentTimeMillis() + 120_000;
        while (System.currentTimeMillis() < deadline) {
            Set<String> seen = new HashSet<>();
            Map<String, Integer> poisonSeen = new HashMap<>();
            for (Delivery d : log) {
                seen.add(d.value);
                if (d.value.startsWith("poison")) poisonSeen.merge(d.value, 1, Integer::sum);
            }
            boolean poisonDone = poisonSeen.size() == poison
                && poisonSeen.values().stream().allMatch(n -> n >= DELIVERY_LIMIT);
            if (seen.containsAll(values) && poisonDone) break;
            Thread.sleep(200);
        }
        // a while longer: nothing archived or accepted may come back
        Thread.sleep(4000);
        try (Admin a = admin(boot)) {
            // the killed consumer stays a member until its session times out
            ShareGroupDescription d = a.describeShareGroups(List.of(GROUP)).all().get().get(GROUP);
            for (int i = 0; i < 60 && d.members().size() != 6; i++) {
                Thread.sleep(500);
                d = a.describeShareGroups(List.of(GROUP)).all().get().get(GROUP);
            }
            check("the Admin describes a share group of the six members left once the killed one's session ran out",
                d.members().size() == 6, d.toString());
            boolean listed = a.listGroups(ListGroupsOptions.forShareGroups()).all().get().stream()
                .anyMatch(l -> l.groupId().equals(GROUP) && l.type().orElse(null) == GroupType.SHARE);
            check("the Admin lists it as a share group", listed, "not listed");
        }
        stop.set(true);
        for (Thread t : threads) t.join(30_000);
        for (Worker w : workers) check("worker " + w.name + " ran without error", w.error == null, String.valueOf(w.error));

        List<Delivery> all = new ArrayList<>(log);
        Map<String, List<Delivery>> byValue = new HashMap<>();
        for (Delivery d : all) byValue.computeIfAbsent(d.value, k -> new ArrayList<>()).add(d);
        Set<String> missing = new TreeSet<>(values);
        missing.removeAll(byValue.keySet());
        check("every record processed (" + values.size() + ")", missing.isEmpty(), missing.size() + " missing, e.g. " + missing.stream().limit(5).toList());
        Map<String, Long> perWorker = new TreeMap<>();
        for (Delivery d : all) perWorker.merge(d.worker, 1L, Long::sum);
        check("work spread over all six consumers " + perWorker, perWorker.size() == 6, perWorker.toString());
        // an accepted or rejected record is delivered again only if its lock ran out first
        List<String> again = new ArrayList<>();
        for (var e : byValue.entrySet()) {
            if (e.getKey().startsWith("poison")) continue;
            List<Delivery> ds = e.getValue();
            for (int i = 1; i < ds.size(); i++) if (ds.get(i).count <= ds.get(i - 1).count) again.add(e.getKey() + " " + ds);
        }
        check("no record delivered twice at the same delivery count", again.isEmpty(), again.stream().limit(3).toList().toString());
        Set<String> idsOfHeld = new HashSet<>(held);
        List<Delivery> redelivered = all.stream().filter(d -> idsOfHeld.contains(d.id)).toList();
        check("the killed consumer's " + held.size() + " records went to others after the lock timeout, delivery count 2",
            redelivered.stream().map(d -> d.id).distinct().count() == held.size() && redelivered.stream().allMatch(d -> d.count == 2),
            redelivered.size() + " redelivered: " + redelivered.stream().limit(3).toList());
        List<String> badPoison = new ArrayList<>();
        for (var e : byValue.entrySet()) {
            if (!e.getKey().startsWith("poison")) continue;
            List<Integer> counts = e.getValue().stream().map(d -> d.count).sorted().toList();
            if (!counts.equals(List.of(1, 2, 3, 4, 5))) badPoison.add(e.getKey() + counts);
        }
        check("records released every time were delivered 5 times (counts 1..5) and then archived", badPoison.isEmpty(), badPoison.toString());
        List<String> rejectedAgain = byValue.entrySet().stream()
            .filter(e -> e.getKey().startsWith("reject") && e.getValue().size() != 1).map(Map.Entry::getKey).toList();
        check("rejected records were never delivered again", rejectedAgain.isEmpty(), rejectedAgain.toString());
        System.err.println("# share phase 1: " + all.size() + " deliveries of " + values.size() + " records, " + held.size()
            + " held by the killed consumer, redelivered " + (redelivered.isEmpty() ? "never" : "after " + (System.currentTimeMillis() - killedAt) / 1000 + " s at most"));

        // a consumer holds records without acknowledging them when the broker is killed
        KafkaShareConsumer<String, String> holder = consumer(boot, GROUP, 30);
        produce(boot, List.of("held-0", "held-1", "held-2", "held-3"));
        Set<String> holding = new TreeSet<>();
        long until = System.currentTimeMillis() + 20_000;
        while (holding.isEmpty() && System.currentTimeMillis() < until) {
            for (ConsumerRecord<String, String> r : holder.poll(Duration.ofMillis(500))) holding.add(r.value());
        }
        check("a consumer holds records when the broker is killed", !holding.isEmpty(), "nothing acquired");
        List<String> lines = new ArrayList<>();
        for (Delivery d : all) if (!d.value.startsWith("poison")) lines.add("acked " + d.value);
        for (String h : holding) lines.add("held " + h);
        Files.write(state, lines);
        System.out.println("READY");
        System.out.flush();
        Thread.sleep(600_000); // the script kills the broker, then this JVM
    }

    static void phase2(String boot, Path state) throws Exception {
        Set<String> acked = new HashSet<>(), held = new HashSet<>();
        for (String l : Files.readAllLines(state)) {
            if (l.startsWith("acked ")) acked.add(l.substring(6));
            if (l.startsWith("held ")) held.add(l.substring(5));
        }
        List<String> fresh = new ArrayList<>();
        for (int i = 0; i < 100; i++) fresh.add("after-restart-" + i);
        produce(boot, fresh);
        Set<String> want = new HashSet<>(fresh);
        want.addAll(held);
        List<String> got = new ArrayList<>();
        try (KafkaShareConsumer<String, String> c = consumer(boot, GROUP, 100)) {
            long deadline = System.currentTimeMillis() + 60_000;
            while (System.currentTimeMillis() < deadline && !new HashSet<>(got).containsAll(want)) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(500))) {
                    got.add(r.value());
                    c.acknowledge(r, AcknowledgeType.ACCEPT);
                }
                c.commitSync();
            }
            // anything else still to come would show up now
            long quiet = System.currentTimeMillis() + 3000;
            while (System.currentTimeMillis() < quiet) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(500))) {
                    got.add(r.value());
                    c.acknowledge(r, AcknowledgeType.ACCEPT);
                }
                c.commitSync();
            }
        }
        Set<String> missing = new TreeSet<>(want);
        missing.removeAll(got);
        check("after kill -9 and restart: the " + held.size() + " records held unacknowledged and the " + fresh.size() + " new ones are delivered",
            missing.isEmpty(), "missing " + missing);
        List<String> replayed = got.stream().filter(acked::contains).toList();
        check("after kill -9 and restart: nothing acknowledged before is delivered again", replayed.isEmpty(),
            replayed.size() + " replayed, e.g. " + replayed.stream().limit(5).toList());
        List<String> poison = got.stream().filter(v -> v.startsWith("poison")).toList();
        check("after kill -9 and restart: archived records stay archived", poison.isEmpty(), poison.toString());
    }
}
