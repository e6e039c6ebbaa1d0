package httpapi

import (
	"context"

	"github.com/gin-gonic/gin"

	"github.com/acme/customer-platform/customer"
	"github.com/acme/customer-platform/internal/contract"
	"github.com/acme/customer-platform/internal/web"
)

type actorKey struct{}

// actors is the middleware, behind web.Bearer, that turns the verified
// caller into the customer.Actor every handler acts for. A service
// account's scopes are its token's scope claim (authclient.Claims.Scopes);
// a service token without one (the Django auth service issues no scopes)
// gets every scope of the service when allowUnscoped is set
// (SERVICE_TOKENS_WITHOUT_SCOPE=allow), and none otherwise.
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
			a.Scopes = cl.Scopes
			if !cl.ScopeClaim && allowUnscoped {
				a.Scopes = customer.ServiceScopes()
			}
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
