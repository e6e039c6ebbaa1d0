package customer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/acme/customer-platform/internal/contract"
)

// Page sizes of the listings.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
)

// DefaultUserLookups bounds how many users a listing fetches at once.
const DefaultUserLookups = 8

// PageRequest asks for one page: Number counts from 1; Last asks for the
// last page whatever its number.
type PageRequest struct {
	Number int
	Size   int
	Last   bool
}

// Page is one page of a listing.
type Page[T any] struct {
	Items  []T
	Total  int
	Number int
	Size   int
}

// HasNext reports whether a page follows this one.
func (p Page[T]) HasNext() bool { return p.Number*p.Size < p.Total }

// HasPrevious reports whether a page precedes this one.
func (p Page[T]) HasPrevious() bool { return p.Number > 1 }

// Options tune a Service; zero values take the defaults.
type Options struct {
	Now         func() time.Time // the clock (default time.Now)
	NewID       func() string    // id generator of service records (default random UUID v4)
	UserLookups int              // concurrent user fetches of a listing (default 8)
	// UserTimeout bounds all the user fetches of one answer together
	// (0: only the directory's own per-call bound applies).
	UserTimeout time.Duration
	Logger      *slog.Logger // default slog.Default()
}

// Service holds the business rules of customer profiles.
type Service struct {
	store   Store
	users   Users
	pub     Publisher
	now     func() time.Time
	newID   func() string
	lookups int
	timeout time.Duration
	log     *slog.Logger
	stats   *statsFlights
}

// NewService returns a Service over its store, the user directory and the
// change publisher (nil: changes are not published).
func NewService(store Store, users Users, pub Publisher, o Options) *Service {
	s := &Service{store: store, users: users, pub: pub, now: o.Now, newID: o.NewID, lookups: o.UserLookups, timeout: o.UserTimeout, log: o.Logger, stats: &statsFlights{}}
	if s.now == nil {
		s.now = time.Now
	}
	if s.newID == nil {
		s.newID = contract.NewID
	}
	if s.lookups <= 0 {
		s.lookups = DefaultUserLookups
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	return s
}

// clock returns the current time in UTC at the database's precision.
func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Millisecond) }

func (s *Service) publish(ctx context.Context, c Customer, op string) {
	if s.pub != nil {
		s.pub.Publish(ctx, Change{UserID: c.UserID, CustomerID: c.ID, Op: op})
	}
}

// CreateOwn creates the caller's own profile (customers only).
func (s *Service) CreateOwn(ctx context.Context, a Actor, ch Changes) (CustomerWithUserData, error) {
	if a.Role != contract.RoleCustomer {
		return CustomerWithUserData{}, ErrForbidden
	}
	c, err := ValidateCreate(ch)
	if err != nil {
		return CustomerWithUserData{}, err
	}
	c.UserID = a.UserID
	return s.create(ctx, a, c)
}

// CreateFor creates the profile of another user (employees and admins).
func (s *Service) CreateFor(ctx context.Context, a Actor, userID string, ch Changes) (CustomerWithUserData, error) {
	if !a.IsStaff() {
		return CustomerWithUserData{}, ErrForbidden
	}
	c, err := ValidateCreate(ch)
	fe := FieldErrors{}
	if ve, ok := errors.AsType[*contract.ValidationError](err); ok {
		fe = ve.Fields
	} else if err != nil {
		return CustomerWithUserData{}, err
	}
	switch {
	case userID == "":
		fe.Add(FieldUserID, MsgRequired)
	case !contract.ValidID(userID):
		fe.Add(FieldUserID, MsgInvalidUUID)
	}
	if err := fe.Err(); err != nil {
		return CustomerWithUserData{}, err
	}
	c.UserID = normalizeUUID(userID)
	cw, err := s.create(ctx, a, c)
	if errors.Is(err, ErrUserNotFound) && c.UserID != a.UserID {
		return CustomerWithUserData{}, FieldErrors{FieldUserID: {MsgNoSuchUser(userID)}}.Err()
	}
	return cw, err
}

