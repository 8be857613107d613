package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// daemons are the subcommands that read a config file.
var daemons = []string{"logs-processor", "logs-collector"}

// runCmd runs thunder with args and returns stdout, stderr and the error.
func runCmd(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	// A daemon started by mistake stops when ctx does: the test fails
	// instead of hanging.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err := run(ctx, args, &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

// settings runs --check-config with args and returns the effective
// settings it prints, decoded: they are a TOML file.
func settings(t *testing.T, daemon string, args ...string) map[string]any {
	t.Helper()
	out, _, _ := runCmd(t, append([]string{daemon, "--check-config"}, args...)...)
	// The settings come first; "config ok" or nothing follows.
	out = strings.TrimSuffix(out, "config ok\n")
	var m map[string]any
	if _, err := toml.Decode(out, &m); err != nil {
		t.Fatalf("%s --check-config %q: settings are not TOML: %v\n%s", daemon, args, err, out)
	}
	if len(m) == 0 {
		t.Fatalf("%s --check-config %q: no settings printed", daemon, args)
	}
	return m
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "thunder.toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// enumSamples are values for flags that take one of a few words.
var enumSamples = map[string]string{"collector-identity": "off", "target-layout": "{host}/{date}/{file}"}

// sampleValue returns a value for a flag other than its default def (as
// --check-config prints it): the flag's spelling and the same as TOML.
func sampleValue(name string, def any) (flagValue, tomlValue string) {
	if s, ok := enumSamples[name]; ok {
		return s, strconv.Quote(s)
	}
	switch v := def.(type) {
	case bool:
		return strconv.FormatBool(!v), strconv.FormatBool(!v)
	case int64:
		s := strconv.FormatInt(v+4096, 10)
		return s, s
	case string:
		if d, err := time.ParseDuration(v); err == nil {
			s := (d + 3*time.Second).String()
			return s, strconv.Quote(s)
		}
		if n, err := parseSize(v); err == nil && v != "" {
			s := formatSize(n + 3<<20)
			return s, strconv.Quote(s)
		}
		s := "sample-" + name
		return s, strconv.Quote(s)
	}
	panic(fmt.Sprintf("flag %s: default %v of type %T", name, def, def))
}

// TestConfigEachFlag sets every flag of each daemon through a config file
// and checks that the daemon ends up with the same settings as with the
// flag on the command line, and not with the default. It walks the flags
// the daemon prints, so a new flag is covered without touching this test.
func TestConfigEachFlag(t *testing.T) {
	for _, daemon := range daemons {
		defaults := settings(t, daemon)
		names := make([]string, 0, len(defaults))
		for n := range defaults {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, name := range names {
			t.Run(daemon+"/"+name, func(t *testing.T) {
				fv, tv := sampleValue(name, defaults[name])
				viaFlag := settings(t, daemon, "--"+name+"="+fv)
				if fmt.Sprint(viaFlag[name]) == fmt.Sprint(defaults[name]) {
					t.Fatalf("--%s=%s: still the default %v", name, fv, defaults[name])
				}
				cfg := writeConfig(t, fmt.Sprintf("%s = %s\n", name, tv))
				viaFile := settings(t, daemon, "--config="+cfg)
				for k, want := range viaFlag {
					if got := viaFile[k]; fmt.Sprint(got) != fmt.Sprint(want) {
						t.Errorf("with %s = %s in the file: %s = %v, want %v (as with --%s=%s)", name, tv, k, got, want, name, fv)
					}
				}
			})
		}
	}
}

// TestConfigValueForms checks that sizes, durations, lists and booleans
// read from TOML as they do from the command line.
func TestConfigValueForms(t *testing.T) {
	tests := []struct {
		name   string
		daemon string
		file   string
		key    string
		want   string
	}{
		{"size as integer", "logs-processor", "commit-bytes = 1048576", "commit-bytes", "1MiB"},
		{"size with unit", "logs-processor", `commit-bytes = "64KiB"`, "commit-bytes", "64KiB"},
		{"odd size", "logs-collector", "window-bytes = 1000000", "window-bytes", "1000000"},
		{"duration", "logs-processor", `commit-interval = "250ms"`, "commit-interval", "250ms"},
		{"duration in minutes", "logs-collector", `rescan-interval = "2m"`, "rescan-interval", "2m0s"},
		{"integer", "logs-processor", "max-streams-per-conn = 7", "max-streams-per-conn", "7"},
		{"bool", "logs-processor", "pprof = true", "pprof", "true"},
		{"list as array", "logs-collector", `target-address = ["a:1", "b:2"]`, "target-address", "a:1,b:2"},
		{"list as string", "logs-collector", `target-address = "a:1,b:2"`, "target-address", "a:1,b:2"},
		{"address", "logs-processor", `listen-address = "0.0.0.0:1065"`, "listen-address", "0.0.0.0:1065"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := settings(t, tt.daemon, "--config="+writeConfig(t, tt.file+"\n"))
			if s := fmt.Sprint(got[tt.key]); s != tt.want {
				t.Errorf("%s: %s = %s, want %s", tt.file, tt.key, s, tt.want)
			}
		})
	}
}

// TestConfigPrecedence: flag > file > default.
func TestConfigPrecedence(t *testing.T) {
	cfg := writeConfig(t, `
# a comment
commit-interval = "1s"
log-level = "debug"
target-dir = "/from/file"
`)
	got := settings(t, "logs-processor", "--commit-interval=2s", "--config="+cfg, "--target-dir=/from/flag")
	want := map[string]string{
		"commit-interval": "2s",         // flag over file
		"target-dir":      "/from/flag", // flag over file, whatever the order
		"log-level":       "debug",      // file over default
		"idle-timeout":    "1m0s",       // default
	}
	for k, w := range want {
		if g := fmt.Sprint(got[k]); g != w {
			t.Errorf("%s = %s, want %s", k, g, w)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		file string
		want []string // in the error
	}{
		{"unknown key", "target-dir = \"/x\"\nbogus-key = 1\n", []string{`"bogus-key"`, "unknown key"}},
		{"collector flag in a processor file", "source-dir = \"/x\"\n", []string{`"source-dir"`}},
		{"table", "[tls]\ncert = \"x.pem\"\n", []string{`"tls"`}},
		{"config in config", "config = \"other.toml\"\n", []string{`"config"`}},
		{"check-config in config", "check-config = true\n", []string{`"check-config"`}},
		{"bad size", "commit-bytes = \"lots\"\n", []string{`"commit-bytes"`, "invalid size"}},
		{"bad duration", "commit-interval = \"soon\"\n", []string{`"commit-interval"`, "soon"}},
		{"bad bool", "pprof = \"maybe\"\n", []string{`"pprof"`}},
		{"table value", "target-dir = { a = 1 }\n", []string{`"target-dir"`, "table"}},
		{"not TOML", "target-dir = \n", []string{"toml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, tt.file)
			_, _, err := runCmd(t, "logs-processor", "--config="+path, "--target-dir="+t.TempDir())
			if err == nil {
				t.Fatalf("config %q: no error", tt.file)
			}
			for _, w := range append(tt.want, path) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("config %q: error %q does not contain %q", tt.file, err, w)
				}
			}
			var ue usageError
			if !errors.As(err, &ue) {
				t.Errorf("config %q: error %v is not a usage error (exit status 2)", tt.file, err)
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "nope.toml")
		_, _, err := runCmd(t, "logs-collector", "--config="+path)
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("missing config file: error %v, want one naming %s", err, path)
		}
	})
}

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	okProcessor := writeConfig(t, fmt.Sprintf("target-dir = %q\nadmin-address = \"127.0.0.1:0\"\npprof = true\n", dir))
	okCollector := writeConfig(t, fmt.Sprintf("source-dir = %q\noffsets-db = %q\ntarget-address = \"logs.example.com\"\n", dir, filepath.Join(dir, "offsets.db")))
	tests := []struct {
		name string
		args []string
		want string // in the error; "" for valid
	}{
		{"processor ok", []string{"logs-processor", "--config=" + okProcessor}, ""},
		{"collector ok", []string{"logs-collector", "--config=" + okCollector}, ""},
		{"processor flags only", []string{"logs-processor", "--target-dir=" + dir}, ""},
		{"no target dir", []string{"logs-processor", "--target-dir=" + filepath.Join(dir, "nope")}, "nope"},
		{"target dir is a file", []string{"logs-processor", "--target-dir=" + file}, "not a directory"},
		{"missing flag", []string{"logs-processor"}, "--target-dir"},
		{"invalid value", []string{"logs-processor", "--config=" + okProcessor, "--commit-interval=0s"}, "--commit-interval=0s: must be positive"},
		{"bad log level", []string{"logs-processor", "--config=" + okProcessor, "--log-level=loud"}, "log-level"},
		{"bad admin address", []string{"logs-processor", "--config=" + okProcessor, "--admin-address=localhost"}, "admin-address"},
		{"pprof without admin", []string{"logs-processor", "--target-dir=" + dir, "--pprof"}, "--pprof"},
		{"kafka only", []string{"logs-processor", "--kafka-brokers=127.0.0.1:9092"}, ""},
		{"kafka and files", []string{"logs-processor", "--target-dir=" + dir, "--kafka-brokers=127.0.0.1:9092", "--kafka-topic=logs.{host}.{file}"}, ""},
		{"kafka bad topic", []string{"logs-processor", "--kafka-brokers=127.0.0.1:9092", "--kafka-topic=a b"}, "topic template"},
		{"kafka sasl without user", []string{"logs-processor", "--kafka-brokers=127.0.0.1:9092", "--kafka-sasl=plain"}, "--kafka-sasl-user"},
		{"kafka unknown sasl", []string{"logs-processor", "--kafka-brokers=127.0.0.1:9092", "--kafka-sasl=gssapi", "--kafka-sasl-user=u", "--kafka-sasl-password-file=" + file}, "gssapi"},
		{"collector chunk", []string{"logs-collector", "--config=" + okCollector, "--chunk-bytes=1"}, "--chunk-bytes=1: must be between"},
		{"collector no source dir", []string{"logs-collector", "--config=" + okCollector, "--source-dir=" + filepath.Join(dir, "gone")}, "gone"},
		{"collector offsets dir", []string{"logs-collector", "--config=" + okCollector, "--offsets-db=" + filepath.Join(dir, "nodir", "x.db")}, "nodir"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append(tt.args, "--check-config")
			stdout, _, err := runCmd(t, args...)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("%q: %v, want config ok", args, err)
			case tt.want == "" && !strings.HasSuffix(stdout, "\nconfig ok\n"):
				t.Errorf("%q: stdout does not end with config ok:\n%s", args, stdout)
			case tt.want != "" && err == nil:
				t.Fatalf("%q: no error, want one about %s\n%s", args, tt.want, stdout)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Errorf("%q: error %q does not mention %q", args, err, tt.want)
			case tt.want != "" && strings.Contains(stdout, "config ok"):
				t.Errorf("%q: failed, but printed config ok", args)
			}
		})
	}
	// Nothing was started: no offsets database, nothing in the target dir.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("--check-config touched %s: %v", dir, entries)
	}
}

