package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/acme/customer-platform/customer/legacy"
)

func (c *command) plan(ctx context.Context) error {
	dir, err := c.directory(ctx)
	if err != nil {
		return err
	}
	r, in, total, err := c.openInput()
	if err != nil {
		return err
	}
	defer in.Close()
	rw, f, err := c.newReport("plan", r.Format())
	if err != nil {
		return err
	}
	sum, runErr := legacy.Plan(ctx, r, dir, c.options(total), rw.Entry)
	if err := finishReport(rw, f, sum, runErr); err != nil {
		return errors.Join(runErr, err)
	}
	if runErr != nil {
		return fmt.Errorf("plan stopped after %d records (the report is incomplete): %w", sum.Records, runErr)
	}
	fmt.Fprint(c.env.stdout, sum.Text("plan"))
	fmt.Fprintf(c.env.stdout, "report: %s (nothing was written)\n", c.flags.report)
	c.log.InfoContext(ctx, "plan done", "records", sum.Records, "migrate", sum.Migrate, "create_user", sum.CreateUser, "skip", sum.Skip)
	if c.flags.strict && sum.WithProblems > 0 {
		return problemsError{fmt.Sprintf("%d records have problems (--strict)", sum.WithProblems)}
	}
	return nil
}