// create stores a new profile once the auth service has confirmed that its
// user exists: a token outlives its account by minutes, and a profile
// created for a deleted user would stay forever. The user data of the
// answer comes from that same call. Without a confirmation nothing is
// stored: ErrUserNotFound when the auth service says the user is gone,
// ErrUserUnconfirmed when it could not be asked (the caller may retry; the
// BFF's registration compensates). A user deleted between the check and
// the insert is the deletion cascade's to remove (docs/design.md). The
// profile's id is ProfileID(user id), so a user's profile is read by id.
func (s *Service) create(ctx context.Context, a Actor, c Customer) (CustomerWithUserData, error) {
	u, err := s.confirmUser(ctx, a, c.UserID)
	if err != nil {
		return CustomerWithUserData{}, err
	}
	now := s.clock()
	c.ID = ProfileID(c.UserID)
	c.CustomerSince, c.CreatedAt, c.UpdatedAt = now, now, now
	if err := s.store.Create(ctx, c); err != nil {
		return CustomerWithUserData{}, err
	}
	s.publish(ctx, c, OpCreate)
	return CustomerWithUserData{Customer: c, User: s.userData(a, c, u)}, nil
}

// own reads the caller's own profile.
func (s *Service) own(ctx context.Context, a Actor) (Customer, error) {
	if !a.isUser() {
		return Customer{}, ErrForbidden
	}
	return s.store.ByUserID(ctx, a.UserID)
}

// ReadOptions tune a read of one profile; the zero value merges the user
// data in (CustomerWithUserData).
type ReadOptions struct {
	// WithoutUser leaves the user data out (its fields null) and does not
	// call the auth service: for a caller that has the user already, such
	// as the BFF's merged view (GET profile/?include_user=false).
	WithoutUser bool
}

// Own returns the caller's own profile, as o asks.
func (s *Service) Own(ctx context.Context, a Actor, o ReadOptions) (CustomerWithUserData, error) {
	c, err := s.own(ctx, a)
	if err != nil {
		return CustomerWithUserData{}, err
	}
	return s.read(ctx, a, c, o), nil
}

// UpdateOwn changes the caller's own profile; full (PUT) demands the
// required fields. A customer may not change is_verified.
func (s *Service) UpdateOwn(ctx context.Context, a Actor, ch Changes, full bool) (CustomerWithUserData, error) {
	c, err := s.own(ctx, a)
	if err != nil {
		return CustomerWithUserData{}, err
	}
	return s.update(ctx, a, c, ch, full)
}

// DeleteOwn deletes the caller's own profile.
func (s *Service) DeleteOwn(ctx context.Context, a Actor) error {
	c, err := s.own(ctx, a)
	if err != nil {
		return err
	}
	return s.delete(ctx, c)
}

// CheckExists reports whether a user has a profile, and its id. Without a
// userID it is the caller's own; only staff and services (holding
// ScopeRead) may ask about someone else.
func (s *Service) CheckExists(ctx context.Context, a Actor, userID string) (bool, string, error) {
	if userID == "" {
		userID = a.UserID
	} else {
		if !contract.ValidID(userID) {
			return false, "", FieldErrors{FieldUserID: {MsgInvalidUUID}}.Err()
		}
		userID = normalizeUUID(userID)
		if userID != a.UserID {
			if !a.staffReader() {
				return false, "", ErrForbidden
			}
			if err := a.permit(ScopeRead); err != nil {
				return false, "", err
			}
		}
	}
	c, err := s.store.ByUserID(ctx, userID)
	if errors.Is(err, ErrNotFound) {
		return false, "", nil
	}
	if err != nil {
		return false, "", err
	}
	return true, c.ID, nil
}

// visible reads a profile by id if the caller may see it: its owner, staff
// and services. Anyone else gets ErrNotFound, exactly as for a missing id.
func (s *Service) visible(ctx context.Context, a Actor, id string) (Customer, error) {
	if !contract.ValidID(id) {
		return Customer{}, ErrNotFound
	}
	c, err := s.store.ByID(ctx, normalizeUUID(id))
	if err != nil {
		return Customer{}, err
	}
	if !a.staffReader() && !a.owns(c) {
		return Customer{}, ErrNotFound
	}
	return c, nil
}

