package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/acme/customer-platform/internal/config"
	"github.com/acme/customer-platform/internal/stack"
	"github.com/acme/customer-platform/internal/testenv"
)

// freeBase finds a port base whose API and metrics ports are all free.
func freeBase(t *testing.T) int {
	t.Helper()
	for base := 20000 + time.Now().Nanosecond()%20000; ; base += 7 {
		ok := true
		for _, p := range []int{base, base + 1, base + 2, base + 1100, base + 1101, base + 1102} {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return base
		}
	}
}

func TestStackStartsServicesAndStops(t *testing.T) {
	base := freeBase(t)
	env := config.FromMap(map[string]string{
		"STACK_DATA_DIR":   t.TempDir(),
		"STACK_MONGO_ADDR": "127.0.0.1:0",
		"STACK_REDIS_ADDR": "127.0.0.1:0",
		"STACK_PORT_BASE":  fmt.Sprint(base),
		"LOG_LEVEL":        "warn",
	})
	ctx, cancel := context.WithCancel(context.Background())
	var stdout testenv.LogBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, env, &stdout, io.Discard) }()
	testenv.Eventually(t, 60*time.Second, func() error {
		select {
		case err := <-done:
			t.Fatalf("stack stopped early: %v", err)
		default:
		}
		if !strings.Contains(stdout.String(), "The system is up") {
			return fmt.Errorf("the stack did not come up")
		}
		return nil
	})
	for _, s := range stack.Services() {
		url := fmt.Sprintf("http://127.0.0.1:%d", base+s.Offset)
		if a := testenv.Call(t, nil, http.MethodGet, url+"/readyz", nil, nil); a.Status != 200 {
			t.Errorf("%s readyz: %d", s.Name, a.Status)
		}
		if !strings.Contains(stdout.String(), url) {
			t.Errorf("banner does not show where %s listens:\n%s", s.Name, stdout.String())
		}
	}

	// A second stack on the same ports fails with a clear message.
	second := config.Overlay(map[string]string{"STACK_DATA_DIR": t.TempDir()}, env)
	err := run(context.Background(), []string{"-services=customer"}, second, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("second stack on taken ports: want a clear port-taken error, got %v", err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("stack: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("stack did not stop")
	}
}

func TestStackConfig(t *testing.T) {
	t.Parallel()
	c, err := loadStackConfig([]string{"-services=customer, auth,customer"}, config.FromMap(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Services, ",") != "customer,auth" || c.PortBase != 8000 || c.DataDir != ".data" {
		t.Errorf("config = %+v", c)
	}
	if _, err := loadStackConfig([]string{"-services=billing"}, config.FromMap(nil), io.Discard); err == nil || !strings.Contains(err.Error(), "billing") {
		t.Errorf("unknown service: %v", err)
	}
}
