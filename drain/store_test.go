package drain

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// openStore opens a store for node; path "" keeps it in memory.
func openStore(t *testing.T, node, path string) *Store {
	t.Helper()
	s, err := Open(StoreConfig{Node: node, Path: path}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	return s
}

func TestCreateRejects(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s := openStore(t, "a", path)
	tests := []struct {
		name string
		spec Spec
		want string
	}{
		{"no site", Spec{Reason: "x"}, "site: required"},
		{"empty reason", Spec{Key: Key{Site: "dc1"}, Reason: "  "}, "reason: required"},
		{"long reason", Spec{Key: Key{Site: "dc1"}, Reason: strings.Repeat("x", MaxReason+1)}, "reason: 257 bytes"},
		{"expiry in the past", Spec{Key: Key{Site: "dc1"}, Reason: "x", Expires: t0.Add(-time.Second)}, "is not in the future"},
		{"expiry now", Spec{Key: Key{Site: "dc1"}, Reason: "x", Expires: t0}, "is not in the future"},
		{"too many clients", Spec{Key: Key{Site: "dc1", Clients: make([]netip.Prefix, MaxClients+1)}, Reason: "x"}, "clients: 17 prefixes"},
		{"invalid client", Spec{Key: Key{Site: "dc1", Clients: []netip.Prefix{{}}}, Reason: "x"}, "clients[0]: not a valid prefix"},
		{"blank in site", Spec{Key: Key{Site: "dc 1"}, Reason: "x"}, "not a site name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Create(tc.spec, "ops", t0)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Create = %v, want ErrInvalid containing %q", err, tc.want)
			}
		})
	}
	if n := len(s.Records()); n != 0 {
		t.Errorf("after rejected creates the store holds %d records, want 0", n)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after rejected creates the state file exists (err %v), want none written", err)
	}
	if ev := s.Events(0); len(ev) != 0 {
		t.Errorf("after rejected creates there are %d events, want 0", len(ev))
	}
}

