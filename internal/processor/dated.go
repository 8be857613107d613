package processor

import (
	"fmt"
	"time"

	"thunder/internal/layout"
	"thunder/internal/relpath"
	"thunder/internal/stream"
	"thunder/internal/target"
)

// Attach attaches the stream under its target path: its name through the
// layout, with the collector's authenticated name as {host} and today as
// {date}. The stream's state (offsets, digest) is keyed by collector and
// stream, not by path, so a path that differs from the one the stream had
// (another layout since a restart, another day) continues the stream from
// the end of what the old path got, as a renamed stream does (PROTOCOL §4).
func (o files) Attach(k stream.Key, n relpath.Name, acked stream.Mark, w stream.Owner) (outStream, stream.Mark, error) {
	now := o.now()
	name, err := o.layout.Render(k.Collector, n, now)
	if err != nil {
		return nil, stream.Mark{}, fmt.Errorf("%w: --target-layout %s: %v", stream.ErrName, o.layout, err)
	}
	st, at, _, err := o.Dir.Attach(k, name, acked, w)
	if err != nil || !o.layout.Dated() {
		return attached(st, at, stream.Mark{}, err)
	}
	return &dated{Stream: st, o: o, file: n, until: layout.NextDay(now)}, at, nil
}

// dated is a stream of a layout with {date}. The first Append received at
// or after the next UTC midnight moves it to the new day's path: bytes are
// placed by the day the processor receives them, so a frame is never
// split, and the stream's offset and digest run on across the move.
// It is used by its session's reader only, like the binding holding it.
type dated struct {
	*target.Stream
	o     files
	file  relpath.Name
	until time.Time // when the path changes next
}

func (d *dated) Append(w stream.Owner, c stream.Chunk) error {
	if now := d.o.now(); !now.Before(d.until) {
		if err := d.move(w, now); err != nil {
			return err
		}
	}
	return d.Stream.Append(w, c)
}

// move moves the stream to the path of now's day. Its bytes in the old
// path are committed first (target.Stream.Move waits for that), and the
// owner is told, so the collector's acks do not wait for the next commit.
func (d *dated) move(w stream.Owner, now time.Time) error {
	name, err := d.o.layout.Render(d.Key.Collector, d.file, now)
	if err != nil {
		return fmt.Errorf("%w: --target-layout %s: %v", stream.ErrName, d.o.layout, err)
	}
	st, err := d.Stream.Move(w, name)
	if err != nil {
		return err
	}
	d.Stream, d.until = st, layout.NextDay(now)
	w.Committed(st.Committed())
	return nil
}
