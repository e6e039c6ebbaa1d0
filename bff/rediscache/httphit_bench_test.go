package rediscache_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/acme/customer-platform/auth"
	"github.com/acme/customer-platform/auth/token"
	"github.com/acme/customer-platform/authclient"
	"github.com/acme/customer-platform/bff"
	"github.com/acme/customer-platform/bff/breaker"
	"github.com/acme/customer-platform/bff/httpapi"
	"github.com/acme/customer-platform/bff/rediscache"
	"github.com/acme/customer-platform/internal/config"
	"github.com/acme/customer-platform/internal/contract"
	"github.com/acme/customer-platform/internal/redisconn"
	"github.com/acme/customer-platform/internal/telemetry"
	"github.com/acme/customer-platform/internal/testenv"
	"github.com/acme/customer-platform/internal/web"
)

// The BFF's cached GET /api/bff/me/ against its benchmark floor, both
// through the BFF's whole engine (middleware, token check, handler) with
// the telemetry providers, the Redis client and the breaker wired as bffd
// wires them, 64 requests at a time against a real redis-server; only the
// client side of HTTP is left out (the requests are served in memory).
// The difference per request is what a cache hit costs the BFF's process.

const hitBenchKey = "hit-bench-signing-key-0123456789abcdef"

type hitBench struct {
	engine *gin.Engine
	reqs   []*http.Request // one per user: GET /api/bff/me/
	floors []*http.Request // the floor, with each user's view size
}

func newHitBench(b *testing.B) *hitBench {
	b.Helper()
	if testing.Short() {
		b.Skip("needs a real Redis")
	}
	ctx := context.Background()
	tel, err := telemetry.Setup(ctx, telemetry.Options{Service: "bff", Lookup: config.FromMap(nil)})
	testenv.Must(b, err, "telemetry")
	b.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	r := testenv.Redis(b)
	// Generous timeouts: this measures CPU per request, and a loaded
	// machine must not turn hits into BYPASS answers.
	rdb, err := redisconn.Open(r.URL, redisconn.Options{TracerProvider: tel.Tracer, Timeout: 2 * time.Second})
	testenv.Must(b, err, "redis client")
	b.Cleanup(func() { _ = rdb.Close() })
	breakers, err := breaker.NewRegistry(slog.New(slog.DiscardHandler), tel.Meter)
	testenv.Must(b, err, "breakers")
	br, err := breakers.New("redis", rediscache.BreakerSettings())
	testenv.Must(b, err, "breaker")
	origin := &fakeOrigin{}
	cache, err := rediscache.New(rdb, origin, rediscache.Options{
		TTL: time.Hour, Timeout: 2 * time.Second, Breaker: br, Logger: slog.New(slog.DiscardHandler), MeterProvider: tel.Meter, TracerProvider: tel.Tracer,
	})
	testenv.Must(b, err, "cache")
	v, err := authclient.NewVerifier(authclient.VerifierConfig{Key: []byte(hitBenchKey)})
	testenv.Must(b, err, "verifier")
	e := web.NewEngine(web.EngineOptions{Service: "bff", Logger: slog.New(slog.DiscardHandler), TracerProvider: tel.Tracer, MeterProvider: tel.Meter})
	httpapi.Routes(e, httpapi.Deps{Views: cache, Verifier: v, BenchFloor: true})

	iss, err := token.New(token.Config{Key: []byte(hitBenchKey), AccessTTL: time.Hour, RefreshTTL: time.Hour, ServiceTokenTTL: time.Hour})
	testenv.Must(b, err, "issuer")
	hb := &hitBench{engine: e}
	for i := range 64 {
		id := "00000000-0000-4000-8000-" + strconv.FormatInt(100000000000+int64(i), 10)
		p, err := iss.Pair(auth.User{ID: id, Email: "u" + strconv.Itoa(i) + "@example.com", Role: contract.RoleCustomer}, time.Now())
		testenv.Must(b, err, "token")
		body, status, err := cache.View(ctx, id, p.Access)
		if err != nil || status != bff.CacheMiss {
			b.Fatalf("warm-up of %s: %s %v", id, status, err)
		}
		req := httptest.NewRequest(http.MethodGet, "/api/bff/me/", nil)
		req.Header.Set("Authorization", "Bearer "+p.Access)
		hb.reqs = append(hb.reqs, req)
		floor := httptest.NewRequest(http.MethodGet, "/api/bff/bench/floor/?bytes="+strconv.Itoa(len(body)), nil)
		floor.Header.Set("Authorization", "Bearer "+p.Access)
		hb.floors = append(hb.floors, floor)
	}
	return hb
}

// discard is a minimal http.ResponseWriter that keeps only the status and
// the X-Cache header.
type discard struct {
	h      http.Header
	status int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) WriteHeader(s int)           { d.status = s }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }

func (hb *hitBench) run(b *testing.B, reqs []*http.Request, cache string) {
	b.ReportAllocs()
	b.SetParallelism(32) // 64 requests at a time on 2 CPUs, as cmd/bench
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := &discard{h: http.Header{}}
		i := 0
		for pb.Next() {
			clear(w.h)
			w.status = 0
			hb.engine.ServeHTTP(w, reqs[i%len(reqs)])
			i++
			if w.status != http.StatusOK || w.h.Get("X-Cache") != cache {
				b.Errorf("status %d, X-Cache %q", w.status, w.h.Get("X-Cache"))
				return
			}
		}
	})
}

func BenchmarkHTTPGetMeHit(b *testing.B) {
	hb := newHitBench(b)
	hb.run(b, hb.reqs, "HIT")
}

func BenchmarkHTTPGetMeFloor(b *testing.B) {
	hb := newHitBench(b)
	hb.run(b, hb.floors, "")
}
