package httpapi

import (
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/acme/customer-platform/customer"
	"github.com/acme/customer-platform/internal/contract"
	"github.com/acme/customer-platform/internal/web"
)

// IdempotencyKeyHeader makes a retried increment_service count once.
const IdempotencyKeyHeader = "Idempotency-Key"

// actor returns the authenticated caller; the routes are registered behind
// authenticate, so its absence is a wiring fault.
func actor(c *gin.Context) (customer.Actor, bool) {
	a, ok := actorFrom(c.Request.Context())
	if !ok {
		web.Respond(c, web.Errorf(web.CodeNotAuthenticated, "Authentication credentials were not provided."))
	}
	return a, ok
}

// readProfile reads and decodes a profile body.
func readProfile(c *gin.Context, o decodeOptions) (profileRequest, bool) {
	obj, err := web.ReadObject(c, true)
	if err != nil {
		web.Respond(c, err)
		return profileRequest{}, false
	}
	req, fe := decodeProfile(obj, o)
	if err := fe.Err(); err != nil {
		respondError(c, err)
		return profileRequest{}, false
	}
	return req, true
}

// readEmpty reads a body that must not carry any member.
func readEmpty(c *gin.Context) bool {
	obj, err := web.ReadObject(c, true)
	if err != nil {
		web.Respond(c, err)
		return false
	}
	if len(obj) > 0 {
		fe := customer.FieldErrors{}
		for name := range obj {
			fe.Add(fieldName(name), customer.MsgUnknown)
		}
		respondError(c, fe.Err())
		return false
	}
	return true
}

func handleCreateProfile(s *customer.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		a, ok := actor(c)
		if !ok {
			return
		}
		if a.Role != contract.RoleCustomer {
			respondError(c, customer.ErrForbidden)
			return
		}
		req, ok := readProfile(c, decodeOptions{})
		if !ok {
			return
		}
		cw, err := s.CreateOwn(c.Request.Context(), a, req.changes)
		if err != nil {
			respondError(c, err)
			return
		}
		c.JSON(http.StatusCreated, toCustomerResponse(cw))
	}
}

func handleCreateForUser(s *customer.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		a, ok := actor(c)
		if !ok {
			return
		}
		if !a.IsStaff() {
			respondError(c, customer.ErrForbidden)
			return
		}
		req, ok := readProfile(c, decodeOptions{verified: true, userID: true})
		if !ok {
			return
		}
		cw, err := s.CreateFor(c.Request.Context(), a, req.userID, req.changes)
		if err != nil {
			respondError(c, err)
			return
		}
		c.JSON(http.StatusCreated, toCustomerResponse(cw))
	}
}

func handleGetProfile(s *customer.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		a, ok := actor(c)
		if !ok {
			return
		}
		cw, err := s.Own(c.Request.Context(), a)
		if err != nil {
			respondError(c, err)
			return
		}
		c.JSON(http.StatusOK, toCustomerResponse(cw))
	}
}

func handleUpdateProfile(s *customer.Service, full bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		a, ok := actor(c)
		if !ok {
			return
		}
		req, ok := readProfile(c, decodeOptions{})
		if !ok {
			return
		}
		cw, err := s.UpdateOwn(c.Request.Context(), a, req.changes, full)
		if err != nil {
			respondError(c, err)
			return
		}
		c.JSON(http.StatusOK, toCustomerResponse(cw))
	}
}

func handleDeleteProfile(s *customer.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		a, ok := actor(c)
		if !ok {
			return
		}
		if err := s.DeleteOwn(c.Request.Context(), a); err != nil {
			respondError(c, err)
			return
		}
		c.Status(http.StatusNoContent)
	}
}

func handleCheckProfileExists(s *customer.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		a, ok := actor(c)
		if !ok {
			return
		}
		obj, err := web.ReadObject(c, true)
		if err != nil {
			web.Respond(c, err)
			return
		}
		userID, fe := decodeCheck(obj)
		if err := fe.Err(); err != nil {
			respondError(c, err)
			return
		}
		exists, id, err := s.CheckExists(c.Request.Context(), a, userID)
		if err != nil {
			respondError(c, err)
			return
		}
		out := existsResponse{Exists: exists}
		if exists {
			out.CustomerID = &id
		}
		c.JSON(http.StatusOK, out)
	}
}

func handleStats(s *customer.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		a, ok := actor(c)
		if !ok {
			return
		}
		st, err := s.Stats(c.Request.Context(), a)
		if err != nil {
			respondError(c, err)
			return
		}
		c.JSON(http.StatusOK, toStatsResponse(st))
	}
}

