package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/acme/customer-platform/auth"
	"github.com/acme/customer-platform/internal/web"
)

// caller returns the authenticated principal; web.Bearer guarantees it on
// the routes that need one. A service token's scopes are its scope claim;
// one without the claim (issued before scopes existed, at most
// SERVICE_TOKEN_TTL ago) has the scopes configured for its client.
func caller(c *gin.Context, s *auth.Service) auth.Principal {
	cl, ok := web.CallerFrom(c.Request.Context())
	if !ok {
		return auth.Principal{}
	}
	p := auth.Principal{UserID: cl.Claims.UserID, Role: cl.Claims.Role}
	if p.IsService() {
		p.Scopes = cl.Claims.Scopes
		if !cl.Claims.ScopeClaim {
			p.Scopes = s.ClientScopes(p.UserID)
		}
	}
	return p
}

func noContent(c *gin.Context, status int) {
	c.Status(status)
	c.Writer.WriteHeaderNow()
}

// decodeBody reads the request's JSON object (allowEmpty: an empty body is
// the empty object) and decodes it with decode. With a refused body it
// returns what decode made of it and the error.
func decodeBody[T any](c *gin.Context, allowEmpty bool, decode func(map[string]json.RawMessage) (T, error)) (T, error) {
	body, err := web.ReadObject(c, allowEmpty)
	if err != nil {
		var zero T
		return zero, err
	}
	return decode(body)
}

// reply returns the end of a handler that answers what a service call
// returns: its error, or status with the result encoded by encode. Use it
// as reply(c, status, encode)(s.Call(...)).
func reply[T, J any](c *gin.Context, status int, encode func(T) J) func(T, error) error {
	return func(v T, err error) error {
		if err != nil {
			return err
		}
		c.JSON(status, encode(v))
		return nil
	}
}

// IdempotencyKeyHeader is the header of a registration whose value is
// stored with the user as its registration key.
const IdempotencyKeyHeader = "Idempotency-Key"

// RegistrationDeadlineHeader is the header of a registration that carries
// its deadline (RFC 3339): the user is not created once it has passed.
const RegistrationDeadlineHeader = "Registration-Deadline"

// header is a request header's value, nil when it is absent; several
// header lines are joined as one value (which the rules refuse: a key may
// not hold a space, a deadline is one timestamp).
func header(h http.Header, name string) *string {
	vs := h.Values(name)
	if len(vs) == 0 {
		return nil
	}
	v := strings.Join(vs, ", ")
	return &v
}

func handleRegister(s *auth.Service) gin.HandlerFunc {
	return responder.Handle(func(c *gin.Context) error {
		in, err := decodeBody(c, false, func(body map[string]json.RawMessage) (auth.RegisterInput, error) {
			return auth.DecodeRegisterRequest(body, auth.RegisterHeaders{
				Key:      header(c.Request.Header, IdempotencyKeyHeader),
				Deadline: header(c.Request.Header, RegistrationDeadlineHeader),
			}, s.Rules())
		})
		if err != nil {
			return err
		}
		return reply(c, http.StatusCreated, toUserWithTokens)(s.Register(c.Request.Context(), in, c.ClientIP()))
	})
}

func handleLogin(s *auth.Service) gin.HandlerFunc {
	return responder.Handle(func(c *gin.Context) error {
		in, err := decodeBody(c, false, auth.DecodeLogin)
		if err != nil {
			return err
		}
		return reply(c, http.StatusOK, toUserWithTokens)(s.Login(c.Request.Context(), in, c.ClientIP()))
	})
}

func handleRefresh(s *auth.Service) gin.HandlerFunc {
	return responder.Handle(func(c *gin.Context) error {
		refresh, err := decodeBody(c, false, auth.DecodeRefresh)
		if err != nil {
			return err
		}
		return reply(c, http.StatusOK, toTokensJSON)(s.Refresh(c.Request.Context(), refresh))
	})
}

func handleServiceToken(s *auth.Service) gin.HandlerFunc {
	return responder.Handle(func(c *gin.Context) error {
		in, err := decodeBody(c, false, auth.DecodeServiceToken)
		if err != nil {
			return err
		}
		return reply(c, http.StatusOK, toServiceTokenJSON)(s.ServiceToken(c.Request.Context(), in, c.ClientIP()))
	})
}

