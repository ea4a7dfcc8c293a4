package plugin

import (
	"context"
	"syscall"

	"github.com/blixard/blixard/executor"
)

// Reap ends the plugin process group named by handle, a handle that Run
// passed to Task.Started, if its leader still runs: SIGTERM, then SIGKILL
// after DefaultGrace. It blocks until the leader has exited, then kills
// anything left in its group. A leader already gone, or a pid now used by
// another process, count as gone. A malformed handle is an error.
// Cancelling ctx skips the rest of the grace period. Reap is safe for
// concurrent use.
func (p *Plugin) Reap(ctx context.Context, handle string) error {
	h, err := executor.ParseProcHandle("plugin", handle)
	if err != nil {
		return err
	}
	live, err := h.Reapable()
	if err != nil {
		return err
	}
	if !live {
		// The leader is gone; members it left behind still hold the
		// group id, which no new process can take while they live.
		if h.GroupHeld() {
			return executor.KillGroup(h.PGID, syscall.SIGKILL)
		}
		return nil
	}

	p.log.Info("reaping plugin process left from before", "pid", h.PID,
		"pgid", h.PGID)
	return executor.ReapProcess(ctx, h, p.reapGrace)
}
