package zones

import (
	"bufio"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// record is one RR with the place it was read from, so that validation can
// say "file:line".
type record struct {
	rr   dns.RR
	file string // as shown in messages
	line int    // where the entry holding the RR begins
}

// readZone parses the zone file at path with miekg's ZoneParser and returns
// every RR with its position. Only the first syntax error is reported: the
// parser stops there.
//
// ZoneParser does not tell where an RR came from, so every file it reads
// (the zone file, and each $INCLUDE through [dns.ZoneParser.SetIncludeFS]) goes through a
// [posReader]. The parser reads byte by byte through io.ByteReader, without
// read-ahead past the newline that ends an entry, so when Next returns, the
// reader that read last holds the file and the first line of the RR's entry.
// An RR made by $GENERATE gets the line of the directive.
//
// With fsys nil the files are the operating system's; otherwise path and
// every $INCLUDE name a file in fsys.
//
// [SetIncludeFS]: https://pkg.go.dev/github.com/miekg/dns#ZoneParser.SetIncludeFS
func readZone(fsys fs.FS, path, origin string, allowInclude bool) ([]record, error) {
	files := &zoneFiles{fsys: fsys, names: make(map[string]string)}
	name := path
	var f fs.File
	if fsys != nil {
		var err error
		if f, err = fsys.Open(path); err != nil {
			return nil, err
		}
	} else {
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, err
		}
		if f, err = os.Open(path); err != nil {
			return nil, err
		}
		files.relative = !filepath.IsAbs(path)
		if files.relative {
			files.wd, _ = os.Getwd()
		}
		// Through an fs.FS, miekg resolves an $INCLUDE against the
		// including file's name and drops the leading slash. Giving it
		// the absolute name makes every path it asks for absolute, so
		// zoneFiles.Open can undo that without guessing.
		name = filepath.ToSlash(abs)
	}
	defer files.close()
	top := files.add(f, path)
	files.names[name] = path
	zp := dns.NewZoneParser(top, origin, name)
	zp.SetIncludeAllowed(allowInclude)
	zp.SetIncludeFS(files)

	var out []record
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		r := record{rr: rr, file: path}
		if cur := files.cur; cur != nil {
			r.file, r.line = cur.name, cur.entry
		}
		if len(out) == cap(out) {
			// Doubling: a large slice grows by a quarter by default,
			// which copies a million records many times over.
			out = slices.Grow(out, max(len(out), 1024))
		}
		out = append(out, r)
	}
	if err := zp.Err(); err != nil {
		return out, files.wrap(err)
	}
	return out, nil
}

// zoneFiles is the set of files one zone is read from. It is the fs.FS
// through which the parser opens $INCLUDE files.
type zoneFiles struct {
	fsys     fs.FS  // nil: the operating system's files
	relative bool   // the zone file was named by a relative path
	wd       string // working directory, to show included files relative to it
	// names maps the names miekg puts in its ParseError to the names we
	// show.
	names map[string]string
	open  []*posReader
	cur   *posReader // the reader that delivered the last byte
	// openErr is the failure to open an $INCLUDE file, with the position
	// of the directive.
	openErr error
}

var _ fs.FS = (*zoneFiles)(nil)

func (zf *zoneFiles) add(f fs.File, name string) *posReader {
	p := &posReader{br: bufio.NewReader(f), f: f, name: name, files: zf, line: 1, atStart: true}
	zf.open = append(zf.open, p)
	return p
}

