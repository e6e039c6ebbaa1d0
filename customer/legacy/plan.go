package legacy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/acme/customer-platform/customer"
	"github.com/acme/customer-platform/internal/contract"
)

// User is an auth user as the migration knows it.
type User struct {
	ID    string
	Email string
}

// NewUser is an auth user to create for a legacy record without one.
type NewUser struct {
	Email       string
	FirstName   string
	LastName    string
	PhoneNumber string
}

// Directory is the auth service's user directory, read with the migration's
// service token.
type Directory interface {
	// FindUserByEmail looks a user up by email (case-insensitively); found
	// is false when there is none.
	FindUserByEmail(ctx context.Context, email string) (u User, found bool, err error)
	// UserByID looks a user up by id; found is false when there is none.
	UserByID(ctx context.Context, id string) (u User, found bool, err error)
}

// UserCreator creates auth users with an unusable password that must be reset.
type UserCreator interface {
	// CreateUser returns ErrUserExists (wrapped) when the email is taken and
	// ErrUserRejected (wrapped, with the service's reasons) when the auth
	// service refuses the data; any other error stops the run.
	CreateUser(ctx context.Context, u NewUser) (User, error)
}

// Errors of a UserCreator.
var (
	ErrUserExists   = errors.New("a user with this email already exists")
	ErrUserRejected = errors.New("the auth service refused the user")
)

// Action is what the migration does with a record.
type Action string

// Actions.
const (
	ActionMigrate    Action = "migrate"     // write the profile of an existing auth user
	ActionCreateUser Action = "create_user" // create the auth user, then write the profile
	ActionSkip       Action = "skip"        // write nothing: see the problems
)

// ProblemCode classifies a problem of a record.
type ProblemCode string

// Problem codes.
const (
	ProblemNoAuthUser     ProblemCode = "no_auth_user"     // no auth user has the email
	ProblemAddressPartial ProblemCode = "address_partial"  // a US address with a part missing or guessed
	ProblemAddressForeign ProblemCode = "address_foreign"  // a non-US address, kept whole
	ProblemAddressUnknown ProblemCode = "address_unparsed" // nothing recognisable, kept whole
	ProblemAddressEmpty   ProblemCode = "address_empty"    // no address
	ProblemDuplicateUser  ProblemCode = "duplicate_user"   // another record already migrates this user
	ProblemInvalidField   ProblemCode = "invalid_field"    // a field the new model cannot hold
)

// Problem is one reason a record needs attention.
type Problem struct {
	Code    ProblemCode `json:"code"`
	Field   string      `json:"field,omitempty"`
	Message string      `json:"message"`
	// Blocking problems keep the record from being written under the run's
	// options.
	Blocking bool `json:"blocking"`
}

// Outcome is what apply did with a record.
type Outcome string

// Outcomes.
const (
	OutcomeInserted Outcome = "inserted" // a new profile
	OutcomeUpdated  Outcome = "updated"  // the user's profile existed and was updated
	OutcomeSkipped  Outcome = "skipped"  // the plan said skip
	OutcomeFailed   Outcome = "failed"   // a write or a user creation failed: see Error
)

// Entry is the plan (and, after apply, the outcome) of one record.
type Entry struct {
	Seq          int           `json:"seq"`
	Line         int           `json:"line,omitempty"`
	PK           string        `json:"pk,omitempty"`
	LegacyUserID string        `json:"legacy_user_id,omitempty"`
	Email        string        `json:"email"`
	UserID       string        `json:"user_id,omitempty"` // the auth user; empty until created
	Action       Action        `json:"action"`
	Address      ParsedAddress `json:"address"`
	Problems     []Problem     `json:"problems,omitempty"`
	DuplicateOf  string        `json:"duplicate_of,omitempty"`
	UserCreated  bool          `json:"user_created,omitempty"`
	Outcome      Outcome       `json:"outcome,omitempty"`
	Error        string        `json:"error,omitempty"`

	record  Record
	profile customer.Customer
}

// Profile is the profile the entry writes (UserID set once the user is known).
func (e Entry) Profile() customer.Customer { return e.profile.Clone() }

// Blocked reports whether a blocking problem keeps the record from being written.
func (e Entry) Blocked() bool {
	return slices.ContainsFunc(e.Problems, func(p Problem) bool { return p.Blocking })
}

