package admin

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Role is what a token may do.
type Role uint8

// Roles. A write token may also read.
const (
	RoleRead Role = iota + 1
	RoleWrite
)

// String returns "read", "write" or "none".
func (r Role) String() string {
	switch r {
	case RoleRead:
		return "read"
	case RoleWrite:
		return "write"
	default:
		return "none"
	}
}

// minTokenLen is the shortest token accepted in a tokens file.
const minTokenLen = 16

// Tokens are the admin API's bearer tokens, read from a tokens file.
// Immutable and safe for concurrent use.
//
// The file has one token per line: "name role token", separated by
// blanks. name identifies the holder in the audit trail (letters, digits
// and ._@-); role is read or write; token is at least 16 characters
// without blanks (for example the output of `openssl rand -hex 32`).
// Blank lines and lines starting with # are ignored. Names and tokens
// must be unique. Keep the file readable by gslbd only (mode 0600): gslbd
// refuses a tokens file that group or others can read unless its
// configuration allows it (allow_insecure_file_modes). Messages about
// the file never quote a token.
type Tokens struct {
	list []token
}

type token struct {
	name string
	role Role
	hash [sha256.Size]byte
}

// LoadTokens reads a tokens file.
func LoadTokens(path string) (*Tokens, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("admin tokens: %w", err)
	}
	return ParseTokens(path, data)
}

// ParseTokens parses the content of a tokens file; file names it in
// messages, which read "file:line: message", every problem at once.
func ParseTokens(file string, data []byte) (*Tokens, error) {
	var errs []error
	bad := func(line int, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s:%d: %s", file, line, fmt.Sprintf(format, args...)))
	}
	t := &Tokens{}
	names := map[string]int{}
	hashes := map[[sha256.Size]byte]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		f := strings.Fields(text)
		if len(f) != 3 {
			bad(line, "want \"name role token\", found %d fields", len(f))
			continue
		}
		name, roleText, secret := f[0], f[1], f[2]
		// A name as long as a token may be a token on a line whose
		// fields are in the wrong order: messages do not show it.
		shown := name
		if len(name) >= minTokenLen {
			shown = quoteShort(name)
		}
		ok := true
		if !validName(name) {
			bad(line, "token name %s: use letters, digits and ._@- (at most 64)", quoteShort(name))
			ok = false
		}
		var role Role
		switch roleText {
		case "read":
			role = RoleRead
		case "write":
			role = RoleWrite
		default:
			bad(line, "role %s: want read or write", quoteShort(roleText))
			ok = false
		}
		if len(secret) < minTokenLen {
			bad(line, "token of %s: %d characters, at least %d", shown, len(secret), minTokenLen)
			ok = false
		}
		h := sha256.Sum256([]byte(secret))
		if prev, dup := names[name]; dup {
			bad(line, "token name %s already used on line %d", quoteShort(name), prev)
			ok = false
		}
		if prev, dup := hashes[h]; dup {
			bad(line, "token of %s is the same as on line %d", shown, prev)
			ok = false
		}
		// Remember names and tokens of refused lines too, so duplicates
		// are reported whichever line has the other problem.
		if _, dup := names[name]; !dup {
			names[name] = line
		}
		if _, dup := hashes[h]; !dup {
			hashes[h] = line
		}
		if ok {
			t.list = append(t.list, token{name: name, role: role, hash: h})
		}
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", file, err))
	}
	if len(errs) == 0 && len(t.list) == 0 {
		errs = append(errs, fmt.Errorf("%s: no tokens (leave admin.tokens_file out to turn the write API off)", file))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return t, nil
}

// Lookup returns the name and role of the token secret. It compares
// SHA-256 digests in constant time and always checks every token, so the
// time taken says nothing about which token, or how much of one, matched.
func (t *Tokens) Lookup(secret string) (name string, role Role, ok bool) {
	if t == nil {
		return "", 0, false
	}
	h := sha256.Sum256([]byte(secret))
	match := -1
	for i := range t.list {
		eq := subtle.ConstantTimeCompare(h[:], t.list[i].hash[:])
		match = subtle.ConstantTimeSelect(eq, i, match)
	}
	if match < 0 {
		return "", 0, false
	}
	return t.list[match].name, t.list[match].role, true
}

// byName returns the role and digest of the token called name.
func (t *Tokens) byName(name string) (Role, [sha256.Size]byte, bool) {
	if t != nil {
		for _, tk := range t.list {
			if tk.name == name {
				return tk.role, tk.hash, true
			}
		}
	}
	return 0, [sha256.Size]byte{}, false
}

// Len returns the number of tokens.
func (t *Tokens) Len() int {
	if t == nil {
		return 0
	}
	return len(t.list)
}

// quoteShort quotes a field of a tokens file for a message, unless it is
// as long as a token: fields in the wrong order must not put a secret in
// the log.
func quoteShort(s string) string {
	if len(s) >= minTokenLen {
		return "(not shown: as long as a token)"
	}
	return fmt.Sprintf("%q", s)
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.ContainsRune("._@-", c):
		default:
			return false
		}
	}
	return true
}
