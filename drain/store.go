package drain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Defaults for [StoreConfig].
const (
	// DefaultGrace is how long tombstones and expired drains are kept
	// after they end, so that a peer that missed the end cannot bring the
	// drain back.
	DefaultGrace = 7 * 24 * time.Hour
	// DefaultEvents is how many events the store keeps for the admin API.
	DefaultEvents = 256
)

// DefaultMaxSkew is how far ahead of this node's clock a stamp may be
// before it is refused.
const DefaultMaxSkew = time.Minute

// retrySave is the pause before retrying a failed write of the state file.
const retrySave = 5 * time.Second

// StoreConfig configures a [Store].
type StoreConfig struct {
	// Node is this node's name; it goes into the stamps of local writes.
	Node string
	// Path is the state file (normally <state_dir>/drains.json). Empty
	// keeps drains in memory only.
	Path string
	// Grace is how long tombstones and expired drains are kept after
	// they end. Default [DefaultGrace].
	Grace time.Duration
	// Events is how many audit events are kept. Default [DefaultEvents].
	Events int
	// MaxSkew is how far ahead of this node's clock a record's stamp may
	// be. A record stamped further ahead is refused (wrapping
	// [ErrFutureStamp]) and never stored: it would win over every later
	// write, so nobody could delete it. Default [DefaultMaxSkew].
	MaxSkew time.Duration
}

// ErrFutureStamp wraps the refusal of a record whose stamp is more than
// MaxSkew ahead of this node's clock.
var ErrFutureStamp = errors.New("drain stamped in the future")

// Spec is what an operator asks for when creating a drain.
type Spec struct {
	Key
	// Reason is required.
	Reason string
	// Expires, when set, must be after the time of the create.
	Expires time.Time
	// Force is recorded in the drain: the cluster-wide guardrail never
	// sets it aside.
	Force bool
}

// Event actions.
const (
	ActionCreate = "create"
	ActionDelete = "delete"
	ActionExpire = "expire"
	// ActionSetAside: the cluster-wide guardrail does not apply a drain
	// in force (see [NewGuardedView]).
	ActionSetAside = "set_aside"
	// ActionApply: a drain the guardrail had set aside applies now.
	ActionApply = "apply"
)

// Event sources.
const (
	// ViaAPI: the write was made on this node.
	ViaAPI = "api"
	// ViaGossip: the write was made on another node and received.
	ViaGossip = "gossip"
	// ViaClock: the drain expired on this node's clock.
	ViaClock = "clock"
	// ViaGuardrail: the cluster-wide guardrail decided, from the records.
	ViaGuardrail = "guardrail"
)

// Event is one change this node applied to its drains: the audit trail
// the admin API lists. Who, what and why are in Drain (By, the scope,
// Reason); the write's node is Drain.Stamp.Node.
type Event struct {
	// Time is when this node applied the change.
	Time time.Time `json:"time"`
	// Action is ActionCreate, ActionDelete or ActionExpire.
	Action string `json:"action"`
	// Via is ViaAPI, ViaGossip or ViaClock.
	Via string `json:"via"`
	// Drain is the record after the change.
	Drain Record `json:"drain"`
	// From is, for ViaGossip, the cluster member that sent the record
	// (the name memberlist knows it by), which need not be the node that
	// made the write (Drain.Stamp.Node): a peer relays every record it
	// holds in its full-state exchanges.
	From string `json:"from,omitempty"`
	// Services are, for ActionSetAside, the services the drain would have
	// left without a site.
	Services []string `json:"services,omitempty"`
}

