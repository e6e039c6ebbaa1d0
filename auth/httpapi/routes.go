// Package httpapi is the auth service's Gin adapter: every route of the
// contract's auth section, thin handlers that decode, call the auth.Service
// and encode, the bearer-token middleware and the one table mapping the
// domain's errors to the contract's answers.
package httpapi

import (
	"github.com/gin-gonic/gin"

	"github.com/acme/customer-platform/auth"
	"github.com/acme/customer-platform/authclient"
)

// Routes registers every route of the auth service on r.
func Routes(r gin.IRouter, s *auth.Service, v *authclient.Verifier) {
	bearer := authenticate(v)
	r.GET("/openapi.json", handleOpenAPI)
	g := r.Group("/api/auth")

	g.POST("/register/", handleRegister(s))
	g.POST("/login/", handleLogin(s))
	g.POST("/token/refresh/", handleRefresh(s))
	g.POST("/token/service/", handleServiceToken(s))

	g.POST("/logout/", bearer, handleLogout(s))
	g.GET("/profile/", bearer, handleProfile(s))
	g.PATCH("/profile/update/", bearer, handleUpdateProfile(s))
	g.DELETE("/profile/delete/", bearer, handleDeleteSelf(s))

	g.GET("/users/", bearer, handleFindUsers(s))
	g.POST("/users/", bearer, handleCreateUser(s))
	g.GET("/users/:id/", bearer, handleGetUser(s))
	g.DELETE("/users/:id/", bearer, handleDeleteUser(s))
}
