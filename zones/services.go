package zones

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
	"go.yaml.in/yaml/v3"

	"github.com/gslbd/gslbd/internal/yamlpos"
)

// The services file, as decoded strictly (KnownFields) before validation.
// Pointers tell "not set" from a zero value, for defaults and for merging
// a service's check over defaults.check field by field.
type servicesSpec struct {
	Sites    []string `yaml:"sites"`
	Defaults struct {
		Check *checkSpec `yaml:"check"`
	} `yaml:"defaults"`
	Regions  map[string]*regionSpec `yaml:"regions"`
	Services serviceMap             `yaml:"services"`
}

// serviceMap is the services mapping, decoded in time linear in the number
// of services (see [yamlpos.DecodeMapping]).
type serviceMap map[string]*serviceSpec

// UnmarshalYAML implements yaml.Unmarshaler.
func (m *serviceMap) UnmarshalYAML(n *yaml.Node) error {
	return yamlpos.DecodeMapping(n, (*map[string]*serviceSpec)(m))
}

// regionSpec is one region of the nearest policy: the client networks in
// it, and its order of sites.
type regionSpec struct {
	Networks []string `yaml:"networks"`
	Order    []string `yaml:"order"`
}

type serviceSpec struct {
	Policy      *string              `yaml:"policy"`
	Order       []string             `yaml:"order"`
	TTL         *int64               `yaml:"ttl"`
	DegradedTTL *int64               `yaml:"degraded_ttl"`
	MinHealthy  yaml.Node            `yaml:"min_healthy"` // a count or "50%"; Kind 0 when absent
	AllDown     *string              `yaml:"all_down"`
	MaxAnswers  *int64               `yaml:"max_answers"`
	Shuffle     *string              `yaml:"shuffle"`
	Regions     map[string][]string  `yaml:"regions"`
	Check       *checkSpec           `yaml:"check"`
	Sites       map[string]*siteSpec `yaml:"sites"`
}

// siteSpec is a site of a service: a list of addresses, or a mapping
// with the addresses under endpoints and the site's other settings.
type siteSpec struct {
	Endpoints []string
	Weight    *int64
	Capacity  *int64
	CNAME     *string
}

// UnmarshalYAML decodes either form. The mapping is decoded strictly by
// hand: a custom unmarshaler does not inherit KnownFields.
func (s *siteSpec) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return n.Decode(&s.Endpoints)
	}
	var errs []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		var err error
		switch k.Value {
		case "endpoints":
			err = v.Decode(&s.Endpoints)
		case "weight":
			err = v.Decode(&s.Weight)
		case "capacity":
			err = v.Decode(&s.Capacity)
		case "cname":
			err = v.Decode(&s.CNAME)
		default:
			errs = append(errs, fmt.Sprintf("line %d: field %s not found in site (want endpoints, weight, capacity, cname)", k.Line, k.Value))
		}
		var te *yaml.TypeError
		if errors.As(err, &te) {
			errs = append(errs, te.Errors...)
		} else if err != nil {
			errs = append(errs, fmt.Sprintf("line %d: %v", v.Line, err))
		}
	}
	if len(errs) > 0 {
		return &yaml.TypeError{Errors: errs}
	}
	return nil
}

type checkSpec struct {
	Type               *string        `yaml:"type"`
	Port               *int64         `yaml:"port"`
	Method             *string        `yaml:"method"`
	Path               *string        `yaml:"path"`
	Host               *string        `yaml:"host"`
	ExpectStatus       *[]int         `yaml:"expect_status"`
	BodyContains       *string        `yaml:"body_contains"`
	InsecureSkipVerify *bool          `yaml:"insecure_skip_verify"`
	ReuseConnection    *bool          `yaml:"reuse_connection"`
	Interval           *time.Duration `yaml:"interval"`
	Timeout            *time.Duration `yaml:"timeout"`
	Rise               *int64         `yaml:"rise"`
	Fall               *int64         `yaml:"fall"`
}

// Defaults of the services file, in one place. The check port defaults to
// 80 for http and 443 for https; a tcp check must set it.
const (
	defaultTTL      = 20
	defaultMethod   = "GET"
	defaultPath     = "/"
	defaultInterval = 500 * time.Millisecond
	defaultTimeout  = 300 * time.Millisecond
	defaultRise     = 2
	defaultFall     = 2
	maxTTL          = 1<<31 - 1 // RFC 2181 §8
)

var siteName = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// servicesDoc is a services file read and decoded, not yet validated.
type servicesDoc struct {
	file string
	root *yaml.Node
	spec servicesSpec
	errs []error
}

