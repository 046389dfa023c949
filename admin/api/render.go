package api

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"
	"time"
)

// The text the gslbd operator commands print for people. Times are
// shown in the local time zone. Scripts should read the JSON instead:
// this text may change between releases.

// WriteStatus writes s as the tables of "gslbd status": the node, its
// services' endpoints with their verdicts, the drains in force and the
// cluster's members.
func WriteStatus(w io.Writer, s Status) {
	ready := "yes"
	if !s.Ready {
		ready = "no"
	}
	fmt.Fprintf(w, "node %s, site %s, config %s, generation %d, ready %s\n",
		s.Node, s.Site, s.ConfigHash, s.Generation, ready)
	if g := s.Gossip; g != nil {
		switch {
		case g.Warning != "":
			fmt.Fprintf(w, "WARNING: %s\n", g.Warning)
		case g.Encrypted:
			fmt.Fprintf(w, "gossip encrypted, keys %s (the first encrypts)\n", strings.Join(g.Keys, " "))
		default:
			fmt.Fprintln(w, "gossip not encrypted (loopback only)")
		}
	}
	if s.ViewSuspect {
		fmt.Fprintln(w, "own view SUSPECT: none of this node's probes succeeds while other nodes see those endpoints up;\n"+
			"  its votes are set aside and its verdicts come from the other nodes (see LOCAL PROBE)")
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if len(s.Services) > 0 {
		fmt.Fprintln(tw, "SERVICE\tSITE\tENDPOINT\tVERDICT\tWHY\tLOCAL PROBE\tDRAINED BY")
		for _, svc := range s.Services {
			name := svc.Name
			for _, site := range svc.Sites {
				siteName, drained := site.Site, strings.Join(site.DrainedBy, ",")
				for _, ep := range site.Endpoints {
					verdict := "down"
					if ep.Up {
						verdict = "up"
					}
					local := ep.Local
					if ep.Error != "" {
						local += ": " + ep.Error
					}
					if ep.LocalFault != "" {
						local += " (cannot probe from here: " + ep.LocalFault + ")"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, siteName, ep.Address, verdict, ep.Reason, local, drained)
					name, siteName, drained = "", "", ""
				}
			}
		}
		tw.Flush()
		fmt.Fprintln(w)
	}
	if len(s.Drains) == 0 {
		fmt.Fprintln(w, "no drains in force")
	} else {
		fmt.Fprintln(tw, "DRAIN\tSITE\tSERVICE\tCLIENTS\tEXPIRES\tBY\tNODE\tREASON")
		for _, r := range s.Drains {
			svc, clients := r.Service, "all"
			if svc == "" {
				svc = "all"
			}
			if len(r.Clients) > 0 {
				clients = FormatPrefixes(r.Clients)
			}
			exp := "never"
			if !r.Expires.IsZero() {
				exp = r.Expires.Local().Format(time.DateTime)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Site, svc, clients, exp, r.By, r.Stamp.Node, r.Reason)
		}
		tw.Flush()
	}
	if len(s.SetAside) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "set aside by the cluster-wide guardrail, not applied (each would leave a service no site; it applies once the drains before it end):")
		fmt.Fprintln(tw, "DRAIN\tSITE\tSERVICE\tCLIENTS\tBY\tNODE\tWOULD LEAVE NO SITE FOR\tREASON")
		for _, sa := range s.SetAside {
			r := sa.Drain
			svc, clients := r.Service, "all"
			if svc == "" {
				svc = "all"
			}
			if len(r.Clients) > 0 {
				clients = FormatPrefixes(r.Clients)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Site, svc, clients, r.By, r.Stamp.Node, strings.Join(sa.Services, ","), r.Reason)
		}
		tw.Flush()
	}
	fmt.Fprintln(w)
	if len(s.Peers) == 0 {
		fmt.Fprintln(w, "no gossip: this node runs alone")
		return
	}
	fmt.Fprintln(tw, "NODE\tSITE\tADDRESS\tSTATE\tCONFIG\tLAST REPORT")
	for _, p := range s.Peers {
		cfg := p.ConfigHash
		if !p.SameConfig {
			cfg += " (differs)"
		}
		state := p.State
		if p.ViewSuspect {
			state += ", view suspect"
		}
		last := "-"
		if !p.LastReport.IsZero() {
			last = p.LastReport.Local().Format(time.TimeOnly)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.Site, p.Address, state, cfg, last)
	}
	tw.Flush()
}

// WriteCreated writes the answer to a drain's creation, as "gslbd drain"
// prints it: the drain, the services it was forced on, and which nodes
// applied it.
func WriteCreated(w io.Writer, res Result) {
	r := res.Drain
	fmt.Fprintf(w, "drain %s in force: %s; %q by %s, %s\n", r.ID, r.Key, r.Reason, r.By, expiresText(r.Expires))
	if len(res.Forced) > 0 {
		fmt.Fprintf(w, "forced: no site is left able to take traffic for %s\n", strings.Join(res.Forced, ", "))
	}
	writeAck(w, res.Ack)
}

// WriteDeleted writes the answer to a drain's end, as "gslbd undrain"
// prints it: the drain and which nodes applied its end.
func WriteDeleted(w io.Writer, res Result) {
	fmt.Fprintf(w, "drain %s ended: %s\n", res.Drain.ID, res.Drain.Key)
	writeAck(w, res.Ack)
}

// FormatPrefixes returns ps separated by commas, the form the command
// line's --clients flag takes.
func FormatPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

func writeAck(w io.Writer, a Ack) {
	total := len(a.Applied) + len(a.Missing)
	if a.Complete {
		fmt.Fprintf(w, "applied on every node (%d) within %dms: %s\n", total, a.WaitedMillis, strings.Join(a.Applied, ", "))
		return
	}
	fmt.Fprintf(w, "applied on %d of %d nodes after %dms: %s\n", len(a.Applied), total, a.WaitedMillis, orNone(a.Applied))
	fmt.Fprintf(w, "not yet applied on: %s (gossip keeps delivering it; check with gslbd status on those nodes)\n", strings.Join(a.Missing, ", "))
	if len(a.Unreachable) > 0 {
		fmt.Fprintf(w, "not reachable from this node: %s (failed or cut off; they apply it once back in touch)\n", strings.Join(a.Unreachable, ", "))
	}
}

func expiresText(t time.Time) string {
	if t.IsZero() {
		return "no expiry"
	}
	return "until " + t.Local().Format(time.DateTime+" MST")
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
