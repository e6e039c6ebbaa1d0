package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/acme/customer-platform/authclient"
	"github.com/acme/customer-platform/bff"
	"github.com/acme/customer-platform/internal/web"
)

// Header names.
const (
	headerIdempotencyKey = "Idempotency-Key"
	headerReplayed       = "Idempotent-Replayed"
	headerCache          = "X-Cache"
)

const contentTypeJSON = "application/json; charset=utf-8"

func handleRegister(s *bff.Service, v *bff.Validator) gin.HandlerFunc {
	return func(c *gin.Context) {
		obj, err := web.ReadObject(c, false)
		if err != nil {
			web.Respond(c, err)
			return
		}
		key, hasKey := c.Request.Header[headerIdempotencyKey]
		if hasKey && (len(key) != 1 || !bff.ValidKey(key[0])) {
			web.Respond(c, web.FieldError(headerIdempotencyKey, "Idempotency-Key must be 1 to 255 visible ASCII characters."))
			return
		}
		reg, err := v.ParseRegistration(obj)
		if err != nil {
			web.Respond(c, toWeb(c, err))
			return
		}
		ctx := c.Request.Context()
		var claim *bff.KeyClaim
		if hasKey {
			fp, err := bff.FingerprintOf(c.Request.Method, c.Request.URL.Path, obj)
			if err != nil {
				web.Respond(c, err)
				return
			}
			var replay *bff.Replay
			claim, replay, err = s.BeginIdempotent(ctx, key[0], fp)
			if err != nil {
				web.Respond(c, toWeb(c, err))
				return
			}
			if replay != nil {
				c.Header(headerReplayed, "true")
				c.Data(replay.Status, contentTypeJSON, replay.Body)
				return
			}
		}
		var sagaID, keyID string
		if claim != nil {
			sagaID, keyID = claim.SagaID, claim.KeyID
		}
		res, err := s.Register(ctx, reg, sagaID, keyID)
		status, body, we := answer(c, http.StatusCreated, res, err)
		if claim != nil {
			s.CompleteIdempotent(ctx, claim, status, body)
		}
		write(c, status, body, we)
	}
}

// answer encodes a result, or its error in the contract's shape, as the
// status and body to send (and to store for idempotent retries).
func answer(c *gin.Context, okStatus int, v any, err error) (int, []byte, *web.Error) {
	if err != nil {
		we := webError(c, toWeb(c, err))
		b, merr := json.Marshal(we.Body())
		if merr != nil {
			b = []byte(`{"detail":"A server error occurred.","code":"error"}`)
		}
		return we.HTTPStatus(), b, we
	}
	b, merr := json.Marshal(v)
	if merr != nil {
		we := webError(c, merr)
		b, _ = json.Marshal(we.Body())
		return we.HTTPStatus(), b, we
	}
	return okStatus, b, nil
}

// write sends an answer built by answer.
func write(c *gin.Context, status int, body []byte, we *web.Error) {
	if we != nil && we.RetryAfter > 0 {
		c.Header("Retry-After", strconv.Itoa(int((we.RetryAfter+time.Second-1)/time.Second)))
	}
	c.Data(status, contentTypeJSON, body)
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

func handleLogin(s *bff.Service, v *bff.Validator, views bff.Views) gin.HandlerFunc {
	return func(c *gin.Context) {
		obj, err := web.ReadObject(c, false)
		if err != nil {
			web.Respond(c, err)
			return
		}
		creds, err := v.ParseLogin(obj)
		if err != nil {
			web.Respond(c, toWeb(c, err))
			return
		}
		ctx := c.Request.Context()
		user, tokens, err := s.Login(ctx, creds)
		if err != nil {
			web.Respond(c, toWeb(c, err))
			return
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
			u, merr := json.Marshal(user)
			if merr != nil {
				web.Respond(c, merr)
				return
			}
			out.User, out.Profile, out.ProfileUnavailable = u, json.RawMessage("null"), true
		}
		c.JSON(http.StatusOK, out)
	}
}

func errText(err error) string {
	if err == nil {
		return "view without a user"
	}
	return err.Error()
}

func handleGetMe(views bff.Views) gin.HandlerFunc {
	return func(c *gin.Context) {
		who, _ := callerFrom(c.Request.Context())
		body, status, err := views.View(c.Request.Context(), who.userID, who.token)
		if err != nil {
			web.Respond(c, toWeb(c, err))
			return
		}
		c.Header(headerCache, string(status))
		c.Data(http.StatusOK, contentTypeJSON, body)
	}
}

func handlePatchMe(s *bff.Service, v *bff.Validator, views bff.Views) gin.HandlerFunc {
	return func(c *gin.Context) {
		obj, err := web.ReadObject(c, true)
		if err != nil {
			web.Respond(c, err)
			return
		}
		p, err := v.ParsePatch(obj)
		if err != nil {
			web.Respond(c, toWeb(c, err))
			return
		}
		ctx := c.Request.Context()
		who, _ := callerFrom(ctx)
		if err := s.UpdateMe(ctx, who.userID, who.token, p); err != nil {
			web.Respond(c, toWeb(c, err))
			return
		}
		body, status, err := views.View(ctx, who.userID, who.token)
		if err != nil {
			web.Respond(c, toWeb(c, err))
			return
		}
		c.Header(headerCache, string(status))
		c.Data(http.StatusOK, contentTypeJSON, body)
	}
}

func handleDeleteMe(s *bff.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx := c.Request.Context()
		who, _ := callerFrom(ctx)
		d, err := s.DeleteAccount(ctx, who.userID, who.token)
		if err != nil {
			web.Respond(c, toWeb(c, err))
			return
		}
		if d.Done {
			c.Status(http.StatusNoContent)
			return
		}
		c.JSON(http.StatusAccepted, gin.H{
			"detail":          "The deletion is under way and will be completed automatically.",
			"code":            bff.CodeDeletionPending,
			"profile_deleted": d.ProfileDeleted,
			"account_deleted": d.AccountDeleted,
		})
	}
}

// authenticate verifies the bearer token of /me routes: 401 without one or
// with a bad one, 403 for a service account (it has no merged view).
func authenticate(v *authclient.Verifier) gin.HandlerFunc {
	return func(c *gin.Context) {
		h := c.GetHeader("Authorization")
		if h == "" {
			web.Respond(c, web.Errorf(web.CodeNotAuthenticated, "Authentication credentials were not provided."))
			return
		}
		tok, ok := authclient.BearerToken(h)
		if !ok {
			web.Respond(c, web.Errorf(web.CodeNotAuthenticated, "Authentication credentials were not provided."))
			return
		}
		claims, err := v.Verify(tok)
		if err != nil {
			web.Respond(c, web.Errorf(web.CodeTokenNotValid, "Given token not valid for any token type"))
			return
		}
		if claims.Role == authclient.RoleService {
			web.Respond(c, web.Errorf(web.CodePermissionDenied, "A service account has no merged view."))
			return
		}
		c.Request = c.Request.WithContext(withCaller(c.Request.Context(), caller{userID: claims.UserID, token: tok}))
		c.Next()
	}
}
