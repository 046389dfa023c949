package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/gslbd/gslbd/admin"
	"github.com/gslbd/gslbd/admin/api"
	"github.com/gslbd/gslbd/cluster"
	"github.com/gslbd/gslbd/drain"
	"github.com/gslbd/gslbd/health"
	"github.com/gslbd/gslbd/resolver"
)

// bound lists the addresses a running node listens on.
type bound struct {
	DNS    []string // one per listen address (UDP and TCP share it)
	Admin  string   // "" when disabled
	Gossip string   // "" without a cluster
}

// dnsWriteTimeout bounds the writing of one DNS over TCP reply.
const dnsWriteTimeout = 5 * time.Second

// shutdownTimeout bounds a graceful stop.
const shutdownTimeout = 10 * time.Second

func serveCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, h hooks) error {
	fs := newFlagSet("serve", stderr)
	path := fs.String("config", getenv("GSLBD_CONFIG"), "node configuration `file` (or $GSLBD_CONFIG)")
	level := fs.String("log-level", "", "override log.level: debug, info, warn, error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *path == "" {
		return exitError{code: 2, msg: "gslbd serve: -config is required"}
	}
	l, err := load(*path)
	if err != nil {
		return exitError{code: 2, msg: err.Error()}
	}
	lc := l.cfg.Log
	if *level != "" {
		lc.Level = *level // for this run only: not a setting a reload compares
	}
	logger, levelVar, err := newLogger(lc, stderr)
	if err != nil {
		return exitError{code: 2, msg: err.Error()}
	}
	reload := h.reload
	if reload == nil {
		hup, stop := sighupReloads()
		defer stop()
		reload = hup
	}
	n, err := newNode(l, logger, levelVar)
	if err != nil {
		return err
	}
	n.notifySocket = getenv("NOTIFY_SOCKET")
	return n.run(ctx, reload, h.ready)
}

func newLogger(lc LogConfig, w io.Writer) (*slog.Logger, *slog.LevelVar, error) {
	lv := new(slog.LevelVar)
	if lc.Level != "" {
		if err := lv.UnmarshalText([]byte(lc.Level)); err != nil {
			return nil, nil, fmt.Errorf("log level: %w", err)
		}
	}
	opts := &slog.HandlerOptions{Level: lv}
	var hnd slog.Handler = slog.NewTextHandler(w, opts)
	if lc.Format == "json" {
		hnd = slog.NewJSONHandler(w, opts)
	}
	return slog.New(hnd), lv, nil
}

// node is one running gslbd: it owns every component and their lifecycle.
type node struct {
	cfg      *Config
	log      *slog.Logger
	levelVar *slog.LevelVar
	reg      *prometheus.Registry
	metrics  *nodeMetrics

	resolver *resolver.Resolver
	checker  *health.Checker
	drains   *drain.Store
	cluster  *cluster.Cluster // nil when gossip is off
	pub      *publisher
	adminAPI *admin.Server

	dnsServers []*dns.Server // TCP
	udpServers []*resolver.UDPServer
	udpConns   []*net.UDPConn // every socket of udpServers
	demo       []*demoEndpoint
	admin      *http.Server
	adminLn    net.Listener
	// adminCert is the certificate the admin listener serves new TLS
	// connections with; a reload replaces it. nil without TLS.
	adminCert atomic.Pointer[tls.Certificate]

	listening atomic.Bool // DNS listeners are up and not shutting down
	stopping  atomic.Bool // shutdown began: not ready, though maybe still answering

	// notifySocket is $NOTIFY_SOCKET: the service manager's (systemd) datagram
	// socket for sd_notify, "" when not run by one.
	notifySocket string
}

// notify tells the service manager about the node's state (sd_notify).
func (n *node) notify(state string) {
	if err := sdNotify(n.notifySocket, state); err != nil {
		n.log.Warn("notify service manager", "state", state, "error", err)
	}
}

