package processor

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Status is a snapshot of a processor for /status and `thunder status`.
type Status struct {
	Name       string            `json:"name"`
	TargetDir  string            `json:"target_dir"`
	Kafka      string            `json:"kafka,omitempty"` // topic template and brokers, when writing to Kafka
	Collectors []CollectorStatus `json:"collectors"`
	Totals     CollectorCounters `json:"totals"`
	LastCommit time.Time         `json:"last_commit"`
	CommitErr  string            `json:"commit_error,omitempty"`
}

// CollectorCounters count what one connection (or all) delivered.
type CollectorCounters struct {
	Bytes uint64 `json:"bytes"`
	Lines uint64 `json:"lines"`
}

// CollectorStatus describes one connected collector.
type CollectorStatus struct {
	Name    string    `json:"name"`
	Peer    string    `json:"peer"`
	Since   time.Time `json:"since"`
	Streams int       `json:"streams"`
	CollectorCounters
}

// Status returns a snapshot. It is safe for concurrent use.
func (p *Processor) Status() Status {
	st := Status{Name: p.cfg.Name, TargetDir: p.cfg.TargetDir}
	if k := p.cfg.Kafka; k != nil {
		st.Kafka = fmt.Sprintf("%s on %s", k.Topic, strings.Join(k.Brokers, ","))
	}
	p.mu.Lock()
	for s := range p.sessions {
		cs := s.status()
		if cs.Name == "" {
			continue // still in its handshake
		}
		st.Collectors = append(st.Collectors, cs)
	}
	st.Totals = CollectorCounters{Bytes: p.total.bytes.Load(), Lines: p.total.lines.Load()}
	p.mu.Unlock()
	var errs []string
	for i, out := range p.outs {
		last, err := out.Health()
		if i == 0 || last.Before(st.LastCommit) {
			st.LastCommit = last // the output that is behind
		}
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	st.CommitErr = strings.Join(errs, "; ")
	sort.Slice(st.Collectors, func(i, j int) bool { return st.Collectors[i].Name < st.Collectors[j].Name })
	return st
}

// Healthy reports an error when the last commit of an output failed.
func (p *Processor) Healthy() error {
	var errs []error
	for _, out := range p.outs {
		_, err := out.Health()
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
