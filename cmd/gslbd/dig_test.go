package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/gslbd/gslbd/internal/dnstest"
)

// requireDig returns the path of dig (see [dnstest.RequireTool]).
func requireDig(t *testing.T) string {
	t.Helper()
	return dnstest.RequireTool(t, "dig", "bind9-dnsutils")
}

// digCase is one case of a testdata/dig file.
type digCase struct {
	name     string
	pos      string
	args     []string
	status   string
	flags    []string
	sections map[string][]string // answer, authority, additional
	edns     string              // "" = not checked
	subnet   string              // "" = not checked; else dig's CLIENT-SUBNET, or "none"
	transfer int                 // > 0: an AXFR of that many records; -1: refused
}

func parseDigCases(path string) ([]*digCase, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var cases []*digCase
	var cur *digCase
	section := ""
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		raw := sc.Text()
		text := strings.TrimSpace(raw)
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		indented := raw != strings.TrimLeft(raw, " \t")
		if indented && section != "" {
			cur.sections[section] = append(cur.sections[section], normalizeRR(text))
			continue
		}
		key, val, ok := strings.Cut(text, ":")
		if !ok {
			return nil, fmt.Errorf("%s:%d: want \"key: value\", got %q", path, line, text)
		}
		val = strings.TrimSpace(val)
		if key != "case" && cur == nil {
			return nil, fmt.Errorf("%s:%d: %q before the first case:", path, line, key)
		}
		section = ""
		switch key {
		case "case":
			cur = &digCase{name: val, pos: fmt.Sprintf("%s:%d", filepath.Base(path), line), sections: map[string][]string{}}
			cases = append(cases, cur)
		case "dig":
			cur.args = strings.Fields(val)
		case "status":
			cur.status = val
		case "flags":
			cur.flags = strings.Fields(val)
			slices.Sort(cur.flags)
		case "question", "answer", "authority", "additional":
			section = key
			cur.sections[key] = cur.sections[key][:0:0]
			if val != "" {
				return nil, fmt.Errorf("%s:%d: RRs go on the indented lines after %s:", path, line, key)
			}
		case "edns":
			cur.edns = val
		case "subnet":
			cur.subnet = val
		case "transfer":
			if val == "refused" {
				cur.transfer = -1
				break
			}
			if _, err := fmt.Sscanf(val, "%d", &cur.transfer); err != nil || cur.transfer <= 0 {
				return nil, fmt.Errorf("%s:%d: transfer: want a record count", path, line)
			}
		default:
			return nil, fmt.Errorf("%s:%d: unknown key %q", path, line, key)
		}
	}
	return cases, sc.Err()
}

func normalizeRR(s string) string { return strings.Join(strings.Fields(s), " ") }

// matchRRs reports whether got and want hold the same RRs in some order,
// a * in a wanted RR matching any run of non-blank characters.
func matchRRs(got, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	res := make([]*regexp.Regexp, len(want))
	for i, w := range want {
		res[i] = regexp.MustCompile("^" + strings.ReplaceAll(regexp.QuoteMeta(w), `\*`, `[^ ]*`) + "$")
	}
	// Sections are short: try every assignment.
	used := make([]bool, len(got))
	var match func(i int) bool
	match = func(i int) bool {
		if i == len(want) {
			return true
		}
		for j, g := range got {
			if !used[j] && res[i].MatchString(g) {
				used[j] = true
				if match(i + 1) {
					return true
				}
				used[j] = false
			}
		}
		return false
	}
	return match(0)
}

// digResult is what dig printed, parsed.
type digResult struct {
	status   string
	flags    []string
	sections map[string][]string
	edns     string
	subnet   string // the reply's ECS option as dig prints it (address/source/scope), or "none"
	records  int    // for transfers: records printed
}

