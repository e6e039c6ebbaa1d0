package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/acme/customer-platform/internal/config"
)

func TestRunRefusesABadConfiguration(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	err := run(context.Background(), config.FromMap(map[string]string{"AUTH_RATE_LIMITS": "nonsense"}), &out)
	if err == nil || !strings.Contains(err.Error(), "JWT_SIGNING_KEY") || !strings.Contains(err.Error(), "AUTH_RATE_LIMITS") {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(out.String(), `"level":"ERROR"`) || !strings.Contains(out.String(), `"service":"auth"`) {
		t.Fatalf("log: %s", out.String())
	}
}