// Get returns a profile by id, as o asks (its owner, staff, services
// holding ScopeRead).
func (s *Service) Get(ctx context.Context, a Actor, id string, o ReadOptions) (CustomerWithUserData, error) {
	if err := a.permit(ScopeRead); err != nil {
		return CustomerWithUserData{}, err
	}
	c, err := s.visible(ctx, a, id)
	if err != nil {
		return CustomerWithUserData{}, err
	}
	return s.read(ctx, a, c, o), nil
}

// Update changes a profile by id (its owner, staff, services holding
// ScopeWrite). Only staff may change is_verified.
func (s *Service) Update(ctx context.Context, a Actor, id string, ch Changes, full bool) (CustomerWithUserData, error) {
	if err := a.permit(ScopeWrite); err != nil {
		return CustomerWithUserData{}, err
	}
	c, err := s.visible(ctx, a, id)
	if err != nil {
		return CustomerWithUserData{}, err
	}
	return s.update(ctx, a, c, ch, full)
}

func (s *Service) update(ctx context.Context, a Actor, c Customer, ch Changes, full bool) (CustomerWithUserData, error) {
	if ch.IsVerified != nil && !a.IsStaff() {
		return CustomerWithUserData{}, FieldErrors{FieldIsVerified: {MsgReadOnly}}.Err()
	}
	ch, err := ValidateUpdate(c, ch, full)
	if err != nil {
		return CustomerWithUserData{}, err
	}
	if ch.Empty() {
		return s.withUser(ctx, a, c), nil
	}
	updated, err := s.store.Update(ctx, c, ch, s.clock())
	if err != nil {
		return CustomerWithUserData{}, err
	}
	s.publish(ctx, updated, OpUpdate)
	return s.withUser(ctx, a, updated), nil
}

// Delete deletes a profile by id: its owner, an admin or a service
// holding ScopeDelete.
func (s *Service) Delete(ctx context.Context, a Actor, id string) error {
	if err := a.permit(ScopeDelete); err != nil {
		return err
	}
	c, err := s.visible(ctx, a, id)
	if err != nil {
		return err
	}
	if !a.owns(c) && a.Role != contract.RoleAdmin && a.Role != contract.RoleService {
		return ErrForbidden
	}
	return s.delete(ctx, c)
}

func (s *Service) delete(ctx context.Context, c Customer) error {
	if err := s.store.Delete(ctx, c); err != nil {
		return err
	}
	s.publish(ctx, c, OpDelete)
	return nil
}

// Verify marks a profile verified (employees and admins).
func (s *Service) Verify(ctx context.Context, a Actor, id string) (CustomerWithUserData, error) {
	if !a.IsStaff() {
		return CustomerWithUserData{}, ErrForbidden
	}
	c, err := s.visible(ctx, a, id)
	if err != nil {
		return CustomerWithUserData{}, err
	}
	yes := true
	updated, err := s.store.Update(ctx, c, Changes{IsVerified: &yes}, s.clock())
	if err != nil {
		return CustomerWithUserData{}, err
	}
	s.publish(ctx, updated, OpVerify)
	return s.withUser(ctx, a, updated), nil
}

