package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/acme/customer-platform/customer"
	"github.com/acme/customer-platform/internal/contract"
	"github.com/acme/customer-platform/internal/web"
)

// IdempotencyKeyHeader makes a retried increment_service count once.
const IdempotencyKeyHeader = "Idempotency-Key"

// handle makes a route handler of h: h gets the caller web.Bearer verified,
// writes only its success and returns its error to the one responder.
func handle(h func(c *gin.Context, a customer.Actor) error) gin.HandlerFunc {
	return responder.Handle(func(c *gin.Context) error {
		a, err := actor(c)
		if err != nil {
			return err
		}
		return h(c, a)
	})
}

// readObject reads a JSON object body (an empty body is an empty object).
func readObject(c *gin.Context) (map[string]json.RawMessage, error) {
	return web.ReadObject(c, true)
}

// readProfile reads and decodes a profile body.
func readProfile(c *gin.Context, o customer.DecodeOptions) (customer.ProfileBody, error) {
	obj, err := readObject(c)
	if err != nil {
		return customer.ProfileBody{}, err
	}
	body, fe := customer.DecodeProfile(obj, o)
	return body, fe.Err()
}

// readEmpty reads a body that must not carry any member.
func readEmpty(c *gin.Context) error {
	obj, err := readObject(c)
	if err != nil {
		return err
	}
	fe := customer.FieldErrors{}
	for name := range obj {
		fe.AddUnknown(name)
	}
	return fe.Err()
}

// writeCustomer answers with a merged profile.
func writeCustomer(c *gin.Context, status int, cw customer.CustomerWithUserData) error {
	c.JSON(status, toCustomerResponse(cw))
	return nil
}

func handleCreateProfile(s *customer.Service) gin.HandlerFunc {
	return handle(func(c *gin.Context, a customer.Actor) error {
		if a.Role != contract.RoleCustomer {
			return customer.ErrForbidden
		}
		req, err := readProfile(c, customer.DecodeOptions{})
		if err != nil {
			return err
		}
		cw, err := s.CreateOwn(c.Request.Context(), a, req.Changes)
		if err != nil {
			return err
		}
		return writeCustomer(c, http.StatusCreated, cw)
	})
}

func handleCreateForUser(s *customer.Service) gin.HandlerFunc {
	return handle(func(c *gin.Context, a customer.Actor) error {
		if !a.IsStaff() {
			return customer.ErrForbidden
		}
		req, err := readProfile(c, customer.DecodeOptions{Verified: true, UserID: true})
		if err != nil {
			return err
		}
		cw, err := s.CreateFor(c.Request.Context(), a, req.UserID, req.Changes)
		if err != nil {
			return err
		}
		return writeCustomer(c, http.StatusCreated, cw)
	})
}

func handleGetProfile(s *customer.Service) gin.HandlerFunc {
	return handle(func(c *gin.Context, a customer.Actor) error {
		o, err := readOptions(c)
		if err != nil {
			return err
		}
		cw, err := s.Own(c.Request.Context(), a, o)
		if err != nil {
			return err
		}
		return writeCustomer(c, http.StatusOK, cw)
	})
}

func handleUpdateProfile(s *customer.Service, full bool) gin.HandlerFunc {
	return handle(func(c *gin.Context, a customer.Actor) error {
		req, err := readProfile(c, customer.DecodeOptions{})
		if err != nil {
			return err
		}
		cw, err := s.UpdateOwn(c.Request.Context(), a, req.Changes, full)
		if err != nil {
			return err
		}
		return writeCustomer(c, http.StatusOK, cw)
	})
}

func handleDeleteProfile(s *customer.Service) gin.HandlerFunc {
	return handle(func(c *gin.Context, a customer.Actor) error {
		if err := s.DeleteOwn(c.Request.Context(), a); err != nil {
			return err
		}
		c.Status(http.StatusNoContent)
		return nil
	})
}

func handleCheckProfileExists(s *customer.Service) gin.HandlerFunc {
	return handle(func(c *gin.Context, a customer.Actor) error {
		obj, err := readObject(c)
		if err != nil {
			return err
		}
		userID, fe := customer.DecodeCheckExists(obj)
		if err := fe.Err(); err != nil {
			return err
		}
		exists, id, err := s.CheckExists(c.Request.Context(), a, userID)
		if err != nil {
			return err
		}
		out := existsResponse{Exists: exists}
		if exists {
			out.CustomerID = &id
		}
		c.JSON(http.StatusOK, out)
		return nil
	})
}

