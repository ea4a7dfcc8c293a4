package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Noop is the noop adapter, for tests and benchmarks: it runs no process
// and acts out a task from directives in its Command. Each element is one
// of
//
//	sleep=DURATION  wait, as time.ParseDuration reads DURATION (>= 0)
//	exit=N          end with exit status N (0 to 255) once all are done
//	stdout=TEXT     write TEXT to stdout, as given, no newline added
//	stderr=TEXT     write TEXT to stderr, likewise
//
// applied in order. An empty Command succeeds at once. A sleep honours
// the task's Timeout and the context with the Results exec gives.
//
// Noop implements [Executor]. It is safe for concurrent use.
type Noop struct{}

var _ Executor = (*Noop)(nil)

// NewNoop returns a noop adapter.
func NewNoop() *Noop { return &Noop{} }

// Name returns "noop".
func (n *Noop) Name() string { return "noop" }

// Probe reports that noop can always be used. It does not block.
func (n *Noop) Probe(ctx context.Context) (Info, error) { return Info{}, nil }

// noopStep is one parsed directive.
type noopStep struct {
	kind  string // "sleep", "exit", "stdout" or "stderr"
	sleep time.Duration
	exit  int
	text  string
}

// ValidateNoop reports whether command is a valid list of noop
// directives, naming the first bad one. It does not block.
func ValidateNoop(command []string) error {
	_, err := parseNoop(command)
	return err
}

// parseNoop parses command into steps.
func parseNoop(command []string) ([]noopStep, error) {
	steps := make([]noopStep, 0, len(command))
	for i, d := range command {
		s, err := parseDirective(d)
		if err != nil {
			return nil, fmt.Errorf("noop: command[%d] %q: %w", i, d, err)
		}
		steps = append(steps, s)
	}
	return steps, nil
}

// parseDirective parses one KEY=VALUE directive. Its error is a phrase
// for parseNoop to place after the directive.
func parseDirective(d string) (noopStep, error) {
	key, val, _ := strings.Cut(d, "=")
	s := noopStep{kind: key}
	switch key {
	case "stdout", "stderr":
		s.text = val
	case "sleep":
		dur, err := time.ParseDuration(val)
		if err != nil {
			return s, errors.New("bad duration; want one such as 1s " +
				"or 250ms")
		}
		if dur < 0 {
			return s, errors.New("negative duration; want >= 0")
		}
		s.sleep = dur
	case "exit":
		n, err := strconv.Atoi(val)
		if err != nil || n < 0 || n > 255 {
			return s, errors.New("bad exit status; want 0 to 255")
		}
		s.exit = n
	default:
		return s, errors.New("unknown directive; want sleep=, exit=, " +
			"stdout= or stderr=")
	}
	return s, nil
}

// Run acts out t.Command and blocks until its sleeps are done, the
// timeout passes or ctx is done. A bad directive is an error and nothing
// runs.
func (n *Noop) Run(ctx context.Context, t Task) (Result, error) {
	steps, err := parseNoop(t.Command)
	if err != nil {
		return Result{ExitCode: ExitNotRun, Reason: err.Error()}, err
	}
	if ctx.Err() != nil {
		res, _ := stoppedResult(stopCancel, 0)
		return res, nil
	}
	if t.Started != nil {
		t.Started(fmt.Sprintf("noop:%s:%d", t.JobID, t.Attempt))
	}

	var expired <-chan time.Time
	if t.Timeout > 0 {
		timer := time.NewTimer(t.Timeout)
		defer timer.Stop()
		expired = timer.C
	}
	code := 0
	for _, s := range steps {
		switch s.kind {
		case "stdout":
			write(t.Stdout, s.text)
		case "stderr":
			write(t.Stderr, s.text)
		case "exit":
			code = s.exit
		case "sleep":
			if reason := sleep(ctx, s.sleep, expired); reason != stopNone {
				res, _ := stoppedResult(reason, t.Timeout)
				return res, nil
			}
		}
	}
	return exitResult(code), nil
}

// write writes text to w, if w is not nil. Like a process whose output
// nobody reads, a noop task does not fail when its output is lost.
func write(w io.Writer, text string) {
	if w != nil {
		_, _ = io.WriteString(w, text)
	}
}

// sleep waits for d and returns stopNone, or returns why it stopped early.
func sleep(ctx context.Context, d time.Duration,
	expired <-chan time.Time) stopReason {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return stopNone
	case <-expired:
		return stopTimeout
	case <-ctx.Done():
		return stopCancel
	}
}
