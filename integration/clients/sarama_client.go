// Sarama (Go) against a running broker. Debian's sarama is 1.22.1, whose default protocol
// version is 0.8.2 (Produce v0, magic-v0 messages: refused by Kafka 4 as well), so the one
// setting changed from the defaults is Version = V2_1_0_0, the newest it knows. Even then it
// commits group offsets with OffsetCommit v1 and describes configs with DescribeConfigs v0,
// versions Kafka 4 removed (KIP-896) and this broker does not serve either: those two steps are
// reported as N/A with the reason, and everything else in their cases is still checked.
// Prints one line per capability: PASS, FAIL (with the reason) or N/A; exits 1 on any FAIL.
// Usage: GO111MODULE=off GOPATH=/usr/share/gocode go run sarama_client.go BOOTSTRAP
package main

import (
	"context"
	"fmt"
	"math/rand"
	"os"
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

func create(topic string, partitions int32) error {
	a, err := sarama.NewClusterAdmin(boot, config())
	if err != nil {
		return err
	}
	defer a.Close()
	return a.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false)
}

// consume reads n messages from the start of every partition of topic.
func consume(topic string, n int) ([]*sarama.ConsumerMessage, error) {
	c, err := sarama.NewConsumer(boot, config())
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
	mu   sync.Mutex
	seen map[string]bool
}

func (h *handler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
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

// runMembers runs `members` group members until `want` distinct values were seen (or 60 s).
func runMembers(group, topic string, members, want int) (*handler, error) {
	h := &handler{seen: map[string]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var groups []sarama.ConsumerGroup
	for i := 0; i < members; i++ {
		g, err := sarama.NewConsumerGroup(boot, group, config())
		if err != nil {
			cancel()
			return nil, err
		}
		groups = append(groups, g)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if err := g.Consume(ctx, []string{topic}, h); err != nil {
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
	}
	deadline := time.Now().Add(60 * time.Second)
	for h.count() < want && time.Now().Before(deadline) {
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
	return h, nil
}

func group() (string, error) {
	topic, grp := name("sarama-group"), name("grp")
	if err := create(topic, 4); err != nil {
		return "", err
	}
	p, err := sarama.NewSyncProducer(boot, config())
	if err != nil {
		return "", err
	}
	defer p.Close()
	for i := 0; i < 200; i++ {
		if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(fmt.Sprint(i)), Value: sarama.StringEncoder(fmt.Sprintf("v%d", i))}); err != nil {
			return "", err
		}
	}
	// two members join, share the four partitions and read every record between them
	if _, err := runMembers(grp, topic, 2, 200); err != nil {
		return "", err
	}
	return "n/a: join, sync, heartbeats and sharing the partitions pass; commits use OffsetCommit v1, removed in Kafka 4 (KIP-896)", nil
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

func idempotent() (string, error) {
	topic := name("sarama-idem")
	if err := create(topic, 1); err != nil {
		return "", err
	}
	c := config()
	c.Producer.Idempotent = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Net.MaxOpenRequests = 1
	p, err := sarama.NewSyncProducer(boot, c)
	if err != nil {
		return "", err
	}
	var msgs []*sarama.ProducerMessage
	for i := 0; i < 500; i++ {
		msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(fmt.Sprint(i))})
	}
	if err := p.SendMessages(msgs); err != nil {
		p.Close()
		return "", err
	}
	p.Close()
	got, err := consume(topic, 500)
	if err != nil {
		return "", err
	}
	for i, m := range got {
		if string(m.Value) != fmt.Sprint(i) {
			return "", fmt.Errorf("record %d is %q", i, m.Value)
		}
	}
	return "ok", nil
}

func main() {
	boot = []string{os.Args[1]}
	rand.Seed(time.Now().UnixNano())
	for _, codec := range []sarama.CompressionCodec{sarama.CompressionNone, sarama.CompressionGZIP, sarama.CompressionSnappy, sarama.CompressionLZ4, sarama.CompressionZSTD} {
		record("produce/consume "+codec.String(), produceConsume(codec))
	}
	record("consumer group (2 members, commits, restart)", group)
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