// Store is this node's table of drain records. It applies local writes
// and records received from peers under the conflict rule, persists the
// table, expires drains and keeps the audit events. Safe for concurrent
// use; [Store.Merge] never blocks on I/O, so gossip callbacks may call it.
type Store struct {
	cfg StoreConfig
	log *slog.Logger

	changed chan struct{} // one slot: the drains changed (for the publisher)
	kick    chan struct{} // one slot: Run should look again (save, timers)

	// beforeRename is a test hook: see writeFile.
	beforeRename func() error

	// saveMu serializes writes of the state file, so that the last write
	// always holds the latest table. It is taken before mu.
	saveMu sync.Mutex

	// mu guards the fields below. No I/O happens while it is held.
	mu      sync.Mutex
	clock   Clock
	records map[string]Record
	dirty   bool             // records changed since the state file was written
	expired map[string]Stamp // versions whose expiry was already reported
	events  []Event          // ring, oldest first once full
	next    int              // index of the next event slot once full
}

// Open loads the state file, if any, and returns the store. A state file
// that cannot be read is an error: starting without drains that are in
// force would send users to a drained site.
func Open(cfg StoreConfig, logger *slog.Logger) (*Store, error) {
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.Events <= 0 {
		cfg.Events = DefaultEvents
	}
	if cfg.MaxSkew <= 0 {
		cfg.MaxSkew = DefaultMaxSkew
	}
	s := &Store{
		cfg:     cfg,
		log:     logger,
		changed: make(chan struct{}, 1),
		kick:    make(chan struct{}, 1),
		records: make(map[string]Record),
		expired: make(map[string]Stamp),
	}
	if cfg.Path == "" {
		return s, nil
	}
	sf, err := loadFile(cfg.Path)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	// Stamps are judged against the time the file was saved, not now: a
	// clock that stepped back across the restart must not lose drains.
	saved := sf.Saved
	if saved.IsZero() {
		saved = now
	}
	if err := s.checkStamp(sf.Clock, saved); err != nil {
		logger.Error("drain state: clock not resumed", "path", cfg.Path, "err", err)
	} else {
		s.clock.Observe(sf.Clock)
	}
	for _, r := range sf.Records {
		// A record stamped far ahead of the save (written by a version
		// that did not check) would win over every later write: it is
		// dropped, and the file rewritten.
		if err := s.checkStamp(r.Stamp, saved); err != nil {
			logger.Error("drain state: record dropped", "path", cfg.Path, "id", r.ID, "err", err)
			s.dirty = true
			continue
		}
		r.Key = r.Key.Normalize()
		s.clock.Observe(r.Stamp)
		Merge(s.records, r)
		if !r.Deleted && !r.Expires.IsZero() && !r.Active(now) {
			s.expired[r.ID] = r.Stamp // ended while we were down: nothing to report
		}
	}
	n := 0
	for _, r := range s.records {
		if r.Active(now) {
			n++
		}
	}
	logger.Info("drain state loaded", "path", cfg.Path, "records", len(s.records), "in_force", n)
	return s, nil
}

// Changed is signalled (one slot, never blocking) whenever the drains
// change: a write, a merge that won, an expiry.
func (s *Store) Changed() <-chan struct{} { return s.changed }

// Create makes a new drain from spec, written by the token named by at
// now. The drain is in the state file before Create returns; on any error
// nothing has changed. Errors wrap [ErrInvalid] or [ErrExists].
func (s *Store) Create(spec Spec, by string, now time.Time) (Record, error) {
	if err := spec.validate(now); err != nil {
		return Record{}, err
	}
	key := spec.Key.Normalize()
	id := key.ID()
	return s.write(now, func() (Record, error) {
		if cur, ok := s.records[id]; ok && cur.Active(now) {
			return Record{}, fmt.Errorf("%w: drain %s (%s) is already in force, made by %s: %q; delete it first to change it",
				ErrExists, id, key, cur.By, cur.Reason)
		}
		return Record{
			ID: id, Key: key, Reason: strings.TrimSpace(spec.Reason), By: by, At: now,
			Expires: spec.Expires, Force: spec.Force, Stamp: s.clock.Now(s.cfg.Node, now),
		}, nil
	})
}

