package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gslbd/gslbd/internal/dnstest"
)

// backend is a real HTTP endpoint whose health check the test switches.
type backend struct{ healthy atomic.Bool }

func startBackend(t *testing.T, addr string) *backend {
	t.Helper()
	b := &backend{}
	b.healthy.Store(true)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !b.healthy.Load() {
			http.Error(w, "failing", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return b
}

// browser starts a headless Chromium (Debian's chromium) for the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	exe := dnstest.RequireTool(t, "chromium", "chromium")
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox, // the tests may run as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	// The first run starts the browser, for the life of ctx: no timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// TestStatusPageInBrowser loads the status page of a running node in a
// real headless Chromium: it signs in with a read token, sees dc1 answer
// talk, then dc1's endpoint fails its health check and, without anyone
// reloading, the page shows dc2 answering and why. The token is never on
// the page, and the session cookie is out of the page's reach.
func TestStatusPageInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	ctx := browser(t)
	dir := t.TempDir()
	port := freePort(t, "127.0.1.10", "127.0.2.10")
	dc1 := startBackend(t, fmt.Sprintf("127.0.1.10:%d", port))
	startBackend(t, fmt.Sprintf("127.0.2.10:%d", port))
	const token = "status-page-read-token-0123456789"
	writeFile(t, filepath.Join(dir, "tokens"), "oncall read "+token+"\n")
	writeFile(t, filepath.Join(dir, "example.com.zone"), failoverZone)
	writeFile(t, filepath.Join(dir, "services.yaml"), fmt.Sprintf(`sites: [dc1, dc2]
services:
  talk.example.com:
    order: [dc1, dc2]
    check: {type: http, port: %d, path: /healthz, interval: 200ms, timeout: 100ms}
    sites:
      dc1: [127.0.1.10]
      dc2: [127.0.2.10]
`, port))
	cfg := filepath.Join(dir, "gslbd.yaml")
	writeFile(t, cfg, fmt.Sprintf(`node: {name: browser-node, site: dc1}
dns: {listen: ["127.0.0.1:0"]}
admin: {listen: "127.0.0.1:0", tokens_file: tokens}
zones: [{origin: example.com., file: example.com.zone}]
services: services.yaml
state_dir: %s
`, filepath.Join(dir, "state")))
	n := startNode(t, cfg)
	base := "http://" + n.bound.Admin

	// do runs browser actions, bounded; get runs one that returns a value.
	do := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		c, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(c, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	get := func(what string, a chromedp.Action[string]) string {
		t.Helper()
		c, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		v, err := chromedp.Run(c, a)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
	do("open the status page", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	if title := get("title", chromedp.Title()); title != "gslbd: sign in" {
		t.Errorf("page title without a token = %q, want the sign-in page", title)
	}
	do("sign in",
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.CSS("#services")),
	)
	if title := get("title", chromedp.Title()); title != "gslbd browser-node" {
		t.Errorf("page title = %q, want gslbd browser-node", title)
	}
	if html := get("page", chromedp.OuterHTML(chromedp.CSS("html"))); strings.Contains(html, token) {
		t.Error("the status page shows the token")
	}
	if cookies := get("cookies", chromedp.Evaluate[string]("document.cookie")); cookies != "" {
		t.Errorf("the page's script can read cookies %q, want the session cookie HttpOnly", cookies)
	}

	// What a person sees: the section of talk, and in its rows the sites'
	// verdicts. The page refreshes itself; the test only reads it.
	services := func() string {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		s, err := chromedp.Run(c, chromedp.Text(chromedp.CSS("#services")))
		if err != nil {
			return "" // between two documents while the page refreshes
		}
		return strings.Join(strings.Fields(s), " ")
	}
	waitFor := func(what string, want ...string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			text := services()
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(text, w)
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the page does not show %s within 30s; it shows:\n%s", what, text)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitFor("dc1 answering", "talk.example.com. answered by dc1", "dc1 serving 1/1 endpoints up, needs 1", "dc2 serving 1/1 endpoints up, needs 1")

	start := time.Now()
	dc1.healthy.Store(false)
	waitFor("dc2 answering after dc1 failed", "talk.example.com. answered by dc2", "dc1 not serving 0/1 endpoints up, needs 1")
	t.Logf("the page showed the failover %s after dc1's endpoint failed", time.Since(start).Round(100*time.Millisecond))

	html := get("page", chromedp.OuterHTML(chromedp.CSS("html")))
	if strings.Contains(html, token) {
		t.Error("the refreshed status page shows the token")
	}
	if !strings.Contains(html, "503") {
		t.Errorf("the endpoints table does not show the local probe's last error (HTTP 503):\n%s", html)
	}
}
