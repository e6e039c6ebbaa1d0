package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// The comparison of figures 8 and 9: a general-purpose API gateway that
// merges the same two origin calls as the BFF's view. Lura (the engine of
// KrakenD, github.com/luraproject/lura/v2) is not served by the Go module
// proxy this project can reach, so this is its aggregation written out,
// as Lura does it for an endpoint with two backends and no cache:
//
//   - one endpoint, GET gatewayPath, forwarding only the Authorization
//     header (Lura's input_headers) to each backend;
//   - the backends called concurrently, each in its own goroutine, under
//     one context bounded at 85 % of the endpoint's timeout (Lura's
//     parallelMerge, proxy/merging.go);
//   - each answer decoded as JSON into a map[string]any (Lura's JSON
//     decoder, with UseNumber) and put under its group ("user",
//     "profile": Lura's entity formatter), the groups combined into one
//     map (combineData) and encoded with encoding/json;
//   - X-Krakend-Completed says whether every backend answered; a backend
//     answering other than 2xx counts as failed.
//
// It is written to be efficient: one shared http.Transport keeping up to
// 256 idle connections per backend, no access log, no tracing, no
// metrics and no token verification (the origins verify the token, as
// behind a gateway that only forwards it). Each of these omissions makes
// the gateway cheaper than a real Lura or KrakenD, so a ratio of the BFF
// to it errs against the BFF.
const gatewayPath = "/api/gateway/me/"

// gatewayTimeout is the endpoint's timeout (Lura's default is 2 s).
const gatewayTimeout = 2 * time.Second

type gateway struct {
	client   *http.Client
	backends []gatewayBackend
}

type gatewayBackend struct{ group, url string }

// newGateway returns the gateway over the auth and customer profile URLs.
func newGateway(authURL, customerURL string) *gateway {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
	}
	return &gateway{
		client:   &http.Client{Transport: tr},
		backends: []gatewayBackend{{"user", authURL}, {"profile", customerURL}},
	}
}

func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet || r.URL.Path != gatewayPath {
		http.NotFound(w, r)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), gatewayTimeout*85/100)
	defer cancel()
	authz := r.Header.Get("Authorization")
	type part struct {
		group string
		data  map[string]any
		err   error
	}
	parts := make(chan part, len(g.backends))
	for _, b := range g.backends {
		go func() {
			data, err := g.fetch(ctx, b.url, authz)
			parts <- part{b.group, data, err}
		}()
	}
	merged := make(map[string]any, len(g.backends))
	complete := true
	for range g.backends {
		p := <-parts
		if p.err != nil {
			complete = false
			continue
		}
		merged[p.group] = p.data
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Krakend-Completed", strconv.FormatBool(complete))
	if len(merged) == 0 {
		w.WriteHeader(http.StatusInternalServerError)
	}
	_ = json.NewEncoder(w).Encode(merged)
}

// fetch calls one backend and decodes its JSON object.
func (g *gateway) fetch(ctx context.Context, url, authz string) (map[string]any, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	req.Header.Set("User-Agent", "cmd/bench gateway")
	resp, err := g.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil, fmt.Errorf("%s: status %d", url, resp.StatusCode)
	}
	var data map[string]any
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	if err := dec.Decode(&data); err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	return data, nil
}

// gatewayAnswer checks a gateway answer: 200, both parts merged.
func gatewayAnswer(r reply) error {
	if r.status != http.StatusOK {
		return wrongAnswer{fmt.Sprintf("gateway status %d: %.200s", r.status, r.body)}
	}
	if !bytes.Contains(r.body, []byte(`"user":{`)) || !bytes.Contains(r.body, []byte(`"profile":{`)) {
		return wrongAnswer{fmt.Sprintf("gateway answer without both parts: %.200s", r.body)}
	}
	return nil
}