// Delete ends the drain with id, in the name of the token by, with an
// optional reason. It wraps [ErrNotFound] when no drain with that ID is
// in force, [ErrInvalid] for a bad reason.
func (s *Store) Delete(id, by, reason string, now time.Time) (Record, error) {
	reason = strings.TrimSpace(reason)
	if len(reason) > MaxReason || !utf8.ValidString(reason) {
		return Record{}, fmt.Errorf("%w: reason: longer than %d bytes or not UTF-8", ErrInvalid, MaxReason)
	}
	return s.write(now, func() (Record, error) {
		cur, ok := s.records[id]
		if !ok || !cur.Active(now) {
			return Record{}, fmt.Errorf("%w: no drain with id %q is in force", ErrNotFound, id)
		}
		return Record{
			ID: id, Key: cur.Key, Reason: reason, By: by, At: now, Deleted: true,
			Stamp: s.clock.Now(s.cfg.Node, now),
		}, nil
	})
}

// write makes a local write: build returns the new record (under mu),
// the state file is written with it, and only then is it applied.
func (s *Store) write(now time.Time, build func() (Record, error)) (Record, error) {
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	s.mu.Lock()
	rec, err := build()
	if err != nil {
		s.mu.Unlock()
		return Record{}, err
	}
	next := maps.Clone(s.records)
	Merge(next, rec)
	sf := s.stateLocked(next, now)
	s.mu.Unlock()

	if s.cfg.Path != "" {
		if err := writeFile(s.cfg.Path, sf, s.beforeRename); err != nil {
			return Record{}, err
		}
	}

	s.mu.Lock()
	won := Merge(s.records, rec)
	cur := s.records[rec.ID]
	if won {
		s.eventLocked(now, ViaAPI, rec)
	}
	s.mu.Unlock()
	if !won {
		// A peer's write to the same scope, stamped later, arrived between
		// building this one and applying it: it is what holds everywhere.
		return Record{}, fmt.Errorf("%w: drain %s was changed at the same moment by %s on node %s, whose write holds",
			ErrExists, rec.ID, cur.By, cur.Stamp.Node)
	}
	s.signal()
	return rec, nil
}

// Merge applies records received from a peer under the conflict rule and
// returns those that won: [Store.MergeFrom] with the sender unknown.
func (s *Store) Merge(recs []Record, now time.Time) ([]Record, error) {
	return s.MergeFrom("", recs, now)
}

// MergeFrom applies records that the cluster member from sent, under the
// conflict rule, and returns those that won; the audit events name from
// as their sender. A record that is invalid (wrapping [ErrInvalid]) or
// stamped more than MaxSkew ahead of now (wrapping [ErrFutureStamp]) is
// skipped, never stored and never observed by the clock; the refusals
// are returned joined, one error per record. It does no I/O:
// [Store.Run] writes the state file.
func (s *Store) MergeFrom(from string, recs []Record, now time.Time) ([]Record, error) {
	var won []Record
	var errs []error
	s.mu.Lock()
	for _, r := range recs {
		if err := r.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("%w: %w", ErrInvalid, err))
			continue
		}
		if err := s.checkStamp(r.Stamp, now); err != nil {
			errs = append(errs, fmt.Errorf("drain record %q: %w", r.ID, err))
			continue
		}
		r.Key = r.Key.Normalize()
		if end := r.Ends(); !end.IsZero() && now.Sub(end) > s.cfg.Grace {
			continue // long over: would only be forgotten again
		}
		s.clock.Observe(r.Stamp)
		if Merge(s.records, r) {
			won = append(won, r)
			s.dirty = true
			if r.Deleted || r.Active(now) {
				s.eventFromLocked(now, ViaGossip, from, r)
			} else {
				s.expired[r.ID] = r.Stamp // arrived already expired: nothing in force changed
			}
		}
	}
	s.mu.Unlock()
	if len(won) > 0 {
		s.signal()
	}
	return won, errors.Join(errs...)
}

