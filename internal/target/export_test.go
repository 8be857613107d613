package target

// SetParallelSyncs sets how many fsyncs a commit runs at once and returns
// the previous value.
func SetParallelSyncs(n int) int {
	old := maxParallelSyncs
	maxParallelSyncs = n
	return old
}

// CloseAcks is Close returning its acknowledgements instead of handing
// them to the owners; ReopenAcks the same for Reopen.
func CloseAcks(d *Dir) ([]Ack, error)  { return d.close() }
func ReopenAcks(d *Dir) ([]Ack, error) { return d.reopen() }
