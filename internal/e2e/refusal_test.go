//go:build unix

package e2e_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"thunder/internal/harness"
)

// TestPermanentRefusal: a collector with the wrong token logs one ERROR
// naming the cause and the flag to change, /healthz says it, the processor
// logs the refusal once however often the collector retries, and once the
// tokens agree (here the processor restarted with the collector's) the
// collector connects by itself and delivers.
func TestPermanentRefusal(t *testing.T) {
	skipShort(t)
	base, target, src := t.TempDir(), t.TempDir(), t.TempDir()
	write := func(path, text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	procToken, colToken := filepath.Join(base, "processor.token"), filepath.Join(base, "collector.token")
	write(procToken, "processor-secret\n")
	write(colToken, "collector-secret\n")
	var body strings.Builder
	for i := range 10 {
		fmt.Fprintf(&body, "line %d\n", i)
	}
	write(filepath.Join(src, "a.log"), body.String())

	p := startProcessor(t, target, "--auth-token-file="+procToken, "--admin-address=127.0.0.1:0")
	c := startCollector(t, "web-1", src, offsetsDB(t), p.Addr, "--admin-address=127.0.0.1:0", "--auth-token-file="+colToken)
	cAdmin := adminAddr(t, c)
	waitMetric(t, 30*time.Second, adminAddr(t, p), "thunder_processor_refusals_total", ">= 3", func(v float64) bool { return v >= 3 }, p, c)

	cause := regexp.MustCompile(`level=ERROR .*processor ` + regexp.QuoteMeta(p.Addr) + ` refused collector web-1 \(auth\): wrong or missing token; the token does not match: make --auth-token-file`)
	clog := c.LogText()
	if !cause.MatchString(clog) {
		t.Errorf("collector log has no ERROR naming the refusal and --auth-token-file:\n%s", clog)
	}
	if n := strings.Count(clog, "level=ERROR"); n != 1 {
		t.Errorf("collector logged %d ERROR lines for 3 or more refusals, want 1:\n%s", n, clog)
	}
	code, health, err := httpGet(cAdmin, "/healthz")
	if err != nil || code != http.StatusServiceUnavailable || !strings.Contains(string(health), "refused collector web-1") || !strings.Contains(string(health), "--auth-token-file") {
		t.Errorf("collector /healthz = %d %q (%v), want 503 naming the refusal and what to change", code, health, err)
	}
	if n := strings.Count(p.LogText(), `msg="collector refused"`); n != 1 {
		t.Errorf("processor logged %d refusals of the same collector, want 1 (rate-limited):\n%s", n, p.LogText())
	}

	// The operator gives the processor the collector's token.
	write(procToken, "collector-secret\n")
	p.Stop()
	p.Restart()
	harness.WaitFor(t, 90*time.Second, func() error {
		b, err := os.ReadFile(filepath.Join(target, "a.log"))
		if err != nil || string(b) != body.String() {
			return fmt.Errorf("target a.log = %q (%v), want the 10 lines", b, err)
		}
		return nil
	}, p, c)
	harness.WaitFor(t, 10*time.Second, func() error {
		if code, b, err := httpGet(cAdmin, "/healthz"); err != nil || code != http.StatusOK {
			return fmt.Errorf("collector /healthz = %d %q (%v) after the fix, want 200", code, b, err)
		}
		return nil
	}, p, c)
}
