package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"iter"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/acme/customer-platform/authclient"
	"github.com/acme/customer-platform/customer/legacy"
	custmongo "github.com/acme/customer-platform/customer/mongodb"
	"github.com/acme/customer-platform/customerclient"
	"github.com/acme/customer-platform/internal/config"
	"github.com/acme/customer-platform/internal/contract"
)

// The reconciliation of profiles and users (`migrate reconcile`): ghosts
// are profiles whose user the auth service does not have, orphans are
// customer users without a profile. The operator's runbook is
// docs/operations.md.

// listCap bounds the ids a report lists of each kind (the counts are
// always whole), so memory stays bounded however much is found.
const listCap = 1000

// reconcileFlags are reconcile's flags.
type reconcileFlags struct {
	json, repair bool
	batch, limit int
	grace        time.Duration
}

func (f *reconcileFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&f.json, "json", false, "print the report as JSON")
	fs.BoolVar(&f.repair, "repair", false, "delete the ghost profiles (and their service records) through the customer service; orphans are only reported")
	fs.IntVar(&f.batch, "batch", 0, "profiles per batch of auth lookups and of deletions (default MIGRATE_BATCH_SIZE)")
	fs.IntVar(&f.limit, "limit", 1000, "delete at most this many ghost profiles in one run")
	fs.DurationVar(&f.grace, "grace", 24*time.Hour, "a customer user who joined less than this long ago is never an orphan (a registration may still be under way)")
}

func (f reconcileFlags) check() error {
	switch {
	case f.batch < 0 || f.batch > 10000:
		return usageError{"--batch: want 1..10000"}
	case f.limit < 1:
		return usageError{"--limit: want at least 1"}
	case f.grace < 0:
		return usageError{"--grace: must not be negative"}
	}
	return nil
}

// reconcileConfig is what reconcile reads beyond the migration's Config.
// It reads no database of the auth service: users come from its API.
type reconcileConfig struct {
	CustomerURL string `json:"customer_url"` // CUSTOMER_URL, where ghosts are deleted
}

func loadReconcileConfig(lookup config.Lookup) (reconcileConfig, error) {
	r := config.New(lookup)
	rc := reconcileConfig{
		CustomerURL: r.URL("CUSTOMER_URL", "http://127.0.0.1:8002"),
	}
	return rc, r.Err()
}

// reconcileReport is what a run found and did; -json prints it as it is.
type reconcileReport struct {
	Repair          bool           `json:"repair"`
	Batch           int            `json:"batch"`
	Limit           int            `json:"limit,omitempty"`
	Grace           string         `json:"grace"`
	ProfilesChecked int            `json:"profiles_checked"`
	UsersChecked    int            `json:"users_checked"` // customer users listed by the auth service, when the orphans are checked
	UserLookups     int            `json:"user_lookups"`  // users looked up by id (ghost candidates, and each ghost again before its delete)
	Ghosts          ghostFindings  `json:"ghosts"`
	Orphans         orphanFindings `json:"orphans"`
	Interrupted     bool           `json:"interrupted,omitempty"`
}

type ghostFindings struct {
	Count     int     `json:"count"`
	Profiles  []ghost `json:"profiles"`            // the first listCap
	Truncated bool    `json:"truncated,omitempty"` // more were found than listed
	Repaired  int     `json:"repaired"`            // deleted by this run (or found gone already)
	Spared    int     `json:"spared"`              // their user was found on the check just before the delete
}

type ghost struct {
	ProfileID string    `json:"profile_id"`
	UserID    string    `json:"user_id"`
	CreatedAt time.Time `json:"created_at"`
}

type orphanFindings struct {
	Checked   bool     `json:"checked"`
	Reason    string   `json:"reason,omitempty"` // why not checked
	Count     int      `json:"count"`
	Users     []orphan `json:"users"`
	Truncated bool     `json:"truncated,omitempty"`
	Recent    int      `json:"recent"` // customer users without a profile within the grace period: not orphans
}

type orphan struct {
	UserID     string    `json:"user_id"`
	DateJoined time.Time `json:"date_joined"`
}

// remaining reports whether the run leaves anything for the operator.
func (r reconcileReport) remaining() bool {
	return r.Ghosts.Count-r.Ghosts.Repaired > 0 || r.Orphans.Count > 0
}

