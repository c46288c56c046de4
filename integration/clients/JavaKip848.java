// KIP-848 consumer groups (group.protocol=consumer) with the Java client against a running
// broker: three members share six partitions; a fourth joins and only moved partitions are
// revoked (from the rebalance listeners); the Admin describes the group over
// ConsumerGroupDescribe and lists it as a consumer-type group; one member leaves and the rest
// take its partitions; commits survive, and a new member resumes from them. Prints PASS/FAIL
// lines like JavaClient.java and the time from subscribe to the first assignment on stderr.
// A second case converts a live group online: two classic members (cooperative-sticky) share the
// partitions, a member of the new protocol joins and the group becomes a consumer group with all
// three sharing; when it leaves, the group is classic again and the two take everything back;
// commits survive both conversions.
// Usage: java -cp 'jars/*' JavaKip848.java BOOTSTRAP
import java.time.Duration;
import java.util.*;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.RebalanceInProgressException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class JavaKip848 {
    static String boot;
    static final int PARTITIONS = 6, RECORDS = 60;

    static final class Member implements ConsumerRebalanceListener {
        final String id;
        final KafkaConsumer<String, String> c;
        final Set<Integer> owned = new HashSet<>();
        final Set<Integer> revoked = new HashSet<>();
        final long subscribedAt = System.nanoTime();
        double firstAssignment = -1;
        boolean dirty;

        Member(String id, String group, String topic) {
            this(id, group, topic, "consumer");
        }

        Member(String id, String group, String topic, String protocol) {
            this.id = id;
            Properties p = new Properties();
            p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, boot);
            p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
            p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol);
            if (protocol.equals("classic")) {
                p.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, CooperativeStickyAssignor.class.getName());
                p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "500");
            }
            p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
            p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
            p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
            p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
            c = new KafkaConsumer<>(p);
            c.subscribe(List.of(topic), this);
        }

        public void onPartitionsAssigned(Collection<TopicPartition> parts) {
            if (!parts.isEmpty() && firstAssignment < 0) firstAssignment = (System.nanoTime() - subscribedAt) / 1e9;
            for (TopicPartition tp : parts) owned.add(tp.partition());
        }

        public void onPartitionsRevoked(Collection<TopicPartition> parts) {
            if (dirty && !parts.isEmpty()) {
                // what was read from them is committed before they move
                try {
                    c.commitSync();
                    dirty = false;
                } catch (KafkaException e) {
                    System.err.println("# commit on revocation: " + e);
                }
            }
            for (TopicPartition tp : parts) {
                owned.remove(tp.partition());
                revoked.add(tp.partition());
            }
        }

        void poll(Map<String, String> seen) {
            ConsumerRecords<String, String> rs = c.poll(Duration.ofMillis(50));
            for (ConsumerRecord<String, String> r : rs) seen.put(r.partition() + "/" + r.offset(), id);
            if (!rs.isEmpty()) dirty = true;
            if (!dirty) return;
            try {
                c.commitSync();
                dirty = false;
            } catch (RebalanceInProgressException e) {
                // a classic member told to rejoin commits after its next poll
            }
        }
    }

    static void settle(List<Member> ms, Map<String, String> seen) {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (System.nanoTime() < deadline) {
            for (Member m : ms) m.poll(seen);
            Set<Integer> union = new HashSet<>();
            int total = 0;
            boolean each = true;
            for (Member m : ms) {
                union.addAll(m.owned);
                total += m.owned.size();
                each &= !m.owned.isEmpty();
            }
            if (each && total == union.size() && union.size() == PARTITIONS) return;
        }
        StringBuilder sb = new StringBuilder();
        for (Member m : ms) sb.append(m.id).append('=').append(m.owned).append(' ');
        throw new AssertionError("the group did not settle: " + sb);
    }

    /** A new topic of PARTITIONS partitions holding RECORDS records, and the producer that wrote them. */
    static KafkaProducer<String, String> seeded(Admin admin, String topic) throws Exception {
        admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 1))).all().get(30, TimeUnit.SECONDS);
        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, boot);
        pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        KafkaProducer<String, String> p = new KafkaProducer<>(pp);
        for (int i = 0; i < RECORDS; i++) p.send(new ProducerRecord<>(topic, i % PARTITIONS, null, "v" + i));
        p.flush();
        return p;
    }

    /** Reads the rest, closes the members, and checks that a new member resumes from their commits. */
    static void drainThenResume(List<Member> ms, Map<String, String> seen, KafkaProducer<String, String> p,
                                String topic, String group, String protocol) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (seen.size() < RECORDS && System.nanoTime() < deadline) for (Member m : ms) m.poll(seen);
        if (seen.size() != RECORDS) throw new AssertionError("consumed " + seen.size() + " of " + RECORDS);
        for (Member m : ms) m.c.close();
        p.send(new ProducerRecord<>(topic, 0, null, "late")).get();
        Member late = new Member("late", group, topic, protocol);
        List<String> got = new ArrayList<>();
        deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (got.isEmpty() && System.nanoTime() < deadline) {
            for (ConsumerRecord<String, String> r : late.c.poll(Duration.ofMillis(200))) got.add(r.value());
        }
        late.c.close();
        if (!got.equals(List.of("late"))) throw new AssertionError("a new member read " + got);
    }

    static String groupCase() throws Exception {
        String topic = "kip848-" + UUID.randomUUID().toString().substring(0, 8);
        String group = "g848-" + UUID.randomUUID().toString().substring(0, 8);
        Properties ap = new Properties();
        ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, boot);
        try (Admin admin = Admin.create(ap)) {
            try (KafkaProducer<String, String> p = seeded(admin, topic)) {
                Map<String, String> seen = new HashMap<>();
                List<Member> ms = new ArrayList<>();
                for (int i = 0; i < 3; i++) ms.add(new Member("m" + i, group, topic));
                settle(ms, seen);
                double first = 0;
                for (Member m : ms) first = Math.max(first, m.firstAssignment);
                Map<String, Set<Integer>> before = new HashMap<>();
                for (Member m : ms) {
                    before.put(m.id, new HashSet<>(m.owned));
                    m.revoked.clear();
                }
                Member fourth = new Member("m3", group, topic);
                ms.add(fourth);
                settle(ms, seen);
                int moved = 0;
                for (Member m : ms.subList(0, 3)) {
                    Set<Integer> lost = new HashSet<>(before.get(m.id));
                    lost.removeAll(m.owned);
                    if (!lost.equals(m.revoked)) {
                        throw new AssertionError(m.id + " revoked " + m.revoked + " but only " + lost + " moved");
                    }
                    moved += lost.size();
                }
                if (moved == 0) throw new AssertionError("nothing moved to the fourth member");
                // the Admin sees a consumer-type group over ConsumerGroupDescribe
                ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(group)).all().get(30, TimeUnit.SECONDS).get(group);
                if (d.type() != GroupType.CONSUMER) throw new AssertionError("group type " + d.type());
                if (d.members().size() != 4) throw new AssertionError("described members " + d.members().size());
                int described = 0;
                for (MemberDescription md : d.members()) described += md.assignment().topicPartitions().size();
                if (described != PARTITIONS) throw new AssertionError("described partitions " + described);
                boolean listed = false;
                for (GroupListing l : admin.listGroups(ListGroupsOptions.forConsumerGroups()).all().get(30, TimeUnit.SECONDS)) {
                    listed |= l.groupId().equals(group) && l.type().orElse(null) == GroupType.CONSUMER;
                }
                if (!listed) throw new AssertionError("listGroups does not show the group as a consumer group");
                Member leaving = ms.remove(0);
                leaving.c.close();
                settle(ms, seen);
                drainThenResume(ms, seen, p, topic, group, "consumer");
                System.err.printf("# kip848 java: first assignment %.2f s after subscribe (fourth member %.2f s)%n",
                        first, fourth.firstAssignment);
            }
        }
        return "ok";
    }

    static GroupType typeOf(Admin admin, String group) throws Exception {
        for (GroupListing l : admin.listGroups().all().get(30, TimeUnit.SECONDS)) {
            if (l.groupId().equals(group)) return l.type().orElse(null);
        }
        return null;
    }

    static void awaitType(Admin admin, String group, GroupType want, List<Member> ms, Map<String, String> seen) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        GroupType t = null;
        while (System.nanoTime() < deadline) {
            t = typeOf(admin, group);
            if (t == want) return;
            for (Member m : ms) m.poll(seen);
        }
        throw new AssertionError("group type " + t + ", expected " + want);
    }

    static String migrationCase() throws Exception {
        String topic = "migrate-" + UUID.randomUUID().toString().substring(0, 8);
        String group = "gmig-" + UUID.randomUUID().toString().substring(0, 8);
        Properties ap = new Properties();
        ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, boot);
        try (Admin admin = Admin.create(ap)) {
            try (KafkaProducer<String, String> p = seeded(admin, topic)) {
                Map<String, String> seen = new HashMap<>();
                List<Member> ms = new ArrayList<>();
                for (int i = 0; i < 2; i++) ms.add(new Member("classic" + i, group, topic, "classic"));
                settle(ms, seen);
                if (typeOf(admin, group) != GroupType.CLASSIC) throw new AssertionError("not a classic group at first");
                // a member of the new protocol joins the live classic group: it converts
                Member modern = new Member("modern", group, topic, "consumer");
                ms.add(modern);
                settle(ms, seen);
                awaitType(admin, group, GroupType.CONSUMER, ms, seen);
                ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(group)).all().get(30, TimeUnit.SECONDS).get(group);
                if (d.members().size() != 3) throw new AssertionError("described members " + d.members().size());
                // it leaves: the group is classic again and the two take everything back
                ms.remove(modern);
                modern.c.close();
                awaitType(admin, group, GroupType.CLASSIC, ms, seen);
                settle(ms, seen);
                drainThenResume(ms, seen, p, topic, group, "classic");
            }
        }
        return "ok";
    }

    interface Case {
        String run() throws Exception;
    }

    static int report(String cap, Case c) {
        try {
            c.run();
            System.out.printf("%-4s %-16s %s%n", "PASS", "java", cap);
            return 0;
        } catch (Throwable e) {
            e.printStackTrace();
            String msg = (e.getClass().getSimpleName() + ": " + e.getMessage()).replace('\n', ' ');
            System.out.printf("%-4s %-16s %s  -- %s%n", "FAIL", "java", cap, msg.substring(0, Math.min(300, msg.length())));
            return 1;
        }
    }

    public static void main(String[] args) {
        boot = args[0];
        int rc = report("consumer group, KIP-848 protocol (4 members, incremental, describe, leave, commits)", JavaKip848::groupCase);
        rc |= report("consumer group, online conversion classic -> consumer -> classic (live members, commits)", JavaKip848::migrationCase);
        System.exit(rc);
    }
}