// Open opens an $INCLUDE file. name is the absolute path without its
// leading slash (see readZone), or with an fs.FS the name in it.
func (zf *zoneFiles) Open(name string) (fs.File, error) {
	var f fs.File
	var err error
	shown := name
	if zf.fsys != nil {
		f, err = zf.fsys.Open(name)
	} else {
		real := filepath.FromSlash(name)
		if !filepath.IsAbs(real) {
			real = string(filepath.Separator) + real
		}
		shown = real
		if zf.relative && zf.wd != "" {
			if rel, err := filepath.Rel(zf.wd, real); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
				shown = rel
			}
		}
		f, err = os.Open(real)
	}
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = &fs.PathError{Op: pe.Op, Path: shown, Err: pe.Err}
		}
		e := &posError{msg: "$INCLUDE: " + err.Error(), err: err}
		if zf.cur != nil {
			e.file, e.line = zf.cur.name, zf.cur.entry
		}
		zf.openErr = e
		return nil, err
	}
	zf.names[name] = shown
	return zf.add(f, shown), nil
}

func (zf *zoneFiles) close() {
	for _, p := range zf.open {
		p.f.Close()
	}
}

// wrap turns the parser's error into ours: the position of a failed
// $INCLUDE, or miekg's ParseError text with the file named as we show it.
func (zf *zoneFiles) wrap(err error) error {
	var pe *dns.ParseError
	if !errors.As(err, &pe) {
		// A read error; the os error names the file.
		return err
	}
	if zf.openErr != nil {
		return zf.openErr
	}
	msg := err.Error()
	best := ""
	for name := range zf.names {
		if len(name) > len(best) && strings.HasPrefix(msg, name+": ") {
			best = name
		}
	}
	if best != "" {
		msg = zf.names[best] + msg[len(best):]
	}
	return &parseError{msg: msg, err: pe}
}

// parseError is a syntax error from miekg's parser, with its text kept.
type parseError struct {
	msg string
	err *dns.ParseError
}

func (e *parseError) Error() string { return e.msg }
func (e *parseError) Unwrap() error { return e.err }

// posReader hands one file to the zone parser a byte at a time, and
// follows just enough of the zone file syntax (comments, quotes, escapes,
// parentheses) to know on which line the current entry began.
type posReader struct {
	br    *bufio.Reader
	f     fs.File
	name  string // as shown in messages
	files *zoneFiles

	line    int  // line of the next byte
	nl      bool // the last byte was a newline: the next one is on a new line
	entry   int  // line where the current entry began
	atStart bool // between entries: the next significant byte begins one
	comment bool
	quote   bool
	escape  bool
	depth   int // open parentheses
}

// ReadByte implements io.ByteReader, which the parser uses instead of
// buffering on its own.
func (p *posReader) ReadByte() (byte, error) {
	c, err := p.br.ReadByte()
	if err != nil {
		return c, err
	}
	p.files.cur = p
	if p.nl {
		p.line++
		p.nl = false
	}
	if c == '\n' {
		p.nl = true
		p.escape = false
		if p.comment {
			p.comment = false
		} else if p.quote {
			return c, nil
		}
		if p.depth == 0 {
			p.atStart = true
		}
		return c, nil
	}
	if p.comment {
		return c, nil
	}
	if p.escape {
		p.escape = false
		p.mark()
		return c, nil
	}
	switch c {
	case ' ', '\t', '\r':
		return c, nil
	case ';':
		if !p.quote {
			p.comment = true
			return c, nil
		}
	case '\\':
		p.escape = true
	case '"':
		p.quote = !p.quote
	case '(':
		if !p.quote {
			p.depth++
		}
	case ')':
		if !p.quote && p.depth > 0 {
			p.depth--
		}
	}
	p.mark()
	return c, nil
}

func (p *posReader) mark() {
	if p.atStart {
		p.entry = p.line
		p.atStart = false
	}
}

// Read implements io.Reader for fs.File; it goes through ReadByte so the
// position stays right.
func (p *posReader) Read(b []byte) (int, error) {
	for i := range b {
		c, err := p.ReadByte()
		if err != nil {
			if i > 0 && err == io.EOF {
				err = nil
			}
			return i, err
		}
		b[i] = c
	}
	return len(b), nil
}

func (p *posReader) Stat() (fs.FileInfo, error) { return p.f.Stat() }
func (p *posReader) Close() error               { return p.f.Close() }
