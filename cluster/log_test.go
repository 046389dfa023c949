package cluster

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestMemberlistLogLevels(t *testing.T) {
	tests := []struct {
		line      string
		wantLevel string
		wantMsg   string
	}{
		{"[DEBUG] memberlist: Stream connection from=127.0.0.1:1\n", "DEBUG", "memberlist: Stream connection from=127.0.0.1:1"},
		{"[INFO] memberlist: Marking b as failed\n", "INFO", "memberlist: Marking b as failed"},
		{"[WARN] memberlist: Refuting a suspect message\n", "WARN", "memberlist: Refuting a suspect message"},
		{"[ERR] memberlist: Failed to send\n", "ERROR", "memberlist: Failed to send"},
		{"[ERROR] memberlist: Failed\n", "ERROR", "memberlist: Failed"},
		{"no level\n", "INFO", "no level"},
	}
	for _, tc := range tests {
		t.Run(tc.wantLevel+" "+tc.wantMsg, func(t *testing.T) {
			var buf bytes.Buffer
			h := slog.NewTextHandler(&buf, &slog.HandlerOptions{
				Level: slog.LevelDebug,
				ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
					if a.Key == slog.TimeKey {
						return slog.Attr{}
					}
					return a
				},
			})
			newMemberlistLogger(slog.New(h), nil).Print(strings.TrimSuffix(tc.line, "\n"))
			want := "level=" + tc.wantLevel + " msg=\"" + tc.wantMsg + "\" lib=memberlist\n"
			if got := buf.String(); got != want {
				t.Errorf("log %q:\n got %q\nwant %q", tc.line, got, want)
			}
		})
	}
}

func TestMemberlistDebugFiltered(t *testing.T) {
	var buf bytes.Buffer
	l := newMemberlistLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})), nil)
	l.Print("[DEBUG] memberlist: chatter")
	if buf.Len() != 0 {
		t.Errorf("debug line logged at info level: %q", buf.String())
	}
}
