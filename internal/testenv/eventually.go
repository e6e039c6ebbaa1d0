package testenv

import (
	"errors"
	"testing"
	"time"
)

// Eventually calls cond every 25 ms until it returns nil, and fails the
// test with cond's last error when it has not within the time given.
func Eventually(t testing.TB, within time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %v", within, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// Holds adapts a yes-or-no condition to Eventually: its error is what.
func Holds(what string, cond func() bool) func() error {
	return func() error {
		if cond() {
			return nil
		}
		return errors.New(what)
	}
}
