package store

import (
	"errors"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// runGC collects value-log garbage every interval until Close.
func (s *Store) runGC(interval time.Duration) {
	defer s.bg.Done()
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-ticker.C:
			s.collectGarbage()
		}
	}
}

// collectGarbage rewrites value-log files while badger finds one that is
// at least half garbage, up to a bound, and stops early on Close.
func (s *Store) collectGarbage() {
	rewritten := 0
	var err error
	for rewritten < maxGCRewrites {
		select {
		case <-s.done:
			return
		default:
		}
		if err = s.db.RunValueLogGC(gcDiscardRatio); err != nil {
			break
		}
		rewritten++
	}
	if err != nil && !errors.Is(err, badger.ErrNoRewrite) &&
		!errors.Is(err, badger.ErrRejected) {
		s.log.Warn("value log gc failed", "error", err,
			"files_rewritten", rewritten)
		return
	}
	s.log.Debug("value log gc", "files_rewritten", rewritten)
}
