package scheduler

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"go.yaml.in/yaml/v3"

	"github.com/blixard/blixard/executor"
	"github.com/blixard/blixard/scheduler/constraint"
)

// Limits on a job spec. A spec that exceeds one is refused with an error
// that names the field and the limit.
const (
	MaxSpecBytes    = 4 << 20
	MaxNameLen      = 128
	MaxArgs         = 256
	MaxCommandBytes = 256 << 10
	MaxEnv          = 256
	MaxEnvKeyLen    = 256
	MaxEnvBytes     = 256 << 10
	MaxRequire      = 64
	MaxTimeout      = 7 * 24 * time.Hour
	MaxRetries      = 100
	MaxPayloadBytes = 1 << 20
	MaxStdinBytes   = 1 << 20
	MaxImageLen     = 512
	MaxWorkdirLen   = 1024
	MaxModuleBytes  = 12 << 20
	MaxPayloadDepth = 512
)

// DefaultBackoff is the delay before the first retry when a spec sets
// retries but no backoff; each later retry doubles it, up to MaxBackoff.
const (
	DefaultBackoff = time.Second
	MaxBackoff     = 5 * time.Minute
)

// Spec is a job as a user writes it: in YAML or JSON, one job per file.
// Blixard never interprets Payload; it travels with the job.
type Spec struct {
	Name     string            `json:"name,omitempty" yaml:"name"`
	Executor string            `json:"executor,omitempty" yaml:"executor"`
	Command  []string          `json:"command,omitempty" yaml:"command"`
	Env      map[string]string `json:"env,omitempty" yaml:"env"`
	Require  []string          `json:"require,omitempty" yaml:"require"`
	Timeout  Duration          `json:"timeout,omitempty" yaml:"timeout"`
	// Grace is the time between the polite and the forced stop of a task
	// that timed out or was cancelled; zero means executor.DefaultGrace.
	Grace   Duration `json:"grace,omitempty" yaml:"grace"`
	Retries int      `json:"retries,omitempty" yaml:"retries"`
	Backoff Duration `json:"backoff,omitempty" yaml:"backoff"`

	Image   string `json:"image,omitempty" yaml:"image"`
	Workdir string `json:"workdir,omitempty" yaml:"workdir"`
	// MountWorkdir grants a docker or wasm task the attempt's fresh
	// working directory, at this path inside the container or module.
	// Empty grants no directory.
	MountWorkdir string    `json:"mount_workdir,omitempty" yaml:"mount_workdir"`
	Module       string    `json:"module,omitempty" yaml:"module"`
	Stdin        string    `json:"stdin,omitempty" yaml:"stdin"`
	Resources    Resources `json:"resources,omitzero" yaml:"resources"`

	Payload json.RawMessage `json:"payload,omitempty" yaml:"-"`
}

// Resources are what a job reserves on the peer that runs it.
type Resources struct {
	CPU    float64  `json:"cpu,omitempty" yaml:"cpu"`
	Memory ByteSize `json:"memory,omitempty" yaml:"memory"`
}

// IsZero reports whether r reserves nothing.
func (r Resources) IsZero() bool { return r.CPU == 0 && r.Memory == 0 }

// Duration is a time.Duration written as "30s" or "1m30s".
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string such as "1m30s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration such as \"30s\"")
	}
	return d.parse(s)
}

// UnmarshalYAML reads a duration string such as "1m30s".
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("want a duration such as \"30s\"")
	}
	return d.parse(n.Value)
}

func (d *Duration) parse(s string) error {
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%q is not a duration such as \"30s\"", s)
	}
	*d = Duration(v)
	return nil
}

// ByteSize is a size in bytes, written as 536870912, "512MiB" or "1GB".
type ByteSize int64

// MarshalJSON writes b as a number of bytes.
func (b ByteSize) MarshalJSON() ([]byte, error) {
	return json.Marshal(int64(b))
}

