package main

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// positioned is a problem reported as "file:line: message".
var positioned = regexp.MustCompile(`^[^\s:]+:\d+: \S`)

// TestCheckAndServeAgree runs every configuration through gslbd check and
// through gslbd serve's start-up: both must refuse it (exit 2) or both
// accept it. Every invalid fixture under testdata/bad is refused with
// file:line messages; the valid ones start a node, which is then stopped.
func TestCheckAndServeAgree(t *testing.T) {
	bad, err := filepath.Glob("testdata/bad/*.yaml")
	if err != nil || len(bad) == 0 {
		t.Fatalf("no bad fixtures: %v", err)
	}
	type testCase struct {
		name   string
		config string
		valid  bool
	}
	var tests []testCase
	for _, f := range bad {
		tests = append(tests, testCase{name: filepath.Base(f), config: f})
	}
	_, alone := reloadFixture(t, `{listen: "127.0.0.1:0"}`)
	tests = append(tests, testCase{name: "valid, alone", config: alone, valid: true})
	tests = append(tests, testCase{name: "valid, with gossip and a key", config: gossipFixture(t), valid: true})

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkCode, checkMsg := exitCode(t, run(context.Background(), []string{"check", "-config", tc.config},
				func(string) string { return "" }, io.Discard, io.Discard, hooks{}))

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			started := false
			logs := &syncBuffer{}
			serveErr := run(ctx, []string{"serve", "-config", tc.config}, func(string) string { return "" }, io.Discard, logs,
				hooks{ready: func(bound) { started = true; cancel() }})
			serveCode, serveMsg := exitCode(t, serveErr)
			if serveCode == 0 && !started {
				t.Fatalf("gslbd serve -config %s neither refused nor started: %v\n%s", tc.config, serveErr, logs)
			}

			if checkCode != serveCode {
				t.Fatalf("gslbd check -config %s: exit %d (%s); gslbd serve: exit %d (%s); want the same verdict",
					tc.config, checkCode, checkMsg, serveCode, serveMsg)
			}
			if tc.valid {
				if checkCode != 0 {
					t.Fatalf("gslbd check -config %s: exit %d, want 0\n%s", tc.config, checkCode, checkMsg)
				}
				return
			}
			if checkCode != 2 {
				t.Fatalf("gslbd check -config %s: exit %d, want 2", tc.config, checkCode)
			}
			if checkMsg != serveMsg {
				t.Errorf("gslbd check says\n%s\ngslbd serve says\n%s\nwant the same", checkMsg, serveMsg)
			}
			for _, line := range strings.Split(checkMsg, "\n") {
				if !positioned.MatchString(line) {
					t.Errorf("gslbd check -config %s: %q is not file:line: message", tc.config, line)
				}
			}
		})
	}
}

// exitCode returns the exit status err stands for and its message; an
// error that is not an exitError fails the test.
func exitCode(t *testing.T, err error) (int, string) {
	t.Helper()
	var ee exitError
	switch {
	case err == nil:
		return 0, ""
	case errors.As(err, &ee):
		return ee.code, ee.msg
	}
	t.Fatalf("unexpected error %v", err)
	return 0, ""
}

// gossipFixture writes a node configuration with gossip on 127.0.0.1:0
// and a key file, and returns its path.
func gossipFixture(t *testing.T) string {
	t.Helper()
	_, cfg := reloadFixture(t, `{listen: "127.0.0.1:0"}`)
	dir := filepath.Dir(cfg)
	writeFile(t, filepath.Join(dir, "gossip.key"), "MDEyMzQ1Njc4OWFiY2RlZg==\n") // 16 bytes
	path := filepath.Join(dir, "gossip.yaml")
	writeFile(t, path, `node: {name: t, site: dc1}
dns: {listen: ["127.0.0.1:0"]}
admin: {listen: "127.0.0.1:0"}
cluster: {bind: "127.0.0.1:0", key_file: gossip.key}
zones: [{origin: example.com., file: example.com.zone}]
`)
	return path
}