func (c *command) reconcile(ctx context.Context) error {
	o := c.flags.rec
	if err := o.check(); err != nil {
		return err
	}
	if o.batch == 0 {
		o.batch = c.cfg.BatchSize
	}
	rc, err := loadReconcileConfig(c.env.lookup)
	if err != nil {
		return usageError{err.Error()}
	}
	c.log.InfoContext(ctx, "reconcile", "config", rc, "repair", o.repair, "batch", o.batch, "limit", o.limit, "grace", o.grace)
	dir, err := c.directory(ctx)
	if err != nil {
		return err
	}
	store, err := c.store(ctx)
	if err != nil {
		return err
	}
	rep := reconcileReport{Repair: o.repair, Batch: o.batch, Grace: o.grace.String()}
	keep := 0
	if o.repair {
		rep.Limit, keep = o.limit, o.limit
	}
	lookups := &countingChecker{userChecker: dir}
	toRepair, err := mergeUsersAndProfiles(ctx, dir, lookups, store, o.batch, c.cfg.Lookups, keep, o.grace, time.Now(), &rep)
	if errors.Is(err, authclient.ErrListingUnsupported) && ctx.Err() == nil {
		// An auth service without the listing (a Django one that did not
		// add it): the ghosts are still found, one lookup per profile; the
		// orphans cannot be.
		c.log.WarnContext(ctx, "the auth service lists no users: orphans not checked", "auth_url", c.cfg.AuthURL, "error", err)
		rep = reconcileReport{Repair: rep.Repair, Batch: rep.Batch, Limit: rep.Limit, Grace: rep.Grace}
		rep.Orphans.Reason = fmt.Sprintf("the auth service at %s has no user listing (GET /api/auth/users/?user_role=customer&after=<id>&page_size=<n>), "+
			"so customer users without a profile cannot be found; ghosts were checked by one lookup per profile. "+
			"Add the listing to the auth service (docs/operations.md, \"Against a Django auth service\") and run again", c.cfg.AuthURL)
		toRepair, err = findGhosts(ctx, lookups, store, o.batch, c.cfg.Lookups, keep, &rep)
	}
	rep.UserLookups = int(lookups.n.Load())
	if err != nil {
		return interrupted(ctx, "the check", err)
	}
	if len(toRepair) > 0 {
		svc := customerService{client: customerclient.New(c.clientOptions(rc.CustomerURL, 0)), dir: dir}
		err := repairGhosts(ctx, lookups, svc, toRepair, o.batch, c.cfg.Lookups, c.env.afterBatch, &rep)
		rep.UserLookups = int(lookups.n.Load())
		if err != nil {
			rep.Interrupted = true
			c.print(rep, o.json)
			return interrupted(ctx, fmt.Sprintf("the repair (%d of %d ghost profiles deleted)", rep.Ghosts.Repaired, len(toRepair)), err)
		}
	}
	c.print(rep, o.json)
	c.log.InfoContext(ctx, "reconcile done", "profiles", rep.ProfilesChecked, "users", rep.UsersChecked, "lookups", rep.UserLookups,
		"ghosts", rep.Ghosts.Count, "repaired", rep.Ghosts.Repaired, "spared", rep.Ghosts.Spared,
		"orphans", rep.Orphans.Count, "orphans_checked", rep.Orphans.Checked, "recent", rep.Orphans.Recent)
	if rep.remaining() {
		return problemsError{"found ghosts or orphans: see the report"}
	}
	return nil
}

// countingChecker counts the lookups by id it passes on.
type countingChecker struct {
	userChecker
	n atomic.Int64
}

func (c *countingChecker) UserByID(ctx context.Context, id string) (legacy.User, bool, error) {
	c.n.Add(1)
	return c.userChecker.UserByID(ctx, id)
}

// interrupted words an error of a phase; an interruption says that a
// re-run finishes the work.
func interrupted(ctx context.Context, phase string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s was interrupted: run it again to finish (%w)", phase, ctx.Err())
	}
	return fmt.Errorf("%s: %w", phase, err)
}

func (c *command) print(rep reconcileReport, asJSON bool) {
	if asJSON {
		b, _ := json.MarshalIndent(rep, "", "  ")
		fmt.Fprintf(c.env.stdout, "%s\n", b)
		return
	}
	writeReconcileText(c.env.stdout, rep)
}

