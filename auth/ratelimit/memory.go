package ratelimit

import (
	"context"
	"sync"
	"time"
)

// Memory is a Backend in this process's memory, for a single replica or
// development without Redis. Expired entries are purged as it goes.
type Memory struct {
	mu      sync.Mutex
	now     func() time.Time
	entries map[string]memEntry
	ops     int
}

type memEntry struct {
	n     int64
	until time.Time
}

var _ Backend = (*Memory)(nil)

// NewMemory returns an empty in-memory backend; now may be nil (time.Now).
func NewMemory(now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{now: now, entries: map[string]memEntry{}}
}

// purgeEvery is how many operations pass between purges of expired entries.
const purgeEvery = 1024

func (m *Memory) tick(now time.Time) {
	m.ops++
	if m.ops%purgeEvery != 0 {
		return
	}
	for k, e := range m.entries {
		if !now.Before(e.until) {
			delete(m.entries, k)
		}
	}
}

// Hit counts one event in key's window.
func (m *Memory) Hit(_ context.Context, key string, window time.Duration) (int64, time.Duration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.tick(now)
	e, ok := m.entries[key]
	if !ok || !now.Before(e.until) {
		e = memEntry{until: now.Add(window)}
	}
	e.n++
	m.entries[key] = e
	return e.n, e.until.Sub(now), nil
}

// Block marks key for d.
func (m *Memory) Block(_ context.Context, key string, d time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.tick(now)
	m.entries[key] = memEntry{n: 1, until: now.Add(d)}
	return nil
}

// Blocked returns how long key stays marked.
func (m *Memory) Blocked(_ context.Context, key string) (time.Duration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.entries[key]
	if !ok {
		return 0, nil
	}
	left := e.until.Sub(m.now())
	if left <= 0 {
		delete(m.entries, key)
		return 0, nil
	}
	return left, nil
}

// Clear forgets keys.
func (m *Memory) Clear(_ context.Context, keys ...string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		delete(m.entries, k)
	}
	return nil
}
