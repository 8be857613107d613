package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

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
	// problems found before checked, which reports them with its own
	problems []error
}

// problem keeps the problems of errs (nil ones are none) for checked.
func (d *daemonFlags) problem(errs ...error) {
	for _, err := range errs {
		d.problems = append(d.problems, each(err)...)
	}
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
// (flag > file > default).
func (d *daemonFlags) load(fs *flag.FlagSet) error {
	if d.config == "" {
		return nil
	}
	return loadConfig(fs, d.config)
}

// loadConfig sets every flag named in the TOML file at path that the
// command line did not set, through the flag's own Set method, so that
// sizes, durations and lists read exactly as on the command line. Every
// bad key is reported, each with its value and what it should be.
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
	// Keys in file order. Keys inside tables need no check: no flag is a
	// table.
	var errs []error
	for _, k := range md.Keys() {
		if len(k) != 1 {
			continue
		}
		name := k[0]
		f := fs.Lookup(name)
		if f == nil || !inFile(name) {
			errs = append(errs, fmt.Errorf("unknown key %q (keys are the flag names of %s, without --)", name, fs.Name()))
			continue
		}
		var v any
		if err := md.PrimitiveDecode(raw[name], &v); err != nil {
			errs = append(errs, fmt.Errorf("key %q: %w", name, err))
			continue
		}
		s, err := tomlValue(f, v)
		if err != nil {
			errs = append(errs, fmt.Errorf("key %q = %s: %w", name, tomlShow(v), err))
			continue
		}
		if onCommandLine[name] {
			continue
		}
		if err := set(fs, f, s); err != nil {
			errs = append(errs, fmt.Errorf("key %q = %s: %w", name, tomlShow(v), valueError(f, err)))
		}
	}
	for i, err := range errs {
		errs[i] = fmt.Errorf("config %s: %w", path, err)
	}
	return usageErrors(fs.Name(), errs)
}

// listFlags are the flags holding a comma-separated list, which a config
// file may also write as an array of strings.
var listFlags = map[string]bool{"target-address": true, "exclude": true, "kafka-brokers": true}

// tomlValue turns the decoded TOML value v of flag f into the flag's
// command-line spelling, refusing a value of the wrong TOML type (so
// target-dir = 5 is an error, not the directory "5").
func tomlValue(f *flag.Flag, v any) (string, error) {
	want := "a string"
	switch {
	case listFlags[f.Name]:
		want = "a string or an array of strings"
		if a, ok := v.([]any); ok {
			parts := make([]string, len(a))
			for i, e := range a {
				if parts[i], ok = e.(string); !ok {
					return "", errors.New("want " + want)
				}
			}
			return strings.Join(parts, ","), nil
		}
	case isBoolFlag(f):
		if b, ok := v.(bool); ok {
			return strconv.FormatBool(b), nil
		}
		return "", errors.New("want true or false (without quotes)")
	case isSizeFlag(f):
		if n, ok := v.(int64); ok {
			return strconv.FormatInt(n, 10), nil
		}
		want = `a number of bytes or a string such as "64KiB"`
	default:
		if g, ok := f.Value.(flag.Getter); ok {
			switch g.Get().(type) {
			case time.Duration:
				want = `a string such as "250ms" or "10s"`
			case int:
				if n, ok := v.(int64); ok {
					return strconv.FormatInt(n, 10), nil
				}
				return "", errors.New("want a whole number (without quotes)")
			}
		}
	}
	if s, ok := v.(string); ok {
		return s, nil
	}
	return "", errors.New("want " + want)
}

func isSizeFlag(f *flag.Flag) bool {
	_, ok := f.Value.(sizeFlag)
	return ok
}

// tomlShow writes a decoded TOML value as it stood in the file.
func tomlShow(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	case map[string]any:
		return "a table"
	case []any:
		return "an array"
	}
	return fmt.Sprint(v)
}

// printSettings writes every flag's value as a TOML line, so the output of
// --check-config is itself a valid config file; with problems, a first
// line says that they are not valid.
func printSettings(fs *flag.FlagSet, w io.Writer, problems int) {
	if problems > 0 {
		fmt.Fprintf(w, "# NOT VALID: %d problem(s), on stderr; a value that was refused shows its default\n", problems)
	}
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

// checked validates the settings before a daemon starts, with or without
// --check-config: errs are the daemon's own problems (nil ones ignored),
// to which it adds those found while parsing and those of the shared
// flags, and reports them all at once as a usage error. Under
// --check-config it prints the effective settings and ends the run
// (done), with "config ok" when there is no problem.
func (d *daemonFlags) checked(fs *flag.FlagSet, stdout io.Writer, errs ...error) (done bool, err error) {
	if d.adminAddr != "" {
		errs = append(errs, checkAddress("admin-address", d.adminAddr, true))
	}
	if d.pprof && d.adminAddr == "" {
		errs = append(errs, errors.New("--pprof needs --admin-address"))
	}
	all := slices.Clone(d.problems)
	for _, e := range errs {
		all = append(all, each(e)...) // errors.Join of a Validate: one problem a line
	}
	// Each problem once: two checks may find the same one.
	seen := map[string]bool{}
	all = slices.DeleteFunc(all, func(err error) bool {
		if err == nil || seen[err.Error()] {
			return true
		}
		seen[err.Error()] = true
		return false
	})
	if d.check {
		printSettings(fs, stdout, len(all))
	}
	if err := usageErrors(fs.Name(), all); err != nil {
		return true, err
	}
	if !d.check {
		return false, nil
	}
	fmt.Fprintln(stdout, "config ok")
	return true, nil
}

// checkAddress reports what is wrong with the HOST:PORT addr of --flag: a
// missing or out-of-range port. listen allows port 0 (any free port) and
// an empty host (all interfaces).
func checkAddress(flagName, addr string, listen bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--%s=%s: not HOST:PORT (e.g. 127.0.0.1:%s)", flagName, addr, DefaultPort)
	}
	n, err := strconv.Atoi(port)
	low := 1
	if listen {
		low = 0
	}
	if err != nil || n < low || n > 65535 {
		return fmt.Errorf("--%s=%s: port %q is not a number from %d to 65535", flagName, addr, port, low)
	}
	if host == "" && !listen {
		return fmt.Errorf("--%s=%s: no host", flagName, addr)
	}
	return nil
}

// checkAddresses checks each address of a list flag.
func checkAddresses(flagName string, addrs []string) error {
	var errs []error
	for _, a := range addrs {
		errs = append(errs, checkAddress(flagName, a, false))
	}
	return errors.Join(errs...)
}

// readableDir reports an error unless path is a directory this process
// can list: a collector that cannot read its source dir has nothing to do.
func readableDir(flagName, path string) error {
	if err := isDir(flagName, path); err != nil {
		return err
	}
	f, err := os.Open(path)
	if err == nil {
		_, err = f.Readdirnames(1)
		_ = f.Close() // read-only
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("--%s=%s: cannot read the directory: %w", flagName, path, err)
	}
	return nil
}

// isDir reports an error unless path is an existing directory.
func isDir(flagName, path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("--%s=%s: %w", flagName, path, errors.Unwrap(err))
	}
	if !fi.IsDir() {
		return fmt.Errorf("--%s=%s: %w", flagName, path, errors.New("not a directory"))
	}
	return nil
}
