package wire

import "fmt"

// Code classifies an Error frame (§7).
type Code uint32

// Error codes. Numbers are part of the protocol.
const (
	CodeProtocol Code = 1  // malformed or unexpected frame
	CodeVersion  Code = 2  // no common protocol version
	CodeAuth     Code = 3  // missing or wrong token, or certificate/name mismatch
	CodeName     Code = 4  // target name refused (PROTOCOL.md §4)
	CodeLimit    Code = 5  // a limit was exceeded
	CodeOffset   Code = 6  // data did not start where the stream ends
	CodeStorage  Code = 7  // the processor could not write or sync (disk full)
	CodeShutdown Code = 8  // the processor is stopping
	CodeBusy     Code = 9  // the stream is attached to another connection
	CodeChecksum Code = 10 // a frame's trailer did not match its content (§13)
)

var codeNames = map[Code]string{
	CodeProtocol: "protocol", CodeVersion: "version", CodeAuth: "auth", CodeName: "name",
	CodeLimit: "limit", CodeOffset: "offset", CodeStorage: "storage", CodeShutdown: "shutdown",
	CodeBusy: "busy", CodeChecksum: "checksum",
}

func (c Code) String() string {
	if s, ok := codeNames[c]; ok {
		return s
	}
	return fmt.Sprintf("code(%d)", uint32(c))
}

// RemoteError is an Error frame received from the peer.
type RemoteError struct {
	Code    Code
	Message string
	Handle  uint32
}

func (e *RemoteError) Error() string {
	if e.Handle != 0 {
		return fmt.Sprintf("peer error %s (stream handle %d): %s", e.Code, e.Handle, e.Message)
	}
	return fmt.Sprintf("peer error %s: %s", e.Code, e.Message)
}