// Options are a run's choices.
type Options struct {
	// AcceptPartialAddress writes records whose address was not parsed
	// with confidence (partial, foreign, unparsed or empty), as parsed.
	AcceptPartialAddress bool
	// CreateMissingUsers creates the auth users of records that have none
	// (apply only), instead of skipping them.
	CreateMissingUsers bool
	// BatchSize is the number of records per batch (default 500).
	BatchSize int
	// Lookups bounds the concurrent calls to the auth service (default 8).
	Lookups int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Progress, when set, is called after each batch with the number of
	// records processed so far.
	Progress func(records int)
	// AfterBatch, when set, is called after each batch has been written
	// (apply) with its 1-based number; tests interrupt a run from here.
	AfterBatch func(batch int)
}

func (o Options) withDefaults() Options {
	if o.BatchSize <= 0 {
		o.BatchSize = 500
	}
	if o.Lookups <= 0 {
		o.Lookups = 8
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// validEmail is a deliberately plain check: one @, a dotted domain, no
// spaces; the auth service has the last word.
func validEmail(s string) bool {
	if len(s) > 254 || strings.ContainsAny(s, " \t\r\n<>(),;:\"[]\\") {
		return false
	}
	local, domain, ok := strings.Cut(s, "@")
	if !ok || local == "" || strings.Contains(domain, "@") {
		return false
	}
	dot := strings.LastIndexByte(domain, '.')
	return dot > 0 && dot < len(domain)-1 && !strings.HasPrefix(domain, ".") && !strings.Contains(domain, "..")
}

// lookup is the cached answer for one email.
type lookup struct {
	user  User
	found bool
}

// planner classifies records in batches, with a per-email cache of the
// directory's answers and the users already claimed by an earlier record.
type planner struct {
	dir   Directory
	opts  Options
	cache map[string]lookup
	// claimed maps "email:<email>", "user:<id>" and "legacy:<user_id>" to
	// the record that migrates that user.
	claimed map[string]string
}

func newPlanner(dir Directory, o Options) *planner {
	return &planner{dir: dir, opts: o, cache: map[string]lookup{}, claimed: map[string]string{}}
}

// resolve looks up the emails of recs not cached yet, concurrently with a bound.
func (p *planner) resolve(ctx context.Context, recs []Record) error {
	var uncached []string
	seen := map[string]bool{}
	for _, r := range recs {
		e := contract.NormalizeEmail(r.Email)
		if _, ok := p.cache[e]; ok || seen[e] || !validEmail(e) {
			continue
		}
		seen[e] = true
		uncached = append(uncached, e)
	}
	if len(uncached) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
		sem      = make(chan struct{}, p.opts.Lookups)
	)
	results := make(map[string]lookup, len(uncached))
	for _, e := range uncached {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			u, found, err := p.dir.FindUserByEmail(ctx, e)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("look up the auth user of %s: %w", e, err)
				}
				cancel()
				return
			}
			results[e] = lookup{user: u, found: found}
		}()
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	if firstErr != nil {
		return firstErr
	}
	maps.Copy(p.cache, results)
	return nil
}

// classify plans one record; resolve must have run for its batch.
func (p *planner) classify(r Record) Entry {
	email := contract.NormalizeEmail(r.Email)
	e := Entry{
		Seq: r.Seq, Line: r.Line, PK: r.PK, LegacyUserID: r.LegacyUserID,
		Email: email, Address: ParseAddress(r.Address), record: r,
	}
	add := func(code ProblemCode, field, msg string, blocking bool) {
		e.Problems = append(e.Problems, Problem{Code: code, Field: field, Message: msg, Blocking: blocking})
	}
	for _, fe := range r.Invalid {
		add(ProblemInvalidField, fe.Field, fe.Message, true)
	}
	switch {
	case email == "":
		add(ProblemInvalidField, "email", "the record has no email, so it cannot be matched to an auth user", true)
	case !validEmail(email):
		add(ProblemInvalidField, "email", fmt.Sprintf("%q is not a valid email address", r.Email), true)
	}

	// The address.
	a := e.Address
	if !a.Confident() {
		code := map[AddressStatus]ProblemCode{
			AddressPartial: ProblemAddressPartial, AddressForeign: ProblemAddressForeign,
			AddressUnparsed: ProblemAddressUnknown, AddressEmpty: ProblemAddressEmpty,
		}[a.Status]
		add(code, "address", strings.Join(a.Reasons, "; "), !p.opts.AcceptPartialAddress)
	}

	// The other fields, as the customer service validates them.
	prof, fieldErrs := profileOf(r, a)
	for _, f := range slices.Sorted(maps.Keys(fieldErrs)) {
		add(ProblemInvalidField, f, strings.Join(fieldErrs[f], " "), true)
	}
	e.profile = prof

	// The auth user.
	missing := false
	if validEmail(email) {
		l, ok := p.cache[email]
		switch {
		case ok && l.found:
			e.UserID = strings.ToLower(l.user.ID)
		case p.opts.CreateMissingUsers:
			missing = true
			add(ProblemNoAuthUser, "email", "no auth user has this email: it will be created with an unusable password that must be reset", false)
		default:
			missing = true
			add(ProblemNoAuthUser, "email", "no auth user has this email", true)
		}
	}

	// Duplicates: the first record that can be written claims its user.
	keys := []string{"email:" + email}
	if e.UserID != "" {
		keys = append(keys, "user:"+e.UserID)
	}
	if r.LegacyUserID != "" {
		keys = append(keys, "legacy:"+r.LegacyUserID)
	}
	for _, k := range keys {
		if first, ok := p.claimed[k]; ok {
			e.DuplicateOf = first
			what := map[byte]string{'e': "email", 'u': "auth user", 'l': "legacy user_id"}[k[0]]
			add(ProblemDuplicateUser, "", fmt.Sprintf("the same %s as %s, which is migrated instead", what, first), true)
			break
		}
	}

	switch {
	case e.Blocked():
		e.Action = ActionSkip
	case missing:
		e.Action = ActionCreateUser
	default:
		e.Action = ActionMigrate
	}
	if e.Action != ActionSkip {
		for _, k := range keys {
			p.claimed[k] = r.Ref()
		}
		e.profile.UserID = e.UserID
	}
	return e
}

