//go:build unix

package e2e_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"

	"thunder/internal/harness"
)

// TestPackagedConfigsSideBySide starts both daemons from the example
// configs in packaging/, as a host running both would, with only the dirs,
// the token and the addresses that name other hosts overridden by flags
// (flags win over the file): their admin endpoints, as the files give
// them, must not clash, and both must become healthy, the collector
// connected to the processor.
func TestPackagedConfigsSideBySide(t *testing.T) {
	skipShort(t)
	root, err := harness.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	const procAdmin, collAdmin = "127.0.0.1:7358", "127.0.0.1:7359" // as in the files
	for _, addr := range []string{procAdmin, collAdmin} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Skipf("the example configs' admin port %s is taken on this machine (%v)", addr, err)
		}
		_ = ln.Close() // only probing that it is free
	}
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("side-by-side\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := harness.StartProcessor(t, t.TempDir(), "--config="+filepath.Join(root, "packaging", "processor.toml"), "--auth-token-file="+token)
	c := harness.StartCollector(t, "side", t.TempDir(), offsetsDB(t), p.Addr,
		"--config="+filepath.Join(root, "packaging", "collector.toml"), "--auth-token-file="+token)
	for _, d := range []struct {
		daemon *Daemon
		addr   string
	}{{p, procAdmin}, {c, collAdmin}} {
		if got := adminAddr(t, d.daemon); got != d.addr {
			t.Fatalf("%s: admin endpoint on %s, want %s from its config", d.daemon.Name, got, d.addr)
		}
		harness.WaitFor(t, startTimeout, func() error {
			code, body, err := httpGet(d.addr, "/healthz")
			if err == nil && code != 200 {
				err = fmt.Errorf("%s /healthz: %d %s", d.daemon.Name, code, body)
			}
			return err
		}, p, c)
	}
	c.Stop()
	p.Stop()
}
