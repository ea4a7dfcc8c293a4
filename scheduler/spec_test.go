package scheduler

import (
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Known bugs that some cases below demonstrate. A case marked with one is
// skipped, so that the rest of the suite runs; remove the mark with the
// fix.
const (
	bugTypeErrors = "BUG: a value of the wrong type gets the YAML " +
		"decoder's message, which names the Go type but not the field " +
		"(spec.go yamlError)"
	bugValueErrors = "BUG: a bad duration or size names the value but " +
		"not the field (spec.go Duration.parse, ByteSize.parse)"
	bugNaNCPU = "BUG: resources.cpu .nan passes validation, and the job " +
		"record then fails to encode (spec.go validateExecutorFields)"
	bugJSONAsYAML = "BUG: JSON is read by the YAML decoder, which " +
		"refuses valid JSON (\\/, surrogate pairs, a raw DEL or C1 " +
		"control) and reads a raw U+0085 as a line break (spec.go " +
		"DecodeSpec)"
	bugJSONSize = "BUG: a spec within every field limit can exceed " +
		"MaxSpecBytes once encoding/json escapes it, so the CLI's JSON " +
		"of a valid spec is refused (spec.go DecodeSpec)"
	bugMultiLine = "BUG: the decoder's message holds the offending key " +
		"or value raw, so one with a newline makes a multi-line error " +
		"(spec.go yamlError)"
	bugJSONNumbers = "BUG: a JSON payload goes through YAML and back, " +
		"so integers past 2^53 lose digits (spec.go specDoc.spec)"
	bugYAMLDates = "BUG: an unquoted date in a YAML payload becomes an " +
		"RFC 3339 timestamp string (spec.go specDoc)"
)

// mustJSON encodes v, which holds only types encoding/json accepts.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// specOf returns a JSON spec that runs "true" with exec, with the fields
// given as key, value pairs added; a nil value removes the field.
func specOf(kv ...any) []byte {
	m := map[string]any{"command": []string{"true"}}
	for i := 0; i+1 < len(kv); i += 2 {
		k := kv[i].(string)
		if kv[i+1] == nil {
			delete(m, k)
			continue
		}
		m[k] = kv[i+1]
	}
	return mustJSON(m)
}

// strs returns n copies of s.
func strs(n int, s string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// envOf returns n variables named V0, V1, ... with value v.
func envOf(n int, v string) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m["V"+strconv.Itoa(i)] = v
	}
	return m
}

// sameJSON reports whether a and b hold the same JSON value.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("decode %q: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

const testModule = "sha256:" +
	"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

