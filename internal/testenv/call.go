package testenv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// DefaultClient is the client Call uses when given none.
var DefaultClient = &http.Client{Timeout: 30 * time.Second}

// Answer is an HTTP answer: its status, header and whole body.
type Answer struct {
	Status int
	Header http.Header
	Body   []byte
}

func (a Answer) String() string { return fmt.Sprintf("%d %s", a.Status, a.Body) }

// JSON decodes the body into v; a body that does not decode fails the test.
func (a Answer) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(a.Body, v); err != nil {
		t.Fatalf("body of the %d answer does not decode into %T: %v: %q", a.Status, v, err, a.Body)
	}
}

// Map decodes the body as a JSON object.
func (a Answer) Map(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	a.JSON(t, &m)
	return m
}

// Bearer is the header of a request authorised with token.
func Bearer(token string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + token}
}

// Call sends a request with client (nil: DefaultClient) and reads the
// whole answer. body is sent as is when it is a string or []byte, else
// encoded as JSON; a request with a body says Content-Type:
// application/json unless header sets it. A request that cannot be sent
// fails the test.
func Call(t testing.TB, client *http.Client, method, url string, body any, header map[string]string) Answer {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		Must(t, err, "encode the body of %s %s", method, url)
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, url, r)
	Must(t, err, "request %s %s", method, url)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	if client == nil {
		client = DefaultClient
	}
	resp, err := client.Do(req)
	Must(t, err, "%s %s", method, url)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	Must(t, err, "read the answer to %s %s", method, url)
	return Answer{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}