func handleStats(s *customer.Service) gin.HandlerFunc {
	return handle(func(c *gin.Context, a customer.Actor) error {
		st, err := s.Stats(c.Request.Context(), a)
		if err != nil {
			return err
		}
		c.JSON(http.StatusOK, toStatsResponse(st))
		return nil
	})
}

func handleList(s *customer.Service, l pageLinks) gin.HandlerFunc {
	return handle(func(c *gin.Context, a customer.Actor) error {
		f, fe := listFilter(c)
		if err := fe.Err(); err != nil {
			return err
		}
		p, err := s.List(c.Request.Context(), a, f, pageRequest(c))
		if err != nil {
			return err
		}
		c.JSON(http.StatusOK, toPageResponse(c, l, p, toCustomerResponse))
		return nil
	})
}

func handleGet(s *customer.Service) gin.HandlerFunc {
	return handle(func(c *gin.Context, a customer.Actor) error {
		o, err := readOptions(c)
		if err != nil {
			return err
		}
		cw, err := s.Get(c.Request.Context(), a, c.Param("id"), o)
		if err != nil {
			return err
		}
		return writeCustomer(c, http.StatusOK, cw)
	})
}

func handleUpdate(s *customer.Service, full bool) gin.HandlerFunc {
	return handle(func(c *gin.Context, a customer.Actor) error {
		req, err := readProfile(c, customer.DecodeOptions{Verified: a.IsStaff()})
		if err != nil {
			return err
		}
		cw, err := s.Update(c.Request.Context(), a, c.Param("id"), req.Changes, full)
		if err != nil {
			return err
		}
		return writeCustomer(c, http.StatusOK, cw)
	})
}

func handleDelete(s *customer.Service) gin.HandlerFunc {
	return handle(func(c *gin.Context, a customer.Actor) error {
		if err := s.Delete(c.Request.Context(), a, c.Param("id")); err != nil {
			return err
		}
		c.Status(http.StatusNoContent)
		return nil
	})
}

func handleIncrementService(s *customer.Service) gin.HandlerFunc {
	return handle(func(c *gin.Context, a customer.Actor) error {
		if a.Role == contract.RoleCustomer {
			return customer.ErrForbidden
		}
		obj, err := readObject(c)
		if err != nil {
			return err
		}
		in, fe := customer.DecodeService(obj)
		if err := fe.Err(); err != nil {
			return err
		}
		cw, err := s.IncrementService(c.Request.Context(), a, c.Param("id"), in, c.GetHeader(IdempotencyKeyHeader))
		if err != nil {
			return err
		}
		return writeCustomer(c, http.StatusOK, cw)
	})
}

func handleServices(s *customer.Service, l pageLinks) gin.HandlerFunc {
	return handle(func(c *gin.Context, a customer.Actor) error {
		p, err := s.Services(c.Request.Context(), a, c.Param("id"), pageRequest(c))
		if err != nil {
			return err
		}
		c.JSON(http.StatusOK, toPageResponse(c, l, p, toServiceResponse))
		return nil
	})
}

func handleVerify(s *customer.Service) gin.HandlerFunc {
	return handle(func(c *gin.Context, a customer.Actor) error {
		if !a.IsStaff() {
			return customer.ErrForbidden
		}
		if err := readEmpty(c); err != nil {
			return err
		}
		cw, err := s.Verify(c.Request.Context(), a, c.Param("id"))
		if err != nil {
			return err
		}
		return writeCustomer(c, http.StatusOK, cw)
	})
}

// query returns the last value of a query parameter, as Django's QueryDict does.
func query(c *gin.Context, key string) string {
	vs := c.QueryArray(key)
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// ParamIncludeUser is the query parameter of the profile reads (GET
// profile/ and GET <id>/) that leaves the user data out: include_user=false
// answers the same members with email, first_name, last_name and
// phone_number null and does not call the auth service (the BFF, which
// loads the user itself, asks so). The default is true.
const ParamIncludeUser = "include_user"

// readOptions reads ?include_user=: absent or "true" merges the user data,
// "false" leaves it out, anything else (the last value counting, as in
// query) is a 400 naming the parameter.
func readOptions(c *gin.Context) (customer.ReadOptions, error) {
	vs, ok := c.GetQueryArray(ParamIncludeUser)
	if !ok {
		return customer.ReadOptions{}, nil
	}
	switch vs[len(vs)-1] {
	case "true":
		return customer.ReadOptions{}, nil
	case "false":
		return customer.ReadOptions{WithoutUser: true}, nil
	}
	return customer.ReadOptions{}, customer.FieldErrors{ParamIncludeUser: {customer.MsgNotBool}}.Err()
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
