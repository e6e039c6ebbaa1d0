package httpapi

import (
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/acme/customer-platform/customer"
)

// timeLayout is how timestamps are written: RFC 3339 in UTC with
// microseconds, as Django REST framework writes them.
const timeLayout = "2006-01-02T15:04:05.000000Z07:00"

func timestamp(t time.Time) string { return t.UTC().Format(timeLayout) }

func optionalTimestamp(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := timestamp(*t)
	return &s
}

// customerResponse is the contract's customer JSON with the user data merged in.
type customerResponse struct {
	ID                           string          `json:"id"`
	UserID                       string          `json:"user_id"`
	Email                        *string         `json:"email"`
	FirstName                    *string         `json:"first_name"`
	LastName                     *string         `json:"last_name"`
	PhoneNumber                  *string         `json:"phone_number"`
	StreetAddress                string          `json:"street_address"`
	City                         string          `json:"city"`
	State                        string          `json:"state"`
	PostalCode                   string          `json:"postal_code"`
	Country                      string          `json:"country"`
	CompanyName                  string          `json:"company_name"`
	BusinessType                 string          `json:"business_type"`
	TaxID                        string          `json:"tax_id"`
	EmergencyContactName         string          `json:"emergency_contact_name"`
	EmergencyContactPhone        string          `json:"emergency_contact_phone"`
	EmergencyContactRelationship string          `json:"emergency_contact_relationship"`
	PreferredContactMethod       string          `json:"preferred_contact_method"`
	NotificationPreferences      map[string]bool `json:"notification_preferences"`
	IsVerified                   bool            `json:"is_verified"`
	CustomerSince                string          `json:"customer_since"`
	TotalServices                int             `json:"total_services"`
	LastServiceDate              *string         `json:"last_service_date"`
	CreatedAt                    string          `json:"created_at"`
	UpdatedAt                    string          `json:"updated_at"`
}

// toCustomerResponse converts a merged profile to its JSON.
func toCustomerResponse(cw customer.CustomerWithUserData) customerResponse {
	c := cw.Customer
	prefs := c.NotificationPreferences
	if prefs == nil {
		prefs = map[string]bool{}
	}
	return customerResponse{
		ID:                           c.ID,
		UserID:                       c.UserID,
		Email:                        cw.User.Email,
		FirstName:                    cw.User.FirstName,
		LastName:                     cw.User.LastName,
		PhoneNumber:                  cw.User.PhoneNumber,
		StreetAddress:                c.StreetAddress,
		City:                         c.City,
		State:                        c.State,
		PostalCode:                   c.PostalCode,
		Country:                      c.Country,
		CompanyName:                  c.CompanyName,
		BusinessType:                 c.BusinessType,
		TaxID:                        c.TaxID,
		EmergencyContactName:         c.EmergencyContact.Name,
		EmergencyContactPhone:        c.EmergencyContact.Phone,
		EmergencyContactRelationship: c.EmergencyContact.Relationship,
		PreferredContactMethod:       c.PreferredContactMethod,
		NotificationPreferences:      prefs,
		IsVerified:                   c.IsVerified,
		CustomerSince:                timestamp(c.CustomerSince),
		TotalServices:                c.TotalServices,
		LastServiceDate:              optionalTimestamp(c.LastServiceDate),
		CreatedAt:                    timestamp(c.CreatedAt),
		UpdatedAt:                    timestamp(c.UpdatedAt),
	}
}

// serviceResponse is the JSON of a service record.
type serviceResponse struct {
	ID          string `json:"id"`
	CustomerID  string `json:"customer_id"`
	ServiceType string `json:"service_type"`
	Notes       string `json:"notes"`
	PerformedAt string `json:"performed_at"`
	RecordedBy  string `json:"recorded_by"`
	CreatedAt   string `json:"created_at"`
}

