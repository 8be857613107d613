package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DefaultPort is the processor's port when an address names none.
const DefaultPort = "7357"

// newFlagSet returns a FlagSet that reports errors instead of exiting.
// Flags are written --name=value (or --name value; -name works too), as in
// the original command lines, and --help lists them so.
func newFlagSet(name, help string, stdout io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprint(stdout, help)
		fmt.Fprintln(stdout, "\nFlags:")
		printFlags(stdout, fs)
	}
	return fs
}

// printFlags lists the flags of fs as the README writes them: --name, not
// the -name of flag.PrintDefaults.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		if _, ok := f.Value.(sizeFlag); ok {
			typ = "size"
		}
		line := "  --" + f.Name
		if typ != "" && !isBoolFlag(f) {
			line += "=" + strings.ToUpper(typ)
		}
		if def := f.DefValue; def != "" && def != "0" && def != "false" {
			usage += fmt.Sprintf(" (default %s)", def)
		}
		fmt.Fprintf(w, "%s\n    \t%s\n", line, strings.ReplaceAll(usage, "\n", "\n    \t"))
	})
}

// parse parses args, reporting every bad flag at once (the flag package
// stops at the first); --help prints usage and returns errHelp.
func parse(fs *flag.FlagSet, args []string) error {
	var errs []error
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			errs = append(errs, unexpected(args[i+1:])...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			errs = append(errs, unexpected(args[i:])...)
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimPrefix(a[1:], "-"), "=")
		f := fs.Lookup(name)
		switch {
		case name == "h" || name == "help":
			fs.Usage()
			return errHelp
		case f == nil:
			errs = append(errs, fmt.Errorf("unknown flag --%s", name))
			continue
		case !hasValue && isBoolFlag(f):
			value = "true"
		case !hasValue && i+1 == len(args):
			errs = append(errs, fmt.Errorf("--%s needs a value", name))
			continue
		case !hasValue:
			i++
			value = args[i]
		}
		if err := set(fs, f, value); err != nil {
			errs = append(errs, fmt.Errorf("--%s=%s: %w", name, value, valueError(f, err)))
		}
	}
	return usageErrors(fs.Name(), errs)
}

// set sets flag f of fs to value; when value is refused, f keeps the value
// it had (the flag package's own types take their zero value then, which
// would make the settings checks report a second, made-up problem).
func set(fs *flag.FlagSet, f *flag.Flag, value string) error {
	old := f.Value.String()
	err := fs.Set(f.Name, value)
	if err != nil {
		_ = f.Value.Set(old) // a value String gave back is one Set takes
	}
	return err
}

// unexpected reports positional arguments: no subcommand takes any.
func unexpected(args []string) []error {
	if len(args) == 0 {
		return nil
	}
	return []error{fmt.Errorf("unexpected argument %q (flags are written --name=value)", args[0])}
}

// usageErrors is nil for no errors (nil ones are none), else a usageError
// of cmd listing them one a line.
func usageErrors(cmd string, errs []error) error {
	errs = slices.DeleteFunc(errs, func(err error) bool { return err == nil })
	if len(errs) == 0 {
		return nil
	}
	return usageError{listed{cmd, errs}}
}

// listed is the problems of a command, as usageErrors reports them.
type listed struct {
	cmd  string
	errs []error
}

func (l listed) Error() string {
	if len(l.errs) == 1 {
		return l.cmd + ": " + l.errs[0].Error()
	}
	return fmt.Sprintf("%s: %d problems:\n%v", l.cmd, len(l.errs), problems(l.errs))
}

func (l listed) Unwrap() []error { return l.errs }

// each is the problems err reports one by one: those usageErrors listed,
// those of an errors.Join, or err itself.
func each(err error) []error {
	switch e := err.(type) {
	case nil:
		return nil
	case usageError:
		return each(e.error)
	case listed:
		return e.errs
	case interface{ Unwrap() []error }:
		var all []error
		for _, x := range e.Unwrap() {
			all = append(all, each(x)...)
		}
		return all
	}
	return []error{err}
}

// problems is several errors, one an indented line each.
type problems []error

func (p problems) Error() string {
	var b strings.Builder
	for i, err := range p {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString("  " + strings.ReplaceAll(err.Error(), "\n", "\n  "))
	}
	return b.String()
}

func (p problems) Unwrap() []error { return p }

// valueError replaces the flag package's bare "parse error" with what the
// flag f takes.
func valueError(f *flag.Flag, err error) error {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return err // our own types say what they take
	}
	switch g.Get().(type) {
	case time.Duration:
		return errors.New("not a duration (write e.g. 250ms, 10s, 2m or 1h)")
	case bool:
		return errors.New("not a boolean (true or false)")
	case int, int64, uint, uint64:
		return errors.New("not a whole number")
	case float64:
		return errors.New("not a number")
	}
	return err
}

// positive reports a duration flag that is not positive.
func positive(name string, d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("--%s=%s: must be positive", name, d)
	}
	return nil
}

// notNegative reports a count flag below 0.
func notNegative(name string, n int) error {
	if n < 0 {
		return fmt.Errorf("--%s=%d: must not be negative", name, n)
	}
	return nil
}

var errHelp = errors.New("help shown")

// withDefaultPort adds DefaultPort to an address without a port.
func withDefaultPort(addr string) string {
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr
	}
	return net.JoinHostPort(strings.Trim(addr, "[]"), DefaultPort)
}

// splitList returns the items of a comma-separated list, trimmed, without
// empty ones.
func splitList(s string) []string {
	var items []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			items = append(items, item)
		}
	}
	return items
}

// sizeFlag is a byte count written as 1048576, 64KiB, 10MiB, 1GiB (or K, M, G).
type sizeFlag struct{ n *int64 }

func (s sizeFlag) String() string {
	if s.n == nil {
		return ""
	}
	return formatSize(*s.n)
}

func (s sizeFlag) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	*s.n = n
	return nil
}

func parseSize(v string) (int64, error) {
	units := []struct {
		suffix string
		mul    int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}}
	s := strings.TrimSpace(v)
	mul := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mul = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mul
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mul {
		return 0, fmt.Errorf("invalid size %q (use e.g. 1048576, 64KiB, 10MiB)", v)
	}
	return n * mul, nil
}

func formatSize(n int64) string {
	switch {
	case n != 0 && n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "GiB"
	case n != 0 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "MiB"
	case n != 0 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "KiB"
	}
	return strconv.FormatInt(n, 10)
}
