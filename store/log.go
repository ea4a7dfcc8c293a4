package store

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// badgerLogger adapts a *slog.Logger to badger's printf-style Logger.
// Badger reports routine work (tables opened, memtables flushed) at info
// level; a quiet peer keeps that at Debug.
type badgerLogger struct {
	log *slog.Logger
}

func newBadgerLogger(l *slog.Logger) badgerLogger {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return badgerLogger{log: l.With("component", "store")}
}

func (b badgerLogger) Errorf(format string, args ...any) {
	b.emit(slog.LevelError, format, args)
}

func (b badgerLogger) Warningf(format string, args ...any) {
	b.emit(slog.LevelWarn, format, args)
}

func (b badgerLogger) Infof(format string, args ...any) {
	b.emit(slog.LevelDebug, format, args)
}

func (b badgerLogger) Debugf(format string, args ...any) {
	b.emit(slog.LevelDebug, format, args)
}

// emit formats the message only when its level is enabled, since badger
// logs from hot paths at debug level.
func (b badgerLogger) emit(level slog.Level, format string, args []any) {
	ctx := context.Background()
	if !b.log.Enabled(ctx, level) {
		return
	}
	msg := strings.TrimSpace(fmt.Sprintf(format, args...))
	b.log.Log(ctx, level, msg, "library", "badger")
}
