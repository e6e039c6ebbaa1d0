// Package ratelimit implements auth.Limiter: fixed-window request limits per
// bucket and key, and an increasing lockout of an email after repeated failed
// logins, on Redis (shared by every replica) or in memory (one process).
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/acme/customer-platform/auth"
)

// Rate is at most Limit events per Window.
type Rate struct {
	Limit  int64
	Window time.Duration
}

func (r Rate) String() string { return fmt.Sprintf("%d/%s", r.Limit, r.Window) }

// Rules are the limits of each bucket (auth.Bucket*) and the lockout rule.
// A bucket without a rule is unlimited.
type Rules struct {
	Off     bool
	Buckets map[string]Rate
	// LoginFailures: after Limit failed logins for one email within Window,
	// logins for it are refused for 30 s, doubling with each further failure,
	// at most Window. Zero Limit disables the lockout.
	LoginFailures Rate
}

// lockoutBase is the first lockout's length.
const lockoutBase = 30 * time.Second

// ruleLoginFailures names the lockout rule in AUTH_RATE_LIMITS.
const ruleLoginFailures = "login_failures"

// DefaultRules are the limits used when AUTH_RATE_LIMITS is unset:
// register=10/1m,register_email=5/1m,login=20/1m,login_email=100/1h,service_token=30/1m,login_failures=5/15m.
// login_email counts every login attempt for one email from anywhere: high
// enough that an attacker cannot use it to lock the owner out, it bounds a
// distributed guessing attack at 100 guesses an hour; the lockout
// (login_failures) is per email and client address.
func DefaultRules() Rules {
	return Rules{
		Buckets: map[string]Rate{
			auth.BucketRegister:      {10, time.Minute},
			auth.BucketRegisterEmail: {5, time.Minute},
			auth.BucketLogin:         {20, time.Minute},
			auth.BucketLoginEmail:    {100, time.Hour},
			auth.BucketServiceToken:  {30, time.Minute},
		},
		LoginFailures: Rate{5, 15 * time.Minute},
	}
}

// ParseRules parses AUTH_RATE_LIMITS.
//
// The format is a comma-separated list of name=limit/window, where name is
// one of register (per client address), register_email (per email), login
// (per client address), login_email (per email), service_token (per client
// address) or login_failures (the failed-login lockout: after that many
// failures for one email from one client address within the window, that
// address is locked out of the email for 30 s,
// doubling with every further failure, at most the window), limit a positive
// integer and window a Go duration ("30s", "1m", "1h"; a bare unit such as
// "m" means one of it). A rule may be "name=off". Rules not listed keep their
// default (see DefaultRules). The whole value "off" disables every limit and
// the lockout; "" means the defaults.
//
// Example: register=10/1m,login=20/1m,login_email=5/1m
func ParseRules(s string) (Rules, error) {
	r := DefaultRules()
	s = strings.TrimSpace(s)
	if s == "" {
		return r, nil
	}
	if strings.EqualFold(s, "off") {
		return Rules{Off: true}, nil
	}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, spec, ok := strings.Cut(item, "=")
		name = strings.TrimSpace(name)
		if !ok {
			return Rules{}, fmt.Errorf("rate limit %q: want name=limit/window", item)
		}
		if _, known := r.Buckets[name]; !known && name != ruleLoginFailures {
			return Rules{}, fmt.Errorf("rate limit %q: unknown name %q", item, name)
		}
		var rate Rate
		if spec = strings.TrimSpace(spec); !strings.EqualFold(spec, "off") {
			var err error
			if rate, err = parseRate(spec); err != nil {
				return Rules{}, fmt.Errorf("rate limit %q: %w", item, err)
			}
		}
		if name == ruleLoginFailures {
			r.LoginFailures = rate
		} else if rate.Limit == 0 {
			delete(r.Buckets, name)
		} else {
			r.Buckets[name] = rate
		}
	}
	return r, nil
}

func parseRate(spec string) (Rate, error) {
	n, w, ok := strings.Cut(spec, "/")
	if !ok {
		return Rate{}, errors.New("want limit/window, e.g. 10/1m")
	}
	limit, err := strconv.ParseInt(strings.TrimSpace(n), 10, 64)
	if err != nil || limit < 1 {
		return Rate{}, errors.New("limit must be a positive integer")
	}
	w = strings.TrimSpace(w)
	if w != "" && (w[0] < '0' || w[0] > '9') {
		w = "1" + w
	}
	window, err := time.ParseDuration(w)
	if err != nil || window < time.Second {
		return Rate{}, errors.New("window must be a duration of at least 1s, e.g. 30s or 1m")
	}
	return Rate{Limit: limit, Window: window}, nil
}

