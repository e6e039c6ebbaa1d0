package auth

import (
	"context"
	"time"
)

// BlacklistRetention is how long past its expiry a used refresh token stays
// blacklisted; it covers the verifier's clock-skew leeway.
const BlacklistRetention = time.Minute

// SweepBlacklist removes blacklist entries of refresh tokens that can no
// longer verify anyway.
func (s *Service) SweepBlacklist(ctx context.Context) (int64, error) {
	return s.d.Store.SweepBlacklist(ctx, s.d.Now().Add(-BlacklistRetention))
}
