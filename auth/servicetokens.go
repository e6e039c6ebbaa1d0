package auth

import (
	"context"
	"fmt"
)

// ClientScopes are the scopes configured for a service client: what a
// service token without a scope claim (one issued before scopes existed)
// may do here.
func (s *Service) ClientScopes(clientID string) []string {
	if s.d.Clients == nil {
		return nil
	}
	return s.d.Clients.Scopes(clientID)
}

// ServiceToken issues a service account's short-lived access token, with
// the scopes configured for the client.
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
	t, err := s.d.Tokens.Service(id, s.d.Clients.Scopes(id), s.d.Now())
	if err != nil {
		return ServiceToken{}, fmt.Errorf("issue service token: %w", err)
	}
	return t, nil
}
