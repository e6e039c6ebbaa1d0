package bffd

import (
	"net/http"
	"time"
)

// noReplay is the base transport of the BFF's upstream clients. net/http's
// Transport replays a request whose reused connection closed before an
// answer came when it deems the request idempotent, and it deems a POST
// that carries an Idempotency-Key header idempotent. The register call
// carries one (the registration key: the saga id), but a second register
// is not a no-op at the auth service: after the first attempt created the
// user, the replay is answered "email exists" and the user created first
// would look like someone else's. So a request of any other method than
// GET, HEAD, OPTIONS and TRACE is sent without GetBody, which makes it not
// replayable; retrying is the clients' decision (authclient,
// customerclient), never the transport's.
type noReplay struct{ base http.RoundTripper }

func (t noReplay) RoundTrip(req *http.Request) (*http.Response, error) {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return t.base.RoundTrip(req)
	}
	if req.GetBody != nil {
		req = req.Clone(req.Context())
		req.GetBody = nil
	}
	return t.base.RoundTrip(req)
}

// upstreamTransport is the transport of a client of auth or customer: the
// clients' default tuning, never replaying a request that is not safe.
func upstreamTransport() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 256
	t.MaxIdleConnsPerHost = 128
	t.IdleConnTimeout = 90 * time.Second
	return noReplay{base: t}
}
