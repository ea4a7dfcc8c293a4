package scheduler

import "time"

// Status is the view of a job that users read: `blixard status -o json`
// prints it.
type Status struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	State State  `json:"state"`
	// Peer ran the latest attempt; empty before the first.
	Peer       string    `json:"peer"`
	Owner      string    `json:"owner"`
	Epoch      uint64    `json:"epoch"`
	Executor   string    `json:"executor"`
	Require    []string  `json:"require,omitempty"`
	Attempts   []Attempt `json:"attempts"`
	ExitCode   *int      `json:"exit_code"`
	Reason     string    `json:"reason"`
	Duplicates int       `json:"duplicates"`
	Replicas   []string  `json:"replicas,omitempty"`
	Submitted  time.Time `json:"submitted"`
	Finished   time.Time `json:"finished,omitzero"`
}

// Status returns j as users see it.
func (j *Job) Status() Status {
	s := Status{
		ID:         j.ID,
		Name:       j.Spec.Name,
		State:      j.State,
		Owner:      j.Owner,
		Epoch:      j.Epoch,
		Executor:   j.Spec.Executor,
		Require:    j.Spec.Require,
		Attempts:   j.Attempts,
		ExitCode:   j.ExitCode,
		Reason:     j.Reason,
		Duplicates: j.Duplicates,
		Replicas:   j.Replicas,
		Submitted:  j.Submitted,
		Finished:   j.Finished,
	}
	if s.Attempts == nil {
		s.Attempts = []Attempt{}
	}
	if cur := j.Current(); cur != nil {
		s.Peer = cur.Peer
	}
	return s
}