// checkStamp refuses a stamp more than MaxSkew ahead of now.
func (s *Store) checkStamp(st Stamp, now time.Time) error {
	if ahead := time.Duration(st.Wall - now.UnixNano()); st.Wall > now.UnixNano() && ahead > s.cfg.MaxSkew {
		return fmt.Errorf("%w: stamp %s by node %q is %v ahead of this node's clock, more than the %v allowed (are the clocks synchronized?)",
			ErrFutureStamp, st, st.Node, ahead.Round(time.Second), s.cfg.MaxSkew)
	}
	return nil
}

// Records returns every record, tombstones included, sorted by ID: what
// a node hands its peers in a full-state exchange. The caller owns the
// slice.
func (s *Store) Records() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sortedRecords(s.records)
}

// Get returns the record with id, in force or not.
func (s *Store) Get(id string) (Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.records[id]
	return r, ok
}

// View returns the drains in force at now.
func (s *Store) View(now time.Time) *View { return NewView(s.Records(), now) }

// Events returns up to limit events, newest first (limit <= 0: all kept).
func (s *Store) Events(limit int) []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Event, 0, len(s.events))
	for i := range s.events {
		out = append(out, s.events[(s.next+len(s.events)-1-i)%len(s.events)])
	}
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

// Run expires drains when their time comes (recording the event and
// signalling Changed), forgets tombstones and expired drains after the
// grace period, and writes the state file after merges, until ctx is
// done. Call it once.
func (s *Store) Run(ctx context.Context) error {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		now := time.Now()
		wake := s.tick(now)
		t.Reset(max(wake.Sub(now), time.Millisecond))
		select {
		case <-ctx.Done():
			s.saveIfDirty(time.Now())
			return nil
		case <-s.kick:
		case <-t.C:
		}
	}
}

// tick does what is due at now and returns when to look again.
func (s *Store) tick(now time.Time) time.Time {
	s.mu.Lock()
	var ended []Record
	for id, r := range s.records {
		if !r.Deleted && !r.Expires.IsZero() && !r.Active(now) && s.expired[id] != r.Stamp {
			s.expired[id] = r.Stamp
			ended = append(ended, r)
		}
		if end := r.Ends(); !end.IsZero() && now.Sub(end) > s.cfg.Grace {
			delete(s.records, id)
			delete(s.expired, id)
			s.dirty = true
		}
	}
	slices.SortFunc(ended, func(a, b Record) int { return strings.Compare(a.ID, b.ID) })
	for _, r := range ended {
		s.eventLocked(now, ViaClock, r)
	}
	wake := now.Add(time.Hour)
	for _, r := range s.records {
		if r.Active(now) && !r.Expires.IsZero() && r.Expires.Before(wake) {
			wake = r.Expires
		}
		if end := r.Ends(); !end.IsZero() && end.Add(s.cfg.Grace).Before(wake) {
			wake = end.Add(s.cfg.Grace).Add(time.Millisecond)
		}
	}
	s.mu.Unlock()
	if len(ended) > 0 {
		s.signal()
	}
	if !s.saveIfDirty(now) {
		wake = now.Add(retrySave)
	}
	return wake
}

// saveIfDirty writes the state file if the table changed since the last
// write. It reports false when the write failed.
func (s *Store) saveIfDirty(now time.Time) bool {
	if s.cfg.Path == "" {
		return true
	}
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	s.mu.Lock()
	if !s.dirty {
		s.mu.Unlock()
		return true
	}
	sf := s.stateLocked(s.records, now)
	s.dirty = false
	s.mu.Unlock()
	if err := writeFile(s.cfg.Path, sf, s.beforeRename); err != nil {
		s.mu.Lock()
		s.dirty = true
		s.mu.Unlock()
		s.log.Error("drain state not saved; retrying", "path", s.cfg.Path, "in", retrySave, "err", err)
		return false
	}
	return true
}

func (s *Store) stateLocked(recs map[string]Record, now time.Time) stateFile {
	return stateFile{
		Version: fileVersion,
		Node:    s.cfg.Node,
		Saved:   now.UTC(),
		Clock:   Stamp{Wall: s.clock.wall, Logical: s.clock.logical, Node: s.cfg.Node},
		Records: sortedRecords(recs),
	}
}

