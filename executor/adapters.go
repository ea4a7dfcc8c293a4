package executor

import (
	"fmt"
	"log/slog"
)

// New returns the built-in executor called name: "exec" (with the default
// ExecConfig and logger) or "noop". Adapters in sub-packages, such as
// docker, are built by their own constructors. It does not block.
func New(name string, logger *slog.Logger) (Executor, error) {
	switch name {
	case "exec":
		return NewExec(ExecConfig{Logger: logger}), nil
	case "noop":
		return NewNoop(), nil
	}
	return nil, fmt.Errorf("executor %q: unknown; want exec or noop", name)
}
