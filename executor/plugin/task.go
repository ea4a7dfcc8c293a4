package plugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/blixard/blixard/executor"
)

// maxResultFile bounds the result file a plugin may write.
const maxResultFile = 64 << 10

// maxReason bounds the reason taken from a result file.
const maxReason = 512

// shellNameRE matches the env names a POSIX shell can export.
var shellNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// taskFile is the JSON document BLIXARD_TASK names.
type taskFile struct {
	Protocol   int               `json:"protocol"`
	JobID      string            `json:"job_id"`
	Attempt    int               `json:"attempt"`
	Command    []string          `json:"command"`
	Env        map[string]string `json:"env"`
	Dir        string            `json:"dir"`
	Workdir    string            `json:"workdir"`
	Image      string            `json:"image"`
	Module     string            `json:"module"`
	ModuleHash string            `json:"module_hash"`
	Mounts     []mountFile       `json:"mounts"`
	Resources  resourcesFile     `json:"resources"`
	TimeoutMS  int64             `json:"timeout_ms"`
	GraceMS    int64             `json:"grace_ms"`
	Payload    json.RawMessage   `json:"payload"`
}

type mountFile struct {
	Source   string `json:"source"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"read_only"`
}

type resourcesFile struct {
	CPU    float64 `json:"cpu"`
	Memory int64   `json:"memory"`
}

// resultFile is the JSON document a plugin may write to BLIXARD_RESULT.
type resultFile struct {
	Reason string `json:"reason"`
	NotRun bool   `json:"not_run"`
}

// taskFiles is the per-run directory holding the protocol files.
type taskFiles struct {
	dir     string
	task    string // BLIXARD_TASK
	env     string // BLIXARD_TASK_ENV
	payload string // BLIXARD_PAYLOAD
	result  string // BLIXARD_RESULT, written by the plugin if at all
}

// grace returns the time between SIGTERM and SIGKILL for t.
func grace(t executor.Task) int64 {
	g := t.Grace
	if g <= 0 {
		g = executor.DefaultGrace
	}
	return g.Milliseconds()
}

// writeTaskFiles checks t and writes the protocol files for it into a
// fresh private directory. The caller removes it with remove.
func writeTaskFiles(t executor.Task) (*taskFiles, error) {
	if err := validateTask(t); err != nil {
		return nil, err
	}
	doc, err := json.MarshalIndent(newTaskFile(t), "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode task: %w", err)
	}

	dir, err := os.MkdirTemp("", "blixard-plugin-")
	if err != nil {
		return nil, fmt.Errorf("create task files: %w", err)
	}
	f := &taskFiles{
		dir:     dir,
		task:    filepath.Join(dir, "task.json"),
		env:     filepath.Join(dir, "env.sh"),
		payload: filepath.Join(dir, "payload.json"),
		result:  filepath.Join(dir, "result.json"),
	}
	err = errors.Join(
		os.WriteFile(f.task, append(doc, '\n'), 0o600),
		os.WriteFile(f.env, shellEnv(t.Env), 0o600),
		os.WriteFile(f.payload, t.Payload, 0o600),
	)
	if err != nil {
		f.remove()
		return nil, fmt.Errorf("write task files: %w", err)
	}
	return f, nil
}

func (f *taskFiles) remove() { _ = os.RemoveAll(f.dir) }

// environ returns the protocol variables of a run.
func (f *taskFiles) environ(t executor.Task) map[string]string {
	return map[string]string{
		"BLIXARD_PROTOCOL":   strconv.Itoa(Protocol),
		"BLIXARD_TASK":       f.task,
		"BLIXARD_TASK_ENV":   f.env,
		"BLIXARD_PAYLOAD":    f.payload,
		"BLIXARD_RESULT":     f.result,
		"BLIXARD_JOB_ID":     t.JobID,
		"BLIXARD_ATTEMPT":    strconv.Itoa(t.Attempt),
		"BLIXARD_DIR":        t.Dir,
		"BLIXARD_WORKDIR":    t.Workdir,
		"BLIXARD_IMAGE":      t.Image,
		"BLIXARD_CPU":        strconv.FormatFloat(t.Resources.CPU, 'f', -1, 64),
		"BLIXARD_MEMORY":     strconv.FormatInt(t.Resources.Memory, 10),
		"BLIXARD_TIMEOUT_MS": strconv.FormatInt(t.Timeout.Milliseconds(), 10),
		"BLIXARD_GRACE_MS":   strconv.FormatInt(grace(t), 10),
	}
}

func validateTask(t executor.Task) error {
	switch {
	case !filepath.IsAbs(t.Dir):
		return fmt.Errorf("dir %q: must be an absolute directory", t.Dir)
	case len(t.Payload) > 0 && !json.Valid(t.Payload):
		return errors.New("payload: not valid JSON")
	case t.Timeout < 0:
		return fmt.Errorf("timeout %s: must not be negative", t.Timeout)
	}
	for i, a := range t.Command {
		if strings.IndexByte(a, 0) >= 0 {
			return fmt.Errorf("command[%d]: must not contain NUL", i)
		}
	}
	for k, v := range t.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") ||
			strings.IndexByte(v, 0) >= 0 {
			return fmt.Errorf("env key %q: must be non-empty and contain "+
				"no '=' or NUL, and its value no NUL", k)
		}
	}
	return nil
}

func newTaskFile(t executor.Task) taskFile {
	f := taskFile{
		Protocol:   Protocol,
		JobID:      t.JobID,
		Attempt:    t.Attempt,
		Command:    t.Command,
		Env:        t.Env,
		Dir:        t.Dir,
		Workdir:    t.Workdir,
		Image:      t.Image,
		Module:     t.Module,
		ModuleHash: t.ModuleHash,
		Mounts:     make([]mountFile, len(t.Mounts)),
		Resources:  resourcesFile{t.Resources.CPU, t.Resources.Memory},
		TimeoutMS:  t.Timeout.Milliseconds(),
		GraceMS:    grace(t),
		Payload:    t.Payload,
	}
	if f.Command == nil {
		f.Command = []string{}
	}
	if f.Env == nil {
		f.Env = map[string]string{}
	}
	if len(f.Payload) == 0 {
		f.Payload = json.RawMessage("null")
	}
	for i, m := range t.Mounts {
		f.Mounts[i] = mountFile{m.Source, m.Target, m.ReadOnly}
	}
	return f
}

// shellEnv renders env as POSIX shell `export` lines, sorted by name.
// Names a shell cannot export are left out (they are in task.json).
func shellEnv(env map[string]string) []byte {
	keys := make([]string, 0, len(env))
	for k := range env {
		if shellNameRE.MatchString(k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		quoted := strings.ReplaceAll(env[k], "'", `'\''`)
		fmt.Fprintf(&b, "export %s='%s'\n", k, quoted)
	}
	return []byte(b.String())
}

// readResult reads the result file the plugin may have written. A missing
// file is no error.
func (f *taskFiles) readResult() (resultFile, error) {
	var r resultFile
	fh, err := os.Open(f.result)
	if errors.Is(err, os.ErrNotExist) {
		return r, nil
	} else if err != nil {
		return r, err
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, maxResultFile+1))
	if err != nil {
		return r, err
	}
	if len(b) > maxResultFile {
		return r, fmt.Errorf("result file is larger than %d bytes",
			maxResultFile)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("result file: %w", err)
	}
	r.Reason = strings.Join(strings.Fields(r.Reason), " ")
	r.Reason = clip([]byte(r.Reason), maxReason)
	return r, nil
}