func TestCreateDelete(t *testing.T) {
	s := openStore(t, "a", "")
	spec := Spec{Key: Key{Site: "dc1", Service: "Talk.Example.com"}, Reason: "fire alarm", Expires: t0.Add(time.Hour)}
	r, err := s.Create(spec, "alice", t0)
	if err != nil {
		t.Fatal(err)
	}
	if r.Service != "talk.example.com." || r.By != "alice" || r.Stamp.Node != "a" || r.ID != spec.Key.ID() {
		t.Errorf("Create = %+v, want canonical service, by alice, stamped by a, ID of the scope", r)
	}
	select {
	case <-s.Changed():
	default:
		t.Error("Create did not signal Changed")
	}
	if _, err := s.Create(spec, "bob", t0.Add(time.Second)); !errors.Is(err, ErrExists) {
		t.Errorf("second Create of the same scope = %v, want ErrExists", err)
	}
	if _, err := s.Delete("000000000000", "bob", "", t0); !errors.Is(err, ErrNotFound) {
		t.Errorf("Delete(unknown) = %v, want ErrNotFound", err)
	}
	d, err := s.Delete(r.ID, "bob", "all clear", t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if !d.Deleted || d.By != "bob" || d.Reason != "all clear" || d.Stamp.Compare(r.Stamp) <= 0 {
		t.Errorf("Delete = %+v, want a later tombstone by bob", d)
	}
	if _, err := s.Delete(r.ID, "bob", "", t0.Add(time.Minute)); !errors.Is(err, ErrNotFound) {
		t.Errorf("Delete of a tombstone = %v, want ErrNotFound", err)
	}
	if s.View(t0.Add(time.Minute)).Len() != 0 {
		t.Error("View after delete holds a drain")
	}
	// A new drain of the same scope after the delete.
	if _, err := s.Create(spec, "carol", t0.Add(2*time.Minute)); err != nil {
		t.Errorf("Create after Delete = %v, want nil", err)
	}
	ev := s.Events(0)
	if len(ev) != 3 || ev[0].Action != ActionCreate || ev[1].Action != ActionDelete || ev[0].Drain.By != "carol" || ev[2].Via != ViaAPI {
		t.Errorf("Events = %+v, want create, delete, create newest first", ev)
	}
	if got := s.Events(1); len(got) != 1 {
		t.Errorf("Events(1) returned %d", len(got))
	}
}

func TestExpiredScopeCanBeDrainedAgain(t *testing.T) {
	s := openStore(t, "a", "")
	spec := Spec{Key: Key{Site: "dc1"}, Reason: "short", Expires: t0.Add(time.Minute)}
	r, err := s.Create(spec, "ops", t0)
	if err != nil {
		t.Fatal(err)
	}
	later := t0.Add(2 * time.Minute)
	if _, err := s.Delete(r.ID, "ops", "", later); !errors.Is(err, ErrNotFound) {
		t.Errorf("Delete of an expired drain = %v, want ErrNotFound", err)
	}
	spec.Expires = time.Time{}
	if _, err := s.Create(spec, "ops", later); err != nil {
		t.Errorf("Create over an expired drain = %v, want nil", err)
	}
}

func TestPersistRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", FileName)
	s := openStore(t, "a", path)
	r1, err := s.Create(Spec{Key: Key{Site: "dc1"}, Reason: "fire alarm"}, "ops", t0)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := s.Create(Spec{Key: Key{Site: "dc2", Service: "talk.example.com",
		Clients: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, Reason: "drill", Expires: t0.Add(time.Hour)}, "ops", t0)
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.Delete(r1.ID, "ops", "all clear", t0.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	// A restart: the clock is an hour behind now, yet new stamps follow
	// the old ones.
	s2 := openStore(t, "a", path)
	got := s2.Records()
	if len(got) != 2 || !sameRecord(got[0], pick(d, r2, got[0].ID)) || !sameRecord(got[1], pick(d, r2, got[1].ID)) {
		t.Fatalf("after reopen Records() = %+v, want %+v and %+v", got, d, r2)
	}
	r3, err := s2.Create(Spec{Key: Key{Site: "dc3"}, Reason: "x"}, "ops", t0.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if r3.Stamp.Compare(d.Stamp) <= 0 {
		t.Errorf("stamp after restart %v, want after %v", r3.Stamp, d.Stamp)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("state file: %v, mode %v; want private", err, fi.Mode())
	}
}

func pick(a, b Record, id string) Record {
	if a.ID == id {
		return a
	}
	return b
}

// TestCrashDuringWrite stops a write after the temporary file is written
// and fsynced but before the rename, as a crash there would: the write
// fails, nothing changes, the old file holds, and the next start removes
// the leftover.
func TestCrashDuringWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	s := openStore(t, "a", path)
	if _, err := s.Create(Spec{Key: Key{Site: "dc1"}, Reason: "first"}, "ops", t0); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	crash := errors.New("crash")
	s.SetBeforeRename(func() error { return crash })
	if _, err := s.Create(Spec{Key: Key{Site: "dc2"}, Reason: "second"}, "ops", t0); !errors.Is(err, crash) {
		t.Fatalf("Create during a crash = %v, want the crash", err)
	}
	if n := len(s.Records()); n != 1 {
		t.Errorf("after a failed write the store holds %d records, want 1", n)
	}
	// Leave a temporary file behind, as a crash would have.
	if err := os.WriteFile(filepath.Join(dir, tempPrefix+"123"), []byte(`{"version":1,"rec`), 0o600); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(path)
	if string(after) != string(before) {
		t.Errorf("state file changed by a failed write:\n%s\nwant\n%s", after, before)
	}
	s2 := openStore(t, "a", path)
	if got := s2.Records(); len(got) != 1 || got[0].Reason != "first" {
		t.Errorf("after the crash Records() = %+v, want the first drain only", got)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("state directory holds %d files after restart, want the state file only", len(entries))
	}
}

func TestOpenRejectsBadStateFile(t *testing.T) {
	tests := []struct {
		name, content, want string
	}{
		{"not json", "{", "unexpected end of JSON input"},
		{"newer version", `{"version":2}`, "version 2"},
		{"bad record", `{"version":1,"records":[{"id":"x","site":"dc1","stamp":{"wall":1,"node":"a"}}]}`, "does not match the scope"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), FileName)
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Open(StoreConfig{Node: "a", Path: path}, slog.New(slog.DiscardHandler))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("Open = %v, want an error naming %s and %q", err, path, tc.want)
			}
		})
	}
}

