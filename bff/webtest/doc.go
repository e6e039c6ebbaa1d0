// Package webtest holds the BFF's browser tests: headless Chromium (the
// system's, never a downloaded one), driven with chromedp, against the real
// auth, customer and BFF services running in the test process. The tests
// are skipped, saying why, where Chromium is not installed.
package webtest