func writeReconcileText(w io.Writer, r reconcileReport) {
	fmt.Fprintf(w, "reconcile: %d profiles checked", r.ProfilesChecked)
	if r.Orphans.Checked {
		fmt.Fprintf(w, ", %d customer users listed", r.UsersChecked)
	}
	fmt.Fprintf(w, ", %d users looked up by id\n", r.UserLookups)
	fmt.Fprintf(w, "ghosts: %d (profiles whose user the auth service does not have)\n", r.Ghosts.Count)
	for _, g := range r.Ghosts.Profiles {
		fmt.Fprintf(w, "  profile %s  user %s  created %s\n", g.ProfileID, g.UserID, g.CreatedAt.Format(time.RFC3339))
	}
	if r.Ghosts.Truncated {
		fmt.Fprintf(w, "  (the first %d listed)\n", len(r.Ghosts.Profiles))
	}
	if !r.Orphans.Checked {
		fmt.Fprintf(w, "orphans: not checked: %s\n", r.Orphans.Reason)
	} else {
		fmt.Fprintf(w, "orphans: %d (customer users who joined more than %s ago and have no profile; never repaired, see the runbook)\n", r.Orphans.Count, r.Grace)
		for _, u := range r.Orphans.Users {
			fmt.Fprintf(w, "  user %s  joined %s\n", u.UserID, u.DateJoined.Format(time.RFC3339))
		}
		if r.Orphans.Truncated {
			fmt.Fprintf(w, "  (the first %d listed)\n", len(r.Orphans.Users))
		}
		fmt.Fprintf(w, "recent: %d customer users without a profile joined within the grace period (not orphans, never touched)\n", r.Orphans.Recent)
	}
	switch {
	case r.Repair:
		fmt.Fprintf(w, "repair: %d ghost profiles deleted with their service records, %d spared (their user was found again); limit %d a run\n",
			r.Ghosts.Repaired, r.Ghosts.Spared, r.Limit)
		if left := r.Ghosts.Count - r.Ghosts.Repaired; left > 0 {
			fmt.Fprintf(w, "repair: %d ghosts left: run it again\n", left)
		}
	case r.Ghosts.Count > 0:
		fmt.Fprintln(w, "nothing was changed: --repair deletes the ghosts")
	}
}

// userChecker is how reconcile asks the auth service about a user:
// found is false only when the service answered that it has no such user.
type userChecker interface {
	UserByID(ctx context.Context, id string) (u legacy.User, found bool, err error)
}

// profileRefs streams the customer store's profiles in user_id order.
type profileRefs interface {
	EachProfileRef(ctx context.Context, size int, fn func([]custmongo.ProfileRef) error) error
}

var (
	_ userChecker = authDirectory{}
	_ profileRefs = profileStore{}
)

