package resolver

import "github.com/miekg/dns"

// Accept is the dns.Server MsgAcceptFunc to use with a [Resolver]. It lets
// every request that unpacks reach ServeDNS, which answers FORMERR (no or
// several questions) and NOTIMP (opcodes other than QUERY) itself, with
// clean header flags; miekg's default rejects those before the handler and
// echoes the request's flags (AD among them). Responses are dropped, so a
// server never answers an answer.
func Accept(dh dns.Header) dns.MsgAcceptAction {
	const qr = 1 << 15
	if dh.Bits&qr != 0 {
		return dns.MsgIgnore
	}
	return dns.MsgAccept
}