// newNode builds a node from what load read; it reads no file again.
func newNode(l *loaded, logger *slog.Logger, lv *slog.LevelVar) (*node, error) {
	cfg, set := l.cfg, l.set
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	n := &node{cfg: cfg, log: logger, levelVar: lv, reg: reg, metrics: newNodeMetrics(reg)}

	var err error
	n.resolver, err = resolver.New(resolver.Config{UDPSize: cfg.DNS.UDPSize, Logger: logger.With("component", "resolver"),
		DebugClients: cfg.debugClients(), RRL: cfg.DNS.resolverRRL()}, reg)
	if err != nil {
		return nil, err
	}
	n.checker, err = health.NewChecker(health.CheckerConfig{}, l.targets, logger.With("component", "health"), reg)
	if err != nil {
		return nil, err
	}
	if n.drains, err = openDrains(cfg, logger.With("component", "drain"), reg); err != nil {
		return nil, err
	}
	acks := drain.NewAcks(cfg.Node.Name)
	deps := publisherDeps{Local: n.checker, Drains: n.drains, Acks: acks, Resolver: n.resolver,
		Observe: newAllDownCounter(reg).observe}
	api := &drainAPI{self: cfg.Node.Name, store: n.drains, acks: acks, log: logger.With("component", "drain")}
	if cfg.Cluster.Bind != "" {
		cc := l.cluster
		cc.Drains, cc.DrainAcks = n.drains, acks
		n.cluster, err = cluster.New(cc, logger.With("component", "cluster"), reg)
		if err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
		deps.Peers, api.gossip = n.cluster, n.cluster
	}
	n.pub = newPublisher(publisherConfig{
		Self:      cfg.Node.Name,
		Site:      cfg.Node.Site,
		Staleness: cfg.Cluster.Staleness,
		// A site is quiet when two of its heartbeats are missing.
		Quiet: 2 * cfg.Cluster.Heartbeat,
	}, set, deps, logger.With("component", "publisher"), reg)
	api.state = n.pub
	reg.MustRegister(&opsCollector{pub: n.pub, cluster: n.cluster, self: cfg.Node.Name, now: time.Now})
	n.adminAPI = admin.New(admin.Config{Node: n, Drains: api, Tokens: l.tokens, AnonymousRead: cfg.Admin.AnonymousRead,
		Gatherer: reg, Logger: logger.With("component", "admin")})
	n.metrics.reloadOK.Set(1)
	n.metrics.reloadTime.SetToCurrentTime()
	n.adminCert.Store(l.adminCert)

	if n.demo, err = listenDemoEndpoints(cfg.Demo); err != nil {
		return nil, err
	}
	if err := n.listenDNS(); err != nil {
		n.closeListeners()
		return nil, err
	}
	if cfg.Admin.Listen != "" && !cfg.Admin.Disabled {
		n.adminLn, err = net.Listen("tcp", cfg.Admin.Listen)
		if err != nil {
			n.closeListeners()
			return nil, fmt.Errorf("admin listener: %w", err)
		}
	}
	return n, nil
}

// listenDNS binds UDP sockets and a TCP socket on every listen address:
// one UDP socket per usable CPU (GOMAXPROCS), sharing the port through
// SO_REUSEPORT, each with its own reader goroutine. With port 0 the TCP
// socket takes the port the UDP sockets got.
//
// DNS over TCP is bounded (dns.tcp): connections in total and per client
// address (over either, a connection is closed on arrival), an idle
// timeout for the first query and between queries that also bounds how
// long one query may take to arrive, a write timeout, and a number of
// queries per connection.
func (n *node) listenDNS() error {
	tc := n.cfg.DNS.TCP
	idle := func() time.Duration { return tc.IdleTimeout }
	for _, addr := range n.cfg.DNS.Listen {
		conns, ln, err := listenUDPTCP(addr, runtime.GOMAXPROCS(0))
		if err != nil {
			return fmt.Errorf("dns listener: %w", err)
		}
		n.udpConns = append(n.udpConns, conns...)
		srv := n.resolver.NewUDPServer(conns, int(n.cfg.DNS.UDPSize))
		srv.SetCoalesce(*n.cfg.DNS.UDPCoalesce)
		n.udpServers = append(n.udpServers, srv)
		ln = newLimitListener(ln, tc.MaxConnections, tc.MaxConnectionsPerClient, n.metrics.tcpRefused, n.metrics.tcpOpen)
		n.dnsServers = append(n.dnsServers,
			&dns.Server{Listener: ln, Handler: n.resolver, MsgAcceptFunc: resolver.Accept,
				ReadTimeout: tc.IdleTimeout, IdleTimeout: idle, WriteTimeout: dnsWriteTimeout, MaxTCPQueries: tc.MaxQueries})
	}
	return nil
}

