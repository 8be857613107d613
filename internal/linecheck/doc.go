// Package linecheck writes log lines that can be checked, and checks that a
// directory holds each of them exactly once.
//
// It is used by the end-to-end tests and by `thunder demo` to prove the
// contract of thunder: nothing lost, nothing duplicated, whole lines only,
// lines of one source file in order, under their original names.
//
// Invariant: a line's bytes follow from its writer and sequence number
// alone, so the verifier needs no record of what was written but each
// writer's line count to find every lost, repeated, reordered, cut, altered
// or misplaced line.
//
// # Line format
//
// Every line is
//
//	<writer-id> <seq> <payload>\n
//
// where writer-id matches [A-Za-z0-9_.-]+, seq is the line's sequence
// number within its writer as 12 decimal digits, zero-padded (the first line
// is 000000000000), and payload is printable ASCII without spaces (bytes
// 0x21-0x7e). The payload is a pseudo-random string derived from a hash of
// writer-id and seq only, so a line whose bytes were altered, truncated or
// interleaved with another line's is detected. All lines of one writer have
// the same length, [Writer.LineBytes] (default [DefaultLineBytes]) including
// the newline; the payload fills what the id and seq leave.
//
// # Writers
//
// A [Writer] appends lines to a file following one of the write contracts
// that thunder's collector supports (see [Contract]), optionally at a fixed
// rate.
//
// # Verifier
//
// [Verify] reads every regular file under a directory and returns a
// [Report] counting lost, duplicated, reordered, partial, corrupt, misplaced
// and unexpected lines.
package linecheck
