// The Java client (kafka-clients 4.3.0) over secured listeners: its Admin, authenticated as the
// administrator (a super user) over SASL_SSL, creates a SCRAM-SHA-512 user and describes it, and
// gives it READ, WRITE and CREATE on topics and READ on groups prefixed "java-" with ACLs; that user produces
// and consumes over SASL_SSL (and is refused any other topic with TopicAuthorizationException
// and the ACL API with ClusterAuthorizationException); a client certificate produces and
// consumes over SSL (mTLS); a wrong password is refused with SaslAuthenticationException; the
// Admin sets a 1 MiB/s producer_byte_rate on that user and describes it back. Prints
// one PASS/FAIL line per case and exits non-zero on any FAIL.
// Usage: java -cp 'jars/*' SecurityClient.java SASL_SSL_BOOT SSL_BOOT CA CERT KEY ADMIN_USER ADMIN_PASSWORD
import java.nio.file.*;
import java.time.Duration;
import java.util.*;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.acl.*;
import org.apache.kafka.common.quota.*;
import org.apache.kafka.common.errors.ClusterAuthorizationException;
import org.apache.kafka.common.errors.SaslAuthenticationException;
import org.apache.kafka.common.errors.TopicAuthorizationException;
import org.apache.kafka.common.resource.*;
import org.apache.kafka.common.serialization.*;

public class SecurityClient {
    static String saslBoot, sslBoot, ca, cert, key;
    static final List<String> results = new ArrayList<>();

    interface Case { void run() throws Exception; }

    static void check(String name, Case c) {
        try {
            c.run();
            results.add("PASS " + name);
        } catch (Throwable t) {
            t.printStackTrace();
            results.add("FAIL " + name + ": " + t);
        }
    }

    static Properties sasl(String user, String password) {
        Properties p = new Properties();
        p.put("bootstrap.servers", saslBoot);
        p.put("security.protocol", "SASL_SSL");
        p.put("sasl.mechanism", "SCRAM-SHA-512");
        p.put("sasl.jaas.config", "org.apache.kafka.common.security.scram.ScramLoginModule required username=\""
            + user + "\" password=\"" + password + "\";");
        p.put("ssl.truststore.type", "PEM");
        p.put("ssl.truststore.location", ca);
        return p;
    }

    static Properties mtls() throws Exception {
        Properties p = new Properties();
        p.put("bootstrap.servers", sslBoot);
        p.put("security.protocol", "SSL");
        p.put("ssl.truststore.type", "PEM");
        p.put("ssl.truststore.location", ca);
        p.put("ssl.keystore.type", "PEM");
        p.put("ssl.keystore.certificate.chain", Files.readString(Path.of(cert)));
        p.put("ssl.keystore.key", Files.readString(Path.of(key)));
        return p;
    }

