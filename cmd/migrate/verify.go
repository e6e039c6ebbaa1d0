package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/acme/customer-platform/customer/legacy"
)

func (c *command) verify(ctx context.Context) error {
	in, err := c.open(ctx, true)
	if err != nil {
		return err
	}
	defer in.file.Close()
	v, err := legacy.Verify(ctx, in.reader, in.dir, in.store, c.options(in.total))
	if err != nil {
		return err
	}
	if c.flags.report != "" {
		b, _ := json.MarshalIndent(v, "", "  ")
		if err := os.WriteFile(c.flags.report, append(b, '\n'), 0o600); err != nil {
			return fmt.Errorf("write the report: %w", err)
		}
	}
	fmt.Fprint(c.env.stdout, v.Text())
	c.log.InfoContext(ctx, "verify done", "records", v.Records, "expected", v.Expected, "found", v.Found,
		"missing", v.Missing, "mismatched", v.Mismatched, "orphans", v.OrphanUsers, "shared", v.SharedUsers)
	if !v.OK() {
		return problemsError{"the data does not match the plan: see above"}
	}
	return nil
}