// serveGateway is the -serve-gateway mode: serve the gateway on addr,
// print its address, and serve until stdin closes or a signal arrives.
func serveGateway(ctx context.Context, addr, authURL, customerURL string, stdin io.Reader, stdout io.Writer) error {
	if authURL == "" || customerURL == "" {
		return errors.New("-serve-gateway needs -gateway-auth and -gateway-customer")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: newGateway(authURL, customerURL), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if _, err := fmt.Fprintln(stdout, ln.Addr().String()); err != nil {
		_ = srv.Close()
		return err
	}
	closed := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, stdin); close(closed) }()
	select {
	case <-ctx.Done():
	case <-closed:
	case err := <-served:
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// nameGateway names the gateway in the report.
const nameGateway = "gateway"

// startGateway starts the gateway over the large stack's auth and
// customer services: a child process (this binary with -serve-gateway),
// so its CPU time and memory are its own, or inside this process with
// -in-process.
func (s *system) startGateway(ctx context.Context) (*proc, error) {
	authURL := s.auth.url() + "/api/auth/profile/"
	custURL := s.customer.url() + "/api/v1/customers/profile/"
	p := &proc{name: nameGateway, role: "Lura-style gateway: a view's two origin calls, merged"}
	if _, in := s.launcher.(inProcessLauncher); in {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		srv := &http.Server{Handler: newGateway(authURL, custURL), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		p.addr = ln.Addr().String()
		p.stop = srv.Close
	} else {
		addr, pid, stop, err := startSelf(ctx, "gateway", "127.0.0.1:", "-serve-gateway", "127.0.0.1:0",
			"-gateway-auth", authURL, "-gateway-customer", custURL)
		if err != nil {
			return nil, err
		}
		p.addr, p.pid = addr, pid
		p.stop = func() error { stop(); return nil }
	}
	s.procs = append(s.procs, p)
	return p, nil
}

// figuresGateway measures figures 8 and 9 side by side: the BFF's
// uncached view (bff-nocache), the gateway, and the cached view (bff), at
// full load over the rotating users.
func figuresGateway(ctx context.Context, o options, s *system, progress func(string)) ([]figure, error) {
	me := func(p *proc) func(uint64) []byte {
		return rotate(perUser(s, func(u user) []byte { return getRequest(p.addr, "/api/bff/me/", u.access) }))
	}
	uncached := httpSide("uncached view", s.bffNoCache.addr, o.conns, me(s.bffNoCache), status(http.StatusOK, "BYPASS"))
	gw := httpSide("gateway", s.gateway.addr, o.conns, rotate(perUser(s, func(u user) []byte {
		return getRequest(s.gateway.addr, gatewayPath, u.access)
	})), gatewayAnswer)
	cached := httpSide("cached view", s.bff.addr, o.conns, me(s.bff), status(http.StatusOK, "HIT"))
	defer closeAll(uncached, gw, cached)
	if err := interleave(ctx, []*side{uncached, gw, cached}, o.rounds, o.round, o.warm, s.watch, progress); err != nil {
		return nil, err
	}
	users := len(s.users)
	f8 := figure{num: 8, target: 1.0,
		title: fmt.Sprintf("uncached GET /me ÷ Lura-style gateway, throughput (%d conns, %d users)", o.conns, users),
		err:   errors.Join(uncached.check(), gw.check()),
	}
	f8.value, f8.per = throughputRatio(uncached, gw)
	f8.cpu = cpuOf(uncached, gw)
	f8.noteFailures(uncached, gw)
	f8.detail = fmt.Sprintf("BYPASS %s, gateway %s (p50 %s vs %s)", perSecond(uncached), perSecond(gw),
		ms(percentile(uncached.total().lat, 0.5)), ms(percentile(gw.total().lat, 0.5)))
	f9 := figure{num: 9, target: 20,
		title: fmt.Sprintf("cached GET /me ÷ Lura-style gateway, throughput (%d conns, %d users)", o.conns, users),
		err:   errors.Join(cached.check(), gw.check()),
	}
	f9.value, f9.per = throughputRatio(cached, gw)
	f9.cpu = cpuOf(cached)
	f9.noteFailures(cached)
	f9.detail = fmt.Sprintf("HIT %s, gateway %s", perSecond(cached), perSecond(gw))
	return []figure{f8, f9}, nil
}
