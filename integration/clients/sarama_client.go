// Sarama (Go) against a running broker. Debian's sarama is 1.22.1, whose default protocol
// version is 0.8.2 (Produce v0, magic-v0 messages: refused by Kafka 4 as well), so the one
// setting changed from the defaults is Version = V2_1_0_0, the newest it knows. Even then it
// describes configs with DescribeConfigs v0, a version Kafka 4 removed (KIP-896) and this broker
// does not serve either: that step is reported as N/A with the reason, and everything else in
// the case is still checked. It commits group offsets with OffsetCommit v1 (also removed) unless
// Consumer.Offsets.Retention is set, which makes it send v2: the group cases set it.
// Prints one line per capability: PASS, FAIL (with the reason) or N/A; exits 1 on any FAIL.
// Usage: GO111MODULE=off GOPATH=/usr/share/gocode go run sarama_client.go BOOTSTRAP
package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/Shopify/sarama"
)

var boot []string
var results [][3]string

func record(capability string, f func() (string, error)) {
	out, err := f()
	switch {
	case err != nil:
		msg := strings.ReplaceAll(err.Error(), "\n", " ")
		if len(msg) > 200 {
			msg = msg[:200]
		}
		results = append(results, [3]string{"FAIL", capability, msg})
	case strings.HasPrefix(out, "n/a"):
		results = append(results, [3]string{"N/A", capability, strings.TrimPrefix(strings.TrimPrefix(out, "n/a"), ": ")})
	default:
		results = append(results, [3]string{"PASS", capability, ""})
	}
}

func name(p string) string { return fmt.Sprintf("%s-%08x", p, rand.Uint32()) }

func config() *sarama.Config {
	c := sarama.NewConfig()
	c.Version = sarama.V2_1_0_0
	c.Producer.Return.Successes = true
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	return c
}

// groupConfig commits offsets with OffsetCommit v2 (sarama 1.22 sends v2 only with a retention).
func groupConfig() *sarama.Config {
	c := config()
	c.Consumer.Offsets.Retention = 7 * 24 * time.Hour
	return c
}

func mustEnv(name string) (string, error) {
	v := os.Getenv(name)
	if v == "" {
		return "", fmt.Errorf("%s is not set: run through integration/clients.sh", name)
	}
	return v, nil
}

// restartBroker SIGKILLs the broker and waits until it listens again (integration/clients.sh's hook).
func restartBroker() error {
	cmd, err := mustEnv("RESTART_BROKER")
	if err != nil {
		return err
	}
	c := exec.Command(cmd)
	c.Stderr = os.Stderr
	return c.Run()
}

// expectFaults fails unless the fault proxy threw away at least one produce response of clientID.
func expectFaults(clientID string) error {
	path, err := mustEnv("FAULT_LOG")
	if err != nil {
		return err
	}
	text, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(text), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[1] == clientID {
			return nil
		}
	}
	return fmt.Errorf("the fault proxy lost no produce response of %s", clientID)
}

func create(topic string, partitions int32) error {
	return createAt(boot, topic, partitions)
}

func createAt(at []string, topic string, partitions int32) error {
	a, err := sarama.NewClusterAdmin(at, config())
	if err != nil {
		return err
	}
	defer a.Close()
	return a.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false)
}

// consume reads n messages from the start of every partition of topic.
func consume(topic string, n int) ([]*sarama.ConsumerMessage, error) {
	return consumeAt(boot, topic, n)
}

func consumeAt(at []string, topic string, n int) ([]*sarama.ConsumerMessage, error) {
	c, err := sarama.NewConsumer(at, config())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	parts, err := c.Partitions(topic)
	if err != nil {
		return nil, err
	}
	ch := make(chan *sarama.ConsumerMessage, n)
	var pcs []sarama.PartitionConsumer
	for _, p := range parts {
		pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			return nil, err
		}
		pcs = append(pcs, pc)
		go func(pc sarama.PartitionConsumer) {
			for m := range pc.Messages() {
				ch <- m
			}
		}(pc)
	}
	defer func() {
		for _, pc := range pcs {
			pc.AsyncClose()
		}
	}()
	var out []*sarama.ConsumerMessage
	deadline := time.After(30 * time.Second)
	for len(out) < n {
		select {
		case m := <-ch:
			out = append(out, m)
		case <-deadline:
			return out, fmt.Errorf("consumed %d of %d", len(out), n)
		}
	}
	return out, nil
}

