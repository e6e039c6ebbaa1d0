package daemon

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/acme/customer-platform/internal/config"
)

func TestRunnerLogsAnInvalidConfigurationAndNeverRuns(t *testing.T) {
	t.Parallel()
	load := func(lookup config.Lookup) (string, error) {
		v, _ := lookup("PORT")
		if v == "" {
			return "", errors.New("PORT: required")
		}
		return v, nil
	}
	var ran []string
	run := func(_ context.Context, port string, _ Options) error { ran = append(ran, port); return nil }

	var out bytes.Buffer
	err := RunLogged(context.Background(), "svc", config.FromMap(nil), &out, Runner(load, run))
	if err == nil || err.Error() != "PORT: required" {
		t.Fatalf("err = %v, want the config error", err)
	}
	for _, want := range []string{`"level":"ERROR"`, `"msg":"invalid configuration"`, `"service":"svc"`, `PORT: required`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("log %q lacks %s", out.String(), want)
		}
	}
	if len(ran) != 0 {
		t.Fatalf("Run was called with an invalid configuration")
	}

	out.Reset()
	if err := RunLogged(context.Background(), "svc", config.FromMap(map[string]string{"PORT": "8080", "LOG_LEVEL": "error"}), &out, Runner(load, run)); err != nil {
		t.Fatal(err)
	}
	if len(ran) != 1 || ran[0] != "8080" {
		t.Fatalf("Run got %v, want the loaded config", ran)
	}
}

func TestStartLogsTheVersionAndTheConfiguration(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	err := RunLogged(context.Background(), "svc", config.FromMap(nil), &out, func(ctx context.Context, lookup config.Lookup, o Options) error {
		tel, err := o.Start(ctx, "svc", "test", map[string]string{"port": "8080"})
		if err != nil {
			return err
		}
		tel.Close(ctx, o.Log())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"msg":"starting"`, `"version":"` + Version() + `"`, `"config":{"port":"8080"}`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("log %q lacks %s", out.String(), want)
		}
	}
}
