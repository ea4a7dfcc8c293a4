package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sync/errgroup"

	"github.com/blixard/blixard/scheduler"
	"github.com/blixard/blixard/scheduler/httpapi"
)

var outputFlag = &cli.StringFlag{
	Name:    "output",
	Aliases: []string{"o"},
	Usage:   "`FORMAT`: table or json",
	Value:   "table",
}

func checkOutput(c *cli.Context) (bool, error) {
	switch c.String("output") {
	case "table", "":
		return false, nil
	case "json":
		return true, nil
	}
	return false, usagef("--output %q: want table or json", c.String("output"))
}

// oneArg returns the single argument of a command that takes one.
func oneArg(c *cli.Context, what string) (string, error) {
	if c.NArg() != 1 {
		return "", usagef("%s: want exactly one %s, got %d arguments", c.Command.Name, what, c.NArg())
	}
	return c.Args().First(), nil
}

func submitCommand() *cli.Command {
	return &cli.Command{
		Name:      "submit",
		Usage:     "submit a job spec (YAML or JSON) and print the job's ID",
		ArgsUsage: "FILE|-",
		Flags:     []cli.Flag{apiFlag},
		Action: func(c *cli.Context) error {
			file, err := oneArg(c, "spec file (or - for stdin)")
			if err != nil {
				return err
			}
			spec, err := readSpec(c.Context, client(c), file)
			if err != nil {
				return err
			}
			id, err := client(c).Submit(c.Context, spec)
			if err != nil {
				return err
			}
			fmt.Println(id)
			return nil
		},
	}
}

// readSpec reads and validates a spec file; a wasm module path in it is
// uploaded to the peer and replaced by its hash.
func readSpec(ctx context.Context, api *httpapi.Client, file string) (scheduler.Spec, error) {
	var data []byte
	var err error
	in := os.Stdin
	if file != "-" {
		if in, err = os.Open(file); err != nil {
			return scheduler.Spec{}, usagef("read spec: %v", err)
		}
		defer in.Close()
	}
	data, err = io.ReadAll(io.LimitReader(in, scheduler.MaxSpecBytes+1))
	if err != nil {
		return scheduler.Spec{}, usagef("read spec: %v", err)
	}
	spec, err := scheduler.DecodeSpec(data)
	if err != nil {
		return scheduler.Spec{}, usagef("%s: %v", file, err)
	}
	if spec.Module != "" && !strings.HasPrefix(spec.Module, "sha256:") {
		path := spec.Module
		if !filepath.IsAbs(path) && file != "-" {
			path = filepath.Join(filepath.Dir(file), path)
		}
		mod, err := os.ReadFile(path)
		if err != nil {
			return scheduler.Spec{}, usagef("%s: module: %v", file, err)
		}
		if len(mod) > scheduler.MaxModuleBytes {
			return scheduler.Spec{}, usagef("%s: module: %d bytes, limit %d",
				file, len(mod), scheduler.MaxModuleBytes)
		}
		// Validate everything else before uploading anything.
		check := spec
		check.Module = "sha256:" + strings.Repeat("0", 64)
		if err := check.Validate(); err != nil {
			return scheduler.Spec{}, usagef("%s: %v", file, err)
		}
		ref, err := api.AddModule(ctx, mod)
		if err != nil {
			return scheduler.Spec{}, err
		}
		spec.Module = ref
	}
	if err := spec.Validate(); err != nil {
		return scheduler.Spec{}, usagef("%s: %v", file, err)
	}
	return spec, nil
}

func runCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "run a command as a job, stream its output and exit with its exit code",
		ArgsUsage: "-- CMD [ARG...]",
		Flags: []cli.Flag{
			apiFlag,
			&cli.StringFlag{Name: "executor", Usage: "executor `NAME`", Value: "exec"},
			&cli.StringSliceFlag{Name: "require", Usage: "`CONSTRAINT` on the runner's labels, repeatable"},
			&cli.DurationFlag{Name: "timeout", Usage: "end the job after this long"},
			&cli.StringFlag{Name: "name", Usage: "job `NAME` (default: the command's name)"},
			&cli.StringFlag{Name: "image", Usage: "container `IMAGE` (docker executor)"},
		},
		Action: func(c *cli.Context) error {
			argv := c.Args().Slice()
			if len(argv) == 0 && c.String("executor") != "noop" {
				return usagef("run: no command; usage: blixard run [flags] -- CMD [ARG...]")
			}
			spec := scheduler.Spec{
				Name:     c.String("name"),
				Executor: c.String("executor"),
				Command:  argv,
				Require:  c.StringSlice("require"),
				Timeout:  scheduler.Duration(c.Duration("timeout")),
				Image:    c.String("image"),
			}
			if err := spec.Validate(); err != nil {
				return usageError{err}
			}
			api := client(c)
			id, err := api.Submit(c.Context, spec)
			if err != nil {
				return err
			}
			// The job outlives this command: say how to find it.
			fmt.Fprintf(os.Stderr, "blixard: job %s\n", id)
			st, err := followJob(c.Context, api, id)
			if err != nil {
				return err
			}
			return jobExit(st)
		},
	}
}

