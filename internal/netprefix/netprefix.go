// Package netprefix parses the client and peer prefixes written in
// gslbd's configuration, its admin API and its command line: a CIDR
// prefix or a bare address, which stands for itself alone.
//
// It is a leaf: it imports nothing of gslbd's.
package netprefix

import (
	"net/netip"
	"strings"
)

// Parse returns the prefix s names: a CIDR prefix ("10.0.0.0/8",
// "2001:db8::/32") with its host bits cleared, or an address
// ("192.0.2.1", "2001:db8::1") as a prefix of its full length. An
// address may carry an IPv6 zone ("fe80::1%eth0"), which is dropped; a
// prefix may not, so "fe80::1%eth0/64" is an error rather than a
// silent /128.
func Parse(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}
