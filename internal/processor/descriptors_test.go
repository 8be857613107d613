//go:build linux

package processor_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"thunder/internal/admin"
	"thunder/internal/harness"
	"thunder/internal/harness/peer"
	"thunder/internal/processor"
	"thunder/internal/wire"
	"thunder/internal/wire/wirepb"
)

// fdLimit is the RLIMIT_NOFILE of the processor in TestDescriptorLimit,
// and fdCollectors how many collectors connect to it: more than it has
// descriptors for.
const (
	fdLimit      = 400
	fdCollectors = 500
)

// TestDescriptorLimit: a processor short of descriptors (issue 16: 9,000
// collectors × 3 files against ulimit -n 20,000) must degrade, not fail:
// accepts past what the limit leaves room for wait in the kernel's
// backlog, target files still open (no collector is refused with
// storage), the admin endpoint answers, and every collector gets in as
// others leave. The processor runs in a child process (this test binary,
// TestDescriptorLimitChild) whose limit is lowered: the limit of this one
// is shared by the other tests.
func TestDescriptorLimit(t *testing.T) {
	addr, adminAddr, budget := startLimitedChild(t, fdLimit, 16)
	if budget <= 0 || budget >= fdCollectors {
		t.Fatalf("connection budget %d under a limit of %d descriptors: the test needs fewer than %d", budget, fdLimit, fdCollectors)
	}
	release := make(chan struct{})
	in := make(chan int, fdCollectors)
	errs := make(chan error, fdCollectors)
	var wg sync.WaitGroup
	for i := range fdCollectors {
		wg.Go(func() {
			if err := limitedCollector(addr, i, in, release); err != nil {
				errs <- fmt.Errorf("collector %d: %w", i, err)
			}
		})
	}
	// The first budget get in; the others wait, and the admin endpoint
	// answers meanwhile.
	got := 0
	deadline := time.After(3 * waitTimeout)
	for got < budget {
		select {
		case <-in:
			got++
		case err := <-errs:
			t.Fatal(err)
		case <-deadline:
			t.Fatalf("%d of %d collectors in within %v", got, budget, 3*waitTimeout)
		}
	}
	checkHealthz(t, adminAddr)
	close(release) // they leave one by one; the waiting get in
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got += len(in); got != fdCollectors {
		t.Errorf("%d of %d collectors got in", got, fdCollectors)
	}
	checkHealthz(t, adminAddr)
}

// limitedCollector connects as collector i, opens a stream of its own file,
// has a line acknowledged, reports on in, and leaves once release is closed.
func limitedCollector(addr string, i int, in chan<- int, release <-chan struct{}) error {
	pc, err := peer.Dial(addr, "", 3*waitTimeout)
	if err != nil {
		return err
	}
	defer pc.Close()
	name := fmt.Sprintf("fd-%d", i)
	if _, err := pc.Handshake(&wirepb.Hello{MinVersion: 1, MaxVersion: 1, Collector: name, Software: "test", Features: []string{wire.FeatureCRC32C}}); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	if _, err := pc.Open(1, peer.StreamID(), name+".log", 0); err != nil {
		return fmt.Errorf("open: %w", err)
	}
	end, err := pc.Data(1, 0, "a line\n")
	if err != nil {
		return err
	}
	if err := pc.WaitAck(1, end); err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	in <- i
	<-release
	return nil
}

func checkHealthz(t *testing.T, addr string) {
	t.Helper()
	c := http.Client{Timeout: waitTimeout}
	resp, err := c.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("admin /healthz: %v", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("admin /healthz: %s", resp.Status)
	}
}

// startLimitedChild runs TestDescriptorLimitChild with a descriptor limit
// of limit and --max-open-files maxOpenFiles, and returns the addresses it
// serves on and its connection budget.
func startLimitedChild(t *testing.T, limit, maxOpenFiles int) (addr, adminAddr string, budget int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestDescriptorLimitChild$", "-test.v")
	cmd.Env = append(os.Environ(), fmt.Sprintf("THUNDER_FD_CHILD=%d,%d", limit, maxOpenFiles))
	cmd.SysProcAttr = harness.DiesWithParent()
	cmd.Stderr = t.Output()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close() // the child stops
		stopped := time.AfterFunc(3*waitTimeout, func() { _ = cmd.Process.Kill() })
		defer stopped.Stop()
		if err := cmd.Wait(); err != nil {
			t.Errorf("child: %v", err)
		}
	})
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		if f := strings.Fields(lines.Text()); len(f) == 4 && f[0] == "SERVING" {
			budget, _ = strconv.Atoi(f[3])
			go func() { _, _ = io.Copy(t.Output(), stdout) }()
			return f[1], f[2], budget
		}
		fmt.Fprintln(t.Output(), lines.Text())
	}
	t.Fatalf("child ended before serving: %v", lines.Err())
	return
}

// TestDescriptorLimitChild is TestDescriptorLimit's processor: it lowers
// its own descriptor limit, serves, prints "SERVING addr admin-addr
// budget" and stops when its stdin closes.
func TestDescriptorLimitChild(t *testing.T) {
	var limit, maxOpenFiles int
	if _, err := fmt.Sscanf(os.Getenv("THUNDER_FD_CHILD"), "%d,%d", &limit, &maxOpenFiles); err != nil {
		t.Skip("run by TestDescriptorLimit in a child process")
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	lim.Cur = uint64(limit)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	srv := mustServe(t, "", func(c *processor.Config) {
		c.MaxOpenFiles = maxOpenFiles
		c.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	ad, err := admin.New(admin.Config{Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- ad.Serve(ctx, ln) }()
	fmt.Printf("SERVING %s %s %d\n", srv.addr, ln.Addr(), processor.ConnBudget(srv.p))
	_, _ = io.Copy(io.Discard, os.Stdin)
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
}
