// Package httpapi is the customer service's HTTP API on Gin: every route of
// the contract's customer section, bearer-token authentication, strict
// decoding of request bodies and the DRF-shaped answers.
package httpapi

import (
	"github.com/gin-gonic/gin"

	"github.com/acme/customer-platform/customer"
)

// Prefix is where the customer API lives.
const Prefix = "/api/v1/customers"

// Routes registers every route of the customer API on r, and its OpenAPI
// document at /openapi.json. Every API route needs a valid access token.
func Routes(r gin.IRouter, s *customer.Service, v Verifier) {
	r.GET("/openapi.json", handleOpenAPI)
	g := r.Group(Prefix, authenticate(v))

	g.POST("/profile/create/", handleCreateProfile(s))
	g.GET("/profile/", handleGetProfile(s))
	g.PATCH("/profile/update/", handleUpdateProfile(s, false))
	g.PUT("/profile/update/", handleUpdateProfile(s, true))
	g.DELETE("/profile/delete/", handleDeleteProfile(s))

	g.POST("/check_profile_exists/", handleCheckProfileExists(s))
	g.GET("/stats/", handleStats(s))

	g.GET("/", handleList(s))
	g.POST("/", handleCreateForUser(s))

	g.GET("/:id/", handleGet(s))
	g.PATCH("/:id/", handleUpdate(s, false))
	g.PUT("/:id/", handleUpdate(s, true))
	g.DELETE("/:id/", handleDelete(s))
	g.POST("/:id/increment_service/", handleIncrementService(s))
	g.GET("/:id/services/", handleServices(s))
	g.POST("/:id/verify/", handleVerify(s))
}