func TestParseSpecFields(t *testing.T) {
	want := Spec{
		Name:         "build-42",
		Executor:     "docker",
		Command:      []string{"make", "test"},
		Env:          map[string]string{"GOFLAGS": "-mod=mod", "CI": "true"},
		Require:      []string{"os=linux", "docker>=24"},
		Timeout:      Duration(90 * time.Second),
		Grace:        Duration(5 * time.Second),
		Retries:      3,
		Backoff:      Duration(2 * time.Second),
		Image:        "golang:1.26",
		Workdir:      "/src",
		Module:       testModule,
		MountWorkdir: "/work",
		Stdin:        "hello\n",
		Resources: Resources{
			CPU:    1.5,
			Memory: 512 << 20,
		},
		Payload: json.RawMessage(`{"a":1,"b":[true,"x"]}`),
	}
	yamlSpec := `
name: build-42
executor: docker
command: [make, test]
env:
  GOFLAGS: -mod=mod
  CI: "true"
require:
  - os=linux
  - docker>=24
timeout: 1m30s
grace: 5s
retries: 3
backoff: 2s
image: golang:1.26
workdir: /src
mount_workdir: /work
module: ` + testModule + `
stdin: |
  hello
resources:
  cpu: 1.5
  memory: 512MiB
payload:
  b: [true, "x"]
  a: 1
`
	jsonSpec := `{
  "name": "build-42", "executor": "docker", "command": ["make", "test"],
  "env": {"GOFLAGS": "-mod=mod", "CI": "true"},
  "require": ["os=linux", "docker>=24"],
  "timeout": "1m30s", "grace": "5s", "retries": 3, "backoff": "2s",
  "image": "golang:1.26", "workdir": "/src", "mount_workdir": "/work",
  "module": "` + testModule + `", "stdin": "hello\n",
  "resources": {"cpu": 1.5, "memory": 536870912},
  "payload": {"b": [true, "x"], "a": 1}
}`
	for _, tc := range []struct{ name, in string }{
		{"yaml", yamlSpec},
		{"json", jsonSpec},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSpec([]byte(tc.in))
			if err != nil {
				t.Fatalf("ParseSpec: %v", err)
			}
			if !sameJSON(t, got.Payload, want.Payload) {
				t.Errorf("payload = %s, want %s", got.Payload, want.Payload)
			}
			got.Payload = nil
			want := want
			want.Payload = nil
			if !reflect.DeepEqual(got, want) {
				t.Errorf("ParseSpec =\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestParseSpecDefaults(t *testing.T) {
	long := strings.Repeat("x", 300)
	for _, tc := range []struct {
		name         string
		in           string
		wantName     string
		wantExecutor string
	}{
		{"executor and name from the command",
			`command: [/usr/bin/python3, -c, "print(1)"]`, "python3", "exec"},
		{"name from a relative command", `command: [./bin/run.sh]`,
			"run.sh", "exec"},
		{"name kept", "name: mine\ncommand: [true]", "mine", "exec"},
		{"name from the image",
			"executor: docker\nimage: registry.local:5000/team/app:1.2",
			"registry.local-5000-team-app-1.2", "docker"},
		{"name from the executor", "executor: noop", "noop", "noop"},
		{"characters replaced", `command: ["/opt/héllo wörld"]`,
			"h-llo-w-rld", "exec"},
		{"leading punctuation dropped", `command: [.hidden]`,
			"hidden", "exec"},
		{"nothing left of the command", `command: [/]`, "job", "exec"},
		{"long command cut to the limit", `command: [` + long + `]`,
			long[:MaxNameLen], "exec"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSpec([]byte(tc.in))
			if err != nil {
				t.Fatalf("ParseSpec: %v", err)
			}
			if got.Name != tc.wantName {
				t.Errorf("name = %q, want %q", got.Name, tc.wantName)
			}
			if got.Executor != tc.wantExecutor {
				t.Errorf("executor = %q, want %q", got.Executor,
					tc.wantExecutor)
			}
		})
	}
}

func TestParseSpecPayload(t *testing.T) {
	deep := strings.Repeat("[", 100) + "1" + strings.Repeat("]", 100)
	for _, tc := range []struct {
		name string
		in   string
		want string // empty: no payload
		bug  string
	}{
		{"mapping", "payload:\n  a: 1\n  b: {c: [1, 2, {d: null}]}",
			`{"a":1,"b":{"c":[1,2,{"d":null}]}}`, ""},
		{"list", "payload: [1, two, 3.5, true, null]",
			`[1,"two",3.5,true,null]`, ""},
		{"block list", "payload:\n  - x: 1\n  - y: [a]",
			`[{"x":1},{"y":["a"]}]`, ""},
		{"string", "payload: hello", `"hello"`, ""},
		{"number", "payload: 42", `42`, ""},
		{"keys that are not strings", "payload: {1: a, true: b}",
			`{"1":"a","true":"b"}`, ""},
		{"aliases expanded", "payload: {a: &x [1, 2], b: *x}",
			`{"a":[1,2],"b":[1,2]}`, ""},
		{"unicode", "payload: {k: \"é😀\"}", `{"k":"é😀"}`, ""},
		{"deep nesting", "payload: " + deep, deep, ""},
		{"null", "payload: null", "", ""},
		{"absent", "name: x", "", ""},
		{"json object", `{"command": ["true"], "payload": {"b": 2, "a": 1}}`,
			`{"a":1,"b":2}`, ""},
		{"json nested", `{"command": ["true"],
			"payload": [{"a": [[], {}]}, "s", -1.25e3]}`,
			`[{"a":[[],{}]},"s",-1250]`, ""},
		{"date kept as written", "payload: {day: 2001-12-14}",
			`{"day":"2001-12-14"}`, bugYAMLDates},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.bug != "" {
				t.Skip(tc.bug)
			}
			in := tc.in
			if !strings.HasPrefix(in, "{") {
				in = "command: [true]\n" + in
			}
			got, err := ParseSpec([]byte(in))
			if err != nil {
				t.Fatalf("ParseSpec: %v", err)
			}
			if tc.want == "" {
				if got.Payload != nil {
					t.Errorf("payload = %s, want none", got.Payload)
				}
				return
			}
			if !json.Valid(got.Payload) {
				t.Fatalf("payload %q is not JSON", got.Payload)
			}
			if !sameJSON(t, got.Payload, []byte(tc.want)) {
				t.Errorf("payload = %s, want %s", got.Payload, tc.want)
			}
		})
	}
}