// readServices reads and decodes the services file, from fsys when it is
// not nil. It needs no zones, so Load runs it beside the zone files.
func readServices(fsys fs.FS, file string) servicesDoc {
	var b []byte
	var err error
	if fsys != nil {
		b, err = fs.ReadFile(fsys, file)
	} else {
		b, err = os.ReadFile(file)
	}
	if err != nil {
		return servicesDoc{file: file, errs: []error{&posError{msg: "services: " + err.Error(), err: err}}}
	}
	root, spec, errs := decodeServices(file, b)
	return servicesDoc{file: file, root: root, spec: spec, errs: errs}
}

// loadServices validates a decoded services file against the zones. It
// returns the services sorted by name, or the problems found.
func loadServices(doc servicesDoc, zds []*zoneData) ([]*Service, []error) {
	if len(doc.errs) > 0 {
		return nil, doc.errs
	}
	l := &servicesLoader{file: doc.file, zds: zds, spec: doc.spec, root: doc.root, reported: make(map[string]bool)}
	svcs := l.load()
	return svcs, l.errs
}

// decodeServices parses b once into a node tree, which gives the position
// of everything for the semantic checks, and decodes the spec from it as
// strictly as yaml.v3's KnownFields would: unknown fields and type errors
// are reported with their lines.
func decodeServices(file string, b []byte) (root *yaml.Node, spec servicesSpec, errs []error) {
	// yaml.v3 turns its own failures into errors, but a bug in it must
	// not bring the server down on a reload.
	defer func() {
		if v := recover(); v != nil {
			errs = []error{errorAt(file, 0, "yaml: internal error: %v", v)}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			return nil, spec, nil // empty file
		}
		return nil, spec, yamlErrors(file, err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, spec, []error{errorAt(file, extra.Line, "more than one YAML document")}
	case err != io.EOF:
		return nil, spec, yamlErrors(file, err)
	}
	if err := yamlpos.DecodeStrict(&doc, &spec); err != nil {
		return nil, spec, yamlErrors(file, err)
	}
	if len(doc.Content) > 0 {
		root = doc.Content[0]
	}
	return root, spec, nil
}

// yamlErrors turns yaml.v3's errors into "file:N: message", one per
// problem.
func yamlErrors(file string, err error) []error {
	var out []error
	for _, p := range yamlpos.Problems(err) {
		out = append(out, &posError{file: file, line: p.Line, msg: p.Msg, err: err})
	}
	return out
}

// servicesLoader validates a decoded services file and builds the
// services. Every message names the path of the offending value.
type servicesLoader struct {
	file string
	zds  []*zoneData
	spec servicesSpec
	root *yaml.Node // the top mapping; nil for an empty file

	sites    map[string]bool
	regions  *Regions // nil without regions
	errs     []error
	reported map[string]bool // a problem in defaults shows up once, not per service
}

func (l *servicesLoader) errorf(line int, path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	e := errorAt(l.file, line, "%s", msg)
	if s := e.Error(); !l.reported[s] {
		l.reported[s] = true
		l.errs = append(l.errs, e)
	}
}

func (l *servicesLoader) load() []*Service {
	l.sites = make(map[string]bool)
	sitesKey, sitesNode := yamlpos.Get(l.root, "sites")
	for i, s := range l.spec.Sites {
		line := yamlpos.Line(yamlpos.Item(sitesNode, i), sitesKey)
		switch {
		case !siteName.MatchString(s):
			l.errorf(line, fmt.Sprintf("sites[%d]", i), "bad site name %q: use letters, digits, '-', '_' and '.'", s)
		case l.sites[s]:
			l.errorf(line, fmt.Sprintf("sites[%d]", i), "duplicate site %q", s)
		}
		l.sites[s] = true
	}

	l.loadRegions()

	_, defaults := yamlpos.Get(l.root, "defaults")
	_, defCheck := yamlpos.Get(defaults, "check")
	defLayer := checkLayer{spec: l.spec.Defaults.Check, node: defCheck, path: "defaults.check"}
	if defLayer.spec != nil {
		l.check([]checkLayer{defLayer}, false) // its own problems, even with no service
	}

	servicesKey, services := yamlpos.Get(l.root, "services")
	if len(l.spec.Services) > 0 && len(l.spec.Sites) == 0 {
		l.errorf(yamlpos.Line(sitesKey, servicesKey), "sites", "no sites declared")
	}
	byName := make(map[string]int) // canonical name -> line
	var out []*Service
	for i := 0; services != nil && i+1 < len(services.Content); i += 2 {
		k, v := services.Content[i], services.Content[i+1]
		spec := l.spec.Services[k.Value]
		if spec == nil {
			spec = &serviceSpec{}
		}
		if svc := l.service(k, v, spec, defLayer, byName); svc != nil {
			out = append(out, svc)
		}
	}
	slices.SortFunc(out, func(a, b *Service) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// service validates one service; k and v are its key and value nodes.
func (l *servicesLoader) service(k, v *yaml.Node, spec *serviceSpec, defaults checkLayer, byName map[string]int) *Service {
	path := fmt.Sprintf("services[%q]", k.Value)
	nerrs := len(l.errs)
	svc := &Service{
		Policy:     Failover,
		TTL:        defaultTTL,
		MinHealthy: Threshold{Count: 1},
		AllDown:    AllDownAll,
	}

	l.serviceName(k, path, svc, byName)

	if spec.Policy != nil {
		_, n := yamlpos.Get(v, "policy")
		switch p := Policy(*spec.Policy); p {
		case Failover, Weighted, Nearest:
			svc.Policy = p
		default:
			l.errorf(yamlpos.Line(n, k), path+".policy", "unknown policy %q: want failover, weighted or nearest", *spec.Policy)
		}
	}
	if spec.DegradedTTL != nil {
		_, n := yamlpos.Get(v, "degraded_ttl")
		if t := *spec.DegradedTTL; t >= 0 && t <= maxTTL {
			svc.DegradedTTL, svc.HasDegradedTTL = uint32(t), true
		} else {
			l.errorf(yamlpos.Line(n, k), path+".degraded_ttl", "%d out of range 0-%d", t, maxTTL)
		}
	}
	if spec.MaxAnswers != nil {
		_, n := yamlpos.Get(v, "max_answers")
		if m := *spec.MaxAnswers; m >= 1 && m <= 64 {
			svc.MaxAnswers = int(m)
		} else {
			l.errorf(yamlpos.Line(n, k), path+".max_answers", "%d out of range 1-64", m)
		}
	}
	if spec.Shuffle != nil {
		_, n := yamlpos.Get(v, "shuffle")
		switch sh := Shuffle(*spec.Shuffle); {
		case sh != ShuffleRotate && sh != ShuffleClient:
			l.errorf(yamlpos.Line(n, k), path+".shuffle", "unknown value %q: want rotate or client", *spec.Shuffle)
		case spec.MaxAnswers == nil:
			l.errorf(yamlpos.Line(n, k), path+".shuffle", "only with max_answers")
		default:
			svc.Shuffle = sh
		}
	} else if svc.MaxAnswers > 0 {
		svc.Shuffle = ShuffleRotate
	}
	if spec.TTL != nil {
		_, n := yamlpos.Get(v, "ttl")
		if t := *spec.TTL; t >= 0 && t <= maxTTL {
			svc.TTL = uint32(t)
		} else {
			l.errorf(yamlpos.Line(n, k), path+".ttl", "%d out of range 0-%d", t, maxTTL)
		}
	}
	if n := &spec.MinHealthy; n.Kind != 0 && n.ShortTag() != "!!null" {
		t, err := parseThreshold(n)
		if err != "" {
			l.errorf(yamlpos.Line(n, k), path+".min_healthy", "%s", err)
		}
		svc.MinHealthy = t
	}
	if spec.AllDown != nil {
		_, n := yamlpos.Get(v, "all_down")
		switch a := AllDown(*spec.AllDown); a {
		case AllDownAll, AllDownFirst, AllDownServfail:
			svc.AllDown = a
		default:
			l.errorf(yamlpos.Line(n, k), path+".all_down", "unknown value %q: want all, first or servfail", *spec.AllDown)
		}
	}

	_, checkNode := yamlpos.Get(v, "check")
	layers := []checkLayer{{spec: spec.Check, node: checkNode, path: path + ".check"}, defaults}
	check := l.check(layers, true)

	svc.Sites = l.serviceSites(k, v, spec, path, svc.Name, check)
	l.policy(k, v, spec, path, svc)
	if svc.CNAME() {
		// A CNAME owner has no other data (RFC 1034 §3.6.2).
		if zd := lookupZone(l.zds, svc.Name); zd != nil && !zd.failed {
			for _, t := range zd.names[svc.Name].types() {
				if r, ok := zd.first(svc.Name, t); ok {
					l.errorf(k.Line, path, "%s answers with a CNAME and collides with the %s record at %s", svc.Name, dns.Type(t), r.pos())
				}
			}
		}
	}
	if len(l.errs) > nerrs {
		return nil
	}
	return svc
}

// policy checks what the service's policy needs of its sites, and builds
// the orders of the nearest policy.
func (l *servicesLoader) policy(k, v *yaml.Node, spec *serviceSpec, path string, svc *Service) {
	_, sitesNode := yamlpos.Get(v, "sites")
	siteLine := func(site, key string) int {
		sk, sv := yamlpos.Get(sitesNode, site)
		kk, kv := yamlpos.Get(sv, key)
		return yamlpos.Line(kv, kk, sk, k)
	}
	if svc.Policy == Weighted && len(svc.Sites) > 64 {
		l.errorf(k.Line, path+".sites", "%d sites: policy weighted takes at most 64", len(svc.Sites))
	}
	if svc.Policy == Weighted {
		total, capped := 0, 0
		for _, s := range svc.Sites {
			total += s.Weight
			if s.Capacity > 0 {
				capped++
			}
		}
		if len(svc.Sites) > 0 && total == 0 {
			l.errorf(siteLine(svc.Sites[0].Site, "weight"), path+".sites", "every weight is 0: no site would take traffic")
		}
		if capped > 0 && capped < len(svc.Sites) {
			for _, s := range svc.Sites {
				if s.Capacity == 0 {
					l.errorf(siteLine(s.Site, "capacity"), path+".sites."+s.Site, "no capacity: set capacity on every site of the service, or on none")
				}
			}
		}
	} else {
		for _, s := range svc.Sites {
			if sp := spec.Sites[s.Site]; sp != nil && (sp.Weight != nil || sp.Capacity != nil) {
				l.errorf(siteLine(s.Site, "weight"), path+".sites."+s.Site, "weight and capacity are for policy weighted")
			}
		}
	}
	_, regionsNode := yamlpos.Get(v, "regions")
	if svc.Policy != Nearest {
		if spec.Regions != nil {
			l.errorf(yamlpos.Line(regionsNode, k), path+".regions", "only for policy nearest")
		}
		return
	}
	if l.regions == nil {
		l.errorf(k.Line, path+".policy", "policy nearest needs regions (top-level regions:)")
		return
	}
	svc.Regions = l.regions
	index := make(map[string]int, len(svc.Sites))
	for i, s := range svc.Sites {
		index[s.Site] = i
	}
	svc.RegionSites = make([][]int, len(l.regions.Names))
	for r, name := range l.regions.Names {
		order := l.spec.Regions[name].Order
		var orderNode *yaml.Node
		if o, ok := spec.Regions[name]; ok {
			order = o
			_, orderNode = yamlpos.Get(regionsNode, name)
		}
		var sites []int
		used := make(map[int]bool)
		for i, site := range order {
			j, ok := index[site]
			if !ok {
				if orderNode != nil {
					if !l.sites[site] {
						l.errorf(yamlpos.Line(yamlpos.Item(orderNode, i), orderNode), fmt.Sprintf("%s.regions.%s[%d]", path, name, i), "unknown site %q", site)
					} else {
						l.errorf(yamlpos.Line(yamlpos.Item(orderNode, i), orderNode), fmt.Sprintf("%s.regions.%s[%d]", path, name, i), "site %q has no endpoints of this service", site)
					}
				}
				continue // a site of the region the service does not use
			}
			if !used[j] {
				sites = append(sites, j)
				used[j] = true
			}
		}
		// The service's other sites follow, in its order: nearest first,
		// then the rest.
		for j := range svc.Sites {
			if !used[j] {
				sites = append(sites, j)
			}
		}
		svc.RegionSites[r] = sites
	}
	for i := 0; regionsNode != nil && i+1 < len(regionsNode.Content); i += 2 {
		rk := regionsNode.Content[i]
		if !slices.Contains(l.regions.Names, rk.Value) {
			l.errorf(rk.Line, path+".regions."+rk.Value, "unknown region %q", rk.Value)
		}
	}
}

// loadRegions builds the region table of the services file. Networks
// are CIDR prefixes, without host bits, and no two may overlap (in one
// region or two): an address belongs to one region.
func (l *servicesLoader) loadRegions() {
	_, regionsNode := yamlpos.Get(l.root, "regions")
	if regionsNode == nil {
		return
	}
	r := &Regions{}
	lines := make(map[netip.Prefix]int)
	for i := 0; i+1 < len(regionsNode.Content); i += 2 {
		rk, rv := regionsNode.Content[i], regionsNode.Content[i+1]
		name, rpath := rk.Value, "regions."+rk.Value
		spec := l.spec.Regions[name]
		if !siteName.MatchString(name) {
			l.errorf(rk.Line, rpath, "bad region name %q: use letters, digits, '-', '_' and '.'", name)
		}
		idx := len(r.Names)
		r.Names = append(r.Names, name)
		if spec == nil {
			spec = &regionSpec{}
		}
		netsKey, netsNode := yamlpos.Get(rv, "networks")
		if len(spec.Networks) == 0 {
			l.errorf(yamlpos.Line(netsKey, rk), rpath+".networks", "no networks")
		}
		for j, text := range spec.Networks {
			line := yamlpos.Line(yamlpos.Item(netsNode, j), netsKey)
			npath := fmt.Sprintf("%s.networks[%d]", rpath, j)
			p, err := netip.ParsePrefix(text)
			switch {
			case err != nil:
				l.errorf(line, npath, "bad network %q: want a CIDR prefix such as 192.0.2.0/24", text)
				continue
			case p.Addr().Zone() != "" || p.Addr().Is4In6():
				l.errorf(line, npath, "bad network %q: write IPv4 networks as IPv4, without zones", text)
				continue
			case p.Masked() != p:
				l.errorf(line, npath, "bad network %q: host bits set (the network is %s)", text, p.Masked())
				continue
			}
			lines[p] = line
			r.Nets = append(r.Nets, RegionNet{Prefix: p, Region: idx})
		}
		orderKey, orderNode := yamlpos.Get(rv, "order")
		if len(spec.Order) == 0 {
			l.errorf(yamlpos.Line(orderKey, rk), rpath+".order", "no sites")
		}
		seen := make(map[string]bool)
		for j, site := range spec.Order {
			line := yamlpos.Line(yamlpos.Item(orderNode, j), orderKey)
			switch {
			case !l.sites[site]:
				l.errorf(line, fmt.Sprintf("%s.order[%d]", rpath, j), "unknown site %q", site)
			case seen[site]:
				l.errorf(line, fmt.Sprintf("%s.order[%d]", rpath, j), "duplicate site %q", site)
			}
			seen[site] = true
		}
	}
	slices.SortFunc(r.Nets, func(a, b RegionNet) int {
		if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
			return c
		}
		return a.Prefix.Bits() - b.Prefix.Bits()
	})
	// Sorted by first address, and the networks kept so far disjoint, a
	// network can only overlap the last one kept.
	last := -1
	for i := range r.Nets {
		b := r.Nets[i].Prefix
		if last >= 0 {
			a := r.Nets[last].Prefix
			if a.Addr().Is4() == b.Addr().Is4() && a.Overlaps(b) {
				l.errorf(lines[b], "regions."+r.Names[r.Nets[i].Region], "network %s overlaps %s of region %s (line %d)", b, a, r.Names[r.Nets[last].Region], lines[a])
				continue
			}
		}
		last = i
	}
	l.regions = r
}

// serviceName checks the service's owner name against the zones.
func (l *servicesLoader) serviceName(k *yaml.Node, path string, svc *Service, byName map[string]int) {
	bad := func(format string, args ...any) { l.errorf(k.Line, path, format, args...) }
	if _, ok := dns.IsDomainName(k.Value); !ok {
		bad("bad name")
		return
	}
	name := dns.CanonicalName(k.Value)
	svc.Name = name
	if strings.HasPrefix(name, "*.") {
		bad("wildcard names are not supported")
		return
	}
	if line, dup := byName[name]; dup {
		bad("duplicate service %s (also at line %d)", name, line)
		return
	}
	byName[name] = k.Line
	zd := lookupZone(l.zds, name)
	if zd == nil {
		bad("%s is not inside any loaded zone", name)
		return
	}
	if zd.failed {
		return // its file did not parse; that is reported already
	}
	if cut := zd.cutAbove(name); cut != "" {
		ns, _ := zd.first(cut, dns.TypeNS)
		bad("%s is at or below the delegation at %s (%s)", name, cut, ns.pos())
		return
	}
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeCNAME} {
		if r, ok := zd.first(name, t); ok {
			bad("%s collides with the %s record at %s", name, dns.Type(t), r.pos())
		}
	}
}

// serviceSites builds the sites of a service in policy order.
func (l *servicesLoader) serviceSites(k, v *yaml.Node, spec *serviceSpec, path, name string, check Check) []ServiceSite {
	sitesKey, sitesNode := yamlpos.Get(v, "sites")
	idName := strings.TrimSuffix(name, ".")
	built := make(map[string]ServiceSite)
	seen := make(map[netip.Addr]int) // address -> line
	for i := 0; sitesNode != nil && i+1 < len(sitesNode.Content); i += 2 {
		sk, sv := sitesNode.Content[i], sitesNode.Content[i+1]
		site, spath := sk.Value, path+".sites."+sk.Value
		if !l.sites[site] {
			l.errorf(sk.Line, spath, "unknown site")
			continue
		}
		ss := spec.Sites[site]
		if ss == nil {
			ss = &siteSpec{}
		}
		addrs := ss.Endpoints
		addrsNode := sv
		if sv.Kind == yaml.MappingNode {
			_, addrsNode = yamlpos.Get(sv, "endpoints")
		}
		if len(addrs) == 0 {
			l.errorf(sk.Line, spath, "no endpoints")
			continue
		}
		st := ServiceSite{Site: site}
		if spec.Policy != nil && Policy(*spec.Policy) == Weighted {
			st.Weight = 1
		}
		if ss.Weight != nil {
			wk, wv := yamlpos.Get(sv, "weight")
			if w := *ss.Weight; w >= 0 && w <= 1_000_000 {
				st.Weight = int(w)
			} else {
				l.errorf(yamlpos.Line(wv, wk, sk), spath+".weight", "%d out of range 0-1000000", w)
			}
		}
		if ss.Capacity != nil {
			ck, cv := yamlpos.Get(sv, "capacity")
			switch c := *ss.Capacity; {
			case c < 1 || c > 1_000_000:
				l.errorf(yamlpos.Line(cv, ck, sk), spath+".capacity", "%d out of range 1-1000000", c)
			case int(c) < max(st.Weight, 1):
				l.errorf(yamlpos.Line(cv, ck, sk), spath+".capacity", "%d is below the weight %d", c, st.Weight)
			default:
				st.Capacity = int(c)
			}
		}
		if ss.CNAME != nil {
			ck, cv := yamlpos.Get(sv, "cname")
			if _, ok := dns.IsDomainName(*ss.CNAME); !ok || *ss.CNAME == "" {
				l.errorf(yamlpos.Line(cv, ck, sk), spath+".cname", "bad name %q", *ss.CNAME)
			} else {
				st.CNAME = dns.CanonicalName(*ss.CNAME)
			}
		}
		eps := make([]Endpoint, 0, len(addrs))
		for j, s := range addrs {
			line := yamlpos.Line(yamlpos.Item(addrsNode, j), sk)
			epath := fmt.Sprintf("%s[%d]", spath, j)
			a, err := parseEndpoint(s)
			if err != "" {
				l.errorf(line, epath, "%s", err)
				continue
			}
			if prev, dup := seen[a]; dup {
				l.errorf(line, epath, "duplicate endpoint %s (also at line %d)", a, prev)
				continue
			}
			seen[a] = line
			eps = append(eps, Endpoint{ID: idName + "/" + site + "/" + a.String(), Addr: a})
		}
		// Sorted by address: the order in the file means nothing, and the
		// hash must not depend on it.
		slices.SortFunc(eps, func(a, b Endpoint) int { return a.Addr.Compare(b.Addr) })
		st.Endpoints = eps
		built[site] = st
	}
	if len(spec.Sites) == 0 {
		l.errorf(yamlpos.Line(sitesKey, k), path+".sites", "no sites")
		return nil
	}

	order := l.spec.Sites
	if spec.Order != nil {
		orderKey, orderNode := yamlpos.Get(v, "order")
		listed := make(map[string]bool)
		for i, s := range spec.Order {
			line := yamlpos.Line(yamlpos.Item(orderNode, i), orderKey)
			opath := fmt.Sprintf("%s.order[%d]", path, i)
			switch {
			case !l.sites[s]:
				l.errorf(line, opath, "unknown site %q", s)
			case listed[s]:
				l.errorf(line, opath, "duplicate site %q", s)
			}
			listed[s] = true
		}
		for i := 0; sitesNode != nil && i+1 < len(sitesNode.Content); i += 2 {
			sk := sitesNode.Content[i]
			if l.sites[sk.Value] && !listed[sk.Value] {
				l.errorf(sk.Line, path+".sites."+sk.Value, "missing from order")
			}
		}
		order = spec.Order
	}
	var out []ServiceSite
	for _, site := range order {
		if st, ok := built[site]; ok && len(st.Endpoints) > 0 {
			st.Check = check
			out = append(out, st)
			delete(built, site) // a duplicate in order is reported above
		}
	}
	cnames := 0
	for _, st := range out {
		if st.CNAME != "" {
			cnames++
		}
	}
	if cnames > 0 && cnames < len(out) {
		for _, st := range out {
			if st.CNAME == "" {
				sk, _ := yamlpos.Get(sitesNode, st.Site)
				l.errorf(yamlpos.Line(sk, k), path+".sites."+st.Site, "no cname: a CNAME service needs a cname on every site")
			}
		}
	}
	return out
}

func parseEndpoint(s string) (netip.Addr, string) {
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return a, "bad address: " + err.Error()
	case a.Zone() != "":
		return a, fmt.Sprintf("bad address %q: zones are not allowed", s)
	case a.Is4In6():
		return a, fmt.Sprintf("bad address %q: write the IPv4 address %s", s, a.Unmap())
	case a.IsUnspecified():
		return a, fmt.Sprintf("bad address %q: unspecified", s)
	}
	return a, ""
}