    static void roundtrip(Properties base, String topic) throws Exception {
        Properties pp = new Properties();
        pp.putAll(base);
        pp.put("acks", "all");
        int n = 200;
        try (Producer<String, String> p = new KafkaProducer<>(pp, new StringSerializer(), new StringSerializer())) {
            for (int i = 0; i < n; i++) p.send(new ProducerRecord<>(topic, "v" + i));
            p.flush();
        }
        Properties cp = new Properties();
        cp.putAll(base);
        cp.put("group.id", topic);
        cp.put("auto.offset.reset", "earliest");
        Set<String> got = new HashSet<>();
        try (Consumer<String, String> c = new KafkaConsumer<>(cp, new StringDeserializer(), new StringDeserializer())) {
            c.subscribe(List.of(topic));
            long deadline = System.currentTimeMillis() + 30_000;
            while (got.size() < n && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(500))) got.add(r.value());
            }
        }
        if (got.size() != n) throw new AssertionError("consumed " + got.size() + " of " + n);
    }

    public static void main(String[] args) throws Exception {
        saslBoot = args[0]; sslBoot = args[1]; ca = args[2]; cert = args[3]; key = args[4];
        String adminUser = args[5], adminPassword = args[6];
        String suffix = Long.toHexString(System.nanoTime());
        check("Java Admin creates and describes a SCRAM-SHA-512 user over SASL_SSL", () -> {
            try (Admin admin = Admin.create(sasl(adminUser, adminPassword))) {
                ScramCredentialInfo info = new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192);
                admin.alterUserScramCredentials(List.of(new UserScramCredentialUpsertion("java-app", info, "java-secret")))
                    .all().get();
                UserScramCredentialsDescription d = admin.describeUserScramCredentials(List.of("java-app"))
                    .description("java-app").get();
                if (d.credentialInfos().size() != 1 || d.credentialInfos().get(0).iterations() != 8192
                    || d.credentialInfos().get(0).mechanism() != ScramMechanism.SCRAM_SHA_512)
                    throw new AssertionError("described " + d);
            }
        });
        check("Java Admin creates and describes ACLs (prefixed topic and group grants)", () -> {
            try (Admin admin = Admin.create(sasl(adminUser, adminPassword))) {
                List<AclBinding> grants = new ArrayList<>();
                // CREATE too: a producer's first Metadata creates its topic
                for (AclOperation op : List.of(AclOperation.READ, AclOperation.WRITE, AclOperation.CREATE)) {
                    grants.add(new AclBinding(new ResourcePattern(ResourceType.TOPIC, "java-", PatternType.PREFIXED),
                        new AccessControlEntry("User:java-app", "*", op, AclPermissionType.ALLOW)));
                }
                grants.add(new AclBinding(new ResourcePattern(ResourceType.GROUP, "java-", PatternType.PREFIXED),
                    new AccessControlEntry("User:java-app", "*", AclOperation.READ, AclPermissionType.ALLOW)));
                admin.createAcls(grants).all().get();
                Collection<AclBinding> found = admin.describeAcls(new AclBindingFilter(
                    new ResourcePatternFilter(ResourceType.ANY, "java-orders", PatternType.MATCH),
                    AccessControlEntryFilter.ANY)).values().get();
                if (found.size() != 4) throw new AssertionError("MATCH java-orders found " + found);
            }
        });
        check("Java SASL_SSL SCRAM-SHA-512 produce+consume", () -> roundtrip(sasl("java-app", "java-secret"), "java-sasl-" + suffix));
        check("Java SSL client certificate produce+consume", () -> roundtrip(mtls(), "java-mtls-" + suffix));
        check("Java: a topic without a grant is refused (TopicAuthorizationException)", () -> {
            Properties p = sasl("java-app", "java-secret");
            p.put("max.block.ms", "10000");
            try (Producer<String, String> prod = new KafkaProducer<>(p, new StringSerializer(), new StringSerializer())) {
                prod.send(new ProducerRecord<>("other-" + suffix, "x")).get();
                throw new AssertionError("wrote a topic without a grant");
            } catch (ExecutionException e) {
                if (!(e.getCause() instanceof TopicAuthorizationException)) throw e;
            }
            try (Producer<String, String> prod = new KafkaProducer<>(p, new StringSerializer(), new StringSerializer())) {
                for (int i = 0; i < 10; i++) prod.send(new ProducerRecord<>("java-fixed", "kept" + i)).get();
            }
            try (Admin admin = Admin.create(sasl("java-app", "java-secret"))) {
                admin.describeAcls(AclBindingFilter.ANY).values().get();
                throw new AssertionError("a user without ALTER/DESCRIBE on the cluster listed ACLs");
            } catch (ExecutionException e) {
                if (!(e.getCause() instanceof ClusterAuthorizationException)) throw e;
            }
        });
        check("Java wrong password is refused", () -> {
            Properties p = sasl("java-app", "wrong");
            p.put("max.block.ms", "10000");
            try (Producer<String, String> prod = new KafkaProducer<>(p, new StringSerializer(), new StringSerializer())) {
                prod.send(new ProducerRecord<>("java-denied", "x")).get();
                throw new AssertionError("delivered with a wrong password");
            } catch (ExecutionException e) {
                if (!(e.getCause() instanceof SaslAuthenticationException)) throw e;
            } catch (SaslAuthenticationException e) {
                // refused before the send
            }
        });
        check("Java Admin sets and describes a client quota (producer_byte_rate of java-app)", () -> {
            ClientQuotaEntity entity = new ClientQuotaEntity(Map.of(ClientQuotaEntity.USER, "java-app"));
            try (Admin admin = Admin.create(sasl(adminUser, adminPassword))) {
                admin.alterClientQuotas(List.of(new ClientQuotaAlteration(entity,
                    List.of(new ClientQuotaAlteration.Op("producer_byte_rate", 1048576.0))))).all().get();
                Map<ClientQuotaEntity, Map<String, Double>> found = admin.describeClientQuotas(
                    ClientQuotaFilter.containsOnly(List.of(ClientQuotaFilterComponent.ofEntity(ClientQuotaEntity.USER, "java-app"))))
                    .entities().get();
                if (!Map.of(entity, Map.of("producer_byte_rate", 1048576.0)).equals(found))
                    throw new AssertionError("described " + found);
            }
            try (Admin admin = Admin.create(sasl("java-app", "java-secret"))) {
                admin.alterClientQuotas(List.of(new ClientQuotaAlteration(entity,
                    List.of(new ClientQuotaAlteration.Op("producer_byte_rate", null))))).all().get();
                throw new AssertionError("a user without ALTER_CONFIGS on the cluster removed its quota");
            } catch (ExecutionException e) {
                if (!(e.getCause() instanceof ClusterAuthorizationException)) throw e;
            }
        });
        results.forEach(System.out::println);
        System.exit(results.stream().allMatch(r -> r.startsWith("PASS")) ? 0 : 1);
    }
}
