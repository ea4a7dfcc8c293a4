package store

import (
	"bytes"
	"errors"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"
)

// Txn is a transaction handed to the function given to Store.Update or
// Store.View. It is valid only until that function returns and is not
// safe for concurrent use. Reads see the snapshot the transaction started
// on plus its own writes.
type Txn struct {
	tx   *badger.Txn
	s    *Store
	done bool
}

// Get returns a copy of the value under key, or ErrNotFound, unwrapped.
func (t *Txn) Get(key []byte) ([]byte, error) {
	if t.done {
		return nil, ErrTxnDone
	}
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	item, err := t.tx.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", quoteKey(key), err)
	}
	value, err := item.ValueCopy(nil)
	if err != nil {
		return nil, fmt.Errorf("get %s: read value: %w", quoteKey(key), err)
	}
	return value, nil
}

// Set stores value under key when the transaction commits. It copies key
// and value, so the caller may reuse them at once.
func (t *Txn) Set(key, value []byte) error {
	if t.done {
		return ErrTxnDone
	}
	if err := checkKey(key); err != nil {
		return fmt.Errorf("set: %w", err)
	}
	if len(value) > t.s.maxValue {
		return fmt.Errorf("set %s: value of %d bytes exceeds the limit "+
			"of %d", quoteKey(key), len(value), t.s.maxValue)
	}
	err := t.tx.Set(bytes.Clone(key), bytes.Clone(value))
	return t.writeError("set", key, err)
}

// Delete removes key when the transaction commits.
func (t *Txn) Delete(key []byte) error {
	if t.done {
		return ErrTxnDone
	}
	if err := checkKey(key); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	return t.writeError("delete", key, t.tx.Delete(bytes.Clone(key)))
}

func (t *Txn) writeError(action string, key []byte, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, badger.ErrTxnTooBig):
		return fmt.Errorf("%s %s: %w", action, quoteKey(key), t.s.tooBig())
	case errors.Is(err, badger.ErrReadOnlyTxn):
		return fmt.Errorf("%s %s: %w", action, quoteKey(key), ErrReadOnly)
	default:
		return fmt.Errorf("%s %s: %w", action, quoteKey(key), err)
	}
}

// Scan is Store.Scan within the transaction; it sees the transaction's
// writes made before the scan began, not those made during it.
func (t *Txn) Scan(prefix []byte, fn func(key, value []byte) error) error {
	return t.ScanFrom(prefix, nil, fn)
}

// ScanFrom is Store.ScanFrom within the transaction.
func (t *Txn) ScanFrom(prefix, start []byte,
	fn func(key, value []byte) error) error {
	if t.done {
		return ErrTxnDone
	}
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = prefix
	it := t.tx.NewIterator(opts)
	defer it.Close()

	seek := prefix
	if bytes.Compare(start, prefix) > 0 {
		seek = start
	}
	for it.Seek(seek); it.ValidForPrefix(prefix); it.Next() {
		if err := visit(it.Item(), fn); err != nil {
			return err
		}
	}
	return nil
}

// visit passes one item to fn, returning fn's error as is.
func visit(item *badger.Item, fn func(key, value []byte) error) error {
	var fnErr error
	err := item.Value(func(value []byte) error {
		fnErr = fn(item.Key(), value)
		return fnErr
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("scan: read value of %s: %w",
			quoteKey(item.Key()), err)
	}
	return nil
}
