package mongodb

import (
	"errors"
	"sync"
	"testing"
)

// Every length of a series from every starting point: the last member is
// found, with about 2·log₂ lookups of the distance.
func TestLastPresent(t *testing.T) {
	t.Parallel()
	for last := int64(0); last <= 70; last++ {
		for lo := int64(0); lo <= last; lo++ {
			for _, hi := range []int64{-1, last + 1, last + 9} {
				lookups := 0
				start := lo
				got, member, err := LastPresent(lo, hi, &start, func(n int64) (*int64, error) {
					lookups++
					if n <= lo || hi >= 0 && n >= hi {
						t.Fatalf("lo %d hi %d: looked up %d", lo, hi, n)
					}
					if n > last {
						return nil, nil
					}
					return &n, nil
				})
				if err != nil || got != last || member == nil || *member != last {
					t.Fatalf("last %d from lo %d hi %d: got %d (member %v) %v", last, lo, hi, got, member, err)
				}
				if bound := 2*bitsLen(last-lo+1) + 1; lookups > bound {
					t.Fatalf("last %d from lo %d hi %d: %d lookups, more than %d", last, lo, hi, lookups, bound)
				}
			}
		}
	}
	boom := errors.New("down")
	if _, _, err := LastPresent(0, -1, (*int)(nil), func(int64) (*int, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("error: %v", err)
	}
}

func bitsLen(n int64) int {
	b := 0
	for ; n > 0; n >>= 1 {
		b++
	}
	return b
}

// LastFrom finds the last member from any hint at or below it (two
// lookups when the hint is the last), and says when the hint's member is
// missing instead of searching.
func TestLastFrom(t *testing.T) {
	t.Parallel()
	const first = 5 // members first..last exist (those below were swept)
	for last := int64(first); last <= 40; last++ {
		for hint := int64(first); hint <= last+2; hint++ {
			var mu sync.Mutex
			lookups := 0
			got, member, found, err := LastFrom(hint, func(n int64) (*int64, error) {
				mu.Lock()
				lookups++
				mu.Unlock()
				if n < first || n > last {
					return nil, nil
				}
				return &n, nil
			})
			switch {
			case err != nil:
				t.Fatalf("last %d hint %d: %v", last, hint, err)
			case hint > last:
				if found || member != nil {
					t.Fatalf("last %d hint %d past it: found %v, %v", last, hint, found, member)
				}
			case !found || got != last || member == nil || *member != last:
				t.Fatalf("last %d hint %d: got %d (%v, found %v)", last, hint, got, member, found)
			case hint == last && lookups != 2:
				t.Fatalf("last %d hint %d: %d lookups, want 2", last, hint, lookups)
			}
		}
	}
}
