// Package wirepb holds the generated Protocol Buffers control messages of
// the wire protocol (wire.proto; docs/PROTOCOL.md).
//
// Regenerate with: protoc --go_out=. --go_opt=paths=source_relative wire.proto
// (protoc from Debian's protobuf-compiler, protoc-gen-go v1.36.12).
package wirepb
