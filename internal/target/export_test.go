package target

// SetParallelSyncs sets how many fsyncs a commit runs at once and returns
// the previous value.
func SetParallelSyncs(n int) int {
	old := maxParallelSyncs
	maxParallelSyncs = n
	return old
}
