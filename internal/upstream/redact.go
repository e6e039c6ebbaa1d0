package upstream

import (
	"context"
	"net/http"

	"github.com/acme/customer-platform/internal/telemetry"
)

// A request's query values may be personal data (GET users/?email=): the
// otelhttp transport records the URL it is given as url.full, so it is
// given a copy whose query values are Redacted, and the real query is put
// back underneath it, on the request that goes on the wire:
//
//	http.Client -> redactQuery -> otelhttp (span, metrics, propagation) -> restoreQuery -> base
//
// Every request the http.Client sends, a redirect's too, passes through
// redactQuery, so nothing above the wire sees a query value.

// realQueryKey carries the request's real RawQuery from redactQuery to
// restoreQuery.
type realQueryKey struct{}

type redactQuery struct{ next http.RoundTripper }

func (t redactQuery) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL == nil || r.URL.RawQuery == "" {
		return t.next.RoundTrip(r)
	}
	red := r.Clone(context.WithValue(r.Context(), realQueryKey{}, r.URL.RawQuery))
	u := *r.URL
	u.RawQuery = telemetry.RedactQuery(r.URL.RawQuery)
	red.URL = &u
	return t.next.RoundTrip(red)
}

type restoreQuery struct{ next http.RoundTripper }

func (t restoreQuery) RoundTrip(r *http.Request) (*http.Response, error) {
	q, ok := r.Context().Value(realQueryKey{}).(string)
	if !ok {
		return t.next.RoundTrip(r)
	}
	real := r.Clone(r.Context())
	u := *r.URL
	u.RawQuery = q
	real.URL = &u
	return t.next.RoundTrip(real)
}
