package store

import "errors"

// Group commit: Update calls that arrive while a commit is being synced
// wait for the committer, which runs them all in one transaction, so a
// single sync covers many writers. If the combined transaction fails for
// any reason (a function's error, a conflict, a transaction too big),
// each call is run again alone, so its outcome is what it would have been
// by itself.

// maxGroup bounds how many Update calls share one transaction.
const maxGroup = 64

// updateReq is one Update call waiting for the committer.
type updateReq struct {
	fn   func(tx *Txn) error
	done chan error
}

// errGroupFailed marks a combined transaction that has to be redone call
// by call.
var errGroupFailed = errors.New("group commit failed")

// runCommitter serves Update calls until stop is closed. It is the only
// goroutine that commits read-write transactions.
func (s *Store) runCommitter(stop <-chan struct{}) {
	defer s.committer.Done()
	for {
		var first *updateReq
		select {
		case <-stop:
			return
		case first = <-s.updates:
		}
		batch := []*updateReq{first}
	fill:
		for len(batch) < maxGroup {
			select {
			case r := <-s.updates:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		s.commitGroup(batch)
	}
}

// commitGroup commits batch in one transaction, or call by call when that
// fails.
func (s *Store) commitGroup(batch []*updateReq) {
	if len(batch) > 1 && s.tryGroup(batch) == nil {
		for _, r := range batch {
			r.done <- nil
		}
		return
	}
	for _, r := range batch {
		r.done <- s.updateAlone(r.fn)
	}
}

// tryGroup runs every function of batch in one transaction and commits
// it; any error undoes all of it.
func (s *Store) tryGroup(batch []*updateReq) error {
	btx := s.db.NewTransaction(true)
	defer btx.Discard()
	tx := &Txn{tx: btx, s: s}
	for _, r := range batch {
		if err := r.fn(tx); err != nil {
			tx.done = true
			return errGroupFailed
		}
	}
	tx.done = true
	if err := btx.Commit(); err != nil {
		return errGroupFailed
	}
	return nil
}