// eventLocked records and logs one applied change.
func (s *Store) eventLocked(now time.Time, via string, r Record) {
	s.eventFromLocked(now, via, "", r)
}

// eventFromLocked records and logs one applied change that came from the
// cluster member from ("" when not through gossip, or not known).
func (s *Store) eventFromLocked(now time.Time, via, from string, r Record) {
	action := ActionCreate
	switch {
	case via == ViaClock:
		action = ActionExpire
	case r.Deleted:
		action = ActionDelete
	}
	s.appendEventLocked(Event{Time: now, Action: action, Via: via, Drain: r, From: from})
}

// appendEventLocked keeps ev among the events and logs it.
func (s *Store) appendEventLocked(ev Event) {
	if len(s.events) < s.cfg.Events {
		s.events = append(s.events, ev)
	} else {
		s.events[s.next] = ev
		s.next = (s.next + 1) % len(s.events)
	}
	r := ev.Drain
	attrs := []any{"action", ev.Action, "via", ev.Via, "id", r.ID, "site", r.Site,
		"service", orEvery(r.Service, "every service"), "clients", clientsAttr(r.Clients),
		"reason", r.Reason, "by", r.By, "node", r.Stamp.Node}
	if ev.From != "" {
		attrs = append(attrs, "from", ev.From)
	}
	if !r.Expires.IsZero() {
		attrs = append(attrs, "expires", r.Expires.UTC().Format(time.RFC3339))
	}
	if r.Force {
		attrs = append(attrs, "force", true)
	}
	if len(ev.Services) > 0 {
		attrs = append(attrs, "services", strings.Join(ev.Services, " "))
	}
	s.log.Info("audit: drain "+ev.Action, attrs...)
}

func (s *Store) signal() {
	for _, ch := range []chan struct{}{s.changed, s.kick} {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (sp Spec) validate(now time.Time) error {
	var errs []string
	switch {
	case strings.TrimSpace(sp.Site) == "":
		errs = append(errs, "site: required")
	case len(sp.Site) > MaxName || strings.ContainsAny(sp.Site, " \t\r\n"):
		errs = append(errs, fmt.Sprintf("site: %q is not a site name", sp.Site))
	}
	if len(sp.Service) > MaxName || strings.ContainsAny(sp.Service, " \t\r\n") {
		errs = append(errs, fmt.Sprintf("service: %q is not a service name", sp.Service))
	}
	switch r := strings.TrimSpace(sp.Reason); {
	case r == "":
		errs = append(errs, "reason: required (say why, for the audit trail)")
	case len(r) > MaxReason:
		errs = append(errs, fmt.Sprintf("reason: %d bytes, at most %d", len(r), MaxReason))
	case !utf8.ValidString(r):
		errs = append(errs, "reason: not UTF-8")
	}
	if len(sp.Clients) > MaxClients {
		errs = append(errs, fmt.Sprintf("clients: %d prefixes, at most %d", len(sp.Clients), MaxClients))
	}
	for i, p := range sp.Clients {
		if !p.IsValid() {
			errs = append(errs, fmt.Sprintf("clients[%d]: not a valid prefix", i))
		}
	}
	if !sp.Expires.IsZero() && !sp.Expires.After(now) {
		errs = append(errs, fmt.Sprintf("expires: %s is not in the future", sp.Expires.UTC().Format(time.RFC3339)))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(errs, "; "))
	}
	return nil
}

func sortedRecords(m map[string]Record) []Record {
	out := slices.Collect(maps.Values(m))
	slices.SortFunc(out, func(a, b Record) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func orEvery(s, every string) string {
	if s == "" {
		return every
	}
	return s
}

func clientsAttr(ps []netip.Prefix) string {
	if len(ps) == 0 {
		return "every client"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, " ")
}
