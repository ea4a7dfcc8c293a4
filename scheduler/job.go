package scheduler

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"
)

// State is where a job is in its lifecycle.
type State string

// The states of a job. Pending and Running may alternate (a lost attempt
// or a retry returns a job to Pending); the other three are terminal and
// final.
const (
	Pending   State = "pending"
	Running   State = "running"
	Succeeded State = "succeeded"
	Failed    State = "failed"
	Cancelled State = "cancelled"
)

// Terminal reports whether s is a final state.
func (s State) Terminal() bool {
	return s == Succeeded || s == Failed || s == Cancelled
}

// AttemptState is how one attempt of a job went.
type AttemptState string

// The states of an attempt.
const (
	AttemptRunning   AttemptState = "running"
	AttemptSucceeded AttemptState = "succeeded"
	AttemptFailed    AttemptState = "failed"
	AttemptLost      AttemptState = "lost"
	AttemptCancelled AttemptState = "cancelled"
)

// Attempt is one execution of a job on one peer.
type Attempt struct {
	N        int          `json:"n"`
	Peer     string       `json:"peer"`
	Epoch    uint64       `json:"epoch"`
	State    AttemptState `json:"state"`
	Started  time.Time    `json:"started"`
	Ended    time.Time    `json:"ended,omitzero"`
	ExitCode *int         `json:"exit_code,omitempty"`
	Reason   string       `json:"reason,omitempty"`
}

// Job is the record of one job. Its owner alone changes it; other peers
// hold copies (replicas) and summaries.
type Job struct {
	ID    string `json:"id"`
	Spec  Spec   `json:"spec"`
	Owner string `json:"owner"`
	// Epoch rises each time ownership moves. Every grant, heartbeat and
	// result carries it, so a message from before a takeover is refused.
	Epoch uint64 `json:"epoch"`
	// Version rises with every change the owner makes; a copy with a
	// higher (Epoch, Version) is newer.
	Version  uint64    `json:"version"`
	Replicas []string  `json:"replicas,omitempty"`
	State    State     `json:"state"`
	Reason   string    `json:"reason,omitempty"`
	ExitCode *int      `json:"exit_code,omitempty"`
	Attempts []Attempt `json:"attempts,omitempty"`
	// Duplicates counts results that arrived after the job's outcome was
	// decided, or for an attempt that was no longer current.
	Duplicates int       `json:"duplicates"`
	Submitted  time.Time `json:"submitted"`
	Finished   time.Time `json:"finished,omitzero"`
	// Cancel records that a user asked to cancel the job.
	Cancel bool `json:"cancel,omitempty"`
}

// Current returns the latest attempt, or nil before the first.
func (j *Job) Current() *Attempt {
	if len(j.Attempts) == 0 {
		return nil
	}
	return &j.Attempts[len(j.Attempts)-1]
}

// Newer reports whether j is a later version of the same job than o.
func (j *Job) Newer(o *Job) bool {
	return newerVersion(j.Epoch, j.Version, o.Epoch, o.Version)
}

// newerVersion orders (epoch, version) pairs: a later epoch wins, then a
// later version within it.
func newerVersion(epoch, version, oEpoch, oVersion uint64) bool {
	if epoch != oEpoch {
		return epoch > oEpoch
	}
	return version > oVersion
}

// Clone returns a deep copy of j.
func (j *Job) Clone() *Job {
	c := *j
	c.Attempts = append([]Attempt(nil), j.Attempts...)
	for i, a := range c.Attempts {
		c.Attempts[i].ExitCode = cloneInt(a.ExitCode)
	}
	c.Replicas = append([]string(nil), j.Replicas...)
	c.ExitCode = cloneInt(j.ExitCode)
	c.Spec.Command = append([]string(nil), j.Spec.Command...)
	c.Spec.Require = append([]string(nil), j.Spec.Require...)
	c.Spec.Payload = append([]byte(nil), j.Spec.Payload...)
	if j.Spec.Env != nil {
		c.Spec.Env = make(map[string]string, len(j.Spec.Env))
		for k, v := range j.Spec.Env {
			c.Spec.Env[k] = v
		}
	}
	return &c
}

