// Package stack is the list of the system's services and the environment a
// system gives them to work together: where the store, Redis and the other
// services are, the signing key they share and the service clients' secrets.
// cmd/stack runs the services from it for development; the system-test
// harness (internal/testenv/systest) starts them from it in tests. A new
// service, or a new variable the services need of one another, is added
// here once.
package stack

import (
	"strings"

	"github.com/acme/customer-platform/auth/authd"
	"github.com/acme/customer-platform/bff/bffd"
	"github.com/acme/customer-platform/customer/customerd"
	"github.com/acme/customer-platform/internal/daemon"
)

// Service is one of the services of the system.
type Service struct {
	Name string
	// Offset places the service on a development machine: API port = base
	// port + Offset, metrics port = base + 1100 + Offset (cmd/stack).
	Offset int
	// DBVar is the variable naming the service's MongoDB database.
	DBVar string
	// URLVar is the variable its callers read its base URL from ("": no
	// other service calls it).
	URLVar string
	// Cmd is the package of its binary, relative to the module root.
	Cmd string
	Run daemon.RunFunc
}

// Services lists the services in start order: each one's callees before it.
func Services() []Service {
	return []Service{
		{Name: "auth", Offset: 1, DBVar: "AUTH_DB", URLVar: "AUTH_URL", Cmd: "./cmd/auth",
			Run: daemon.Runner(authd.LoadConfig, authd.Run)},
		{Name: "customer", Offset: 2, DBVar: "CUSTOMER_DB", URLVar: "CUSTOMER_URL", Cmd: "./cmd/customer",
			Run: daemon.Runner(customerd.LoadConfig, customerd.Run)},
		{Name: "bff", Offset: 0, DBVar: "BFF_DB", Cmd: "./cmd/bff",
			Run: daemon.Runner(bffd.LoadConfig, bffd.Run)},
	}
}

// Lookup returns the named service.
func Lookup(name string) (Service, bool) {
	for _, s := range Services() {
		if s.Name == name {
			return s, true
		}
	}
	return Service{}, false
}

// Names are the services' names in start order.
func Names() []string {
	var ns []string
	for _, s := range Services() {
		ns = append(ns, s.Name)
	}
	return ns
}

// The service clients the auth service knows.
const (
	BFFClientID      = "bff"
	MigrateClientID  = "migrate"
	CustomerClientID = "customer"
)

// Wiring is what a system has to give its services.
type Wiring struct {
	MongoURI string
	RedisURL string // "": no Redis
	// URLs are the base URLs the services call each other on, by name.
	URLs map[string]string
	// SigningKey is the JWT key the services share.
	SigningKey string
	// BFFClientSecret, MigrateClientSecret and CustomerClientSecret are the
	// secrets of the BFF's, the migration tool's and the customer service's
	// (its erasure cascade's) service clients.
	BFFClientSecret      string
	MigrateClientSecret  string
	CustomerClientSecret string
	// AdminEmail and AdminPassword make the auth service create an admin
	// at start ("": none).
	AdminEmail, AdminPassword string
}

// Env is the environment a system gives each of its services (each reads
// the variables it knows). A service's own settings (addresses, database
// name, timeouts) are the caller's.
func Env(w Wiring) map[string]string {
	env := map[string]string{
		"MONGODB_URI":     w.MongoURI,
		"JWT_SIGNING_KEY": w.SigningKey,
		"AUTH_SERVICE_CLIENTS": BFFClientID + ":" + w.BFFClientSecret + "," + MigrateClientID + ":" + w.MigrateClientSecret +
			"," + CustomerClientID + ":" + w.CustomerClientSecret,
		"AUTH_SERVICE_CLIENT_SCOPES":     BFFClientID + "=users:read users:create users:delete:customers customers:read customers:write customers:delete," + MigrateClientID + "=users:read users:create customers:read customers:write customers:delete," + CustomerClientID + "=users:read",
		"BFF_SERVICE_CLIENT_ID":          BFFClientID,
		"BFF_SERVICE_CLIENT_SECRET":      w.BFFClientSecret,
		"CUSTOMER_SERVICE_CLIENT_ID":     CustomerClientID,
		"CUSTOMER_SERVICE_CLIENT_SECRET": w.CustomerClientSecret,
	}
	if w.RedisURL != "" {
		env["REDIS_URL"] = w.RedisURL
	}
	if w.AdminEmail != "" {
		env["AUTH_BOOTSTRAP_ADMIN_EMAIL"] = w.AdminEmail
		env["AUTH_BOOTSTRAP_ADMIN_PASSWORD"] = w.AdminPassword
	}
	for _, s := range Services() {
		if u := w.URLs[s.Name]; u != "" && s.URLVar != "" {
			env[s.URLVar] = strings.TrimSuffix(u, "/")
		}
	}
	return env
}
