package main

import (
	"math"
	"slices"
	"time"
)

// percentile returns the q-quantile (0 < q <= 1) of lat by nearest rank,
// sorting lat in place; 0 for no samples.
func percentile(lat []time.Duration, q float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	if !slices.IsSorted(lat) {
		slices.Sort(lat)
	}
	i := int(math.Ceil(q*float64(len(lat)))) - 1
	return lat[min(max(i, 0), len(lat)-1)]
}

// spread is the smallest and largest of per-round values of a figure.
type spread struct{ lo, hi float64 }

func spreadOf(vs []float64) spread {
	if len(vs) == 0 {
		return spread{math.NaN(), math.NaN()}
	}
	return spread{slices.Min(vs), slices.Max(vs)}
}

// throughputRatio is the ratio of a's operations per second to b's over
// all their rounds, and the same ratio round by round.
func throughputRatio(a, b *side) (float64, []float64) {
	var per []float64
	for i := range min(len(a.rounds), len(b.rounds)) {
		if rb := b.rounds[i].rate(); rb > 0 {
			per = append(per, a.rounds[i].rate()/rb)
		}
	}
	ta, tb := a.total(), b.total()
	if tb.n == 0 {
		return math.NaN(), per
	}
	return ta.rate() / tb.rate(), per
}

// latencyRatio is the q-quantile latency of a divided by the largest
// q-quantile among bs, over all rounds, and round by round.
func latencyRatio(q float64, a *side, bs ...*side) (float64, []float64) {
	var per []float64
	for i := range a.rounds {
		den := time.Duration(0)
		for _, b := range bs {
			if i < len(b.rounds) {
				den = max(den, percentile(b.rounds[i].lat, q))
			}
		}
		if num := percentile(a.rounds[i].lat, q); den > 0 && num > 0 {
			per = append(per, float64(num)/float64(den))
		}
	}
	den := time.Duration(0)
	for _, b := range bs {
		den = max(den, percentile(b.total().lat, q))
	}
	num := percentile(a.total().lat, q)
	if den == 0 || num == 0 {
		return math.NaN(), per
	}
	return float64(num) / float64(den), per
}
