// Command embedded shows how a Go program embeds a Blixard peer: it
// starts one, submits a job, waits for it, prints its output and status,
// and closes the peer.
//
// Usage:
//
//	embedded [-data-dir DIR] [-join TOKEN] [-listen ADDR] [-timeout D] [COMMAND...]
//
// Without COMMAND the job runs `echo hello from an embedded peer`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/blixard/blixard/scheduler"
)

// defaultCommand is the job's argv when none is given.
var defaultCommand = []string{"echo", "hello from an embedded peer"}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(),
		os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "embedded: %v\n", err)
		os.Exit(1)
	}
}

// options are the program's flags and arguments.
type options struct {
	dataDir string
	join    string
	listen  string
	timeout time.Duration
	command []string
}

// parseFlags reads args. It returns flag.ErrHelp after printing the usage
// to stdout when asked for help.
func parseFlags(args []string, stdout io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("embedded", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.dataDir, "data-dir", "",
		"peer data directory (default: a temporary one, removed at exit)")
	fs.StringVar(&o.join, "join", "", "join token of a mesh to join")
	fs.StringVar(&o.listen, "listen", "/ip4/127.0.0.1/udp/0/quic-v1",
		"libp2p multiaddr to listen on")
	fs.DurationVar(&o.timeout, "timeout", time.Minute,
		"how long to wait for the job")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fmt.Fprintln(stdout, "usage: embedded [flags] [COMMAND...]")
			fs.PrintDefaults()
		}
		return o, err
	}
	if o.timeout <= 0 {
		return o, fmt.Errorf("timeout: %s, want more than 0", o.timeout)
	}
	o.command = fs.Args()
	if len(o.command) == 0 {
		o.command = defaultCommand
	}
	return o, nil
}

// run starts a peer, runs one job on the mesh and reports it on stdout.
// It blocks until the job ends, ctx is done or the timeout passes, and
// returns an error when the job did not succeed.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	o, err := parseFlags(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	dir := o.dataDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "blixard-embedded-"); err != nil {
			return fmt.Errorf("make data dir: %w", err)
		}
		defer os.RemoveAll(dir)
	}

	p, err := scheduler.New(ctx, scheduler.Config{
		DataDir: dir,
		Listen:  []string{o.listen},
		Join:    o.join,
	})
	if err != nil {
		return fmt.Errorf("start peer: %w", err)
	}
	fmt.Fprintf(stdout, "peer %s listening on %v\n", p.ID(), p.Addrs())
	if o.join != "" {
		err = awaitMesh(ctx, p, o.timeout, stdout)
	}
	if err == nil {
		err = runJob(ctx, p, o, stdout)
	}
	if cerr := p.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close peer: %w", cerr)
	}
	return err
}

// awaitMesh blocks until p has heard of another member of the mesh it
// joined, or the timeout passes.
func awaitMesh(ctx context.Context, p *scheduler.Peer, timeout time.Duration,
	stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for len(p.Peers()) < 2 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("join: no other peer found within %s", timeout)
		case <-tick.C:
		}
	}
	fmt.Fprintf(stdout, "joined a mesh of %d peers\n", len(p.Peers()))
	return nil
}

// runJob submits the job, waits for it and prints its output and status.
func runJob(ctx context.Context, p *scheduler.Peer, o options,
	stdout io.Writer) error {
	id, err := p.Submit(ctx, scheduler.Spec{
		Name:    "embedded-hello",
		Command: o.command,
	})
	if err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	fmt.Fprintf(stdout, "submitted job %s\n", id)

	wctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	j, err := p.Wait(wctx, id)
	if err != nil {
		return fmt.Errorf("wait for job %s: %w", id, err)
	}
	out, err := readOutput(ctx, p, id)
	if err != nil {
		return fmt.Errorf("read output of job %s: %w", id, err)
	}
	fmt.Fprintf(stdout, "output:\n%s", out)

	st := j.Status()
	code := "none"
	if st.ExitCode != nil {
		code = fmt.Sprint(*st.ExitCode)
	}
	fmt.Fprintf(stdout, "status: %s, exit code %s, ran on peer %s\n",
		st.State, code, st.Peer)
	if st.State != scheduler.Succeeded {
		return fmt.Errorf("job %s %s: %s", id, st.State, st.Reason)
	}
	return nil
}

// readOutput returns the whole stdout of the job's latest attempt.
func readOutput(ctx context.Context, p *scheduler.Peer,
	id string) ([]byte, error) {
	var out []byte
	var off int64
	for {
		data, next, done, err := p.Logs(ctx, id, 0, scheduler.Stdout,
			off, 1<<20)
		if err != nil {
			return nil, err
		}
		out = append(out, data...)
		off = next
		if done || len(data) == 0 {
			return out, nil
		}
	}
}
