package plugin

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/blixard/blixard/executor"
)

// TestExampleJob runs the command of examples/plugins/sandbox.yaml through
// the sandbox plugin, with its env, memory and payload.
func TestExampleJob(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", "plugins",
		"sandbox.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Executor  string            `yaml:"executor"`
		Command   []string          `yaml:"command"`
		Env       map[string]string `yaml:"env"`
		Timeout   string            `yaml:"timeout"`
		Resources struct {
			Memory string `yaml:"memory"`
		} `yaml:"resources"`
		Payload any `yaml:"payload"`
	}
	if err := yaml.Unmarshal(b, &spec); err != nil {
		t.Fatalf("parse sandbox.yaml: %v", err)
	}
	if spec.Executor != "sandbox" || spec.Resources.Memory != "64MiB" {
		t.Fatalf("sandbox.yaml: executor %q memory %q, want sandbox and "+
			"64MiB (this test knows no other)", spec.Executor,
			spec.Resources.Memory)
	}
	timeout, err := time.ParseDuration(spec.Timeout)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(spec.Payload)
	if err != nil {
		t.Fatal(err)
	}

	p := newPlugin(t, "sandbox", sandboxPath)
	got := run(context.Background(), t, p, executor.Task{
		JobID: "j-example", Attempt: 1, Command: spec.Command,
		Env: spec.Env, Timeout: timeout, Payload: payload,
		Resources: executor.Resources{Memory: 64 << 20},
	})
	if got.err != nil || got.res.ExitCode != 0 {
		t.Fatalf("Run: %+v, %v", got.res, got.err)
	}
	for _, want := range []string{
		"attempt 1 of j-example\n", "greeting: hello, mesh\n",
		"niceness: 10\n", "address space limit: 65536 KiB\n",
		`payload: {"shard":3}` + "\n",
	} {
		if !strings.Contains(got.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, got.stdout)
		}
	}
}
