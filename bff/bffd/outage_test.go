package bffd_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/acme/customer-platform/internal/testenv"
	"github.com/acme/customer-platform/internal/testenv/systest"
)

// TestNoStaleViewAfterARedisOutage: two BFF replicas share one Redis
// through a fault proxy (the services reach it directly, so their change
// events are relayed meanwhile). Redis is unreachable from the BFFs during
// a PATCH /api/bff/me/ at one replica and a DELETE /api/bff/me/ at the
// other, so their evictions fail and their breakers open; once Redis is
// back, no read at either replica serves the old view: not as a HIT, not at
// all. The cached entries are still in Redis (nothing expires: CACHE_TTL is
// ten minutes), so only the cache's outage rule keeps them from being
// served; the reads start before the change events' evictions can land.
func TestNoStaleViewAfterARedisOutage(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("system test: not in the fast tier (-short)")
	}
	r := testenv.Redis(t)
	proxy := redisProxy(t, r)
	sys := systest.Start(t, systest.Options{
		Replicas: map[string]int{"bff": 2},
		Env:      map[string]string{"REDIS_URL": r.URL},
		ServiceEnv: map[string]map[string]string{"bff": {
			"REDIS_URL": "redis://" + proxy.Addr() + "/0",
			"CACHE_TTL": "10m",
		}},
	})
	bffs := sys.Replicas("bff")
	a, b := bffs[0], bffs[1]

	reg := call(t, http.MethodPost, a.URL+"/api/bff/register/", registration("outage@example.com"), nil)
	_, access := registered(t, reg, "outage@example.com")
	me := func(in *systest.Instance) testenv.Answer {
		t.Helper()
		return call(t, http.MethodGet, in.URL+"/api/bff/me/", nil, testenv.Bearer(access))
	}
	city := func(ans testenv.Answer) any { return part(t, ans, "profile")["city"] }
	cachedAt := func(want string) {
		t.Helper()
		for _, in := range bffs {
			testenv.Eventually(t, 10*time.Second, testenv.Holds(in.String()+" to serve "+want+" as a HIT", func() bool {
				ans := me(in)
				return ans.Status == http.StatusOK && city(ans) == want && ans.Header.Get("X-Cache") == "HIT"
			}))
		}
	}
	// never checks every read at both replicas for a while, the one that
	// did not write first.
	never := func(what string, ok func(testenv.Answer) bool, order ...*systest.Instance) {
		t.Helper()
		for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
			for _, in := range order {
				if ans := me(in); !ok(ans) {
					t.Fatalf("%s: %s served %s (X-Cache %q)", what, in, ans, ans.Header.Get("X-Cache"))
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// PATCH at a with Redis unreachable from the BFFs.
	cachedAt("Portland")
	proxy.Refuse()
	patch := call(t, http.MethodPatch, a.URL+"/api/bff/me/", map[string]any{"city": "Salem"}, testenv.Bearer(access))
	if patch.Status != http.StatusOK || city(patch) != "Salem" {
		t.Fatalf("PATCH with Redis unreachable: %s", patch)
	}
	if ans := me(a); ans.Status != http.StatusOK || city(ans) != "Salem" {
		t.Fatalf("GET at the writer during the outage: %s", ans)
	}
	testenv.Must(t, proxy.Pass(), "Redis reachable again")
	// The writer's recovery lands within a few tens of milliseconds of
	// Redis answering it; b saw no outage of its own.
	time.Sleep(200 * time.Millisecond)
	never("after the PATCH", func(ans testenv.Answer) bool {
		return ans.Status == http.StatusOK && city(ans) == "Salem"
	}, b, a)
	cachedAt("Salem") // the cache works again

	// DELETE at b with Redis unreachable: afterwards the view is gone.
	proxy.Refuse()
	if del := call(t, http.MethodDelete, b.URL+"/api/bff/me/", nil, testenv.Bearer(access)); del.Status != http.StatusNoContent {
		t.Fatalf("DELETE with Redis unreachable: %s", del)
	}
	testenv.Must(t, proxy.Pass(), "Redis reachable again")
	time.Sleep(200 * time.Millisecond)
	never("after the DELETE", func(ans testenv.Answer) bool {
		return ans.Status == http.StatusUnauthorized || ans.Status == http.StatusNotFound
	}, a, b)
}
