// Partition reassignment and leader election through the Java admin client, against a
// cluster: every partition of TOPIC is reassigned to node NODE, the reassignments are listed
// until none is left, every partition is then led by NODE, a preferred election reports
// ELECTION_NOT_NEEDED, and cancelling a finished reassignment is NO_REASSIGNMENT_IN_PROGRESS.
// Prints one line and exits 0 when all of that holds.
// Usage: java -cp 'jars/*' ClusterAdmin.java BOOTSTRAP TOPIC NODE
import java.util.*;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.common.ElectionType;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.ElectionNotNeededException;
import org.apache.kafka.common.errors.NoReassignmentInProgressException;

public class ClusterAdmin {
    public static void main(String[] args) throws Exception {
        String topic = args[1];
        int node = Integer.parseInt(args[2]);
        Properties p = new Properties();
        p.put("bootstrap.servers", args[0]);
        try (Admin admin = Admin.create(p)) {
            int parts = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic).partitions().size();
            Map<TopicPartition, Optional<NewPartitionReassignment>> to = new HashMap<>();
            for (int i = 0; i < parts; i++) {
                to.put(new TopicPartition(topic, i), Optional.of(new NewPartitionReassignment(List.of(node))));
            }
            admin.alterPartitionReassignments(to).all().get();
            long deadline = System.currentTimeMillis() + 60_000;
            boolean moved = false;
            while (System.currentTimeMillis() < deadline && !moved) {
                Thread.sleep(300);
                boolean listed = !admin.listPartitionReassignments().reassignments().get().isEmpty();
                moved = !listed && admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic)
                    .partitions().stream().allMatch(i -> i.leader() != null && i.leader().id() == node);
            }
            if (!moved) {
                System.out.println("FAIL: " + topic + " did not move to node " + node);
                System.exit(1);
            }
            Set<TopicPartition> all = to.keySet();
            Map<TopicPartition, Optional<Throwable>> elected =
                admin.electLeaders(ElectionType.PREFERRED, all).partitions().get();
            for (Map.Entry<TopicPartition, Optional<Throwable>> e : elected.entrySet()) {
                if (e.getValue().isEmpty() || !(e.getValue().get() instanceof ElectionNotNeededException)) {
                    System.out.println("FAIL: preferred election of " + e.getKey() + ": " + e.getValue());
                    System.exit(1);
                }
            }
            TopicPartition first = new TopicPartition(topic, 0);
            try {
                admin.alterPartitionReassignments(Map.of(first, Optional.empty())).all().get();
                System.out.println("FAIL: cancelling a finished reassignment succeeded");
                System.exit(1);
            } catch (ExecutionException e) {
                if (!(e.getCause() instanceof NoReassignmentInProgressException)) {
                    System.out.println("FAIL: cancelling: " + e.getCause());
                    System.exit(1);
                }
            }
            System.out.println("Java admin: " + parts + " partitions of " + topic + " reassigned to node " + node
                + ", listed until done, preferred election not needed, cancel refused: PASS");
        }
    }
}
