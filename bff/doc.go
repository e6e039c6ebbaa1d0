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
// The saga's steps, states and leases, compensation, the idempotency
// records and the telemetry are described in docs/design.md at the root of
// the repository.
package bff
