package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/acme/customer-platform/customer/legacy"
)

func (c *command) plan(ctx context.Context) error {
	in, err := c.open(ctx, false)
	if err != nil {
		return err
	}
	defer in.file.Close()
	rw, f, err := c.newReport("plan", in.reader.Format())
	if err != nil {
		return err
	}
	sum, runErr := legacy.Plan(ctx, in.reader, in.dir, c.options(in.total), rw.Entry)
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
