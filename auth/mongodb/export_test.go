package mongodb

import "context"

// Claim is the first step of CreateUser and of an email change alone: the
// state a crash right after it leaves.
func (s *Store) Claim(ctx context.Context, email, userID string) error {
	return s.claim(ctx, email, userID)
}

// SetBeforeDelete makes release call f between its read of the claim and
// the delete.
func (s *Store) SetBeforeDelete(f func()) { s.beforeDelete = f }
