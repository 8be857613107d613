package watch

import "os"

// idOf returns the zero fileID: a FileInfo from a directory listing has no
// file index on Windows. The collector does not run there (README,
// "Platforms"); this keeps the package building for the processor binary.
func idOf(os.FileInfo) fileID { return fileID{} }
