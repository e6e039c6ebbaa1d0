//go:build !linux

package main

import (
	"errors"
	"syscall"
	"time"
)

func childAttr() *syscall.SysProcAttr { return nil }

// peakRSS needs Linux's /proc.
func peakRSS(int) (int64, error) {
	return 0, errors.New("peak RSS is read from /proc (Linux only)")
}

// cpuTime needs Linux's /proc.
func cpuTime(int) (time.Duration, error) {
	return 0, errors.New("CPU time is read from /proc (Linux only)")
}
