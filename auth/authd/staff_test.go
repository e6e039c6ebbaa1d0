package authd_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/acme/customer-platform/auth/password"
	"github.com/acme/customer-platform/internal/changefeed"
	"github.com/acme/customer-platform/internal/mongodb"
	"github.com/acme/customer-platform/internal/redisconn"
	"github.com/acme/customer-platform/internal/testenv"
	"github.com/acme/customer-platform/internal/testenv/systest"
)

const (
	adminEmail    = "root@example.com"
	adminPassword = "Correct-Horse-Battery-9"
)

func TestStaffAndServiceEndpoints(t *testing.T) {
	t.Parallel()
	s := start(t, map[string]string{"AUTH_BOOTSTRAP_ADMIN_EMAIL": adminEmail, "AUTH_BOOTSTRAP_ADMIN_PASSWORD": adminPassword})
	la := s.login(adminEmail, adminPassword)
	if la.Status != http.StatusOK {
		t.Fatalf("bootstrap admin login: %d %s", la.Status, la.Body)
	}
	admin := toSession(t, la)
	if admin.body["user_role"] != "admin" {
		t.Fatalf("bootstrap admin role: %v", admin.body["user_role"])
	}
	svc := s.serviceToken()
	cust := s.register("henry@example.com", "Henry", "Ford")

	// An admin creates an employee with a password.
	a := s.post("/api/auth/users/", admin.access, map[string]any{
		"email": "Ivy@Example.com", "first_name": "Ivy", "last_name": "Lane", "phone_number": "555 0101",
		"user_role": "employee", "password": goodPassword,
	})
	if a.Status != http.StatusCreated || a.Map(t)["user_role"] != "employee" || a.Map(t)["email"] != "ivy@example.com" {
		t.Fatalf("admin creates employee: %d %s", a.Status, a.Body)
	}
	emp := toSession(t, s.login("ivy@example.com", goodPassword))

	userPath := "/api/auth/users/" + cust.id + "/"
	findPath := "/api/auth/users/?email=HENRY%40example.com"
	for _, who := range []struct {
		name        string
		token       string
		read, write bool
	}{
		{"customer", cust.access, false, false},
		{"employee", emp.access, true, false},
		{"admin", admin.access, true, true},
		{"service", svc, true, true},
	} {
		t.Run(who.name, func(t *testing.T) {
			get := s.get(userPath, who.token)
			find := s.get(findPath, who.token)
			if who.read {
				if get.Status != http.StatusOK || get.Map(t)["email"] != "henry@example.com" {
					t.Fatalf("get user: %d %s", get.Status, get.Body)
				}
				var list struct {
					Count   int              `json:"count"`
					Results []map[string]any `json:"results"`
				}
				if err := json.Unmarshal(find.Body, &list); err != nil || find.Status != http.StatusOK || list.Count != 1 || list.Results[0]["id"] != cust.id {
					t.Fatalf("find by email: %d %s", find.Status, find.Body)
				}
				none := s.get("/api/auth/users/?email=nobody%40example.com", who.token)
				if none.Status != http.StatusOK || string(none.Body) != `{"count":0,"results":[]}` {
					t.Fatalf("find unknown email: %d %s", none.Status, none.Body)
				}
				wantDetail(t, s.get("/api/auth/users/"+"00000000-0000-4000-8000-000000000000/", who.token), http.StatusNotFound, "not_found", "")
				wantDetail(t, s.get("/api/auth/users/not-a-uuid/", who.token), http.StatusNotFound, "not_found", "")
				if a := s.get("/api/auth/users/", who.token); a.Status != http.StatusOK || a.Map(t)["results"] == nil {
					t.Fatalf("without email, the listing: %d %s", a.Status, a.Body)
				}
			} else {
				wantDetail(t, get, http.StatusForbidden, "permission_denied", "You do not have permission to perform this action.")
				wantDetail(t, find, http.StatusForbidden, "permission_denied", "")
				wantDetail(t, s.get("/api/auth/users/?user_role=customer", who.token), http.StatusForbidden, "permission_denied", "")
			}
			email := "made-by-" + who.name + "@example.com"
			create := s.post("/api/auth/users/", who.token, map[string]any{"email": email, "first_name": "M", "last_name": "B"})
			if !who.write {
				wantDetail(t, create, http.StatusForbidden, "permission_denied", "")
				wantDetail(t, s.do(req{method: http.MethodDelete, path: userPath, token: who.token}), http.StatusForbidden, "permission_denied", "")
				if n := s.countByEmail(email); n != 0 {
					t.Fatalf("a refused create stored %d users", n)
				}
				return
			}
			if create.Status != http.StatusCreated {
				t.Fatalf("create: %d %s", create.Status, create.Body)
			}
			m := create.Map(t)
			if m["user_role"] != "customer" || m["email"] != email {
				t.Fatalf("created: %v", m)
			}
			// No password: the account cannot log in with anything.
			for _, pw := range []string{"", "!", goodPassword} {
				if pw == "" {
					continue
				}
				wantDetail(t, s.login(email, pw), http.StatusUnauthorized, "no_active_account", "")
			}
			// Duplicate email, as register.
			if f := s.post("/api/auth/users/", who.token, map[string]any{"email": strings.ToUpper(email)}).fields(t); f["email"][0] != "user with this email already exists." {
				t.Fatalf("duplicate create: %v", f)
			}
			// Password rules apply to a given password.
			if f := s.post("/api/auth/users/", who.token, map[string]any{"email": "pw-" + email, "password": "123"}).fields(t); len(f["password"]) != 3 {
				t.Fatalf("weak password on create: %v", f)
			}
			del := "/api/auth/users/" + m["id"].(string) + "/"
			if a := s.do(req{method: http.MethodDelete, path: del, token: who.token}); a.Status != http.StatusNoContent {
				t.Fatalf("delete: %d %s", a.Status, a.Body)
			}
			wantDetail(t, s.do(req{method: http.MethodDelete, path: del, token: who.token}), http.StatusNotFound, "not_found", "")
			wantDetail(t, s.get(del, who.token), http.StatusNotFound, "not_found", "")
		})
	}

	// Only an admin chooses a role; a bad role is a field error.
	wantDetail(t, s.post("/api/auth/users/", svc, map[string]any{"email": "svc-admin@example.com", "user_role": "admin"}), http.StatusForbidden, "permission_denied", "")
	if n := s.countByEmail("svc-admin@example.com"); n != 0 {
		t.Fatal("a service created an account with a role")
	}
	if f := s.post("/api/auth/users/", admin.access, map[string]any{"email": "r@example.com", "user_role": "service"}).fields(t); f["user_role"][0] != `"service" is not a valid choice.` {
		t.Fatalf("bad role: %v", f)
	}
	// The customer still exists after every refused delete.
	if a := s.get("/api/auth/profile/", cust.access); a.Status != http.StatusOK {
		t.Fatalf("customer after refused deletes: %d", a.Status)
	}
}

