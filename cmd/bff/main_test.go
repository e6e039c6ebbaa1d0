package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/acme/customer-platform/internal/config"
)

func TestRunRefusesAConfigWithoutSigningKey(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), config.FromMap(map[string]string{"CUSTOMER_TIMEOUT": "soon"}), &out)
	if err == nil || !strings.Contains(err.Error(), "JWT_SIGNING_KEY") || !strings.Contains(err.Error(), "CUSTOMER_TIMEOUT") {
		t.Fatalf("want every configuration problem at once, got %v", err)
	}
}
