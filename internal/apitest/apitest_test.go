package apitest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

// doc is a small document with the shapes the services' documents use.
const doc = `{
  "openapi": "3.0.3",
  "info": {"title": "t", "version": "1"},
  "paths": {
    "/items/{id}/": {
      "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}}],
      "get": {
        "operationId": "getItem", "summary": "An item", "security": [{"bearer": []}],
        "responses": {
          "200": {"description": "ok", "headers": {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}},
                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Item"}, "example": {"id": "3f2b8c1e-6a4d-4e7b-9c21-5d8e7f6a1b20", "name": "x"}}}},
          "401": {"$ref": "#/components/responses/Error"},
          "404": {"$ref": "#/components/responses/Error"},
          "500": {"$ref": "#/components/responses/Error"}
        }
      },
      "delete": {
        "operationId": "deleteItem", "summary": "Delete", "security": [{"bearer": []}],
        "responses": {
          "204": {"description": "gone", "headers": {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}}},
          "401": {"$ref": "#/components/responses/Error"},
          "500": {"$ref": "#/components/responses/Error"}
        }
      }
    },
    "/items/": {
      "post": {
        "operationId": "createItem", "summary": "Create",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewItem"}, "example": {"name": "x"}}}},
        "responses": {
          "201": {"description": "created", "headers": {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}},
                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Item"}, "example": {"id": "3f2b8c1e-6a4d-4e7b-9c21-5d8e7f6a1b20", "name": "x"}}}},
          "400": {"$ref": "#/components/responses/Error"},
          "500": {"$ref": "#/components/responses/Error"}
        }
      }
    }
  },
  "components": {
    "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    "headers": {"X-Request-ID": {"required": true, "schema": {"type": "string", "minLength": 1}}},
    "schemas": {
      "Item": {"type": "object", "required": ["id", "name"], "additionalProperties": false,
               "properties": {"id": {"type": "string", "format": "uuid"}, "name": {"type": "string"}}},
      "NewItem": {"type": "object", "required": ["name"], "additionalProperties": false,
                  "properties": {"name": {"type": "string", "minLength": 1}}},
      "Error": {"type": "object", "required": ["detail", "code"], "additionalProperties": false,
                "properties": {"detail": {"type": "string"}, "code": {"type": "string"}}}
    },
    "responses": {
      "Error": {"description": "error", "headers": {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}},
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    }
  }
}`

const itemID = "3f2b8c1e-6a4d-4e7b-9c21-5d8e7f6a1b20"

func TestCheck(t *testing.T) {
	t.Parallel()
	docs := Docs{MustLoad("t", []byte(doc))}
	good := http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {"r1"}}
	noID := http.Header{"Content-Type": {"application/json"}}
	item := `{"id":"` + itemID + `","name":"x"}`
	errBody := `{"detail":"Not found.","code":"not_found"}`
	cases := []struct {
		name, method, path, token, reqBody string
		status                             int
		header                             http.Header
		body                               string
		wantErr                            string // "" = valid
	}{
		{"ok", "GET", "/items/" + itemID + "/", "tok", "", 200, good, item, ""},
		{"declared error", "GET", "/items/" + itemID + "/", "tok", "", 404, good, errBody, ""},
		{"undeclared status", "GET", "/items/" + itemID + "/", "tok", "", 409, good, errBody, "status is not supported"},
		{"extra member", "GET", "/items/" + itemID + "/", "tok", "", 200, good, `{"id":"` + itemID + `","name":"x","secret":1}`, "does not follow the document"},
		{"missing member", "GET", "/items/" + itemID + "/", "tok", "", 200, good, `{"id":"` + itemID + `"}`, "does not follow the document"},
		{"bad format in answer", "GET", "/items/" + itemID + "/", "tok", "", 200, good, `{"id":"nope","name":"x"}`, "does not follow the document"},
		{"no request id", "GET", "/items/" + itemID + "/", "tok", "", 200, noID, item, "X-Request-ID"},
		{"no token refused", "GET", "/items/" + itemID + "/", "", "", 401, good, `{"detail":"x","code":"not_authenticated"}`, ""},
		{"no token accepted", "GET", "/items/" + itemID + "/", "", "", 200, good, item, "but the service answered 200"},
		{"bad id refused", "GET", "/items/nope/", "tok", "", 404, good, errBody, ""},
		{"bad id accepted", "GET", "/items/nope/", "tok", "", 200, good, item, "answered 200"},
		{"bad body refused", "POST", "/items/", "", `{"name":""}`, 400, good, `{"detail":"x","code":"invalid"}`, ""},
		{"bad body accepted", "POST", "/items/", "", `{"name":"","x":1}`, 201, good, item, "answered 201"},
		{"good body", "POST", "/items/", "", `{"name":"x"}`, 201, good, item, ""},
		{"no content", "DELETE", "/items/" + itemID + "/", "tok", "", 204, good, "", ""},
		{"content where none is declared", "DELETE", "/items/" + itemID + "/", "tok", "", 204, good, `{}`, "declares no content"},
		{"undocumented path, generic 404", "GET", "/nowhere", "", "", 404, good, errBody, ""},
		{"undocumented path answered", "GET", "/nowhere", "", "", 200, good, `{}`, "undocumented path answered 200"},
		{"undocumented method, generic 405", "PUT", "/items/" + itemID + "/", "tok", "", 405, good, `{"detail":"x","code":"method_not_allowed"}`, ""},
		{"undocumented method answered", "PUT", "/items/" + itemID + "/", "tok", "", 200, good, item, "undocumented method"},
		{"undocumented path, other 404 body", "GET", "/nowhere", "", "", 404, good, `not found`, "not the"},
		{"metrics are not API", "GET", "/metrics", "", "", 200, http.Header{"Content-Type": {"text/plain"}}, "# HELP", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest(tc.method, "http://svc.test"+tc.path, strings.NewReader(tc.reqBody))
			if tc.reqBody != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			err := docs.Check(Exchange{Request: req, RequestBody: []byte(tc.reqBody), Status: tc.status, Header: tc.header, Body: []byte(tc.body)})
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("want an error containing %q, got none", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("want an error containing %q, got %v", tc.wantErr, err)
			}
		})
	}
}

