package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/acme/customer-platform/internal/config"
)

func TestRunRefusesAnIncompleteConfiguration(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := run(ctx, config.FromMap(map[string]string{"AUTH_TIMEOUT": "never"}), &out)
	if err == nil || !strings.Contains(err.Error(), "JWT_SIGNING_KEY") || !strings.Contains(err.Error(), "AUTH_TIMEOUT") {
		t.Fatalf("run: %v", err)
	}
	if log := out.String(); !strings.Contains(log, `"msg":"invalid configuration"`) || !strings.Contains(log, "AUTH_TIMEOUT") {
		t.Fatalf("the invalid configuration is not logged: %q", log)
	}
}
