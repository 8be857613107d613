package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"thunder/internal/harness"
)

// TestUsageErrors runs each command line mistake and checks that it is a
// usage error (exit status 2) whose message names the flag or key and the
// value, and that several mistakes are all reported at once.
func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	collector := []string{"logs-collector", "--source-dir=" + dir, "--offsets-db=" + filepath.Join(dir, "o.db"), "--target-address=127.0.0.1"}
	processor := []string{"logs-processor", "--target-dir=" + dir}
	config := func(text string) string { return "--config=" + writeConfig(t, text) }
	tests := []struct {
		name string
		args []string
		want []string // all in the error
	}{
		{"port out of range", append(collector, "--target-address=127.0.0.1:99999"), []string{"--target-address=127.0.0.1:99999", `port "99999"`}},
		{"each address of a list", append(collector, "--target-address=a:1,b:0,c:x"), []string{"--target-address=b:0", "--target-address=c:x"}},
		{"listen port", append(processor, "--listen-address=0.0.0.0:70000"), []string{"--listen-address=0.0.0.0:70000", "65535"}},
		{"admin address", append(processor, "--admin-address=localhost"), []string{"--admin-address=localhost", "HOST:PORT"}},
		{"bad duration", append(processor, "--commit-interval=soon"), []string{"--commit-interval=soon", "250ms"}},
		{"bad integer", append(processor, "--max-conns=many"), []string{"--max-conns=many", "whole number"}},
		{"bad bool", append(processor, "--pprof=maybe"), []string{"--pprof=maybe", "true or false"}},
		{"bad size", append(collector, "--chunk-bytes=big"), []string{"--chunk-bytes=big", "64KiB"}},
		{"negative count", append(processor, "--max-conns=-1"), []string{"--max-conns=-1"}},
		{"negative duration", append(collector, "--linger=-1s"), []string{"--linger=-1s"}},
		{"window and chunk", append(collector, "--window-bytes=64KiB", "--chunk-bytes=1MiB"), []string{"--window-bytes=65536", "--chunk-bytes=1048576"}},
		{"unknown flag", append(processor, "--bogus=1"), []string{"unknown flag --bogus"}},
		{"flag without value", append(processor, "--name"), []string{"--name needs a value"}},
		{"argument", append(processor, "extra"), []string{`"extra"`}},
		{"version --json", []string{"version", "--json"}, []string{"version", "--json"}},
		{"status flag", []string{"status", "--verbose"}, []string{"status", "--verbose"}},
		{"status values", []string{"status", "--timeout=0s", "--streams=-1"}, []string{"--timeout=0s", "--streams=-1"}},
		{"top values", []string{"top", "--interval=1ms", "--count=-2"}, []string{"--interval=1ms", "--count=-2"}},
		{"verify timeout", []string{"verify", "--timeout=-1s"}, []string{"--timeout=-1s"}},
		{"missing flags", []string{"logs-collector"}, []string{"--source-dir", "--offsets-db", "--target-address"}},
		{"source dir missing", append(collector, "--source-dir="+filepath.Join(dir, "gone")), []string{"--source-dir=" + filepath.Join(dir, "gone"), "no such file"}},
		{"source dir a file", append(collector, "--source-dir="+file), []string{"--source-dir=" + file, "not a directory"}},
		{"string key as number", append(processor, config("name = 5\n")), []string{`"name" = 5`, "want a string"}},
		{"target-dir key as number", []string{"logs-processor", config("target-dir = 5\n")}, []string{`"target-dir" = 5`, "want a string"}},
		{"bool key as string", append(processor, config("pprof = \"true\"\n")), []string{`"pprof" = "true"`, "true or false"}},
		{"integer key as string", append(processor, config("max-conns = \"12\"\n")), []string{`"max-conns" = "12"`, "whole number"}},
		{"duration key", append(processor, config("idle-timeout = 5\n")), []string{`"idle-timeout" = 5`, "250ms"}},
		{"list key of numbers", append(collector, config("target-address = [1, 2]\n")), []string{`"target-address"`, "array of strings"}},
		{"unknown key", append(processor, config("bogus = 1\n")), []string{`unknown key "bogus"`}},
		{"all at once", append(processor, "--commit-interval=soon", "--max-conns=x", config("bogus = 1\nname = 5\n")),
			[]string{"--commit-interval=soon", "--max-conns=x", `"bogus"`, `"name" = 5`}},
		{"all settings at once", append(collector, "--target-address=a:99999", "--window-bytes=64KiB", "--max-open-files=1"),
			[]string{"--target-address=a:99999", "--window-bytes=65536", "--max-open-files=1"}},
		// A newcomer's cases: values that do not parse and settings that
		// are wrong came in two rounds, the second only once the first
		// was fixed.
		{"flags and settings at once", append(processor, "--commit-interval=5q", "--listen-address=127.0.0.1:99999"),
			[]string{"2 problems", "--commit-interval=5q", "--listen-address=127.0.0.1:99999"}},
		{"config file and settings at once", append(processor, "--listen-address=1.2.3.4:99999", config("commit-interval = \"5q\"\nname = 5\n")),
			[]string{"3 problems", "commit-interval", `"name" = 5`, "--listen-address=1.2.3.4:99999"}},
		{"missing flag with the rest", []string{"logs-collector", "--target-address=127.0.0.1:99999", "--linger=5q"},
			[]string{"--source-dir is required", "--offsets-db is required", "--linger=5q", "--target-address=127.0.0.1:99999"}},
		{"token file missing", append(processor, "--auth-token-file="+filepath.Join(dir, "no-token")), []string{"--auth-token-file=" + filepath.Join(dir, "no-token"), "no such file"}},
		{"token file empty", append(processor, "--auth-token-file="+file), []string{"--auth-token-file=" + file, "empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, check := range []bool{false, true} {
				args := tt.args
				if check && strings.HasPrefix(args[0], "logs-") {
					args = append([]string{args[0], "--check-config"}, args[1:]...)
				}
				_, _, err := runCmd(t, args...)
				if err == nil {
					t.Fatalf("%q: no error", args)
				}
				for _, w := range tt.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("%q: error\n%v\ndoes not contain %q", args, err, w)
					}
				}
				if !errors.As(err, new(usageError)) {
					t.Errorf("%q: error %v is not a usage error (exit status 2)", args, err)
				}
			}
		})
	}
}