// missingUsers asks the auth service about every ref's user, at most
// bound at a time, and returns those it does not have. Any other answer
// (unavailable, refused) fails the whole batch: a user is never taken as
// missing for lack of an answer.
func missingUsers(ctx context.Context, dir userChecker, refs []custmongo.ProfileRef, bound int) ([]custmongo.ProfileRef, error) {
	missing := make([]bool, len(refs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(bound)
	for i, r := range refs {
		g.Go(func() error {
			_, found, err := dir.UserByID(gctx, r.UserID)
			if err != nil {
				return fmt.Errorf("look up user %s: %w", r.UserID, err)
			}
			missing[i] = !found
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var out []custmongo.ProfileRef
	for i, r := range refs {
		if missing[i] {
			out = append(out, r)
		}
	}
	return out, nil
}

// findGhosts streams the profiles in batches and checks each batch's users
// with the auth service (lookups by id, bound concurrent): one call per
// profile, never a scan per profile. It counts and lists the ghosts into
// rep and returns the first keep of them for the repair.
func findGhosts(ctx context.Context, dir userChecker, store profileRefs, batch, bound, keep int, rep *reconcileReport) ([]ghost, error) {
	var toRepair []ghost
	err := store.EachProfileRef(ctx, batch, func(refs []custmongo.ProfileRef) error {
		rep.ProfilesChecked += len(refs)
		missing, err := missingUsers(ctx, dir, refs, bound)
		if err != nil {
			return err
		}
		toRepair = recordGhosts(rep, missing, toRepair, keep)
		return nil
	})
	return toRepair, err
}

// profileDeleter deletes a profile and its service records through their
// owner, the customer service; gone is false when it was gone already.
type profileDeleter interface {
	DeleteProfile(ctx context.Context, id string) (gone bool, err error)
}

// repairGhosts deletes the ghosts in batches: each batch's users are looked
// up once more just before (a user found now is spared), then the profiles
// are deleted, bound at a time; afterBatch, when set, runs after each
// batch. Each delete stands alone, so an interrupted repair is finished by
// running it again (a ghost deleted already is no longer found).
func repairGhosts(ctx context.Context, dir userChecker, svc profileDeleter, ghosts []ghost, batch, bound int, afterBatch func(int), rep *reconcileReport) error {
	for n := 0; len(ghosts) > 0; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		b := ghosts[:min(batch, len(ghosts))]
		ghosts = ghosts[len(b):]
		refs := make([]custmongo.ProfileRef, len(b))
		for i, g := range b {
			refs[i] = custmongo.ProfileRef{ID: g.ProfileID, UserID: g.UserID}
		}
		missing, err := missingUsers(ctx, dir, refs, bound)
		if err != nil {
			return err
		}
		rep.Ghosts.Spared += len(b) - len(missing)
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(bound)
		done := make([]bool, len(missing))
		for i, r := range missing {
			g.Go(func() error {
				if _, err := svc.DeleteProfile(gctx, r.ID); err != nil {
					return fmt.Errorf("delete profile %s (user %s): %w", r.ID, r.UserID, err)
				}
				done[i] = true
				return nil
			})
		}
		err = g.Wait()
		for _, d := range done {
			if d {
				rep.Ghosts.Repaired++
			}
		}
		if err != nil {
			return err
		}
		if afterBatch != nil {
			afterBatch(n + 1)
		}
	}
	return nil
}

// customerService deletes profiles through the customer service's API with
// the migration's service token, so the service does what it does on any
// delete (the service records go with the profile, the change is announced).
type customerService struct {
	client *customerclient.Client
	dir    authDirectory // for its service token
}

var _ profileDeleter = customerService{}

func (s customerService) DeleteProfile(ctx context.Context, id string) (bool, error) {
	err := s.dir.withToken(ctx, func(tok string) error { return s.client.DeleteCustomer(ctx, tok, id) })
	if errors.Is(err, customerclient.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// authUser is a customer user as the orphan check reads it: no personal
// data is kept of the listing.
type authUser struct {
	ID         string
	DateJoined time.Time
}

// userPages streams the customer users in id order, a page at a time, from
// the auth service's listing; an auth service without it answers
// authclient.ErrListingUnsupported.
type userPages interface {
	EachCustomerPage(ctx context.Context, size int, fn func([]authUser) error) error
}

var _ userPages = authDirectory{}

// listPageMax is the largest page the listing serves.
const listPageMax = 500

// EachCustomerPage walks GET /api/auth/users/?user_role=customer&after=
// page by page (keyset by id, so a user deleted or created during the walk
// shifts nothing), each page called with the service token (renewed when
// refused, a 429 waited out).
func (a authDirectory) EachCustomerPage(ctx context.Context, size int, fn func([]authUser) error) error {
	req := authclient.ListUsersRequest{Role: contract.RoleCustomer, PageSize: min(max(size, 1), listPageMax)}
	page := make([]authUser, 0, req.PageSize)
	for {
		var p *authclient.UserPage
		err := a.withToken(ctx, func(tok string) (err error) {
			p, err = a.client.ListUsers(ctx, tok, req)
			return err
		})
		if err != nil {
			return fmt.Errorf("list the customer users after %q: %w", req.After, err)
		}
		page = page[:0]
		for _, u := range p.Users {
			if u.UserRole != "" && u.UserRole != contract.RoleCustomer {
				continue // a listing that ignored user_role: not a customer
			}
			page = append(page, authUser{ID: u.ID, DateJoined: u.DateJoined})
		}
		if err := fn(page); err != nil {
			return err
		}
		if p.Next == "" {
			return nil
		}
		req.After = p.Next
	}
}

// errStopped ends a profile stream that its reader no longer needs.
var errStopped = errors.New("stopped")

// mergeUsersAndProfiles finds the ghosts and the orphans in one pass over
// each side: the customer users of the auth service's listing and the
// profiles of the customer store, both in user id order, merged.
//
//   - a customer user without a profile is an orphan when they joined
//     before now-grace, else counted as recent;
//   - a profile without a listed customer user is a ghost candidate (its
//     user may be staff, or created after the listing passed its id): the
//     candidates are looked up by id, batch at a time, bound concurrent,
//     and those the auth service does not have are the ghosts.
//
// So the auth service is asked once per page of users and once per
// candidate, never once per profile. Memory is one page, one batch of
// profiles and of candidates, and the first keep ghosts,
// which are returned for the repair.
func mergeUsersAndProfiles(ctx context.Context, users userPages, dir userChecker, store profileRefs, batch, bound, keep int, grace time.Duration, now time.Time, rep *reconcileReport) ([]ghost, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var perr error
	profiles := func(yield func(custmongo.ProfileRef) bool) {
		perr = store.EachProfileRef(ctx, batch, func(refs []custmongo.ProfileRef) error {
			for _, r := range refs {
				if !yield(r) {
					return errStopped
				}
			}
			return nil
		})
	}
	next, stop := iter.Pull(iter.Seq[custmongo.ProfileRef](profiles))
	defer stop()
	var (
		p           custmongo.ProfileRef
		more        bool
		lastProfile string
	)
	advance := func() error {
		if p, more = next(); !more {
			return nil
		}
		rep.ProfilesChecked++
		if p.UserID < lastProfile {
			return fmt.Errorf("the profiles are not in user id order (%s after %s): cannot merge", p.UserID, lastProfile)
		}
		lastProfile = p.UserID
		return nil
	}

	var toRepair []ghost
	candidates := make([]custmongo.ProfileRef, 0, batch)
	flush := func() error {
		if len(candidates) == 0 {
			return nil
		}
		missing, err := missingUsers(ctx, dir, candidates, bound)
		if err != nil {
			return err
		}
		candidates = candidates[:0]
		toRepair = recordGhosts(rep, missing, toRepair, keep)
		return nil
	}
	candidate := func(r custmongo.ProfileRef) error {
		if candidates = append(candidates, r); len(candidates) >= batch {
			return flush()
		}
		return nil
	}

	if err := advance(); err != nil {
		return nil, err
	}
	lastUser := ""
	err := users.EachCustomerPage(ctx, batch, func(page []authUser) error {
		for _, u := range page {
			if u.ID <= lastUser {
				return fmt.Errorf("the auth users are not in id order (%s after %s): cannot merge", u.ID, lastUser)
			}
			lastUser = u.ID
			rep.UsersChecked++
			for more && p.UserID < u.ID {
				if err := candidate(p); err != nil {
					return err
				}
				if err := advance(); err != nil {
					return err
				}
			}
			switch {
			case more && p.UserID == u.ID:
				if err := advance(); err != nil {
					return err
				}
			case now.Sub(u.DateJoined) < grace:
				rep.Orphans.Recent++
			default:
				rep.Orphans.Count++
				if len(rep.Orphans.Users) < listCap {
					rep.Orphans.Users = append(rep.Orphans.Users, orphan{UserID: u.ID, DateJoined: u.DateJoined})
				} else {
					rep.Orphans.Truncated = true
				}
			}
		}
		return nil
	})
	for err == nil && more {
		if err = candidate(p); err == nil {
			err = advance()
		}
	}
	if err == nil && perr != nil && !errors.Is(perr, errStopped) {
		err = perr
	}
	if err == nil {
		err = flush()
	}
	stop()
	if err != nil {
		return nil, err
	}
	rep.Orphans.Checked = true
	return toRepair, nil
}

// recordGhosts counts and lists the ghosts found into rep and returns
// toRepair with the first of them up to keep.
func recordGhosts(rep *reconcileReport, found []custmongo.ProfileRef, toRepair []ghost, keep int) []ghost {
	for _, r := range found {
		g := ghost{ProfileID: r.ID, UserID: r.UserID, CreatedAt: r.CreatedAt}
		rep.Ghosts.Count++
		if len(rep.Ghosts.Profiles) < listCap {
			rep.Ghosts.Profiles = append(rep.Ghosts.Profiles, g)
		} else {
			rep.Ghosts.Truncated = true
		}
		if len(toRepair) < keep {
			toRepair = append(toRepair, g)
		}
	}
	return toRepair
}