// followJob streams a job's output until it ends, then returns its status.
func followJob(ctx context.Context, api *httpapi.Client, id string) (scheduler.Status, error) {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return api.Logs(gctx, id, "stdout", true, os.Stdout) })
	g.Go(func() error { return api.Logs(gctx, id, "stderr", true, os.Stderr) })
	if err := g.Wait(); err != nil {
		return scheduler.Status{}, err
	}
	return api.Wait(ctx, id)
}

// jobExit turns a finished job into the command's exit.
func jobExit(st scheduler.Status) error {
	switch {
	case st.State == scheduler.Succeeded:
		return nil
	case st.ExitCode != nil && *st.ExitCode > 0 && *st.ExitCode < 256:
		if st.Reason != "" {
			fmt.Fprintf(os.Stderr, "blixard: job %s %s: %s\n", st.ID, st.State, st.Reason)
		}
		return exitError{*st.ExitCode}
	}
	return fmt.Errorf("job %s %s: %s", st.ID, st.State, st.Reason)
}

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "show a job's state, attempts and outcome",
		ArgsUsage: "JOB",
		Flags:     []cli.Flag{apiFlag, outputFlag},
		Action: func(c *cli.Context) error {
			asJSON, err := checkOutput(c)
			if err != nil {
				return err
			}
			id, err := oneArg(c, "job ID")
			if err != nil {
				return err
			}
			st, err := client(c).Status(c.Context, id)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(st)
			}
			printStatus(st)
			return nil
		},
	}
}

func printStatus(st scheduler.Status) {
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "id:\t%s\n", st.ID)
	fmt.Fprintf(w, "name:\t%s\n", st.Name)
	fmt.Fprintf(w, "state:\t%s\n", st.State)
	if st.Reason != "" {
		fmt.Fprintf(w, "reason:\t%s\n", st.Reason)
	}
	if st.ExitCode != nil {
		fmt.Fprintf(w, "exit code:\t%d\n", *st.ExitCode)
	}
	fmt.Fprintf(w, "executor:\t%s\n", st.Executor)
	if len(st.Require) > 0 {
		fmt.Fprintf(w, "require:\t%s\n", strings.Join(st.Require, ", "))
	}
	fmt.Fprintf(w, "owner:\t%s\n", st.Owner)
	fmt.Fprintf(w, "peer:\t%s\n", st.Peer)
	fmt.Fprintf(w, "submitted:\t%s\n", st.Submitted.Format(time.RFC3339))
	fmt.Fprintf(w, "duplicates:\t%d\n", st.Duplicates)
	w.Flush()
	if len(st.Attempts) == 0 {
		return
	}
	fmt.Println("attempts:")
	w = tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "  N\tPEER\tSTATE\tSTARTED\tDURATION\tEXIT\tREASON")
	for _, a := range st.Attempts {
		exit, dur := "-", "-"
		if a.ExitCode != nil {
			exit = fmt.Sprint(*a.ExitCode)
		}
		if !a.Ended.IsZero() {
			dur = a.Ended.Sub(a.Started).Round(time.Millisecond).String()
		}
		fmt.Fprintf(w, "  %d\t%s\t%s\t%s\t%s\t%s\t%s\n", a.N, short(a.Peer), a.State,
			a.Started.Format("15:04:05.000"), dur, exit, a.Reason)
	}
	w.Flush()
}

