package httpapi

import (
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/acme/customer-platform/auth"
	"github.com/acme/customer-platform/internal/web"
)

// caller returns the authenticated principal; web.Bearer guarantees it on
// the routes that need one.
func caller(c *gin.Context) auth.Principal {
	cl, ok := web.CallerFrom(c.Request.Context())
	if !ok {
		return auth.Principal{}
	}
	return auth.Principal{UserID: cl.Claims.UserID, Role: cl.Claims.Role}
}

func noContent(c *gin.Context, status int) {
	c.Status(status)
	c.Writer.WriteHeaderNow()
}

// IdempotencyKeyHeader is the header of a registration whose value is
// stored with the user as its registration key.
const IdempotencyKeyHeader = "Idempotency-Key"

// registrationKey is the Idempotency-Key of a request, nil when it has
// none; several header lines are joined as one value (which the rules
// refuse, as the space is not a visible character).
func registrationKey(h http.Header) *string {
	vs := h.Values(IdempotencyKeyHeader)
	if len(vs) == 0 {
		return nil
	}
	k := strings.Join(vs, ", ")
	return &k
}

func handleRegister(s *auth.Service) gin.HandlerFunc {
	return responder.Handle(func(c *gin.Context) error {
		body, err := web.ReadObject(c, false)
		if err != nil {
			return err
		}
		in, err := auth.DecodeRegisterWithKey(body, registrationKey(c.Request.Header), s.Rules())
		if err != nil {
			return err
		}
		res, err := s.Register(c.Request.Context(), in, c.ClientIP())
		if err != nil {
			return err
		}
		c.JSON(http.StatusCreated, toUserWithTokens(res))
		return nil
	})
}

func handleLogin(s *auth.Service) gin.HandlerFunc {
	return responder.Handle(func(c *gin.Context) error {
		body, err := web.ReadObject(c, false)
		if err != nil {
			return err
		}
		in, err := auth.DecodeLogin(body)
		if err != nil {
			return err
		}
		res, err := s.Login(c.Request.Context(), in, c.ClientIP())
		if err != nil {
			return err
		}
		c.JSON(http.StatusOK, toUserWithTokens(res))
		return nil
	})
}

func handleRefresh(s *auth.Service) gin.HandlerFunc {
	return responder.Handle(func(c *gin.Context) error {
		body, err := web.ReadObject(c, false)
		if err != nil {
			return err
		}
		refresh, err := auth.DecodeRefresh(body)
		if err != nil {
			return err
		}
		pair, err := s.Refresh(c.Request.Context(), refresh)
		if err != nil {
			return err
		}
		c.JSON(http.StatusOK, tokensJSON{Access: pair.Access, Refresh: pair.Refresh})
		return nil
	})
}

func handleServiceToken(s *auth.Service) gin.HandlerFunc {
	return responder.Handle(func(c *gin.Context) error {
		body, err := web.ReadObject(c, false)
		if err != nil {
			return err
		}
		in, err := auth.DecodeServiceToken(body)
		if err != nil {
			return err
		}
		t, err := s.ServiceToken(c.Request.Context(), in, c.ClientIP())
		if err != nil {
			return err
		}
		c.JSON(http.StatusOK, serviceTokenJSON{
			Access: t.Access, TokenType: "Bearer",
			ExpiresIn: int64(time.Until(t.ExpiresAt).Round(time.Second) / time.Second),
		})
		return nil
	})
}

func handleLogout(s *auth.Service) gin.HandlerFunc {
	return responder.Handle(func(c *gin.Context) error {
		p := caller(c)
		if p.IsService() {
			return auth.ErrForbidden
		}
		body, err := web.ReadObject(c, false)
		if err != nil {
			return err
		}
		refresh, err := auth.DecodeRefresh(body)
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
		u, err := s.Profile(c.Request.Context(), caller(c))
		if err != nil {
			return err
		}
		c.JSON(http.StatusOK, toUserJSON(u))
		return nil
	})
}

func handleUpdateProfile(s *auth.Service) gin.HandlerFunc {
	return responder.Handle(func(c *gin.Context) error {
		p := caller(c)
		if p.IsService() {
			return auth.ErrForbidden
		}
		body, err := web.ReadObject(c, true)
		if err != nil {
			return err
		}
		in, err := auth.DecodeProfileUpdate(body, nil)
		if err != nil {
			return err
		}
		u, err := s.UpdateProfile(c.Request.Context(), p, in)
		if err != nil {
			return err
		}
		c.JSON(http.StatusOK, toUserJSON(u))
		return nil
	})
}

func handleDeleteSelf(s *auth.Service) gin.HandlerFunc {
	return responder.Handle(func(c *gin.Context) error {
		if err := s.DeleteSelf(c.Request.Context(), caller(c)); err != nil {
			return err
		}
		noContent(c, http.StatusNoContent)
		return nil
	})
}

func handleGetUser(s *auth.Service) gin.HandlerFunc {
	return responder.Handle(func(c *gin.Context) error {
		u, err := s.GetUser(c.Request.Context(), caller(c), c.Param("id"))
		if err != nil {
			return err
		}
		c.JSON(http.StatusOK, toStaffUserJSON(u))
		return nil
	})
}

func handleFindUsers(s *auth.Service) gin.HandlerFunc {
	return responder.Handle(func(c *gin.Context) error {
		var email *string
		if v, ok := c.GetQuery("email"); ok {
			email = &v
		}
		users, err := s.FindByEmail(c.Request.Context(), caller(c), email)
		if err != nil {
			return err
		}
		c.JSON(http.StatusOK, toUserList(users))
		return nil
	})
}

func handleCreateUser(s *auth.Service) gin.HandlerFunc {
	return responder.Handle(func(c *gin.Context) error {
		p := caller(c)
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
		u, err := s.CreateUser(c.Request.Context(), p, in)
		if err != nil {
			return err
		}
		c.JSON(http.StatusCreated, toUserJSON(u))
		return nil
	})
}

func handleDeleteUser(s *auth.Service) gin.HandlerFunc {
	return responder.Handle(func(c *gin.Context) error {
		if err := s.DeleteUser(c.Request.Context(), caller(c), c.Param("id")); err != nil {
			return err
		}
		noContent(c, http.StatusNoContent)
		return nil
	})
}
