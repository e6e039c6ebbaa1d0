package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/acme/customer-platform/internal/config"
	"github.com/acme/customer-platform/internal/daemon"
	"github.com/acme/customer-platform/internal/embedded"
	"github.com/acme/customer-platform/internal/logging"
	"github.com/acme/customer-platform/internal/stack"
)

// stackConfig is the stack's own configuration (the services read theirs).
type stackConfig struct {
	Services  []string
	DataDir   string
	MongoAddr string
	RedisAddr string
	MongoURI  string // external MongoDB, when set
	RedisURL  string // external Redis, when set
	AuthURL   string // external auth service, when set
	LogLevel  string
	PortBase  int // bff on PortBase, auth +1, customer +2; metrics on PortBase+1100...
}

func (c stackConfig) port(s stack.Service) int        { return c.PortBase + s.Offset }
func (c stackConfig) metricsPort(s stack.Service) int { return c.PortBase + 1100 + s.Offset }

// url is the local URL of the named service.
func (c stackConfig) url(name string) string {
	if s, ok := stack.Lookup(name); ok {
		return fmt.Sprintf("http://127.0.0.1:%d", c.port(s))
	}
	return ""
}

func loadStackConfig(args []string, lookup config.Lookup, stderr io.Writer) (stackConfig, error) {
	r := config.New(lookup)
	c := stackConfig{
		DataDir:   r.String("STACK_DATA_DIR", ".data"),
		MongoAddr: r.String("STACK_MONGO_ADDR", "127.0.0.1:27017"),
		RedisAddr: r.String("STACK_REDIS_ADDR", "127.0.0.1:6379"),
		MongoURI:  r.String("MONGODB_URI", ""),
		RedisURL:  r.String("REDIS_URL", ""),
		AuthURL:   r.URL("AUTH_URL", ""),
		LogLevel:  r.String("LOG_LEVEL", "info"),
		PortBase:  r.Int("STACK_PORT_BASE", 8000),
	}
	services := r.String("STACK_SERVICES", strings.Join(stack.Names(), ","))
	fs := flag.NewFlagSet("stack", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&services, "services", services, "comma-separated services to start: "+strings.Join(stack.Names(), ","))
	fs.StringVar(&c.DataDir, "data", c.DataDir, "directory of the embedded database's files and the generated development secrets")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	for _, s := range strings.Split(services, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		r.Check(slices.Contains(stack.Names(), s), "-services", fmt.Sprintf("unknown service %q (known: %s)", s, strings.Join(stack.Names(), ", ")))
		if !slices.Contains(c.Services, s) {
			c.Services = append(c.Services, s)
		}
	}
	r.Check(len(c.Services) > 0, "-services", "no service to start")
	return c, r.Err()
}