// IncrementService records one service for a customer (staff, and services
// holding ScopeWrite).
// With an idempotency key, a retry of the same request records nothing more
// and answers the same; the same key with another request is
// ErrIdempotencyMismatch.
func (s *Service) IncrementService(ctx context.Context, a Actor, id string, in ServiceInput, key string) (CustomerWithUserData, error) {
	if !a.staffReader() {
		return CustomerWithUserData{}, ErrForbidden
	}
	if err := a.permit(ScopeWrite); err != nil {
		return CustomerWithUserData{}, err
	}
	now := s.clock()
	fe := FieldErrors{}
	if key != "" && !ValidIdempotencyKey(key) {
		fe.Add(FieldIdempotency, MsgIdempotency)
	}
	in, err := validateService(in, now)
	if ve, ok := errors.AsType[*contract.ValidationError](err); ok {
		for k, v := range ve.Fields {
			fe[k] = append(fe[k], v...)
		}
	}
	if err := fe.Err(); err != nil {
		return CustomerWithUserData{}, err
	}
	c, err := s.visible(ctx, a, id)
	if err != nil {
		return CustomerWithUserData{}, err
	}
	rec := ServiceRecord{
		ID:          s.newID(),
		CustomerID:  c.ID,
		ServiceType: in.ServiceType,
		Notes:       in.Notes,
		PerformedAt: now,
		RecordedBy:  a.UserID,
		CreatedAt:   now,
		RequestHash: in.fingerprint(),
	}
	if in.PerformedAt != nil {
		rec.PerformedAt = in.PerformedAt.UTC().Truncate(time.Millisecond)
	}
	storeKey := "auto:" + rec.ID
	if key != "" {
		storeKey = "key:" + key
	}
	stored, created, err := s.store.AddService(ctx, c, rec, storeKey)
	if err != nil {
		return CustomerWithUserData{}, err
	}
	if !created && stored.RequestHash != rec.RequestHash {
		return CustomerWithUserData{}, ErrIdempotencyMismatch
	}
	updated, err := s.store.ByID(ctx, c.ID)
	if err != nil {
		return CustomerWithUserData{}, err
	}
	if created {
		s.publish(ctx, updated, OpService)
	}
	return s.withUser(ctx, a, updated), nil
}

// Services lists a customer's service records, newest first (its owner,
// staff and services holding ScopeRead).
func (s *Service) Services(ctx context.Context, a Actor, id string, pr PageRequest) (Page[ServiceRecord], error) {
	if err := a.permit(ScopeRead); err != nil {
		return Page[ServiceRecord]{}, err
	}
	c, err := s.visible(ctx, a, id)
	if err != nil {
		return Page[ServiceRecord]{}, err
	}
	total, err := s.store.CountServices(ctx, c.ID)
	if err != nil {
		return Page[ServiceRecord]{}, err
	}
	p, err := paginate[ServiceRecord](pr, total)
	if err != nil {
		return Page[ServiceRecord]{}, err
	}
	if total > 0 {
		if p.Items, err = s.store.Services(ctx, c.ID, (p.Number-1)*p.Size, p.Size); err != nil {
			return Page[ServiceRecord]{}, err
		}
	}
	return p, nil
}

// List lists profiles: staff and services (holding ScopeRead) see every
// profile, a customer only their own.
func (s *Service) List(ctx context.Context, a Actor, f Filter, pr PageRequest) (Page[CustomerWithUserData], error) {
	if err := a.permit(ScopeRead); err != nil {
		return Page[CustomerWithUserData]{}, err
	}
	if err := f.Validate(); err != nil {
		return Page[CustomerWithUserData]{}, err
	}
	if !a.staffReader() {
		f.UserID = a.UserID
	}
	total, cs, read, err := s.countAndList(ctx, f, pr)
	if err != nil {
		return Page[CustomerWithUserData]{}, err
	}
	p, err := paginate[CustomerWithUserData](pr, total)
	if err != nil {
		return Page[CustomerWithUserData]{}, err
	}
	if total == 0 {
		return p, nil
	}
	if !read { // the last page: its number came from the count
		if cs, err = s.store.List(ctx, f, (p.Number-1)*p.Size, p.Size); err != nil {
			return Page[CustomerWithUserData]{}, err
		}
	}
	p.Items = s.withUsers(ctx, a, cs)
	return p, nil
}

// countAndList counts the profiles matching f and, when the page asked
// for is known by its number, reads it at the same time (both read every
// profile on the embedded server, so together they take about the time of
// one where there are cores for them; on MongoDB each uses an index). A
// page past the last one is read for nothing and refused by paginate.
// read says whether the page was read (not the last page, whose number
// comes from the count).
func (s *Service) countAndList(ctx context.Context, f Filter, pr PageRequest) (total int, cs []Customer, read bool, err error) {
	if pr.Last || pr.Number < 1 {
		total, err = s.store.Count(ctx, f)
		return total, nil, false, err
	}
	size := pageSize(pr)
	listed := make(chan error, 1)
	go func() {
		var err error
		cs, err = s.store.List(ctx, f, (pr.Number-1)*size, size)
		listed <- err
	}()
	total, err = s.store.Count(ctx, f)
	if lerr := <-listed; err == nil {
		err = lerr
	}
	return total, cs, true, err
}

