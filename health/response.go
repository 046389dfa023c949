package health

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// An HTTP probe reads the response itself rather than through
// http.ReadResponse, which builds a Response, a Header map and a string
// per header line: at thousands of probes a second that garbage cost more
// than the rest of the probe on a kept connection. It reads what a probe
// needs, by RFC 9112: the status, whether the connection can carry
// another request, and where the body ends (Content-Length, chunked, or
// the connection's end), so that the body can be searched for
// BodyContains and a kept connection is left at the start of the next
// response.

// maxHead bounds the status line and headers of a response, interim (1xx)
// responses included.
const maxHead = 64 << 10

// maxInterim is how many interim (1xx) responses a probe skips before
// giving up, as net/http's client does.
const maxInterim = 5

// respHead is what a probe needs of a response's head.
type respHead struct {
	status int
	// close: the connection cannot carry another request (Connection:
	// close, HTTP/1.0 without keep-alive, a body delimited by the end of
	// the connection, a protocol switch).
	close   bool
	chunked bool
	// length is the body's length when known (0 for responses without a
	// body), -1 otherwise: chunked, or until the connection closes.
	length int64
}

// errHeadTooLarge is the error of a response head over maxHead.
var errHeadTooLarge = errors.New("response head too large")

// readHead reads a response's head from r, skipping interim (1xx)
// responses. head says whether the request was HEAD, whose response has
// no body whatever its headers say.
func readHead(r *bufio.Reader, head bool) (respHead, error) {
	used := 0
	for interim := 0; ; interim++ {
		h, err := readOneHead(r, &used)
		if err != nil {
			return h, err
		}
		if h.status >= 200 || h.status == 101 {
			if head || h.status == 204 || h.status == 304 || h.status == 101 {
				h.length, h.chunked = 0, false
			}
			if h.status == 101 {
				h.close = true // we asked for no upgrade
			}
			if h.length < 0 && !h.chunked {
				h.close = true
			}
			return h, nil
		}
		if interim == maxInterim {
			return h, fmt.Errorf("more than %d interim responses", maxInterim)
		}
	}
}

// readOneHead reads one status line and its headers, adding the bytes it
// read to *used.
func readOneHead(r *bufio.Reader, used *int) (respHead, error) {
	h := respHead{length: -1}
	line, err := readLine(r, used, true)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return h, err
	}
	// HTTP/1.1 200 OK; the reason may be empty, with or without its space.
	proto, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok {
		return h, fmt.Errorf("malformed HTTP response %q", truncate(line))
	}
	var http10 bool
	switch string(proto) {
	case "HTTP/1.1":
	case "HTTP/1.0":
		http10 = true
	default:
		return h, fmt.Errorf("malformed HTTP version %q", truncate(proto))
	}
	code, _, _ := bytes.Cut(rest, []byte(" "))
	if len(code) != 3 || !isDigits(code) || code[0] == '0' {
		return h, fmt.Errorf("malformed HTTP status code %q", truncate(code))
	}
	h.status = int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')

	var (
		keepAlive, haveLength bool
		encodings             int
	)
	for {
		line, err := readLine(r, used, false)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return h, err
		}
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue // an obsolete line folding: part of a header we skip
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(name) == 0 || bytes.ContainsAny(name, " \t") {
			return h, fmt.Errorf("malformed header line %q", truncate(line))
		}
		value = bytes.Trim(value, " \t")
		switch {
		case asciiEqualFold(name, "content-length"):
			n, ok := parseLength(value)
			if !ok {
				return h, fmt.Errorf("bad Content-Length %q", truncate(value))
			}
			if haveLength && n != h.length {
				return h, errors.New("conflicting Content-Length headers")
			}
			h.length, haveLength = n, true
		case asciiEqualFold(name, "transfer-encoding"):
			if http10 {
				continue // HTTP/1.0 has none; net/http ignores it too
			}
			encodings++
			if !asciiEqualFold(value, "chunked") || encodings > 1 {
				return h, fmt.Errorf("unsupported transfer encoding %q", truncate(value))
			}
			h.chunked = true
		case asciiEqualFold(name, "connection"):
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				tok = bytes.Trim(tok, " \t")
				switch {
				case asciiEqualFold(tok, "close"):
					h.close = true
				case asciiEqualFold(tok, "keep-alive"):
					keepAlive = true
				}
			}
		}
	}
	if http10 && !keepAlive {
		h.close = true
	}
	if h.chunked {
		// Both framings: chunked wins, and the connection is not trusted
		// with another request (RFC 9112, section 6.3).
		if haveLength {
			h.close = true
		}
		h.length = -1
	}
	return h, nil
}

