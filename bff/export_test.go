package bff

import (
	"testing"
	"time"
)

// For the external tests of this directory (replicas_test.go, on the real
// store, which imports this package): the fault suite's model of the
// services and the registration handler's flow.

// World is the fault suite's model of the auth and customer services.
type World = world

// Plan is a replica's crash point (and faults).
type Plan = plan

// NewWorld returns an empty world whose tokens age on now.
func NewWorld(now func() time.Time) *World {
	return newWorld(&plan{faultAt: -1, writeAt: -1, crashAt: -1}, now)
}

// CrashAt is a plan without faults whose replica dies at the crash point
// (-1: never).
func CrashAt(point int) *Plan { return &plan{faultAt: -1, writeAt: -1, crashAt: point} }

// Points is how many crash points the plan has passed.
func (p *plan) Points() int { return p.points }

// Crashed names the point the replica died at, "" if it did not.
func (p *plan) Crashed() string { return p.crashedAt }

// IsCrash reports whether a recovered panic is a plan's crash.
func IsCrash(r any) bool { _, ok := r.(crashed); return ok }

// Ports are the world's services as one replica sees them (its plan).
func (w *world) Ports(p *Plan) (Auth, AuthAdmin, Customers, CustomersAdmin) {
	return worldAuth{w, p}, worldAuth{w, p}, worldCustomers{w, p}, worldCustomers{w, p}
}

// Invariants lists the orphan users and ghost profiles.
func (w *world) Invariants() []string { return w.invariants() }

// Deleted lists the ids of the deleted users.
func (w *world) Deleted() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.deleted...)
}

// Holds reports the user with the email and whether it has a profile.
func (w *world) Holds(email string) (userID string, profile bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	userID = w.byEmail[email]
	_, profile = w.profiles[userID]
	return userID, profile
}

// KeyedRegister plays the registration handler with an Idempotency-Key.
func KeyedRegister(s *Service, key string, fp Fingerprint, reg Registration) (status int, body []byte) {
	a := keyed(s, key, fp, reg)
	return a.status, a.body
}

// ValidRegistration is a registration every validator accepts.
var ValidRegistration = validRegistration

// RegistrationFingerprint is ValidRegistration's request fingerprint.
func RegistrationFingerprint(t testing.TB) Fingerprint { return regFingerprint(t, validRegistration) }

// NoProfileRetryDelay drops the pause before the second profile create.
func NoProfileRetryDelay(s *Service) { s.profileRetryDelay = 0 }

// Write runs a store write with the plan's crash points around it.
func (p *plan) Write(what string, fn func() error) error { return p.write(what, fn) }

// Clock is the settable time the in-package tests use.
type Clock = clock

// NewClock returns a clock set to t.
func NewClock(t time.Time) *Clock { return &clock{t: t} }

// Now reads the clock.
func (c *clock) Now() time.Time { return c.now() }

// Advance moves the clock on by d.
func (c *clock) Advance(d time.Duration) { c.advance(d) }

// Stores is every store port in one.
type Stores = stores

// CrashStore is st with p's crash points around every write.
func CrashStore(st Stores, p *Plan) Stores { return crashStore{stores: st, p: p} }

// UserIDOf is the user id of a registration's answer.
func UserIDOf(body []byte) string { return userIDOf(body) }