// Whether every message of a failed SendMessages got UNSUPPORTED_COMPRESSION_TYPE.
func allUnsupportedCompression(err error) bool {
	var errs sarama.ProducerErrors
	if !errors.As(err, &errs) || len(errs) == 0 {
		return false
	}
	for _, e := range errs {
		if !errors.Is(e.Err, sarama.ErrUnsupportedCompressionType) {
			return false
		}
	}
	return true
}

func produceConsume(codec sarama.CompressionCodec) func() (string, error) {
	return func() (string, error) {
		topic := name("sarama-" + codec.String())
		if err := create(topic, 1); err != nil {
			return "", err
		}
		c := config()
		c.Producer.Compression = codec
		p, err := sarama.NewSyncProducer(boot, c)
		if err != nil {
			return "", err
		}
		var msgs []*sarama.ProducerMessage
		for i := 0; i < 200; i++ {
			msgs = append(msgs, &sarama.ProducerMessage{
				Topic:   topic,
				Key:     sarama.StringEncoder(fmt.Sprintf("k%d", i)),
				Value:   sarama.StringEncoder(fmt.Sprintf("%s-%d", codec, i)),
				Headers: []sarama.RecordHeader{{Key: []byte("h"), Value: []byte(fmt.Sprint(i))}},
			})
		}
		if err := p.SendMessages(msgs); err != nil {
			p.Close()
			if codec == sarama.CompressionZSTD && allUnsupportedCompression(err) {
				return "n/a: sarama 1.22 sends zstd batches in Produce v3; zstd needs Produce v7 (KIP-110), so Kafka, and this broker, answer UNSUPPORTED_COMPRESSION_TYPE (checked: every message got it)", nil
			}
			return "", err
		}
		p.Close()
		got, err := consume(topic, 200)
		if err != nil {
			return "", err
		}
		for i, m := range got {
			want := fmt.Sprintf("%s-%d", codec, i)
			if string(m.Key) != fmt.Sprintf("k%d", i) || string(m.Value) != want ||
				len(m.Headers) != 1 || string(m.Headers[0].Value) != fmt.Sprint(i) {
				return "", fmt.Errorf("record %d: %q=%q %v", i, m.Key, m.Value, m.Headers)
			}
		}
		return "ok", nil
	}
}

type handler struct {
	mu     sync.Mutex
	seen   map[string]bool
	claims map[int][]int32 // each member's partitions in its current session
}

// member is one group member's view of the shared handler.
type member struct {
	*handler
	id int
}

func (m member) Setup(s sarama.ConsumerGroupSession) error {
	var parts []int32
	for _, ps := range s.Claims() {
		parts = append(parts, ps...)
	}
	m.mu.Lock()
	m.claims[m.id] = parts
	m.mu.Unlock()
	return nil
}

func (m member) Cleanup(sarama.ConsumerGroupSession) error {
	m.mu.Lock()
	delete(m.claims, m.id)
	m.mu.Unlock()
	return nil
}

// shared says whether every one of `members` holds partitions, none twice, `partitions` in all.
func (h *handler) shared(members, partitions int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	held := map[int32]bool{}
	total := 0
	for i := 0; i < members; i++ {
		if len(h.claims[i]) == 0 {
			return false
		}
		for _, p := range h.claims[i] {
			held[p] = true
		}
		total += len(h.claims[i])
	}
	return total == partitions && len(held) == partitions
}

func (h *handler) values() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for v := range h.seen {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

func (h *handler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		h.mu.Lock()
		h.seen[string(m.Value)] = true
		h.mu.Unlock()
		s.MarkMessage(m, "")
	}
	return nil
}

func (h *handler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.seen)
}

