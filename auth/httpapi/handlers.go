package httpapi

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/acme/customer-platform/auth"
	"github.com/acme/customer-platform/internal/web"
)

// readFields reads the JSON object body (413, 415 and 400 on bad bodies).
func readFields(c *gin.Context, allowEmpty bool) (*fields, bool) {
	raw, err := web.ReadObject(c, allowEmpty)
	if err != nil {
		web.Respond(c, err)
		return nil, false
	}
	return newFields(raw), true
}

// caller returns the authenticated principal; the middleware guarantees it.
func caller(c *gin.Context) auth.Principal {
	p, _ := principalFrom(c.Request.Context())
	return p
}

func noContent(c *gin.Context, status int) {
	c.Status(status)
	c.Writer.WriteHeaderNow()
}

func handleRegister(s *auth.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		f, ok := readFields(c, false)
		if !ok {
			return
		}
		in := auth.RegisterInput{
			Email: f.str("email"), FirstName: f.str("first_name"), LastName: f.str("last_name"),
			PhoneNumber: f.str("phone_number"), Password1: f.str("password1"), Password2: f.str("password2"),
		}
		if len(f.errs) > 0 {
			v := auth.Fields{}
			in.Validate(s.Rules(), v)
			respond(c, f.merge(v.Err()))
			return
		}
		res, err := s.Register(c.Request.Context(), in, c.ClientIP())
		if err != nil {
			respond(c, err)
			return
		}
		c.JSON(http.StatusCreated, toUserWithTokens(res))
	}
}

func handleLogin(s *auth.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		f, ok := readFields(c, false)
		if !ok {
			return
		}
		in := auth.LoginInput{Email: f.str("email"), Password: f.str("password")}
		if len(f.errs) > 0 {
			respond(c, f.errs.Err())
			return
		}
		res, err := s.Login(c.Request.Context(), in, c.ClientIP())
		if err != nil {
			respond(c, err)
			return
		}
		c.JSON(http.StatusOK, toUserWithTokens(res))
	}
}

func handleRefresh(s *auth.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		f, ok := readFields(c, false)
		if !ok {
			return
		}
		refresh := f.str("refresh")
		if len(f.errs) > 0 {
			respond(c, f.errs.Err())
			return
		}
		pair, err := s.Refresh(c.Request.Context(), refresh)
		if err != nil {
			respond(c, err)
			return
		}
		c.JSON(http.StatusOK, tokensJSON{Access: pair.Access, Refresh: pair.Refresh})
	}
}

func handleServiceToken(s *auth.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		f, ok := readFields(c, false)
		if !ok {
			return
		}
		in := auth.ServiceTokenInput{ClientID: f.str("client_id"), ClientSecret: f.str("client_secret")}
		if len(f.errs) > 0 {
			respond(c, f.errs.Err())
			return
		}
		t, err := s.ServiceToken(c.Request.Context(), in, c.ClientIP())
		if err != nil {
			respond(c, err)
			return
		}
		c.JSON(http.StatusOK, serviceTokenJSON{
			Access: t.Access, TokenType: "Bearer",
			ExpiresIn: int64(time.Until(t.ExpiresAt).Round(time.Second) / time.Second),
		})
	}
}

func handleLogout(s *auth.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		p := caller(c)
		if p.IsService() {
			respond(c, auth.ErrForbidden)
			return
		}
		f, ok := readFields(c, false)
		if !ok {
			return
		}
		refresh := f.str("refresh")
		if len(f.errs) > 0 {
			respond(c, f.errs.Err())
			return
		}
		if err := s.Logout(c.Request.Context(), p, refresh); err != nil {
			respond(c, err)
			return
		}
		noContent(c, http.StatusResetContent)
	}
}

func handleProfile(s *auth.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		u, err := s.Profile(c.Request.Context(), caller(c))
		if err != nil {
			respond(c, err)
			return
		}
		c.JSON(http.StatusOK, toUserJSON(u))
	}
}

func handleUpdateProfile(s *auth.Service) gin.HandlerFunc {
	updatable := []string{"email", "first_name", "last_name", "phone_number"}
	readOnlyOnUsers := []string{"id", "user_role", "date_joined", "password", "password1", "password2", "tokens"}
	return func(c *gin.Context) {
		p := caller(c)
		if p.IsService() {
			respond(c, auth.ErrForbidden)
			return
		}
		f, ok := readFields(c, true)
		if !ok {
			return
		}
		f.only(updatable, readOnlyOnUsers)
		in := auth.ProfileUpdate{
			Email: f.str("email"), FirstName: f.str("first_name"),
			LastName: f.str("last_name"), PhoneNumber: f.str("phone_number"),
		}
		if len(f.errs) > 0 {
			v := auth.Fields{}
			in.Validate(v)
			respond(c, f.merge(v.Err()))
			return
		}
		u, err := s.UpdateProfile(c.Request.Context(), p, in)
		if err != nil {
			respond(c, err)
			return
		}
		c.JSON(http.StatusOK, toUserJSON(u))
	}
}

func handleDeleteSelf(s *auth.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := s.DeleteSelf(c.Request.Context(), caller(c)); err != nil {
			respond(c, err)
			return
		}
		noContent(c, http.StatusNoContent)
	}
}

func handleGetUser(s *auth.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		u, err := s.GetUser(c.Request.Context(), caller(c), c.Param("id"))
		if err != nil {
			respond(c, err)
			return
		}
		c.JSON(http.StatusOK, toUserJSON(u))
	}
}

func handleFindUsers(s *auth.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		var email *string
		if v, ok := c.GetQuery("email"); ok {
			email = &v
		}
		users, err := s.FindByEmail(c.Request.Context(), caller(c), email)
		if err != nil {
			respond(c, err)
			return
		}
		out := userListJSON{Count: len(users), Results: make([]userJSON, 0, len(users))}
		for _, u := range users {
			out.Results = append(out.Results, toUserJSON(u))
		}
		c.JSON(http.StatusOK, out)
	}
}

func handleCreateUser(s *auth.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		p := caller(c)
		f, ok := readFields(c, false)
		if !ok {
			return
		}
		in := auth.CreateUserInput{
			Email: f.str("email"), FirstName: f.str("first_name"), LastName: f.str("last_name"),
			PhoneNumber: f.str("phone_number"), Role: f.str("user_role"), Password: f.str("password"),
		}
		if len(f.errs) > 0 {
			if err := auth.AuthorizeCreateUser(p, in.Role != nil); err != nil {
				respond(c, err)
				return
			}
			v := auth.Fields{}
			in.Validate(s.Rules(), v)
			respond(c, f.merge(v.Err()))
			return
		}
		u, err := s.CreateUser(c.Request.Context(), p, in)
		if err != nil {
			respond(c, err)
			return
		}
		c.JSON(http.StatusCreated, toUserJSON(u))
	}
}

func handleDeleteUser(s *auth.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := s.DeleteUser(c.Request.Context(), caller(c), c.Param("id")); err != nil {
			respond(c, err)
			return
		}
		noContent(c, http.StatusNoContent)
	}
}
