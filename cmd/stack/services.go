package main

import (
	"context"

	"github.com/acme/customer-platform/auth/authd"
	"github.com/acme/customer-platform/bff/bffd"
	"github.com/acme/customer-platform/customer/customerd"
	"github.com/acme/customer-platform/internal/config"
	"github.com/acme/customer-platform/internal/daemon"
)

// services lists what the stack can start, in start order.
func services() []service {
	return []service{
		{name: "auth", offset: 1, run: func(ctx context.Context, lookup config.Lookup, o daemon.Options) error {
			cfg, err := authd.LoadConfig(lookup)
			if err != nil {
				return err
			}
			return authd.Run(ctx, cfg, o)
		}},
		{name: "customer", offset: 2, run: func(ctx context.Context, lookup config.Lookup, o daemon.Options) error {
			cfg, err := customerd.LoadConfig(lookup)
			if err != nil {
				return err
			}
			return customerd.Run(ctx, cfg, o)
		}},
		{name: "bff", offset: 0, run: func(ctx context.Context, lookup config.Lookup, o daemon.Options) error {
			cfg, err := bffd.LoadConfig(lookup)
			if err != nil {
				return err
			}
			return bffd.Run(ctx, cfg, o)
		}},
	}
}
