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
// its debug chatter is filtered like ours. Lines that say a packet or
// stream failed authentication go to unauthenticated instead (when not
// nil), which counts them and logs at a bounded rate: a stranger
// flooding the port must not flood the log.
func newMemberlistLogger(logger *slog.Logger, unauthenticated func(line string)) *log.Logger {
	return log.New(levelWriter{log: logger.With("lib", "memberlist"), unauthenticated: unauthenticated}, "", 0)
}

// levelWriter maps memberlist's "[LEVEL] " prefixes onto slog levels. Each
// Write is one log line (log.Logger guarantees that).
type levelWriter struct {
	log             *slog.Logger
	unauthenticated func(line string)
}

// isAuthFailure reports whether a memberlist log line (without its level)
// says that a packet or stream was dropped because no key of ours opened
// it, it was not encrypted, or it lacked our label. memberlist v0.7.0
// reports these only as log lines (and to go-metrics' global registry,
// which we do not use), so the text is matched here; a test sends such
// traffic and checks the count, so a memberlist upgrade that rewords them
// fails it.
func isAuthFailure(line []byte) bool {
	switch {
	case bytes.Contains(line, []byte("Decrypt packet failed")),
		bytes.Contains(line, []byte("unacceptable label")):
		return true
	case bytes.Contains(line, []byte("failed to receive")):
		l := bytes.ToLower(line)
		return bytes.Contains(l, []byte("crypt")) || bytes.Contains(l, []byte("label"))
	}
	return false
}

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
	if w.unauthenticated != nil && level >= slog.LevelWarn && isAuthFailure(p) {
		w.unauthenticated(string(bytes.TrimRight(p, "\r\n")))
		return n, nil
	}
	ctx := context.Background()
	if !w.log.Enabled(ctx, level) {
		return n, nil
	}
	w.log.Log(ctx, level, string(bytes.TrimRight(p, "\r\n")))
	return n, nil
}
