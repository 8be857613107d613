// Package wire implements the thunder wire protocol: the connection preface,
// length-prefixed frames, the Protocol Buffers control messages in wirepb and
// the binary data frame. docs/PROTOCOL.md is the normative description; the
// section numbers in comments here refer to it.
//
// Invariant: every length read from the network is checked against a limit
// before memory is allocated for it.
package wire
