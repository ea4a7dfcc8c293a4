//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package store

// dirLock is a no-op where flock is not available; badger's own directory
// lock still refuses a second opener, with badger's message.
type dirLock struct{}

func lockDir(string) (*dirLock, error) { return &dirLock{}, nil }

func (*dirLock) unlock() error { return nil }