// TestCheckConfigNotValid: --check-config of settings with a problem says
// so above the settings it prints (a refused value shows its default) and
// never prints "config ok".
func TestCheckConfigNotValid(t *testing.T) {
	out, _, err := runCmd(t, "logs-processor", "--check-config", "--target-dir="+t.TempDir(), "--target-layout={hots}/{file}")
	if err == nil || !strings.Contains(err.Error(), "{hots}") {
		t.Fatalf("error %v, want the layout named", err)
	}
	if !strings.HasPrefix(out, "# NOT VALID: 1 problem(s)") || strings.Contains(out, "config ok") {
		t.Fatalf("stdout does not start by saying the settings are not valid, or says config ok:\n%s", out)
	}
}

// TestUsageExitStatus runs the real binary: a usage error exits 2 with the
// problem and a hint at --help on stderr, at start as with --check-config.
func TestUsageExitStatus(t *testing.T) {
	db := filepath.Join(t.TempDir(), "o.db")
	for _, check := range []string{"--check-config", "--log-level=info"} {
		out, err := exec.Command(harness.Binary(t), "logs-collector", "--source-dir=/nonexistent", "--offsets-db="+db,
			"--target-address=127.0.0.1:99999", check).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Fatalf("%s: exit: %v, want status 2\n%s", check, err, out)
		}
		for _, w := range []string{"--source-dir=/nonexistent", "--target-address=127.0.0.1:99999", "run 'thunder logs-collector --help'"} {
			if !strings.Contains(string(out), w) {
				t.Errorf("%s: output does not contain %q:\n%s", check, w, out)
			}
		}
	}
	if _, err := os.Stat(db); err == nil {
		t.Error("the offsets db was created: the collector started")
	}
}

// TestHelpFlags: --help writes flags as the README does, --name.
func TestHelpFlags(t *testing.T) {
	for _, cmd := range []string{"logs-processor", "logs-collector", "status", "top", "verify"} {
		out, _, err := runCmd(t, cmd, "--help")
		if err != nil {
			t.Fatalf("%s --help: %v", cmd, err)
		}
		_, flags, _ := strings.Cut(out, "\nFlags:\n")
		if !strings.HasPrefix(flags, "  --") {
			t.Errorf("%s --help: flags not listed as --flag:\n%s", cmd, flags)
		}
		for line := range strings.SplitSeq(flags, "\n") {
			if strings.HasPrefix(line, "  -") && !strings.HasPrefix(line, "  --") {
				t.Errorf("%s --help: %q", cmd, line)
			}
		}
	}
}
