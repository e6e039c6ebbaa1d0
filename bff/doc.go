// Package bff is the vocabulary and the business logic of the backend for
// frontend: the one-call registration saga, the account operations (login,
// PATCH and DELETE of the merged view) and the reconciler that finishes or
// undoes any saga left in between. It declares what it needs of the outside
// world as small interfaces (Auth, AuthAdmin, Customers, CustomersAdmin,
// SagaStore, LeaseStore, IdempotencyStore, Telemetry); the adapters live in
// the subpackages and are wired in bffd. Only the standard library (and the
// stdlib-only auth and customer domain packages, for their validation rules)
// is imported here.
//
// # Registration
//
// Every field of both services is validated first (the auth package's and
// the customer package's own rules), and a bad request is answered 400 with
// every field error at once before anything is written. Then:
//
//  1. a saga record is written (collection sagas) and leased to the request;
//  2. the auth user is created (state user_created, with the user id);
//  3. the profile is created with the new user's access token (completed).
//
// # Compensation: check before deleting
//
// When the profile cannot be created (the customer service is down, answers
// 5xx, times out, or rejects what slipped through validation) the saga moves
// to compensating. If the failure was ambiguous (the request may have reached
// the service: a timeout, a reset connection, a 5xx) the BFF first asks the
// customer service whether the profile exists (check_profile_exists, with the
// user's own token or the service token); if it does, the registration
// FINISHES FORWARD and is answered 201 with that profile. Only when it does
// not (or when the customer service cannot say) is the auth user deleted,
// first with the user's own token, then with the BFF's service token. A
// failure that certainly did not reach the service (connection refused, an
// open circuit breaker) needs no check.
//
// After an ambiguous failure the saga keeps a final verify step: after a
// grace period longer than the customer call timeout the reconciler checks
// again that no profile appeared for that user id (a create still in flight
// when we checked) and deletes it if one did. Only then is the saga
// compensated. So a profile created by a request that timed out is never
// left behind without its user, and the bound on such an orphan's life is
// the grace period plus one reconcile interval.
//
// The answer of a compensated registration is 503 (400 when the customer
// service rejected the data) {"code": "registration_failed", "compensated":
// true}; when the user could not be deleted yet, "compensated": false and
// "pending": true: the reconciler finishes the job.
//
// # Sagas, states and leases
//
// A saga record (collection sagas) holds its id, kind (register,
// delete_account), state, the user id once known, the customer id, an HMAC
// of the normalised email, the idempotency key's id, attempts, the time of
// the next attempt (exponential backoff with jitter), created/updated times
// and the W3C traceparent of the request that started it. It never holds a
// password or a plain token: the user's access token and the email are kept
// sealed (AES-GCM under a key derived from the server secret, bound to the
// saga id) only while the saga is not terminal, because compensation without
// a service client and the lookup of a user whose id was never recorded need
// them; they are wiped at the terminal transition.
//
// Register states: started -> user_created -> completed, or user_created ->
// compensating -> verifying -> compensated; started -> failed when the auth
// service refused or certainly never got the request; needs_attention when
// the reconciler cannot prove what happened. Delete-account states: started
// -> profile_deleted -> completed. Each transition is an update guarded by
// the expected current state ({_id, state: <expected>}), and only the
// holder of the saga's lease writes.
//
// Leases (collection saga_leases) are inserts keyed uniquely by the saga id
// (a duplicate key means someone else holds it), released by a delete of
// {saga_id, owner}. A lease found expired (expires_at < now) is deleted and
// the claim tried once more. Each lease carries its own random _id and the
// expired one is deleted by that _id alone: FerretDB resolves a filtered
// delete to _ids and then deletes them, not atomically, so a delete keyed by
// the saga id could remove the fresh lease of the worker that won the
// takeover (20 concurrent claimants of an expired lease got two winners).
// So claims are atomic on MongoDB and on the embedded FerretDB alike. The
// live request holds its saga's lease while it works, so the reconciler
// (one loop per replica, RECONCILE_INTERVAL with jitter) never touches a
// saga in progress.
//
// A saga stuck in started (the BFF died during the register call, or the
// call timed out) is resolved only after a grace period longer than the auth
// call timeout: the reconciler looks the user up by email with the service
// account and deletes it only when it can prove the user came from that saga
// (no profile, joined within the saga's register window, no other saga
// records that user id). In doubt the saga is marked needs_attention (a log
// line and a metric) and nothing is deleted. Without a service client the
// BFF still runs: compensation then uses the user's own token only (valid
// five minutes), and the reconciler finishes what that token allows.
//
// Finished sagas (completed, compensated, failed) are kept for
// SAGA_RETENTION (30 days by default) for support and audit, then deleted
// by the reconciler's sweep; a saga that needs attention is kept until an
// operator deals with it.
//
// # Idempotency-Key
//
// As the IETF httpapi draft and Stripe: a retry with the same key and body
// returns the first answer (with Idempotent-Replayed: true); the same key
// with another body is 422; a retry while the first is in flight is 409;
// keys expire after 24 h (an application sweep: FerretDB has no TTL
// indexes). A record (collection idempotency_keys) has key_id = SHA-256 of
// the key (unique; each record's _id is the random id of the claim that
// inserted it, so the claim's completion is addressed by _id alone), an
// HMAC of the request fingerprint (SHA-256 of the canonical body,
// which contains the passwords: only hashes are stored), the state in_flight
// or done, the in-flight lease expiry, and the answer (status and body)
// sealed with AES-256-GCM under HKDF(server secret, fingerprint): without the
// original body the stored tokens cannot be read, even with the database and
// the secret. The server secret is BFF_IDEMPOTENCY_SECRET, by default
// derived from JWT_SIGNING_KEY with HKDF-SHA256 and its own label
// ("bff idempotency secret v1"), so the two are never the same key.
//
// Answers with a status below 500 are stored. A 5xx answer is not: when its
// saga is terminal (nothing is left behind) the key is released and a retry
// runs again; while its saga is pending the record stays in flight and a
// retry gets 409 until the lease has expired and the saga is terminal. A
// request that crashed in flight is handled the same way: once its lease has
// expired and its saga is terminal (or was never written), a retry with the
// same key and body runs the registration again (and gets the auth
// service's answer, e.g. "user with this email already exists." when the
// first run had completed).
//
// # Telemetry
//
// Each registration has a span bff.register with a child per step
// (auth_register, profile_create per attempt, compensation and its
// checks); the reconciler's spans link to the originating request's
// traceparent. Registrations are counted by outcome (completed,
// compensated, failed, needs_attention) once, when their saga ends, and as
// pending when the request answered before it ended (the reconciler counts
// its end later); the reconciler backlog is a gauge. This goes through the
// Telemetry interface that bffd implements with OpenTelemetry.
package bff
