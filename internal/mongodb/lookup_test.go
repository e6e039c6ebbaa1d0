package mongodb

import (
	"errors"
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
