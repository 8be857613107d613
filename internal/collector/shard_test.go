package collector_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"thunder/internal/collector"
	"thunder/internal/harness"
	"thunder/internal/processor"
	"thunder/internal/shard"
)

// stoppable is an in-process processor that the test can stop and start
// again on the same address and target directory.
type stoppable struct {
	t    *testing.T
	addr string
	dir  string
	stop func()
}

func (s *stoppable) start() {
	s.t.Helper()
	addr := s.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	harness.WaitFor(s.t, waitTimeout, func() error { // the port may linger briefly after a stop
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	s.addr = ln.Addr().String()
	cfg := processor.DefaultConfig()
	cfg.Name, cfg.TargetDir = "p-"+s.addr, s.dir
	cfg.Logger = testLogger(s.t).With("side", "processor", "addr", s.addr)
	p, err := processor.New(cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(s.t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln) }()
	stopped := false
	s.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			s.t.Errorf("processor Serve = %v", err)
		}
		if err := p.Close(); err != nil {
			s.t.Errorf("processor Close = %v", err)
		}
	}
	s.t.Cleanup(s.stop)
}

// TestShardingAndFailover: with three processors each file goes whole to
// the first in its rendezvous ranking; while that one is down its files
// continue on the second; once it is back, they return to it. A processor
// that stops cleanly acknowledges all it has, so nothing is duplicated.
func TestShardingAndFailover(t *testing.T) {
	procs := make([]*stoppable, 3)
	addrs := make([]string, 3)
	for i := range procs {
		procs[i] = &stoppable{t: t, dir: t.TempDir()}
		procs[i].start()
		addrs[i] = procs[i].addr
	}
	src := t.TempDir()
	const nfiles = 24
	names := make([]string, nfiles)
	content := make(map[string]string, nfiles)
	rank := make(map[string][]int, nfiles)
	for i := range names {
		names[i] = fmt.Sprintf("app%02d.log", i)
		rank[names[i]] = shard.Rank(names[i], addrs)
		content[names[i]] = lines(names[i], 0, 50, 60)
		appendFile(t, filepath.Join(src, names[i]), content[names[i]])
	}
	cfg := baseConfig(t, src, filepath.Join(t.TempDir(), "offsets.db"), addrs[0])
	cfg.Targets = addrs
	c := mustCollector(t, cfg)

	// held returns what processor i holds of name ("" if nothing).
	held := func(i int, name string) string {
		b, err := os.ReadFile(filepath.Join(procs[i].dir, name))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		return string(b)
	}
	// Phase 1: each file on its first choice only; every processor gets some.
	harness.WaitFor(t, waitTimeout, func() error {
		for _, n := range names {
			if err := targetIs(procs[rank[n][0]].dir, n, content[n]); err != nil {
				return err
			}
		}
		return nil
	})
	perProc := make([]int, 3)
	for _, n := range names {
		perProc[rank[n][0]]++
		for _, other := range rank[n][1:] {
			if got := held(other, n); got != "" {
				t.Fatalf("%s also on processor %d, not its first choice", n, other)
			}
		}
	}
	for i, k := range perProc {
		if k == 0 {
			t.Fatalf("processor %d got no file of %d: %v", i, nfiles, perProc)
		}
	}

	// Phase 2: once all is acknowledged, stop processor 1; its files
	// continue on their second choice.
	var total uint64
	for _, n := range names {
		total += uint64(len(content[n]))
	}
	waitStats(t, c, func(st collector.Stats) error {
		if st.AckedBytes != total {
			return fmt.Errorf("acked %d of %d bytes", st.AckedBytes, total)
		}
		return nil
	})
	procs[1].stop()
	phase2 := make(map[string]string, nfiles)
	for _, n := range names {
		phase2[n] = lines(n, 50, 100, 60)
		appendFile(t, filepath.Join(src, n), phase2[n])
	}
	harness.WaitFor(t, waitTimeout, func() error {
		for _, n := range names {
			if rank[n][0] == 1 {
				if err := targetIs(procs[rank[n][1]].dir, n, phase2[n]); err != nil {
					return fmt.Errorf("failed over: %w", err)
				}
			} else if err := targetIs(procs[rank[n][0]].dir, n, content[n]+phase2[n]); err != nil {
				return err
			}
		}
		return nil
	})
	waitStats(t, c, func(st collector.Stats) error {
		if st.Connected != true || len(st.Processors) != 3 || st.Processors[1].Connected {
			return fmt.Errorf("processors = %+v, want 1 down", st.Processors)
		}
		return nil
	})

	// Phase 3: start it again; its files come back to it.
	procs[1].start()
	waitStats(t, c, func(st collector.Stats) error {
		if !st.Processors[1].Connected {
			return fmt.Errorf("processors = %+v, want all up", st.Processors)
		}
		return nil
	})
	phase3 := make(map[string]string, nfiles)
	for _, n := range names {
		phase3[n] = lines(n, 100, 150, 60)
		appendFile(t, filepath.Join(src, n), phase3[n])
	}
	harness.WaitFor(t, waitTimeout, func() error {
		for _, n := range names {
			first := rank[n][0]
			want := content[n] + phase2[n] + phase3[n]
			if first == 1 {
				// The tail returned to processor 1; together with what the
				// second choice holds, every line is there once.
				got := held(1, n) + held(rank[n][1], n)
				if !strings.HasSuffix(held(1, n), phase3[n][len(phase3[n])-61:]) {
					return fmt.Errorf("%s: the last line did not return to processor 1", n)
				}
				if err := sameLines(got, want); err != nil {
					return fmt.Errorf("%s: %w", n, err)
				}
			} else if err := targetIs(procs[first].dir, n, want); err != nil {
				return err
			}
		}
		return nil
	})
}

// sameLines reports whether got holds exactly the lines of want, each once,
// in any order.
func sameLines(got, want string) error {
	count := make(map[string]int)
	for _, l := range strings.SplitAfter(want, "\n") {
		if l != "" {
			count[l]++
		}
	}
	for _, l := range strings.SplitAfter(got, "\n") {
		if l == "" {
			continue
		}
		if count[l] == 0 {
			return fmt.Errorf("line %q duplicated or unexpected", l)
		}
		count[l]--
	}
	for l, n := range count {
		if n > 0 {
			return fmt.Errorf("line %q missing", l)
		}
	}
	return nil
}