// UnmarshalJSON reads a number of bytes or a size string.
func (b *ByteSize) UnmarshalJSON(data []byte) error {
	var n int64
	if err := json.Unmarshal(data, &n); err == nil {
		*b = ByteSize(n)
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("want a size such as \"512MiB\"")
	}
	return b.parse(s)
}

// UnmarshalYAML reads a number of bytes or a size string.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("want a size such as \"512MiB\"")
	}
	return b.parse(n.Value)
}

func (b *ByteSize) parse(s string) error {
	v, err := humanize.ParseBytes(strings.TrimSpace(s))
	if err != nil || v > 1<<62 {
		return fmt.Errorf("%q is not a size such as \"512MiB\"", s)
	}
	*b = ByteSize(v)
	return nil
}

// String formats b in IEC units.
func (b ByteSize) String() string { return humanize.IBytes(uint64(b)) }

var (
	nameRe     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	executorRe = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)
	envKeyRe   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// ParseSpec reads one job spec in YAML or JSON and validates it. Fields it
// does not know are an error, and so is more than one document.
func ParseSpec(data []byte) (Spec, error) {
	spec, err := DecodeSpec(data)
	if err != nil {
		return Spec{}, err
	}
	if err := spec.Validate(); err != nil {
		return Spec{}, err
	}
	return spec, nil
}

// DecodeSpec reads one job spec in YAML or JSON without validating its
// values, for callers that resolve fields first (a module path the CLI
// replaces by its hash). Unknown fields are still an error.
func DecodeSpec(data []byte) (Spec, error) {
	if len(data) > MaxSpecBytes {
		return Spec{}, fmt.Errorf("spec: %d bytes, limit %d", len(data), MaxSpecBytes)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return Spec{}, errors.New("spec: empty")
	}
	if trimmed := bytes.TrimSpace(data); trimmed[0] == '{' {
		return decodeJSONSpec(trimmed)
	}
	var s specDoc
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		if errors.Is(err, io.EOF) {
			return Spec{}, errors.New("spec: empty")
		}
		return Spec{}, fmt.Errorf("spec: %s", yamlError(err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return Spec{}, errors.New("spec: more than one document; one job per file")
	}
	return s.spec()
}

// decodeJSONSpec reads a spec written as JSON with encoding/json, so that
// JSON escapes, control characters and big numbers in the payload come
// through exactly.
func decodeJSONSpec(data []byte) (Spec, error) {
	var s Spec
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(&s); err != nil {
		msg := err.Error()
		if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
			msg = "field " + strings.Trim(f, `"`) + " not found in the spec"
		}
		return Spec{}, fmt.Errorf("spec: %s", strings.ReplaceAll(msg, "scheduler.Spec", "the spec"))
	}
	if dec.More() {
		return Spec{}, errors.New("spec: data after the JSON object; one job per file")
	}
	if len(s.Payload) > 0 {
		var buf bytes.Buffer
		if err := json.Compact(&buf, s.Payload); err == nil {
			s.Payload = buf.Bytes()
		}
	}
	return s, nil
}

// specDoc is Spec as the YAML decoder sees it: the payload is any YAML
// value, turned into JSON afterwards.
type specDoc struct {
	Spec    `yaml:",inline"`
	Payload any `yaml:"payload"`
}

func (d specDoc) spec() (Spec, error) {
	s := d.Spec
	if d.Payload == nil {
		return s, nil
	}
	b, err := json.Marshal(jsonable(d.Payload))
	if err != nil {
		return Spec{}, fmt.Errorf("spec: payload: %v", err)
	}
	s.Payload = b
	return s, nil
}

// jsonable turns the map[any]any a YAML decoder may produce into values
// encoding/json accepts.
func jsonable(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = jsonable(e)
		}
		return v
	case map[any]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[fmt.Sprint(k)] = jsonable(e)
		}
		return m
	case []any:
		for i, e := range v {
			v[i] = jsonable(e)
		}
		return v
	default:
		return v
	}
}

// yamlError shortens the decoder's messages to one line.
func yamlError(err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: ")
	msg = strings.ReplaceAll(msg, "unmarshal errors:\n  ", "")
	msg = strings.ReplaceAll(msg, "\n  ", "; ")
	msg = strings.ReplaceAll(msg, "in type scheduler.specDoc", "in the spec")
	return msg
}

