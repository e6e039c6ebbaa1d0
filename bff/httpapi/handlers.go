package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/acme/customer-platform/authclient"
	"github.com/acme/customer-platform/bff"
	"github.com/acme/customer-platform/internal/contract"
	"github.com/acme/customer-platform/internal/web"
)

// Header names.
const (
	headerIdempotencyKey = "Idempotency-Key"
	headerReplayed       = "Idempotent-Replayed"
	headerCache          = "X-Cache"
)

const contentTypeJSON = "application/json; charset=utf-8"

func handleRegister(s *bff.Service, v *bff.Validator, resp web.Responder) web.Handler {
	return func(c *gin.Context) error {
		obj, err := web.ReadObject(c, false)
		if err != nil {
			return err
		}
		key, hasKey := c.Request.Header[headerIdempotencyKey]
		if hasKey && (len(key) != 1 || !bff.ValidKey(key[0])) {
			return web.FieldError(headerIdempotencyKey, "Idempotency-Key must be 1 to 255 visible ASCII characters.")
		}
		reg, err := v.ParseRegistration(obj)
		if err != nil {
			return err
		}
		ctx := c.Request.Context()
		var claim *bff.KeyClaim
		if hasKey {
			fp, err := bff.FingerprintOf(c.Request.Method, c.Request.URL.Path, obj)
			if err != nil {
				return err
			}
			var replay *bff.Replay
			claim, replay, err = s.BeginIdempotent(ctx, key[0], fp)
			if err != nil {
				return err
			}
			if replay != nil {
				c.Header(headerReplayed, "true")
				c.Data(replay.Status, contentTypeJSON, replay.Body)
				return nil
			}
		}
		res, regErr := s.Register(ctx, reg, claim)
		status, body, err := encodeAnswer(c, resp, http.StatusCreated, res, regErr)
		if claim != nil {
			// Only a final outcome is kept for retries; anything else is
			// answered from the saga when the client asks again.
			s.CompleteIdempotent(ctx, claim, status, body, status < 500 && bff.Final(regErr))
		}
		if err != nil {
			return err
		}
		c.Data(status, contentTypeJSON, body)
		return nil
	}
}

// encodeAnswer encodes a result, or its error as the responder answers it,
// as the status and body to send and to store for idempotent retries. The
// error it returns is the responder's answer to err, for the handler to
// return: it is written as it is, not translated (and logged) twice.
func encodeAnswer(c *gin.Context, resp web.Responder, okStatus int, v any, err error) (int, []byte, error) {
	if err == nil {
		b, merr := json.Marshal(v)
		if merr == nil {
			return okStatus, b, nil
		}
		err = merr
	}
	answer := resp.Answer(c, err)
	we, ok := errors.AsType[*web.Error](answer)
	if !ok {
		// What web.Respond answers (and logs) for an error nobody knows.
		we = web.Errorf(web.CodeInternal, "A server error occurred.")
	}
	b, merr := json.Marshal(we.Body())
	if merr != nil {
		b = []byte(`{"detail":"A server error occurred.","code":"error"}`)
	}
	return we.HTTPStatus(), b, answer
}

// loginAnswer is the body of a login: the merged view plus the tokens.
type loginAnswer struct {
	User    json.RawMessage `json:"user"`
	Profile json.RawMessage `json:"profile"`
	Tokens  bff.TokenPair   `json:"tokens"`
	// ProfileUnavailable is set when the profile could not be loaded (the
	// customer service is down): profile is then null although one may exist.
	ProfileUnavailable bool `json:"profile_unavailable,omitempty"`
}

func handleLogin(s *bff.Service, v *bff.Validator, views bff.Views) web.Handler {
	return func(c *gin.Context) error {
		obj, err := web.ReadObject(c, false)
		if err != nil {
			return err
		}
		creds, err := v.ParseLogin(obj)
		if err != nil {
			return err
		}
		ctx := c.Request.Context()
		user, tokens, err := s.Login(ctx, creds)
		if err != nil {
			return err
		}
		out := loginAnswer{Tokens: tokens, Profile: json.RawMessage("null")}
		body, status, err := views.View(ctx, user.ID, tokens.Access)
		if err == nil {
			var parts struct {
				User    json.RawMessage `json:"user"`
				Profile json.RawMessage `json:"profile"`
			}
			err = json.Unmarshal(body, &parts)
			out.User, out.Profile = parts.User, parts.Profile
			c.Header(headerCache, string(status))
		}
		if err != nil || len(out.User) == 0 {
			web.Logger(c).WarnContext(ctx, "login: merged view unavailable; answering the user without the profile", "error", errText(err))
			u, err := json.Marshal(user)
			if err != nil {
				return err
			}
			out.User, out.Profile, out.ProfileUnavailable = u, json.RawMessage("null"), true
		}
		c.JSON(http.StatusOK, out)
		return nil
	}
}

func errText(err error) string {
	if err == nil {
		return "view without a user"
	}
	return err.Error()
}

func handleGetMe(views bff.Views) web.Handler {
	return func(c *gin.Context) error {
		ctx := c.Request.Context()
		who, _ := web.CallerFrom(ctx)
		body, status, err := views.View(ctx, who.Claims.UserID, who.Token)
		if err != nil {
			return err
		}
		c.Header(headerCache, string(status))
		c.Data(http.StatusOK, contentTypeJSON, body)
		return nil
	}
}

func handlePatchMe(s *bff.Service, v *bff.Validator, views bff.Views) web.Handler {
	return func(c *gin.Context) error {
		obj, err := web.ReadObject(c, true)
		if err != nil {
			return err
		}
		p, err := v.ParsePatch(obj)
		if err != nil {
			return err
		}
		ctx := c.Request.Context()
		who, _ := web.CallerFrom(ctx)
		if err := s.UpdateMe(ctx, who.Claims.UserID, who.Token, p); err != nil {
			return err
		}
		body, status, err := views.View(ctx, who.Claims.UserID, who.Token)
		if err != nil {
			return err
		}
		c.Header(headerCache, string(status))
		c.Data(http.StatusOK, contentTypeJSON, body)
		return nil
	}
}

func handleDeleteMe(s *bff.Service) web.Handler {
	return func(c *gin.Context) error {
		ctx := c.Request.Context()
		who, _ := web.CallerFrom(ctx)
		d, err := s.DeleteAccount(ctx, who.Claims.UserID, who.Token)
		if err != nil {
			return err
		}
		if d.Done {
			c.Status(http.StatusNoContent)
			return nil
		}
		c.JSON(http.StatusAccepted, gin.H{
			"detail":          "The deletion is under way and will be completed automatically.",
			"code":            bff.CodeDeletionPending,
			"profile_deleted": d.ProfileDeleted,
			"account_deleted": d.AccountDeleted,
		})
		return nil
	}
}

// admitUsersOnly refuses a service account on the /me routes: it has no
// merged view.
func admitUsersOnly(claims *authclient.Claims) *web.Error {
	if claims.Role == contract.RoleService {
		return web.Errorf(web.CodePermissionDenied, "A service account has no merged view.")
	}
	return nil
}
