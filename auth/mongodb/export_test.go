package mongodb

import (
	"context"

	"github.com/acme/customer-platform/auth"
)

// Claim is the first step of CreateUser and of an email change alone: the
// state a crash right after it leaves.
func (s *Store) Claim(ctx context.Context, email, userID string) error {
	return s.claim(ctx, claimDoc{Email: email, UserID: userID})
}

// SetBeforeDelete makes release call f between its read of the claim and
// the delete.
func (s *Store) SetBeforeDelete(f func()) { s.beforeDelete = f }

// ClaimFor is the first step of CreateUser(u): the state a crash right
// after it leaves.
func (s *Store) ClaimFor(ctx context.Context, u auth.User) error {
	return s.claim(ctx, registrationClaim(u))
}

// SetBeforeInsert makes CreateUser call f between its check of the
// deadline and the user's insert.
func (s *Store) SetBeforeInsert(f func()) { s.beforeInsert = f }

// SetAfterUpdate makes UpdateUser call f right after its update.
func (s *Store) SetAfterUpdate(f func()) { s.afterUpdate = f }
