package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// DefaultAdminPort is the admin endpoint's port in examples and the
// default of `thunder status` and `thunder top`.
const DefaultAdminPort = "7358"

// adminAddressFlag registers --admin-address of the commands that read a
// daemon's admin endpoint (status, top).
func adminAddressFlag(fs *flag.FlagSet) *string {
	return fs.String("admin-address", "127.0.0.1:"+DefaultAdminPort, "admin endpoint of the daemon, HOST:PORT (port "+DefaultAdminPort+" if omitted)")
}

// daemonFlags are the operating flags both daemons share: the config file,
// --check-config and the admin endpoint.
type daemonFlags struct {
	config    string
	check     bool
	adminAddr string
	pprof     bool
}

func (d *daemonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&d.config, "config", "", "TOML file of settings, keys = flag names (e.g. log-level = \"debug\"); flags on the command line win")
	fs.BoolVar(&d.check, "check-config", false, "print the effective settings, validate them and exit without starting: 0 when valid")
	fs.StringVar(&d.adminAddr, "admin-address", "", "serve /metrics, /healthz and /status on this HOST:PORT, e.g. 127.0.0.1:"+DefaultAdminPort+"; keep it on loopback (default: off)")
	fs.BoolVar(&d.pprof, "pprof", false, "also serve /debug/pprof/ on --admin-address")
}

// inFile reports whether a config file may set the flag name.
func inFile(name string) bool { return name != "config" && name != "check-config" }

// load applies the --config file to the flags not set on the command line
// (flag > file > default). Under --check-config it then prints the
// effective settings to stdout.
func (d *daemonFlags) load(fs *flag.FlagSet, stdout io.Writer) error {
	if d.config != "" {
		if err := loadConfig(fs, d.config); err != nil {
			return err
		}
	}
	if d.check {
		printSettings(fs, stdout)
	}
	return nil
}

// loadConfig sets every flag named in the TOML file at path that the
// command line did not set, through the flag's own Set method, so that
// sizes, durations and lists read exactly as on the command line.
func loadConfig(fs *flag.FlagSet, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var raw map[string]toml.Primitive
	md, err := toml.Decode(string(b), &raw)
	if err != nil {
		return usageError{fmt.Errorf("config %s: %w", path, err)}
	}
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })
	// Keys in file order, so that errors name the first bad one. Keys
	// inside tables need no check: no flag is a table.
	var unknown []string
	for _, k := range md.Keys() {
		if len(k) != 1 {
			continue
		}
		name := k[0]
		if fs.Lookup(name) == nil || !inFile(name) {
			unknown = append(unknown, strconv.Quote(name))
			continue
		}
		var v any
		if err := md.PrimitiveDecode(raw[name], &v); err != nil {
			return usageError{fmt.Errorf("config %s: key %q: %w", path, name, err)}
		}
		s, err := tomlString(v)
		if err != nil {
			return usageError{fmt.Errorf("config %s: key %q: %w", path, name, err)}
		}
		if onCommandLine[name] {
			continue
		}
		if err := fs.Set(name, s); err != nil {
			return usageError{fmt.Errorf("config %s: key %q: invalid value %q: %w", path, name, s, err)}
		}
	}
	if len(unknown) > 0 {
		return usageError{fmt.Errorf("config %s: unknown key %s (keys are the flag names of %s, without --)", path, strings.Join(unknown, ", "), fs.Name())}
	}
	return nil
}

// tomlString turns a decoded TOML value into a flag value: an array
// becomes a comma-separated list (--target-address).
func tomlString(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case bool:
		return strconv.FormatBool(v), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			s, err := tomlString(e)
			if err != nil {
				return "", err
			}
			if _, nested := e.([]any); nested {
				return "", errors.New("nested arrays are not a flag value")
			}
			parts[i] = s
		}
		return strings.Join(parts, ","), nil
	case map[string]any:
		return "", errors.New("a table is not a flag value")
	}
	return "", fmt.Errorf("%T is not a flag value", v)
}

// printSettings writes every flag's value as a TOML line, so the output of
// --check-config is itself a valid config file.
func printSettings(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprintf(w, "# effective settings of thunder %s\n", fs.Name())
	fs.VisitAll(func(f *flag.Flag) {
		if !inFile(f.Name) {
			return
		}
		v := f.Value.String()
		if _, err := strconv.ParseInt(v, 10, 64); err != nil && !isBoolFlag(f) {
			v = strconv.Quote(v)
		}
		fmt.Fprintf(w, "%s = %s\n", f.Name, v)
	})
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// checked ends a --check-config run: it reports nil, false when not
// checking; otherwise the joined problems, or prints "config ok".
func (d *daemonFlags) checked(stdout io.Writer, errs ...error) (bool, error) {
	if !d.check {
		return false, nil
	}
	if d.adminAddr != "" {
		if _, _, err := net.SplitHostPort(d.adminAddr); err != nil {
			errs = append(errs, fmt.Errorf("--admin-address %q: %w", d.adminAddr, err))
		}
	}
	if d.pprof && d.adminAddr == "" {
		errs = append(errs, errors.New("--pprof needs --admin-address"))
	}
	if err := errors.Join(errs...); err != nil {
		return true, fmt.Errorf("invalid config:\n%w", err)
	}
	fmt.Fprintln(stdout, "config ok")
	return true, nil
}

// isDir reports an error unless path is an existing directory.
func isDir(flagName, path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("--%s: %w", flagName, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("--%s: %s is not a directory", flagName, path)
	}
	return nil
}