func TestServiceToken(t *testing.T) {
	t.Parallel()
	s := start(t, map[string]string{"AUTH_SERVICE_CLIENTS": "bff:" + systest.BFFClientSecret + ",migrate:other-secret"})
	a := s.post("/api/auth/token/service/", "", map[string]any{"client_id": "migrate", "client_secret": "other-secret"})
	if a.Status != http.StatusOK {
		t.Fatalf("service token: %d %s", a.Status, a.Body)
	}
	m := a.Map(t)
	if m["token_type"] != "Bearer" || m["expires_in"].(float64) < 295 || m["expires_in"].(float64) > 300 {
		t.Fatalf("answer: %v", m)
	}
	c, err := s.verifier.Verify(m["access"].(string))
	if err != nil || c.Role != "service" || c.UserID != "migrate" || c.ExpiresAt.Sub(c.IssuedAt) != 5*time.Minute {
		t.Fatalf("claims: %+v %v", c, err)
	}
	for _, body := range []map[string]any{
		{"client_id": "bff", "client_secret": "other-secret"},
		{"client_id": "nobody", "client_secret": systest.BFFClientSecret},
		{"client_id": "bff", "client_secret": systest.BFFClientSecret + "x"},
	} {
		wantDetail(t, s.post("/api/auth/token/service/", "", body), http.StatusUnauthorized, "authentication_failed", "Invalid client credentials.")
	}
	if f := s.post("/api/auth/token/service/", "", map[string]any{}).fields(t); f["client_id"] == nil || f["client_secret"] == nil {
		t.Fatalf("missing credentials: %v", f)
	}
}