// parseThreshold reads min_healthy: a count of at least 1, or a percentage
// above 0% and at most 100%.
func parseThreshold(n *yaml.Node) (Threshold, string) {
	const want = `want a count such as 2 or a percentage such as "50%"`
	if n.Kind != yaml.ScalarNode {
		return Threshold{Count: 1}, want
	}
	switch n.ShortTag() {
	case "!!int":
		var c int
		if err := n.Decode(&c); err != nil {
			return Threshold{Count: 1}, want
		}
		if c < 1 {
			return Threshold{Count: 1}, fmt.Sprintf("%d must be at least 1", c)
		}
		return Threshold{Count: c}, ""
	case "!!str":
		num, ok := strings.CutSuffix(n.Value, "%")
		if !ok {
			return Threshold{Count: 1}, want
		}
		pm, ok := parsePercent(num)
		if !ok {
			return Threshold{Count: 1}, want
		}
		if pm <= 0 || pm > 1_000_000 {
			return Threshold{Count: 1}, fmt.Sprintf("%q must be above 0%% and at most 100%%", n.Value)
		}
		return Threshold{PerMillion: pm}, ""
	}
	return Threshold{Count: 1}, want
}

// parsePercent reads a decimal percentage ("7", "12.5", at most four
// decimals) as millionths, exactly: no float is involved.
func parsePercent(s string) (int, bool) {
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" || len(whole) > 3 || len(frac) > 4 {
		return 0, false
	}
	for _, c := range whole + frac {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	w, _ := strconv.Atoi(whole)
	f := 0
	if frac != "" {
		f, _ = strconv.Atoi(frac + strings.Repeat("0", 4-len(frac)))
	}
	return w*10_000 + f, true
}

