// Package processor accepts collector connections, admits and
// authenticates them (limits, token, mutual TLS, the collector's key), and
// writes the streams they send to its outputs: files in a target directory
// (package target), Kafka topics (package kafka), or both.
//
// Invariant: an offset is acknowledged to its collector only once every
// output has made it durable. Each output commits in groups of its own (the
// target dir: fsync and a state transaction; Kafka: one transaction of data
// and state records) and reports what it committed; a stream is
// acknowledged the minimum of what its outputs committed, and resumes
// (Opened) at the minimum of their offsets. Each connection is served by two
// goroutines, a reader that appends and a writer that sends replies, so a
// slow collector never holds up a commit or another collector.
package processor