func handleList(s *customer.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		a, ok := actor(c)
		if !ok {
			return
		}
		f, fe := listFilter(c)
		if err := fe.Err(); err != nil {
			respondError(c, err)
			return
		}
		p, err := s.List(c.Request.Context(), a, f, pageRequest(c))
		if err != nil {
			respondError(c, err)
			return
		}
		c.JSON(http.StatusOK, toPageResponse(c, p, toCustomerResponse))
	}
}

func handleGet(s *customer.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		a, ok := actor(c)
		if !ok {
			return
		}
		cw, err := s.Get(c.Request.Context(), a, c.Param("id"))
		if err != nil {
			respondError(c, err)
			return
		}
		c.JSON(http.StatusOK, toCustomerResponse(cw))
	}
}

func handleUpdate(s *customer.Service, full bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		a, ok := actor(c)
		if !ok {
			return
		}
		req, ok := readProfile(c, decodeOptions{verified: a.IsStaff()})
		if !ok {
			return
		}
		cw, err := s.Update(c.Request.Context(), a, c.Param("id"), req.changes, full)
		if err != nil {
			respondError(c, err)
			return
		}
		c.JSON(http.StatusOK, toCustomerResponse(cw))
	}
}

func handleDelete(s *customer.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		a, ok := actor(c)
		if !ok {
			return
		}
		if err := s.Delete(c.Request.Context(), a, c.Param("id")); err != nil {
			respondError(c, err)
			return
		}
		c.Status(http.StatusNoContent)
	}
}

func handleIncrementService(s *customer.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		a, ok := actor(c)
		if !ok {
			return
		}
		if a.Role == contract.RoleCustomer {
			respondError(c, customer.ErrForbidden)
			return
		}
		obj, err := web.ReadObject(c, true)
		if err != nil {
			web.Respond(c, err)
			return
		}
		in, fe := decodeService(obj)
		if err := fe.Err(); err != nil {
			respondError(c, err)
			return
		}
		cw, err := s.IncrementService(c.Request.Context(), a, c.Param("id"), in, c.GetHeader(IdempotencyKeyHeader))
		if err != nil {
			respondError(c, err)
			return
		}
		c.JSON(http.StatusOK, toCustomerResponse(cw))
	}
}

func handleServices(s *customer.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		a, ok := actor(c)
		if !ok {
			return
		}
		p, err := s.Services(c.Request.Context(), a, c.Param("id"), pageRequest(c))
		if err != nil {
			respondError(c, err)
			return
		}
		c.JSON(http.StatusOK, toPageResponse(c, p, toServiceResponse))
	}
}

func handleVerify(s *customer.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		a, ok := actor(c)
		if !ok {
			return
		}
		if !a.IsStaff() {
			respondError(c, customer.ErrForbidden)
			return
		}
		if !readEmpty(c) {
			return
		}
		cw, err := s.Verify(c.Request.Context(), a, c.Param("id"))
		if err != nil {
			respondError(c, err)
			return
		}
		c.JSON(http.StatusOK, toCustomerResponse(cw))
	}
}

// query returns the last value of a query parameter, as Django's QueryDict does.
func query(c *gin.Context, key string) string {
	vs := c.QueryArray(key)
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// pageRequest reads ?page= and ?page_size= as DRF's PageNumberPagination
// does: a page that is not a positive integer (or "last") is an invalid page
// (404); a page_size that is not a positive integer is the default, one over
// the maximum is the maximum.
func pageRequest(c *gin.Context) customer.PageRequest {
	pr := customer.PageRequest{Number: 1, Size: customer.DefaultPageSize}
	if p := query(c, "page"); p != "" {
		if p == "last" {
			pr.Last = true
		} else if n, err := strconv.Atoi(p); err == nil {
			pr.Number = n
		} else {
			pr.Number = 0 // not a page: the service answers ErrInvalidPage
		}
	}
	if v := query(c, "page_size"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			pr.Size = min(n, customer.MaxPageSize)
		}
	}
	return pr
}

// listFilter reads the listing's filters.
func listFilter(c *gin.Context) (customer.Filter, customer.FieldErrors) {
	fe := customer.FieldErrors{}
	f := customer.Filter{
		City:         query(c, "city"),
		State:        query(c, "state"),
		Country:      query(c, "country"),
		BusinessType: query(c, "business_type"),
		Search:       query(c, "search"),
	}
	switch v := query(c, "is_verified"); v {
	case "":
	case "true", "True", "1":
		yes := true
		f.IsVerified = &yes
	case "false", "False", "0":
		no := false
		f.IsVerified = &no
	default:
		fe.Add(customer.FieldIsVerified, customer.MsgNotBool)
	}
	return f, fe
}