// refusal is a spec ParseSpec must refuse with a one-line error that
// names field and holds also.
type refusal struct {
	name  string
	in    []byte
	field string
	also  string
	bug   string
}

func specRefusals() []refusal {
	big := strings.Repeat("x", 128<<10+1)
	hex63 := strings.TrimPrefix(testModule, "sha256:")[:63]
	return []refusal{
		{"unknown field", []byte("command: [x]\nfoo: 1"), "foo", "not found", ""},
		{"unknown json field", specOf("timeot", "1s"), "timeot", "not found", ""},
		{"unknown resources field",
			[]byte("command: [x]\nresources: {gpu: 1}"), "gpu", "not found", ""},
		{"two unknown fields", []byte("foo: 1\ncommand: [x]\nbar: 2"),
			"foo", "bar", ""},
		{"two documents", []byte("command: [x]\n---\ncommand: [y]\n"),
			"spec", "one job per file", ""},
		{"empty", []byte(" \n\t\n"), "spec", "empty", ""},
		{"too big", []byte("command: [x]\n#" + strings.Repeat("x", MaxSpecBytes)),
			"spec", "4194304", ""},
		{"duplicate field", []byte("command: [x]\nname: a\nname: b"),
			"name", "already defined", ""},

		{"name too long", specOf("name", strings.Repeat("n", MaxNameLen+1)),
			"name", "limit 128", ""},
		{"name with space", specOf("name", "my job"), "name", "letters", ""},
		{"name with slash", specOf("name", "a/b"), "name", "letters", ""},
		{"name starting with a dash", specOf("name", "-x"), "name", "letters", ""},
		{"name not ascii", specOf("name", "jöb"), "name", "letters", ""},
		{"executor uppercase", specOf("executor", "Docker"), "executor", "lowercase", ""},
		{"executor too long", specOf("executor", strings.Repeat("e", 33)),
			"executor", "lowercase", ""},

		{"too many args", specOf("command", strs(MaxArgs+1, "a")),
			"command", "limit 256", ""},
		{"args too big", specOf("command", []string{big, big}),
			"command", "limit 262144", ""},
		{"NUL in an arg", specOf("command", []string{"echo", "a\x00b"}),
			"command[1]", "NUL", ""},
		{"exec without command", specOf("command", nil), "command", "required", ""},
		{"exec with empty command", specOf("command", []string{""}),
			"command", "required", ""},
		{"bad noop directive",
			specOf("executor", "noop", "command", []string{"bogus=1"}),
			"command[0]", "bogus", ""},
		{"command not a list", []byte("command: echo hi"), "command", "", bugTypeErrors},
		{"unknown field with a newline", []byte("command: [x]\n\"a\\nb\": 1"),
			`a\nb`, "not found", bugMultiLine},
		{"wrong type with a newline", []byte("command: [x]\nretries: \"a\\nb\""),
			"retries", "", bugMultiLine},

		{"too many env vars", specOf("env", envOf(MaxEnv+1, "v")),
			"env", "limit 256", ""},
		{"env key too long",
			specOf("env", map[string]string{strings.Repeat("K", MaxEnvKeyLen+1): "v"}),
			"env", "256", ""},
		{"env key with a dash", specOf("env", map[string]string{"A-B": "v"}),
			"env", "variable name", ""},
		{"env key with a digit first", specOf("env", map[string]string{"1A": "v"}),
			"env", "variable name", ""},
		{"empty env key", specOf("env", map[string]string{"": "v"}),
			"env", "variable name", ""},
		{"env too big", specOf("env", envOf(3, strings.Repeat("v", 100<<10))),
			"env", "limit 262144", ""},
		{"NUL in an env value", specOf("env", map[string]string{"A": "\x00"}),
			"env.A", "NUL", ""},

		{"too many constraints", specOf("require", strs(MaxRequire+1, "os=linux")),
			"require", "limit 64", ""},
		{"bad constraint", specOf("require", []string{"os=linux", "=x"}),
			"require[1]", "constraint", ""},
		{"require not a list", []byte("command: [x]\nrequire: os=linux"),
			"require", "", bugTypeErrors},

		{"negative timeout", specOf("timeout", "-1s"), "timeout", "negative", ""},
		{"timeout too long", specOf("timeout", "169h"), "timeout", "limit 168h0m0s", ""},
		{"negative grace", specOf("grace", "-1ms"), "grace", "negative", ""},
		{"grace too long", specOf("grace", "168h1s"), "grace", "limit 168h0m0s", ""},
		{"negative backoff", specOf("backoff", "-2m"), "backoff", "negative", ""},
		{"backoff too long", specOf("backoff", "10000h"), "backoff", "limit 168h0m0s", ""},
		{"timeout without unit", specOf("timeout", 30), "timeout", "30", bugValueErrors},
		{"timeout not a duration", specOf("timeout", "soon"), "timeout", "soon",
			bugValueErrors},

		{"negative retries", specOf("retries", -1), "retries", "0 to 100", ""},
		{"too many retries", specOf("retries", MaxRetries+1), "retries", "0 to 100", ""},
		{"retries not a number", specOf("retries", "three"), "retries", "", bugTypeErrors},

		{"payload too big", specOf("payload", strings.Repeat("p", MaxPayloadBytes)),
			"payload", "limit 1048576", ""},
		{"payload infinite", []byte("command: [x]\npayload: {a: .inf}"),
			"payload", "Inf", ""},
		{"stdin too big", specOf("stdin", strings.Repeat("s", MaxStdinBytes+1)),
			"stdin", "limit 1048576", ""},

		{"image too long",
			specOf("executor", "docker", "image", strings.Repeat("i", MaxImageLen+1)),
			"image", "512", ""},
		{"image with a space", specOf("executor", "docker", "image", "busy box"),
			"image", "image reference", ""},
		{"docker without image", specOf("executor", "docker"), "image", "required", ""},
		{"workdir too long", specOf("workdir", "/"+strings.Repeat("w", MaxWorkdirLen)),
			"workdir", "limit 1024", ""},
		{"mount_workdir relative", specOf("mount_workdir", "work"),
			"mount_workdir", "absolute", ""},
		{"mount_workdir climbing", specOf("mount_workdir", "/a/../b"),
			"mount_workdir", "'..'", ""},
		{"mount_workdir too long",
			specOf("mount_workdir", "/"+strings.Repeat("m", MaxWorkdirLen)),
			"mount_workdir", "1024", ""},
		{"wasm without module", specOf("executor", "wasm"), "module", "required", ""},
		{"module as a path", specOf("executor", "wasm", "module", "./app.wasm"),
			"module", "sha256", ""},
		{"module hash too short", specOf("module", "sha256:"+hex63),
			"module", "64 hex", ""},
		{"module hash uppercase",
			specOf("module", strings.ToUpper(testModule[:7])+testModule[7:]),
			"module", "sha256", ""},
		{"module hash in uppercase hex",
			specOf("module", "sha256:"+strings.ToUpper(hex63)+"A"),
			"module", "64 hex", ""},
		{"module hash not hex", specOf("module", "sha256:"+hex63+"g"),
			"module", "64 hex", ""},

		{"negative cpu", specOf("resources", map[string]any{"cpu": -1}),
			"resources.cpu", "0 to 1024", ""},
		{"too much cpu", specOf("resources", map[string]any{"cpu": 1024.5}),
			"resources.cpu", "0 to 1024", ""},
		{"cpu not a number", []byte("command: [x]\nresources: {cpu: .nan}"),
			"resources.cpu", "0 to 1024", ""},
		{"memory unit unknown", []byte("command: [x]\nresources: {memory: 12XB}"),
			"resources.memory", "12XB", bugValueErrors},
		{"memory negative", []byte("command: [x]\nresources: {memory: -1}"),
			"resources.memory", "-1", bugValueErrors},
		{"memory too large", []byte("command: [x]\nresources: {memory: 5EiB}"),
			"resources.memory", "5EiB", bugValueErrors},
		{"resources not a mapping", []byte("command: [x]\nresources: 4"),
			"resources", "", bugTypeErrors},
	}
}

