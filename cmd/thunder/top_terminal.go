//go:build unix

package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// keyPoll is how often the key reader looks for a cancelled context.
const keyPoll = 100 * time.Millisecond

// Terminal control sequences (ECMA-48 / xterm).
const (
	escAltScreen  = "\x1b[?1049h\x1b[?25l" // alternate screen, hide cursor
	escMainScreen = "\x1b[?25h\x1b[?1049l"
	escHome       = "\x1b[H"
	escClear      = "\x1b[2J"
	escClearLine  = "\x1b[K" // to the end of the line
	escClearDown  = "\x1b[J" // to the end of the screen
)

// runTerminal redraws f every interval on the alternate screen, with the
// terminal in cbreak mode so that a single q quits.
func (v *topView) runTerminal(ctx context.Context, f *os.File, interval time.Duration, count int) error {
	quit := make(chan struct{})
	stdin := int(os.Stdin.Fd())
	if restore, err := cbreak(stdin); err == nil {
		defer restore()
		kctx, stopKeys := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() { readKeys(kctx, stdin, quit) })
		defer wg.Wait()
		defer stopKeys()
	}
	if _, err := io.WriteString(f, escAltScreen+escClear); err != nil {
		return err
	}
	defer func() { _, _ = io.WriteString(f, escMainScreen) }() // best effort: we are exiting
	return v.run(ctx, interval, count, quit, func(s sample) error {
		width, height := 0, 0
		if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil {
			width, height = int(ws.Col), int(ws.Row)
		}
		var b bytes.Buffer
		v.render(&b, s, max(0, height-1))
		lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
		var out strings.Builder
		out.WriteString(escHome)
		for _, l := range lines {
			if width > 0 && len(l) > width {
				l = l[:width]
			}
			out.WriteString(l + escClearLine + "\n")
		}
		out.WriteString(escClearDown)
		_, err := io.WriteString(f, out.String())
		return err
	})
}

// isTerminal reports whether fd is a terminal.
func isTerminal(fd int) bool {
	_, err := unix.IoctlGetTermios(fd, getTermios)
	return err == nil
}

// cbreak turns off line buffering and echo on the terminal fd, so that
// keys arrive one by one, and returns the function that restores it.
// Unlike raw mode it keeps signals (Ctrl-C is SIGINT) and output
// processing (\n is a new line).
func cbreak(fd int) (restore func(), err error) {
	old, err := unix.IoctlGetTermios(fd, getTermios)
	if err != nil {
		return nil, err
	}
	t := *old
	t.Lflag &^= unix.ICANON | unix.ECHO
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, setTermios, &t); err != nil {
		return nil, err
	}
	return func() { _ = unix.IoctlSetTermios(fd, setTermios, old) }, nil // best effort: we are exiting
}

// readKeys closes quit when q or Q arrives on fd or fd reaches its end, and
// returns when ctx is done.
func readKeys(ctx context.Context, fd int, quit chan<- struct{}) {
	buf := make([]byte, 16)
	for ctx.Err() == nil {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(keyPoll/time.Millisecond))
		switch {
		case errors.Is(err, unix.EINTR) || n == 0:
			continue
		case err != nil:
			return // no keys, then: Ctrl-C still quits
		}
		n, err = unix.Read(fd, buf)
		if err != nil || n == 0 || bytes.ContainsAny(buf[:n], "qQ") {
			close(quit)
			return
		}
	}
}
