package mongodb_test

import (
	"context"
	"testing"
	"time"

	"github.com/acme/customer-platform/internal/mongodb"
	"github.com/acme/customer-platform/internal/testenv"
)

// The server's clock read through hello: the embedded server shares this
// process's clock, so a clock set two minutes behind reads a skew of two
// minutes, and the real one next to none.
func TestClockSkew(t *testing.T) {
	t.Parallel()
	_, db := testenv.Mongo(t)
	ctx := context.Background()
	for _, behind := range []time.Duration{0, 2 * time.Minute} {
		skew, err := mongodb.ClockSkew(ctx, db, func() time.Time { return time.Now().Add(-behind) })
		testenv.Must(t, err, "skew")
		if d := skew - behind; d < -5*time.Second || d > 5*time.Second {
			t.Errorf("a clock %s behind: skew %s", behind, skew)
		}
	}
}