func TestMergeFromPeer(t *testing.T) {
	a := openStore(t, "a", "")
	r, err := a.Create(Spec{Key: Key{Site: "dc1"}, Reason: "fire alarm"}, "ops", t0)
	if err != nil {
		t.Fatal(err)
	}
	b := openStore(t, "b", "")
	bad := r
	bad.ID = "000000000000"
	won, err := b.Merge([]Record{r, bad}, t0)
	if len(won) != 1 || err == nil {
		t.Errorf("Merge(good, bad) = %d won, err %v; want 1 and an error", len(won), err)
	}
	if won, _ := b.Merge([]Record{r}, t0); len(won) != 0 {
		t.Errorf("Merge of a record already held won %d times, want 0 (idempotent)", len(won))
	}
	ev := b.Events(0)
	if len(ev) != 1 || ev[0].Via != ViaGossip || ev[0].Drain.Stamp.Node != "a" {
		t.Errorf("Events = %+v, want one create via gossip from a", ev)
	}
	// A tombstone long past its grace is not taken in.
	old := r
	old.Deleted, old.At = true, t0.Add(-DefaultGrace-time.Hour)
	old.Stamp.Wall++
	c := openStore(t, "c", "")
	if won, _ := c.Merge([]Record{old}, t0); len(won) != 0 {
		t.Errorf("Merge of a tombstone past its grace won, want ignored")
	}
}

// TestRunExpiresAndForgets runs the store's loop on a fake clock: a drain
// expires at its time (an event, a Changed signal), and its record is
// forgotten after the grace period, in memory and in the state file.
func TestRunExpiresAndForgets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), FileName)
		s, err := Open(StoreConfig{Node: "a", Path: path, Grace: time.Hour}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- s.Run(ctx) }()

		start := time.Now()
		r, err := s.Create(Spec{Key: Key{Site: "dc1"}, Reason: "maintenance", Expires: start.Add(10 * time.Minute)}, "ops", start)
		if err != nil {
			t.Fatal(err)
		}
		<-s.Changed()
		time.Sleep(10*time.Minute - time.Millisecond)
		synctest.Wait()
		select {
		case <-s.Changed():
			t.Fatal("Changed before the drain expired")
		default:
		}
		if !s.View(time.Now()).Drained("x.", "dc1", netip.Addr{}) {
			t.Fatal("drain not in force just before its expiry")
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		select {
		case <-s.Changed():
		default:
			t.Fatal("no Changed signal at expiry")
		}
		if s.View(time.Now()).Len() != 0 {
			t.Error("drain in force after its expiry")
		}
		if ev := s.Events(1); len(ev) != 1 || ev[0].Action != ActionExpire || ev[0].Drain.ID != r.ID {
			t.Errorf("newest event = %+v, want the expiry of %s", ev, r.ID)
		}
		if _, ok := s.Get(r.ID); !ok {
			t.Error("expired record forgotten before the grace period")
		}
		time.Sleep(time.Hour + time.Second)
		synctest.Wait()
		if _, ok := s.Get(r.ID); ok {
			t.Error("expired record kept past the grace period")
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
		s2, err := Open(StoreConfig{Node: "a", Path: path}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if n := len(s2.Records()); n != 0 {
			t.Errorf("state file holds %d records after the grace period, want 0", n)
		}
	})
}

// TestRunSavesMerges: records received from a peer reach the state file
// through Run, without the gossip callback doing I/O.
func TestRunSavesMerges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := openStore(t, "a", "")
		r, err := a.Create(Spec{Key: Key{Site: "dc1"}, Reason: "fire alarm"}, "ops", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), FileName)
		b := openStore(t, "b", path)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- b.Run(ctx) }()
		if _, err := b.Merge([]Record{r}, time.Now()); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := openStore(t, "b", path).Records(); len(got) != 1 || got[0].ID != r.ID {
			t.Errorf("state file after a merge holds %+v, want %s", got, r.ID)
		}
		cancel()
		<-done
	})
}

func TestEventsRing(t *testing.T) {
	s, err := Open(StoreConfig{Node: "a", Events: 3}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for _, site := range []string{"s1", "s2", "s3", "s4", "s5"} {
		if _, err := s.Create(Spec{Key: Key{Site: site}, Reason: "x"}, "ops", t0); err != nil {
			t.Fatal(err)
		}
	}
	ev := s.Events(0)
	var got []string
	for _, e := range ev {
		got = append(got, e.Drain.Site)
	}
	if strings.Join(got, ",") != "s5,s4,s3" {
		t.Errorf("Events() sites = %v, want s5,s4,s3 (newest first, 3 kept)", got)
	}
}
