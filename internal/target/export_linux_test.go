package target

// SyncfsTrusted is syncfsTrusted.
var SyncfsTrusted = syncfsTrusted
