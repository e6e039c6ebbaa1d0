package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"iter"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"golang.org/x/sync/errgroup"

	authmongo "github.com/acme/customer-platform/auth/mongodb"
	"github.com/acme/customer-platform/customer/legacy"
	custmongo "github.com/acme/customer-platform/customer/mongodb"
	"github.com/acme/customer-platform/customerclient"
	"github.com/acme/customer-platform/internal/config"
	"github.com/acme/customer-platform/internal/contract"
	"github.com/acme/customer-platform/internal/mongodb"
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
type reconcileConfig struct {
	CustomerURL  string        `json:"customer_url"`     // CUSTOMER_URL, where ghosts are deleted
	AuthMongoURI config.Secret `json:"auth_mongodb_uri"` // AUTH_MONGODB_URI, default MONGODB_URI
	AuthDB       string        `json:"auth_db"`          // AUTH_DB, the auth service's database; "" = orphans not checked
}

func loadReconcileConfig(lookup config.Lookup, c Config) (reconcileConfig, error) {
	r := config.New(lookup)
	rc := reconcileConfig{
		CustomerURL:  r.URL("CUSTOMER_URL", "http://127.0.0.1:8002"),
		AuthMongoURI: r.Secret("AUTH_MONGODB_URI", c.MongoURI),
		AuthDB:       r.String("AUTH_DB", ""),
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
	UsersChecked    int            `json:"users_checked"` // customer users, when the orphans are checked
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
	rc, err := loadReconcileConfig(c.env.lookup, c.cfg)
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
	toRepair, err := findGhosts(ctx, dir, store, o.batch, c.cfg.Lookups, keep, &rep)
	if err != nil {
		return interrupted(ctx, "the ghost check", err)
	}
	if rc.AuthDB == "" {
		rep.Orphans.Reason = "AUTH_DB is not set: the auth service's API lists no users, so orphans are found only by reading its database (docs/operations.md)"
	} else {
		users, closeUsers, err := c.authUsers(ctx, rc)
		if err != nil {
			return err
		}
		defer closeUsers()
		if err := findOrphans(ctx, users, store, o.batch, o.grace, time.Now(), &rep); err != nil {
			return interrupted(ctx, "the orphan check", err)
		}
	}
	if len(toRepair) > 0 {
		svc := customerService{client: customerclient.New(customerclient.Options{BaseURL: rc.CustomerURL, Transport: c.transport}), dir: dir}
		err := repairGhosts(ctx, dir, svc, toRepair, o.batch, c.cfg.Lookups, c.env.afterBatch, &rep)
		if err != nil {
			rep.Interrupted = true
			c.print(rep, o.json)
			return interrupted(ctx, fmt.Sprintf("the repair (%d of %d ghost profiles deleted)", rep.Ghosts.Repaired, len(toRepair)), err)
		}
	}
	c.print(rep, o.json)
	c.log.InfoContext(ctx, "reconcile done", "profiles", rep.ProfilesChecked, "users", rep.UsersChecked,
		"ghosts", rep.Ghosts.Count, "repaired", rep.Ghosts.Repaired, "spared", rep.Ghosts.Spared,
		"orphans", rep.Orphans.Count, "orphans_checked", rep.Orphans.Checked, "recent", rep.Orphans.Recent)
	if rep.remaining() {
		return problemsError{"found ghosts or orphans: see the report"}
	}
	return nil
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
		fmt.Fprintf(w, ", %d customer users checked", r.UsersChecked)
	}
	fmt.Fprintln(w)
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
		for _, r := range missing {
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

// authUser is a user as the orphan check reads it.
type authUser struct {
	ID         string    `bson:"_id"`
	DateJoined time.Time `bson:"date_joined"`
}

// userLister streams the customer users in id order.
type userLister interface {
	EachCustomerUser(ctx context.Context, fn func(authUser) error) error
}

// authUserStore reads the users collection of the auth service's database
// (the stand-in auth service's store, whose documents auth/mongodb
// describes), read-only: the auth service's API offers no listing.
type authUserStore struct{ users *mongo.Collection }

var _ userLister = authUserStore{}

func (s authUserStore) EachCustomerUser(ctx context.Context, fn func(authUser) error) error {
	cur, err := s.users.Find(ctx, bson.D{{Key: "user_role", Value: contract.RoleCustomer}}, options.Find().
		SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "date_joined", Value: 1}}).
		SetSort(bson.D{{Key: "_id", Value: 1}}).
		SetBatchSize(1000))
	if err != nil {
		return fmt.Errorf("read the auth users: %w", err)
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		var u authUser
		if err := cur.Decode(&u); err != nil {
			return fmt.Errorf("decode an auth user: %w", err)
		}
		if err := fn(u); err != nil {
			return err
		}
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("read the auth users: %w", err)
	}
	return nil
}

// authUsers opens the auth service's users collection: on the customer
// store's connection when AUTH_MONGODB_URI is that one, else on its own.
func (c *command) authUsers(ctx context.Context, rc reconcileConfig) (authUserStore, func(), error) {
	if rc.AuthMongoURI == c.cfg.MongoURI && c.client != nil {
		return authUserStore{c.client.Database(rc.AuthDB).Collection(authmongo.UsersCollection)}, func() {}, nil
	}
	cl, err := mongodb.Connect(ctx, rc.AuthMongoURI.Reveal(), "migrate-reconcile", nil)
	if err != nil {
		return authUserStore{}, nil, fmt.Errorf("connect to the auth database: %w", err)
	}
	return authUserStore{cl.Database(rc.AuthDB).Collection(authmongo.UsersCollection)},
		func() { mongodb.Disconnect(context.Background(), cl) }, nil
}

// errStopped ends a profile stream that its reader no longer needs.
var errStopped = errors.New("stopped")

// findOrphans merges two streams in user id order, the customer users and
// the profiles, each read once: a user without a profile who joined before
// now-grace is an orphan; one who joined since is counted as recent.
// Memory is one batch of profiles; the time is one pass over each side.
func findOrphans(ctx context.Context, users userLister, store profileRefs, batch int, grace time.Duration, now time.Time, rep *reconcileReport) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var perr error
	profiles := func(yield func(string) bool) {
		perr = store.EachProfileRef(ctx, batch, func(refs []custmongo.ProfileRef) error {
			for _, r := range refs {
				if !yield(r.UserID) {
					return errStopped
				}
			}
			return nil
		})
	}
	next, stop := iter.Pull(iter.Seq[string](profiles))
	defer stop()
	p, more := next()
	lastUser, lastProfile := "", p
	rep.Orphans.Checked = true
	err := users.EachCustomerUser(ctx, func(u authUser) error {
		if u.ID < lastUser {
			return fmt.Errorf("the auth users are not in id order (%s after %s): cannot merge", u.ID, lastUser)
		}
		lastUser = u.ID
		rep.UsersChecked++
		for more && p < u.ID {
			if p, more = next(); more && p < lastProfile {
				return fmt.Errorf("the profiles are not in user id order (%s after %s): cannot merge", p, lastProfile)
			}
			lastProfile = p
		}
		switch {
		case more && p == u.ID:
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
		return nil
	})
	stop()
	if err != nil {
		return err
	}
	if perr != nil && !errors.Is(perr, errStopped) {
		return perr
	}
	return nil
}
