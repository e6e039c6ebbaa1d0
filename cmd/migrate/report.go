package main

import (
	"fmt"
	"os"
	"time"

	"github.com/acme/customer-platform/customer/legacy"
)

// newReport starts the report file of plan or apply.
func (c *command) newReport(cmd string, format legacy.Format) (*legacy.ReportWriter, *os.File, error) {
	f, err := os.Create(c.flags.report)
	if err != nil {
		return nil, nil, fmt.Errorf("create the report: %w", err)
	}
	h := legacy.ReportHeader{Command: cmd, GeneratedAt: time.Now().UTC(), Input: c.flags.input, Format: format}
	h.Options.AcceptPartialAddress = c.flags.acceptPartial
	h.Options.CreateMissingUsers = c.flags.create
	rw, err := legacy.NewReportWriter(f, h)
	if err != nil {
		_ = f.Close()
		return nil, nil, fmt.Errorf("write the report: %w", err)
	}
	return rw, f, nil
}

// finishReport ends the report with the summary, noting a failed run.
func finishReport(rw *legacy.ReportWriter, f *os.File, sum legacy.Summary, runErr error) error {
	if runErr != nil && !sum.Interrupted {
		sum.Interrupted = true
		sum.InterruptReason = runErr.Error()
	}
	err := rw.Close(sum)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write the report: %w", err)
	}
	return nil
}
