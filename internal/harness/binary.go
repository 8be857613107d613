package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	buildOnce sync.Once
	buildDir  string // holds the binary Binary built; removed by Main's Run
	buildPath string
	buildErr  error
)

// Binary builds cmd/thunder once per test binary, with -race when the tests
// are racing (Race), and returns its path. A failed build fails every test
// that asks for it.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "thunder-harness-")
		if buildErr == nil {
			buildPath, buildErr = Build(context.Background(), buildDir, Race)
		}
	})
	if buildErr != nil {
		t.Fatalf("build thunder: %v", buildErr)
	}
	return buildPath
}

// Main wraps m so that running it also removes the binary Binary built:
// pass it to goleak.VerifyTestMain, or call Run and os.Exit with its code.
func Main(m *testing.M) interface{ Run() int } { return mainRunner{m} }

type mainRunner struct{ m *testing.M }

func (r mainRunner) Run() int {
	code := r.m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir) // best effort: a temp dir
	}
	return code
}

// Build builds cmd/thunder of the current module into dir, with -race if
// race, and returns the binary's path.
func Build(ctx context.Context, dir string, race bool) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "thunder")
	args := []string{"build", "-o", bin}
	if race {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/thunder")
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return bin, nil
}

// ModuleRoot returns the directory of the main module's go.mod.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside a Go module: run from the thunder repository")
	}
	return filepath.Dir(mod), nil
}
