package dnstest

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// Case is one row of an answer table: a query and the reply expected for
// it, in the shape of CoreDNS's test.Case but with TTLs compared: answer
// TTLs are behaviour (failover TTLs especially), so there is no "ignore
// TTL" value.
type Case struct {
	Qname string
	Qtype uint16

	// Query options. Do or UDPSize > 0 add an EDNS(0) OPT record.
	Do      bool
	UDPSize uint16

	// The reply expected.
	Rcode         int
	Authoritative bool
	Truncated     bool
	// Answer, Ns and Extra are RR presentation strings, TTLs included, in
	// any order. An OPT record in the reply is not compared: test EDNS on
	// the message itself.
	Answer, Ns, Extra []string
}

// Msg returns the query of the case.
func (c Case) Msg() *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(c.Qname, c.Qtype)
	m.RecursionDesired = false
	if c.Do || c.UDPSize > 0 {
		size := c.UDPSize
		if size == 0 {
			size = dns.MinMsgSize
		}
		m.SetEdns0(size, c.Do)
	}
	return m
}

// Check reports through t every difference between got and the case.
func (c Case) Check(t testing.TB, got *dns.Msg) {
	t.Helper()
	if d := c.Diff(got); d != "" {
		t.Errorf("%s %s: reply differs (-want +got):\n%s", c.Qname, dns.TypeToString[c.Qtype], d)
	}
}

// Diff returns the differences between got and the case, one per line,
// or "" when there are none.
func (c Case) Diff(got *dns.Msg) string {
	if got == nil {
		return "no reply\n"
	}
	var b strings.Builder
	if got.Rcode != c.Rcode {
		fmt.Fprintf(&b, "rcode: -%s +%s\n", rcodeString(c.Rcode), rcodeString(got.Rcode))
	}
	if got.Authoritative != c.Authoritative {
		fmt.Fprintf(&b, "aa: -%t +%t\n", c.Authoritative, got.Authoritative)
	}
	if got.Truncated != c.Truncated {
		fmt.Fprintf(&b, "tc: -%t +%t\n", c.Truncated, got.Truncated)
	}
	b.WriteString(SectionDiff("answer", got.Answer, c.Answer))
	b.WriteString(SectionDiff("authority", got.Ns, c.Ns))
	b.WriteString(SectionDiff("additional", got.Extra, c.Extra))
	return b.String()
}

// SectionDiff compares the RRs of one section, OPT left out, with want
// written as presentation strings, both sides sorted. It returns "" when
// they match, and otherwise the missing lines prefixed with "-" and the
// unexpected ones with "+" under a header naming the section.
func SectionDiff(section string, got []dns.RR, want []string) string {
	g := Strings(got)
	w := make([]string, 0, len(want))
	for _, s := range want {
		rr, err := dns.NewRR(s)
		if err != nil || rr == nil {
			return fmt.Sprintf("%s: bad want RR %q: %v\n", section, s, err)
		}
		w = append(w, rr.String())
	}
	slices.Sort(w)
	if slices.Equal(g, w) {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s section:\n", section)
	i, j := 0, 0
	for i < len(w) || j < len(g) {
		switch {
		case j == len(g) || (i < len(w) && w[i] < g[j]):
			fmt.Fprintf(&b, "  -%s\n", w[i])
			i++
		case i == len(w) || g[j] < w[i]:
			fmt.Fprintf(&b, "  +%s\n", g[j])
			j++
		default:
			fmt.Fprintf(&b, "   %s\n", w[i])
			i++
			j++
		}
	}
	return b.String()
}

// Strings returns the presentation form of rrs without OPT records,
// sorted.
func Strings(rrs []dns.RR) []string {
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		out = append(out, rr.String())
	}
	slices.Sort(out)
	return out
}

// RRs parses presentation strings into RRs, failing the test on error.
func RRs(t testing.TB, lines ...string) []dns.RR {
	t.Helper()
	out := make([]dns.RR, 0, len(lines))
	for _, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil || rr == nil {
			t.Fatalf("dns.NewRR(%q): %v", l, err)
		}
		out = append(out, rr)
	}
	return out
}

func rcodeString(rc int) string {
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return fmt.Sprint(rc)
}
