package bffd

import "net/http"

// upstreamTransport is the base transport of the BFF's upstream clients:
// nil, the clients' default (internal/upstream's tuned transport). Not
// replaying a call that is not safe to repeat (a register whose
// Idempotency-Key made net/http replay it after its connection dropped) is
// internal/upstream's now, for every client of every service and whatever
// transport it is given (TestNonIdempotentCallsAreNotReplayed there), so
// the BFF needs no transport of its own. This function goes once Run stops
// passing it.
func upstreamTransport() http.RoundTripper { return nil }
