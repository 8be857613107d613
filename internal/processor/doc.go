// Package processor accepts collector connections and appends what they send
// to a target.Dir.
//
// Invariant: a stream's offset is acknowledged to its collector only after
// the group commit that made it durable (target.Dir.Commit). Each connection
// is served by two goroutines, a reader that appends and a writer that sends
// replies, so a slow collector never holds up the commit loop or another
// collector.
package processor
