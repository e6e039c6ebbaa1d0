// Package e2e holds the cross-service tests: the auth, customer and BFF
// services run in one test process against the embedded FerretDB and a real
// Redis, each with its own in-memory span exporter, captured JSON log and
// Prometheus /metrics listener, and the tests check what the three emit
// together — one trace per registration across the services, the saga's
// compensation and the reconciler's linked traces, the metrics after a
// known sequence of requests, one access log line per request with its
// trace, and that no password, token, email or tax id reaches a span, a log
// line or a metric.
package e2e