func TestDjangoPasswordHashIsRehashed(t *testing.T) {
	t.Parallel()
	s := start(t, nil)
	// Django 3.2's defaults: pbkdf2_sha256, 260000 iterations, a 22-character salt.
	// The encoding is cross-checked against Python's hashlib in auth/password.
	hash, err := password.DjangoPBKDF2("Legacy-Pass-2019", "aB3dE5gH7jK9mN1pQ3sT5v", 260000)
	testenv.Must(t, err, "hash")
	ctx := context.Background()
	mc, err := mongodb.Connect(ctx, testenv.MongoURI(t), "test", nil)
	testenv.Must(t, err, "connect")
	defer mc.Disconnect(ctx)
	users := mc.Database(s.cfg.DB).Collection("users")
	id := "3f2b8c1e-5d4a-4e6f-9a7b-1c2d3e4f5a6b"
	_, err = users.InsertOne(ctx, bson.D{
		{Key: "_id", Value: id}, {Key: "email", Value: "legacy@example.com"}, {Key: "first_name", Value: "Old"},
		{Key: "last_name", Value: "Timer"}, {Key: "phone_number", Value: ""}, {Key: "user_role", Value: "customer"},
		{Key: "date_joined", Value: time.Date(2019, 5, 1, 12, 0, 0, 0, time.UTC)}, {Key: "password", Value: hash},
	})
	testenv.Must(t, err, "insert legacy user")
	// A user written straight into the collection has no email claim: the
	// login cannot find them until the backfill the service runs at start
	// (docs/operations.md: an import needs a restart).
	wantDetail(t, s.login("legacy@example.com", "Legacy-Pass-2019"), http.StatusUnauthorized, "no_active_account", "")
	in := s.sys.Service("auth")
	testenv.Must(t, in.Stop(), "stop")
	in.Start()
	if !slices.ContainsFunc(in.Logs.Lines(t), func(l map[string]any) bool {
		return l["msg"] == "email claims backfilled" && l["claims"] == float64(1)
	}) {
		t.Errorf("the restart did not backfill one claim:\n%s", in.Logs.Tail(20))
	}

	wantDetail(t, s.login("legacy@example.com", "Legacy-Pass-2018"), http.StatusUnauthorized, "no_active_account", "")
	var doc struct {
		Password string `bson:"password"`
	}
	testenv.Must(t, users.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&doc), "read user")
	if doc.Password != hash {
		t.Fatal("a failed login changed the stored hash")
	}
	a := s.login("Legacy@example.com", "Legacy-Pass-2019")
	if a.Status != http.StatusOK || toSession(t, a).id != id {
		t.Fatalf("legacy login: %d %s", a.Status, a.Body)
	}
	testenv.Must(t, users.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&doc), "read user")
	if !strings.HasPrefix(doc.Password, "$argon2id$v=19$m=256,t=1,p=1$") {
		t.Fatalf("hash after login: %q, want the current Argon2id", doc.Password)
	}
	if a := s.login("legacy@example.com", "Legacy-Pass-2019"); a.Status != http.StatusOK {
		t.Fatalf("login after rehash: %d %s", a.Status, a.Body)
	}
}

func TestChangeFeed(t *testing.T) {
	t.Parallel()
	s := startWith(t, systest.Options{Redis: true, Env: map[string]string{"AUTH_BOOTSTRAP_ADMIN_EMAIL": adminEmail, "AUTH_BOOTSTRAP_ADMIN_PASSWORD": adminPassword}})
	r := s.sys.Redis
	rc, err := redisconn.Open(r.URL, redisconn.Options{})
	testenv.Must(t, err, "redis")
	defer rc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The events come from the outbox through the relay to the stream.
	last := "-"
	next := func() changefeed.Event {
		t.Helper()
		for ctx.Err() == nil {
			entries, err := rc.XRangeN(ctx, changefeed.Stream, last, "+", 1).Result()
			if err == nil && len(entries) > 0 {
				last = "(" + entries[0].ID
				e, err := changefeed.Decode(entries[0].Values["event"].(string))
				testenv.Must(t, err, "decode %v", entries[0].Values)
				return e
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatal("no change event")
		return changefeed.Event{}
	}
	u := s.register("jane@example.com", "Jane", "Doe")
	s.do(req{method: http.MethodPatch, path: "/api/auth/profile/update/", token: u.access, body: map[string]any{"last_name": "Roe"}})
	if m := next(); m.UserID != u.id || m.Op != "update" || m.Topic != changefeed.UserChanged || !m.SpanContext().IsValid() {
		t.Fatalf("update message: %+v", m)
	}
	s.do(req{method: http.MethodDelete, path: "/api/auth/profile/delete/", token: u.access})
	if m := next(); m.UserID != u.id || m.Op != "delete" || m.Topic != changefeed.UserDeleted {
		t.Fatalf("self-delete message: %+v", m)
	}
	v := s.register("kim@example.com", "Kim", "Lee")
	admin := toSession(t, s.login(adminEmail, adminPassword))
	s.do(req{method: http.MethodDelete, path: "/api/auth/users/" + v.id + "/", token: admin.access})
	if m := next(); m.UserID != v.id || m.Op != "delete" || m.Topic != changefeed.UserDeleted {
		t.Fatalf("staff delete message: %+v", m)
	}
	// /readyz reports Redis without depending on it.
	r.Stop()
	a := s.get("/readyz", "")
	if a.Status != http.StatusOK || !strings.Contains(string(a.Body), `"redis":"unavailable"`) {
		t.Fatalf("readyz with Redis down: %d %s", a.Status, a.Body)
	}
	// Writes still succeed while Redis is down; their events wait in the
	// outbox and reach the stream once Redis is back (it lost its data).
	w := s.register("lou@example.com", "Lou", "Reed")
	if a := s.do(req{method: http.MethodPatch, path: "/api/auth/profile/update/", token: w.access, body: map[string]any{"first_name": "Louis"}}); a.Status != http.StatusOK {
		t.Fatalf("update with Redis down: %d %s", a.Status, a.Body)
	}
	testenv.Must(t, r.Start(ctx), "restart Redis")
	last = "-"
	if m := next(); m.UserID != w.id || m.Topic != changefeed.UserChanged {
		t.Fatalf("event of the write made while Redis was down: %+v", m)
	}
}
