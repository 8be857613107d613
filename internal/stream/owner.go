package stream

import "errors"

// Owner holds a stream in an output: on the processor, one open handle of
// one collector connection in one output. An output takes appends only
// from the stream's current owner (owners are compared by identity) and
// tells it, after each commit, how far the stream is durable. That call is
// the one path by which acknowledgements leave an output.
type Owner interface {
	// Committed reports that the output committed the stream up to m,
	// with m's digest. It must not block: outputs call it after a commit,
	// outside their locks, once per stream that moved.
	Committed(m Mark)
}

// Errors every output returns, wrapped in its own: the processor maps them
// to wire error codes without knowing which output failed.
var (
	// ErrNotOwner means another owner attached the stream since, or a
	// failed commit rewound it; the caller must attach again.
	ErrNotOwner = errors.New("stream is not attached to this connection")
	// ErrOffset means data did not start where the stream ends.
	ErrOffset = errors.New("data does not start at the stream's offset")
	// ErrName means the output cannot use the stream's target name.
	ErrName = errors.New("unusable target name")
)