// Normalize fills defaults: the exec executor and a name derived from the
// command.
func (s *Spec) Normalize() {
	if s.Executor == "" {
		s.Executor = "exec"
	}
	if s.Name == "" {
		switch {
		case len(s.Command) > 0:
			s.Name = sanitizeName(filepath.Base(s.Command[0]))
		case s.Image != "":
			s.Name = sanitizeName(s.Image)
		default:
			s.Name = s.Executor
		}
	}
}

func sanitizeName(s string) string {
	var b strings.Builder
	for _, r := range s {
		ok := r == '.' || r == '_' || r == '-' ||
			(r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') ||
			(r >= '0' && r <= '9')
		if !ok {
			r = '-'
		}
		b.WriteRune(r)
		if b.Len() >= MaxNameLen {
			break
		}
	}
	out := strings.TrimLeft(b.String(), "._-")
	if out == "" {
		return "job"
	}
	return out
}

// Validate checks every field against its limit and returns the first
// problem, naming the field. It normalizes s first.
func (s *Spec) Validate() error {
	s.Normalize()
	checks := []func() error{
		s.validateName, s.validateExecutor, s.validateCommand,
		s.validateEnv, s.validateRequire, s.validateTimes,
		s.validateExecutorFields, s.validateData,
	}
	for _, check := range checks {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

func (s *Spec) validateName() error {
	if len(s.Name) > MaxNameLen {
		return fmt.Errorf("name: %d characters, limit %d", len(s.Name), MaxNameLen)
	}
	if !nameRe.MatchString(s.Name) {
		return fmt.Errorf("name: %q: want letters, digits, '.', '_' or '-'", s.Name)
	}
	return nil
}

func (s *Spec) validateExecutor() error {
	if !executorRe.MatchString(s.Executor) {
		return fmt.Errorf("executor: %q: want a lowercase name such as exec, docker or wasm", s.Executor)
	}
	return nil
}

func (s *Spec) validateCommand() error {
	if len(s.Command) > MaxArgs {
		return fmt.Errorf("command: %d arguments, limit %d", len(s.Command), MaxArgs)
	}
	total := 0
	for i, a := range s.Command {
		total += len(a)
		if strings.IndexByte(a, 0) >= 0 {
			return fmt.Errorf("command[%d]: contains a NUL byte", i)
		}
	}
	if total > MaxCommandBytes {
		return fmt.Errorf("command: %d bytes, limit %d", total, MaxCommandBytes)
	}
	switch s.Executor {
	case "exec":
		if len(s.Command) == 0 || s.Command[0] == "" {
			return errors.New("command: required for executor exec")
		}
	case "noop":
		if err := executor.ValidateNoop(s.Command); err != nil {
			return err
		}
	}
	return nil
}

func (s *Spec) validateEnv() error {
	if len(s.Env) > MaxEnv {
		return fmt.Errorf("env: %d variables, limit %d", len(s.Env), MaxEnv)
	}
	total := 0
	for k, v := range s.Env {
		if len(k) > MaxEnvKeyLen || !envKeyRe.MatchString(k) {
			return fmt.Errorf("env: %q is not a variable name (letters, digits, '_', at most %d)", k, MaxEnvKeyLen)
		}
		if strings.IndexByte(v, 0) >= 0 {
			return fmt.Errorf("env.%s: contains a NUL byte", k)
		}
		total += len(k) + len(v)
	}
	if total > MaxEnvBytes {
		return fmt.Errorf("env: %d bytes, limit %d", total, MaxEnvBytes)
	}
	return nil
}

func (s *Spec) validateRequire() error {
	if len(s.Require) > MaxRequire {
		return fmt.Errorf("require: %d constraints, limit %d", len(s.Require), MaxRequire)
	}
	_, err := constraint.ParseAll(s.Require)
	return err
}

func (s *Spec) validateTimes() error {
	for _, f := range []struct {
		name string
		d    Duration
	}{{"timeout", s.Timeout}, {"grace", s.Grace}, {"backoff", s.Backoff}} {
		if f.d < 0 {
			return fmt.Errorf("%s: %s is negative", f.name, f.d.D())
		}
		if f.d.D() > MaxTimeout {
			return fmt.Errorf("%s: %s, limit %s", f.name, f.d.D(), MaxTimeout)
		}
	}
	if s.Retries < 0 || s.Retries > MaxRetries {
		return fmt.Errorf("retries: %d, want 0 to %d", s.Retries, MaxRetries)
	}
	return nil
}

func (s *Spec) validateExecutorFields() error {
	if len(s.Image) > MaxImageLen || strings.ContainsAny(s.Image, " \t\n") {
		return fmt.Errorf("image: %q: want an image reference of at most %d characters", s.Image, MaxImageLen)
	}
	if s.Executor == "docker" && s.Image == "" {
		return errors.New("image: required for executor docker")
	}
	if len(s.Workdir) > MaxWorkdirLen {
		return fmt.Errorf("workdir: %d characters, limit %d", len(s.Workdir), MaxWorkdirLen)
	}
	if m := s.MountWorkdir; m != "" && (len(m) > MaxWorkdirLen ||
		!strings.HasPrefix(m, "/") || strings.Contains(m, "..")) {
		return fmt.Errorf("mount_workdir: %q: want an absolute path without "+
			"'..', at most %d characters", m, MaxWorkdirLen)
	}
	if s.Executor == "wasm" && s.Module == "" {
		return errors.New("module: required for executor wasm")
	}
	if s.Module != "" && !strings.HasPrefix(s.Module, modulePrefix) {
		return fmt.Errorf("module: %q: the CLI replaces a module path with "+
			"its %s hash before submitting", s.Module, modulePrefix)
	}
	if s.Module != "" && !validModuleRef(s.Module) {
		return fmt.Errorf("module: %q: want %s followed by 64 hex digits", s.Module, modulePrefix)
	}
	r := s.Resources
	if !(r.CPU >= 0 && r.CPU <= 1024) { // also refuses NaN
		return fmt.Errorf("resources.cpu: %s, want 0 to 1024", strconv.FormatFloat(r.CPU, 'g', -1, 64))
	}
	if r.Memory < 0 {
		return fmt.Errorf("resources.memory: %d is negative", r.Memory)
	}
	return nil
}

func (s *Spec) validateData() error {
	if len(s.Payload) > MaxPayloadBytes {
		return fmt.Errorf("payload: %d bytes, limit %d", len(s.Payload), MaxPayloadBytes)
	}
	if len(s.Payload) > 0 && !json.Valid(s.Payload) {
		return errors.New("payload: not valid JSON")
	}
	if d := jsonDepth(s.Payload); d > MaxPayloadDepth {
		return fmt.Errorf("payload: nested %d levels deep, limit %d", d, MaxPayloadDepth)
	}
	if len(s.Stdin) > MaxStdinBytes {
		return fmt.Errorf("stdin: %d bytes, limit %d", len(s.Stdin), MaxStdinBytes)
	}
	return nil
}

// modulePrefix introduces the content hash of a WASM module in a spec.
const modulePrefix = "sha256:"

func validModuleRef(s string) bool {
	h := strings.TrimPrefix(s, modulePrefix)
	if len(h) != 64 {
		return false
	}
	for _, c := range h {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// SpecError is returned by Peer.Submit for a spec it refuses.
type SpecError struct{ Err error }

func (e *SpecError) Error() string { return e.Err.Error() }

// Unwrap returns the validation error.
func (e *SpecError) Unwrap() error { return e.Err }

// jsonDepth returns how deeply arrays and objects nest in valid JSON.
func jsonDepth(b []byte) int {
	depth, deepest, inString, escaped := 0, 0, false, false
	for _, c := range b {
		switch {
		case escaped:
			escaped = false
		case inString:
			escaped = c == '\\'
			inString = c != '"'
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			depth++
			deepest = max(deepest, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}