// checkLayer is one level of check settings: a service's own check, then
// defaults.check. The first layer that sets a field wins.
type checkLayer struct {
	spec *checkSpec
	node *yaml.Node // the check mapping, for positions
	path string
}

// from says where a check setting came from, for messages; the zero value
// is a built-in default.
type from struct {
	path string
	line int
}

// setting returns the value of a check field from the first layer that
// sets it, or def.
func setting[T any](layers []checkLayer, key string, get func(*checkSpec) *T, def T) (T, from) {
	for _, ly := range layers {
		if ly.spec == nil {
			continue
		}
		if p := get(ly.spec); p != nil {
			k, v := yamlpos.Get(ly.node, key)
			return *p, from{path: ly.path + "." + key, line: yamlpos.Line(v, k, ly.node)}
		}
	}
	return def, from{}
}

// check merges the layers into a Check and reports what is wrong with it.
// Problems that come from defaults.check read the same for every service
// and are reported once. complete is false for defaults.check on its own,
// whose gaps (a tcp port, a longer interval) services may fill.
func (l *servicesLoader) check(layers []checkLayer, complete bool) Check {
	bad := func(f from, format string, args ...any) { l.errorf(f.line, f.path, format, args...) }

	kind, kindFrom := setting(layers, "type", func(c *checkSpec) *string { return c.Type }, string(CheckHTTP))
	port, portFrom := setting(layers, "port", func(c *checkSpec) *int64 { return c.Port }, 0)
	method, methodFrom := setting(layers, "method", func(c *checkSpec) *string { return c.Method }, defaultMethod)
	path, pathFrom := setting(layers, "path", func(c *checkSpec) *string { return c.Path }, defaultPath)
	host, _ := setting(layers, "host", func(c *checkSpec) *string { return c.Host }, "")
	status, statusFrom := setting(layers, "expect_status", func(c *checkSpec) *[]int { return c.ExpectStatus }, nil)
	body, _ := setting(layers, "body_contains", func(c *checkSpec) *string { return c.BodyContains }, "")
	insecure, _ := setting(layers, "insecure_skip_verify", func(c *checkSpec) *bool { return c.InsecureSkipVerify }, false)
	reuse, _ := setting(layers, "reuse_connection", func(c *checkSpec) *bool { return c.ReuseConnection }, true)
	interval, intervalFrom := setting(layers, "interval", func(c *checkSpec) *time.Duration { return c.Interval }, defaultInterval)
	timeout, timeoutFrom := setting(layers, "timeout", func(c *checkSpec) *time.Duration { return c.Timeout }, defaultTimeout)
	rise, riseFrom := setting(layers, "rise", func(c *checkSpec) *int64 { return c.Rise }, defaultRise)
	fall, fallFrom := setting(layers, "fall", func(c *checkSpec) *int64 { return c.Fall }, defaultFall)

	c := Check{
		Kind:               CheckKind(kind),
		Interval:           interval,
		Timeout:            timeout,
		Rise:               int(rise),
		Fall:               int(fall),
		Method:             method,
		Path:               path,
		Host:               host,
		ExpectStatus:       slices.Clone(status),
		BodyContains:       body,
		InsecureSkipVerify: insecure,
		DisableReuse:       !reuse,
	}
	if len(c.ExpectStatus) == 0 {
		c.ExpectStatus = nil
	}

	switch c.Kind {
	case CheckHTTP, CheckHTTPS, CheckTCP:
	default:
		bad(kindFrom, "unknown check type %q: want http, https or tcp", kind)
	}
	switch {
	case portFrom != (from{}) && (port < 1 || port > 65535):
		bad(portFrom, "%d out of range 1-65535", port)
	case portFrom != (from{}):
		c.Port = uint16(port)
	case c.Kind == CheckHTTP:
		c.Port = 80
	case c.Kind == CheckHTTPS:
		c.Port = 443
	case c.Kind == CheckTCP && complete:
		bad(kindFrom, "a tcp check needs a port")
	}
	if interval <= 0 {
		bad(intervalFrom, "%v must be positive", interval)
	}
	if timeout <= 0 {
		bad(timeoutFrom, "%v must be positive", timeout)
	}
	if complete && timeout > 0 && interval > 0 && timeout >= interval {
		f := timeoutFrom
		if f == (from{}) {
			f = intervalFrom
		}
		bad(f, "timeout %v must be less than interval %v", timeout, interval)
	}
	if rise < 1 {
		bad(riseFrom, "%d must be at least 1", rise)
	}
	if fall < 1 {
		bad(fallFrom, "%d must be at least 1", fall)
	}

	if c.Kind == CheckTCP {
		// A tcp check has no HTTP settings. Those inherited from
		// defaults.check are dropped; those set beside "type: tcp" are a
		// mistake.
		for _, ly := range layers {
			if ly.spec == nil || ly.spec.Type == nil || *ly.spec.Type != string(CheckTCP) {
				continue
			}
			for _, key := range httpOnly(ly.spec) {
				k, _ := yamlpos.Get(ly.node, key)
				bad(from{path: ly.path + "." + key, line: yamlpos.Line(k, ly.node)}, "only for http and https checks")
			}
		}
		c.Method, c.Path, c.Host, c.ExpectStatus, c.BodyContains, c.InsecureSkipVerify = "", "", "", nil, "", false
		c.DisableReuse = false // a tcp probe is a connect and nothing else
		return c
	}
	if !httpMethod.MatchString(method) {
		bad(methodFrom, "bad method %q", method)
	}
	if !strings.HasPrefix(path, "/") {
		bad(pathFrom, "%q must start with /", path)
	}
	for _, s := range status {
		if s < 100 || s > 599 {
			bad(statusFrom, "bad status %d", s)
		}
	}
	if c.Kind == CheckHTTP {
		c.InsecureSkipVerify = false // no TLS to verify
	}
	return c
}