// exampleSettingRE matches a setting of an example config, commented out
// or not.
var exampleSettingRE = regexp.MustCompile(`(?m)^(# )?([a-z][a-z0-9-]*) = (.*)$`)

// TestExampleConfigs checks that packaging/*.toml mention every flag of
// their daemon and that every setting in them, commented-out defaults
// included, is accepted.
func TestExampleConfigs(t *testing.T) {
	for daemon, file := range map[string]string{
		"logs-processor": "../../packaging/processor.toml",
		"logs-collector": "../../packaging/collector.toml",
	} {
		t.Run(daemon, func(t *testing.T) {
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			documented := map[string]bool{}
			var all strings.Builder // every setting, uncommented
			for _, m := range exampleSettingRE.FindAllStringSubmatch(string(b), -1) {
				documented[m[2]] = true
				if !strings.Contains(m[3], "<") { // placeholders such as <host name>
					fmt.Fprintf(&all, "%s = %s\n", m[2], m[3])
				}
			}
			for name := range settings(t, daemon) {
				if !documented[name] && name != "config" && name != "check-config" {
					t.Errorf("%s does not document %s", file, name)
				}
			}
			for _, text := range []string{string(b), all.String()} {
				_, _, err := runCmd(t, daemon, "--check-config", "--config="+writeConfig(t, text))
				if err != nil && strings.HasPrefix(err.Error(), "config ") {
					t.Errorf("%s: %v\n%s", file, err, text)
				}
			}
		})
	}
}