// pageSize is the size of the page pr asks for: DefaultPageSize when it
// names none, at most MaxPageSize.
func pageSize(pr PageRequest) int {
	if pr.Size <= 0 {
		return DefaultPageSize
	}
	return min(pr.Size, MaxPageSize)
}

// paginate checks a page request against the number of items, as Django's
// paginator does: page 1 always exists, any other page must hold items.
func paginate[T any](pr PageRequest, total int) (Page[T], error) {
	size := pageSize(pr)
	pages := max(1, (total+size-1)/size)
	n := pr.Number
	if pr.Last {
		n = pages
	}
	if n < 1 || n > pages {
		return Page[T]{}, ErrInvalidPage
	}
	return Page[T]{Total: total, Number: n, Size: size}, nil
}

// Stats returns the staff's figures over every profile to staff and
// services (holding ScopeRead), and a customer's own figures to a customer.
// The staff's figures read every profile, so concurrent requests share
// their computation (statsFlights): at most one runs at a time.
func (s *Service) Stats(ctx context.Context, a Actor) (StatsResult, error) {
	if a.staffReader() {
		if err := a.permit(ScopeRead); err != nil {
			return StatsResult{}, err
		}
		st, err := s.stats.do(ctx, func(ctx context.Context) (Stats, error) {
			return s.store.Stats(ctx, s.clock().Add(-30*24*time.Hour))
		})
		if err != nil {
			return StatsResult{}, err
		}
		return StatsResult{All: &st}, nil
	}
	c, err := s.own(ctx, a)
	if err != nil {
		return StatsResult{}, err
	}
	return StatsResult{Self: &SelfStats{
		CustomerSince:   c.CustomerSince,
		TotalServices:   c.TotalServices,
		LastServiceDate: c.LastServiceDate,
		IsVerified:      c.IsVerified,
	}}, nil
}

// normalizeUUID lower-cases a UUID, the form ids are stored in.
func normalizeUUID(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'F' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}

// EraseUser deletes the profile and service records of a user the auth
// service deleted: the cascade of its user.deleted event. Only a service
// (a.Token reads any user) may ask. Before deleting anything it confirms
// with the auth service that the user is gone: only its explicit "not
// found" counts; a user it still has gives ErrUserExists and no answer
// ErrUserUnconfirmed (ask again later). A user without a profile (a
// second delivery, or a user who never had one) is not looked up and
// succeeds with erased false. A malformed id gives ErrNotFound. No scope
// is asked of a: the cascade is the customer service's own work (its actor
// is built by customerd, never from a request), and a.Token is the service's
// own token at the auth service (users:read there).
func (s *Service) EraseUser(ctx context.Context, a Actor, userID string) (erased bool, err error) {
	if a.Role != contract.RoleService {
		return false, ErrForbidden
	}
	if !contract.ValidID(userID) {
		return false, ErrNotFound
	}
	userID = normalizeUUID(userID)
	c, err := s.store.ByUserID(ctx, userID)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := s.confirmGone(ctx, a, userID); err != nil {
		return false, err
	}
	if err := s.delete(ctx, c); err != nil {
		if errors.Is(err, ErrNotFound) { // deleted meanwhile
			return false, nil
		}
		return false, err
	}
	s.log.InfoContext(ctx, "profile erased: its user was deleted at the auth service", "user_id", userID, "customer_id", c.ID)
	return true, nil
}

// confirmGone asks the auth service whether a user is gone: nil only for
// its explicit "not found".
func (s *Service) confirmGone(ctx context.Context, a Actor, userID string) error {
	if s.users == nil {
		return fmt.Errorf("%w: no user directory", ErrUserUnconfirmed)
	}
	if s.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.timeout)
		defer cancel()
	}
	_, err := s.users.User(ctx, a.Token, userID)
	switch {
	case err == nil:
		s.log.WarnContext(ctx, "erasure refused: the auth service still has the user", "user_id", userID)
		return ErrUserExists
	case errors.Is(err, ErrUserNotFound):
		return nil
	default:
		return fmt.Errorf("%w: %w", ErrUserUnconfirmed, err)
	}
}
