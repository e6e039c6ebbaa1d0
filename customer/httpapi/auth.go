package httpapi

import (
	"context"

	"github.com/gin-gonic/gin"

	"github.com/acme/customer-platform/authclient"
	"github.com/acme/customer-platform/customer"
	"github.com/acme/customer-platform/internal/web"
)

// Verifier checks an access token; *authclient.Verifier is the real one.
type Verifier interface {
	Verify(token string) (*authclient.Claims, error)
}

var _ Verifier = (*authclient.Verifier)(nil)

type actorKey struct{}

// withActor returns ctx carrying the authenticated caller.
func withActor(ctx context.Context, a customer.Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// actorFrom returns the authenticated caller carried by ctx.
func actorFrom(ctx context.Context) (customer.Actor, bool) {
	a, ok := ctx.Value(actorKey{}).(customer.Actor)
	return a, ok
}

// authenticate verifies the bearer token and puts the caller in the request's
// context: 401 not_authenticated without a token, 401 token_not_valid for a
// token that does not verify. An oversized header is refused before any
// parsing (and the server refuses headers over 64 KiB with 431 already).
func authenticate(v Verifier) gin.HandlerFunc {
	return func(c *gin.Context) {
		tok, ok := authclient.BearerToken(c.GetHeader("Authorization"))
		if !ok {
			c.Header("WWW-Authenticate", `Bearer realm="api"`)
			web.Respond(c, web.Errorf(web.CodeNotAuthenticated, "Authentication credentials were not provided."))
			return
		}
		if len(tok) > authclient.MaxTokenBytes {
			c.Header("WWW-Authenticate", `Bearer realm="api"`)
			web.Respond(c, web.Errorf(web.CodeTokenNotValid, "Given token not valid for any token type"))
			return
		}
		claims, err := v.Verify(tok)
		if err != nil {
			c.Header("WWW-Authenticate", `Bearer realm="api"`)
			web.Respond(c, web.Errorf(web.CodeTokenNotValid, "Given token not valid for any token type"))
			return
		}
		a := customer.Actor{
			UserID:    claims.UserID,
			Role:      claims.Role,
			Email:     claims.Email,
			FirstName: claims.FirstName,
			LastName:  claims.LastName,
			Token:     tok,
		}
		c.Request = c.Request.WithContext(withActor(c.Request.Context(), a))
		c.Next()
	}
}