// parseDig reads dig's default output format.
func parseDig(out string) (*digResult, error) {
	r := &digResult{sections: map[string][]string{}, edns: "none", subnet: "none"}
	section := ""
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "":
			section = ""
		case strings.HasPrefix(line, ";; ->>HEADER<<-"):
			// ;; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 1
			if _, after, ok := strings.Cut(line, "status: "); ok {
				r.status, _, _ = strings.Cut(after, ",")
			}
			r.sections = map[string][]string{}
			r.edns, r.subnet = "none", "none"
		case strings.HasPrefix(line, ";; flags:"):
			// ;; flags: qr aa rd; QUERY: 1, ANSWER: 1, ...
			f, _, _ := strings.Cut(strings.TrimPrefix(line, ";; flags:"), ";")
			r.flags = strings.Fields(f)
			slices.Sort(r.flags)
		case strings.HasPrefix(line, "; EDNS:"):
			// ; EDNS: version: 0, flags:; udp: 1232
			var v, udp int
			_, after, _ := strings.Cut(line, "version: ")
			fmt.Sscanf(after, "%d", &v)
			_, after, _ = strings.Cut(line, "udp: ")
			fmt.Sscanf(after, "%d", &udp)
			r.edns = fmt.Sprintf("version %d, udp %d", v, udp)
		case strings.HasPrefix(line, "; CLIENT-SUBNET:"):
			// ; CLIENT-SUBNET: 192.0.2.0/24/24
			r.subnet = strings.TrimSpace(strings.TrimPrefix(line, "; CLIENT-SUBNET:"))
		case strings.HasPrefix(line, ";; QUESTION SECTION:"):
			section = "question"
		case section == "question" && strings.HasPrefix(line, ";"):
			r.sections["question"] = append(r.sections["question"], normalizeRR(strings.TrimPrefix(line, ";")))
		case strings.HasPrefix(line, ";; ANSWER SECTION:"):
			section = "answer"
		case strings.HasPrefix(line, ";; AUTHORITY SECTION:"):
			section = "authority"
		case strings.HasPrefix(line, ";; ADDITIONAL SECTION:"):
			section = "additional"
		case strings.HasPrefix(line, ";"):
			if section != "" && !strings.HasPrefix(line, ";;") {
				continue
			}
			section = ""
		default:
			r.records++
			if section != "" {
				r.sections[section] = append(r.sections[section], normalizeRR(line))
			}
		}
	}
	if r.status == "" && r.records == 0 && !strings.Contains(out, "; Transfer failed.") {
		return nil, fmt.Errorf("no reply in dig output")
	}
	return r, nil
}

func TestDig(t *testing.T) {
	dig := requireDig(t)
	files, err := filepath.Glob("../../testdata/dig/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no dig cases in testdata/dig: %v", err)
	}
	n := startNode(t, "../../testdata/dig/gslbd.yaml")
	host, port, _ := net.SplitHostPort(n.bound.DNS[0])
	for _, file := range files {
		cases, err := parseDigCases(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				args := append([]string{"@" + host, "-p", port, "+time=5", "+tries=1"}, c.args...)
				out, err := exec.Command(dig, args...).CombinedOutput()
				if err != nil && c.transfer == 0 {
					t.Fatalf("%s: dig %s: %v\n%s", c.pos, strings.Join(args, " "), err, out)
				}
				got, err := parseDig(string(out))
				if err != nil {
					t.Fatalf("%s: dig %s: %v\n%s", c.pos, strings.Join(args, " "), err, out)
				}
				c.check(t, got, string(out))
			})
		}
	}
}

