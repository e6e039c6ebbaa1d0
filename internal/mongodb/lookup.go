package mongodb

import (
	"context"
	"errors"
	"sync"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
)

// LastPresent finds the last member of a series numbered without gaps
// (members exist from the first up to the last, none after), by the _id
// lookups the caller makes in fetch (nil: no such member): lo is a number
// known to exist, whose member is last (or the one before the first, last
// nil), and hi one known not to exist (or -1: none known yet). It gallops
// up from lo (lo+1, lo+2, lo+4, …) until a member is missing, then bisects:
// about 2·log₂ of the distance from lo, one lookup when lo is already the
// last and hi is unknown. fetch is called with numbers above lo only, one
// at a time. It returns the last number and its member.
func LastPresent[T any](lo, hi int64, last *T, fetch func(n int64) (*T, error)) (int64, *T, error) {
	probe := func(n int64) (bool, error) {
		d, err := fetch(n)
		if err != nil || d == nil {
			return false, err
		}
		lo, last = n, d
		return true, nil
	}
	for step := int64(1); hi < 0; step *= 2 {
		ok, err := probe(lo + step)
		if err != nil {
			return 0, nil, err
		}
		if !ok {
			hi = lo + step
		}
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		ok, err := probe(mid)
		if err != nil {
			return 0, nil, err
		}
		if !ok {
			hi = mid
		}
	}
	return lo, last, nil
}

// FindByID reads the document of c whose _id is id (nil, nil: none): the
// one lookup the embedded server answers from an index.
func FindByID[T any](ctx context.Context, c *mongo.Collection, id string) (*T, error) {
	var d T
	err := c.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// LastFrom finds the last member of a series numbered without gaps from a
// hint, a number likely at or just below the last: it reads the hint's
// member and the next one at once, which settle it when the hint is the
// last (one round trip), else gallops up with LastPresent. When the hint's
// member is missing (a hint past the last, or below the first of a swept
// series) it returns hintFound false and nothing else, and the caller
// decides; a hint of 0 or less searches from the first member.
func LastFrom[T any](hint int64, fetch func(n int64) (*T, error)) (n int64, last *T, hintFound bool, err error) {
	if hint <= 0 {
		n, last, err = LastPresent(0, -1, nil, fetch)
		return n, last, true, err
	}
	var at, next *T
	var errAt, errNext error
	var wg sync.WaitGroup
	wg.Go(func() { at, errAt = fetch(hint) })
	wg.Go(func() { next, errNext = fetch(hint + 1) })
	wg.Wait()
	switch {
	case errAt != nil || errNext != nil:
		return 0, nil, false, errors.Join(errAt, errNext)
	case at == nil:
		return 0, nil, false, nil
	case next == nil:
		return hint, at, true, nil
	}
	n, last, err = LastPresent(hint+1, -1, next, fetch)
	return n, last, true, err
}
