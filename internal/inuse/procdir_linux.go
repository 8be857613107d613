package inuse

// procDir is where OpenBy looks for processes' open files.
const procDir = "/proc"
