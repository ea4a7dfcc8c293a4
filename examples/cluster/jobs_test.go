package cluster

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// spec is a job spec as `blixard submit -` reads it.
type spec struct {
	Name     string   `json:"name"`
	Executor string   `json:"executor"`
	Command  []string `json:"command"`
	Require  []string `json:"require,omitempty"`
}

// shellJob runs script with the exec executor's sh on a peer that meets
// require.
func shellJob(name, script string, require ...string) spec {
	return spec{Name: name, Executor: "exec", Command: []string{"sh", "-c", script},
		Require: require}
}

// tickJob is a job that runs for about ticks half seconds and then
// prints done. Every half second each copy of it appends the kernel's
// uptime to its own file in /shared, named after the job, the attempt
// and the peer's host name, so that a test sees when each copy really
// ran (see readTicks). Its script starts with ": name", which ps shows.
func tickJob(name string, ticks int, require ...string) spec {
	script := fmt.Sprintf(": %s; "+
		"f=/shared/ticks.$BLIXARD_JOB_ID.$BLIXARD_ATTEMPT.$(hostname); i=0; "+
		"while [ $i -lt %d ]; do cut -d' ' -f1 /proc/uptime >>$f; sleep 0.5; "+
		"i=$((i+1)); done; echo done", name, ticks)
	return shellJob(name, script, require...)
}

// jobStatus is the JSON of `blixard status -o json`.
type jobStatus struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	State      string    `json:"state"`
	Peer       string    `json:"peer"`
	Owner      string    `json:"owner"`
	Epoch      uint64    `json:"epoch"`
	Attempts   []attempt `json:"attempts"`
	ExitCode   *int      `json:"exit_code"`
	Reason     string    `json:"reason"`
	Duplicates int       `json:"duplicates"`
	Replicas   []string  `json:"replicas"`
}

// attempt is one entry of jobStatus.Attempts.
type attempt struct {
	N        int       `json:"n"`
	Peer     string    `json:"peer"`
	State    string    `json:"state"`
	Started  time.Time `json:"started"`
	Ended    time.Time `json:"ended"`
	ExitCode *int      `json:"exit_code"`
	Reason   string    `json:"reason"`
}

func terminal(state string) bool {
	return state == "succeeded" || state == "failed" || state == "cancelled"
}

// current returns the latest attempt, or nil before the first.
func (s jobStatus) current() *attempt {
	if len(s.Attempts) == 0 {
		return nil
	}
	return &s.Attempts[len(s.Attempts)-1]
}

var jobIDPattern = regexp.MustCompile(`^[0-9a-f]{28}$`)

// submit submits s at p and returns the job's ID.
func (c *cluster) submit(p *peer, s spec) (string, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return "", err
	}
	out, err := dockerIn(strings.NewReader(string(b)),
		"exec", "-i", p.name, "/blixard", "submit", "-")
	if err != nil {
		return "", err
	}
	id := strings.TrimSpace(out)
	if !jobIDPattern.MatchString(id) {
		return "", fmt.Errorf("submit at %s printed %q, want a job ID", p, id)
	}
	return id, nil
}

func (c *cluster) mustSubmit(p *peer, s spec) string {
	c.t.Helper()
	id, err := c.submit(p, s)
	if err != nil {
		c.t.Fatalf("submit %s: %v", s.Name, err)
	}
	return id
}

// submitScript submits one spec per line of its input and prints, for
// each, the job's ID or FAILED.
const submitScript = `while IFS= read -r s; do
	printf '%s\n' "$s" | /blixard submit - 2>/dev/null || echo FAILED
done`

// submitBatch submits specs at p with one docker exec and returns the IDs
// of the jobs p accepted, and how many it did not. A peer killed halfway
// leaves the rest unaccepted.
func (c *cluster) submitBatch(p *peer, specs []spec) (ids []string, failed int) {
	var in strings.Builder
	for _, s := range specs {
		b, _ := json.Marshal(s)
		in.Write(b)
		in.WriteByte('\n')
	}
	out, _ := dockerIn(strings.NewReader(in.String()),
		"exec", "-i", p.name, "sh", "-c", submitScript)
	for _, line := range strings.Split(out, "\n") {
		if id := strings.TrimSpace(line); jobIDPattern.MatchString(id) {
			ids = append(ids, id)
		}
	}
	return ids, len(specs) - len(ids)
}

func (c *cluster) status(p *peer, id string) (jobStatus, error) {
	out, err := c.cli(p, "status", "-o", "json", id)
	if err != nil {
		return jobStatus{}, err
	}
	var st jobStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return jobStatus{}, fmt.Errorf("status of %s at %s: %w", id, p, err)
	}
	return st, nil
}

// statusScript prints `blixard status -o json` of each job ID of its
// input, or a line that marks the ID as unanswered.
const statusScript = `while IFS= read -r id; do
	/blixard status -o json "$id" 2>/dev/null ||
		printf '{"id":"%s","unanswered":true}\n' "$id"
done`

