package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/acme/customer-platform/customer"
	"github.com/acme/customer-platform/internal/contract"
	"github.com/acme/customer-platform/internal/web"
)

type actorKey struct{}

// actors is the middleware, behind web.Bearer, that turns the verified
// caller into the customer.Actor every handler acts for. A service
// account's scopes are its token's scope claim; a service token without
// one (the Django auth service issues no scopes) gets every scope of the
// service when allowUnscoped is set (SERVICE_TOKENS_WITHOUT_SCOPE=allow),
// and none otherwise.
func actors(allowUnscoped bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		caller, ok := web.CallerFrom(c.Request.Context())
		if !ok { // not behind web.Bearer: a wiring fault, answered as unauthenticated
			web.Respond(c, web.Errorf(web.CodeNotAuthenticated, web.MsgNotAuthenticated))
			return
		}
		cl := caller.Claims
		a := customer.Actor{
			UserID:    cl.UserID,
			Role:      cl.Role,
			Email:     cl.Email,
			FirstName: cl.FirstName,
			LastName:  cl.LastName,
			Token:     caller.Token,
		}
		if a.Role == contract.RoleService {
			scopes, present := tokenScopes(caller.Token)
			if !present && allowUnscoped {
				scopes = customer.ServiceScopes()
			}
			a.Scopes = scopes
		}
		c.Request = c.Request.WithContext(context.WithValue(c.Request.Context(), actorKey{}, a))
		c.Next()
	}
}

// actor is the caller the actors middleware stored; the routes are
// registered behind it, so its absence is a wiring fault answered as an
// unauthenticated call.
func actor(c *gin.Context) (customer.Actor, error) {
	a, ok := c.Request.Context().Value(actorKey{}).(customer.Actor)
	if !ok {
		return customer.Actor{}, web.Errorf(web.CodeNotAuthenticated, web.MsgNotAuthenticated)
	}
	return a, nil
}

// tokenScopes reads the scope claim of an access token web.Bearer has
// verified: a space-separated list of scopes (RFC 8693 §4.2, RFC 9068
// §2.2.3). present is false only when the token has no scope claim; a
// claim that is not a string grants nothing.
//
// authclient's claims have no scope yet, so the claim is read here from the
// token's payload (already verified: only its decoding is left).
func tokenScopes(token string) (scopes []string, present bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, false
	}
	var claims struct {
		Scope json.RawMessage `json:"scope"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.Scope == nil {
		return nil, false
	}
	var scope string
	if json.Unmarshal(claims.Scope, &scope) != nil {
		return []string{}, true
	}
	return strings.Fields(scope), true
}