// readLine reads one line of a response head without its CRLF (or bare
// LF), adding its length to *used. A line longer than r's buffer is an
// error for a status line; a header line that long is skipped, unless it
// is one whose value the probe needs, which is never that long.
func readLine(r *bufio.Reader, used *int, status bool) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	*used += len(line)
	if err == bufio.ErrBufferFull {
		if status || needed(line) {
			return nil, fmt.Errorf("response line too long: %q", truncate(line))
		}
		for err == bufio.ErrBufferFull && *used <= maxHead {
			line, err = r.ReadSlice('\n')
			*used += len(line)
		}
		if err == nil {
			// Skipped: go on with the next line.
			return readLine(r, used, false)
		}
	}
	if *used > maxHead {
		return nil, errHeadTooLarge
	}
	if err != nil {
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// needed reports whether a header line starts with a name the probe
// reads.
func needed(line []byte) bool {
	name, _, _ := bytes.Cut(line, []byte(":"))
	return asciiEqualFold(name, "content-length") || asciiEqualFold(name, "transfer-encoding") ||
		asciiEqualFold(name, "connection")
}

// readBody reads the body that h announces. When dst is not nil it copies
// the body's first len(dst) bytes into it, returns how many, and returns
// an error when the body could not be read that far (or whole, if
// shorter). The rest, and the whole body when dst is nil, is read and
// dropped if the body is at most maxBody long, without an error: what comes
// after the part searched decides only complete, whether r is now at the
// end of the response, so that its connection may carry another request.
func readBody(r *bufio.Reader, h respHead, dst []byte) (n int, complete bool, err error) {
	switch {
	case h.chunked:
		return readChunked(r, dst)
	case h.length >= 0:
		if dst != nil {
			n, err = io.ReadFull(r, dst[:min(h.length, int64(len(dst)))])
			if err != nil {
				return n, false, err
			}
		}
		if h.length > maxBody {
			return n, false, nil
		}
		_, err := r.Discard(int(h.length - int64(n)))
		return n, err == nil, nil
	default:
		// Until the connection's end, which is not waited for unless the
		// body is searched.
		if dst == nil {
			return 0, false, nil
		}
		n, err = io.ReadFull(r, dst)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			err = nil
		}
		return n, false, err
	}
}

// readChunked reads a chunked body (RFC 9112, section 7.1) and its trailer
// section, as readBody does.
func readChunked(r *bufio.Reader, dst []byte) (n int, complete bool, err error) {
	// fail returns err while the searched part is not whole, and only
	// "not complete" after.
	fail := func(err error) (int, bool, error) {
		if dst == nil || n == len(dst) {
			return n, false, nil
		}
		return n, false, unexpectedEOF(err)
	}
	var total int64
	for {
		used := 0 // each chunk-size line is bounded by r's buffer
		line, err := readLine(r, &used, true)
		if err != nil {
			return fail(err)
		}
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i] // a chunk extension
		}
		line = bytes.TrimRight(line, " \t")
		size, err := strconv.ParseUint(string(line), 16, 63)
		if err != nil || len(line) == 0 {
			return fail(fmt.Errorf("bad chunk size %q", truncate(line)))
		}
		if size == 0 {
			break
		}
		total += int64(size)
		if dst != nil && n < len(dst) {
			k, err := io.ReadFull(r, dst[n:n+int(min(size, uint64(len(dst)-n)))])
			n += k
			if err != nil {
				return fail(err)
			}
			size -= uint64(k)
		}
		if total > maxBody {
			return n, false, nil // not worth reading to keep the connection
		}
		if size > 0 {
			if _, err := r.Discard(int(size)); err != nil {
				return fail(err)
			}
		}
		// The chunk's CRLF.
		if line, err := readLine(r, &used, true); err != nil || len(line) != 0 {
			if err == nil {
				err = errors.New("malformed chunked encoding")
			}
			return fail(err)
		}
	}
	used := 0
	for {
		line, err := readLine(r, &used, false)
		if err != nil {
			return fail(err)
		}
		if len(line) == 0 {
			return n, true, nil
		}
	}
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// parseLength parses a Content-Length: decimal digits only, below 2^62.
func parseLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// asciiEqualFold reports whether b equals the lower-case ASCII s, ignoring
// case.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// truncate shortens what an error quotes from a response.
func truncate(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}
