// Command testsum runs `go test -json` with its arguments and prints what
// a person watching `make test` needs: a line per package as it ends, a
// line per test that took a while or failed (so a long package such as
// internal/e2e shows progress), the tests still running when nothing else
// was printed for a while, the whole output of every failed test, and at
// the end the skipped tests with their reasons and a count. Its exit
// status is go test's.
//
//	go run ./internal/testsum -race -timeout 20m ./...
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"
)

// Heartbeat is how long testsum stays silent before it names the tests
// still running.
const Heartbeat = 30 * time.Second

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs go test -json args, summarises its events on stdout and returns
// the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	cmd := exec.Command("go", append([]string{"test", "-json"}, args...)...)
	cmd.Stderr = stderr // go's own messages, build errors among them
	r, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintln(stderr, "testsum:", err)
		return 2
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(stderr, "testsum:", err)
		return 2
	}
	s := newSummary(stdout, time.Now())
	lines := make(chan []byte)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			lines <- append([]byte(nil), sc.Bytes()...)
		}
	}()
	s.follow(lines, time.NewTicker(Heartbeat/3).C)
	werr := cmd.Wait()
	s.finish(time.Now())
	var ee *exec.ExitError
	switch {
	case errors.As(werr, &ee):
		return ee.ExitCode()
	case werr != nil:
		fmt.Fprintln(stderr, "testsum:", werr)
		return 2
	case s.failed():
		return 1 // go test said ok but a test failed: trust the failure
	}
	return 0
}

// follow handles the lines of go test -json until they end, naming the
// tests still running at every tick after Heartbeat of silence.
func (s *summary) follow(lines <-chan []byte, tick <-chan time.Time) {
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				return
			}
			s.line(line)
		case now := <-tick:
			s.heartbeat(now)
		}
	}
}
