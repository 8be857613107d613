// Package kafka is the processor's Kafka output: it writes the lines of
// collector streams to Kafka topics, one record per line, and commits them
// in groups like package target does for files.
//
// Invariant: the committed offsets recorded in the state topic and the data
// records that Kafka made visible agree. Every commit is one Kafka
// transaction that holds the data records appended since the previous
// commit together with one state record per touched stream (its committed
// source offset). Only after EndTransaction succeeded are the offsets
// acknowledged to the collectors. A transaction that did not commit is
// aborted by Kafka (explicitly, or when the next instance fences this one
// with InitProducerID), so read_committed consumers never see its records,
// and the state topic does not record its offsets: collectors resend
// exactly those lines.
//
// After a failed or ambiguous commit the output recovers as if it had just
// started: a new producer (whose InitProducerID fences the old one and
// aborts its open transaction), a fresh read of the state topic up to a
// barrier record written in a transaction of its own (so everything that
// committed before it is seen), every stream rewound to its recorded offset
// and taken from its connection, which resumes from there.
//
// Without transactions (Config.Transactions false) the producer is only
// idempotent: a commit produces and flushes the data, then the state
// records, then acknowledges. Lines of a commit that was in progress when
// the processor died or Kafka failed may then be written twice; each copy
// carries the same stream and offset headers, so consumers can drop them.
package kafka