var httpMethod = regexp.MustCompile(`^[A-Z]+$`)

// httpOnly lists the HTTP settings a check layer sets.
func httpOnly(c *checkSpec) []string {
	var keys []string
	for _, f := range []struct {
		key string
		set bool
	}{
		{"method", c.Method != nil},
		{"path", c.Path != nil},
		{"host", c.Host != nil},
		{"expect_status", c.ExpectStatus != nil},
		{"body_contains", c.BodyContains != nil},
		{"insecure_skip_verify", c.InsecureSkipVerify != nil},
		{"reuse_connection", c.ReuseConnection != nil},
	} {
		if f.set {
			keys = append(keys, f.key)
		}
	}
	return keys
}

// hashServices identifies the service definitions: the same services give
// the same hash whatever the YAML looked like (layout, key order, address
// order, name case), because it is taken over the built values, sorted by
// name. JSON covers every field, including ones added later.
func hashServices(svcs []*Service) string {
	canon := make([]Service, len(svcs))
	for i, s := range svcs {
		canon[i] = *s
		canon[i].Zone = "" // derived from the zones, not part of the definition
	}
	slices.SortFunc(canon, func(a, b Service) int { return strings.Compare(a.Name, b.Name) })
	// The JSON of the slice, one element at a time so that it never sits
	// whole in memory: "[" elements joined by "," "]", exactly what
	// json.Marshal(canon) would write. Marshal cannot fail: plain data,
	// and no NaN (min_healthy is checked).
	h := sha256.New()
	h.Write([]byte("["))
	for i := range canon {
		if i > 0 {
			h.Write([]byte(","))
		}
		b, _ := json.Marshal(&canon[i])
		h.Write(b)
	}
	h.Write([]byte("]"))
	return hex.EncodeToString(h.Sum(nil)[:8])
}
