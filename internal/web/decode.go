package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"

	"github.com/gin-gonic/gin"
)

// MaxBodyBytes is the contract's limit on request bodies.
const MaxBodyBytes = 1 << 20

// ReadBody reads the request body within MaxBodyBytes (413 beyond it).
func ReadBody(c *gin.Context) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, MaxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, Errorf(CodeTooLarge, "Request body is larger than %d bytes.", MaxBodyBytes)
		}
		return nil, Errorf(CodeInvalid, "Could not read the request body.")
	}
	return b, nil
}

// ReadObject reads a JSON object body as raw members, so a service can decode
// and validate each field itself and report every bad field at once. An empty
// body is an empty object when allowEmpty is true.
func ReadObject(c *gin.Context, allowEmpty bool) (map[string]json.RawMessage, error) {
	if ct := c.GetHeader("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !(len(mt) > 5 && mt[len(mt)-5:] == "+json")) {
			return nil, Errorf(CodeUnsupportedMedia, "Unsupported media type %q in request.", ct)
		}
	}
	b, err := ReadBody(c)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		if allowEmpty {
			return map[string]json.RawMessage{}, nil
		}
		return nil, Errorf(CodeInvalid, "JSON parse error - request body is empty.")
	}
	var obj map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return nil, Errorf(CodeInvalid, "JSON parse error - the body must be a JSON object.")
	}
	if dec.More() {
		return nil, Errorf(CodeInvalid, "JSON parse error - unexpected data after the JSON object.")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, Errorf(CodeInvalid, "JSON parse error - unexpected data after the JSON object.")
	}
	return obj, nil
}