func (n *node) closeListeners() {
	for _, c := range n.udpConns {
		c.Close()
	}
	for _, s := range n.dnsServers {
		if s.Listener != nil {
			s.Listener.Close()
		}
	}
	if n.adminLn != nil {
		n.adminLn.Close()
	}
	for _, e := range n.demo {
		e.ln.Close()
	}
}

// run serves until ctx is done, then hands over and shuts down in order:
// not ready (/readyz 503, STOPPING=1 to systemd), leave the cluster (peers
// drop our report at once and show us as left), keep answering DNS for
// the lame-duck period, stop DNS (answering queries in flight), stop the
// admin listener, stop probing.
func (n *node) run(ctx context.Context, reload <-chan struct{}, ready func(bound)) error {
	n.log.Info("starting", "node", n.cfg.Node.Name, "site", n.cfg.Node.Site, "version", version)
	runCtx, cancelAll := context.WithCancel(context.Background())
	defer cancelAll()
	g, gctx := errgroup.WithContext(runCtx)

	for _, e := range n.demo {
		g.Go(func() error { return e.serve(gctx, n.log.With("component", "demo")) })
	}
	// Health probes and the publisher run until everything else stopped.
	g.Go(func() error { return n.checker.Run(gctx) })
	g.Go(func() error { return n.pub.run(gctx) })
	g.Go(func() error { return n.drains.Run(gctx) })
	clusterCtx, stopCluster := context.WithCancel(gctx)
	defer stopCluster()
	clusterDone := make(chan struct{})
	if n.cluster != nil {
		g.Go(func() error {
			defer close(clusterDone)
			return n.cluster.Run(clusterCtx)
		})
	} else {
		close(clusterDone)
	}

	// A node answers only once its first probe round is done (bounded by the
	// checker's FirstRoundBound): before that it would hand out addresses it
	// knows nothing about. Resolvers ask the other name servers meanwhile.
	if !n.waitFirstRound(ctx, gctx) {
		n.closeListeners()
		cancelAll()
		return g.Wait()
	}

	// DNS servers.
	started := make(chan struct{}, len(n.dnsServers)+len(n.udpServers))
	for _, s := range n.udpServers {
		g.Go(func() error {
			if err := s.Serve(func() { started <- struct{}{} }); err != nil && gctx.Err() == nil {
				return fmt.Errorf("dns server: %w", err)
			}
			return nil
		})
	}
	for _, s := range n.dnsServers {
		s.NotifyStartedFunc = func() { started <- struct{}{} }
		g.Go(func() error {
			if err := s.ActivateAndServe(); err != nil && gctx.Err() == nil {
				return fmt.Errorf("dns server: %w", err)
			}
			return nil
		})
	}
	for range len(n.dnsServers) + len(n.udpServers) {
		select {
		case <-started:
		case <-gctx.Done():
			// A component failed while the servers were starting: stop the
			// ones that started and close every socket, so that each
			// ActivateAndServe returns and the group can be waited for.
			deadline, cancel := context.WithTimeout(context.Background(), time.Second)
			for _, s := range n.udpServers {
				_ = s.Shutdown(deadline)
			}
			for _, s := range n.dnsServers {
				_ = s.ShutdownContext(deadline)
			}
			cancel()
			n.closeListeners()
			cancelAll()
			return g.Wait()
		}
	}
	n.listening.Store(true)

	if n.adminLn != nil {
		n.admin = n.adminServer()
		ln := n.adminLn
		if n.adminCert.Load() != nil {
			ln = tls.NewListener(ln, n.admin.TLSConfig)
		}
		g.Go(func() error {
			if err := n.admin.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("admin server: %w", err)
			}
			return nil
		})
	}
	b := n.bound()
	n.log.Info("serving", "dns", b.DNS, "admin", b.Admin, "gossip", b.Gossip,
		"zones", len(n.pub.zones().Zones()), "services", len(n.pub.zones().Services()))
	if ready != nil {
		ready(b)
	}
	n.notify("READY=1")

	// Reloads come from SIGHUP (or the test hook) and are handled here, one at
	// a time, so a reload never races another.
	g.Go(func() error {
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-reload:
				n.notify("RELOADING=1")
				n.reload()
				n.notify("READY=1")
			}
		}
	})

	select {
	case <-ctx.Done():
		n.log.Info("shutting down", "lame_duck", n.cfg.LameDuck)
	case <-gctx.Done():
		n.log.Error("a component failed; shutting down")
	}
	n.stopping.Store(true) // /readyz answers 503 from here on
	n.notify("STOPPING=1")
	deadline, cancel := context.WithTimeout(context.Background(), shutdownTimeout+n.cfg.LameDuck)
	defer cancel()
	// Peers first: they drop our report and show us as left while we still
	// answer, from our own probes alone from then on.
	stopCluster()
	select {
	case <-clusterDone:
	case <-deadline.Done():
	}
	if n.cfg.LameDuck > 0 && gctx.Err() == nil {
		n.log.Info("lame duck: not ready, still answering DNS", "for", n.cfg.LameDuck)
		t := time.NewTimer(n.cfg.LameDuck)
		select {
		case <-t.C:
		case <-gctx.Done(): // a component failed: no point in waiting
		}
		t.Stop()
	}
	n.listening.Store(false)
	for _, s := range n.udpServers {
		_ = s.Shutdown(deadline)
	}
	for _, s := range n.dnsServers {
		_ = s.ShutdownContext(deadline)
	}
	if n.admin != nil {
		_ = n.admin.Shutdown(deadline)
	}
	cancelAll()
	err := g.Wait()
	n.log.Info("stopped")
	return err
}

