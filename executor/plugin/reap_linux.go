package plugin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// reapPoll is how often Reap looks at /proc while it waits for a plugin
// process to go away.
const reapPoll = 20 * time.Millisecond

// killWait bounds how long Reap waits for a process to go away after
// SIGKILL. Only a process stuck in the kernel takes that long.
const killWait = 5 * time.Second

// Reap ends the plugin process group named by handle, a handle that Run
// passed to Task.Started, if its leader still runs: SIGTERM, then SIGKILL
// after DefaultGrace. It blocks until the leader has exited, then kills
// anything left in its group. A leader already gone, or a pid now used by
// another process, count as gone. A malformed handle is an error.
// Cancelling ctx skips the rest of the grace period. Reap is safe for
// concurrent use.
func (p *Plugin) Reap(ctx context.Context, handle string) error {
	h, err := parseHandle(handle)
	if err != nil {
		return err
	}
	if h.pid == os.Getpid() || h.pgid == syscall.Getpgrp() {
		return fmt.Errorf("plugin: handle %q names this peer's own "+
			"process group", handle)
	}
	live, err := h.live()
	if err != nil {
		return err
	}
	if !live {
		// The leader is gone; members it left behind still hold the
		// group id, which no new process can take while they live.
		if h.groupHeld() {
			return killGroup(h.pgid, syscall.SIGKILL)
		}
		return nil
	}

	p.log.Info("reaping plugin process left from before", "pid", h.pid,
		"pgid", h.pgid)
	if err := h.signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("reap: %w", err)
	}
	if !h.waitGone(ctx, p.reapGrace) {
		if err := h.signal(syscall.SIGKILL); err != nil {
			return fmt.Errorf("reap: %w", err)
		}
		if !h.waitGone(context.WithoutCancel(ctx), killWait) {
			return fmt.Errorf("reap: pid %d still runs %s after SIGKILL",
				h.pid, killWait)
		}
	}
	if h.groupHeld() {
		return killGroup(h.pgid, syscall.SIGKILL)
	}
	return nil
}

// live reports whether h's process still runs: its pid exists, has h's
// start time and has not exited.
func (h procHandle) live() (bool, error) {
	st, err := readStat(h.pid)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reap pid %d: %w", h.pid, err)
	}
	return st.start == h.start && st.state != 'Z' && st.state != 'X', nil
}

// groupHeld reports whether h's pid is not taken by another process, so
// that h's group id still names h's group, or no group at all.
func (h procHandle) groupHeld() bool {
	st, err := readStat(h.pid)
	return err != nil || st.start == h.start
}

// signal sends sig to h's process group and to h's process itself, in
// case it left the group. The caller has checked that h is live.
func (h procHandle) signal(sig syscall.Signal) error {
	err := killGroup(h.pgid, sig)
	if kerr := syscall.Kill(h.pid, sig); kerr != nil &&
		!errors.Is(kerr, syscall.ESRCH) {
		err = errors.Join(err, fmt.Errorf("signal pid %d: %w", h.pid, kerr))
	}
	return err
}

// waitGone polls until h's process is no longer live, for at most d or
// until ctx is done. It reports whether the process went away.
func (h procHandle) waitGone(ctx context.Context, d time.Duration) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(reapPoll)
	defer tick.Stop()
	for {
		if live, err := h.live(); err == nil && !live {
			return true
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// procStat holds the fields of /proc/PID/stat that Reap uses.
type procStat struct {
	state byte   // field 3: R, S, D, Z, ...
	start uint64 // field 22: start time in clock ticks after boot
}

// readStat reads /proc/PID/stat of pid.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseStat(b)
}

// parseStat parses the contents of a /proc/PID/stat file. The command
// name in field 2 may hold spaces and parentheses, so fields are counted
// from the last closing parenthesis.
func parseStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, errors.New("parse stat: no command name")
	}
	// fields[0] is field 3 of the file.
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 20 {
		return procStat{}, fmt.Errorf("parse stat: %d fields after the "+
			"command name, want at least 20", len(fields))
	}
	start, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("parse stat: starttime: %w", err)
	}
	return procStat{state: fields[0][0], start: start}, nil
}
