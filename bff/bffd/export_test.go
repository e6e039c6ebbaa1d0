package bffd

import "context"

// SetAfterStep sets the saga runner's test hook (bff.Options.AfterStep) of
// cfg, for the tests that start the BFF through the system harness.
func SetAfterStep(cfg *Config, afterStep func(ctx context.Context, step string) error) {
	cfg.afterStep = afterStep
}
