package rediscache_test

// End-to-end tests of durable change delivery (internal/changefeed): the
// auth and customer services' outboxes and relays, the change stream, and
// the BFF's consumer group, through the real services (systest).

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acme/customer-platform/bff/rediscache"
	"github.com/acme/customer-platform/internal/changefeed"
	"github.com/acme/customer-platform/internal/testenv"
	"github.com/acme/customer-platform/internal/testenv/systest"
)

// streamEvents are the events in the change stream.
func streamEvents(t *testing.T, rdb redis.UniversalClient) []changefeed.Event {
	t.Helper()
	entries, err := rdb.XRange(context.Background(), changefeed.Stream, "-", "+").Result()
	if err != nil {
		return nil
	}
	var out []changefeed.Event
	for _, m := range entries {
		raw, _ := m.Values["event"].(string)
		if e, err := changefeed.Decode(raw); err == nil {
			out = append(out, e)
		}
	}
	return out
}

func TestE2EDeliveryAcrossOutages(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end: not in the fast tier (-short)")
	}
	// A TTL far longer than the test: a fresh view can only come from a
	// delivered event, never from an expiry.
	sys := systest.Start(t, systest.Options{Redis: true, Replicas: map[string]int{"customer": 2},
		ServiceEnv: map[string]map[string]string{"bff": {"CACHE_TTL": "10m"}}})
	customers := sys.Replicas("customer")
	s := &e2eStack{redis: sys.Redis, auth: sys.Service("auth"), customer: customers[0], bff: sys.Service("bff")}
	testenv.Eventually(t, 10*time.Second, testenv.Holds("the BFF to read the change stream", func() bool {
		return s.readyDetails(t)["invalidation_subscribed"] == true
	}))
	rdb, err := redis.ParseURL(sys.Redis.URL)
	testenv.Must(t, err, "redis url")
	rc := redis.NewClient(rdb)
	defer rc.Close()

	u := s.newUser(t, "Springfield")
	cached := func(city string) {
		t.Helper()
		testenv.Eventually(t, 10*time.Second, testenv.Holds("the view of "+city+" cached", func() bool {
			a, v := me(t, s.bff.URL, u)
			return a.Status == http.StatusOK && v.Profile != nil && v.Profile.City == city && a.cache() == "HIT"
		}))
	}
	patchCity := func(at *systest.Instance, city string) {
		t.Helper()
		if a := do(t, http.MethodPatch, at.URL+"/api/v1/customers/profile/update/", u.access, map[string]any{"city": city}); a.Status != http.StatusOK {
			t.Fatalf("update at %s: %s", at, a)
		}
	}
	shows := func(city string) {
		t.Helper()
		testenv.Eventually(t, 15*time.Second, testenv.Holds("the BFF to show "+city, func() bool {
			a, v := me(t, s.bff.URL, u)
			return a.Status == http.StatusOK && v.Profile != nil && v.Profile.City == city
		}))
	}

	// Two replicas, two relays on one outbox: each write's event is in the
	// stream once, and the view follows.
	cached("Springfield")
	patchCity(customers[0], "Shelbyville")
	shows("Shelbyville")
	cached("Shelbyville")
	patchCity(customers[1], "Capital City")
	shows("Capital City")
	ids := map[string]int{}
	for _, e := range streamEvents(t, rc) {
		ids[e.ID]++
		if ids[e.ID] > 1 {
			t.Fatalf("event %s is in the stream twice", e.ID)
		}
	}

	// A write made while the BFF is stopped is applied when it starts (the
	// group's catch-up): the cache kept the old view meanwhile.
	cached("Capital City")
	testenv.Must(t, s.bff.Stop(), "stop the BFF")
	patchCity(customers[0], "Ogdenville")
	testenv.Eventually(t, 10*time.Second, testenv.Holds("the event relayed while the BFF is down", func() bool {
		evs := streamEvents(t, rc)
		return len(evs) > 0 && evs[len(evs)-1].Op == "update" && evs[len(evs)-1].UserID == u.id && len(evs) > len(ids)
	}))
	s.bff.Start()
	shows("Ogdenville")

	// A write made while Redis is stopped waits in the outbox and is
	// delivered after Redis is back (it lost its data: the group is
	// recreated, the event relayed again from the outbox).
	cached("Ogdenville")
	sys.Redis.Stop()
	patchCity(customers[1], "North Haverbrook")
	if a := do(t, http.MethodPatch, s.auth.URL+"/api/auth/profile/update/", u.access, map[string]any{"first_name": "Augusta"}); a.Status != http.StatusOK {
		t.Fatalf("auth update with Redis down: %s", a)
	}
	time.Sleep(300 * time.Millisecond) // the relays fail meanwhile
	testenv.Must(t, sys.Redis.Start(context.Background()), "restart Redis")
	testenv.Eventually(t, 15*time.Second, testenv.Holds("both events delivered to the BFF's group", func() bool {
		topics := map[string]bool{}
		for _, e := range streamEvents(t, rc) {
			if e.UserID == u.id {
				topics[e.Topic] = true
			}
		}
		p, err := rc.XPending(context.Background(), changefeed.Stream, rediscache.Group).Result()
		return topics[changefeed.CustomerChanged] && topics[changefeed.UserChanged] && err == nil && p.Count == 0
	}))
	shows("North Haverbrook")
	a, v := me(t, s.bff.URL, u)
	if a.Status != http.StatusOK || v.User.FirstName != "Augusta" {
		t.Fatalf("after the outage: %s %+v", a, v)
	}
}
