//go:build race

package harness

// Race reports whether this binary was built with -race; Binary then
// builds thunder with -race too.
const Race = true