func run(ctx context.Context, args []string, getenv config.Lookup, stdout, stderr io.Writer) error {
	cfg, err := loadStackConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := logging.New(stderr, logging.ParseLevel(cfg.LogLevel), "stack")

	secrets, err := embedded.LoadDevSecrets(cfg.DataDir)
	if err != nil {
		return err
	}

	mongoURI, mongoNote := cfg.MongoURI, "external"
	if mongoURI == "" {
		dir := filepath.Join(cfg.DataDir, "mongo")
		m, err := embedded.StartMongo(ctx, cfg.MongoAddr, dir, nil)
		if err != nil {
			return fmt.Errorf("%w (set MONGODB_URI to use another server, or STACK_MONGO_ADDR to move the embedded one)", err)
		}
		defer m.Close()
		mongoURI, mongoNote = m.URI, "embedded FerretDB, data in "+dir
	}
	redisURL, redisNote := cfg.RedisURL, "external"
	if redisURL == "" {
		rd, err := embedded.StartRedis(ctx, cfg.RedisAddr, true)
		if err != nil {
			return fmt.Errorf("%w (set REDIS_URL to use another server, or STACK_REDIS_ADDR to move the embedded one)", err)
		}
		defer rd.Stop()
		redisURL, redisNote = rd.URL, "embedded "+rd.Kind
	}

	authURL := cfg.AuthURL
	if authURL == "" {
		authURL = cfg.url("auth")
	}
	// What the stack sets for its services, unless the environment sets
	// them: everything else comes from the environment, exactly as each
	// service alone would read it.
	defaults := stack.Env(stack.Wiring{
		MongoURI:             mongoURI,
		RedisURL:             redisURL,
		URLs:                 map[string]string{"auth": authURL, "customer": cfg.url("customer")},
		SigningKey:           secrets.JWTSigningKey,
		BFFClientSecret:      secrets.BFFClientSecret,
		MigrateClientSecret:  secrets.MigrateClientSecret,
		CustomerClientSecret: secrets.CustomerClientSecret,
		AdminEmail:           "admin@example.com",
		AdminPassword:        secrets.AdminPassword,
	})
	defaults["DEPLOYMENT_ENVIRONMENT"] = "development"
	// Everything runs on loopback: auth believes the end user's address the
	// BFF forwards, so its per-address rate limits count users, not the BFF.
	defaults["TRUSTED_PROXIES"] = "127.0.0.1/32,::1/128"

	var (
		mu    sync.Mutex
		ready = map[string]daemon.Addrs{}
		all   = make(chan struct{})
	)
	g, gctx := errgroup.WithContext(ctx)
	for _, s := range stack.Services() {
		if !slices.Contains(cfg.Services, s.Name) {
			continue
		}
		env := map[string]string{
			"HTTP_ADDR":    fmt.Sprintf("127.0.0.1:%d", cfg.port(s)),
			"METRICS_ADDR": fmt.Sprintf("127.0.0.1:%d", cfg.metricsPort(s)),
		}
		lookup := config.Overlay(env, withDefaults(defaults, getenv))
		o := daemon.Options{
			Logger: logging.New(stderr, logging.ParseLevel(cfg.LogLevel), s.Name),
			Lookup: lookup,
			Ready: func(a daemon.Addrs) {
				mu.Lock()
				defer mu.Unlock()
				ready[s.Name] = a
				if len(ready) == len(cfg.Services) {
					close(all)
				}
			},
		}
		g.Go(func() error {
			if err := s.Run(gctx, lookup, o); err != nil {
				return fmt.Errorf("%s: %w", s.Name, err)
			}
			return nil
		})
	}
	go func() {
		select {
		case <-all:
			printBanner(stdout, cfg, mongoURI, mongoNote, redisURL, redisNote, authURL, secrets)
		case <-gctx.Done():
		}
	}()
	err = g.Wait()
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info("stopped")
	return nil
}

// withDefaults returns a lookup that falls back to defaults for unset keys.
func withDefaults(defaults map[string]string, next config.Lookup) config.Lookup {
	return func(k string) (string, bool) {
		if v, ok := next(k); ok && strings.TrimSpace(v) != "" {
			return v, true
		}
		v, ok := defaults[k]
		return v, ok
	}
}

func printBanner(w io.Writer, cfg stackConfig, mongoURI, mongoNote, redisURL, redisNote, authURL string, s embedded.DevSecrets) {
	var b strings.Builder
	fmt.Fprintf(&b, "\nThe system is up (%s):\n", time.Now().Format(time.Kitchen))
	for _, svc := range stack.Services() {
		if slices.Contains(cfg.Services, svc.Name) {
			fmt.Fprintf(&b, "  %-9s %s   (metrics http://127.0.0.1:%d/metrics)\n", svc.Name, cfg.url(svc.Name), cfg.metricsPort(svc))
		}
	}
	if !slices.Contains(cfg.Services, "auth") {
		fmt.Fprintf(&b, "  auth      %s (external)\n", authURL)
	}
	fmt.Fprintf(&b, "  MongoDB   %s (%s)\n  Redis     %s (%s)\n", mongoURI, mongoNote, redisURL, redisNote)
	if slices.Contains(cfg.Services, "bff") {
		fmt.Fprintf(&b, `
Open %[1]s/ in a browser, or register a customer with one call:

  curl -s -X POST %[1]s/api/bff/register/ \
    -H 'Content-Type: application/json' -H "Idempotency-Key: $(date +%%s%%N)" \
    -d '{"email":"ada@example.com","first_name":"Ada","last_name":"Lovelace","phone_number":"+15035550100",
         "password1":"correct-horse-battery","password2":"correct-horse-battery",
         "street_address":"123 Main St","city":"Portland","state":"OR","postal_code":"97201"}'
`, cfg.url("bff"))
	}
	if slices.Contains(cfg.Services, "auth") {
		fmt.Fprintf(&b, "\nBootstrap admin: admin@example.com / %s  (development secrets in %s)\n", s.AdminPassword, filepath.Join(cfg.DataDir, embedded.DevSecretsFile))
	}
	b.WriteString("A development token for the customer service: make token   (ROLE=employee make token for staff)\nCtrl-C stops everything.\n\n")
	_, _ = io.WriteString(w, b.String())
}