func short(id string) string {
	if len(id) > 12 {
		return "…" + id[len(id)-8:]
	}
	return id
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func jobsCommand() *cli.Command {
	return &cli.Command{
		Name:  "jobs",
		Usage: "list the jobs the peer knows of, newest first",
		Flags: []cli.Flag{
			apiFlag,
			outputFlag,
			&cli.IntFlag{Name: "limit", Value: 100, Usage: "show at most `N` jobs"},
		},
		Action: func(c *cli.Context) error {
			asJSON, err := checkOutput(c)
			if err != nil {
				return err
			}
			if c.Int("limit") < 1 || c.Int("limit") > 100000 {
				return usagef("--limit %d: want 1 to 100000", c.Int("limit"))
			}
			evs, err := client(c).Jobs(c.Context, c.Int("limit"))
			if err != nil {
				return err
			}
			if asJSON {
				out := make([]map[string]any, len(evs))
				for i, ev := range evs {
					out[i] = map[string]any{"id": ev.Job, "name": ev.Name, "state": ev.State,
						"owner": ev.Owner, "peer": ev.Peer, "exit_code": ev.ExitCode, "reason": ev.Reason}
				}
				return printJSON(out)
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tNAME\tSTATE\tPEER\tEXIT\tREASON")
			for _, ev := range evs {
				exit := "-"
				if ev.ExitCode != nil {
					exit = fmt.Sprint(*ev.ExitCode)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n",
					ev.Job, ev.Name, ev.State, short(ev.Peer), exit, ev.Reason)
			}
			return w.Flush()
		},
	}
}

func logsCommand() *cli.Command {
	return &cli.Command{
		Name:      "logs",
		Usage:     "print a job's output, byte for byte (stdout to stdout, stderr to stderr)",
		ArgsUsage: "JOB",
		Flags: []cli.Flag{
			apiFlag,
			&cli.BoolFlag{
				Name:    "follow",
				Aliases: []string{"f"},
				Usage:   "keep printing until the job ends",
			},
		},
		Action: func(c *cli.Context) error {
			id, err := oneArg(c, "job ID")
			if err != nil {
				return err
			}
			api := client(c)
			if _, err := api.Status(c.Context, id); err != nil {
				return err
			}
			g, ctx := errgroup.WithContext(c.Context)
			g.Go(func() error { return api.Logs(ctx, id, "stdout", c.Bool("follow"), os.Stdout) })
			g.Go(func() error { return api.Logs(ctx, id, "stderr", c.Bool("follow"), os.Stderr) })
			return g.Wait()
		},
	}
}

func waitCommand() *cli.Command {
	return &cli.Command{
		Name:      "wait",
		Usage:     "wait for a job to end; exit 0 if it succeeded, 1 otherwise",
		ArgsUsage: "JOB",
		Flags: []cli.Flag{
			apiFlag,
			&cli.DurationFlag{Name: "timeout", Usage: "give up after this long (0: never)"},
		},
		Action: func(c *cli.Context) error {
			id, err := oneArg(c, "job ID")
			if err != nil {
				return err
			}
			ctx := c.Context
			if d := c.Duration("timeout"); d > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, d)
				defer cancel()
			}
			st, err := client(c).Wait(ctx, id)
			if err != nil {
				return err
			}
			fmt.Println(st.State)
			if st.State != scheduler.Succeeded {
				return exitError{exitFailed}
			}
			return nil
		},
	}
}

func cancelCommand() *cli.Command {
	return &cli.Command{
		Name:      "cancel",
		Usage:     "cancel a job wherever it runs",
		ArgsUsage: "JOB",
		Flags:     []cli.Flag{apiFlag},
		Action: func(c *cli.Context) error {
			id, err := oneArg(c, "job ID")
			if err != nil {
				return err
			}
			return client(c).Cancel(c.Context, id)
		},
	}
}

func peersCommand() *cli.Command {
	return &cli.Command{
		Name:  "peers",
		Usage: "list the mesh's members with their executors, labels and load",
		Flags: []cli.Flag{apiFlag, outputFlag},
		Action: func(c *cli.Context) error {
			asJSON, err := checkOutput(c)
			if err != nil {
				return err
			}
			anns, err := client(c).Peers(c.Context)
			if err != nil {
				return err
			}
			if asJSON {
				out := make([]map[string]any, len(anns))
				for i, a := range anns {
					out[i] = map[string]any{"id": a.Peer, "addrs": a.Addrs, "executors": a.Executors,
						"labels": a.Labels, "slots": a.Slots, "running": a.Running, "pending": a.Pending,
						"free_cpu": a.FreeCPU, "free_memory": a.FreeMem, "draining": a.Draining}
				}
				return printJSON(out)
			}
			w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tEXECUTORS\tSLOTS\tRUNNING\tFREE CPU\tFREE MEMORY\tLABELS")
			for _, a := range anns {
				var ex []string
				for _, e := range a.Executors {
					if e.Version != "" {
						ex = append(ex, e.Name+"="+e.Version)
					} else {
						ex = append(ex, e.Name)
					}
				}
				var labels []string
				for k, v := range a.Labels {
					labels = append(labels, k+"="+v)
				}
				sort.Strings(labels)
				state := ""
				if a.Draining {
					state = " (draining)"
				}
				fmt.Fprintf(w, "%s%s\t%s\t%d\t%d\t%.1f\t%s\t%s\n", a.Peer, state, strings.Join(ex, ","),
					a.Slots, a.Running, a.FreeCPU, scheduler.ByteSize(a.FreeMem), strings.Join(labels, " "))
			}
			return w.Flush()
		},
	}
}

func drainCommand(on bool) *cli.Command {
	name, usage := "undrain", "let the peer take new work again"
	if on {
		name, usage = "drain", "stop the peer taking new work; running jobs finish"
	}
	return &cli.Command{
		Name:  name,
		Usage: usage,
		Flags: []cli.Flag{apiFlag},
		Action: func(c *cli.Context) error {
			return client(c).Drain(c.Context, on)
		},
	}
}
