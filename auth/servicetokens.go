package auth

import (
	"context"
	"fmt"
)

// ServiceToken issues a service account's short-lived access token.
func (s *Service) ServiceToken(ctx context.Context, in ServiceTokenInput, clientAddr string) (ServiceToken, error) {
	if err := s.limit(ctx, BucketServiceToken, clientAddr); err != nil {
		return ServiceToken{}, err
	}
	f := Fields{}
	id, secret := in.Validate(f)
	if err := f.Err(); err != nil {
		return ServiceToken{}, err
	}
	if s.d.Clients == nil || !s.d.Clients.Verify(id, secret) {
		return ServiceToken{}, ErrInvalidClient
	}
	t, err := s.d.Tokens.Service(id, s.d.Now())
	if err != nil {
		return ServiceToken{}, fmt.Errorf("issue service token: %w", err)
	}
	return t, nil
}