// fakeT records the errors a wrapper reports.
type fakeT struct {
	testing.TB
	errs []string
}

func (f *fakeT) Errorf(format string, args ...any) {
	f.errs = append(f.errs, format)
}

func (f *fakeT) Helper() {}

func TestTransportAndHandlerReport(t *testing.T) {
	t.Parallel()
	docs := Docs{MustLoad("t", []byte(doc))}
	var answer string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Method == http.MethodPost && string(b) != `{"name":"x"}` {
			t.Errorf("the handler did not get the request body: %q", b)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Request-ID", "r1")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, answer)
	})

	for _, tc := range []struct {
		answer string
		errors int
	}{{`{"id":"` + itemID + `","name":"x"}`, 0}, {`{"id":"` + itemID + `"}`, 1}} {
		answer = tc.answer

		ft := &fakeT{TB: t}
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/items/", strings.NewReader(`{"name":"x"}`))
		req.Header.Set("Content-Type", "application/json")
		docs.Handler(ft, h).ServeHTTP(rec, req)
		if len(ft.errs) != tc.errors || rec.Code != http.StatusCreated || rec.Body.String() != tc.answer {
			t.Errorf("handler with answer %s: %d errors, %d %q", tc.answer, len(ft.errs), rec.Code, rec.Body)
		}

		srv := httptest.NewServer(h)
		ft = &fakeT{TB: t}
		resp, err := docs.Client(ft, nil).Post(srv.URL+"/items/", "application/json", strings.NewReader(`{"name":"x"}`))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		srv.Close()
		if len(ft.errs) != tc.errors || string(b) != tc.answer {
			t.Errorf("client with answer %s: %d errors, body %q", tc.answer, len(ft.errs), b)
		}
	}
}

func TestLoadRefusesBrokenDocuments(t *testing.T) {
	t.Parallel()
	broken := strings.Replace(doc, `"example": {"name": "x"}`, `"example": {"name": 7}`, 1)
	if _, err := Load("t", []byte(broken)); err == nil {
		t.Error("a document with an example that breaks its schema loaded")
	}
	if _, err := Load("t", []byte(`{"openapi": "3.0.3"}`)); err == nil {
		t.Error("a document without info and paths loaded")
	}
}

func TestLintAndRouteDrift(t *testing.T) {
	t.Parallel()
	d := MustLoad("t", []byte(doc))
	if got := d.Lint(); len(got) != 0 {
		t.Errorf("lint of a complete document: %v", got)
	}
	bare := MustLoad("t", []byte(strings.Replace(doc, `"operationId": "createItem", "summary": "Create",`, ``, 1)))
	if got := strings.Join(bare.Lint(), "\n"); !strings.Contains(got, "POST /items/: no operationId") || !strings.Contains(got, "no summary") {
		t.Errorf("lint misses the missing operationId and summary: %s", got)
	}
	if got := FromGin("/a/:id/b/*rest"); got != "/a/{id}/b/{rest}" {
		t.Errorf("FromGin = %q", got)
	}

	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	noop := func(*gin.Context) {}
	e.GET("/items/:id/", noop)
	e.POST("/items/", noop)
	e.GET("/metrics", noop)
	if got := d.RouteDrift(e.Routes(), "/metrics"); strings.Join(got, "\n") != "DELETE /items/{id}/ is in the t document but no route serves it" {
		t.Errorf("drift of a missing route: %q", got)
	}
	e.DELETE("/items/:id/", noop)
	e.PUT("/items/:id/", noop)
	if got := d.RouteDrift(e.Routes(), "/metrics"); strings.Join(got, "\n") != "PUT /items/{id}/ is routed but not in the t document" {
		t.Errorf("drift of an undocumented route: %q", got)
	}
	if got := d.RouteDrift(e.Routes(), "/metrics", "/items/:id/"); len(got) < 2 {
		t.Errorf("a documented route listed as not API is not reported: %q", got)
	}
}