func TestParseSpecRefuses(t *testing.T) {
	for _, tc := range specRefusals() {
		t.Run(tc.name, func(t *testing.T) {
			if tc.bug != "" {
				t.Skip(tc.bug)
			}
			spec, err := ParseSpec(tc.in)
			if err == nil {
				t.Fatalf("ParseSpec = %+v, want an error naming %s",
					spec, tc.field)
			}
			checkOneLine(t, err, tc.field, tc.also)
		})
	}
}

// checkOneLine fails t unless err is one line that names field and holds
// also.
func checkOneLine(t *testing.T, err error, field, also string) {
	t.Helper()
	msg := err.Error()
	if strings.ContainsAny(msg, "\r\n") {
		t.Errorf("error is more than one line: %q", msg)
	}
	if !strings.Contains(msg, field) {
		t.Errorf("error %q does not name %s", msg, field)
	}
	if !strings.Contains(msg, also) {
		t.Errorf("error %q does not say %q", msg, also)
	}
}

// TestSpecValidateRefuses covers values that no YAML or JSON document
// yields but a Go program can set.
func TestSpecValidateRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spec  Spec
		field string
		also  string
	}{
		{"negative memory",
			Spec{Command: []string{"x"}, Resources: Resources{Memory: -1}},
			"resources.memory", "negative"},
		{"payload not JSON",
			Spec{Command: []string{"x"}, Payload: json.RawMessage("{")},
			"payload", "JSON"},
		{"payload too big",
			Spec{Command: []string{"x"},
				Payload: mustJSON(strings.Repeat("p", MaxPayloadBytes))},
			"payload", "limit 1048576"},
		{"negative timeout",
			Spec{Command: []string{"x"}, Timeout: Duration(-time.Nanosecond)},
			"timeout", "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.spec.Validate()
			if err == nil {
				t.Fatalf("Validate = nil, want an error naming %s", tc.field)
			}
			checkOneLine(t, err, tc.field, tc.also)
		})
	}
}