// Admin HTTP limits. A write waits up to api.MaxWait for its
// acknowledgements, so the write timeout leaves room for that.
const (
	adminHeaderTimeout = 5 * time.Second
	adminWriteTimeout  = api.MaxWait + 15*time.Second
	adminMaxHeader     = 16 << 10
)

// adminServer is the admin listener's HTTP server: bounded in the time a
// request may take to arrive (headers, then the whole request), to be
// answered, and to sit idle between requests, and in header size; with
// TLS when configured, the certificate read per handshake from adminCert.
func (n *node) adminServer() *http.Server {
	ac := n.cfg.Admin
	s := &http.Server{Handler: n.adminAPI,
		ReadHeaderTimeout: min(adminHeaderTimeout, ac.ReadTimeout), ReadTimeout: ac.ReadTimeout,
		WriteTimeout: adminWriteTimeout, IdleTimeout: ac.IdleTimeout, MaxHeaderBytes: adminMaxHeader,
		ErrorLog: slog.NewLogLogger(n.log.With("component", "admin").Handler(), slog.LevelDebug)}
	if n.adminCert.Load() != nil {
		s.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return n.adminCert.Load(), nil }}
	}
	return s
}

func (n *node) bound() bound {
	var b bound
	for _, s := range n.udpServers {
		b.DNS = append(b.DNS, s.Addr().String())
	}
	if n.adminLn != nil {
		b.Admin = n.adminLn.Addr().String()
	}
	if n.cluster != nil {
		b.Gossip = n.cluster.Addr().String()
	}
	return b
}

// waitFirstRound waits until the state the resolver answers from was built
// on a complete first probe round, or until ctx or gctx ends (false). It
// waits on the publisher, not the checker: the publisher hands the ready
// snapshot over a few milliseconds later, and queries queued on the bound
// sockets must not be answered from the view before it.
func (n *node) waitFirstRound(ctx, gctx context.Context) bool {
	select {
	case <-n.pub.firstRoundPublished():
		return true
	case <-ctx.Done():
		return false
	case <-gctx.Done():
		return false
	}
}

// listenUDPTCP binds n UDP sockets and one TCP socket on the same
// address. With port 0 the kernel picks the UDP port, and TCP may find it
// taken: then all are released and another port is tried. The TCP socket,
// bound without SO_REUSEPORT, also makes sure no other process of ours
// shares the UDP port.
func listenUDPTCP(addr string, n int) ([]*net.UDPConn, net.Listener, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, err
	}
	for attempt := 0; ; attempt++ {
		conns, err := resolver.ListenUDP(addr, n)
		if err != nil {
			return nil, nil, err
		}
		ln, err := net.Listen("tcp", conns[0].LocalAddr().String())
		if err == nil {
			return conns, ln, nil
		}
		for _, c := range conns {
			c.Close()
		}
		if port != "0" || attempt == 20 {
			return nil, nil, err
		}
	}
}
