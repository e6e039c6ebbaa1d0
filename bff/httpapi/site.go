package httpapi

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/acme/customer-platform/internal/web"
)

// The BFF's browser side, embedded in the binary: the registration page at
// /, the API documentation at /docs (Swagger UI, vendored by web/vendor.sh,
// showing the BFF's document and copies of the auth and customer services'
// documents, kept identical by go generate and checked by a test), and their
// assets under /assets/.
//
//go:generate cp ../../auth/httpapi/openapi.json web/assets/openapi/auth.json
//go:generate cp ../../customer/httpapi/openapi.json web/assets/openapi/customer.json
//go:embed web/index.html web/docs.html web/assets
var webFiles embed.FS

// site serves the embedded pages and assets.
type site struct {
	index, docs *asset
	assets      map[string]*asset // by path under /assets/
}

// asset is one embedded file, ready to serve.
type asset struct {
	body    []byte // as stored: gzip-compressed when gzipped
	gzipped bool
	ctype   string
	etag    string
}

// newSite loads the embedded files; name.gz is served as name.
func newSite() (*site, error) {
	s := &site{assets: map[string]*asset{}}
	load := func(name string) (*asset, error) {
		b, err := webFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		a := &asset{body: b}
		served := name
		if strings.HasSuffix(name, ".gz") {
			a.gzipped = true
			served = strings.TrimSuffix(name, ".gz")
		}
		a.ctype = mime.TypeByExtension(path.Ext(served))
		if a.ctype == "" {
			a.ctype = "text/plain; charset=utf-8"
		}
		sum := sha256.Sum256(b)
		a.etag = `"` + hex.EncodeToString(sum[:12]) + `"`
		return a, nil
	}
	var err error
	if s.index, err = load("web/index.html"); err != nil {
		return nil, err
	}
	if s.docs, err = load("web/docs.html"); err != nil {
		return nil, err
	}
	err = fs.WalkDir(webFiles, "web/assets", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		a, err := load(name)
		if err != nil {
			return err
		}
		s.assets[strings.TrimSuffix(strings.TrimPrefix(name, "web/assets/"), ".gz")] = a
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bff: embedded web files: %w", err)
	}
	return s, nil
}

// mustLoadSite is newSite for Routes: the files are part of the binary, so
// failing to read them is a build defect (TestSite loads them), not a
// condition to handle at run time.
func mustLoadSite() *site {
	s, err := newSite()
	if err != nil {
		panic(err)
	}
	return s
}

// docsAssets are the assets of the API documentation page only: the
// internal services' documents and the page's own script and style.
var docsAssets = []string{"openapi/", "docs.js", "docs.css", "swagger-ui/"}

// withoutDocs drops the documentation page and its assets: /docs and the
// internal services' documents answer the contract's 404.
func (s *site) withoutDocs() {
	s.docs = nil
	for name := range s.assets {
		for _, p := range docsAssets {
			if strings.HasPrefix(name, p) {
				delete(s.assets, name)
			}
		}
	}
}

// handleDocs serves GET /docs when the documentation is published.
func (s *site) handleDocs(c *gin.Context) error {
	if s.docs == nil {
		return web.Errorf(web.CodeNotFound, "Not found.")
	}
	return s.docs.handle(c)
}

// handleAsset serves GET /assets/*path.
func (s *site) handleAsset(c *gin.Context) error {
	a, ok := s.assets[strings.TrimPrefix(c.Param("path"), "/")]
	if !ok {
		return web.Errorf(web.CodeNotFound, "Not found.")
	}
	return a.handle(c)
}

// handle writes the asset: revalidated by ETag on every use (no-cache), a
// gzipped one as it is stored when the client accepts gzip.
func (a *asset) handle(c *gin.Context) error {
	h := c.Writer.Header()
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	if a.gzipped {
		h.Add("Vary", "Accept-Encoding")
	}
	if match := c.GetHeader("If-None-Match"); match != "" && strings.Contains(match, a.etag) {
		c.Status(http.StatusNotModified)
		return nil
	}
	if !a.gzipped {
		c.Data(http.StatusOK, a.ctype, a.body)
		return nil
	}
	if acceptsGzip(c.GetHeader("Accept-Encoding")) {
		h.Set("Content-Encoding", "gzip")
		c.Data(http.StatusOK, a.ctype, a.body)
		return nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(a.body))
	if err == nil {
		var plain []byte
		if plain, err = io.ReadAll(zr); err == nil {
			c.Data(http.StatusOK, a.ctype, plain)
			return nil
		}
	}
	return fmt.Errorf("inflate embedded asset: %w", err)
}

// acceptsGzip reports whether an Accept-Encoding value allows gzip.
func acceptsGzip(accept string) bool {
	for part := range strings.SplitSeq(accept, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		coding = strings.ToLower(strings.TrimSpace(coding))
		if coding != "gzip" && coding != "*" {
			continue
		}
		q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}