// profileOf builds the profile a record becomes and checks its fields as
// the customer service checks a new profile, except that the address is
// taken as parsed: what is missing from it is reported by the parser as an
// address problem, not here (only a part too long to store is).
func profileOf(r Record, a ParsedAddress) (customer.Customer, customer.FieldErrors) {
	c := customer.Customer{
		Address: customer.Address{
			StreetAddress: a.Street, City: a.City, State: a.State, PostalCode: a.PostalCode, Country: a.Country,
		},
		CompanyName:  r.CompanyName,
		BusinessType: strings.ToLower(r.BusinessType),
		TaxID:        r.TaxID,
		EmergencyContact: customer.EmergencyContact{
			Name: r.EmergencyContactName, Phone: r.EmergencyContactPhone, Relationship: r.EmergencyContactRelationship,
		},
		PreferredContactMethod:  strings.ToLower(r.PreferredContactMethod),
		NotificationPreferences: maps.Clone(r.NotificationPreferences),
		IsVerified:              r.IsVerified,
		CustomerSince:           r.CustomerSince.UTC().Truncate(time.Millisecond),
	}
	if c.Country == "" {
		c.Country = customer.DefaultCountry
	}
	if c.PreferredContactMethod == "" {
		c.PreferredContactMethod = customer.ContactEmail
	}
	if c.NotificationPreferences == nil {
		c.NotificationPreferences = customer.DefaultNotificationPreferences()
	}
	ch := customer.Changes{
		StreetAddress: &c.StreetAddress, City: &c.City, State: &c.State, PostalCode: &c.PostalCode, Country: &c.Country,
		CompanyName: &c.CompanyName, BusinessType: &c.BusinessType, TaxID: &c.TaxID,
		EmergencyContactName: &c.EmergencyContact.Name, EmergencyContactPhone: &c.EmergencyContact.Phone,
		EmergencyContactRelationship: &c.EmergencyContact.Relationship,
		PreferredContactMethod:       &c.PreferredContactMethod,
		NotificationPreferences:      c.NotificationPreferences,
	}
	fields := customer.FieldErrors{}
	if _, err := customer.ValidateCreate(ch); err != nil {
		var ve *contract.ValidationError
		if !errors.As(err, &ve) {
			fields.Add("profile", err.Error())
			return c, fields
		}
		for f, msgs := range ve.Fields {
			if isAddressField(f) && !addressTooLong(f, ch) {
				continue
			}
			fields[f] = msgs
		}
	}
	return c, fields
}

func isAddressField(f string) bool {
	switch f {
	case customer.FieldStreetAddress, customer.FieldCity, customer.FieldState, customer.FieldPostalCode, customer.FieldCountry:
		return true
	}
	return false
}

// addressTooLong: a part too long to store is an invalid field whatever the options.
func addressTooLong(f string, ch customer.Changes) bool {
	v := map[string]*string{
		customer.FieldStreetAddress: ch.StreetAddress, customer.FieldCity: ch.City, customer.FieldState: ch.State,
		customer.FieldPostalCode: ch.PostalCode, customer.FieldCountry: ch.Country,
	}[f]
	return v != nil && (utf8.RuneCountInString(*v) > customer.MaxLength[f] || strings.IndexByte(*v, 0) >= 0)
}