func cloneInt(p *int) *int {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// failedAttempts counts the attempts that ran and failed, the ones that
// retries pay for. Lost attempts are retried without counting.
func (j *Job) failedAttempts() int {
	n := 0
	for _, a := range j.Attempts {
		if a.State == AttemptFailed {
			n++
		}
	}
	return n
}

// lostAttempts counts attempts lost with their runner.
func (j *Job) lostAttempts() int {
	n := 0
	for _, a := range j.Attempts {
		if a.State == AttemptLost {
			n++
		}
	}
	return n
}

// maxLostAttempts bounds how often a job is re-run after losing its
// runner, so a job that brings down every peer it lands on ends.
const maxLostAttempts = 10

// startAttempt moves a pending job to running on runner and returns the
// new attempt.
func (j *Job) startAttempt(runner string, now time.Time) (Attempt, error) {
	if j.State != Pending {
		return Attempt{}, fmt.Errorf("job %s is %s, not pending", j.ID, j.State)
	}
	a := Attempt{
		N:       len(j.Attempts) + 1,
		Peer:    runner,
		Epoch:   j.Epoch,
		State:   AttemptRunning,
		Started: now,
	}
	j.Attempts = append(j.Attempts, a)
	j.State = Running
	j.Reason = ""
	j.Version++
	return a, nil
}

// outcome is what a runner reports for an attempt.
type outcome struct {
	ExitCode  int
	Reason    string
	Cancelled bool
}

// applyResult records the result of attempt n. It returns false when the
// result is not for the current attempt of a running job: the job is then
// unchanged except for its duplicate count. retry reports whether the job
// went back to pending for another attempt.
func (j *Job) applyResult(n int, epoch uint64, o outcome, now time.Time) (applied, retry bool) {
	cur := j.Current()
	if j.State == Cancelled && cur != nil && cur.N == n &&
		cur.State == AttemptCancelled && cur.ExitCode == nil {
		// The runner confirms it stopped the attempt a user cancelled.
		code := o.ExitCode
		cur.ExitCode = &code
		cur.Ended = now
		j.Version++
		return false, false
	}
	if j.State != Running || cur == nil || cur.N != n ||
		cur.State != AttemptRunning || epoch != j.Epoch {
		j.Duplicates++
		j.Version++
		return false, false
	}
	code := o.ExitCode
	cur.ExitCode = &code
	cur.Ended = now
	cur.Reason = o.Reason
	j.Version++
	switch {
	case o.Cancelled || j.Cancel:
		cur.State = AttemptCancelled
		j.finish(Cancelled, code, firstNonEmpty(o.Reason, "cancelled"), now)
	case code == 0:
		cur.State = AttemptSucceeded
		j.finish(Succeeded, 0, "", now)
	default:
		cur.State = AttemptFailed
		if j.failedAttempts() <= j.Spec.Retries {
			j.State = Pending
			j.Reason = fmt.Sprintf("attempt %d failed (%s); retrying", n, o.Reason)
			return true, true
		}
		j.finish(Failed, code, o.Reason, now)
	}
	return true, false
}

// loseAttempt records that the current attempt's runner went silent. The
// job goes back to pending, or fails once it has lost too many runners.
func (j *Job) loseAttempt(reason string, now time.Time) {
	cur := j.Current()
	if j.State != Running || cur == nil {
		return
	}
	cur.State = AttemptLost
	cur.Ended = now
	cur.Reason = reason
	j.Version++
	if j.Cancel {
		j.finish(Cancelled, -1, "cancelled", now)
		return
	}
	if j.lostAttempts() >= maxLostAttempts {
		j.finish(Failed, -1, fmt.Sprintf("lost %d runners; last: %s", maxLostAttempts, reason), now)
		return
	}
	j.State = Pending
	j.Reason = "attempt " + fmt.Sprint(cur.N) + " lost: " + reason
}

// cancel ends a job that has not finished. A running job's attempt is
// recorded as cancelled; the runner is told to stop.
func (j *Job) cancel(now time.Time) bool {
	if j.State.Terminal() {
		return false
	}
	j.Cancel = true
	if cur := j.Current(); j.State == Running && cur != nil {
		cur.State = AttemptCancelled
		cur.Ended = now
		cur.Reason = "cancelled"
	}
	j.finish(Cancelled, -1, "cancelled", now)
	j.Version++
	return true
}

// finish moves j to a terminal state. A terminal state never changes.
func (j *Job) finish(s State, code int, reason string, now time.Time) {
	if j.State.Terminal() {
		return
	}
	j.State = s
	j.Reason = reason
	if code >= 0 {
		c := code
		j.ExitCode = &c
	}
	j.Finished = now
}

// backoff is the delay before the attempt after failed attempt n (from
// 1): exponential from the spec's backoff, capped, with up to 25% jitter.
func (j *Job) backoff(n int, jitter func(time.Duration) time.Duration) time.Duration {
	base := j.Spec.Backoff.D()
	if base == 0 {
		base = DefaultBackoff
	}
	d := base
	for i := 1; i < n && d < MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, MaxBackoff)
	if jitter != nil {
		d += jitter(d / 4)
	}
	return d
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// NewJobID returns a new job ID: the low 6 bytes of the time in
// milliseconds and 8 random bytes, in lowercase hex, so IDs sort by
// submission time.
func NewJobID(now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli()))
	_, _ = rand.Read(b[8:])
	return hex.EncodeToString(b[2:])
}

// validJobID reports whether s has the form NewJobID makes.
func validJobID(s string) bool {
	if len(s) != 28 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