// TestParseSpecAtLimits checks that every limit admits its own value.
func TestParseSpecAtLimits(t *testing.T) {
	cmd := append([]string{"x"}, strs(MaxArgs-1, "a")...)
	cmdBytes := []string{strings.Repeat("c", MaxCommandBytes/2),
		strings.Repeat("c", MaxCommandBytes/2)}
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"name", specOf("name", strings.Repeat("n", MaxNameLen))},
		{"args", specOf("command", cmd)},
		{"command bytes", specOf("command", cmdBytes)},
		{"env count", specOf("env", envOf(MaxEnv, "v"))},
		{"env key", specOf("env",
			map[string]string{strings.Repeat("K", MaxEnvKeyLen): "v"})},
		{"env bytes", specOf("env",
			map[string]string{"K": strings.Repeat("v", MaxEnvBytes-1)})},
		{"require", specOf("require", strs(MaxRequire, "os=linux"))},
		{"timeout", specOf("timeout", MaxTimeout.String())},
		{"grace", specOf("grace", MaxTimeout.String())},
		{"backoff", specOf("backoff", MaxTimeout.String())},
		{"retries", specOf("retries", MaxRetries)},
		{"payload", specOf("payload", strings.Repeat("p", MaxPayloadBytes-2))},
		{"stdin", specOf("stdin", strings.Repeat("s", MaxStdinBytes))},
		{"image", specOf("image", strings.Repeat("i", MaxImageLen))},
		{"workdir", specOf("workdir", strings.Repeat("w", MaxWorkdirLen))},
		{"mount_workdir", specOf("mount_workdir",
			"/"+strings.Repeat("m", MaxWorkdirLen-1))},
		{"cpu", specOf("resources", map[string]any{"cpu": 1024})},
		{"wasm module", specOf("executor", "wasm", "module", testModule)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseSpec(tc.in); err != nil {
				t.Errorf("ParseSpec: %v", err)
			}
		})
	}
}

