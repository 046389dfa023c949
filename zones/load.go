package zones

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"slices"
	"strconv"
	"sync"

	"github.com/miekg/dns"
)

// Config says what [Load] reads. Paths are used as given: cmd resolves them
// relative to its configuration file.
type Config struct {
	Zones []ZoneConfig
	// ServicesFile is the YAML file declaring sites and services. Empty
	// means no services: every name is answered from the zone files.
	ServicesFile string
	// FS, when set, is where the files are read from: ZoneConfig.File,
	// ServicesFile and $INCLUDE paths name files in it (fs.ValidPath
	// names, for example "zones/example.com.zone"). Nil reads the
	// operating system's files, paths used as given.
	FS fs.FS
}

// ZoneConfig declares one zone.
type ZoneConfig struct {
	// Origin is the zone's apex, for example "example.com." (the trailing
	// dot is optional). Relative names in the file are relative to it
	// until the file changes it with $ORIGIN.
	Origin string
	// File is the RFC 1035 zone file.
	//
	// There is no built-in default TTL: a record without a TTL takes the
	// one set by the last $TTL directive, or else the TTL of the previous
	// record that had one (RFC 2308 §4 asks for $TTL; this is the older
	// RFC 1035 rule miekg's parser keeps). A first record without either
	// is a syntax error.
	File string
	// AllowInclude turns on $INCLUDE, off by default. A relative $INCLUDE
	// path is resolved against the directory of the file that includes
	// it. Included files may include others, up to miekg's depth limit.
	// Paths are not confined to any directory: turn this on only for
	// files the operator controls.
	AllowInclude bool
	// AllowTransfer lists the client prefixes allowed to AXFR and IXFR the
	// zone. Empty refuses every transfer.
	AllowTransfer []netip.Prefix
	// Source says where the zone was declared, for example
	// "gslbd.yaml:12". It prefixes messages about the declaration itself,
	// such as a missing file.
	Source string
}

// Load reads and validates the zone files and the services file, and
// builds a [Set]. Load either returns a Set or every problem it found,
// joined with [errors.Join]; each reads "file:line: message", except
// syntax errors in zone files, which keep the text of miekg's
// dns.ParseError (reachable with errors.As), and problems with a zone's
// declaration, which start with its [ZoneConfig.Source].
//
// Load has no side effects beyond reading files, and may be called from
// any goroutine; a reload builds a new Set while the old one is in use.
func Load(cfg Config) (*Set, error) {
	// The services file is decoded while the zone files are read.
	var doc servicesDoc
	var decoding sync.WaitGroup
	if cfg.ServicesFile != "" {
		decoding.Go(func() { doc = readServices(cfg.FS, cfg.ServicesFile) })
	}
	defer decoding.Wait() // every return path leaves no goroutine behind
	var errs []error
	declared := make(map[string]string) // origin -> source
	var zds []*zoneData
	for _, zc := range cfg.Zones {
		origin, ok := canonicalOrigin(zc.Origin)
		if !ok {
			errs = append(errs, atSource(zc.Source, fmt.Sprintf("zone %q: bad origin", zc.Origin), nil))
			continue
		}
		if src, dup := declared[origin]; dup {
			msg := "zone " + origin + " is declared twice"
			if src != "" {
				msg += " (also at " + src + ")"
			}
			errs = append(errs, atSource(zc.Source, msg, nil))
			continue
		}
		declared[origin] = zc.Source
		if zc.File == "" {
			errs = append(errs, atSource(zc.Source, "zone "+origin+": no file", nil))
			continue
		}
		zd := &zoneData{cfg: zc, origin: origin, file: zc.File}
		recs, err := readZone(cfg.FS, zc.File, origin, zc.AllowInclude)
		if err != nil {
			zd.failed = true
			var perr *parseError
			var poserr *posError
			if !errors.As(err, &perr) && !errors.As(err, &poserr) {
				// The file itself could not be read.
				err = atSource(zc.Source, "zone "+origin+": "+err.Error(), err)
			}
			errs = append(errs, err)
		}
		zd.records = recs
		zds = append(zds, zd)
	}

	origins := make([]string, 0, len(zds))
	for _, zd := range zds {
		origins = append(origins, zd.origin)
	}
	for _, zd := range zds {
		if !zd.failed {
			errs = append(errs, sorted(zd.check(origins))...)
			zd.records = nil // check kept what passed
		}
	}

	var svcs []*Service
	if cfg.ServicesFile != "" {
		var serrs []error
		decoding.Wait()
		svcs, serrs = loadServices(doc, zds)
		errs = append(errs, sorted(serrs)...)
		doc = servicesDoc{} // the YAML tree, garbage before the zones are built
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	zs := make([]*Zone, 0, len(zds))
	for _, zd := range zds {
		z := NewZone(zd.origin, zd.file, zd.rrs())
		z.AllowTransfer = slices.Clone(zd.cfg.AllowTransfer)
		zs = append(zs, z)
		// The validation index is done with: garbage before the next
		// zone is built.
		*zd = zoneData{}
	}
	return NewSet(zs, svcs, hashServices(svcs)), nil
}

// canonicalOrigin checks and canonicalises a zone origin.
func canonicalOrigin(s string) (string, bool) {
	if s == "" {
		return "", false
	}
	if _, ok := dns.IsDomainName(s); !ok {
		return "", false
	}
	return dns.CanonicalName(s), true
}

// posError is one problem at a place in an input file.
type posError struct {
	file string
	line int // 0: the file as a whole
	msg  string
	err  error // the cause, if any, for errors.Is and errors.As
}

func (e *posError) Error() string {
	switch {
	case e.file == "":
		return e.msg
	case e.line == 0:
		return e.file + ": " + e.msg
	}
	return e.file + ":" + strconv.Itoa(e.line) + ": " + e.msg
}

func (e *posError) Unwrap() error { return e.err }

func errorAt(file string, line int, format string, args ...any) error {
	return &posError{file: file, line: line, msg: fmt.Sprintf(format, args...)}
}

// atSource is a problem with a declaration in the node configuration, whose
// position is already a "file:line" string.
func atSource(source, msg string, cause error) error {
	return &posError{file: source, msg: msg, err: cause}
}

// sorted orders errors by file and line, keeping the order of errors on the
// same line, so that a report reads top to bottom.
func sorted(errs []error) []error {
	slices.SortStableFunc(errs, func(a, b error) int {
		var pa, pb posError
		if e, ok := a.(*posError); ok {
			pa = *e
		}
		if e, ok := b.(*posError); ok {
			pb = *e
		}
		return cmp.Or(cmp.Compare(pa.file, pb.file), cmp.Compare(pa.line, pb.line))
	})
	return errs
}
