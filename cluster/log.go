package cluster

import (
	"bytes"
	"context"
	"log"
	"log/slog"
)

// newMemberlistLogger returns the *log.Logger memberlist wants, writing
// through logger. memberlist puts the level inside the text ("[WARN]
// memberlist: ..."); the writer turns it back into a slog level so that
// its debug chatter is filtered like ours.
func newMemberlistLogger(logger *slog.Logger) *log.Logger {
	return log.New(levelWriter{logger.With("lib", "memberlist")}, "", 0)
}

// levelWriter maps memberlist's "[LEVEL] " prefixes onto slog levels. Each
// Write is one log line (log.Logger guarantees that).
type levelWriter struct{ log *slog.Logger }

var levelPrefixes = []struct {
	prefix []byte
	level  slog.Level
}{
	{[]byte("[DEBUG] "), slog.LevelDebug},
	{[]byte("[TRACE] "), slog.LevelDebug},
	{[]byte("[INFO] "), slog.LevelInfo},
	{[]byte("[WARN] "), slog.LevelWarn},
	{[]byte("[ERR] "), slog.LevelError},
	{[]byte("[ERROR] "), slog.LevelError},
}

func (w levelWriter) Write(p []byte) (int, error) {
	n := len(p)
	level := slog.LevelInfo
	for _, lp := range levelPrefixes {
		if rest, ok := bytes.CutPrefix(p, lp.prefix); ok {
			level, p = lp.level, rest
			break
		}
	}
	ctx := context.Background()
	if !w.log.Enabled(ctx, level) {
		return n, nil
	}
	w.log.Log(ctx, level, string(bytes.TrimRight(p, "\r\n")))
	return n, nil
}