func TestParseSpecMemory(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want ByteSize
	}{
		{"IEC", "memory: 512MiB", 536870912},
		{"SI", "memory: 1GB", 1000000000},
		{"bytes", "memory: 536870912", 536870912},
		{"fraction", "memory: 1.5GiB", 1610612736},
		{"space before the unit", "memory: 64 KiB", 65536},
		{"json number", `{"memory": 536870912}`, 536870912},
		{"json string", `{"memory": "512MiB"}`, 536870912},
		{"zero", "memory: 0", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := "{" + tc.in + "}"
			if strings.HasPrefix(tc.in, "{") {
				res = tc.in
			}
			in := "command: [x]\nresources: " + res
			got, err := ParseSpec([]byte(in))
			if err != nil {
				t.Fatalf("ParseSpec(%q): %v", in, err)
			}
			if got.Resources.Memory != tc.want {
				t.Errorf("memory = %d, want %d", got.Resources.Memory, tc.want)
			}
		})
	}
}

// TestParseSpecAcceptsJSON feeds valid JSON documents that a YAML
// reading of them gets wrong.
func TestParseSpecAcceptsJSON(t *testing.T) {
	for _, tc := range []struct {
		name        string
		in          string
		wantCommand string
		wantPayload string
		bug         string
	}{
		{"tab indentation", "{\n\t\"command\": [\"a b\"]\n}", "a b", "", ""},
		{"unicode escape", `{"command": ["caf\u00e9"]}`, "café", "", ""},
		{"escaped slash", `{"command": ["\/bin\/true"]}`, "/bin/true", "", ""},
		{"surrogate pair", `{"command": ["\ud83d\ude00"]}`, "😀", "", ""},
		{"raw DEL", "{\"command\": [\"a\x7fb\"]}", "a\x7fb", "", ""},
		{"raw NEL", "{\"command\": [\"a\u0085b\"]}", "a\u0085b", "", ""},
		{"big integer in the payload",
			`{"command": ["x"], "payload": {"n": 12345678901234567890123}}`,
			"x", `{"n":12345678901234567890123}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.bug != "" {
				t.Skip(tc.bug)
			}
			got, err := ParseSpec([]byte(tc.in))
			if err != nil {
				t.Fatalf("ParseSpec: %v", err)
			}
			if len(got.Command) != 1 || got.Command[0] != tc.wantCommand {
				t.Errorf("command = %q, want [%q]", got.Command, tc.wantCommand)
			}
			if tc.wantPayload != "" && string(got.Payload) != tc.wantPayload {
				t.Errorf("payload = %s, want %s", got.Payload, tc.wantPayload)
			}
		})
	}
}

// TestParseSpecRoundTrip takes the CLI's path: a spec parsed from YAML
// is sent as JSON, which the peer parses again. It must arrive intact.
func TestParseSpecRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		bug  string
	}{
		{"every field", "name: n\nexecutor: docker\nimage: a:1\ncommand: [a, b]\n" +
			"env: {K: v}\nrequire: [os=linux]\ntimeout: 1m\ngrace: 1s\n" +
			"retries: 2\nbackoff: 3s\nworkdir: /w\nmodule: " + testModule +
			"\nmount_workdir: /w\nstdin: s\n" +
			"resources: {cpu: 0.25, memory: 1GB}\npayload: {a: [1]}", ""},
		{"markup and controls", `command: ["<&>", "a\tb\u2028c\ufeff"]`, ""},
		{"DEL", `command: ["a\x7fb"]`, ""},
		{"C1 control", `command: ["a\x9fb"]`, ""},
		{"NEL", `command: ["a\Nb"]`, ""},
		{"stdin of markup at its limit", "command: [x]\nstdin: " +
			strings.Repeat("<", MaxStdinBytes), bugJSONSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.bug != "" {
				t.Skip(tc.bug)
			}
			spec, err := ParseSpec([]byte(tc.in))
			if err != nil {
				t.Fatalf("ParseSpec: %v", err)
			}
			b, err := json.Marshal(spec)
			if err != nil {
				t.Fatalf("accepted spec does not encode: %v", err)
			}
			again, err := ParseSpec(b)
			if err != nil {
				t.Fatalf("the spec as JSON is refused: %v", err)
			}
			if !reflect.DeepEqual(mustJSON(again), mustJSON(spec)) {
				t.Errorf("round trip =\n%s\nwant\n%s", mustJSON(again), b)
			}
		})
	}
}

func TestDurationJSON(t *testing.T) {
	for _, d := range []time.Duration{0, time.Nanosecond, 90 * time.Second,
		MaxTimeout, -5 * time.Second, 1<<63 - 1} {
		t.Run(d.String(), func(t *testing.T) {
			b, err := json.Marshal(Duration(d))
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if want := `"` + d.String() + `"`; string(b) != want {
				t.Errorf("Marshal = %s, want %s", b, want)
			}
			var got Duration
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("Unmarshal(%s): %v", b, err)
			}
			if got.D() != d {
				t.Errorf("round trip = %s, want %s", got.D(), d)
			}
		})
	}
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{`"1m30s"`, 90 * time.Second, true},
		{`" 2h "`, 2 * time.Hour, true},
		{`"soon"`, 0, false},
		{`"30"`, 0, false},
		{`30`, 0, false},
		{`{}`, 0, false},
	} {
		t.Run("unmarshal "+tc.in, func(t *testing.T) {
			var got Duration
			err := json.Unmarshal([]byte(tc.in), &got)
			if (err == nil) != tc.ok {
				t.Fatalf("Unmarshal error = %v, want ok %v", err, tc.ok)
			}
			if got.D() != tc.want {
				t.Errorf("Unmarshal = %s, want %s", got.D(), tc.want)
			}
		})
	}
}

func TestByteSizeJSON(t *testing.T) {
	for _, b := range []ByteSize{0, 1, 536870912, 1 << 62} {
		t.Run(b.String(), func(t *testing.T) {
			data, err := json.Marshal(b)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if want := string(mustJSON(int64(b))); string(data) != want {
				t.Errorf("Marshal = %s, want %s", data, want)
			}
			var got ByteSize
			if err := json.Unmarshal(data, &got); err != nil {
				t.Fatalf("Unmarshal(%s): %v", data, err)
			}
			if got != b {
				t.Errorf("round trip = %d, want %d", got, b)
			}
		})
	}
	for _, tc := range []struct {
		in   string
		want ByteSize
		ok   bool
	}{
		{`"512MiB"`, 536870912, true},
		{`"1GB"`, 1000000000, true},
		{`"536870912"`, 536870912, true},
		{`"12XB"`, 0, false},
		{`1.5`, 0, false},
		{`true`, 0, false},
		{`"16EiB"`, 0, false},
	} {
		t.Run("unmarshal "+tc.in, func(t *testing.T) {
			var got ByteSize
			err := json.Unmarshal([]byte(tc.in), &got)
			if (err == nil) != tc.ok {
				t.Fatalf("Unmarshal error = %v, want ok %v", err, tc.ok)
			}
			if got != tc.want {
				t.Errorf("Unmarshal = %d, want %d", got, tc.want)
			}
		})
	}
	if got, want := ByteSize(512<<20).String(), "512 MiB"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
}

func TestSpecErrorUnwraps(t *testing.T) {
	inner := errors.New("command: required for executor exec")
	var err error = &SpecError{Err: inner}
	if err.Error() != inner.Error() {
		t.Errorf("Error = %q, want %q", err.Error(), inner.Error())
	}
	if !errors.Is(err, inner) {
		t.Errorf("errors.Is(%v, inner) = false, want true", err)
	}
}
