package kafka

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"thunder/internal/stream"
)

// State records live in the state topic, keyed
// "<processor>\x00<collector>\x00<16-byte stream id>"; the value is the
// committed offset (8 bytes, big-endian) followed by the target name, or
// nil (a tombstone) once the stream is forgotten. Collector names have no
// NUL, so the key is unambiguous. Every load writes a barrier record,
// "<processor>\x00\x00barrier", whose value is a fresh nonce.

// stateKey encodes the state key of k.
func (o *Output) stateKey(k stream.Key) []byte {
	b := make([]byte, 0, len(o.cfg.Processor)+len(k.Collector)+2+stream.IDBytes)
	b = append(b, o.cfg.Processor...)
	b = append(b, 0)
	b = append(b, k.Collector...)
	b = append(b, 0)
	return append(b, k.ID[:]...)
}

func (o *Output) barrierKey() []byte {
	return append([]byte(o.cfg.Processor), "\x00\x00barrier"...)
}

// parseStateKey decodes a state key of this processor; ok is false for
// another processor's keys and for barriers.
func (o *Output) parseStateKey(b []byte) (k stream.Key, ok bool) {
	rest, found := bytes.CutPrefix(b, append([]byte(o.cfg.Processor), 0))
	if !found || len(rest) < stream.IDBytes+2 || rest[len(rest)-stream.IDBytes-1] != 0 {
		return k, false
	}
	k.Collector = string(rest[:len(rest)-stream.IDBytes-1])
	copy(k.ID[:], rest[len(rest)-stream.IDBytes:])
	return k, !bytes.ContainsRune([]byte(k.Collector), 0)
}

// stateValue is a state record: committed(8) 0x00 version(1) digest(4)
// name (PROTOCOL §10). The first version was committed(8) name; a name
// never starts with a NUL.
func stateValue(committed stream.Mark, name string) []byte {
	b := make([]byte, 0, 14+len(name))
	b = binary.BigEndian.AppendUint64(b, committed.Offset)
	b = append(b, 0, stateValueV2)
	b = binary.BigEndian.AppendUint32(b, committed.Digest)
	return append(b, name...)
}

const stateValueV2 = 2

// parseStateValue returns a state record's committed mark; a record of the
// first version has no digest (zero).
func parseStateValue(v []byte) (stream.Mark, bool) {
	switch {
	case len(v) < 8:
		return stream.Mark{}, false
	case len(v) == 8 || v[8] != 0:
		return stream.Mark{Offset: binary.BigEndian.Uint64(v)}, true
	case len(v) < 14 || v[9] != stateValueV2:
		return stream.Mark{}, false
	}
	return stream.Mark{Offset: binary.BigEndian.Uint64(v), Digest: binary.BigEndian.Uint32(v[10:14])}, true
}

// load writes a barrier through cl and reads the state topic until it sees
// it. With transactions the barrier is a transaction of its own and the
// read is read_committed: everything committed before it has been seen, and
// cl's InitProducerID has already aborted what a previous instance left
// open, so the result is exactly the committed state.
func (o *Output) load(ctx context.Context, cl *kgo.Client) (map[stream.Key]stream.Mark, error) {
	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce) // never returns an error (crypto/rand docs)
	barrier := &kgo.Record{Topic: o.cfg.StateTopic, Key: o.barrierKey(), Value: nonce}
	if o.cfg.Transactions {
		if err := cl.BeginTransaction(); err != nil {
			return nil, fmt.Errorf("begin barrier transaction: %w", err)
		}
		perr := cl.ProduceSync(ctx, barrier).FirstErr()
		end := kgo.TryCommit
		if perr != nil {
			end = kgo.TryAbort
		}
		if err := errors.Join(perr, cl.EndTransaction(ctx, end)); err != nil {
			return nil, fmt.Errorf("write barrier: %w", err)
		}
	} else if err := cl.ProduceSync(ctx, barrier).FirstErr(); err != nil {
		return nil, fmt.Errorf("write barrier: %w", err)
	}

	opts := append(o.clientOpts(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{o.cfg.StateTopic: {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchMaxWait(250*time.Millisecond),
	)
	if o.cfg.Transactions {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	cons, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	defer cons.Close()
	state := make(map[stream.Key]stream.Mark)
	bkey := o.barrierKey()
	for {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("read state topic %s: %w", o.cfg.StateTopic, err)
		}
		var fatal error
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				o.log.Debug("state topic fetch failed; retrying", "err", err)
			}
			if errors.Is(err, kgo.ErrClientClosed) {
				fatal = err
			}
		})
		if fatal != nil {
			return nil, fatal
		}
		done := false
		fs.EachRecord(func(r *kgo.Record) {
			if done {
				return
			}
			if bytes.Equal(r.Key, bkey) {
				done = bytes.Equal(r.Value, nonce)
				return
			}
			k, ok := o.parseStateKey(r.Key)
			m, valid := parseStateValue(r.Value)
			switch {
			case !ok:
			case r.Value == nil:
				delete(state, k)
			case valid:
				state[k] = m
			default:
				o.log.Warn("corrupt state record ignored", "stream", k, "bytes", len(r.Value))
			}
		})
		if done {
			return state, nil
		}
	}
}