func toServiceResponse(r customer.ServiceRecord) serviceResponse {
	return serviceResponse{
		ID:          r.ID,
		CustomerID:  r.CustomerID,
		ServiceType: r.ServiceType,
		Notes:       r.Notes,
		PerformedAt: timestamp(r.PerformedAt),
		RecordedBy:  r.RecordedBy,
		CreatedAt:   timestamp(r.CreatedAt),
	}
}

// existsResponse answers check_profile_exists.
type existsResponse struct {
	Exists     bool    `json:"exists"`
	CustomerID *string `json:"customer_id"`
}

// allStatsResponse is the staff's stats JSON.
type allStatsResponse struct {
	Scope              string         `json:"scope"`
	TotalCustomers     int            `json:"total_customers"`
	VerifiedCustomers  int            `json:"verified_customers"`
	BusinessCustomers  int            `json:"business_customers"`
	CustomersByCountry map[string]int `json:"customers_by_country"`
	TotalServices      int            `json:"total_services"`
	NewLast30Days      int            `json:"new_last_30_days"`
}

// selfStatsResponse is a customer's own stats JSON.
type selfStatsResponse struct {
	Scope           string  `json:"scope"`
	CustomerSince   string  `json:"customer_since"`
	TotalServices   int     `json:"total_services"`
	LastServiceDate *string `json:"last_service_date"`
	IsVerified      bool    `json:"is_verified"`
}

func toStatsResponse(r customer.StatsResult) any {
	if r.Self != nil {
		return selfStatsResponse{
			Scope:           "self",
			CustomerSince:   timestamp(r.Self.CustomerSince),
			TotalServices:   r.Self.TotalServices,
			LastServiceDate: optionalTimestamp(r.Self.LastServiceDate),
			IsVerified:      r.Self.IsVerified,
		}
	}
	byCountry := r.All.CustomersByCountry
	if byCountry == nil {
		byCountry = map[string]int{}
	}
	return allStatsResponse{
		Scope:              "all",
		TotalCustomers:     r.All.TotalCustomers,
		VerifiedCustomers:  r.All.VerifiedCustomers,
		BusinessCustomers:  r.All.BusinessCustomers,
		CustomersByCountry: byCountry,
		TotalServices:      r.All.TotalServices,
		NewLast30Days:      r.All.NewLast30Days,
	}
}

// pageResponse is a DRF page: the total count, links to the neighbouring
// pages (or null) and the page's items.
type pageResponse[T any] struct {
	Count    int     `json:"count"`
	Next     *string `json:"next"`
	Previous *string `json:"previous"`
	Results  []T     `json:"results"`
}

// pageLinks builds the links of a page: under the configured public base
// URL when there is one, relative (path and query) otherwise. Nothing of
// them comes from the request's Host or X-Forwarded-* headers, which a
// client chooses (issue 18: "Host: evil.example" yielded links to it).
type pageLinks struct {
	base string // PUBLIC_URL without a trailing slash, or ""
}

func newPageLinks(publicURL string) pageLinks {
	return pageLinks{base: strings.TrimRight(publicURL, "/")}
}

// toPageResponse converts a page, building its links from the request's
// path and query.
func toPageResponse[S, T any](c *gin.Context, l pageLinks, p customer.Page[S], conv func(S) T) pageResponse[T] {
	out := pageResponse[T]{Count: p.Total, Results: make([]T, len(p.Items))}
	for i, item := range p.Items {
		out.Results[i] = conv(item)
	}
	if p.HasNext() {
		u := l.page(c, p.Number+1)
		out.Next = &u
	}
	if p.HasPrevious() {
		u := l.page(c, p.Number-1)
		out.Previous = &u
	}
	return out
}

// page is the request's path and query with its page parameter set to n
// (removed for page 1), as DRF's PageNumberPagination builds it, under the
// public base URL when one is configured.
func (l pageLinks) page(c *gin.Context, n int) string {
	q := c.Request.URL.Query()
	if n == 1 {
		q.Del("page")
	} else {
		q.Set("page", strconv.Itoa(n))
	}
	u := url.URL{Path: c.Request.URL.Path, RawQuery: q.Encode()}
	return l.base + u.String()
}
