package zones

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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
	Services map[string]*serviceSpec `yaml:"services"`
}

type serviceSpec struct {
	Policy     *string             `yaml:"policy"`
	Order      []string            `yaml:"order"`
	TTL        *int64              `yaml:"ttl"`
	MinHealthy yaml.Node           `yaml:"min_healthy"` // a count or "50%"; Kind 0 when absent
	AllDown    *string             `yaml:"all_down"`
	Check      *checkSpec          `yaml:"check"`
	Sites      map[string][]string `yaml:"sites"`
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

// loadServices reads, decodes and validates the services file against the
// zones. It returns the services sorted by name, or the problems found.
func loadServices(fsys fs.FS, file string, zds []*zoneData) ([]*Service, []error) {
	var b []byte
	var err error
	if fsys != nil {
		b, err = fs.ReadFile(fsys, file)
	} else {
		b, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, []error{&posError{msg: "services: " + err.Error(), err: err}}
	}
	root, spec, errs := decodeServices(file, b)
	if len(errs) > 0 {
		return nil, errs
	}
	l := &servicesLoader{file: file, zds: zds, spec: spec, root: root, reported: make(map[string]bool)}
	svcs := l.load()
	return svcs, l.errs
}

// decodeServices decodes b twice: strictly into the spec, which reports
// unknown fields and type errors with their lines, and into a node tree,
// which gives the position of everything for the semantic checks.
func decodeServices(file string, b []byte) (root *yaml.Node, spec servicesSpec, errs []error) {
	// yaml.v3 turns its own failures into errors, but a bug in it must
	// not bring the server down on a reload.
	defer func() {
		if v := recover(); v != nil {
			errs = []error{errorAt(file, 0, "yaml: internal error: %v", v)}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&spec); err != nil {
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
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
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
		if p := Policy(*spec.Policy); p == Failover {
			svc.Policy = p
		} else {
			l.errorf(yamlpos.Line(n, k), path+".policy", "unknown policy %q: want failover", *spec.Policy)
		}
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
	if len(l.errs) > nerrs {
		return nil
	}
	return svc
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
	endpoints := make(map[string][]Endpoint)
	seen := make(map[netip.Addr]int) // address -> line
	for i := 0; sitesNode != nil && i+1 < len(sitesNode.Content); i += 2 {
		sk, sv := sitesNode.Content[i], sitesNode.Content[i+1]
		site, spath := sk.Value, path+".sites."+sk.Value
		if !l.sites[site] {
			l.errorf(sk.Line, spath, "unknown site")
			continue
		}
		addrs := spec.Sites[site]
		if len(addrs) == 0 {
			l.errorf(sk.Line, spath, "no endpoints")
			continue
		}
		eps := make([]Endpoint, 0, len(addrs))
		for j, s := range addrs {
			line := yamlpos.Line(yamlpos.Item(sv, j), sk)
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
		endpoints[site] = eps
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
		if eps, ok := endpoints[site]; ok && len(eps) > 0 {
			out = append(out, ServiceSite{Site: site, Endpoints: eps, Check: check})
			delete(endpoints, site) // a duplicate in order is reported above
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
		f, err := strconv.ParseFloat(num, 64)
		if err != nil {
			return Threshold{Count: 1}, want
		}
		if !(f > 0 && f <= 100) {
			return Threshold{Count: 1}, fmt.Sprintf("%q must be above 0%% and at most 100%%", n.Value)
		}
		return Threshold{Fraction: f / 100}, ""
	}
	return Threshold{Count: 1}, want
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
	// Marshal cannot fail: plain data, and no NaN (min_healthy is checked).
	b, _ := json.Marshal(canon)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}
