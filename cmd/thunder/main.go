// Command thunder ships log files from many hosts to a central host, exactly
// once. `thunder help` lists the subcommands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // a second signal kills at once
	}()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "thunder:", err)
	if ue := (usageError{}); errors.As(err, &ue) {
		fmt.Fprintln(os.Stderr, usageHint(os.Args[1:]))
	}
	os.Exit(exitStatus(err))
}

// usageError is a command line mistake: exit status 2 (and so is a
// cannotCheck of thunder verify).
type usageError struct{ error }

const usage = `thunder ships log files from many hosts to a central host, exactly once.

Usage:
  thunder logs-processor --target-dir=DIR [--listen-address=HOST:PORT] [flags]
  thunder logs-collector --source-dir=DIR --offsets-db=FILE --target-address=HOST:PORT [flags]
  thunder status [--admin-address=HOST:PORT] [--json]
  thunder top [--admin-address=HOST:PORT] [--interval=1s]
  thunder verify [--admin-address=HOST:PORT] [--rate=BYTES_PER_SECOND] [--json]
  thunder demo [--seconds=N]
  thunder version
  thunder help [COMMAND]

Run 'thunder COMMAND --help' for the flags of a command and examples.
`

// commands are the subcommands, by the names run accepts.
var commands = map[string]bool{
	"logs-processor": true, "processor": true, "logs-collector": true, "collector": true,
	"status": true, "top": true, "verify": true, "demo": true, "version": true,
}

// usageHint is the line printed under a usage error: where the flags of
// the command in args are described.
func usageHint(args []string) string {
	if len(args) > 0 && commands[args[0]] {
		return fmt.Sprintf("run 'thunder %s --help' for its flags", args[0])
	}
	return "run 'thunder help' for the commands"
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{errors.New("no command given")}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "logs-processor", "processor":
		return runProcessor(ctx, rest, stdout, stderr)
	case "logs-collector", "collector":
		return runCollector(ctx, rest, stdout, stderr)
	case "status":
		return runStatus(ctx, rest, stdout, stderr)
	case "top":
		return runTop(ctx, rest, stdout, stderr)
	case "verify":
		return runVerify(ctx, rest, stdout, stderr)
	case "demo":
		return runDemo(ctx, rest, stdout, stderr)
	case "version", "--version", "-version":
		if err := parse(newFlagSet("version", versionHelp, stdout), rest); err != nil {
			return ignoreHelp(err)
		}
		fmt.Fprintln(stdout, versionString())
		return nil
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 {
			return run(ctx, []string{rest[0], "--help"}, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return usageError{fmt.Errorf("unknown command %q", cmd)}
	}
}