// runMembers runs `members` group members until `want` distinct values were seen and, with
// `partitions` > 0, the members share that many partitions between them (or 60 s). The members
// commit with OffsetCommit v2 (groupConfig).
func runMembers(group, topic string, members, want, partitions int) (*handler, error) {
	h := &handler{seen: map[string]bool{}, claims: map[int][]int32{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var groups []sarama.ConsumerGroup
	for i := 0; i < members; i++ {
		g, err := sarama.NewConsumerGroup(boot, group, groupConfig())
		if err != nil {
			cancel()
			return nil, err
		}
		groups = append(groups, g)
		wg.Add(1)
		m := member{h, i}
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if err := g.Consume(ctx, []string{topic}, m); err != nil {
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
	}
	deadline := time.Now().Add(60 * time.Second)
	sharedOK := false
	for time.Now().Before(deadline) {
		sharedOK = partitions == 0 || h.shared(members, partitions)
		if h.count() >= want && sharedOK {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	// let the auto-commit (every second) write the marked offsets
	time.Sleep(1500 * time.Millisecond)
	cancel()
	for _, g := range groups {
		g.Close()
	}
	wg.Wait()
	if h.count() < want {
		return h, fmt.Errorf("group saw %d of %d", h.count(), want)
	}
	if !sharedOK {
		return h, fmt.Errorf("the members did not share the %d partitions: %v", partitions, h.claims)
	}
	return h, nil
}

func group() (string, error) {
	topic, grp := name("sarama-group"), name("grp")
	if err := create(topic, 4); err != nil {
		return "", err
	}
	c := config()
	c.Producer.Partitioner = sarama.NewManualPartitioner
	p, err := sarama.NewSyncProducer(boot, c)
	if err != nil {
		return "", err
	}
	defer p.Close()
	for i := 0; i < 200; i++ {
		if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Partition: int32(i % 4), Key: sarama.StringEncoder(fmt.Sprint(i)), Value: sarama.StringEncoder(fmt.Sprintf("v%d", i))}); err != nil {
			return "", err
		}
	}
	// two members join, share the four partitions, read every record and commit
	if _, err := runMembers(grp, topic, 2, 200, 4); err != nil {
		return "", err
	}
	// one more record per partition: a member resuming from the commits reads exactly these
	var late []string
	for part := int32(0); part < 4; part++ {
		v := fmt.Sprintf("late-%d", part)
		late = append(late, v)
		if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Partition: part, Value: sarama.StringEncoder(v)}); err != nil {
			return "", err
		}
	}
	h, err := runMembers(grp, topic, 1, 4, 4)
	if err != nil {
		return "", err
	}
	if got := h.values(); strings.Join(got, ",") != strings.Join(late, ",") {
		return "", fmt.Errorf("a new member resumes from the commits: read %v", got)
	}
	return "ok", nil
}

func brokerRestart() (string, error) {
	topic, grp := name("sarama-restart"), name("grp")
	if err := create(topic, 1); err != nil {
		return "", err
	}
	c := config()
	c.Producer.RequiredAcks = sarama.WaitForAll
	p, err := sarama.NewSyncProducer(boot, c)
	if err != nil {
		return "", err
	}
	defer p.Close()
	send := func(tag string) ([]string, error) {
		var vs []string
		for i := 0; i < 10; i++ {
			v := fmt.Sprintf("%s-%d", tag, i)
			vs = append(vs, v)
			if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(v)}); err != nil {
				return nil, fmt.Errorf("%s: %w", tag, err)
			}
		}
		return vs, nil
	}
	before, err := send("before")
	if err != nil {
		return "", err
	}
	if _, err := runMembers(grp, topic, 1, 10, 0); err != nil {
		return "", err
	}
	if err := restartBroker(); err != nil {
		return "", err
	}
	// the same producer reconnects on its own; the group's commit survived the kill
	after, err := send("after")
	if err != nil {
		return "", err
	}
	h, err := runMembers(grp, topic, 1, 10, 0)
	if err != nil {
		return "", err
	}
	if got := h.values(); strings.Join(got, ",") != strings.Join(after, ",") {
		return "", fmt.Errorf("the group resumes at its commit: read %v", got)
	}
	all, err := consume(topic, 20)
	if err != nil {
		return "", err
	}
	want := append(before, after...)
	for i, m := range all {
		if string(m.Value) != want[i] {
			return "", fmt.Errorf("the whole log: record %d is %q", i, m.Value)
		}
	}
	return "ok", nil
}

func adminOps() (string, error) {
	a, err := sarama.NewClusterAdmin(boot, config())
	if err != nil {
		return "", err
	}
	defer a.Close()
	topic := name("sarama-admin")
	if err := a.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1}, false); err != nil {
		return "", err
	}
	md, err := a.DescribeTopics([]string{topic})
	if err != nil {
		return "", err
	}
	if len(md) != 1 || len(md[0].Partitions) != 3 {
		return "", fmt.Errorf("describe: %+v", md)
	}
	v := "12345"
	if err := a.AlterConfig(sarama.TopicResource, topic, map[string]*string{"retention.ms": &v}, false); err != nil {
		return "", fmt.Errorf("alter configs: %w", err)
	}
	if err := a.DeleteTopic(topic); err != nil {
		return "", err
	}
	// (ListTopics would describe every topic's configs with DescribeConfigs v0: metadata instead)
	client, err := sarama.NewClient(boot, config())
	if err != nil {
		return "", err
	}
	defer client.Close()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if err := client.RefreshMetadata(); err != nil {
			return "", err
		}
		topics, err := client.Topics()
		if err != nil {
			return "", err
		}
		listed := false
		for _, t := range topics {
			listed = listed || t == topic
		}
		if !listed {
			return "n/a: create, describe topics, alter configs and delete pass; DescribeConfigs v0 was removed in Kafka 4 (KIP-896)", nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return "", fmt.Errorf("topic still listed after delete")
}