// statuses asks p for the status of every job of ids with one docker
// exec. A job p could not answer for is missing from the map.
func (c *cluster) statuses(p *peer, ids []string) (map[string]jobStatus, error) {
	out, err := dockerIn(strings.NewReader(strings.Join(ids, "\n")+"\n"),
		"exec", "-i", p.name, "sh", "-c", statusScript)
	if err != nil {
		return nil, err
	}
	got := make(map[string]jobStatus, len(ids))
	dec := json.NewDecoder(strings.NewReader(out))
	for {
		var line struct {
			jobStatus
			Unanswered bool `json:"unanswered"`
		}
		err := dec.Decode(&line)
		if errors.Is(err, io.EOF) {
			return got, nil
		}
		if err != nil {
			return nil, fmt.Errorf("statuses at %s: %w", p, err)
		}
		if !line.Unanswered {
			got[line.ID] = line.jobStatus
		}
	}
}

// summary is one entry of `blixard jobs -o json`.
type summary struct {
	ID       string `json:"id"`
	State    string `json:"state"`
	Owner    string `json:"owner"`
	ExitCode *int   `json:"exit_code"`
}

// logs returns the standard output of job id's latest attempt as p's
// `blixard logs` prints it.
func (c *cluster) logs(p *peer, id string) (string, error) {
	return c.cli(p, "logs", id)
}

// jobs returns what p's `jobs -o json` lists, by job ID.
func (c *cluster) jobs(p *peer) (map[string]summary, error) {
	out, err := c.cli(p, "jobs", "-o", "json", "--limit", "100000")
	if err != nil {
		return nil, err
	}
	var list []summary
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, fmt.Errorf("jobs at %s: %w", p, err)
	}
	byID := make(map[string]summary, len(list))
	for _, s := range list {
		byID[s.ID] = s
	}
	return byID, nil
}

// waitStatus polls p for job id until ok accepts its status, and returns
// that status.
func (c *cluster) waitStatus(p *peer, id string, timeout time.Duration, what string,
	ok func(jobStatus) bool) jobStatus {
	c.t.Helper()
	var st jobStatus
	waitFor(c.t, timeout, what, func() error {
		var err error
		if st, err = c.status(p, id); err != nil {
			return err
		}
		if !ok(st) {
			return fmt.Errorf("job %s is %s (%s), %d attempts", id, st.State, st.Reason,
				len(st.Attempts))
		}
		return nil
	})
	return st
}

// waitRunning waits until job id runs on a peer and returns its status.
func (c *cluster) waitRunning(p *peer, id string) jobStatus {
	c.t.Helper()
	return c.waitStatus(p, id, time.Minute, "job "+id+" to run", func(st jobStatus) bool {
		cur := st.current()
		return st.State == "running" && cur != nil && cur.State == "running"
	})
}

// waitTerminalAt waits until p reports job id terminal.
func (c *cluster) waitTerminalAt(p *peer, id string, timeout time.Duration) jobStatus {
	c.t.Helper()
	return c.waitStatus(p, id, timeout, "job "+id+" to end", func(st jobStatus) bool {
		return terminal(st.State)
	})
}

// run is one copy of a tickJob as its tick file shows it.
type run struct {
	job     string
	attempt int
	host    string
	ticks   []float64 // uptime at each tick, in order
}

func (r run) first() float64 { return r.ticks[0] }
func (r run) last() float64  { return r.ticks[len(r.ticks)-1] }

// within counts the ticks of r from lo to hi.
func (r run) within(lo, hi float64) int {
	n := 0
	for _, v := range r.ticks {
		if v >= lo && v <= hi {
			n++
		}
	}
	return n
}

// readTicks reads the tick files of every copy of every tickJob the
// cluster ran, by job ID.
func (c *cluster) readTicks() (map[string][]run, error) {
	names, err := filepath.Glob(filepath.Join(c.shared, "ticks.*"))
	if err != nil {
		return nil, err
	}
	runs := make(map[string][]run)
	for _, name := range names {
		parts := strings.SplitN(filepath.Base(name), ".", 4)
		if len(parts) != 4 {
			return nil, fmt.Errorf("tick file %s: want ticks.JOB.ATTEMPT.HOST", name)
		}
		n, err := strconv.Atoi(parts[2])
		if err != nil {
			return nil, fmt.Errorf("tick file %s: attempt: %w", name, err)
		}
		r := run{job: parts[1], attempt: n, host: parts[3]}
		if err := r.read(name); err != nil {
			return nil, err
		}
		if len(r.ticks) == 0 {
			continue // killed before its first tick was written
		}
		runs[r.job] = append(runs[r.job], r)
	}
	return runs, nil
}

func (r *run) read(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		v, err := strconv.ParseFloat(strings.TrimSpace(sc.Text()), 64)
		if err != nil {
			continue // a tick cut short by a kill
		}
		r.ticks = append(r.ticks, v)
	}
	return sc.Err()
}
