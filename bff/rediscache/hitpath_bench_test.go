package rediscache_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/acme/customer-platform/bff"
)

// The hit path against its floor: BenchmarkHitPath serves a cached view
// (breaker, span, metric, one MGET, owner check) and writes it as an HTTP
// body; BenchmarkStaticBodyFloor does the same Redis round trip with a bare
// GET of the same bytes and writes them. The difference is what the cache
// layer costs on a hit.

func BenchmarkHitPath(b *testing.B) {
	e := newEnv(b, envOptions{})
	ctx := context.Background()
	if _, status := e.view(b, userA); status != bff.CacheMiss {
		b.Fatalf("warm-up: %s", status)
	}
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		body, status, err := e.cache.View(ctx, userA, "tok")
		if err != nil || status != bff.CacheHit {
			b.Fatalf("%s %v", status, err)
		}
		w.Body.Reset()
		w.Header().Set("X-Cache", string(status))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
	}
}

func BenchmarkStaticBodyFloor(b *testing.B) {
	e := newEnv(b, envOptions{})
	ctx := context.Background()
	static := e.origin.body(userA)
	if err := e.rdb.Set(ctx, "bench:static", static, 0).Err(); err != nil {
		b.Fatal(err)
	}
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		body, err := e.rdb.Get(ctx, "bench:static").Bytes()
		if err != nil {
			b.Fatal(err)
		}
		w.Body.Reset()
		w.Header().Set("X-Cache", "HIT")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
	}
}
