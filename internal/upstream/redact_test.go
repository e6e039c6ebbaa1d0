package upstream

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// A failed call's error never quotes the query: it may carry an email.
func TestErrorLeavesOutTheQuery(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	c := New("auth", Options{BaseURL: "http://" + addr, Timeout: time.Second}, time.Second)
	err = c.Do(context.Background(), Call{Method: http.MethodGet, Path: "/api/auth/users/",
		Query: url.Values{"email": {"someone@example.com"}}})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
	msg := err.Error()
	if strings.Contains(msg, "someone") || strings.Contains(msg, "example.com") || !strings.Contains(msg, "/api/auth/users/") {
		t.Fatalf("error text %q", msg)
	}
}
