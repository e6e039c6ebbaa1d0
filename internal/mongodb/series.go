package mongodb

// LastPresent finds the last member of a series numbered without gaps
// (members exist from the first up to the last, none after), by _id
// lookups the caller makes in present: lo is a number known to exist (or
// the one before the first), hi one known not to (or -1: none known yet).
// It gallops up from lo (lo+1, lo+2, lo+4, …) until a member is missing,
// then bisects: about 2·log₂ of the distance from lo, one lookup when lo
// is already the last and hi is unknown. present is called with numbers
// above lo only, one at a time.
func LastPresent(lo, hi int64, present func(n int64) (bool, error)) (int64, error) {
	for step := int64(1); hi < 0; step *= 2 {
		ok, err := present(lo + step)
		if err != nil {
			return 0, err
		}
		if ok {
			lo += step
		} else {
			hi = lo + step
		}
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		ok, err := present(mid)
		if err != nil {
			return 0, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo, nil
}
