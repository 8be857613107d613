package processor

import (
	"context"
	"time"

	"thunder/internal/kafka"
	"thunder/internal/layout"
	"thunder/internal/relpath"
	"thunder/internal/stream"
	"thunder/internal/target"
)

// output is where the processor writes streams: the target dir
// (target.Dir) or Kafka (kafka.Output), one or both. Each runs its own
// commit loop (Run) and tells a stream's owner how far it committed it
// (stream.Owner.Committed); the processor acknowledges the least over its
// outputs (binding.committed). Errors wrap stream.ErrNotOwner, ErrOffset
// and ErrName where they mean those.
type output interface {
	// Attach binds the stream to owner and returns where its data must
	// resume: the end of what the output holds, or acked if more was
	// delivered elsewhere. A previous owner loses the stream.
	// acked carries the collector's digest there, which the output takes
	// for the bytes it never saw.
	Attach(key stream.Key, name relpath.Name, acked stream.Mark, owner stream.Owner) (outStream, stream.Mark, error)
	// Run commits what is appended until ctx is done, then makes a last
	// commit. An error is fatal: the processor stops.
	Run(ctx context.Context) error
	// Reopen lets go of the output's files so they are opened afresh by
	// name (SIGHUP after logrotate).
	Reopen() error
	// Health returns when the output last committed, and the error of
	// its last commit.
	Health() (time.Time, error)
	// Close releases the output after Run returned.
	Close() error
}

// outStream is one stream in an output.
type outStream interface {
	// Append takes one frame's lines from the stream's owner.
	Append(owner stream.Owner, c stream.Chunk) error
	// Offset is where the stream's next data must start.
	Offset() uint64
	// Committed is the stream's committed source offset, with its digest.
	Committed() stream.Mark
	// Detach lets go of the stream if owner holds it; Forget also drops
	// its record (the collector deleted the file).
	Detach(owner stream.Owner)
	Forget(owner stream.Owner)
}

// files and kafkaOutput adapt the outputs' Attach, which returns their own
// stream type. files also maps names through the target layout (dated.go).
type (
	files struct {
		*target.Dir
		layout layout.Layout
		now    func() time.Time
	}
	kafkaOutput struct{ *kafka.Output }
)

func (o kafkaOutput) Attach(k stream.Key, n relpath.Name, acked stream.Mark, w stream.Owner) (outStream, stream.Mark, error) {
	return attached(o.Output.Attach(k, n, acked, w))
}

// attached returns an output's Attach results as an outStream (no non-nil
// interface around a nil stream on error).
func attached[S outStream](s S, at, _ stream.Mark, err error) (outStream, stream.Mark, error) {
	if err != nil {
		return nil, at, err
	}
	return s, at, nil
}
