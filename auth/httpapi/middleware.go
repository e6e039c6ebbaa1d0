package httpapi

import (
	"context"

	"github.com/gin-gonic/gin"

	"github.com/acme/customer-platform/auth"
	"github.com/acme/customer-platform/authclient"
	"github.com/acme/customer-platform/internal/web"
)

type principalKey struct{}

func withPrincipal(ctx context.Context, p auth.Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// principalFrom returns the caller set by authenticate.
func principalFrom(ctx context.Context) (auth.Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(auth.Principal)
	return p, ok
}

// Messages of DRF and simplejwt.
const (
	msgNoCredentials = "Authentication credentials were not provided."
	msgTokenInvalid  = "Given token not valid for any token type"
)

// authenticate verifies the bearer access token (refresh tokens, other
// algorithms, expired or forged tokens are refused) and puts the caller in
// the request's context.
func authenticate(v *authclient.Verifier) gin.HandlerFunc {
	return func(c *gin.Context) {
		h := c.GetHeader("Authorization")
		tok, ok := authclient.BearerToken(h)
		if !ok {
			unauthorized(c, web.Errorf(web.CodeNotAuthenticated, msgNoCredentials))
			return
		}
		claims, err := v.Verify(tok)
		if err != nil {
			unauthorized(c, web.Errorf(web.CodeTokenNotValid, msgTokenInvalid))
			return
		}
		p := auth.Principal{UserID: claims.UserID, Role: claims.Role}
		c.Request = c.Request.WithContext(withPrincipal(c.Request.Context(), p))
		c.Next()
	}
}

func unauthorized(c *gin.Context, e *web.Error) {
	c.Header("WWW-Authenticate", `Bearer realm="api"`)
	web.Respond(c, e)
}