func handleLogout(s *auth.Service) gin.HandlerFunc {
	return responder.Handle(func(c *gin.Context) error {
		p := caller(c, s)
		if p.IsService() {
			return auth.ErrForbidden
		}
		refresh, err := decodeBody(c, false, auth.DecodeRefresh)
		if err != nil {
			return err
		}
		if err := s.Logout(c.Request.Context(), p, refresh); err != nil {
			return err
		}
		noContent(c, http.StatusResetContent)
		return nil
	})
}

func handleProfile(s *auth.Service) gin.HandlerFunc {
	return responder.Handle(func(c *gin.Context) error {
		return reply(c, http.StatusOK, toUserJSON)(s.Profile(c.Request.Context(), caller(c, s)))
	})
}

func handleUpdateProfile(s *auth.Service) gin.HandlerFunc {
	return responder.Handle(func(c *gin.Context) error {
		p := caller(c, s)
		if p.IsService() {
			return auth.ErrForbidden
		}
		in, err := decodeBody(c, true, func(body map[string]json.RawMessage) (auth.ProfileUpdate, error) {
			return auth.DecodeProfileUpdate(body, nil)
		})
		if err != nil {
			return err
		}
		return reply(c, http.StatusOK, toUserJSON)(s.UpdateProfile(c.Request.Context(), p, in))
	})
}

func handleDeleteSelf(s *auth.Service) gin.HandlerFunc {
	return responder.Handle(func(c *gin.Context) error {
		if err := s.DeleteSelf(c.Request.Context(), caller(c, s)); err != nil {
			return err
		}
		noContent(c, http.StatusNoContent)
		return nil
	})
}

func handleGetUser(s *auth.Service) gin.HandlerFunc {
	return responder.Handle(func(c *gin.Context) error {
		return reply(c, http.StatusOK, toStaffUserJSON)(s.GetUser(c.Request.Context(), caller(c, s), c.Param("id")))
	})
}

// handleFindUsers is GET /api/auth/users/: with ?email= the lookup by
// email (unchanged), else the keyset listing (?user_role=&after=&page_size=).
func handleFindUsers(s *auth.Service, publicURL string) gin.HandlerFunc {
	return responder.Handle(func(c *gin.Context) error {
		if v, ok := c.GetQuery("email"); ok {
			return reply(c, http.StatusOK, toUserList)(s.FindByEmail(c.Request.Context(), caller(c, s), &v))
		}
		in := auth.ListUsersInput{Role: queryParam(c, "user_role"), After: queryParam(c, "after"), PageSize: queryParam(c, "page_size")}
		return reply(c, http.StatusOK, func(p auth.UserPage) userPageJSON { return toUserPage(publicURL, p) })(s.ListUsers(c.Request.Context(), caller(c, s), in))
	})
}

// queryParam is a query parameter's value, nil when it is absent.
func queryParam(c *gin.Context, name string) *string {
	if v, ok := c.GetQuery(name); ok {
		return &v
	}
	return nil
}

func handleCreateUser(s *auth.Service) gin.HandlerFunc {
	return responder.Handle(func(c *gin.Context) error {
		p := caller(c, s)
		body, err := web.ReadObject(c, false)
		if err != nil {
			return err
		}
		in, err := auth.DecodeCreateUser(body, s.Rules())
		if err != nil {
			// Only a caller who may create users learns what is wrong.
			if aerr := auth.AuthorizeCreateUser(p, in.Role != nil); aerr != nil {
				return aerr
			}
			return err
		}
		return reply(c, http.StatusCreated, toUserJSON)(s.CreateUser(c.Request.Context(), p, in))
	})
}

func handleDeleteUser(s *auth.Service) gin.HandlerFunc {
	return responder.Handle(func(c *gin.Context) error {
		if err := s.DeleteUser(c.Request.Context(), caller(c, s), c.Param("id")); err != nil {
			return err
		}
		noContent(c, http.StatusNoContent)
		return nil
	})
}
