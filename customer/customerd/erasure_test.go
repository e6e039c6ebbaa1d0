package customerd_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/bson"

	customermongo "github.com/acme/customer-platform/customer/mongodb"
	"github.com/acme/customer-platform/internal/changefeed"
	"github.com/acme/customer-platform/internal/contract"
	"github.com/acme/customer-platform/internal/testenv"
	"github.com/acme/customer-platform/internal/testenv/systest"
)

// TestErasureCascade runs the real auth and customer services on one Redis:
// a user deleted at the auth service by themselves and by an admin loses
// the profile and its service records, and the deletion is announced as
// the profile's own customer.changed delete (the BFF evicts on it); a user
// deleted while the customer service is stopped loses them once it is back
// (the group's catch-up); an event handled twice, and a second event for
// the same user, change nothing; a user.deleted event for a user the auth
// service still has deletes nothing and is parked. Another user's profile
// is never touched.
func TestErasureCascade(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("system test: not in the fast tier (-short)")
	}
	// Every system's customer service has its service account at the auth
	// service (systest.CustomerClientID), which the cascade asks with.
	sys := systest.Start(t, systest.Options{Services: []string{"auth", "customer"}, Redis: true})
	ctx := context.Background()
	authURL, base := sys.URL("auth"), sys.URL("customer")+"/api/v1/customers/"
	opts, err := redis.ParseURL(sys.Redis.URL)
	testenv.Must(t, err, "redis url")
	rc := redis.NewClient(opts)
	defer rc.Close()
	db := sys.DB("customer")
	employee := token(t, contract.NewID(), "employee")
	admin := token(t, contract.NewID(), "admin")

	type user struct{ id, access, profile string }
	n := 0
	newUser := func() user {
		t.Helper()
		n++
		a := testenv.Call(t, nil, http.MethodPost, authURL+"/api/auth/register/", map[string]any{
			"email": "erased-" + string(rune('a'+n)) + "@example.com", "first_name": "Ada", "last_name": "Lovelace", "phone_number": "+1 555-0100",
			"password1": "Tr1cky-Wombat-Lantern", "password2": "Tr1cky-Wombat-Lantern",
		}, nil)
		if a.Status != http.StatusCreated {
			t.Fatalf("register: %s", a)
		}
		var b struct {
			ID     string
			Tokens struct{ Access string }
		}
		a.JSON(t, &b)
		u := user{id: b.ID, access: b.Tokens.Access}
		code, body, _ := call(t, "POST", base+"profile/create/", u.access, map[string]any{"street_address": "1 Main St", "city": "Springfield", "postal_code": "62701"})
		if code != http.StatusCreated {
			t.Fatalf("create profile: %d %v", code, body)
		}
		u.profile, _ = body["id"].(string)
		for _, key := range []string{"first", "second"} {
			code, body, _ := call(t, "POST", base+u.profile+"/increment_service/", employee, map[string]any{"service_type": "visit"}, "Idempotency-Key", key)
			if code != http.StatusOK && code != http.StatusCreated {
				t.Fatalf("increment_service: %d %v", code, body)
			}
		}
		return u
	}
	stored := func(u user) (profiles, records int64) {
		t.Helper()
		profiles, err := db.Collection(customermongo.CustomersCollection).CountDocuments(ctx, bson.D{{Key: "user_id", Value: u.id}})
		testenv.Must(t, err, "count profiles")
		records, err = db.Collection(customermongo.ServicesCollection).CountDocuments(ctx, bson.D{{Key: "customer_id", Value: u.profile}})
		testenv.Must(t, err, "count service records")
		return profiles, records
	}
	intact := func(u user) {
		t.Helper()
		if p, r := stored(u); p != 1 || r != 2 {
			t.Fatalf("user %s: %d profiles and %d service records, want 1 and 2", u.id, p, r)
		}
	}
	erased := func(u user) {
		t.Helper()
		testenv.Eventually(t, 15*time.Second, testenv.Holds("the profile and records of "+u.id+" erased", func() bool {
			p, r := stored(u)
			return p == 0 && r == 0
		}))
	}
	events := func() []changefeed.Event {
		t.Helper()
		entries, err := rc.XRange(ctx, changefeed.Stream, "-", "+").Result()
		testenv.Must(t, err, "read the stream")
		var out []changefeed.Event
		for _, m := range entries {
			raw, _ := m.Values["event"].(string)
			if e, err := changefeed.Decode(raw); err == nil {
				out = append(out, e)
			}
		}
		return out
	}
	inStream := func(topic, op, userID string) *changefeed.Event {
		for _, e := range events() {
			if e.Topic == topic && e.UserID == userID && (op == "" || e.Op == op) {
				return &e
			}
		}
		return nil
	}
	settled := func() {
		t.Helper()
		testenv.Eventually(t, 15*time.Second, testenv.Holds("the customer group to have handled everything", func() bool {
			groups, err := rc.XInfoGroups(ctx, changefeed.Stream).Result()
			if err != nil {
				return false
			}
			for _, g := range groups {
				if g.Name == "customer" {
					return g.Lag == 0 && g.Pending == 0
				}
			}
			return false
		}))
	}
	parked := func() []redis.XMessage {
		t.Helper()
		ms, err := rc.XRange(ctx, changefeed.DeadLetter, "-", "+").Result()
		testenv.Must(t, err, "read the dead letters")
		var out []redis.XMessage
		for _, m := range ms {
			if m.Values["group"] == "customer" {
				out = append(out, m)
			}
		}
		return out
	}

	bystander := newUser()
	self, byAdmin, whileDown := newUser(), newUser(), newUser()

	// Self delete, then an admin's delete: both cascade, each through the
	// profile's own delete event (the BFF's eviction).
	if a := testenv.Call(t, nil, http.MethodDelete, authURL+"/api/auth/profile/delete/", nil, testenv.Bearer(self.access)); a.Status != http.StatusNoContent {
		t.Fatalf("self delete: %s", a)
	}
	erased(self)
	if a := testenv.Call(t, nil, http.MethodDelete, authURL+"/api/auth/users/"+byAdmin.id+"/", nil, testenv.Bearer(admin)); a.Status != http.StatusNoContent {
		t.Fatalf("admin delete: %s", a)
	}
	erased(byAdmin)
	for _, u := range []user{self, byAdmin} {
		testenv.Eventually(t, 10*time.Second, testenv.Holds("the customer.changed delete of "+u.id+" in the stream", func() bool {
			return inStream(changefeed.CustomerChanged, "delete", u.id) != nil
		}))
	}
	intact(bystander)
	intact(whileDown)

	// Deleted while the customer service is stopped: nothing happens until
	// it is back, then the group catches up.
	cust := sys.Service("customer")
	testenv.Must(t, cust.Stop(), "stop the customer service")
	if a := testenv.Call(t, nil, http.MethodDelete, authURL+"/api/auth/users/"+whileDown.id+"/", nil, testenv.Bearer(admin)); a.Status != http.StatusNoContent {
		t.Fatalf("admin delete: %s", a)
	}
	testenv.Eventually(t, 10*time.Second, testenv.Holds("the user.deleted event in the stream", func() bool {
		return inStream(changefeed.UserDeleted, "", whileDown.id) != nil
	}))
	intact(whileDown)
	cust.Start()
	erased(whileDown)
	settled()
	testenv.Eventually(t, 10*time.Second, testenv.Holds("the customer.changed delete of "+whileDown.id+" in the stream", func() bool {
		return inStream(changefeed.CustomerChanged, "delete", whileDown.id) != nil
	}))

	// Handled twice: the same event again (its id was handled: skipped) and
	// a new event for the same user (handled: nothing left, success).
	// Nothing changes, nothing is parked, nothing stays pending.
	before := len(events())
	again := inStream(changefeed.UserDeleted, "", self.id)
	if again == nil {
		t.Fatal("no user.deleted event of the self-deleted user")
	}
	fresh := *again
	fresh.ID = contract.NewID()
	for _, e := range []changefeed.Event{*again, fresh} {
		testenv.Must(t, rc.XAdd(ctx, &redis.XAddArgs{Stream: changefeed.Stream, Values: []any{"event", e.Encode()}}).Err(), "re-add the event")
	}
	settled()
	time.Sleep(300 * time.Millisecond) // a write's event is relayed within milliseconds (the relay is nudged)
	if got := len(events()); got != before+2 {
		t.Fatalf("%d events after re-adding two to %d: the second handling produced events", got, before)
	}
	if p := parked(); len(p) != 0 {
		t.Fatalf("parked: %v", p)
	}
	intact(bystander)

	// A wrong or forged event for a user the auth service still has deletes
	// nothing; it is parked for an operator.
	forged := changefeed.Event{ID: contract.NewID(), Topic: changefeed.UserDeleted, UserID: bystander.id, Op: "delete", Time: time.Now()}
	testenv.Must(t, rc.XAdd(ctx, &redis.XAddArgs{Stream: changefeed.Stream, Values: []any{"event", forged.Encode()}}).Err(), "add the forged event")
	settled()
	intact(bystander)
	p := parked()
	if len(p) != 1 || p[0].Values["reason"] != "rejected" {
		t.Fatalf("parked %v, want the forged event, rejected", p)
	}
	if e, err := changefeed.Decode(p[0].Values["event"].(string)); err != nil || e.ID != forged.ID {
		t.Fatalf("parked %v (%v), want the forged event", e, err)
	}
	if inStream(changefeed.CustomerChanged, "delete", bystander.id) != nil {
		t.Fatal("a delete event for the user who still exists")
	}
}