func (c *digCase) check(t *testing.T, got *digResult, out string) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Errorf("%s: dig %s: %s", c.pos, strings.Join(c.args, " "), fmt.Sprintf(format, args...))
	}
	if c.transfer < 0 {
		if got.records != 0 || !strings.Contains(out, "; Transfer failed.") {
			fail("transfer got %d records, want it refused", got.records)
		}
		return
	}
	if c.transfer > 0 {
		if got.records != c.transfer {
			fail("transfer got %d records, want %d", got.records, c.transfer)
		}
		if t.Failed() {
			t.Logf("dig output:\n%s", out)
		}
		return
	}
	if got.status != c.status {
		fail("status %s, want %s", got.status, c.status)
	}
	if c.flags != nil && !slices.Equal(got.flags, c.flags) {
		fail("flags %v, want %v", got.flags, c.flags)
	}
	for _, s := range []string{"question", "answer", "authority", "additional"} {
		if _, ok := c.sections[s]; !ok && s == "question" {
			continue // checked only when the case names it
		}
		g, w := slices.Sorted(slices.Values(got.sections[s])), slices.Sorted(slices.Values(c.sections[s]))
		if !matchRRs(g, w) {
			fail("%s section:\n got:\n\t%s\n want:\n\t%s", s, strings.Join(g, "\n\t"), strings.Join(w, "\n\t"))
		}
	}
	if c.edns != "" && got.edns != c.edns {
		fail("edns %q, want %q", got.edns, c.edns)
	}
	if c.subnet != "" && got.subnet != c.subnet {
		fail("client subnet %q, want %q", got.subnet, c.subnet)
	}
	if t.Failed() {
		t.Logf("dig output:\n%s", out)
	}
}

func TestParseDig(t *testing.T) {
	out := `
; <<>> DiG 9.18.47-1~deb12u1-Debian <<>> @127.0.0.1 -p 5300 www.example.com
;; global options: +cmd
;; Got answer:
;; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 3710
;; flags: qr aa rd; QUERY: 1, ANSWER: 1, AUTHORITY: 0, ADDITIONAL: 1
;; WARNING: recursion requested but not available

;; OPT PSEUDOSECTION:
; EDNS: version: 0, flags:; udp: 1232
;; QUESTION SECTION:
;www.example.com.		IN	A

;; ANSWER SECTION:
www.example.com.	3600	IN	A	192.0.2.10

;; Query time: 0 msec
`
	got, err := parseDig(out)
	if err != nil {
		t.Fatal(err)
	}
	want := &digResult{status: "NOERROR", flags: []string{"aa", "qr", "rd"}, edns: "version 0, udp 1232",
		sections: map[string][]string{"answer": {"www.example.com. 3600 IN A 192.0.2.10"}}}
	if got.status != want.status || !slices.Equal(got.flags, want.flags) || got.edns != want.edns ||
		!slices.Equal(got.sections["answer"], want.sections["answer"]) || len(got.sections["authority"]) != 0 {
		t.Errorf("parseDig = %+v, want %+v", got, want)
	}
}

// TestServedZonePassesNamedCheckzone transfers the demo zone from a running
// node with dig and has BIND's named-checkzone, a checker this project did
// not write, validate what we serve.
func TestServedZonePassesNamedCheckzone(t *testing.T) {
	dig := requireDig(t)
	checkzone := dnstest.RequireTool(t, "named-checkzone", "bind9-utils")
	n := startNode(t, "../../testdata/dig/gslbd.yaml")
	host, port, _ := net.SplitHostPort(n.bound.DNS[0])
	out, err := exec.Command(dig, "@"+host, "-p", port, "+nocmd", "+nostats", "+nocomments", "example.com", "AXFR").Output()
	if err != nil {
		t.Fatalf("dig AXFR: %v", err)
	}
	file := filepath.Join(t.TempDir(), "example.com.axfr")
	if err := os.WriteFile(file, out, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := exec.Command(checkzone, "-i", "local", "-k", "fail", "-m", "fail", "-M", "fail", "-n", "fail", "example.com", file).CombinedOutput()
	if err != nil {
		t.Fatalf("named-checkzone rejects the served zone: %v\n%s\nzone:\n%s", err, res, out)
	}
	// Anything beyond "loaded serial" and "OK" is a warning about our data.
	want := "zone example.com/IN: loaded serial 2026112101\nOK"
	if got := strings.TrimSpace(string(res)); got != want {
		t.Errorf("named-checkzone said:\n%s\nwant:\n%s", got, want)
	}
	t.Logf("named-checkzone: %s", strings.TrimSpace(string(res)))
}
