// Package probe is the project's own security probe suite: its tests start
// the whole system in this process (internal/testenv/systest: auth,
// customer and BFF on the embedded FerretDB and a real Redis, configured as
// a deployment runs them, outside development, with the default rate
// limits) and attack it from outside as a client would, one subtest per
// item of the OWASP API Security Top 10 (2023), each asserting the
// specific defence:
//
//   - API1 broken object level authorization: another customer's profile,
//     service history or id, through the customer service and the BFF, is
//     404, never the data.
//   - API2 broken authentication: forged tokens (alg none, a wrong key,
//     another algorithm, a tampered payload, an embedded key, no or a past
//     exp), a refresh token as an access token, a service token on the
//     self-service endpoints, a refresh token after its logout, a rotated
//     one replayed (its whole family revoked); brute-force login throttled
//     without locking the owner out at their own address.
//   - API3 broken object property level authorization: mass assignment of
//     read-only fields refused with a 400 naming the field; answers carry
//     only the contract's fields (no hash, no registration internals).
//   - API4 unrestricted resource consumption: the body size limit, the
//     page_size cap, the rate limits of login and register.
//   - API5 broken function level authorization: customers on staff and
//     admin endpoints, employees on admin-only deletes, service clients
//     beyond their scopes: 403, nothing done.
//   - API6 sensitive business flows: a replayed registration key creates
//     nothing twice, sequentially or concurrently; another body is 422.
//   - API7 server-side request forgery: no endpoint takes a URL; addresses
//     of a canary listener put in every text field are never fetched.
//   - API8 security misconfiguration: security headers on every answer of
//     every service (errors and 404s too), no-store on token answers, CORS
//     limited to the configured origins, no internal detail in errors,
//     pagination links never built from a forged Host header.
//   - API9 improper inventory management: the BFF publishes no internal
//     document outside development (BFF_PUBLISH_DOCS); unknown routes are
//     the contract's 404.
//   - API10 unsafe consumption of APIs: a BFF whose auth or customer
//     service answers malformed or oversized bodies (a tampering proxy of
//     the test's own) answers a clean 502/503 and leaves no half-done
//     registration.
//
// and NUL characters are refused with Django's "Null characters are not
// allowed." by auth, customer and through the BFF.
//
// The suite is one system for all its probes (TestOWASPAPITop10 and its
// subtests, named after the items: go test -run 'TestOWASPAPITop10/API2'
// ./internal/probe/). Every actor sends its own client address
// (X-Forwarded-For, believed from the loopback as from a load balancer), so
// the rate limits of one probe do not spill into another.
package probe
