package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/acme/customer-platform/customer/legacy"
)

func (c *command) apply(ctx context.Context) error {
	in, err := c.open(ctx, true)
	if err != nil {
		return err
	}
	defer in.file.Close()
	rw, f, err := c.newReport("apply", in.reader.Format())
	if err != nil {
		return err
	}
	var users legacy.UserCreator
	if c.flags.create {
		users = in.dir
	}
	sum, runErr := legacy.Apply(ctx, in.reader, in.dir, users, in.store, c.options(in.total), rw.Entry)
	if err := finishReport(rw, f, sum, runErr); err != nil {
		return errors.Join(runErr, err)
	}
	fmt.Fprint(c.env.stdout, sum.Text("apply"))
	fmt.Fprintf(c.env.stdout, "report: %s\n", c.flags.report)
	c.log.InfoContext(ctx, "apply done", "records", sum.Records, "inserted", sum.Inserted, "updated", sum.Updated,
		"failed", sum.Failed, "users_created", sum.UsersCreated, "interrupted", sum.Interrupted)
	if runErr != nil {
		return fmt.Errorf("apply stopped after %d batches (%d records); run it again with the same input and flags to finish — nothing is written twice: %w", sum.Batches, sum.Records, runErr)
	}
	if sum.Failed > 0 {
		return problemsError{fmt.Sprintf("%d records could not be written: see the entries with \"outcome\": \"failed\" in %s", sum.Failed, c.flags.report)}
	}
	return nil
}
