// Package plugin is the executor adapter that hands tasks to an external
// program, a plugin, over the small protocol described in PROTOCOL.md, so
// that users add backends (Kubernetes, a microVM, a cloud function, a GPU
// pool) without changing Blixard. A plugin can be written in any language,
// a POSIX shell script included.
//
// In short: `PLUGIN describe` prints what the plugin offers as one JSON
// object; `PLUGIN run -- COMMAND...` runs one task, reading it from files
// named by BLIXARD_* variables, with the task's stdin, stdout and stderr
// as its own and its exit code as the task's.
package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/blixard/blixard/executor"
)

// Protocol is the version of the plugin protocol this adapter speaks.
const Protocol = 1

// DescribeTimeout bounds a plugin's describe command.
const DescribeTimeout = 5 * time.Second

// Limits on what a plugin's describe may print.
const (
	maxDescribeOutput = 64 << 10
	maxLabels         = 64
	maxLabelKey       = 64
	maxLabelValue     = 256
	maxVersion        = 64
	// maxStderrShown bounds the part of a plugin's stderr quoted in an
	// error.
	maxStderrShown = 512
)

var (
	nameRE     = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)
	labelKeyRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]*$`)
)

// Config configures a [Plugin].
type Config struct {
	// Name is the executor name jobs select the plugin by: a lowercase
	// letter, then up to 31 lowercase letters, digits and dashes.
	Name string

	// Path is the plugin executable. A path without a slash is looked
	// up in the peer's PATH; a relative one is made absolute when New is
	// called, since the plugin runs in each task's directory.
	Path string

	// Env is added to the plugin's environment. The plugin inherits the
	// peer's environment minus every BLIXARD_* variable, then Env, then
	// the protocol's BLIXARD_* variables, later entries winning. Nil
	// adds nothing.
	Env map[string]string

	// Logger receives the adapter's logs. Nil discards them.
	Logger *slog.Logger
}

// Plugin runs tasks through an external plugin program. It implements
// [executor.Executor] and [executor.Reaper] and is safe for concurrent
// use: every task runs its own plugin process.
type Plugin struct {
	name string
	path string
	env  map[string]string
	log  *slog.Logger
	// reapGrace is how long Reap waits after SIGTERM before SIGKILL.
	reapGrace time.Duration
}

var (
	_ executor.Executor = (*Plugin)(nil)
	_ executor.Reaper   = (*Plugin)(nil)
)

// New returns a plugin executor. It checks that cfg.Name is a valid
// executor name and that cfg.Path is an executable file, and returns an
// error naming the field otherwise. It does not run the plugin; Probe
// does.
func New(cfg Config) (*Plugin, error) {
	if !nameRE.MatchString(cfg.Name) {
		return nil, fmt.Errorf("plugin config: name %q: want a lowercase "+
			"letter, then up to 31 of a-z, 0-9 and '-'", cfg.Name)
	}
	path, err := resolvePath(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("plugin config: path %q: %w", cfg.Path, err)
	}
	for k, v := range cfg.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") ||
			strings.IndexByte(v, 0) >= 0 {
			return nil, fmt.Errorf("plugin config: env %q: a name must be "+
				"non-empty without '=' or NUL, a value without NUL", k)
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Plugin{
		name:      cfg.Name,
		path:      path,
		env:       cfg.Env,
		log:       log.With("component", "executor", "executor", cfg.Name),
		reapGrace: executor.DefaultGrace,
	}, nil
}

// resolvePath returns the absolute path of the executable p.
func resolvePath(p string) (string, error) {
	if p == "" {
		return "", errors.New("empty")
	}
	if !strings.Contains(p, "/") {
		found, err := exec.LookPath(p)
		if err != nil {
			return "", err
		}
		p = found
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(abs)
	switch {
	case err != nil:
		return "", err
	case !fi.Mode().IsRegular():
		return "", errors.New("not a regular file")
	case fi.Mode()&0o111 == 0:
		return "", errors.New("not executable (no x bit)")
	}
	return abs, nil
}

// Name returns the name from Config.Name.
func (p *Plugin) Name() string { return p.name }

// Path returns the absolute path of the plugin executable.
func (p *Plugin) Path() string { return p.path }

// description is what `PLUGIN describe` prints.
type description struct {
	Protocol int               `json:"protocol"`
	Name     string            `json:"name"`
	Version  string            `json:"version"`
	Labels   map[string]string `json:"labels"`
}

// Probe runs `PLUGIN describe` and returns the version and labels it
// prints. It blocks for at most DescribeTimeout (less if ctx ends
// sooner). A plugin that exits non-zero, prints no valid description or
// speaks another protocol version yields an error wrapping
// [executor.ErrUnavailable] that quotes its stderr. Nothing is cached:
// each call runs the plugin again.
func (p *Plugin) Probe(ctx context.Context) (executor.Info, error) {
	if err := supported(); err != nil {
		return executor.Info{}, p.unavailable(err)
	}
	ctx, cancel := context.WithTimeout(ctx, DescribeTimeout)
	defer cancel()
	stdout, err := p.describe(ctx)
	if err != nil {
		return executor.Info{}, p.unavailable(err)
	}
	d, err := parseDescription(stdout)
	if err != nil {
		return executor.Info{}, p.unavailable(err)
	}
	if d.Name != "" && d.Name != p.name {
		p.log.Debug("plugin describes itself by another name",
			"described_name", d.Name)
	}
	return executor.Info{Version: d.Version, Labels: d.Labels}, nil
}

func (p *Plugin) unavailable(err error) error {
	return fmt.Errorf("plugin %s: describe: %w: %w", p.name, err,
		executor.ErrUnavailable)
}

// describe runs the describe command and returns its stdout.
func (p *Plugin) describe(ctx context.Context) ([]byte, error) {
	var stdout, stderr limitedBuffer
	stdout.max, stderr.max = maxDescribeOutput, maxStderrShown
	cmd := exec.CommandContext(ctx, p.path, "describe")
	cmd.Env = p.environ(map[string]string{
		"BLIXARD_PROTOCOL": fmt.Sprint(Protocol)})
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	setGroup(cmd)
	cmd.Cancel = func() error {
		return executor.KillGroup(cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = time.Second

	err := cmd.Run()
	if cmd.Process != nil {
		// Nothing the describe command started may outlive it.
		_ = executor.KillGroup(cmd.Process.Pid, syscall.SIGKILL)
	}
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return nil, fmt.Errorf("no answer within %s%s", DescribeTimeout,
			stderr.quote())
	case ctx.Err() != nil:
		return nil, fmt.Errorf("interrupted: %w", ctx.Err())
	case err != nil:
		return nil, fmt.Errorf("%w%s", err, stderr.quote())
	case stdout.overflow:
		return nil, fmt.Errorf("output longer than %d bytes",
			maxDescribeOutput)
	}
	return stdout.Bytes(), nil
}

// parseDescription checks what describe printed against the limits.
func parseDescription(b []byte) (description, error) {
	var d description
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&d); err != nil {
		return d, fmt.Errorf("output is not a JSON object: %w (got %q)",
			err, clip(b, 80))
	}
	if dec.More() {
		return d, errors.New("output has more than one JSON value")
	}
	switch {
	case d.Protocol != Protocol:
		return d, fmt.Errorf("protocol %d: want %d", d.Protocol, Protocol)
	case len(d.Version) > maxVersion:
		return d, fmt.Errorf("version is longer than %d bytes", maxVersion)
	case strings.ContainsFunc(d.Version, isSpaceOrControl):
		return d, fmt.Errorf("version %q has spaces or control "+
			"characters", d.Version)
	case len(d.Labels) > maxLabels:
		return d, fmt.Errorf("%d labels: at most %d", len(d.Labels),
			maxLabels)
	}
	for k, v := range d.Labels {
		switch {
		case len(k) > maxLabelKey || !labelKeyRE.MatchString(k):
			return d, fmt.Errorf("label key %q: want at most %d of "+
				"A-Z a-z 0-9 . _ / -, starting with a letter or digit",
				clip([]byte(k), 80), maxLabelKey)
		case len(v) > maxLabelValue:
			return d, fmt.Errorf("label %s: value longer than %d bytes",
				k, maxLabelValue)
		case strings.ContainsFunc(v, isControl):
			return d, fmt.Errorf("label %s: value has control characters",
				k)
		}
	}
	return d, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

func isSpaceOrControl(r rune) bool { return r == ' ' || isControl(r) }

// environ returns the plugin's environment: the peer's without BLIXARD_*
// variables, then p.env, then proto.
func (p *Plugin) environ(proto map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BLIXARD_") {
			env = append(env, kv)
		}
	}
	for k, v := range p.env {
		env = append(env, k+"="+v)
	}
	for k, v := range proto {
		env = append(env, k+"="+v)
	}
	// os/exec keeps the last value of a duplicated name.
	return env
}

// limitedBuffer keeps the first max bytes written to it and notes that
// more came.
type limitedBuffer struct {
	bytes.Buffer
	max      int
	overflow bool
}

// Write keeps what fits and reports success, so the writer is drained.
func (b *limitedBuffer) Write(p []byte) (int, error) {
	room := b.max - b.Len()
	if len(p) > room {
		b.overflow = true
		b.Buffer.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

// quote returns " (stderr: ...)" with the start of the buffer's text on
// one line, or "" when the buffer holds only white space.
func (b *limitedBuffer) quote() string {
	s := strings.TrimSpace(b.String())
	if s == "" {
		return ""
	}
	s = strings.Join(strings.Fields(s), " ")
	return fmt.Sprintf(" (stderr: %s)", clip([]byte(s), 200))
}

// clip returns b as a string of at most n bytes, marking a cut with "...".
func clip(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "..."
}
