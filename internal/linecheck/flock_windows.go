package linecheck

import (
	"errors"
	"fmt"
	"os"
)

// lockShared fails: Windows has no advisory locks, and contract 2 needs
// them (README, "Platforms").
func lockShared(f *os.File) error {
	return fmt.Errorf("%w: no advisory file locks on windows", errors.ErrUnsupported)
}
