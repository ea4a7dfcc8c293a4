package wasm

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/blixard/blixard/executor"
)

// TestExampleJob builds examples/wasm/wordcount and runs it the way
// examples/wasm/wordcount.yaml asks.
func TestExampleJob(t *testing.T) {
	example := filepath.Join("..", "..", "examples", "wasm")
	b, err := os.ReadFile(filepath.Join(example, "wordcount.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Executor  string   `yaml:"executor"`
		Module    string   `yaml:"module"`
		Command   []string `yaml:"command"`
		Stdin     string   `yaml:"stdin"`
		Timeout   string   `yaml:"timeout"`
		Resources struct {
			Memory string `yaml:"memory"`
		} `yaml:"resources"`
	}
	if err := yaml.Unmarshal(b, &spec); err != nil {
		t.Fatalf("parse wordcount.yaml: %v", err)
	}
	if spec.Executor != "wasm" || spec.Resources.Memory != "32MiB" {
		t.Fatalf("wordcount.yaml: executor %q memory %q, want wasm and "+
			"32MiB (this test knows no other)", spec.Executor,
			spec.Resources.Memory)
	}
	timeout, err := time.ParseDuration(spec.Timeout)
	if err != nil {
		t.Fatal(err)
	}

	module := filepath.Join(t.TempDir(), spec.Module)
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	build := exec.Command(gobin, "build", "-o", module, "./wordcount")
	build.Dir = example
	build.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm",
		"CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build wordcount: %v\n%s", err, out)
	}
	bin, err := os.ReadFile(module)
	if err != nil {
		t.Fatal(err)
	}

	w := newWasm(t, Config{})
	got := run(t, w, withStdin(executor.Task{
		Module: module, ModuleHash: hashOf(bin), Command: spec.Command,
		Resources: executor.Resources{Memory: 32 << 20},
		Timeout:   timeout,
	}, strings.NewReader(spec.Stdin)))
	if got.err != nil || got.res.ExitCode != 0 {
		t.Fatalf("Run: %+v, %v", got.res, got.err)
	}
	if want := "3 18 79\n"; got.stdout != want {
		t.Errorf("stdout: got %q, want %q (as README.md says)",
			got.stdout, want)
	}
}
