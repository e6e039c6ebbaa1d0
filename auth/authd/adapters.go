package authd

import (
	"context"

	"github.com/acme/customer-platform/auth"
	"github.com/acme/customer-platform/internal/changefeed"
)

// publisher adapts the change feed to auth.Publisher.
type publisher struct{ p *changefeed.Publisher }

var _ auth.Publisher = publisher{}

func (p publisher) UserChanged(ctx context.Context, userID, op string) {
	p.p.Publish(ctx, changefeed.UserChanged, changefeed.Message{UserID: userID, Op: op})
}