// produceIdempotent writes 0..499 in ten flushed rounds of 50 with an idempotent producer
// through `at` and checks the partition holds exactly those records, in order.
func produceIdempotent(at []string, clientID, topic string) error {
	if err := createAt(at, topic, 1); err != nil {
		return err
	}
	c := config()
	c.ClientID = clientID
	c.Producer.Idempotent = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Net.MaxOpenRequests = 1
	p, err := sarama.NewSyncProducer(at, c)
	if err != nil {
		return err
	}
	// ten rounds: enough produce requests for the fault proxy to lose some answers
	for round := 0; round < 10; round++ {
		var msgs []*sarama.ProducerMessage
		for i := 0; i < 50; i++ {
			msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(fmt.Sprint(round*50 + i))})
		}
		if err := p.SendMessages(msgs); err != nil {
			p.Close()
			if errs, ok := err.(sarama.ProducerErrors); ok && len(errs) > 0 {
				return fmt.Errorf("round %d: %d records not delivered, first: %w", round, len(errs), errs[0].Err)
			}
			return err
		}
	}
	p.Close()
	got, err := consumeAt(at, topic, 500)
	if err != nil {
		return err
	}
	for i, m := range got {
		if string(m.Value) != fmt.Sprint(i) {
			return fmt.Errorf("record %d is %q", i, m.Value)
		}
	}
	client, err := sarama.NewClient(at, config())
	if err != nil {
		return err
	}
	defer client.Close()
	end, err := client.GetOffset(topic, 0, sarama.OffsetNewest)
	if err != nil {
		return err
	}
	if end != 500 {
		return fmt.Errorf("records in the log: %d (a retried batch stored twice adds more)", end)
	}
	return nil
}

// idempotent runs the producer twice: straight to the broker, then through the fault proxy,
// which loses produce responses. sarama 1.22 re-batches the records it retries (a retried
// batch starts at the lost batch's first sequence but runs on to records never sent), which a
// Kafka broker refuses with OUT_OF_ORDER_SEQUENCE as it is neither the next batch nor a
// duplicate of one it holds: that outcome is N/A, anything else under faults is a FAIL.
func idempotent() (string, error) {
	if err := produceIdempotent(boot, "idem-sarama-direct", name("sarama-idem")); err != nil {
		return "", err
	}
	at, err := mustEnv("FAULTY_BOOTSTRAP")
	if err != nil {
		return "", err
	}
	clientID := "idem-sarama"
	err = produceIdempotent([]string{at}, clientID, name("sarama-idem-faults"))
	if ferr := expectFaults(clientID); ferr != nil {
		return "", ferr
	}
	if errors.Is(err, sarama.ErrOutOfOrderSequenceNumber) {
		return "n/a: 500 records in order, none twice; under lost responses sarama 1.22 re-batches its retries, refused with OUT_OF_ORDER_SEQUENCE as a Kafka broker does", nil
	}
	if err != nil {
		return "", err
	}
	return "ok", nil
}

func main() {
	boot = []string{os.Args[1]}
	rand.Seed(time.Now().UnixNano())
	for _, codec := range []sarama.CompressionCodec{sarama.CompressionNone, sarama.CompressionGZIP, sarama.CompressionSnappy, sarama.CompressionLZ4, sarama.CompressionZSTD} {
		record("produce/consume "+codec.String(), produceConsume(codec))
	}
	record("consumer group (2 members share, commits, resume)", group)
	record("broker restart (kill -9)", brokerRestart)
	record("admin create/describe/alter/delete", adminOps)
	record("idempotent producer", idempotent)
	// sarama 1.22 has no transactional producer (it came in 1.37)
	record("transactions", func() (string, error) { return "n/a", nil })
	failed := false
	for _, r := range results {
		line := fmt.Sprintf("%-4s %-16s %s", r[0], "sarama", r[1])
		if r[2] != "" {
			line += "  -- " + r[2]
		}
		fmt.Println(line)
		failed = failed || r[0] == "FAIL"
	}
	if failed {
		os.Exit(1)
	}
}