// String renders the rules in the AUTH_RATE_LIMITS format.
func (r Rules) String() string {
	if r.Off {
		return "off"
	}
	var parts []string
	for _, b := range []string{auth.BucketRegister, auth.BucketRegisterEmail, auth.BucketLogin, auth.BucketLoginEmail, auth.BucketServiceToken} {
		if rate, ok := r.Buckets[b]; ok {
			parts = append(parts, b+"="+rate.String())
		} else {
			parts = append(parts, b+"=off")
		}
	}
	if r.LoginFailures.Limit > 0 {
		parts = append(parts, ruleLoginFailures+"="+r.LoginFailures.String())
	} else {
		parts = append(parts, ruleLoginFailures+"=off")
	}
	return strings.Join(parts, ",")
}

// Backend stores the counters.
type Backend interface {
	// Hit counts one event in key's current window (which starts with the
	// first event) and returns the count and the time left in the window.
	Hit(ctx context.Context, key string, window time.Duration) (int64, time.Duration, error)
	// Block marks key for d.
	Block(ctx context.Context, key string, d time.Duration) error
	// Blocked returns how long key stays marked (0: not marked).
	Blocked(ctx context.Context, key string) (time.Duration, error)
	// Clear forgets keys.
	Clear(ctx context.Context, keys ...string) error
}

// Limiter implements auth.Limiter over a Backend.
type Limiter struct {
	rules   Rules
	backend Backend
}

var _ auth.Limiter = (*Limiter)(nil)

// New returns a limiter applying rules on backend.
func New(rules Rules, backend Backend) *Limiter {
	return &Limiter{rules: rules, backend: backend}
}

// Keys are namespaced so several services may share one Redis.
const keyPrefix = "auth:rl:"

// Allow counts a request; a positive duration means refused until then.
func (l *Limiter) Allow(ctx context.Context, bucket, key string) (time.Duration, error) {
	if l.rules.Off {
		return 0, nil
	}
	rate, ok := l.rules.Buckets[bucket]
	if !ok {
		return 0, nil
	}
	n, left, err := l.backend.Hit(ctx, keyPrefix+bucket+":"+key, rate.Window)
	if err != nil {
		return 0, err
	}
	if n > rate.Limit {
		return atLeastASecond(left), nil
	}
	return 0, nil
}

func atLeastASecond(d time.Duration) time.Duration {
	if d < time.Second {
		return time.Second
	}
	return d
}

func (l *Limiter) lockoutOn() bool { return !l.rules.Off && l.rules.LoginFailures.Limit > 0 }

// LockedOut reports how long logins for the key are refused.
func (l *Limiter) LockedOut(ctx context.Context, key string) (time.Duration, error) {
	if !l.lockoutOn() {
		return 0, nil
	}
	d, err := l.backend.Blocked(ctx, keyPrefix+"lock:"+key)
	if err != nil || d <= 0 {
		return 0, err
	}
	return atLeastASecond(d), nil
}

// LoginFailed counts a failure and locks the key once the rule's limit is
// reached, for longer with each further failure.
func (l *Limiter) LoginFailed(ctx context.Context, key string) error {
	if !l.lockoutOn() {
		return nil
	}
	rule := l.rules.LoginFailures
	n, _, err := l.backend.Hit(ctx, keyPrefix+"fail:"+key, rule.Window)
	if err != nil || n < rule.Limit {
		return err
	}
	return l.backend.Block(ctx, keyPrefix+"lock:"+key, LockoutFor(n-rule.Limit, rule.Window))
}

// LockoutFor is the lockout after the limit plus extra failures: 30 s
// doubled extra times, at most max.
func LockoutFor(extra int64, max time.Duration) time.Duration {
	d := lockoutBase
	for i := int64(0); i < extra && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

// LoginSucceeded forgets the key's failures.
func (l *Limiter) LoginSucceeded(ctx context.Context, key string) error {
	if !l.lockoutOn() {
		return nil
	}
	return l.backend.Clear(ctx, keyPrefix+"fail:"+key, keyPrefix+"lock:"+key)
}
