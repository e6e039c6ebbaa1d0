// Package customertest holds the test fakes of the customer service's
// ports, shared by the tests of package customer and of its adapters.
package customertest

import (
	"context"
	"sync"

	"github.com/acme/customer-platform/customer"
)

// Users is a user directory with function fields: MeFn answers Me and
// UserFn answers User.
type Users struct {
	MeFn   func(ctx context.Context, token string) (customer.User, error)
	UserFn func(ctx context.Context, token, id string) (customer.User, error)
}

var _ customer.Users = (*Users)(nil)

// Me calls MeFn.
func (f *Users) Me(ctx context.Context, token string) (customer.User, error) {
	return f.MeFn(ctx, token)
}

// User calls UserFn.
func (f *Users) User(ctx context.Context, token, id string) (customer.User, error) {
	return f.UserFn(ctx, token, id)
}

// KnownUsers is a directory that knows every user: Me answers a phone
// number, User a whole user with the id asked about.
func KnownUsers() *Users {
	return &Users{
		MeFn: func(context.Context, string) (customer.User, error) {
			return customer.User{PhoneNumber: "+1 555 0000"}, nil
		},
		UserFn: func(_ context.Context, _, id string) (customer.User, error) {
			return customer.User{ID: id, Email: "user-" + id[:min(8, len(id))] + "@example.com", FirstName: "First", LastName: "Last", PhoneNumber: "+1 555 1111"}, nil
		},
	}
}

// Publisher is a Publisher that remembers what it was told.
type Publisher struct {
	mu      sync.Mutex
	changes []customer.Change
}

var _ customer.Publisher = (*Publisher)(nil)

// Publish records ch.
func (p *Publisher) Publish(_ context.Context, ch customer.Change) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.changes = append(p.changes, ch)
}

// Changes returns the changes published so far, in order.
func (p *Publisher) Changes() []customer.Change {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]customer.Change(nil), p.changes...)
}

// Ops returns the operations of the changes published so far, in order.
func (p *Publisher) Ops() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	ops := make([]string, len(p.changes))
	for i, ch := range p.changes {
		ops[i] = ch.Op
	}
	return ops
}
