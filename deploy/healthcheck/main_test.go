package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/readyz":
			w.Write([]byte(`{"status":"ok"}`))
		case "/down":
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"status":"unavailable","failing":["mongodb"]}`))
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)

	// A port nobody listens on: bind one, then close it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/readyz"
	ln.Close()

	tests := []struct {
		name    string
		args    []string
		wantErr string // "" means healthy
	}{
		{"ready", []string{srv.URL + "/readyz"}, ""},
		{"unavailable names the status and body", []string{srv.URL + "/down"}, "503 Service Unavailable"},
		{"not found", []string{srv.URL + "/nope"}, "404"},
		{"refused", []string{closed}, "refused"},
		{"timeout", []string{"-timeout", "50ms", srv.URL + "/slow"}, "deadline exceeded"},
		{"no url", nil, "exactly one URL"},
		{"two urls", []string{srv.URL, srv.URL}, "exactly one URL"},
		{"not http", []string{"ftp://127.0.0.1/readyz"}, "not an http(s) URL"},
		{"relative", []string{"/readyz"}, "not an http(s) URL"},
		{"bad timeout", []string{"-timeout", "0s", srv.URL + "/readyz"}, "must be positive"},
		{"unknown flag", []string{"-x", srv.URL}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stderr bytes.Buffer
			err := run(context.Background(), tt.args, &stderr)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("run(%q) = %v, want healthy", tt.args, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("run(%q) = nil, want an error containing %q", tt.args, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("run(%q) = %q, want it to contain %q", tt.args, err, tt.wantErr)
			}
		})
	}
}

func TestRunReportsFailingDependency(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"failing":["redis"]}`))
	}))
	t.Cleanup(srv.Close)
	err := run(context.Background(), []string{srv.URL + "/readyz"}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), `"redis"`) {
		t.Fatalf("run = %v, want the answer's body naming the failing dependency", err)
	}
}
