package kafka

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/sasl"
)

// Template placeholders of Config.Topic.
const (
	HostPlaceholder = "{host}" // the collector name
	FilePlaceholder = "{file}" // the target name, '/' replaced by '.'
)

// maxTopicBytes is Kafka's limit on topic names.
const maxTopicBytes = 249

// Config configures an Output.
type Config struct {
	// Brokers are the seed brokers, host:port.
	Brokers []string
	// Topic is the template of the topic a stream's lines go to:
	// HostPlaceholder and FilePlaceholder are replaced by the collector
	// name and the target name ('/' becomes '.'), each with every byte
	// outside [A-Za-z0-9._-] replaced by '_'. A stream whose topic is not
	// a valid Kafka topic name is refused with ErrName.
	Topic string
	// StateTopic records each stream's committed offset (compacted, one
	// partition, created when missing). Default "thunder-state.<Processor>".
	// It must not be shared with another processor of the same name.
	StateTopic string
	// Processor names this processor: part of every state key.
	Processor string
	// Transactions makes every commit a Kafka transaction: exactly once
	// for read_committed consumers. False: idempotent producer only, at
	// least once (see the package comment).
	Transactions bool
	// TransactionalID identifies the producer across restarts; a second
	// instance with the same ID fences the first. Default "thunder-<Processor>".
	TransactionalID string
	// CommitInterval is the longest time appended lines wait for their
	// commit; one transaction per interval at most.
	CommitInterval time.Duration
	// CommitTimeout bounds one commit, and one recovery attempt.
	CommitTimeout time.Duration
	// MaxBufferedBytes bounds the memory of the lines held (pending and
	// being committed), each counted as its bytes plus recordOverhead;
	// Append blocks past it. A commit starts early once half of it is
	// pending.
	MaxBufferedBytes int64
	// TLS, when not nil, is used to connect to the brokers.
	TLS *tls.Config
	// SASL, when not nil, authenticates to the brokers.
	SASL sasl.Mechanism
	// Logger (nil: slog.Default()).
	Logger *slog.Logger
	// Registerer receives the Prometheus metrics (nil: none).
	Registerer prometheus.Registerer
}

// DefaultConfig returns the defaults of `thunder logs-processor`.
func DefaultConfig() Config {
	return Config{
		Topic:            FilePlaceholder,
		Transactions:     true,
		CommitInterval:   100 * time.Millisecond,
		CommitTimeout:    30 * time.Second,
		MaxBufferedBytes: 64 << 20,
	}
}

// Validate reports every problem with c.
func (c Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("kafka: no brokers"))
	}
	if err := checkName("processor name", c.Processor); err != nil {
		errs = append(errs, err)
	}
	if c.Topic == "" {
		errs = append(errs, errors.New("kafka: topic template is empty"))
	} else if t := topicFor(c.Topic, "h", "f"); !validTopic(t) {
		errs = append(errs, fmt.Errorf("kafka: topic template %q does not make a valid topic name (e.g. %q)", c.Topic, t))
	}
	if c.StateTopic != "" && !validTopic(c.StateTopic) {
		errs = append(errs, fmt.Errorf("kafka: invalid state topic %q", c.StateTopic))
	}
	if c.CommitInterval <= 0 || c.CommitTimeout <= 0 {
		errs = append(errs, errors.New("kafka: commit interval and timeout must be positive"))
	}
	if c.MaxBufferedBytes <= 0 {
		errs = append(errs, errors.New("kafka: buffer bytes must be positive"))
	}
	return errors.Join(errs...)
}

// withDefaults fills in the fields derived from others.
func (c Config) withDefaults() Config {
	if c.StateTopic == "" {
		c.StateTopic = "thunder-state." + sanitize(c.Processor)
	}
	if c.TransactionalID == "" {
		c.TransactionalID = "thunder-" + c.Processor
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// checkName accepts 1-255 bytes without control characters: names end up
// in record keys separated by NUL.
func checkName(what, n string) error {
	if n == "" || len(n) > 255 {
		return fmt.Errorf("kafka: %s must be 1-255 bytes", what)
	}
	for _, c := range n {
		if c < 0x20 || c == 0x7f {
			return fmt.Errorf("kafka: %s %q has a control character", what, n)
		}
	}
	return nil
}

// topicFor renders the topic template for a stream.
func topicFor(template, host, file string) string {
	return strings.NewReplacer(
		HostPlaceholder, sanitize(host),
		FilePlaceholder, sanitize(strings.ReplaceAll(file, "/", ".")),
	).Replace(template)
}

// sanitize replaces every byte that cannot be in a topic name with '_'.
func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !topicByte(c) {
			b[i] = '_'
		}
	}
	return string(b)
}

func topicByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
}

// validTopic reports whether Kafka accepts t as a topic name.
func validTopic(t string) bool {
	if t == "" || len(t) > maxTopicBytes || t == "." || t == ".." {
		return false
	}
	for i := 0; i < len(t); i++ {
		if !topicByte(t[i]) {
			return false
		}
	}
	return true
}
