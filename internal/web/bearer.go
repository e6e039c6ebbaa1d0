package web

import (
	"context"

	"github.com/gin-gonic/gin"

	"github.com/acme/customer-platform/authclient"
)

// TokenVerifier checks an access token; *authclient.Verifier is the real one.
type TokenVerifier interface {
	Verify(token string) (*authclient.Claims, error)
}

var _ TokenVerifier = (*authclient.Verifier)(nil)

// Caller is the authenticated caller of a request: the verified claims of
// its access token, and the token itself (to call another service on the
// caller's behalf).
type Caller struct {
	Claims *authclient.Claims
	Token  string
}

type callerKey struct{}

// WithCaller returns ctx carrying c.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller Bearer stored in ctx; ok is false outside
// an authenticated route.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// Messages of Django REST framework and simplejwt for a missing or bad token.
const (
	MsgNotAuthenticated = "Authentication credentials were not provided."
	MsgTokenNotValid    = "Given token not valid for any token type"
)

// Bearer is the one bearer-token middleware: it verifies the request's
// "Authorization: Bearer <token>" and stores the Caller in the request's
// context. Without a token it answers 401 not_authenticated, with a token
// that does not verify 401 token_not_valid (both with WWW-Authenticate).
// admit, when set, may refuse a verified caller (e.g. a service account
// where only users are served) by returning the answer to write.
func Bearer(v TokenVerifier, admit func(*authclient.Claims) *Error) gin.HandlerFunc {
	return func(c *gin.Context) {
		tok, ok := authclient.BearerToken(c.GetHeader("Authorization"))
		if !ok {
			Respond(c, Errorf(CodeNotAuthenticated, MsgNotAuthenticated))
			return
		}
		claims, err := v.Verify(tok)
		if err != nil {
			Respond(c, Errorf(CodeTokenNotValid, MsgTokenNotValid))
			return
		}
		if admit != nil {
			if e := admit(claims); e != nil {
				Respond(c, e)
				return
			}
		}
		c.Request = c.Request.WithContext(WithCaller(c.Request.Context(), Caller{Claims: claims, Token: tok}))
		c.Next()
	}
}
